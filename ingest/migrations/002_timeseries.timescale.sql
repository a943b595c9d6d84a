-- Device time series as TimescaleDB hypertables (typed columns; cane windows as a flat real[]).
-- Chunk intervals: a district of ~10^4 devices writes ~10^7 cane windows a day while canes move,
-- so cane chunks are one day and the lighter series one week (TimescaleDB guidance: recent chunks
-- of all hypertables should fit in ~25 % of memory).
CREATE TABLE IF NOT EXISTS smoke_telemetry (
    time         timestamptz NOT NULL,
    device_id    text NOT NULL,
    seq          bigint NOT NULL,
    battery_pct  real,
    smoke_db_m   real NOT NULL,
    temp_c       real NOT NULL,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (device_id, time, seq)
);
CREATE TABLE IF NOT EXISTS band_telemetry (
    time         timestamptz NOT NULL,
    device_id    text NOT NULL,
    seq          bigint NOT NULL,
    battery_pct  real,
    lat          double precision NOT NULL,
    lon          double precision NOT NULL,
    hacc_m       real NOT NULL,
    hr_bpm       integer,
    steps        integer,
    worn         boolean,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (device_id, time, seq)
);
CREATE TABLE IF NOT EXISTS cane_telemetry (
    time         timestamptz NOT NULL,
    device_id    text NOT NULL,
    seq          bigint NOT NULL,
    battery_pct  real,
    rate_hz      smallint NOT NULL,
    accel_g      real[] NOT NULL,   -- x0, y0, z0, x1, ... oldest first, last sample at `time`
    lat          double precision,
    lon          double precision,
    hacc_m       real,
    hr_bpm       integer,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (device_id, time, seq)
);
CREATE TABLE IF NOT EXISTS device_events (
    time         timestamptz NOT NULL,
    device_id    text NOT NULL,
    seq          bigint NOT NULL,
    type         text NOT NULL,
    event        text NOT NULL,
    battery_pct  real,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (device_id, time, seq)
);
-- Status history; `time` is the device ts, or the receive time for a Last Will (which has none).
CREATE TABLE IF NOT EXISTS device_status (
    time         timestamptz NOT NULL,
    device_id    text NOT NULL,
    online       boolean NOT NULL,
    has_ts       boolean NOT NULL,
    heartbeat_s  integer,
    battery_pct  real,
    rssi_dbm     real,
    fw           text,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (device_id, time, online)
);

SELECT create_hypertable('cane_telemetry', by_range('time', INTERVAL '1 day'), if_not_exists => true);
SELECT create_hypertable('band_telemetry', by_range('time', INTERVAL '7 days'), if_not_exists => true);
SELECT create_hypertable('smoke_telemetry', by_range('time', INTERVAL '7 days'), if_not_exists => true);
SELECT create_hypertable('device_events', by_range('time', INTERVAL '7 days'), if_not_exists => true);
SELECT create_hypertable('device_status', by_range('time', INTERVAL '7 days'), if_not_exists => true);

-- Compression segmented by device: every read is "one device over a time range".
ALTER TABLE cane_telemetry SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id',
                                timescaledb.compress_orderby = 'time DESC, seq DESC');
ALTER TABLE band_telemetry SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id',
                                timescaledb.compress_orderby = 'time DESC, seq DESC');
ALTER TABLE smoke_telemetry SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id',
                                 timescaledb.compress_orderby = 'time DESC, seq DESC');
ALTER TABLE device_events SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id',
                               timescaledb.compress_orderby = 'time DESC, seq DESC');
ALTER TABLE device_status SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id',
                               timescaledb.compress_orderby = 'time DESC');
-- Gateways replay buffers of at most a few days, so chunks older than that are closed.
SELECT add_compression_policy('cane_telemetry', INTERVAL '2 days', if_not_exists => true);
SELECT add_compression_policy('band_telemetry', INTERVAL '14 days', if_not_exists => true);
SELECT add_compression_policy('smoke_telemetry', INTERVAL '14 days', if_not_exists => true);
SELECT add_compression_policy('device_events', INTERVAL '14 days', if_not_exists => true);
SELECT add_compression_policy('device_status', INTERVAL '14 days', if_not_exists => true);
-- Raw accelerometer windows are only needed to review recent falls; the rest is kept a year.
SELECT add_retention_policy('cane_telemetry', INTERVAL '30 days', if_not_exists => true);
SELECT add_retention_policy('band_telemetry', INTERVAL '365 days', if_not_exists => true);
SELECT add_retention_policy('smoke_telemetry', INTERVAL '365 days', if_not_exists => true);
SELECT add_retention_policy('device_events', INTERVAL '365 days', if_not_exists => true);
SELECT add_retention_policy('device_status', INTERVAL '365 days', if_not_exists => true);
