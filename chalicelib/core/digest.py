"""OCI content digests: `<algorithm>:<encoded>` for the algorithms the registry verifies."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from chalicelib.errors import DigestInvalid

# The lengths pin the encoded part to the algorithm, so `sha256:` + 128 hex is refused.
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^(?P<alg>[a-z0-9]+(?:[.+_-][a-z0-9]+)*):(?P<hex>[a-zA-Z0-9=_-]+)$")


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse and validate; an unknown algorithm or a malformed value is DIGEST_INVALID."""
        match = _DIGEST_RE.fullmatch(text or "")
        if not match:
            raise DigestInvalid("invalid digest", {"digest": text})
        alg, encoded = match["alg"], match["hex"]
        if alg not in ALGORITHMS:
            raise DigestInvalid(f"unsupported digest algorithm {alg!r}", {"digest": text})
        if len(encoded) != ALGORITHMS[alg] or not re.fullmatch(r"[0-9a-f]+", encoded):
            raise DigestInvalid(f"malformed {alg} digest", {"digest": text})
        return cls(alg, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())


def is_digest(text: str) -> bool:
    return ":" in text
