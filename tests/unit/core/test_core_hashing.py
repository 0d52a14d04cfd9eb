"""core/hashing.py: resumable SHA-256/SHA-512 whose state survives a round trip through bytes."""

from __future__ import annotations

import hashlib
import os
import random

import pytest

from chalicelib.core.hashing import ResumableHash, available

ALGORITHMS = ["sha256", "sha512"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_available_here(algorithm):
    # The registry's Lambda runtime and this venv both ship an OpenSSL with the low-level API.
    assert available(algorithm)


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha384", "blake2b", ""])
def test_unsupported_algorithms(algorithm):
    assert not available(algorithm)
    with pytest.raises(RuntimeError):
        ResumableHash(algorithm)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_empty_input(algorithm):
    assert ResumableHash(algorithm).hexdigest() == hashlib.new(algorithm).hexdigest()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("seed", range(25))
def test_round_trip_across_random_splits_equals_hashlib(algorithm, seed):
    rng = random.Random(seed)
    data = os.urandom(rng.choice([0, 1, 63, 64, 65, 127, 128, 129, 1000, 4096, 65_537, 300_000]))
    cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randrange(0, 12)))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    hasher = ResumableHash(algorithm)
    for piece in pieces:
        # Every chunk arrives in a "new process": only the state bytes survive.
        restored = ResumableHash.restore(algorithm, hasher.state())
        assert restored is not None
        restored.update(piece)
        hasher = restored
    assert hasher.hexdigest() == hashlib.new(algorithm, data).hexdigest()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_block_boundary(algorithm):
    block = 64 if algorithm == "sha256" else 128
    data = os.urandom(block * 3 + 7)
    for cut in range(len(data) + 1):
        first = ResumableHash(algorithm)
        first.update(data[:cut])
        second = ResumableHash.restore(algorithm, first.state())
        assert second is not None
        second.update(data[cut:])
        assert second.hexdigest() == hashlib.new(algorithm, data).hexdigest(), cut


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_hexdigest_leaves_the_running_state_untouched(algorithm):
    hasher = ResumableHash(algorithm)
    hasher.update(b"abc")
    state = hasher.state()
    assert hasher.hexdigest() == hashlib.new(algorithm, b"abc").hexdigest()
    assert hasher.hexdigest() == hashlib.new(algorithm, b"abc").hexdigest()
    assert hasher.state() == state
    hasher.update(b"def")
    assert hasher.hexdigest() == hashlib.new(algorithm, b"abcdef").hexdigest()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_restored_copy_is_independent(algorithm):
    hasher = ResumableHash(algorithm)
    hasher.update(b"common")
    state = hasher.state()
    a = ResumableHash.restore(algorithm, state)
    b = ResumableHash.restore(algorithm, state)
    assert a is not None and b is not None
    a.update(b"-a")
    b.update(b"-b")
    assert a.hexdigest() == hashlib.new(algorithm, b"common-a").hexdigest()
    assert b.hexdigest() == hashlib.new(algorithm, b"common-b").hexdigest()
    assert hasher.hexdigest() == hashlib.new(algorithm, b"common").hexdigest()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_state_is_tagged_with_the_library_version(algorithm):
    state = ResumableHash(algorithm).state()
    version, sep, raw = state.partition(b":")
    assert sep == b":"
    assert version.isdigit()
    assert len(raw) == {"sha256": 112, "sha512": 216}[algorithm]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_foreign_version_state_restores_as_none(algorithm):
    hasher = ResumableHash(algorithm)
    hasher.update(b"partial upload")
    version, _, raw = hasher.state().partition(b":")
    foreign = str(int(version) + 1).encode() + b":" + raw
    assert ResumableHash.restore(algorithm, foreign) is None
    assert ResumableHash.restore(algorithm, b"garbage:" + raw) is None
    assert ResumableHash.restore(algorithm, raw) is None


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_truncated_or_padded_state_restores_as_none(algorithm):
    state = ResumableHash(algorithm).state()
    assert ResumableHash.restore(algorithm, state[:-1]) is None
    assert ResumableHash.restore(algorithm, state + b"\0") is None
    assert ResumableHash.restore(algorithm, b"") is None


def test_state_of_one_algorithm_does_not_restore_as_the_other():
    assert ResumableHash.restore("sha512", ResumableHash("sha256").state()) is None
    assert ResumableHash.restore("sha256", ResumableHash("sha512").state()) is None


def test_restore_of_unsupported_algorithm_is_none():
    assert ResumableHash.restore("md5", ResumableHash("sha256").state()) is None
