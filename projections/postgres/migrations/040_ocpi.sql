-- OCPI: partner connections and the objects partners push or we pull (projections/postgres/ocpi_partners.py and
-- ocpi_objects.py, both fed by `ocpi.inbound`).  Every timestamp comes from the events, never from now().

-- One row per OCPI connection.  Tokens are not here: see ocpi_credentials_tokens.
CREATE TABLE ocpi_partners (
    partner_id          text PRIMARY KEY,
    name                text NOT NULL,
    state               text NOT NULL,          -- ONBOARDED | REGISTERED | DELETED
    plain_token         boolean NOT NULL DEFAULT false,
    their_versions_url  text,
    their_token_sealed  text,                   -- the token they issued us, AES-GCM sealed (edges/ocpi/credtokens.py)
    version             text,
    endpoints           jsonb NOT NULL DEFAULT '[]',
    roles               jsonb NOT NULL DEFAULT '[]',
    their_credentials   text,                   -- verbatim, token redacted
    registered_at       timestamptz,
    updated_at          timestamptz NOT NULL,
    last_event_id       text NOT NULL
);

-- The parties (role, country, party) each connection speaks for: who may push which objects, and who an
-- OCPI-to header may address.
CREATE TABLE ocpi_partner_roles (
    partner_id          text NOT NULL,
    role                text NOT NULL,
    country_code        text NOT NULL,
    party_id            text NOT NULL,
    name                text,
    PRIMARY KEY (partner_id, role, country_code, party_id)
);
CREATE INDEX ocpi_partner_roles_party ON ocpi_partner_roles (country_code, party_id);

-- Credentials tokens we issued, by hash only.  valid_until NULL: valid until the next exchange; an exchange sets
-- the partner's other open tokens to (its time + grace); a deletion to its time.
CREATE TABLE ocpi_credentials_tokens (
    token_hash          text PRIMARY KEY,
    partner_id          text NOT NULL,
    kind                text NOT NULL,          -- A: versions and credentials only; B, C: every module
    issued_at           timestamptz NOT NULL,
    valid_until         timestamptz
);
CREATE INDEX ocpi_credentials_tokens_partner ON ocpi_credentials_tokens (partner_id);

-- Objects partners own (their Locations, Sessions, CDRs, Tariffs; eMSPs' Tokens), one row per object with the
-- document exactly as served back.  Ids are stored upper-cased (OCPI ids are case-insensitive); the document
-- keeps the partner's spelling.
CREATE TABLE ocpi_locations (
    partner_id          text NOT NULL,
    country_code        text NOT NULL,
    party_id            text NOT NULL,
    id                  text NOT NULL,
    doc                 text NOT NULL,
    last_updated        timestamptz NOT NULL,
    publish             boolean,
    location            geography(Point, 4326),
    evse_count          integer NOT NULL DEFAULT 0,
    last_event_id       text NOT NULL,
    PRIMARY KEY (partner_id, country_code, party_id, id)
);
CREATE INDEX ocpi_locations_gist ON ocpi_locations USING gist (location);
CREATE INDEX ocpi_locations_updated ON ocpi_locations (last_updated, partner_id, country_code, party_id, id);

CREATE TABLE ocpi_sessions (
    partner_id          text NOT NULL,
    country_code        text NOT NULL,
    party_id            text NOT NULL,
    id                  text NOT NULL,
    doc                 text NOT NULL,
    last_updated        timestamptz NOT NULL,
    status              text,
    last_event_id       text NOT NULL,
    PRIMARY KEY (partner_id, country_code, party_id, id)
);
CREATE INDEX ocpi_sessions_updated ON ocpi_sessions (last_updated, partner_id, country_code, party_id, id);

CREATE TABLE ocpi_cdrs (
    partner_id          text NOT NULL,
    country_code        text NOT NULL,
    party_id            text NOT NULL,
    id                  text NOT NULL,
    doc                 text NOT NULL,
    last_updated        timestamptz NOT NULL,
    last_event_id       text NOT NULL,
    PRIMARY KEY (partner_id, country_code, party_id, id)
);
CREATE INDEX ocpi_cdrs_updated ON ocpi_cdrs (last_updated, partner_id, country_code, party_id, id);

CREATE TABLE ocpi_tariffs (
    partner_id          text NOT NULL,
    country_code        text NOT NULL,
    party_id            text NOT NULL,
    id                  text NOT NULL,
    doc                 text NOT NULL,
    last_updated        timestamptz NOT NULL,
    last_event_id       text NOT NULL,
    PRIMARY KEY (partner_id, country_code, party_id, id)
);
CREATE INDEX ocpi_tariffs_updated ON ocpi_tariffs (last_updated, partner_id, country_code, party_id, id);

-- Driver Tokens eMSPs push to us as a CPO (not credentials tokens).  A token is identified by uid AND type.
CREATE TABLE ocpi_tokens (
    partner_id          text NOT NULL,
    country_code        text NOT NULL,
    party_id            text NOT NULL,
    id                  text NOT NULL,          -- the token uid
    token_type          text NOT NULL,
    doc                 text NOT NULL,
    last_updated        timestamptz NOT NULL,
    valid               boolean,
    last_event_id       text NOT NULL,
    PRIMARY KEY (partner_id, country_code, party_id, id, token_type)
);
CREATE INDEX ocpi_tokens_uid ON ocpi_tokens (id, token_type);

-- The CPO Locations sender pages our own stations by last update (edges/ocpi/senders.py).
CREATE INDEX IF NOT EXISTS stations_updated_page ON stations (updated_at, station_id) WHERE own;
