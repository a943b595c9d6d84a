-- Dead letters keep at most the first 4 KiB of a payload, with its full size and SHA-256, so
-- a flood of oversized or malformed messages cannot grow the table by their whole bodies.
-- Ingest cuts the payload before sending it; the trigger does the same for any other writer.
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS payload_size integer;
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS payload_sha256 bytea;

CREATE OR REPLACE FUNCTION dead_letters_cap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.payload_size IS NULL THEN
        NEW.payload_size := octet_length(NEW.payload);
        NEW.payload_sha256 := sha256(NEW.payload);
    END IF;
    IF octet_length(NEW.payload) > 4096 THEN
        NEW.payload := substring(NEW.payload FROM 1 FOR 4096);
    END IF;
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS dead_letters_cap ON dead_letters;
CREATE TRIGGER dead_letters_cap BEFORE INSERT ON dead_letters
    FOR EACH ROW EXECUTE FUNCTION dead_letters_cap();
