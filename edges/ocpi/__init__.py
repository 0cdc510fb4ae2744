"""The OCPI 2.2.1 edge (`cv run ocpi`): roaming with CPOs, eMSPs and hubs over OCPI.

Thin like every edge (DESIGN.md §1): it authenticates the partner's credentials token, validates, publishes what
the partner sent verbatim to `ocpi.inbound`, and answers from the OCPI projections (projections/postgres/ocpi_*.py).
Partner state (onboarding, credentials exchanges, re-rolls, deletion) is event-sourced on `ocpi.inbound` keyed by
partner id; pushed and pulled objects are events keyed by partner + object id.

Layout: pure parts (no I/O, unit-tested) - `status` (envelope, status codes), `secrets` (token generation, hashing,
sealing), `headers` (Authorization, routing and id headers), `paging`, `models` (object validation), `cpo_locations`
(our stations as OCPI Locations); adapters - `app` (the FastAPI factory), `auth`, `store` (projection reads),
`credentials`, `receivers`, `senders`, `client` (our calls to partners), `pull`, `admin` (onboarding API and CLI),
`local` (a whole party in a thread: tests, benches, demos).
"""

VERSION = "2.2.1"
