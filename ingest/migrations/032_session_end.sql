-- A console session that ends (sign-out, account disabled, password changed) tells every
-- dashboard process, so a live feed opened with it is closed at once, not at its next read.
CREATE OR REPLACE FUNCTION user_sessions_notify_end() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('session_end', encode(OLD.token_hash, 'hex'));
    RETURN OLD;
END $$;
DROP TRIGGER IF EXISTS user_sessions_notify_end ON user_sessions;
CREATE TRIGGER user_sessions_notify_end AFTER DELETE ON user_sessions
    FOR EACH ROW EXECUTE FUNCTION user_sessions_notify_end();
