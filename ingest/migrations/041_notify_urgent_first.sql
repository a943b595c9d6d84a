-- Under a burst the sender claims urgent notifications (SOS, falls, smoke, anything critical)
-- before the rest, each group in due order.
CREATE INDEX IF NOT EXISTS notify_deliveries_urgent_due
    ON notify_deliveries (urgent DESC, due_ts, id) WHERE status = 'pending';
