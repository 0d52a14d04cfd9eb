"""Listing a repository with 5,000 artifacts and 10,000 tags: time and AWS calls per page.

One repository: artifact 0 carries 5,001 tags (a long-lived release line), the 4,999 others one each.

Run as `python -m tests.bench.listing [--json FILE]` (`make bench` runs it in a subprocess, like
awscalls). The rows are written straight into moto's table (BatchWriteItem), then page 1, a middle
page and the last page of the artifact list and of an artifact's tag list are requested through the
app (werkzeug + ChaliceWSGI, as the functional tests do), once by page number and once by following
the `Link: rel="next"` cursor, and the AWS calls of each request are counted.

What to read from it: the calls per page by cursor stay the same on every page (constant work); by
bare page number the Query reads the skipped keys, which costs read units, and one more call per
~1 MB of them; `X-Total-Count` is a COUNT Query over the keys. The milliseconds are moto's, whose
Query walks the whole table in Python: they show the trend, not DynamoDB's latency.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import quote

from tests.bench.awscalls import ADMIN, CallCounter, in_process_app
from tests.bench.common import report

REPO = "library/bench-list"
ARTIFACTS, TAGS, PAGE_SIZE = 5_000, 10_000, 50
API = "/api/v2.0"


def _digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _manifest(repo: str, digest: str, push_time: int) -> dict[str, Any]:
    body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}).encode()
    return {
        "pk": _s(f"REPO#{repo}"), "sk": _s(f"MANIFEST#{digest}"),
        "media_type": _s("application/vnd.oci.image.manifest.v1+json"), "size": _n(len(body)), "body": {"B": body},
        "in_s3": {"BOOL": False}, "blobs": {"L": []}, "children": {"L": []}, "refs_in_body": {"BOOL": False},
        "annotations_in_body": {"BOOL": False}, "created_at": _n(push_time), "kind": _s("IMAGE"),
        "config_media_type": _s("application/vnd.oci.image.config.v1+json"), "extra_attrs": _s("{}"),
        "icon": _s(""), "total_size": _n(1234), "push_time": _n(push_time),
        "gsi1pk": _s(f"ART#{repo}"), "gsi1sk": _s(f"{push_time:012d}#{digest}"),
    }  # fmt: skip


def _tag(repo: str, tag: str, digest: str, now: int) -> dict[str, Any]:
    return {
        "pk": _s(f"REPO#{repo}"), "sk": _s(f"TAG#{tag}"), "digest": _s(digest), "updated_at": _n(now),
        "gsi1pk": _s(f"REPO#{repo}#M#{digest}"), "gsi1sk": _s(f"TAG#{tag}"),
    }  # fmt: skip


def _repository(repo: str, now: int) -> dict[str, Any]:
    return {"pk": _s("REPOS"), "sk": _s(repo), "project": _s("library"), "created_at": _n(now), "updated_at": _n(now)}


def populate() -> str:
    """Write the rows; returns the digest of the artifact that holds most tags."""
    import boto3

    from chalicelib.config import get_settings

    settings = get_settings()
    client = boto3.client("dynamodb", region_name=settings.aws_region)
    now = int(time.time()) - ARTIFACTS
    items = [_repository(REPO, now)]
    for i in range(ARTIFACTS):
        digest = _digest(f"artifact {i}")
        items.append(_manifest(REPO, digest, now + i))
        items.append(_tag(REPO, f"v{i}", digest, now + i))
    many = _digest("artifact 0")
    items.extend(_tag(REPO, f"release-{i:05d}", many, now) for i in range(TAGS - ARTIFACTS))
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        client.batch_write_item(RequestItems={settings.table_name: batch})
    return many


def measure() -> dict[str, Any]:
    counter = CallCounter()
    with in_process_app(counter) as client:
        assert client.get("/v2/", auth=ADMIN).status_code == 200  # bootstrap and credential cache
        started = time.perf_counter()
        many = populate()
        populate_s = time.perf_counter() - started

        def get(path: str, query: dict[str, str] | None = None) -> tuple[Any, list[str], float]:
            begin = time.perf_counter()
            with counter.measure() as calls:
                response = client.get(path, query_string=query, auth=ADMIN)
                response.get_data()
            elapsed = time.perf_counter() - begin
            assert response.status_code == 200, (path, response.status_code, response.get_data()[:300])
            return response, list(calls), elapsed

        artifacts = f"{API}/projects/library/repositories/{quote(REPO.split('/', 1)[1])}/artifacts"
        tags = f"{artifacts}/{many}/tags"
        rows = []
        for label, path, total, extra in (
            ("artifacts (with_tag=false)", artifacts, ARTIFACTS, {"with_tag": "false"}),
            ("artifacts (with_tag, default)", artifacts, ARTIFACTS, {}),
            ("tags of artifact 0", tags, TAGS - ARTIFACTS + 1, {}),
        ):
            last = -(-total // PAGE_SIZE)
            for name, page in (("first", 1), ("middle", last // 2), ("last", last)):
                query = {**extra, "page": str(page), "page_size": str(PAGE_SIZE)}
                response, calls, elapsed = get(path, query)
                count = len(response.get_json())
                rows.append(_row(label, f"page {page} ({name}) by number", calls, elapsed, count, response))
                if page > 1:
                    previous, *_ = get(path, {**extra, "page": str(page - 1), "page_size": str(PAGE_SIZE)})
                    next_url = previous.headers["Link"].split(",")[-1].split(";")[0].strip(" <>")
                    assert "cursor=" in next_url, previous.headers["Link"]
                    response, calls, elapsed = get(next_url)
                    count = len(response.get_json())
                    rows.append(_row(label, f"page {page} ({name}) by Link cursor", calls, elapsed, count, response))
    return {"artifacts": ARTIFACTS, "tags": TAGS, "page_size": PAGE_SIZE,
            "populate_s": round(populate_s, 1), "pages": rows}  # fmt: skip


def _row(label: str, page: str, calls: list[str], elapsed: float, count: int, response: Any) -> dict[str, Any]:
    return {
        "list": label,
        "page": page,
        "items": count,
        "total_header": response.headers.get("X-Total-Count"),
        "ms": round(elapsed * 1000, 1),
        "calls": len(calls),
        "breakdown": dict(sorted(Counter(calls).items())),
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"{result['artifacts']} artifacts, {result['tags']} tags, page_size {result['page_size']} "
          f"(rows written in {result['populate_s']} s)")  # fmt: skip
    print(f"{'list':<30} {'page':<32} {'items':>5} {'total':>6} {'ms (moto)':>10} {'calls':>5}  breakdown")
    for row in result["pages"]:
        breakdown = ", ".join(f"{k.replace('dynamodb:', 'ddb:')} x{v}" for k, v in row["breakdown"].items())
        print(f"{row['list']:<30} {row['page']:<32} {row['items']:>5} {row['total_header']:>6} {row['ms']:>10.1f} "
              f"{row['calls']:>5}  {breakdown}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args(argv)
    result = measure()
    report(result, print_table, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
