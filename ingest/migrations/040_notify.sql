-- Family notifications: browser push subscriptions per account and device, signed webhooks
-- per family member or per care centre, preferences per person, and the delivery outbox.
-- The alert stream itself (alert_transitions, written in the transaction of every alert
-- change, ids in commit order per migration 030) is what the notifier reads; it plans the
-- deliveries of each event and moves its cursor in one transaction, so no event is planned
-- twice or skipped across a crash.

CREATE TABLE IF NOT EXISTS push_subscriptions (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    endpoint    text NOT NULL UNIQUE,   -- RFC 8030 push resource of one browser
    p256dh      text NOT NULL,          -- RFC 8291 user-agent public key, base64url
    auth        text NOT NULL,          -- RFC 8291 authentication secret, base64url
    user_agent  text NOT NULL DEFAULT '',
    created_ts  bigint NOT NULL         -- platform ms
);
CREATE INDEX IF NOT EXISTS push_subscriptions_user ON push_subscriptions (user_id);

CREATE TABLE IF NOT EXISTS notify_webhooks (
    id          bigserial PRIMARY KEY,
    user_id     bigint REFERENCES users (id) ON DELETE CASCADE,   -- a family member's, or
    center_id   text,                                             -- a care centre's
    channel     text NOT NULL DEFAULT 'message' CHECK (channel IN ('message', 'voice')),
    url         text NOT NULL,
    secret      text NOT NULL,          -- Standard Webhooks "whsec_" signing secret
    created_ts  bigint NOT NULL,
    CHECK ((user_id IS NULL) <> (center_id IS NULL))
);
CREATE INDEX IF NOT EXISTS notify_webhooks_user ON notify_webhooks (user_id);
CREATE INDEX IF NOT EXISTS notify_webhooks_center ON notify_webhooks (center_id);

CREATE TABLE IF NOT EXISTS notify_prefs (
    user_id     bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    kinds       text[] NOT NULL,        -- alert kinds wanted (critical ones always come)
    quiet_from  text,                   -- "HH:MM" local wall-clock time, or NULL
    quiet_to    text,
    time_zone   text NOT NULL DEFAULT 'Asia/Shanghai',
    updated_ts  bigint NOT NULL
);

-- One row per notification to one target; `delivery_key` collapses repeats of the same
-- alert state to the same target (one notification per alert state, not per tick).
CREATE TABLE IF NOT EXISTS notify_deliveries (
    id            bigserial PRIMARY KEY,
    delivery_key  text NOT NULL UNIQUE,
    alert_id      text NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    event_id      bigint NOT NULL,      -- the alert_transitions row that caused it
    state_key     text NOT NULL,        -- open, acknowledged, …, going:<username>
    user_id       bigint REFERENCES users (id) ON DELETE CASCADE,
    center_id     text,
    channel       text NOT NULL CHECK (channel IN ('push', 'webhook', 'voice')),
    target_id     bigint NOT NULL,      -- push_subscriptions.id or notify_webhooks.id
    urgent        boolean NOT NULL,
    payload       jsonb NOT NULL,
    receipt_token text NOT NULL,        -- lets the service worker report delivered/read
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'sent', 'delivered', 'read', 'failed', 'skipped')),
    attempts      integer NOT NULL DEFAULT 0,
    created_ts    bigint NOT NULL,
    due_ts        bigint NOT NULL,      -- next attempt; a claim pushes it out by the lease
    sent_ts       bigint,
    delivered_ts  bigint,
    read_ts       bigint,
    failed_ts     bigint,
    last_error    text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS notify_deliveries_due ON notify_deliveries (due_ts)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS notify_deliveries_alert ON notify_deliveries (alert_id, id);
CREATE INDEX IF NOT EXISTS notify_deliveries_failed ON notify_deliveries (failed_ts)
    WHERE status = 'failed';

CREATE TABLE IF NOT EXISTS notify_attempts (
    id           bigserial PRIMARY KEY,
    delivery_id  bigint NOT NULL REFERENCES notify_deliveries (id) ON DELETE CASCADE,
    at_ts        bigint NOT NULL,
    status_code  integer,               -- HTTP status, NULL when no answer
    outcome      text NOT NULL,         -- sent, retry, gone, failed, skipped
    error        text NOT NULL DEFAULT '',
    duration_ms  integer NOT NULL
);
CREATE INDEX IF NOT EXISTS notify_attempts_delivery ON notify_attempts (delivery_id, id);

-- The notifier's position in alert_transitions; starts at the head when first created.
CREATE TABLE IF NOT EXISTS notify_cursor (
    name      text PRIMARY KEY,
    event_id  bigint NOT NULL
);
