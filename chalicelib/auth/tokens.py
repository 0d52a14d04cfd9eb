"""Short-lived RS256 bearer tokens per the Docker token spec (distribution docs/spec/auth/jwt.md).

Why this module exists: the token service issues, and every `/v2/` request verifies, a JWT whose
`access` claim lists what the holder may do. Verification needs no call back to the issuer, which
is what lets each Lambda invocation authorize a request from the token alone. Harbor signs with
RS256 and puts a libtrust key id in the `kid` header so a stock distribution registry, given the
matching certificate, can verify the same tokens; we do the same.

Verification is deliberately narrow: RS256 only, the key is chosen by `kid` from a fixed map (never
from the token), and every failure surfaces as one `InvalidToken` that the caller maps to 401.
Time comes from an injected clock so tests can move it; PyJWT's own wall-clock checks are disabled
and re-done here against that clock.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from chalicelib.auth.scopes import Access
from chalicelib.core.clock import Clock, system_clock

ALGORITHM = "RS256"
MIN_TTL_SECONDS = 60  # token.md: "never issue a token that expires in less than 60 seconds"
MIN_RSA_BITS = 2048
_REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "nbf", "iat", "jti")
_REGISTERED_CLAIMS = frozenset({*_REQUIRED_CLAIMS, "access"})
# Verified tokens remembered per verifier (the least recently used go first).
_VERIFIED_KEPT = 1024


class InvalidToken(Exception):
    """Any reason a bearer token cannot be trusted. `reason` is for logs, not for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def key_id(public_key: rsa.RSAPublicKey) -> str:
    """The libtrust key id of `public_key`, as docker/distribution computes it.

    docker/libtrust `keyIDFromCryptoKey`: SHA-256 over the PKIX (SubjectPublicKeyInfo) DER encoding,
    truncated to 240 bits, base32 encoded (48 characters, no padding) and written as 12 groups of 4
    separated by `:` (`ABCD:EFGH:...`). Using exactly this format keeps our `kid` compatible with a
    distribution registry configured with our certificate, and with Harbor's token maker.
    """
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii").rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


