-- Accounts and what hangs off them, as the `identity` topic describes them (projections/postgres/identity.py).
-- Every timestamp comes from the events, never from now(): a replay into empty tables gives identical rows.
-- The id_tokens table the OCPP edge authorises from is created by 010_id_tokens.sql; this projection writes the
-- rows of account-issued tokens there as well as its own detail table below.

CREATE TABLE accounts (
    account_id           text PRIMARY KEY,              -- derived from the normalised email (edges/api/identity.py)
    email                text NOT NULL,
    password_hash        text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    display_name         text,
    phone                text,
    locale               text,
    roles                text[] NOT NULL,
    contract_id          text NOT NULL,                 -- the account's eMAID
    registered_at        timestamptz NOT NULL,
    registered_event_id  text NOT NULL,                 -- which registration won (the API compares it with its own)
    password_changed_at  timestamptz,
    updated_at           timestamptz NOT NULL
);
-- one account per email, case-insensitively (emails are ASCII, so lower() is unambiguous)
CREATE UNIQUE INDEX accounts_email_lower ON accounts (lower(email));
CREATE UNIQUE INDEX accounts_registered_event ON accounts (registered_event_id);

CREATE TABLE vehicles (
    account_id       text NOT NULL,
    vehicle_id       text NOT NULL,
    make             text NOT NULL,
    model            text NOT NULL,
    year             integer,
    battery_kwh      double precision NOT NULL,
    max_ac_kw        double precision,
    max_dc_kw        double precision,
    connector_types  text[] NOT NULL,
    nickname         text,
    added_at         timestamptz NOT NULL,
    PRIMARY KEY (account_id, vehicle_id)
);

CREATE TABLE favourites (
    account_id  text NOT NULL,
    station_id  text NOT NULL,
    added_at    timestamptz NOT NULL,
    PRIMARY KEY (account_id, station_id)
);

-- references to payment methods held by the payment provider (tokenised ids); never card data
CREATE TABLE payment_methods (
    account_id         text NOT NULL,
    payment_method_id  text NOT NULL,
    provider           text NOT NULL,
    label              text,
    added_at           timestamptz NOT NULL,
    PRIMARY KEY (account_id, payment_method_id)
);

-- id tokens issued to accounts, with what only the account holder sees (label); the authorisation view of the
-- same tokens is id_tokens (010_id_tokens.sql).  A uid belongs to the first account that claimed it.
CREATE TABLE account_id_tokens (
    uid          text PRIMARY KEY,
    account_id   text NOT NULL,
    token_type   text NOT NULL,
    contract_id  text NOT NULL,
    label        text,
    status       text NOT NULL CHECK (status IN ('Accepted', 'Blocked')),
    valid_until  timestamptz,
    issued_at    timestamptz NOT NULL,
    blocked_at   timestamptz,
    block_reason text
);
CREATE INDEX account_id_tokens_account ON account_id_tokens (account_id);
