-- Fleets as the `identity` topic describes them (projections/postgres/fleets.py): companies' fleets, their
-- members (drivers, with the cost centre their sessions are booked to) and charging policies (monthly budget,
-- allowed stations and networks).  Every timestamp comes from the events, never from now(): a replay into empty
-- tables gives identical rows.  The OCPP edge reads these tables at authorization time
-- (edges/ocpp/authorization.py); the API reads them for management and reports (edges/api/fleets.py).

CREATE TABLE fleets (
    fleet_id            text PRIMARY KEY,
    name                text NOT NULL,
    company             text NOT NULL,
    manager_account_id  text NOT NULL,
    currency            text NOT NULL,
    time_zone           text NOT NULL,
    created_by          text NOT NULL,
    created_at          timestamptz NOT NULL,
    created_event_id    text NOT NULL            -- which creation won (the API compares it with its own)
);
CREATE INDEX fleets_by_manager ON fleets (manager_account_id);

-- membership history: a driver who leaves and rejoins has one row per stay (left_at NULL: a member now)
CREATE TABLE fleet_members (
    fleet_id     text NOT NULL REFERENCES fleets (fleet_id),
    account_id   text NOT NULL,
    cost_centre  text,
    joined_at    timestamptz NOT NULL,
    left_at      timestamptz,
    joined_event_id text NOT NULL,
    PRIMARY KEY (fleet_id, account_id, joined_at)
);
CREATE UNIQUE INDEX fleet_members_current ON fleet_members (fleet_id, account_id) WHERE left_at IS NULL;
CREATE INDEX fleet_members_by_account ON fleet_members (account_id) WHERE left_at IS NULL;

-- the policy of a fleet (account_id '') or of one member (replaces the fleet's policy as a whole for that member)
CREATE TABLE fleet_policies (
    fleet_id             text NOT NULL REFERENCES fleets (fleet_id),
    account_id           text NOT NULL,
    monthly_budget       numeric CHECK (monthly_budget IS NULL OR monthly_budget >= 0),
    allowed_station_ids  text[],
    allowed_networks     text[],
    set_by               text NOT NULL,
    set_at               timestamptz NOT NULL,
    PRIMARY KEY (fleet_id, account_id)
);

-- A member's spend in a month is summed at read time from priced CDRs (cdrs, 070_billing.sql: indexed by
-- account), by the CDR's end time in the fleet's time zone: the month a CDR belongs to never changes, and
-- "this month" is a question of the clock, which a projection must not ask.
