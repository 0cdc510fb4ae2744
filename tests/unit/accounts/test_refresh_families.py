"""Rotating refresh tokens with reuse detection (edges/api/refresh.py), on the in-memory store: the decision logic
is the same pure `decide()` the Redis store runs inside its transaction."""

from __future__ import annotations

import pytest

from edges.api.refresh import (
    FamilyRecord, MemoryRefreshStore, Outcome, Policy, RefreshTokens, TokenRecord, decide, digest,
)

T0 = 1_700_000_000
POLICY = Policy(idle_seconds=3600, max_seconds=86400)


def _service() -> RefreshTokens:
    return RefreshTokens(MemoryRefreshStore(), POLICY)


async def test_each_refresh_consumes_the_token_and_hands_out_a_new_one() -> None:
    s = _service()
    family, t1 = await s.start("acct-1", T0)
    r1 = await s.rotate(t1, T0 + 10)
    assert r1.outcome is Outcome.ROTATED and r1.account_id == "acct-1" and r1.family == family
    assert r1.token and r1.token != t1 and r1.token.startswith("rt_")
    r2 = await s.rotate(r1.token, T0 + 20)
    assert r2.outcome is Outcome.ROTATED and r2.family == family


async def test_reusing_a_consumed_token_revokes_the_whole_family() -> None:
    s = _service()
    _, t1 = await s.start("acct-1", T0)
    t2 = (await s.rotate(t1, T0 + 1)).token
    stolen = await s.rotate(t1, T0 + 2)  # the old token again: someone else holds it
    assert stolen.outcome is Outcome.REUSED and stolen.account_id == "acct-1"
    # the legitimate holder's current token is dead too, and stays dead
    assert (await s.rotate(t2, T0 + 3)).outcome is Outcome.REVOKED
    assert (await s.rotate(t1, T0 + 4)).outcome is Outcome.REVOKED


async def test_two_refreshes_with_one_token_one_wins_the_other_is_reuse() -> None:
    s = _service()
    _, t1 = await s.start("acct-1", T0)
    first = await s.rotate(t1, T0 + 1)
    second = await s.rotate(t1, T0 + 1)
    assert (first.outcome, second.outcome) == (Outcome.ROTATED, Outcome.REUSED)
    assert (await s.rotate(first.token, T0 + 2)).outcome is Outcome.REVOKED


async def test_families_are_independent() -> None:
    s = _service()
    _, phone = await s.start("acct-1", T0)
    _, laptop = await s.start("acct-1", T0)
    await s.rotate(phone, T0 + 1)
    assert (await s.rotate(phone, T0 + 2)).outcome is Outcome.REUSED
    assert (await s.rotate(laptop, T0 + 3)).outcome is Outcome.ROTATED


async def test_logout_ends_one_family_and_everywhere_ends_all_of_the_account() -> None:
    s = _service()
    _, a = await s.start("acct-1", T0)
    _, b = await s.start("acct-1", T0)
    _, other = await s.start("acct-2", T0)
    assert await s.logout(a)
    assert (await s.rotate(a, T0 + 1)).outcome is Outcome.REVOKED
    assert (await s.rotate(b, T0 + 1)).outcome is Outcome.ROTATED
    assert not await s.logout("rt_never-issued")
    _, c = await s.start("acct-1", T0 + 2)
    assert await s.logout(c, everywhere=True)
    assert [(await s.rotate(t, T0 + 3)).outcome for t in (b, c)] == [Outcome.REVOKED] * 2
    assert (await s.rotate(other, T0 + 3)).outcome is Outcome.ROTATED


async def test_a_stale_token_cannot_sign_out_everywhere() -> None:
    s = _service()
    _, a = await s.start("acct-1", T0)
    _, b = await s.start("acct-1", T0)
    a2 = (await s.rotate(a, T0 + 1)).token
    await s.logout(a)  # consumed token: ends its own family, nothing more, even with everywhere
    assert not await s.logout(a, everywhere=True)
    assert (await s.rotate(b, T0 + 2)).outcome is Outcome.ROTATED
    assert (await s.rotate(a2, T0 + 2)).outcome is Outcome.REVOKED


