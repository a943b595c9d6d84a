-- The same hourly aggregates as the TimescaleDB continuous aggregates, as ordinary views.
CREATE OR REPLACE VIEW band_hourly AS
SELECT date_trunc('hour', time) AS bucket, device_id,
       count(*) AS fixes, coalesce(sum(steps), 0) AS steps, avg(hr_bpm)::real AS hr_bpm_avg,
       count(*) FILTER (WHERE worn) AS worn_fixes, min(battery_pct) AS battery_min
FROM band_telemetry GROUP BY 1, 2;

CREATE OR REPLACE VIEW cane_hourly AS
SELECT date_trunc('hour', time) AS bucket, device_id,
       count(*) AS windows, sum(cardinality(accel_g) / 3) AS samples,
       min(battery_pct) AS battery_min
FROM cane_telemetry GROUP BY 1, 2;

CREATE OR REPLACE VIEW smoke_hourly AS
SELECT date_trunc('hour', time) AS bucket, device_id,
       count(*) AS readings, max(smoke_db_m) AS smoke_db_m_max, max(temp_c) AS temp_c_max,
       min(battery_pct) AS battery_min
FROM smoke_telemetry GROUP BY 1, 2;

CREATE OR REPLACE VIEW event_hourly AS
SELECT date_trunc('hour', time) AS bucket, device_id, event, count(*) AS events
FROM device_events GROUP BY 1, 2, 3;
