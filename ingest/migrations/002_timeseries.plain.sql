-- Device time series on plain PostgreSQL: tables partitioned by week on `time` (partitions are
-- created by the writer through ensure_week_partitions), BRIN indexes for time-range scans.
CREATE TABLE IF NOT EXISTS smoke_telemetry (
    time         timestamptz NOT NULL,
    device_id    text NOT NULL,
    seq          bigint NOT NULL,
    battery_pct  real,
    smoke_db_m   real NOT NULL,
    temp_c       real NOT NULL,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (device_id, time, seq)
) PARTITION BY RANGE (time);
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
) PARTITION BY RANGE (time);
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
) PARTITION BY RANGE (time);
CREATE TABLE IF NOT EXISTS device_events (
    time         timestamptz NOT NULL,
    device_id    text NOT NULL,
    seq          bigint NOT NULL,
    type         text NOT NULL,
    event        text NOT NULL,
    battery_pct  real,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (device_id, time, seq)
) PARTITION BY RANGE (time);
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
) PARTITION BY RANGE (time);

-- BRIN: rows arrive roughly in time order, so block ranges summarise `time` in a few pages.
CREATE INDEX IF NOT EXISTS smoke_telemetry_time_brin ON smoke_telemetry USING brin (time);
CREATE INDEX IF NOT EXISTS band_telemetry_time_brin ON band_telemetry USING brin (time);
CREATE INDEX IF NOT EXISTS cane_telemetry_time_brin ON cane_telemetry USING brin (time);
CREATE INDEX IF NOT EXISTS device_events_time_brin ON device_events USING brin (time);
CREATE INDEX IF NOT EXISTS device_status_time_brin ON device_status USING brin (time);

-- Create the weekly partitions (Monday 00:00 UTC) of `parent` holding each of `times`.
-- Several writers may call it at once: an advisory lock per partition name serialises them.
CREATE OR REPLACE FUNCTION ensure_week_partitions(parent regclass, times timestamptz[])
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
    nsp text;
    rel text;
    t timestamptz;
    week_start timestamptz;
    part text;
    made integer := 0;
BEGIN
    SELECT n.nspname, c.relname INTO nsp, rel
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = parent;
    FOREACH t IN ARRAY times LOOP
        week_start := date_trunc('week', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
        part := rel || '_p' || to_char(week_start AT TIME ZONE 'UTC', 'YYYYMMDD');
        PERFORM pg_advisory_xact_lock(hashtext(nsp || '.' || part));
        IF to_regclass(format('%I.%I', nsp, part)) IS NULL THEN
            EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
                           nsp, part, nsp, rel, week_start, week_start + INTERVAL '7 days');
            made := made + 1;
        END IF;
    END LOOP;
    RETURN made;
END
$fn$;
