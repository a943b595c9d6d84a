-- MQTT accounts of devices, platform services and care centres: only PBKDF2 hashes are kept
-- (Mosquitto's `$7$` format), so the broker's password file is rendered without a secret.
CREATE TABLE IF NOT EXISTS mqtt_accounts (
    username       text PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('device', 'service', 'center')),
    subject        text NOT NULL,
    password_hash  text NOT NULL CHECK (password_hash LIKE '$7$%'),
    issued_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz,
    -- A device logs in with its id as username (contract §1).
    CHECK (kind <> 'device' OR username = subject)
);
CREATE INDEX IF NOT EXISTS mqtt_accounts_kind ON mqtt_accounts (kind, subject);
