-- Smart charging as the `sites` and `smartcharging` topics describe it (projections/postgres/smartcharging.py):
-- site definitions and which connectors they power, drivers' charging needs, price signals, and the latest plan
-- per site and per session.  Timestamps come from the events (a replay gives identical rows).  The API reads
-- these tables (edges/api/smartcharging.py); decisions are the smartcharging processor's (its own state is in
-- processor_state).

CREATE TABLE sc_sites (
    site_id           text PRIMARY KEY,
    version           text NOT NULL,           -- event_id of the SiteDefined in force
    name              text NOT NULL,
    fleet_id          text,
    owner_account_id  text NOT NULL,
    time_zone         text NOT NULL,
    definition        jsonb NOT NULL,          -- the SiteDefined payload (limits, connectors, defaults)
    defined_by        text NOT NULL,
    defined_at        timestamptz NOT NULL
);
CREATE INDEX sc_sites_by_owner ON sc_sites (owner_account_id);
CREATE INDEX sc_sites_by_fleet ON sc_sites (fleet_id);

-- a connector belongs to at most one site: the first site that claims it keeps it
CREATE TABLE sc_site_connectors (
    charge_point_id  text NOT NULL,
    connector_id     integer NOT NULL,
    site_id          text NOT NULL REFERENCES sc_sites (site_id),
    node_id          text NOT NULL,
    max_kw           double precision NOT NULL,
    PRIMARY KEY (charge_point_id, connector_id)
);
CREATE INDEX sc_site_connectors_by_site ON sc_site_connectors (site_id);

CREATE TABLE sc_needs (
    session_id          text PRIMARY KEY,
    site_id             text NOT NULL,
    departure_at        timestamptz,
    energy_kwh          double precision,
    mode                text NOT NULL,
    target_soc_percent  double precision,
    battery_kwh         double precision,
    soc_percent         double precision,
    set_by              text NOT NULL,
    set_at              timestamptz NOT NULL,
    event_id            text NOT NULL
);

CREATE TABLE sc_prices (
    site_id    text PRIMARY KEY,
    currency   text NOT NULL,
    points     jsonb NOT NULL,                 -- [{starts_at, price_per_kwh (decimal string), carbon_g_per_kwh}]
    set_by     text NOT NULL,
    set_at     timestamptz NOT NULL
);

CREATE TABLE sc_schedules (
    site_id       text PRIMARY KEY,
    event_id      text NOT NULL,
    computed_at   timestamptz NOT NULL,
    plan_start    timestamptz NOT NULL,
    slot_seconds  integer NOT NULL,
    trigger       text NOT NULL,
    site_peak_kw  double precision NOT NULL,
    infeasible    boolean NOT NULL,
    issues        jsonb NOT NULL,
    objectives    jsonb NOT NULL
);

CREATE TABLE sc_session_plans (
    session_id       text PRIMARY KEY,
    site_id          text NOT NULL,
    event_id         text NOT NULL,
    charge_point_id  text NOT NULL,
    connector_id     integer NOT NULL,
    plan_start       timestamptz NOT NULL,
    slot_seconds     integer NOT NULL,
    power_kw         jsonb NOT NULL,
    requested_kwh    double precision NOT NULL,
    delivered_kwh    double precision NOT NULL,
    planned_kwh      double precision NOT NULL,
    departure_at     timestamptz NOT NULL,
    need_source      text NOT NULL,
    command_id       text,
    computed_at      timestamptz NOT NULL
);
CREATE INDEX sc_session_plans_by_site ON sc_session_plans (site_id);
