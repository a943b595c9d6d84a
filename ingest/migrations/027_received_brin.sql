-- Services resuming after a restart read back what was received in the last hour(s)
-- (alerting's catch-up and warm-up). Rows arrive in receive order, so a BRIN index on
-- received_at is a few pages per partition and turns those reads into range scans.
CREATE INDEX IF NOT EXISTS smoke_telemetry_received_brin ON smoke_telemetry USING brin (received_at);
CREATE INDEX IF NOT EXISTS band_telemetry_received_brin ON band_telemetry USING brin (received_at);
CREATE INDEX IF NOT EXISTS cane_telemetry_received_brin ON cane_telemetry USING brin (received_at);
CREATE INDEX IF NOT EXISTS device_events_received_brin ON device_events USING brin (received_at);
CREATE INDEX IF NOT EXISTS device_status_received_brin ON device_status USING brin (received_at);
