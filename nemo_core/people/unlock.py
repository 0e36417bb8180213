"""The admin unlock a browser remembers: a signed, expiring token, so a reload does not ask for the passphrase again.

A token is `v1.<expiry, unix seconds>.<hex HMAC-SHA256(key, "v1.<expiry>")>`. It holds neither the passphrase
nor a fixed digest of it (a cookie that leaked would otherwise unlock forever, and a fixed digest can be
attacked offline like a password hash without a work factor); it only proves that whoever made it knew the
passphrase when it was made, until it expires.

The key is derived from the passphrase with scrypt and a fixed salt of this app, so:
- changing the passphrase (`NEMO_ADMIN_PASSWORD` / the `admin_password` secret) invalidates every token;
- restarting the server keeps them valid (nothing random is kept in memory only);
- guessing the passphrase from a stolen token costs one scrypt (about 0.1 s, 16 MB) per guess.
The key is kept in memory per passphrase (the first check of a process pays the 0.1 s, the others a few µs)
and never written anywhere: no file, no log, no database.

Checking is total: anything that is not a well-formed, unexpired token signed with the current passphrase's
key is just "not unlocked" (`verify` returns False, never raises), so a malformed or forged cookie shows the
passphrase form, not a traceback.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import time

VERSION = "v1"
LIFETIME_SECONDS = 12 * 3600  # a leaked cookie is worthless after half a working day
_SALT = b"nemo-agentic-workbench/admin-unlock/v1"
# no leading zero, at most 12 digits (unix seconds until the year 33658): one text per expiry
_TOKEN = re.compile(r"v1\.([1-9][0-9]{0,11})\.([0-9a-f]{64})")


@functools.lru_cache(maxsize=4)
def _key(passphrase: str) -> bytes:
    """The signing key of a passphrase (slow on purpose; cached so only the first check pays for it)."""
    return hashlib.scrypt(passphrase.encode("utf-8"), salt=_SALT, n=2**14, r=8, p=1, dklen=32)


def _signature(passphrase: str, expiry: str) -> str:
    """The signature of the expiry's text exactly as the token writes it."""
    return hmac.new(_key(passphrase), f"{VERSION}.{expiry}".encode("ascii"), hashlib.sha256).hexdigest()


def make_token(passphrase: str, *, now: float | None = None, lifetime: int = LIFETIME_SECONDS) -> str:
    """A token that unlocks for `lifetime` seconds from `now` (default: the current time) under `passphrase`."""
    if not passphrase:
        raise ValueError("an unlock token needs a passphrase")
    if lifetime <= 0:
        raise ValueError("an unlock token needs a positive lifetime")
    expiry = int(time.time() if now is None else now) + int(lifetime)
    return f"{VERSION}.{expiry}.{_signature(passphrase, str(expiry))}"


def well_formed(token: object) -> bool:
    """True when `token` has the shape of a token (digits and lower-case hex only): the one check before a
    value is embedded in the page's script."""
    return isinstance(token, str) and _TOKEN.fullmatch(token) is not None


def expiry_of(token: object) -> int | None:
    """The expiry (unix seconds) a well-formed token claims, else None. Not a check of its signature."""
    if not isinstance(token, str) or not (found := _TOKEN.fullmatch(token)):
        return None
    return int(found.group(1))


def remaining_seconds(token: object, *, now: float | None = None) -> int:
    """Seconds until a well-formed token expires (0 when it has, or is not a token): a cookie's max-age."""
    expiry = expiry_of(token)
    if expiry is None:
        return 0
    return max(0, expiry - int(time.time() if now is None else now))


def verify(passphrase: str | None, token: object, *, now: float | None = None) -> bool:
    """True when `token` was made with `passphrase` and has not expired at `now`; False for anything else."""
    if not passphrase or not isinstance(token, str):
        return False
    found = _TOKEN.fullmatch(token)
    if found is None:
        return False
    if int(found.group(1)) <= (time.time() if now is None else now):
        return False
    return hmac.compare_digest(found.group(2), _signature(passphrase, found.group(1)))
