"""The partner projection's token rule (projections/postgres/ocpi_partners.py), folded from events with fixed
times and read back the way the edge reads it (edges/ocpi/store.valid_tokens): which credentials token is valid
when, through registration, re-rolls, deletion and re-onboarding; other platforms' events change nothing;
re-applying changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from psycopg_pool import AsyncConnectionPool

from edges.ocpi.credtokens import TokenBox, new_token, token_hash
from edges.ocpi.events import deleted, exchanged, onboarded, token_issued
from edges.ocpi.store import partner, valid_tokens
from projections.base import SourcedEvent
from projections.postgres.ocpi_partners import OcpiPartnersProjection

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
BOX = TokenBox("k" * 32)
CREDS = {"token": "x", "url": "https://p/versions",
         "roles": [{"role": "CPO", "country_code": "nl", "party_id": "tnm", "business_details": {"name": "TNM"}},
                   {"role": "EMSP", "country_code": "NL", "party_id": "TNM", "business_details": {"name": "TNM"}}]}


class Log:
    """Events with consecutive offsets and chosen times."""

    def __init__(self, platform: str) -> None:
        self.platform, self.offset, self.events = platform, 0, []

    def add(self, etype: str, rec: dict, at: datetime, platform: str | None = None) -> SourcedEvent:
        rec = dict(rec, occurred_at=at, recorded_at=at, platform_id=platform or self.platform)
        e = SourcedEvent("ocpi.inbound", 0, self.offset, etype, rec)
        self.offset += 1
        self.events.append(e)
        return e


def _exchange(etype: str, token: str, at_grace: int, initiated: str = "PARTNER") -> dict:
    return exchanged(etype, platform_id="-", partner_id="p", initiated_by=initiated, our_token_hash=token_hash(token),
                     their_token_sealed=BOX.seal("theirs", "p"), their_versions_url="https://p/versions",
                     version="2.2.1", endpoints=[{"identifier": "locations", "role": "SENDER", "url": "https://p/l"}],
                     credentials=CREDS, grace_seconds=at_grace, source="t", correlation_id="c")


@pytest.fixture
def proj(settings):  # noqa: ANN001, ANN201
    schema = f"ocpi_ps_{uuid.uuid4().hex[:8]}"
    p = OcpiPartnersProjection(settings.postgres_dsn.get_secret_value(), schema, "me")
    yield p
    p.close()


def valid_at(proj: OcpiPartnersProjection, tokens: list[str], at: datetime) -> dict[str, str]:
    """token -> kind, for the tokens valid at `at`."""
    async def go() -> dict[str, str]:
        async with AsyncConnectionPool(proj.dsn, min_size=1, max_size=1,
                                       kwargs={"options": f"-c search_path={proj.schema},public"}) as pool:
            rows = await valid_tokens(pool, [token_hash(t) for t in tokens], at)
        return {t: rows[token_hash(t)].kind for t in tokens if token_hash(t) in rows}

    return asyncio.run(go())


def test_token_lifecycle_registration_rerolls_deletion(proj) -> None:  # noqa: ANN001
    a, c1, c2, c3 = (new_token() for _ in range(4))
    log = Log("me")
    log.add("OcpiPartnerOnboarded", onboarded(platform_id="-", partner_id="p", name="P", source="t",
                                              correlation_id="c", token_a_hash=token_hash(a)), T0)
    assert proj.apply(log.events) == 1
    every = [a, c1, c2, c3]
    assert valid_at(proj, every, T0 + timedelta(days=300)) == {a: "A"}  # token A has no expiry of its own

    # registration at T0+1h with a 300 s grace: A lives 5 more minutes (a lost answer can be retried)
    t_reg = T0 + timedelta(hours=1)
    proj.apply([log.add("OcpiPartnerRegistered", _exchange("OcpiPartnerRegistered", c1, 300), t_reg)])
    assert valid_at(proj, every, t_reg + timedelta(seconds=299)) == {a: "A", c1: "C"}
    assert valid_at(proj, every, t_reg + timedelta(seconds=300)) == {c1: "C"}

    # re-roll at T0+2h, grace 300: the old C and the new one both work until the grace ends
    t_rot = T0 + timedelta(hours=2)
    proj.apply([log.add("OcpiCredentialsRotated", _exchange("OcpiCredentialsRotated", c2, 300), t_rot)])
    assert valid_at(proj, every, t_rot + timedelta(seconds=10)) == {c1: "C", c2: "C"}
    assert valid_at(proj, every, t_rot + timedelta(seconds=301)) == {c2: "C"}

    # a second re-roll inside the first grace: a token already closing keeps its earlier end
    proj.apply([log.add("OcpiCredentialsRotated", _exchange("OcpiCredentialsRotated", c3, 3600),
                        t_rot + timedelta(seconds=60))])
    assert valid_at(proj, every, t_rot + timedelta(seconds=200)) == {c1: "C", c2: "C", c3: "C"}
    assert valid_at(proj, every, t_rot + timedelta(seconds=400)) == {c2: "C", c3: "C"}
    assert valid_at(proj, every, t_rot + timedelta(seconds=60 + 3600)) == {c3: "C"}

    # deletion ends every token at once, grace or not
    t_del = T0 + timedelta(hours=3)
    proj.apply([log.add("OcpiPartnerDeleted", deleted(platform_id="-", partner_id="p", initiated_by="PARTNER",
                                                      reason=None, source="t", correlation_id="c"), t_del)])
    assert valid_at(proj, every, t_del - timedelta(seconds=1)) == {c2: "C", c3: "C"}  # before it: as they were
    assert valid_at(proj, every, t_del) == {}

    async def state() -> tuple[str, list]:
        async with AsyncConnectionPool(proj.dsn, min_size=1, max_size=1,
                                       kwargs={"options": f"-c search_path={proj.schema},public"}) as pool:
            p = await partner(pool, "p")
        return p.state, p.roles

    assert asyncio.run(state()) == ("DELETED", [{"role": "CPO", "country_code": "NL", "party_id": "TNM",
                                                 "name": "TNM"},
                                                {"role": "EMSP", "country_code": "NL", "party_id": "TNM",
                                                 "name": "TNM"}])
    # re-applying the whole history changes nothing (offsets skip it)
    before = proj.checksum()
    assert proj.apply(log.events) == 0 and proj.checksum() == before


def test_we_register_with_them_token_b_then_grace_zero(proj) -> None:  # noqa: ANN001
    b1, b2 = new_token(), new_token()
    log = Log("me")
    log.add("OcpiPartnerOnboarded", onboarded(platform_id="-", partner_id="p", name="P", source="t",
                                              correlation_id="c", their_versions_url="https://p/versions",
                                              their_token_sealed=BOX.seal("their-a", "p")), T0)
    log.add("OcpiTokenIssued", token_issued(platform_id="-", partner_id="p", token_hash=token_hash(b1), kind="B",
                                            source="t", correlation_id="c"), T0)
    proj.apply(log.events)
    assert valid_at(proj, [b1], T0) == {b1: "B"}  # usable before we POST: they call us back with it
    proj.apply([log.add("OcpiPartnerRegistered", _exchange("OcpiPartnerRegistered", b1, 0, "US"), T0)])
    proj.apply([log.add("OcpiTokenIssued", token_issued(platform_id="-", partner_id="p",
                                                        token_hash=token_hash(b2), kind="B", source="t",
                                                        correlation_id="c"), T0 + timedelta(minutes=5))])
    assert valid_at(proj, [b1, b2], T0 + timedelta(minutes=5)) == {b1: "B", b2: "B"}
    proj.apply([log.add("OcpiCredentialsRotated", _exchange("OcpiCredentialsRotated", b2, 0, "US"),
                        T0 + timedelta(minutes=6))])
    assert valid_at(proj, [b1, b2], T0 + timedelta(minutes=6)) == {b2: "B"}  # grace 0: the old one at once


def test_other_platforms_events_change_nothing_and_re_onboarding_starts_afresh(proj) -> None:  # noqa: ANN001
    a1, a2, c = new_token(), new_token(), new_token()
    log = Log("me")
    log.add("OcpiPartnerOnboarded", onboarded(platform_id="-", partner_id="p", name="P", source="t",
                                              correlation_id="c", token_a_hash=token_hash(a1)), T0,
            platform="someone-else")
    proj.apply(log.events)
    assert valid_at(proj, [a1], T0) == {} and proj.offsets() == {("ocpi.inbound", 0): 1}
    log.add("OcpiPartnerOnboarded", onboarded(platform_id="-", partner_id="p", name="P", source="t",
                                              correlation_id="c", token_a_hash=token_hash(a1)), T0)
    log.add("OcpiPartnerRegistered", _exchange("OcpiPartnerRegistered", c, 0), T0)
    log.add("OcpiPartnerDeleted", deleted(platform_id="-", partner_id="p", initiated_by="US", reason="test",
                                          source="t", correlation_id="c"), T0 + timedelta(hours=1))
    log.add("OcpiPartnerOnboarded", onboarded(platform_id="-", partner_id="p", name="P again", source="t",
                                              correlation_id="c", token_a_hash=token_hash(a2)),
            T0 + timedelta(hours=2))
    proj.apply(log.events)
    assert valid_at(proj, [a1, a2, c], T0 + timedelta(hours=2)) == {a2: "A"}
