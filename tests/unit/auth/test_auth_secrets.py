"""Password hashing (argon2id), robot secrets (salted SHA-256) and Harbor's strength rule."""

from __future__ import annotations

import re
import time

import pytest
from argon2 import PasswordHasher

from chalicelib.auth.secrets import (
    constant_time_equals,
    generate_robot_secret,
    hash_password,
    hash_secret,
    needs_rehash,
    validate_secret_strength,
    verify_password,
    verify_secret,
)

# --- passwords -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stored() -> str:
    return hash_password("Harbor12345")


def test_password_hash_is_argon2id(stored: str) -> None:
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert "Harbor12345" not in stored


def test_password_verify(stored: str) -> None:
    assert verify_password("Harbor12345", stored) is True


@pytest.mark.parametrize("wrong", ["harbor12345", "Harbor1234", "Harbor123456", "", " Harbor12345"])
def test_wrong_password(stored: str, wrong: str) -> None:
    assert verify_password(wrong, stored) is False


@pytest.mark.parametrize("garbage", ["", "plain", "$argon2id$v=19$m=1,t=1,p=1$bad", "sha256$00$00"])
def test_verify_password_malformed_hash_returns_false(garbage: str) -> None:
    assert verify_password("Harbor12345", garbage) is False


def test_password_hashes_are_salted() -> None:
    assert hash_password("Harbor12345") != hash_password("Harbor12345")


def test_unicode_password() -> None:
    stored = hash_password("Pässwörd-1-Ω")
    assert verify_password("Pässwörd-1-Ω", stored)
    assert not verify_password("Passwörd-1-Ω", stored)


def test_needs_rehash(stored: str) -> None:
    assert needs_rehash(stored) is False
    weaker = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("Harbor12345")
    assert needs_rehash(weaker) is True
    assert verify_password("Harbor12345", weaker) is True  # old hashes still verify, then get upgraded


def test_needs_rehash_on_unreadable_hash() -> None:
    assert needs_rehash("not-a-hash") is True


def test_password_verify_time_budget(stored: str) -> None:
    """Generous bounds around the 10-50 ms target, so a loaded CI machine does not flake."""
    start = time.perf_counter()
    verify_password("Harbor12345", stored)
    elapsed = time.perf_counter() - start
    assert 0.002 < elapsed < 1.0


# --- strength rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "ok"),
    [
        ("Harbor12345", True),
        ("aB3aaaaa", True),  # exactly 8
        ("aB3" + "a" * 125, True),  # exactly 128
        ("aB3aaaa", False),  # 7
        ("aB3" + "a" * 126, False),  # 129
        ("harbor12345", False),  # no upper
        ("HARBOR12345", False),  # no lower
        ("HarborHarbor", False),  # no digit
        ("", False),
        ("12345678", False),
        ("Ab1!@#$%^&*()", True),  # symbols allowed
        ("Ab1     ", True),  # spaces count toward length
        ("ÄÖÜäöü\u0661\u0662\u0663", False),  # non-ASCII letters and digits do not count, as in Harbor's regexes
        ("Äa1aaaaa", False),  # no ASCII upper
        ("Aa\u0661aaaaa", False),  # ARABIC-INDIC DIGIT ONE is not \d there
    ],
)
def test_validate_secret_strength(secret: str, ok: bool) -> None:
    assert validate_secret_strength(secret) is ok


# --- robot secrets ---------------------------------------------------------------------------------


def test_generated_robot_secrets_satisfy_rule() -> None:
    seen = set()
    for _ in range(200):
        secret = generate_robot_secret()
        assert len(secret) >= 32
        assert re.fullmatch(r"[A-Za-z0-9]+", secret)
        assert validate_secret_strength(secret), secret
        seen.add(secret)
    assert len(seen) == 200


@pytest.mark.parametrize("length", [32, 64, 128])
def test_generated_robot_secret_length(length: int) -> None:
    assert len(generate_robot_secret(length)) == length


@pytest.mark.parametrize("length", [0, 8, 31, 129])
def test_generated_robot_secret_length_bounds(length: int) -> None:
    with pytest.raises(ValueError, match="length"):
        generate_robot_secret(length)


def test_secret_hash_format() -> None:
    stored = hash_secret("RobotSecret123")
    scheme, salt, digest = stored.split("$")
    assert scheme == "sha256"
    assert re.fullmatch(r"[0-9a-f]{32}", salt)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)


def test_secret_hash_verify() -> None:
    secret = generate_robot_secret()
    stored = hash_secret(secret)
    assert verify_secret(secret, stored) is True


def test_secret_wrong() -> None:
    secret = generate_robot_secret()
    stored = hash_secret(secret)
    assert verify_secret(secret[:-1], stored) is False
    assert verify_secret(secret + "x", stored) is False
    assert verify_secret(generate_robot_secret(), stored) is False
    assert verify_secret("", stored) is False


def test_secret_hashes_are_salted() -> None:
    first, second = hash_secret("RobotSecret123"), hash_secret("RobotSecret123")
    assert first != second
    assert first.split("$")[1] != second.split("$")[1]
    assert verify_secret("RobotSecret123", first)
    assert verify_secret("RobotSecret123", second)


def test_secret_hash_depends_on_salt() -> None:
    stored = hash_secret("RobotSecret123")
    scheme, salt, digest = stored.split("$")
    other_salt = ("0" if salt[0] != "0" else "1") + salt[1:]
    assert verify_secret("RobotSecret123", f"{scheme}${other_salt}${digest}") is False


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "sha256",
        "sha256$abcd",
        "md5$00$00",
        "sha256$zz$" + "0" * 64,  # salt not hex
        "sha256$00$00$00",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
    ],
)
def test_verify_secret_malformed_returns_false(stored: str) -> None:
    assert verify_secret("RobotSecret123", stored) is False


def test_password_hash_is_not_a_secret_hash(stored: str) -> None:
    assert verify_secret("Harbor12345", stored) is False


# --- constant-time comparison ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("abc", "abc", True),
        ("abc", "abd", False),
        ("abc", "abcd", False),
        ("", "", True),
        (b"abc", b"abc", True),
        (b"abc", "abc", True),
        ("ünï", "ünï", True),  # non-ASCII str is compared as UTF-8 (hmac rejects non-ASCII str)
        ("ünï", "uni", False),
    ],
)
def test_constant_time_equals(a: str | bytes, b: str | bytes, equal: bool) -> None:
    assert constant_time_equals(a, b) is equal
