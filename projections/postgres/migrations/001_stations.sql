-- Stations and connectors as the `stations` topic describes them; the geography column with its GiST index is
-- what `near=` searches use.  Every timestamp comes from the events, never from now(): a replay into empty
-- tables must give byte-identical rows.
CREATE TABLE stations (
    station_id          text PRIMARY KEY,
    name                text,
    operator            text,
    address             text,
    own                 boolean,
    location            geography(Point, 4326),
    vendor              text,
    model               text,
    serial_number       text,
    firmware_version    text,
    boot_status         text,
    heartbeat_interval  integer,
    booted_at           timestamptz,
    last_heartbeat_at   timestamptz,
    online              boolean NOT NULL DEFAULT false,
    edge_instance       text,
    updated_at          timestamptz NOT NULL,
    last_event_id       text NOT NULL
);
CREATE INDEX stations_location_gist ON stations USING gist (location);

CREATE TABLE connectors (
    station_id          text NOT NULL,
    connector_id        integer NOT NULL,
    standard            text,
    max_power_kw        double precision,
    status              text,
    error_code          text,
    info                text,
    vendor_error_code   text,
    status_at           timestamptz,
    PRIMARY KEY (station_id, connector_id)
);

-- The OCPP edge's view of who may connect: read at the WebSocket handshake.  Hashes only (argon2id).
CREATE TABLE charge_point_credentials (
    station_id          text PRIMARY KEY,
    password_hash       text,
    security_profile    integer NOT NULL
);
