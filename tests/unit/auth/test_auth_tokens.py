"""RS256 bearer tokens: issue/verify, every rejection path, the libtrust `kid`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from chalicelib.auth.scopes import Access
from chalicelib.auth.tokens import (
    Claims,
    InvalidToken,
    IssuedToken,
    SigningKey,
    TokenIssuer,
    TokenVerifier,
    key_id,
    keyring,
    rfc3339,
)

ISSUER = "harbor-token-issuer"
AUDIENCE = "harbor-registry"
TTL = 1800
T0 = 1_800_000_000  # 2027-01-15T08:00:00Z
KID_RE = re.compile(r"^[A-Z2-7]{4}(?::[A-Z2-7]{4}){11}$")


class FakeClock:
    """A clock tests can move; returns epoch seconds like `time.time`."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def other_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def issuer(key: SigningKey, clock: FakeClock) -> TokenIssuer:
    return TokenIssuer(key, ISSUER, AUDIENCE, TTL, clock)


@pytest.fixture
def verifier(key: SigningKey, clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(keyring([key]), ISSUER, AUDIENCE, clock, leeway_seconds=0)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64json(obj: object) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": AUDIENCE,
        "exp": T0 + TTL,
        "nbf": T0,
        "iat": T0,
        "jti": "0123456789abcdef0123",
        "access": [{"type": "repository", "name": "proj/app", "actions": ["pull"]}],
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(key: SigningKey, claims: dict[str, Any], kid: str | None = None) -> str:
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": kid or key.kid})


def _payload(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(_unb64(token.split(".")[1]))
    return payload


def _header(token: str) -> dict[str, Any]:
    header: dict[str, Any] = json.loads(_unb64(token.split(".", maxsplit=1)[0]))
    return header


# --- issue / verify --------------------------------------------------------------------------------


def test_round_trip(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    access = [Access("repository", "proj/app", ["pull", "push"]), Access("registry", "catalog", ["*"])]
    issued = issuer.issue("alice", AUDIENCE, access)
    claims = verifier.verify(issued.token)
    assert claims == Claims(subject="alice", audience=AUDIENCE, expires_at=T0 + TTL, jti=claims.jti, access=access)


def test_issued_token_fields(issuer: TokenIssuer) -> None:
    issued = issuer.issue("alice", AUDIENCE, [])
    assert isinstance(issued, IssuedToken)
    assert issued.expires_in == TTL
    assert issued.issued_at_rfc3339 == "2027-01-15T08:00:00Z"
    assert issued.to_response() == {
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": TTL,
        "issued_at": "2027-01-15T08:00:00Z",
    }


def test_claims_content(issuer: TokenIssuer, key: SigningKey) -> None:
    token = issuer.issue("robot$proj+ci", AUDIENCE, [Access("repository", "proj/app", ["pull"])]).token
    payload = _payload(token)
    jti = payload.pop("jti")
    assert payload == {
        "iss": ISSUER,
        "sub": "robot$proj+ci",
        "aud": AUDIENCE,
        "exp": T0 + TTL,
        "nbf": T0,
        "iat": T0,
        "access": [{"type": "repository", "name": "proj/app", "actions": ["pull"]}],
    }
    assert isinstance(jti, str)
    assert len(jti) >= 16
    assert _header(token) == {"alg": "RS256", "typ": "JWT", "kid": key.kid}


def test_jti_is_random(issuer: TokenIssuer) -> None:
    jtis = {_payload(issuer.issue("alice", AUDIENCE, []).token)["jti"] for _ in range(50)}
    assert len(jtis) == 50


def test_fractional_clock_is_truncated(key: SigningKey) -> None:
    issued = TokenIssuer(key, ISSUER, AUDIENCE, TTL, FakeClock(T0 + 0.9)).issue("a", AUDIENCE, [])
    assert _payload(issued.token)["iat"] == T0


def test_audience_defaults_when_missing(issuer: TokenIssuer) -> None:
    assert _payload(issuer.issue("alice", None, []).token)["aud"] == AUDIENCE
    assert _payload(issuer.issue("alice", "", []).token)["aud"] == AUDIENCE


def test_explicit_audience_is_used(issuer: TokenIssuer) -> None:
    assert _payload(issuer.issue("alice", "other-registry", []).token)["aud"] == "other-registry"


def test_anonymous_subject_is_empty(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    claims = verifier.verify(issuer.issue("", AUDIENCE, [Access("repository", "public/app", ["pull"])]).token)
    assert claims.subject == ""
    assert claims.actions_for("repository", "public/app") == {"pull"}


def test_ttl_below_minimum_rejected(key: SigningKey) -> None:
    with pytest.raises(ValueError, match="60"):
        TokenIssuer(key, ISSUER, AUDIENCE, 59)


def test_actions_for() -> None:
    claims = Claims(
        subject="a",
        audience=AUDIENCE,
        expires_at=T0,
        jti="j",
        access=[
            Access("repository", "a/b", ["pull"]),
            Access("repository", "a/b", ["push", "pull"]),
            Access("repository", "a/c", ["delete"]),
            Access("registry", "a/b", ["*"]),
        ],
    )
    assert claims.actions_for("repository", "a/b") == {"pull", "push"}
    assert claims.actions_for("repository", "a/c") == {"delete"}
    assert claims.actions_for("registry", "a/b") == {"*"}
    assert claims.actions_for("repository", "x") == set()


def test_rfc3339() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert datetime.strptime(rfc3339(T0), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp() == T0


# --- time window -----------------------------------------------------------------------------------


def test_valid_until_just_before_exp(issuer: TokenIssuer, verifier: TokenVerifier, clock: FakeClock) -> None:
    token = issuer.issue("alice", AUDIENCE, []).token
    clock.now = T0 + TTL - 1
    assert verifier.verify(token).subject == "alice"


@pytest.mark.parametrize("offset", [TTL, TTL + 1, 10 * TTL])
def test_expired(issuer: TokenIssuer, verifier: TokenVerifier, clock: FakeClock, offset: int) -> None:
    token = issuer.issue("alice", AUDIENCE, []).token
    clock.now = T0 + offset
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(token)


def test_leeway_extends_exp(issuer: TokenIssuer, key: SigningKey, clock: FakeClock) -> None:
    token = issuer.issue("alice", AUDIENCE, []).token
    lenient = TokenVerifier(keyring([key]), ISSUER, AUDIENCE, clock, leeway_seconds=30)
    clock.now = T0 + TTL + 29
    assert lenient.verify(token).subject == "alice"
    clock.now = T0 + TTL + 30
    with pytest.raises(InvalidToken, match="expired"):
        lenient.verify(token)


def test_nbf_in_future(key: SigningKey, verifier: TokenVerifier) -> None:
    token = _sign(key, _claims(nbf=T0 + 60))
    with pytest.raises(InvalidToken, match="nbf"):
        verifier.verify(token)


def test_token_from_issuer_with_fast_clock_rejected(key: SigningKey, verifier: TokenVerifier) -> None:
    token = TokenIssuer(key, ISSUER, AUDIENCE, TTL, FakeClock(T0 + 300)).issue("alice", AUDIENCE, []).token
    with pytest.raises(InvalidToken, match="not yet valid"):
        verifier.verify(token)


def test_leeway_tolerates_small_skew(key: SigningKey, clock: FakeClock) -> None:
    token = _sign(key, _claims(nbf=T0 + 5, iat=T0 + 5))
    assert TokenVerifier(keyring([key]), ISSUER, AUDIENCE, clock, leeway_seconds=10).verify(token).subject == "alice"


def test_iat_in_future(key: SigningKey, verifier: TokenVerifier) -> None:
    with pytest.raises(InvalidToken, match="iat"):
        verifier.verify(_sign(key, _claims(iat=T0 + 60)))


@pytest.mark.parametrize("claim", ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"])
def test_missing_required_claim(key: SigningKey, verifier: TokenVerifier, claim: str) -> None:
    with pytest.raises(InvalidToken):
        verifier.verify(_sign(key, _claims(**{claim: None})))


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_non_numeric_time_claim(key: SigningKey, verifier: TokenVerifier, claim: str) -> None:
    with pytest.raises(InvalidToken):
        verifier.verify(_sign(key, _claims(**{claim: "soon"})))


# --- audience / issuer / claims shape --------------------------------------------------------------


def test_wrong_audience(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token = issuer.issue("alice", "some-other-registry", []).token
    with pytest.raises(InvalidToken, match=r"[Aa]udience"):
        verifier.verify(token)


def test_audience_list_containing_ours(key: SigningKey, verifier: TokenVerifier) -> None:
    claims = verifier.verify(_sign(key, _claims(aud=["x", AUDIENCE])))
    assert claims.audience == AUDIENCE


def test_wrong_issuer(key: SigningKey, clock: FakeClock, verifier: TokenVerifier) -> None:
    token = TokenIssuer(key, "someone-else", AUDIENCE, TTL, clock).issue("alice", AUDIENCE, []).token
    with pytest.raises(InvalidToken, match=r"[Ii]ssuer"):
        verifier.verify(token)


@pytest.mark.parametrize(
    "access",
    ["repository:a:pull", [{"type": "repository"}], [{"type": "repository", "name": "a", "actions": "pull"}]],
)
def test_malformed_access_claim(key: SigningKey, verifier: TokenVerifier, access: object) -> None:
    with pytest.raises(InvalidToken, match="access"):
        verifier.verify(_sign(key, _claims(access=access)))


def test_missing_access_claim_grants_nothing(key: SigningKey, verifier: TokenVerifier) -> None:
    claims = verifier.verify(_sign(key, _claims(access=None)))
    assert claims.access == []


# --- forgery ---------------------------------------------------------------------------------------


def test_tampered_payload(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token = issuer.issue("alice", AUDIENCE, [Access("repository", "proj/app", ["pull"])]).token
    header, _, signature = token.split(".")
    forged = _payload(token)
    forged["access"][0]["actions"] = ["pull", "push", "delete"]
    with pytest.raises(InvalidToken, match=r"[Ss]ignature"):
        verifier.verify(f"{header}.{_b64json(forged)}.{signature}")


def test_tampered_subject(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token = issuer.issue("alice", AUDIENCE, []).token
    header, _, signature = token.split(".")
    forged = _payload(token) | {"sub": "admin"}
    with pytest.raises(InvalidToken):
        verifier.verify(f"{header}.{_b64json(forged)}.{signature}")


def test_tampered_signature(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token = issuer.issue("alice", AUDIENCE, []).token
    header, payload, signature = token.split(".")
    raw = bytearray(_unb64(signature))
    raw[len(raw) // 2] ^= 0x01
    with pytest.raises(InvalidToken, match=r"[Ss]ignature"):
        verifier.verify(f"{header}.{payload}.{_b64(bytes(raw))}")


def test_stripped_signature(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    header, payload, _ = issuer.issue("alice", AUDIENCE, []).token.split(".")
    with pytest.raises(InvalidToken):
        verifier.verify(f"{header}.{payload}.")


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_rejected(key: SigningKey, verifier: TokenVerifier, alg: str) -> None:
    token = f"{_b64json({'alg': alg, 'typ': 'JWT', 'kid': key.kid})}.{_b64json(_claims())}."
    with pytest.raises(InvalidToken, match="algorithm"):
        verifier.verify(token)


def test_alg_none_with_bogus_signature_rejected(key: SigningKey, verifier: TokenVerifier) -> None:
    token = f"{_b64json({'alg': 'none', 'kid': key.kid})}.{_b64json(_claims())}.{_b64(b'x')}"
    with pytest.raises(InvalidToken):
        verifier.verify(token)


@pytest.mark.parametrize(
    "public_bytes",
    [
        lambda k: k.public_pem(),
        lambda k: k.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        lambda k: k.public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
    ],
)
def test_hs256_with_public_key_as_secret_rejected(key: SigningKey, verifier: TokenVerifier, public_bytes: Any) -> None:
    """The classic key-confusion attack: HMAC-sign with the (public) verification key."""
    signing_input = f"{_b64json({'alg': 'HS256', 'typ': 'JWT', 'kid': key.kid})}.{_b64json(_claims())}"
    mac = hmac.new(public_bytes(key), signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(InvalidToken, match="algorithm"):
        verifier.verify(f"{signing_input}.{_b64(mac)}")


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256", "ES256", "HS512"])
def test_other_algorithms_rejected(key: SigningKey, verifier: TokenVerifier, alg: str) -> None:
    token = f"{_b64json({'alg': alg, 'kid': key.kid})}.{_b64json(_claims())}.{_b64(b'sig')}"
    with pytest.raises(InvalidToken, match="algorithm"):
        verifier.verify(token)


def test_rs384_signed_by_trusted_key_rejected(key: SigningKey, verifier: TokenVerifier) -> None:
    token = jwt.encode(_claims(), key.private_key, algorithm="RS384", headers={"kid": key.kid})
    with pytest.raises(InvalidToken, match="algorithm"):
        verifier.verify(token)


def test_unknown_kid(other_key: SigningKey, clock: FakeClock, verifier: TokenVerifier) -> None:
    token = TokenIssuer(other_key, ISSUER, AUDIENCE, TTL, clock).issue("alice", AUDIENCE, []).token
    with pytest.raises(InvalidToken, match="unknown signing key"):
        verifier.verify(token)


def test_missing_kid(key: SigningKey, verifier: TokenVerifier) -> None:
    token = jwt.encode(_claims(), key.private_key, algorithm="RS256")
    with pytest.raises(InvalidToken, match="unknown signing key"):
        verifier.verify(token)


def test_other_key_claiming_trusted_kid(key: SigningKey, other_key: SigningKey, verifier: TokenVerifier) -> None:
    with pytest.raises(InvalidToken, match=r"[Ss]ignature"):
        verifier.verify(_sign(other_key, _claims(), kid=key.kid))


def test_embedded_jwk_is_not_trusted(other_key: SigningKey, verifier: TokenVerifier) -> None:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(other_key.public_key))
    token = jwt.encode(_claims(), other_key.private_key, algorithm="RS256", headers={"kid": other_key.kid, "jwk": jwk})
    with pytest.raises(InvalidToken):
        verifier.verify(token)


def test_key_rotation_keyring(key: SigningKey, other_key: SigningKey, clock: FakeClock) -> None:
    rotating = TokenVerifier(keyring([key, other_key]), ISSUER, AUDIENCE, clock)
    for signer in (key, other_key):
        token = TokenIssuer(signer, ISSUER, AUDIENCE, TTL, clock).issue("alice", AUDIENCE, []).token
        assert rotating.verify(token).subject == "alice"


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c", "...", "eyJhbGciOiJSUzI1NiJ9.e30"])
def test_garbage_tokens(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(InvalidToken):
        verifier.verify(token)


def test_invalid_token_carries_reason() -> None:
    exc = InvalidToken("token has expired")
    assert exc.reason == "token has expired"
    assert str(exc) == "token has expired"


# --- keys ------------------------------------------------------------------------------------------


def test_pem_round_trip(key: SigningKey) -> None:
    pem = key.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = SigningKey.from_pem(pem)
    assert loaded.kid == key.kid
    assert loaded.to_pem() == pem
    assert loaded.private_key.private_numbers() == key.private_key.private_numbers()


def test_pem_loaded_key_signs_verifiable_tokens(key: SigningKey, clock: FakeClock, verifier: TokenVerifier) -> None:
    loaded = SigningKey.from_pem(key.to_pem())
    token = TokenIssuer(loaded, ISSUER, AUDIENCE, TTL, clock).issue("alice", AUDIENCE, []).token
    assert verifier.verify(token).subject == "alice"


def test_from_pkcs1_pem(key: SigningKey) -> None:
    pkcs1 = key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    assert pkcs1.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert SigningKey.from_pem(pkcs1).kid == key.kid


def test_from_encrypted_pem(key: SigningKey) -> None:
    encrypted = key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )
    assert SigningKey.from_pem(encrypted, password=b"pw").kid == key.kid


def test_from_pem_rejects_non_rsa() -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="RSA"):
        SigningKey.from_pem(pem)


def test_rejects_small_rsa_key() -> None:
    with pytest.raises(ValueError, match="2048"):
        SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=1024))


def test_from_pem_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        SigningKey.from_pem(b"not a key")


def test_generated_key_is_2048_bits(key: SigningKey) -> None:
    assert key.private_key.key_size == 2048


def test_kid_format(key: SigningKey, other_key: SigningKey) -> None:
    for k in (key, other_key):
        assert KID_RE.match(k.kid), k.kid
        groups = k.kid.split(":")
        assert len(groups) == 12
        assert all(len(g) == 4 for g in groups)


def test_kid_is_deterministic(key: SigningKey, other_key: SigningKey) -> None:
    assert SigningKey.from_pem(key.to_pem()).kid == key.kid
    assert key_id(key.public_key) == key.kid
    assert other_key.kid != key.kid


def test_kid_matches_libtrust_algorithm(key: SigningKey) -> None:
    """Independent restatement of libtrust's keyIDFromCryptoKey: SHA-256(PKIX DER)[:30] → base32 → 4-char groups."""
    der = key.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    assert "=" not in b32  # 240 bits is exactly 48 base32 characters
    expected = ":".join(b32[i : i + 4] for i in range(0, 48, 4))
    assert key.kid == expected


def test_kid_known_vector() -> None:
    """A fixed public key and its kid, cross-checked outside Python with
    `openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | head -c 30 | base32`."""
    public_key = serialization.load_pem_public_key(FIXED_PUBLIC_PEM)
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert key_id(public_key) == FIXED_KID


FIXED_KID = "SKR7:G7X6:WVUW:7SSN:VRTA:Z7ZA:P64A:B2ME:RSGP:YT3F:H6OM:TTAL"
FIXED_PUBLIC_PEM = b"""-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAza8qOoHdXsjWQovlKfTv
mpxD5n5GRLkwWXgX+MMmk1Ox4oeu5CfcUeeWzHRB2slHsA8qMVYdVIJzSUATApjr
mLPGxuBkDMe2F3HEVBCUE3D6gQYnpg2B19rYNfgjHezto9xQ3Afon729nGlcvBnx
OQrfkCR/cx5RvzsdMAA8BrClQslBkvoOdOQ9fpixTNReJeezgOVcYNNgDmtNA6I5
60uiRUwv2TsS5dxq5tqC0wUqdzk/CW7Ecdos9+JC/OkpxGfUtb+Z8ZCbYLEER7el
8mV6duuP4TbByDqeQmFqgmFeS0zm+kwinHJ3MKDr+yYHKwtK0J951xXiPjb7ZF89
cwIDAQAB
-----END PUBLIC KEY-----
"""


# --- the verified-token memo -------------------------------------------------------------------------


def test_a_token_is_checked_once_and_its_times_on_every_use(
    issuer: TokenIssuer, verifier: TokenVerifier, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[str] = []
    decode = verifier._decode

    def counting(token: str, key: Any) -> dict[str, Any]:
        decoded.append(token)
        return decode(token, key)

    monkeypatch.setattr(verifier, "_decode", counting)
    token = issuer.issue("alice", AUDIENCE, [Access("repository", "proj/app", ["pull"])]).token
    first, second = verifier.verify(token), verifier.verify(token)
    assert first == second and decoded == [token]
    clock.now = T0 + TTL  # remembered, and expired all the same
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(token)


def test_a_remembered_token_vouches_for_no_other_text(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token = issuer.issue("alice", AUDIENCE, []).token
    verifier.verify(token)
    header, payload, signature = token.split(".")
    raw = bytearray(_unb64(signature))
    raw[0] ^= 0x01
    with pytest.raises(InvalidToken, match=r"[Ss]ignature"):
        verifier.verify(f"{header}.{payload}.{_b64(bytes(raw))}")
    with pytest.raises(InvalidToken):
        verifier.verify(token + "x")


def test_the_memo_is_bounded(issuer: TokenIssuer, verifier: TokenVerifier, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.auth import tokens

    monkeypatch.setattr(tokens, "_VERIFIED_KEPT", 3)
    issued = [issuer.issue(f"user{i}", AUDIENCE, []).token for i in range(5)]
    for token in issued:
        verifier.verify(token)
    assert list(verifier._verified) == issued[2:]
    assert verifier.verify(issued[0]).subject == "user0"  # checked again, then remembered
    assert list(verifier._verified) == [*issued[3:], issued[0]]
