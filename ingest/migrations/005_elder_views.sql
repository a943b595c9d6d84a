-- Per-elder hourly activity (dashboard, inactivity detector), over the hourly aggregates of 004.
CREATE OR REPLACE VIEW elder_activity_hourly AS
SELECT a.bucket, d.elder_id,
       sum(a.steps)::bigint AS steps, sum(a.band_fixes)::bigint AS band_fixes,
       sum(a.cane_windows)::bigint AS cane_windows, sum(a.events)::bigint AS events
FROM (
    SELECT bucket, device_id, steps, fixes AS band_fixes, 0::bigint AS cane_windows, 0::bigint AS events
      FROM band_hourly
    UNION ALL
    SELECT bucket, device_id, 0, 0, windows, 0 FROM cane_hourly
    UNION ALL
    SELECT bucket, device_id, 0, 0, 0, events FROM event_hourly
) AS a
JOIN devices AS d ON d.id = a.device_id
GROUP BY a.bucket, d.elder_id;

-- Per-device liveness and battery joined to the registry (detectors of offline and low battery).
CREATE OR REPLACE VIEW device_health AS
SELECT d.id AS device_id, d.type, d.elder_id, d.heartbeat_s AS registered_heartbeat_s,
       s.last_seen_at, s.last_ts, s.online, s.status_at, s.heartbeat_s, s.battery_pct, s.battery_ts
FROM devices AS d LEFT JOIN device_last_seen AS s ON s.device_id = d.id;
