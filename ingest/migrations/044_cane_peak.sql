-- Each cane window's largest sample magnitude, sqrt(x² + y² + z²) in g, written by ingest
-- (`ingest.db`), so alerting can find the stored impacts of a long outage without reading every
-- window (`readback.cane_impacts`): the fall detector's candidate level is one sample at or above
-- 1.6 g (alerting.fall_features.IMPACT_G); the index keeps windows from 1.5 g, a margin for
-- float4 rounding. NULL: stored before this column existed (not replayed).
ALTER TABLE cane_telemetry ADD COLUMN IF NOT EXISTS peak_g real;
CREATE INDEX IF NOT EXISTS cane_telemetry_impacts ON cane_telemetry (received_at)
    WHERE peak_g >= 1.5::real;

-- How far each alerting partition set has handled live traffic (platform ms of receipt), so a
-- restart replays stored cane windows only from where the previous run stopped.
CREATE TABLE IF NOT EXISTS alerting_progress (
    partition   text PRIMARY KEY,     -- 'whole', or 'k/N' for partition k of N
    through_ms  bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
