-- Messages whose device `ts` lies more than 30 days before their receive time (a clock reset to
-- 1970 after a battery change, a gateway clock far off). In the time series they would create a
-- weekly partition per stray week (plain mode) or land in chunks that retention drops at once
-- (TimescaleDB: cane_telemetry keeps 30 days). They are kept here instead, unpartitioned, with
-- the device ts as sent and the platform receive time; the alert path never needs this table
-- (it reads the broker and corrects each device's clock offset).
CREATE TABLE IF NOT EXISTS misdated_messages (
    device_id    text NOT NULL,
    kind         text NOT NULL,          -- the series it belongs to: smoke_telemetry, ...
    device_ts    bigint NOT NULL,        -- the device's `ts`, ms, as sent
    seq          bigint,                 -- null for a status message (it has no seq)
    online       boolean,                -- status messages only
    body         jsonb NOT NULL,         -- the message as contract §1 encodes it
    received_at  timestamptz NOT NULL    -- platform clock at receipt
);
-- The message identity (contract §1: device_id, ts, seq; a status: device_id, ts, online), so a
-- redelivery is stored once, as in the series.
CREATE UNIQUE INDEX IF NOT EXISTS misdated_messages_identity
    ON misdated_messages (device_id, kind, device_ts, coalesce(seq, -1), coalesce(online, false));
CREATE INDEX IF NOT EXISTS misdated_messages_received ON misdated_messages (received_at);
