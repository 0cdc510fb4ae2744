-- Priced CDRs and the billing review queue (from `billing`), for drivers' history, fleet reports and operators.
-- Money is numeric (exact), copied from the events' decimal strings.
CREATE TABLE cdrs (
    session_id         text PRIMARY KEY,
    cdr_id             text NOT NULL,
    account_id         text NOT NULL,
    fleet_id           text,
    cost_centre        text,
    origin             text NOT NULL,
    currency           text NOT NULL,
    tariff_id          text,
    total_cost_excl_vat numeric NOT NULL,
    total_cost_incl_vat numeric,
    total_energy_kwh   numeric NOT NULL,
    total_time_hours   numeric NOT NULL,
    cdr                jsonb NOT NULL,
    priced_at          timestamptz NOT NULL,
    event_id           text NOT NULL
);
CREATE INDEX cdrs_by_account ON cdrs (account_id, priced_at DESC);

CREATE TABLE billing_reviews (
    event_id         text PRIMARY KEY,
    subject          text NOT NULL,
    session_id       text,
    account_id       text,
    reasons          jsonb NOT NULL,
    payload          text NOT NULL,
    payload_type     text NOT NULL,
    source_event_id  text NOT NULL,
    queued_at        timestamptz NOT NULL
);
CREATE INDEX billing_reviews_by_time ON billing_reviews (queued_at DESC);
