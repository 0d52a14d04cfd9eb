"""Credential hashing and the Harbor secret-strength rule.

Why two hashing schemes:

* **User passwords** are chosen by people, so they are low-entropy and guessable; a leaked table must
  be expensive to brute-force. They get argon2id (argon2-cffi `PasswordHasher`) with OWASP's
  recommended minimum, `m=19 MiB, t=2, p=1`. Measured on the development machine (AMD EPYC, 2 vCPU,
  argon2-cffi 25.1): one `verify` takes about 16 ms when idle (median of 15, range 16-24 ms) and a
  28-37 ms median while other test suites loaded the machine. That is inside the 10-50 ms budget,
  so a login costs little Lambda time while each offline guess costs an attacker the same. 19 MiB
  also fits the smallest Lambda memory sizes (which get a fraction of a vCPU, so expect slower
  there). Re-measure after changing the parameters;
  `needs_rehash` lets a successful login upgrade an old hash.
* **Robot secrets** are generated here from `secrets` (about 190 bits), so no dictionary exists to
  attack and a slow hash buys nothing. Robots authenticate on every `docker pull` token request, so
  a fast salted SHA-256 (what Harbor stores) compared with `hmac.compare_digest` is the right cost:
  `sha256$<salt hex>$<digest hex>`.

The strength rule is Harbor's, shared by robot secrets and user passwords: 8-128 characters with at
least one lower-case letter, one upper-case letter and one digit.

Pure functions only: no settings, no I/O, no AWS.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_SECRET_LENGTH = 8
MAX_SECRET_LENGTH = 128
ROBOT_SECRET_LENGTH = 32
SALT_BYTES = 16
_HASH_SCHEME = "sha256"
_ROBOT_ALPHABET = string.ascii_letters + string.digits

_PASSWORD_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    """An argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) with a random salt."""
    return _PASSWORD_HASHER.hash(password)


def verify_password(password: str, stored: str) -> bool:
    """True if `password` matches `stored`; False on a mismatch or a malformed hash, never raises."""
    try:
        return _PASSWORD_HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def verify_unknown_password(password: str) -> bool:
    """For a name with no password (no such user): the cost of a real `verify_password`, so the
    time a failed sign-in takes does not tell which names exist. Always False."""
    verify_password(password, _dummy_hash())
    return False


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random password, made once per process on first use (never at import)."""
    return hash_password(secrets.token_urlsafe(24))


def needs_rehash(stored: str) -> bool:
    """True if `stored` was made with other parameters (or is unreadable) and should be re-hashed."""
    try:
        return _PASSWORD_HASHER.check_needs_rehash(stored)
    except (InvalidHashError, ValueError):
        return True


def validate_secret_strength(secret: str) -> bool:
    """Harbor's rule for robot secrets and user passwords: 8-128 chars, a lower, an upper and a digit.

    Like Harbor's `[a-z]`, `[A-Z]`, `\\d` checks, the letters and digits counted are ASCII ones.
    """
    return (
        MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH
        and any(c in string.ascii_lowercase for c in secret)
        and any(c in string.ascii_uppercase for c in secret)
        and any(c in string.digits for c in secret)
    )


def generate_robot_secret(length: int = ROBOT_SECRET_LENGTH) -> str:
    """A random alphanumeric secret that satisfies `validate_secret_strength`.

    Draws until the rule holds; at 32 characters a draw fails it (no digit) about 0.4% of the time.
    """
    if not ROBOT_SECRET_LENGTH <= length <= MAX_SECRET_LENGTH:
        raise ValueError(f"robot secret length must be {ROBOT_SECRET_LENGTH}-{MAX_SECRET_LENGTH}")
    while True:
        candidate = "".join(secrets.choice(_ROBOT_ALPHABET) for _ in range(length))
        if validate_secret_strength(candidate):
            return candidate


def _digest(salt: bytes, secret: str) -> str:
    return hashlib.sha256(salt + secret.encode("utf-8")).hexdigest()


def hash_secret(secret: str) -> str:
    """`sha256$<salt hex>$<digest hex>` with a fresh random salt, for high-entropy robot secrets."""
    salt = secrets.token_bytes(SALT_BYTES)
    return f"{_HASH_SCHEME}${salt.hex()}${_digest(salt, secret)}"


def verify_secret(secret: str, stored: str) -> bool:
    """True if `secret` matches a `hash_secret` value; False on mismatch or a malformed value."""
    parts = stored.split("$")
    if len(parts) != 3 or parts[0] != _HASH_SCHEME:
        return False
    try:
        salt = bytes.fromhex(parts[1])
    except ValueError:
        return False
    return constant_time_equals(_digest(salt, secret), parts[2])


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    """Compare without leaking where the first difference is; `str` is compared as UTF-8."""
    left = a.encode("utf-8") if isinstance(a, str) else a
    right = b.encode("utf-8") if isinstance(b, str) else b
    return hmac.compare_digest(left, right)
