-- Charging sessions as the `sessions` topic tells them (own stations from OCPP; roamed ones from OCPI), for the
-- driver and operator APIs.  Timestamps come from the events, never now(): a replay gives identical rows.
CREATE TABLE sessions (
    session_id           text PRIMARY KEY,
    charge_point_id      text NOT NULL,
    transaction_id       text,
    ocpp_version         text,
    evse_id              integer,
    connector_id         integer,
    id_token             text,
    id_token_type        text,
    authorization_status text,
    status               text NOT NULL,          -- ACTIVE | STOPPED
    started_at           timestamptz,
    stopped_at           timestamptz,
    meter_start_wh       double precision,
    meter_stop_wh        double precision,
    energy_wh            double precision NOT NULL DEFAULT 0,
    power_w              double precision,
    current_a            double precision,
    soc_percent          double precision,
    last_sample_at       timestamptz,
    stop_reason          text,
    baseline_inferred    boolean NOT NULL DEFAULT false,
    inferred_start       boolean NOT NULL DEFAULT false,
    samples              integer NOT NULL DEFAULT 0,
    updated_at           timestamptz NOT NULL,
    last_event_id        text NOT NULL
);
CREATE INDEX sessions_by_token ON sessions (id_token, started_at DESC);
CREATE INDEX sessions_by_charger ON sessions (charge_point_id, started_at DESC);
