"""core/digest.py: parsing, validation and computing of content digests."""

from __future__ import annotations

import hashlib

import pytest

from chalicelib.core.digest import ALGORITHMS, Digest, is_digest
from chalicelib.errors import DigestInvalid

SHA256_EMPTY = hashlib.sha256(b"").hexdigest()
SHA512_EMPTY = hashlib.sha512(b"").hexdigest()


@pytest.mark.parametrize(
    ("text", "algorithm", "encoded"),
    [
        (f"sha256:{SHA256_EMPTY}", "sha256", SHA256_EMPTY),
        (f"sha512:{SHA512_EMPTY}", "sha512", SHA512_EMPTY),
        ("sha256:" + "0" * 64, "sha256", "0" * 64),
    ],
)
def test_parse_valid(text, algorithm, encoded):
    digest = Digest.parse(text)
    assert digest == Digest(algorithm, encoded)
    assert digest.algorithm == algorithm
    assert digest.hex == encoded
    assert str(digest) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sha256",
        "sha256:",
        ":" + "a" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha256:" + "a" * 128,
        "sha512:" + "a" * 64,
        "sha256:" + "A" * 64,
        "sha256:" + "g" * 64,
        "SHA256:" + "a" * 64,
        "md5:" + "a" * 32,
        "sha1:" + "a" * 40,
        "sha384:" + "a" * 96,
        "sha256:" + "a" * 63 + "=",
        " sha256:" + "a" * 64,
        "sha256:" + "a" * 64 + "\n",
        "sha256::" + "a" * 64,
        "sha256+b64u:" + "a" * 43,
    ],
)
def test_parse_invalid(text):
    with pytest.raises(DigestInvalid) as info:
        Digest.parse(text)
    assert info.value.http_status == 400
    assert info.value.code.name == "DIGEST_INVALID"


def test_parse_none_is_invalid():
    with pytest.raises(DigestInvalid):
        Digest.parse(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_of_matches_hashlib(algorithm):
    data = b"registry" * 1000
    digest = Digest.of(data, algorithm)
    assert digest.algorithm == algorithm
    assert digest.hex == hashlib.new(algorithm, data).hexdigest()
    assert Digest.parse(str(digest)) == digest


def test_of_defaults_to_sha256():
    assert Digest.of(b"") == Digest("sha256", SHA256_EMPTY)


def test_digest_is_hashable_and_comparable():
    a = Digest.parse(f"sha256:{SHA256_EMPTY}")
    b = Digest.of(b"")
    assert a == b
    assert len({a, b}) == 1
    assert a != Digest.of(b"", "sha512")


def test_algorithms_pin_lengths():
    assert ALGORITHMS == {"sha256": 64, "sha512": 128}


@pytest.mark.parametrize(
    ("text", "expected"),
    [(f"sha256:{SHA256_EMPTY}", True), ("sha256:bad", True), ("latest", False), ("v1.0", False), ("", False)],
)
def test_is_digest_tells_references_apart(text, expected):
    # Tags cannot contain ':', so anything with one is a digest reference (possibly malformed).
    assert is_digest(text) is expected
