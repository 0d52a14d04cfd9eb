"""The mark phase's view (`services/gc.py` GcView): what it keeps with and without `detail`."""

from __future__ import annotations

from typing import Any

from chalicelib.services.gc import GcView
from chalicelib.stores.gc import parse

D1, D2, M1 = "sha256:" + "1" * 64, "sha256:" + "2" * 64, "sha256:" + "a" * 64


def _s(value: str) -> dict[str, str]:
    return {"S": value}


ROWS: list[dict[str, Any]] = [
    {"pk": _s(f"BLOB#{D1}"), "sk": _s("BLOB"), "state": _s("none"), "version": {"N": "3"}, "size": {"N": "10"},
     "updated_at": {"N": "100"}},
    {"pk": _s(f"BLOB#{D2}"), "sk": _s("BLOB"), "size": {"N": "20"}},
    {"pk": _s("PROJECT#library"), "sk": _s(f"BLOB#{D1}"), "created_at": {"N": "50"}},
    {"pk": _s("PROJECT#library"), "sk": _s(f"REF#{D1}#library/app@{M1}")},
    {"pk": _s("REPO#library/app"), "sk": _s(f"BLOB#{D1}")},
    {"pk": _s("REPO#library/app"), "sk": _s(f"MANIFEST#{M1}"), "children": {"L": [_s(D2)]},
     "refs_in_body": {"BOOL": False}},
    {"pk": _s("REPO#library/app"), "sk": _s("TAG#v1"), "digest": _s(M1)},
    {"pk": _s(f"REPO#library/app#M#{M1}"), "sk": _s("TAG#v1"), "digest": _s(M1)},
    {"pk": _s("UPLOAD#u1"), "sk": _s("UPLOAD"), "pending": {"L": [{"M": {"key": _s("blobs/sha256/" + "3" * 64)}}]}},
]  # fmt: skip


def _view(detail: bool) -> GcView:
    view = GcView(detail)
    for item in ROWS:
        row = parse(item, detail)  # the store's typed rows of the scanned items
        if row is not None:
            view.add(row)
    return view


def test_with_detail_it_keeps_manifests_and_tags() -> None:
    view = _view(True)
    assert set(view.blobs) == {D1, D2}
    assert view.blobs[D1].version == 3 and view.blobs[D2].state == "none"
    assert view.held["library"] == {D1: 50}
    assert view.refs["library"][D1] == {("library/app", M1)}
    assert view.links[D1] == ["library/app"]
    assert view.manifests["library/app"][M1].children == (D2,)
    assert view.tagged["library/app"] == {M1}
    assert view.manifest_digests == {M1}
    assert view.uploads == {"u1"} and view.upload_keys == {"blobs/sha256/" + "3" * 64}


def test_without_detail_manifests_are_bare_digests_and_tags_are_not_kept() -> None:
    view = _view(False)
    assert not view.manifests and not view.tagged
    assert view.manifest_digests == {M1}  # still known to the orphan check
    assert set(view.blobs) == {D1, D2} and view.held["library"] == {D1: 50}
    assert view.refs["library"][D1] == {("library/app", M1)} and view.links[D1] == ["library/app"]


def test_the_rows_naming_one_blob_share_one_digest_string() -> None:
    view = _view(False)
    blob_key = next(d for d in view.blobs if d == D1)
    assert next(iter(view.held["library"])) is blob_key
    assert next(iter(view.refs["library"])) is blob_key
    assert next(d for d in view.links if d == D1) is blob_key
