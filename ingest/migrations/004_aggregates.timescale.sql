-- Hourly continuous aggregates read by the dashboard and the inactivity/anomaly detectors.
-- materialized_only = false: queries add the not-yet-materialised recent rows (real-time aggregates).
CREATE MATERIALIZED VIEW IF NOT EXISTS band_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', time) AS bucket, device_id,
       count(*) AS fixes, coalesce(sum(steps), 0) AS steps, avg(hr_bpm)::real AS hr_bpm_avg,
       count(*) FILTER (WHERE worn) AS worn_fixes, min(battery_pct) AS battery_min
FROM band_telemetry GROUP BY 1, 2 WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS cane_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', time) AS bucket, device_id,
       count(*) AS windows, sum(cardinality(accel_g) / 3) AS samples,
       min(battery_pct) AS battery_min
FROM cane_telemetry GROUP BY 1, 2 WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS smoke_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', time) AS bucket, device_id,
       count(*) AS readings, max(smoke_db_m) AS smoke_db_m_max, max(temp_c) AS temp_c_max,
       min(battery_pct) AS battery_min
FROM smoke_telemetry GROUP BY 1, 2 WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS event_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', time) AS bucket, device_id, event, count(*) AS events
FROM device_events GROUP BY 1, 2, 3 WITH NO DATA;

-- Refresh the last three days every 15 minutes; older late data is picked up by real-time queries
-- until the next refresh window covers it.
SELECT add_continuous_aggregate_policy('band_hourly', start_offset => INTERVAL '3 days',
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '15 minutes', if_not_exists => true);
SELECT add_continuous_aggregate_policy('cane_hourly', start_offset => INTERVAL '3 days',
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '15 minutes', if_not_exists => true);
SELECT add_continuous_aggregate_policy('smoke_hourly', start_offset => INTERVAL '3 days',
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '15 minutes', if_not_exists => true);
SELECT add_continuous_aggregate_policy('event_hourly', start_offset => INTERVAL '3 days',
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '15 minutes', if_not_exists => true);
