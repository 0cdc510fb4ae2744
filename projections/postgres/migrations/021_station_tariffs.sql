-- The tariffs of our own stations over time (StationTariffSet on `stations`): billing prices a session with the
-- tariff in effect at its start, so a tariff change never reprices a session already running.
CREATE TABLE station_tariffs (
    station_id  text NOT NULL,
    valid_from  timestamptz NOT NULL,
    tariff_id   text NOT NULL,
    tariff      jsonb NOT NULL,
    currency    text NOT NULL,
    time_zone   text NOT NULL,
    set_by      text NOT NULL,
    event_id    text NOT NULL,
    PRIMARY KEY (station_id, valid_from)
);
