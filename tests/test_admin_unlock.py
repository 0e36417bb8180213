"""The remembered admin unlock's token (issue 19: the passphrase was asked again after every reload):
`nemo_core.people.unlock` makes and checks `v1.<expiry>.<hmac>` tokens. A valid one unlocks until it
expires; an expired, forged, tampered, foreign or malformed one is just "locked", never an exception."""

from __future__ import annotations

import hashlib

import pytest

from nemo_core.people import unlock as U

PASS = "correct horse"
NOW = 1_800_000_000


def test_a_fresh_token_unlocks_until_it_expires():
    token = U.make_token(PASS, now=NOW)
    assert U.verify(PASS, token, now=NOW)
    assert U.verify(PASS, token, now=NOW + U.LIFETIME_SECONDS - 1)
    assert not U.verify(PASS, token, now=NOW + U.LIFETIME_SECONDS)
    assert not U.verify(PASS, token, now=NOW + 10 * U.LIFETIME_SECONDS)
    assert U.LIFETIME_SECONDS == 12 * 3600
    assert U.remaining_seconds(token, now=NOW) == U.LIFETIME_SECONDS
    assert U.remaining_seconds(token, now=NOW + U.LIFETIME_SECONDS + 5) == 0


def test_the_token_holds_neither_the_passphrase_nor_a_fixed_digest_of_it():
    token = U.make_token(PASS, now=NOW)
    assert token.startswith(f"v1.{NOW + U.LIFETIME_SECONDS}.")
    assert PASS not in token and PASS.replace(" ", "") not in token
    for digest in (hashlib.sha256(PASS.encode()).hexdigest(), hashlib.sha256(("nemo-admin:" + PASS).encode()).hexdigest()):
        assert digest not in token
    # the signature changes with the expiry: two tokens of one passphrase share nothing but the prefix
    later = U.make_token(PASS, now=NOW + 1)
    assert later.rsplit(".", 1)[1] != token.rsplit(".", 1)[1]


def test_another_passphrase_neither_accepts_nor_makes_the_same_token():
    token = U.make_token(PASS, now=NOW)
    assert not U.verify("correct horse ", token, now=NOW)
    assert not U.verify("Correct horse", token, now=NOW)
    assert U.make_token("battery staple", now=NOW) != token
    assert not U.verify(None, token, now=NOW) and not U.verify("", token, now=NOW)


def test_a_forged_signature_is_refused():
    token = U.make_token(PASS, now=NOW)
    head, sig = token.rsplit(".", 1)
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    assert not U.verify(PASS, f"{head}.{flipped}", now=NOW)
    assert not U.verify(PASS, f"{head}.{'0' * 64}", now=NOW)
    # a signature made with a key anyone could compute (a plain HMAC keyed by the passphrase itself)
    import hmac

    naive = hmac.new(PASS.encode(), head.encode(), hashlib.sha256).hexdigest()
    assert not U.verify(PASS, f"{head}.{naive}", now=NOW)


def test_a_tampered_expiry_is_refused():
    token = U.make_token(PASS, now=NOW)
    _, expiry, sig = token.split(".")
    for other in (int(expiry) + 1, int(expiry) + 365 * 86400, int(expiry) - 1):
        assert not U.verify(PASS, f"v1.{other}.{sig}", now=NOW)
    assert not U.verify(PASS, f"v1.0{expiry}.{sig}", now=NOW)  # same number, other text: the text is signed


@pytest.mark.parametrize("value", [
    None, "", 0, 12, b"v1.1.00", ["v1"], "v1", "v1..", "v1.123", "v1.123.", "v2.1800043200." + "a" * 64,
    "v1.-1800043200." + "a" * 64, "v1.1800043200." + "A" * 64, "v1.1800043200." + "a" * 63,
    "v1.1800043200." + "a" * 65, "v1.1800043200." + "g" * 64, " v1.1800043200." + "a" * 64,
    "v1.1800043200." + "a" * 64 + "\n", "v1.1800043200." + "a" * 64 + ";path=/", "v1.١٢٣." + "a" * 64,
    "v1." + "9" * 13 + "." + "a" * 64, "v1.1e9." + "a" * 64, "\"v1.1800043200." + "a" * 64 + "\"",
    "v1.1800043200.<script>", "x" * 10_000,
])
def test_malformed_values_are_locked_not_errors(value):
    assert U.verify(PASS, value, now=NOW) is False
    assert U.remaining_seconds(value, now=NOW) == 0
    assert not U.well_formed(value)


def test_well_formed_is_only_digits_and_hex():
    token = U.make_token(PASS, now=NOW)
    assert U.well_formed(token) and set(token) <= set("v1.0123456789abcdef")
    assert U.expiry_of(token) == NOW + U.LIFETIME_SECONDS


def test_a_restart_keeps_tokens_valid():
    """Nothing random: the key is a function of the passphrase alone, so a new process (cache cleared)
    accepts what the old one made."""
    token = U.make_token(PASS, now=NOW)
    U._key.cache_clear()
    assert U.verify(PASS, token, now=NOW)


def test_bad_arguments_to_make_token():
    with pytest.raises(ValueError):
        U.make_token("", now=NOW)
    with pytest.raises(ValueError):
        U.make_token(PASS, now=NOW, lifetime=0)
