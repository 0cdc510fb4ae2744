-- OCPI HubClientInfo (OCPI 2.2.1 §19): the parties a hub connection reports, and whether each can be reached
-- (projections/postgres/ocpi_objects.py; one row per party per connection, id '-').
CREATE TABLE ocpi_hub_clients (
    partner_id          text NOT NULL,
    country_code        text NOT NULL,
    party_id            text NOT NULL,
    id                  text NOT NULL,
    doc                 text NOT NULL,
    last_updated        timestamptz NOT NULL,
    last_event_id       text NOT NULL,
    role                text,
    status              text,
    PRIMARY KEY (partner_id, country_code, party_id, id)
);

-- The CPO Sessions and CDRs senders list a connection's objects by its drivers' tokens.
CREATE INDEX IF NOT EXISTS ocpi_tokens_partner_uid ON ocpi_tokens (partner_id, id);
