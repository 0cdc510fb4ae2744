-- Forecasts (projections/postgres/forecasts.py reads `forecasts`): the latest 24-hour occupancy forecast per
-- station, the forecast made at each session's start, and suspected charger faults.  Timestamps come from the
-- events.  `forecast_checkpoints` is the forecasts processor's own state (its models and the log offsets they
-- reflect, streams/forecasts_service/processor.py), not a projection.

CREATE TABLE station_forecasts (
    station_id     text PRIMARY KEY,
    event_id       text NOT NULL,
    as_of          timestamptz NOT NULL,
    time_zone      text NOT NULL,
    connectors     integer NOT NULL,
    occupied_now   integer NOT NULL,
    hours_learned  integer NOT NULL,
    hours          jsonb NOT NULL              -- [{starts_at, expected_occupied}] for the next 24 hours
);

CREATE TABLE session_forecasts (
    session_id            text PRIMARY KEY,
    station_id            text NOT NULL,
    started_at            timestamptz NOT NULL,
    predicted_kwh         double precision NOT NULL,
    predicted_duration_h  double precision NOT NULL,
    expected_unplug_at    timestamptz NOT NULL,
    user_sessions_seen    integer NOT NULL,
    model                 text NOT NULL,
    event_id              text NOT NULL
);

CREATE TABLE charger_faults (
    station_id  text NOT NULL,
    kind        text NOT NULL,
    at          timestamptz NOT NULL,
    detail      text NOT NULL,
    session_id  text,
    event_id    text NOT NULL,
    PRIMARY KEY (station_id, kind, at)
);

CREATE TABLE forecast_checkpoints (
    processor  text PRIMARY KEY,
    data       bytea NOT NULL,                 -- streams/forecasting/checkpoint.py format (only ever written by us)
    offsets    jsonb NOT NULL,                 -- "topic/partition" -> next offset the models reflect
    saved_at   timestamptz NOT NULL
);
