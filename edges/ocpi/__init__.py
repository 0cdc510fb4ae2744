"""The OCPI 2.2.1 edge (`cv run ocpi`): roaming with CPOs, eMSPs and hubs over OCPI.

Thin like every edge (DESIGN.md §1): it authenticates the partner's credentials token, validates, publishes what
the partner sent verbatim to `ocpi.inbound`, and answers from the OCPI projections (projections/postgres/ocpi_*.py).
Partner state (onboarding, credentials exchanges, re-rolls, deletion) is event-sourced on `ocpi.inbound` keyed by
partner id; pushed and pulled objects are events keyed by partner + object id.

Layout: pure parts (no I/O, unit-tested) - `status` (envelope, status codes), `secrets` (token generation, hashing,
sealing), `headers` (Authorization, routing and id headers), `paging`, `models` (object validation), `cpo_locations`
(our stations as OCPI Locations), `cpo_objects` (our sessions and tariffs as OCPI objects), `breaker`; adapters -
`app` (the FastAPI factory), `auth`, `store` (projection reads), `credentials`, `receivers`, `senders` and
`cpo_senders` (CPO Locations, Sessions, CDRs, Tariffs), `hubclientinfo`, `client` (our calls to partners), `pull`,
`outbound` (per-partner lanes), `push_worker` (OcpiPushRequested -> partner calls, committed only once delivered or
parked), `commands_worker`, `admin` (onboarding API and CLI), `local` (a whole party in a thread: tests, benches,
demos).  The processors behind it: streams/ocpi_directory (partner Locations and Sessions -> `stations`,
`sessions`) and streams/ocpi_push (our changes -> `ocpi.outbound`).
"""

VERSION = "2.2.1"