async def test_password_change_revokes_every_family_of_the_account() -> None:
    s = _service()
    tokens = [(await s.start("acct-1", T0))[1] for _ in range(3)]
    assert await s.revoke_account("acct-1", "password changed") == 3
    assert await s.revoke_account("acct-1", "again") == 0
    assert [(await s.rotate(t, T0 + 1)).outcome for t in tokens] == [Outcome.REVOKED] * 3
    _, fresh = await s.start("acct-1", T0 + 2)  # a new login after the change works
    assert (await s.rotate(fresh, T0 + 3)).outcome is Outcome.ROTATED


async def test_idle_and_absolute_expiry() -> None:
    s = _service()
    _, t = await s.start("acct-1", T0)
    assert (await s.rotate(t, T0 + 3601)).outcome is Outcome.EXPIRED  # unused for longer than idle_seconds
    _, t = await s.start("acct-1", T0)
    now = T0
    for _ in range(30):  # refreshed often, but the login itself ends after max_seconds
        now += 3000
        r = await s.rotate(t, now)
        if r.outcome is not Outcome.ROTATED:
            break
        t = r.token
    assert r.outcome is Outcome.EXPIRED and now - T0 >= 86400


async def test_unknown_tokens_are_refused_and_change_nothing() -> None:
    s = _service()
    store = s.store
    _, t = await s.start("acct-1", T0)
    before = (dict(store.tokens), dict(store.families))
    assert (await s.rotate("rt_made-up", T0 + 1)).outcome is Outcome.UNKNOWN
    assert (dict(store.tokens), dict(store.families)) == before
    assert await s.account_of(t) == "acct-1" and await s.account_of("rt_x") is None


def test_the_store_keeps_only_digests_of_tokens() -> None:
    import asyncio

    s = _service()
    _, t = asyncio.run(s.start("acct-1", T0))
    assert t not in s.store.tokens and digest(t) in s.store.tokens
    assert all(t not in repr(f) for f in s.store.families.values())


@pytest.mark.parametrize("token, family, expected", [
    (None, None, Outcome.UNKNOWN),
    (TokenRecord("f", "a", "current", T0), None, Outcome.UNKNOWN),
    (TokenRecord("f", "a", "current", T0), FamilyRecord("a", "d1", "revoked", T0), Outcome.REVOKED),
    (TokenRecord("f", "a", "consumed", T0), FamilyRecord("a", "d2", "active", T0), Outcome.REUSED),
    (TokenRecord("f", "a", "current", T0), FamilyRecord("a", "d2", "active", T0), Outcome.REUSED),
    (TokenRecord("f", "a", "current", T0), FamilyRecord("a", "d1", "active", T0 - 86400), Outcome.EXPIRED),
    (TokenRecord("f", "a", "current", T0 - 3601), FamilyRecord("a", "d1", "active", T0 - 3601), Outcome.EXPIRED),
    (TokenRecord("f", "a", "current", T0), FamilyRecord("a", "d1", "active", T0), Outcome.ROTATED),
])
def test_decide_table(token, family, expected) -> None:  # noqa: ANN001
    outcome, writes = decide("d1", token, family, T0, POLICY, "d9")
    assert outcome is expected
    if expected is Outcome.ROTATED:
        assert [(d, t.state) for d, t, _ in writes.tokens] == [("d1", "consumed"), ("d9", "current")]
        assert writes.families[0][1].current == "d9"
        assert all(ttl == 86400 for *_, ttl in writes.tokens)  # remembered as long as the family may live
    elif expected is Outcome.REUSED:
        assert writes.families[0][1].status == "revoked" and not writes.tokens
    else:
        assert writes.tokens == () and writes.families == ()
