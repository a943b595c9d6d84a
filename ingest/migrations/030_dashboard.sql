-- Dispatcher console: accounts, server-side sessions, login throttling, the audit trail,
-- the columns of a taken and closed alert, procedure-card steps, and a commit-ordered
-- event id on alert_transitions for the resumable live feed.

CREATE TABLE IF NOT EXISTS users (
    id             bigserial PRIMARY KEY,
    username       text NOT NULL UNIQUE
                   CHECK (username ~ '^[a-z][a-z0-9_.-]{1,31}$' AND username <> 'system'),
    display_name   text NOT NULL DEFAULT '',
    role           text NOT NULL CHECK (role IN ('admin', 'dispatcher', 'family')),
    center_id      text,             -- the dispatcher's care centre
    language       text NOT NULL DEFAULT 'zh-CN' CHECK (language IN ('zh-CN', 'en')),
    password_hash  text NOT NULL,    -- Argon2id, PHC string format
    disabled       boolean NOT NULL DEFAULT false,
    created_ts     bigint NOT NULL,  -- platform clock, ms
    CHECK (role <> 'dispatcher' OR center_id IS NOT NULL)
);

CREATE TABLE IF NOT EXISTS user_elders (
    user_id   bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    elder_id  text NOT NULL,
    PRIMARY KEY (user_id, elder_id)
);
CREATE INDEX IF NOT EXISTS user_elders_elder ON user_elders (elder_id);

-- The cookie carries a random token; only its SHA-256 is stored, so a copy of the table
-- cannot be replayed as a login.
CREATE TABLE IF NOT EXISTS user_sessions (
    token_hash    bytea PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token    text NOT NULL,
    created_ts    bigint NOT NULL,
    last_seen_ts  bigint NOT NULL,
    expires_ts    bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS user_sessions_user ON user_sessions (user_id);

CREATE TABLE IF NOT EXISTS login_attempts (
    id        bigserial PRIMARY KEY,
    username  text NOT NULL,
    ip        text NOT NULL,
    at_ts     bigint NOT NULL,
    ok        boolean NOT NULL
);
CREATE INDEX IF NOT EXISTS login_attempts_key ON login_attempts (username, ip, at_ts);

-- Every action of a person: who, when, what, on which target, with details.
CREATE TABLE IF NOT EXISTS audit (
    id        bigserial PRIMARY KEY,
    at_ts     bigint NOT NULL,
    user_id   bigint REFERENCES users (id),
    username  text NOT NULL,
    action    text NOT NULL,
    target    text NOT NULL DEFAULT '',
    detail    jsonb NOT NULL DEFAULT '{}',
    ip        text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at_ts);
CREATE INDEX IF NOT EXISTS audit_target ON audit (target, at_ts);

ALTER TABLE alerts ADD COLUMN IF NOT EXISTS taken_by text;       -- username holding the alert
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS taken_ts bigint;     -- platform ms
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS outcome text
    CHECK (outcome IN ('false_alarm', 'handled_by_phone', 'visit', 'ambulance', 'fire_service',
                       'no_answer_escalated', 'nuisance', 'device_fault'));
CREATE INDEX IF NOT EXISTS alerts_taken_by ON alerts (taken_by) WHERE taken_by IS NOT NULL;
CREATE INDEX IF NOT EXISTS alerts_raised_id ON alerts (raised_ts DESC, alert_id DESC);

CREATE TABLE IF NOT EXISTS alert_steps (
    id        bigserial PRIMARY KEY,
    alert_id  text NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    step      text NOT NULL CHECK (step IN ('talk', 'call_back', 'key_holders', 'visit',
                                            'emergency')),
    result    text NOT NULL DEFAULT '',
    at_ts     bigint NOT NULL,
    user_id   bigint REFERENCES users (id),
    actor     text NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_steps_alert ON alert_steps (alert_id, id);

-- The account behind a transition: set per transaction by the console
-- (set_config('eldercare.user_id', …, true)); NULL for the system and devices.
ALTER TABLE alert_transitions ADD COLUMN IF NOT EXISTS user_id bigint;

-- Event ids in commit order. Ids from a sequence alone become visible out of order (a
-- transaction that drew id 7 may commit after one that drew id 8), so a reader resuming
-- "after 8" would miss 7. Every inserting transaction takes one transaction-scoped advisory
-- lock before drawing its ids and holds it until commit; the lock is released only after
-- the commit is visible, so a reader that saw id N never later sees a smaller one. The
-- notification is delivered at commit and only wakes listeners; they read the table.
CREATE OR REPLACE FUNCTION alert_transitions_commit_order() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1701604449, TG_RELID::integer);
    NEW.id := nextval(pg_get_serial_sequence(
        quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME), 'id'));
    NEW.user_id := coalesce(NEW.user_id,
                            nullif(current_setting('eldercare.user_id', true), '')::bigint);
    PERFORM pg_notify('alert_feed', NEW.id::text);
    RETURN NEW;
END $$;
ALTER TABLE alert_transitions ALTER COLUMN id DROP DEFAULT;
DROP TRIGGER IF EXISTS alert_transitions_commit_order ON alert_transitions;
CREATE TRIGGER alert_transitions_commit_order BEFORE INSERT ON alert_transitions
    FOR EACH ROW EXECUTE FUNCTION alert_transitions_commit_order();
