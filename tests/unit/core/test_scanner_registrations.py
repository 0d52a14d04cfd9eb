"""The registration record's pure rules: Harbor's URL and auth validation, the stored form."""

from __future__ import annotations

import pytest

from chalicelib.core.scanners import (
    InvalidRegistration,
    ScannerRegistration,
    is_uuid,
    parse_auth,
    validate,
    validate_url,
)


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("http://trivy:8080", "http://trivy:8080"),
        ("https://trivy.example.com/", "https://trivy.example.com"),
        ("trivy:8080", "http://trivy:8080"),  # Harbor: no scheme means http
        ("  http://10.0.0.5:8080/base//  ", "http://10.0.0.5:8080/base"),
        ("http://[fd00::1]:8080", "http://[fd00::1]:8080"),
    ],
)
def test_a_good_url_is_normalised_as_harbor_does(given: str, kept: str) -> None:
    assert validate_url(given) == kept


@pytest.mark.parametrize(
    "url",
    ["", "   ", "ftp://x", "file:///etc/passwd", "http://", "http://u:p@x", "http://x:0", "http://x:70000",
     "http://[::1", "http://x y", "http://x/?a=1", "http://x/#f", "h" * 600],
)  # fmt: skip
def test_a_bad_url_is_refused(url: str) -> None:
    with pytest.raises(InvalidRegistration):
        validate_url(url)


@pytest.mark.parametrize(
    ("given", "auth"),
    [(None, ""), ("", ""), ("Basic", "Basic"), ("Bearer", "Bearer"), ("APIKey", "APIKey"),
     ("X-ScannerAdapter-API-Key", "APIKey"), (" Bearer ", "Bearer")],
)  # fmt: skip
def test_auth_types_are_harbors(given: str | None, auth: str) -> None:
    assert parse_auth(given) == auth


@pytest.mark.parametrize("given", ["basic", "Digest", "OAuth", "X-Api-Key", "Basic Bearer"])
def test_other_auth_types_are_refused(given: str) -> None:
    with pytest.raises(InvalidRegistration, match="not supported"):
        parse_auth(given)


def _registration(**fields: object) -> ScannerRegistration:
    base: dict[str, object] = {"uuid": "u", "name": "n", "url": "http://x"}
    base.update(fields)
    return ScannerRegistration(**base)  # type: ignore[arg-type]


def test_an_auth_type_needs_a_credential_or_a_kept_one() -> None:
    with pytest.raises(InvalidRegistration, match="access_credential is required"):
        validate(_registration(auth="Bearer"), credential=None)
    assert validate(_registration(auth="Bearer"), credential="t").auth == "Bearer"
    assert validate(_registration(auth="Bearer", credential_ref="ref"), credential=None).credential_ref == "ref"


@pytest.mark.parametrize(
    "fields",
    [{"name": ""}, {"name": "n" * 129}, {"name": "a\nb"}, {"description": "d" * 1025},
     {"is_default": True, "disabled": True}],
)  # fmt: skip
def test_other_invalid_registrations_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidRegistration):
        validate(_registration(**fields), credential=None)


def test_the_stored_form_round_trips_and_holds_no_secret() -> None:
    record = _registration(auth="APIKey", credential_ref="arn:aws:secretsmanager:r:1:secret:x", is_default=True,
                           immutable=True, create_time=5, update_time=6)  # fmt: skip
    assert ScannerRegistration.from_record(record.record()) == record
    assert "credential" not in {k for k in record.record() if k != "credential_ref"}


def test_uuids_are_recognised() -> None:
    assert is_uuid("56866082-a109-4c1b-8151-ee8722b89600")
    assert not is_uuid("56866082-A109-4c1b-8151-ee8722b89600x")
    assert not is_uuid("1")
