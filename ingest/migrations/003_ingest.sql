-- Dead letters (contract §1 "Rejected input") and the per-device last-seen table kept by the writer.
CREATE TABLE IF NOT EXISTS dead_letters (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at  timestamptz NOT NULL,
    topic        text NOT NULL,
    payload      bytea NOT NULL,
    reason       text NOT NULL CHECK (reason IN ('bad_topic', 'too_large', 'bad_json', 'bad_schema',
                                                 'unknown_device', 'type_mismatch', 'future_ts',
                                                 'internal_error')),
    detail       text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS dead_letters_received_brin ON dead_letters USING brin (received_at);
CREATE INDEX IF NOT EXISTS dead_letters_reason ON dead_letters (reason, received_at);

-- One row per device: what detectors read to decide "offline" (contract §1: 2.5 x heartbeat_s)
-- and "low battery" without scanning the time series.
CREATE TABLE IF NOT EXISTS device_last_seen (
    device_id       text PRIMARY KEY,
    last_seen_at    timestamptz NOT NULL,   -- platform receive time of the newest message
    last_ts         bigint,                 -- newest device ts seen, ms
    online          boolean,                -- from the newest status message
    status_at       timestamptz,            -- receive time of that status message
    heartbeat_s     integer,
    battery_pct     real,
    battery_ts      bigint                  -- device ts of that battery reading, ms
);
