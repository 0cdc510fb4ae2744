"""Secrets are stored as argon2id hashes; both cost profiles verify, and only the right secret passes."""

from chargeverse.passwords import hash_machine_secret, hash_secret, verify_secret


def test_both_profiles_are_argon2id_and_verify_only_the_right_secret() -> None:
    for h in (hash_secret("correct horse battery"), hash_machine_secret("correct horse battery")):
        assert h.startswith("$argon2id$")
        assert "correct horse" not in h
        assert verify_secret(h, "correct horse battery")
        assert not verify_secret(h, "correct horse batterz")
    assert not verify_secret("not-a-hash", "x")


def test_people_get_the_expensive_profile_and_chargers_the_light_one() -> None:
    assert "m=65536,t=3" in hash_secret("pw")
    assert "m=8192,t=1,p=1" in hash_machine_secret("a-random-charger-secret")


def test_generated_charger_secrets_get_the_lightest_profile_and_still_verify() -> None:
    h = hash_machine_secret("Zq0_generated-by-secrets-module", generated=True)
    assert h.startswith("$argon2id$") and "m=1024,t=1,p=1" in h
    assert verify_secret(h, "Zq0_generated-by-secrets-module")
    assert not verify_secret(h, "Zq0_generated-by-secrets-modulE")
