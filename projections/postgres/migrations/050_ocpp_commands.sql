-- Commands sent to chargers and what became of them (from ocpp.commands).  The first result of a command wins;
-- later ones (which the edge's claim makes rare) are kept in result_count for operators to notice.
CREATE TABLE ocpp_commands (
    command_id        text PRIMARY KEY,
    charge_point_id   text NOT NULL,
    action            text NOT NULL,
    payload           jsonb NOT NULL,
    ocpp_version      text,
    requested_by      text NOT NULL,
    requested_at      timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    outcome           text,
    result            jsonb,
    error_code        text,
    error_description text,
    message_id        text,
    edge_instance     text,
    resolved_at       timestamptz,
    result_count      integer NOT NULL DEFAULT 0,
    request_event_id  text NOT NULL
);
CREATE INDEX ocpp_commands_by_charger ON ocpp_commands (charge_point_id, requested_at DESC);
