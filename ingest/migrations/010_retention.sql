-- Retention in both storage modes. TimescaleDB drops old chunks with its own policies (002);
-- plain PostgreSQL drops whole weekly partitions whose upper bound lies before the cut-off
-- (`eldercare db retention`, run daily), which frees the space at once, unlike DELETE + VACUUM.
-- Kept days per table; the time series match the TimescaleDB policies of 002 (cane windows
-- are raw accelerometer data, 30 days; the rest a year). Dead letters and misdated messages
-- are diagnostic material: 30 days, deleted by receive time.
CREATE TABLE IF NOT EXISTS retention_settings (
    table_name  text PRIMARY KEY,
    keep_days   integer NOT NULL CHECK (keep_days > 0)
);
INSERT INTO retention_settings VALUES
    ('cane_telemetry', 30),
    ('band_telemetry', 365),
    ('smoke_telemetry', 365),
    ('device_events', 365),
    ('device_status', 365),
    ('dead_letters', 30),
    ('misdated_messages', 30)
ON CONFLICT (table_name) DO NOTHING;

-- Drop the partitions of `parent` that hold only rows before `cutoff`; returns their names.
-- A partition's upper bound is read from its catalog bound, not from its name.
CREATE OR REPLACE FUNCTION drop_partitions_before(parent regclass, cutoff timestamptz)
RETURNS SETOF text LANGUAGE plpgsql AS $fn$
DECLARE
    part record;
    upper_bound timestamptz;
BEGIN
    FOR part IN
        SELECT c.oid::regclass AS rel, c.relname::text AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = parent
    LOOP
        CONTINUE WHEN part.bound NOT LIKE 'FOR VALUES FROM (%) TO (%)';
        upper_bound := substring(part.bound FROM 'TO \(''([^'']+)''\)')::timestamptz;
        IF upper_bound <= cutoff THEN
            EXECUTE format('DROP TABLE %s', part.rel);
            RETURN NEXT part.name;
        END IF;
    END LOOP;
END
$fn$;
