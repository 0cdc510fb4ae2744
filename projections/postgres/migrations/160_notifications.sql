-- Notifications of drivers and what became of them (the `notifications` topic), for GET /api/me/notifications
-- and for the sender worker's duplicate check.  Timestamps come from the events.
CREATE TABLE notifications (
    notification_id  text PRIMARY KEY,
    account_id       text NOT NULL,
    kind             text NOT NULL,
    station_id       text NOT NULL,
    session_id       text,
    connector_id     integer,
    data             jsonb NOT NULL,
    requested_at     timestamptz NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    channel          text,
    error            text,
    outcome_at       timestamptz
);
CREATE INDEX notifications_by_account ON notifications (account_id, requested_at DESC);
