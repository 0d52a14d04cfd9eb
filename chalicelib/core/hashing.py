"""Resumable SHA-256/SHA-512 whose state survives between requests (chunked uploads).

`hashlib` objects cannot be serialised, and a chunked upload spreads over many Lambda invocations.
OpenSSL's low-level `SHA256_*`/`SHA512_*` functions keep their state in a plain struct, so its
bytes can be stored with the upload and restored for the next chunk. They are deprecated in
OpenSSL 3 (still exported), so the library is loaded from the process's own `libcrypto` (the one
`_hashlib` uses) and checked against `hashlib` once; when anything is off, `available()` is False
and the caller falls back to re-hashing the assembled object (slower, same result).

The saved state is tagged with the OpenSSL version: a state saved by one build is never fed to
another (a Lambda runtime update in the middle of an upload) — such a state restores as None.
"""

from __future__ import annotations

import _hashlib  # noqa: F401  (loading it maps the libcrypto that hashlib uses into the process)
import ctypes
import ctypes.util
import hashlib
from functools import lru_cache
from typing import Any

_CTX_SIZE = {"sha256": 112, "sha512": 216}
_DIGEST_SIZE = {"sha256": 32, "sha512": 64}
_PREFIX = {"sha256": "SHA256", "sha512": "SHA512"}


def _libcrypto_path() -> str | None:
    """The libcrypto already mapped into this process by `_hashlib`, else the linker's choice."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            for line in maps:
                path = line.split()[-1]
                if "libcrypto" in path and path.startswith("/"):
                    return path
    except OSError:
        pass
    return ctypes.util.find_library("crypto")


@lru_cache(maxsize=1)
def _library() -> tuple[Any, bytes] | None:
    try:
        path = _libcrypto_path()
        if not path:
            return None
        lib = ctypes.CDLL(path)
        lib.OpenSSL_version_num.restype = ctypes.c_ulong
        version = str(lib.OpenSSL_version_num()).encode()
        for prefix in _PREFIX.values():
            for suffix in ("_Init", "_Update", "_Final"):
                getattr(lib, prefix + suffix).restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return lib, version


@lru_cache(maxsize=2)
def available(algorithm: str = "sha256") -> bool:
    """True when resumable hashing works here and agrees with hashlib (checked once)."""
    if _library() is None or algorithm not in _CTX_SIZE:
        return False
    probe = b"registry-resumable-hash-self-test" * 97
    hasher = ResumableHash(algorithm)
    hasher.update(probe[:1000])
    restored = ResumableHash.restore(algorithm, hasher.state())
    if restored is None:
        return False
    restored.update(probe[1000:])
    return restored.hexdigest() == hashlib.new(algorithm, probe).hexdigest()


class ResumableHash:
    """An incremental digest whose `state()` can be stored and `restore()`d in another process."""

    def __init__(self, algorithm: str, _ctx: ctypes.Array[ctypes.c_char] | None = None) -> None:
        loaded = _library()
        if loaded is None or algorithm not in _CTX_SIZE:
            raise RuntimeError(f"resumable {algorithm} is not available")
        self._lib, self._version = loaded
        self.algorithm = algorithm
        self._fn = _PREFIX[algorithm]
        if _ctx is None:
            _ctx = ctypes.create_string_buffer(_CTX_SIZE[algorithm])
            getattr(self._lib, self._fn + "_Init")(_ctx)
        self._ctx = _ctx

    def update(self, data: bytes) -> None:
        if data:
            getattr(self._lib, self._fn + "_Update")(self._ctx, data, ctypes.c_size_t(len(data)))

    def state(self) -> bytes:
        return self._version + b":" + self._ctx.raw

    @classmethod
    def restore(cls, algorithm: str, state: bytes) -> ResumableHash | None:
        loaded = _library()
        if loaded is None or algorithm not in _CTX_SIZE:
            return None
        version, _, raw = state.partition(b":")
        if version != loaded[1] or len(raw) != _CTX_SIZE[algorithm]:
            return None
        return cls(algorithm, ctypes.create_string_buffer(raw, _CTX_SIZE[algorithm]))

    def hexdigest(self) -> str:
        """The digest of everything so far; the running state is left untouched."""
        ctx = ctypes.create_string_buffer(self._ctx.raw, _CTX_SIZE[self.algorithm])
        out = ctypes.create_string_buffer(_DIGEST_SIZE[self.algorithm])
        getattr(self._lib, self._fn + "_Final")(out, ctx)
        return out.raw.hex()
