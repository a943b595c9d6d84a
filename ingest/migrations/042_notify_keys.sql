-- The notifier publishes its VAPID public key here at start, so the dashboard hands browsers
-- the key the notifier signs with, without sharing the private key's file.
CREATE TABLE IF NOT EXISTS notify_keys (
    name        text PRIMARY KEY,     -- 'vapid'
    public_key  text NOT NULL,        -- base64url uncompressed P-256 point (RFC 8292 §3.2)
    updated_ts  bigint NOT NULL
);
