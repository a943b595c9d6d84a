-- Alerts of contract §2 and the full history of their transitions.
CREATE TABLE IF NOT EXISTS alerts (
    alert_id      text PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('sos', 'fall', 'wandering', 'smoke', 'inactivity',
                                                'device_offline', 'low_battery', 'anomaly')),
    severity      text NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low')),
    status        text NOT NULL CHECK (status IN ('open', 'acknowledged', 'escalated',
                                                  'resolved', 'cancelled')),
    elder_id      text NOT NULL,
    device_id     text NOT NULL,
    center_id     text NOT NULL,
    distance_m    double precision NOT NULL,
    in_coverage   boolean NOT NULL,
    over_capacity boolean NOT NULL DEFAULT false,
    lat           double precision NOT NULL,
    lon           double precision NOT NULL,
    event_ts      bigint NOT NULL,   -- device clock, ms (contract §2)
    raised_ts     bigint NOT NULL,   -- platform clock, ms
    updated_ts    bigint NOT NULL,
    acked_ts      bigint,            -- first acknowledgement, for answer-time KPIs
    closed_ts     bigint,            -- resolved or cancelled
    escalations   integer NOT NULL DEFAULT 0,
    reason        text NOT NULL DEFAULT ''
);
-- One active alert per elder and kind (issue "alert lifecycle").
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_active
    ON alerts (elder_id, kind) WHERE status IN ('open', 'acknowledged', 'escalated');
CREATE INDEX IF NOT EXISTS alerts_center_status ON alerts (center_id, status);
CREATE INDEX IF NOT EXISTS alerts_raised ON alerts (raised_ts);

CREATE TABLE IF NOT EXISTS alert_transitions (
    id           bigserial PRIMARY KEY,
    alert_id     text NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    at_ts        bigint NOT NULL,       -- platform clock, ms
    from_status  text,                  -- NULL for the raise itself
    to_status    text NOT NULL,
    center_id    text NOT NULL,         -- the centre responsible after the transition
    actor        text NOT NULL,         -- 'system', a dispatcher id, or a device id
    note         text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS alert_transitions_alert ON alert_transitions (alert_id, at_ts);