class SigningKey:
    """The issuer's RSA private key and its libtrust `kid`."""

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        if private_key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA key must be at least {MIN_RSA_BITS} bits")
        self.private_key = private_key
        self.public_key = private_key.public_key()
        self.kid = key_id(self.public_key)

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh 2048-bit key (for tests and first-run bootstrap; production keys are passed in)."""
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS))

    @classmethod
    def from_pem(cls, pem: bytes, password: bytes | None = None) -> SigningKey:
        """Load a PEM private key (PKCS#1 or PKCS#8); raise `ValueError` if it is not RSA."""
        key = serialization.load_pem_private_key(pem, password=password)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("token signing key must be an RSA private key")
        return cls(key)

    def to_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM (encrypt at rest elsewhere, e.g. Secrets Manager)."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def public_pem(self) -> bytes:
        """The public key as SubjectPublicKeyInfo PEM."""
        return self.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def keyring(keys: Iterable[SigningKey]) -> dict[str, rsa.RSAPublicKey]:
    """Public keys by `kid`, the shape `TokenVerifier` takes (several during a key rotation)."""
    return {key.kid: key.public_key for key in keys}


def rfc3339(epoch_seconds: int) -> str:
    """`2026-11-27T18:21:00Z` for the token response's `issued_at`."""
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class IssuedToken:
    """What the token endpoint returns: the JWT, its lifetime in seconds and when it was issued."""

    token: str
    expires_in: int
    issued_at_rfc3339: str

    def to_response(self) -> dict[str, str | int]:
        """The token endpoint's JSON body; `access_token` repeats `token` for OAuth2 clients."""
        return {
            "token": self.token,
            "access_token": self.token,
            "expires_in": self.expires_in,
            "issued_at": self.issued_at_rfc3339,
        }


class TokenIssuer:
    """Mints bearer tokens for the token service."""

    def __init__(
        self,
        key: SigningKey,
        issuer: str,
        audience_default: str,
        ttl_seconds: int,
        clock: Clock = system_clock,
    ) -> None:
        if ttl_seconds < MIN_TTL_SECONDS:
            raise ValueError(f"token lifetime must be at least {MIN_TTL_SECONDS} seconds")
        self._key = key
        self._issuer = issuer
        self._audience_default = audience_default
        self._ttl = ttl_seconds
        self._clock = clock

    def issue(
        self, subject: str, audience: str | None, access: list[Access], extra: Mapping[str, Any] | None = None
    ) -> IssuedToken:
        """Sign a token for `subject` (empty for anonymous) granting `access` to `audience`.

        An empty or missing `audience` (the request's `service`) falls back to the default.
        `extra` adds private claims (a refresh token's account binding); it cannot replace ours.
        """
        import jwt  # noqa: PLC0415 (PyJWT loads cryptography's x509 stack: only when a token is made)

        now = int(self._clock())
        claims: dict[str, Any] = {
            **(extra or {}),
            "iss": self._issuer,
            "sub": subject,
            "aud": audience or self._audience_default,
            "exp": now + self._ttl,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_urlsafe(16),  # 22 characters, 128 random bits
            "access": [entry.to_claim() for entry in access],
        }
        token = jwt.encode(claims, self._key.private_key, algorithm=ALGORITHM, headers={"kid": self._key.kid})
        return IssuedToken(token=token, expires_in=self._ttl, issued_at_rfc3339=rfc3339(now))


@dataclass(frozen=True)
class Claims:
    """The verified content of a bearer token."""

    subject: str
    audience: str
    expires_at: int
    jti: str
    access: list[Access] = field(default_factory=list)
    extra: Mapping[str, Any] = field(default_factory=dict)  # private claims, for their issuer to read

    def actions_for(self, type_: str, name: str) -> set[str]:
        """Every action the token grants on resource `type_`/`name` (entries may repeat a resource)."""
        return {
            action for entry in self.access if entry.type == type_ and entry.name == name for action in entry.actions
        }


class TokenVerifier:
    """Checks bearer tokens on `/v2/` requests without calling the issuer."""

    def __init__(
        self,
        keys: Mapping[str, rsa.RSAPublicKey],
        issuer: str,
        audience: str,
        clock: Clock = system_clock,
        leeway_seconds: int = 0,
    ) -> None:
        self._keys = dict(keys)
        self._issuer = issuer
        self._audience = audience
        self._clock = clock
        self._leeway = leeway_seconds
        # Payloads of tokens whose signature, issuer and audience checked out, by the whole token
        # text: a client sends one token with every request of a push, and the RSA check and
        # PyJWT's parsing were a quarter of a blob HEAD. Only the identical text is found here;
        # the times are checked again on every use.
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._verified_lock = threading.Lock()

    def verify(self, token: str) -> Claims:
        """Return the token's claims, or raise `InvalidToken` for any defect."""
        payload = self._verified_payload(token)
        self._check_times(payload)
        return Claims(
            subject=_string_claim(payload, "sub"),
            audience=self._audience,  # `aud` may be a list; PyJWT has checked ours is in it
            expires_at=_int_claim(payload, "exp"),
            jti=_string_claim(payload, "jti"),
            access=_access_claim(payload),
            extra={k: v for k, v in payload.items() if k not in _REGISTERED_CLAIMS},
        )

    def _verified_payload(self, token: str) -> dict[str, Any]:
        with self._verified_lock:
            payload = self._verified.get(token)
            if payload is not None:
                self._verified.move_to_end(token)
                return payload
        payload = self._decode(token, self._key_for(token))
        with self._verified_lock:
            self._verified[token] = payload
            if len(self._verified) > _VERIFIED_KEPT:
                self._verified.popitem(last=False)
        return payload

    def _key_for(self, token: str) -> rsa.RSAPublicKey:
        """The trusted key named by the header's `kid`, after refusing any algorithm but RS256."""
        import jwt  # noqa: PLC0415 (only when a token is read)

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"malformed token: {exc}") from exc
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"algorithm {header.get('alg')!r} is not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or kid not in self._keys:
            raise InvalidToken(f"unknown signing key {kid!r}")
        return self._keys[kid]

    def _decode(self, token: str, key: rsa.RSAPublicKey) -> dict[str, Any]:
        """Signature, issuer, audience and required claims; time is checked separately against our clock."""
        import jwt  # noqa: PLC0415 (only when a token is read)

        try:
            return jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={
                    "require": list(_REQUIRED_CLAIMS),
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc

    def _check_times(self, payload: Mapping[str, Any]) -> None:
        now = self._clock()
        exp, nbf, iat = (_int_claim(payload, name) for name in ("exp", "nbf", "iat"))
        if now >= exp + self._leeway:
            raise InvalidToken("token has expired")
        if now + self._leeway < nbf:
            raise InvalidToken("token is not yet valid (nbf)")
        if now + self._leeway < iat:
            raise InvalidToken("token was issued in the future (iat)")


def _int_claim(payload: Mapping[str, Any], name: str) -> int:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"claim {name!r} must be a number")
    return int(value)


def _string_claim(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str):
        raise InvalidToken(f"claim {name!r} must be a string")
    return value


def _access_claim(payload: Mapping[str, Any]) -> list[Access]:
    entries = payload.get("access", [])
    if not isinstance(entries, list):
        raise InvalidToken("claim 'access' must be a list")
    try:
        return [Access.from_claim(entry) for entry in entries]
    except ValueError as exc:
        raise InvalidToken(f"claim 'access' is malformed: {exc}") from exc
