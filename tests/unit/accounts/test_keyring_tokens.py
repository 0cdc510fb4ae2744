"""JWT signing keys with kids (chargeverse/keyring.py) and the tokens they sign (chargeverse/tokens.py)."""

from __future__ import annotations

import time

import jwt
import pytest

from chargeverse.keyring import Keyring, KeyringError, KeyringState, derive_key, initial, rotate
from chargeverse.settings import Settings
from chargeverse.tokens import TokenError, issue, unverified_kid, verify

MASTER = "a-master-secret-of-enough-length"
S = Settings(jwt_secret=MASTER)  # type: ignore[call-arg]
T0 = int(time.time())


@pytest.fixture(autouse=True)
def _fresh_clock() -> None:
    """Each test's T0 is now: a long suite must not age the keys past their grace period between import and run."""
    global T0
    T0 = int(time.time())


def _ring(state: KeyringState) -> Keyring:
    return Keyring.of(state, MASTER)


def test_keys_are_derived_per_kid_and_never_stored() -> None:
    m = MASTER.encode()
    assert derive_key(m, "k1") == derive_key(m, "k1") and len(derive_key(m, "k1")) == 32
    assert derive_key(m, "k1") != derive_key(m, "k2") != derive_key(b"another-master-secret", "k2")
    st = initial(T0, "k1")
    assert MASTER not in st.to_json() and derive_key(m, "k1").hex() not in st.to_json()
    assert KeyringState.from_json(st.to_json()) == st


def test_rotation_keeps_the_previous_key_verifying_until_it_retires() -> None:
    st = rotate(initial(T0, "k1"), T0 + 10, grace_seconds=900, kid="k2")
    assert [k.kid for k in st.keys] == ["k2", "k1"] and st.current.kid == "k2"
    assert st.entry("k1", T0 + 11) is not None and st.entry("k1", T0 + 910) is None
    st3 = rotate(st, T0 + 20, grace_seconds=900, kid="k3")
    # a second rotation never extends the older key's life
    assert {k.kid: k.retire_at for k in st3.keys} == {"k3": None, "k2": T0 + 920, "k1": T0 + 910}
    # retired keys are dropped at the next rotation
    assert [k.kid for k in rotate(st3, T0 + 915, 900, kid="k4").keys] == ["k4", "k3", "k2"]


def test_retire_previous_drops_every_older_key_at_once() -> None:
    st = rotate(rotate(initial(T0, "k1"), T0, 900, kid="k2"), T0 + 1, 900, kid="k3", retire_previous=True)
    assert [k.kid for k in st.keys] == ["k3"]


def test_keyring_state_refuses_inconsistencies() -> None:
    with pytest.raises(KeyringError):
        KeyringState(())
    with pytest.raises(KeyringError):
        rotate(initial(T0, "k1"), T0, 10, kid="k1")
    with pytest.raises(KeyringError):
        rotate(initial(T0, "k1"), T0, -1)
    with pytest.raises(KeyringError, match="corrupt"):
        KeyringState.from_json("{not json")
    with pytest.raises(KeyringError, match="CV_JWT_SECRET"):
        Keyring.of(initial(T0), "short")


def test_tokens_carry_the_kid_and_verify_by_it() -> None:
    ring = _ring(initial(T0, "k1"))
    tok = issue("acct-1", ["driver"], 60, S, keyring=ring)
    assert unverified_kid(tok) == "k1"
    claims = verify(tok, S, keyring=ring)
    assert claims["sub"] == "acct-1" and claims["roles"] == ["driver"] and claims["exp"] - claims["iat"] == 60


def test_old_tokens_verify_after_rotation_until_the_previous_key_retires() -> None:
    st1 = initial(T0, "k1")
    old = issue("acct-1", ["driver"], 600, S, keyring=_ring(st1))
    st2 = rotate(st1, T0, grace_seconds=300, kid="k2")
    new = issue("acct-1", ["driver"], 600, S, keyring=_ring(st2))
    assert unverified_kid(new) == "k2"
    assert verify(old, S, keyring=_ring(st2))["sub"] == "acct-1"
    assert verify(new, S, keyring=_ring(st2))["sub"] == "acct-1"
    with pytest.raises(TokenError, match="retired"):
        verify(old, S, keyring=_ring(st2), now=T0 + 301)
    st3 = rotate(st2, T0 + 1, 300, kid="k3", retire_previous=True)
    with pytest.raises(TokenError, match="unknown or retired"):
        verify(new, S, keyring=_ring(st3))


def test_forged_expired_and_malformed_tokens_are_refused() -> None:
    ring = _ring(initial(T0, "k1"))
    cases = {
        "no kid": jwt.encode({"sub": "x", "roles": ["admin"], "exp": T0 + 60, "iat": T0, "iss": "chargeverse"},
                             "a-wrong-key-of-the-right-length-123456", algorithm="HS256"),
        "wrong key": jwt.encode({"sub": "x", "roles": ["admin"], "exp": T0 + 60, "iat": T0, "iss": "chargeverse"},
                                "a-wrong-key-of-the-right-length-123456", algorithm="HS256",
                                headers={"kid": "k1"}),
        "alg none": jwt.encode({"sub": "x", "roles": ["admin"], "exp": T0 + 60, "iat": T0, "iss": "chargeverse"},
                               None, algorithm="none", headers={"kid": "k1"}),
        "wrong issuer": jwt.encode({"sub": "x", "roles": ["admin"], "exp": T0 + 60, "iat": T0, "iss": "evil"},
                                   derive_key(MASTER.encode(), "k1"), algorithm="HS256", headers={"kid": "k1"}),
        "no roles": jwt.encode({"sub": "x", "exp": T0 + 60, "iat": T0, "iss": "chargeverse"},
                               derive_key(MASTER.encode(), "k1"), algorithm="HS256", headers={"kid": "k1"}),
        "expired": issue("x", ["driver"], -10, S, keyring=ring),
        "garbage": "not.a.jwt",
        "empty": "",
    }
    for why, tok in cases.items():
        with pytest.raises(TokenError):
            verify(tok, S, keyring=ring)
            pytest.fail(why)
    with pytest.raises(TokenError, match="expired"):
        verify(cases["expired"], S, keyring=ring)


def test_issue_refuses_unknown_or_no_roles() -> None:
    ring = _ring(initial(T0, "k1"))
    with pytest.raises(TokenError, match="unknown roles"):
        issue("x", ["superuser"], 60, S, keyring=ring)
    with pytest.raises(TokenError):
        issue("x", [], 60, S, keyring=ring)
    for role in ("driver", "fleet_manager", "operator", "admin", "auditor"):
        assert verify(issue("x", [role], 60, S, keyring=ring), S, keyring=ring)["roles"] == [role]
