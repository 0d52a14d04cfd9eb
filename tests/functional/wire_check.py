"""Every /api/v2.0 JSON answer the functional suite produces, checked against Harbor's model.

`checked(app)` wraps the WSGI app the suites drive: each successful JSON response under /api/v2.0
is parsed strictly with the model `chalicelib.api.mgmt.wire.routes` registers for its route (types,
RFC 3339 times, no unknown fields, required fields present, omit-empty fields absent when empty).
A mismatch fails the test that made the request, naming the route and the field, so drift from
Harbor's swagger is caught where it starts. Routes without a model are counted and listed at the
end of the run (`unmodelled`), not failed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import ValidationError

API = "/api/v2.0"
unmodelled: Counter[str] = Counter()


class DriftFromHarbor(AssertionError):
    """A response that Harbor's generated clients would read differently."""


def check(method: str, path: str, status: int, content_type: str, body: bytes) -> None:
    from chalicelib.api.mgmt.wire.routes import model_for

    if not path.startswith(f"{API}/") or not 200 <= status < 300 or "json" not in content_type or not body:
        return
    found = model_for(method, path.removeprefix(API))
    if found is None:
        unmodelled[f"{method} {path.removeprefix(API)}"] += 1
        return
    template, answer = found
    document = json.loads(body)
    items = document if answer.many else [document]
    if answer.many and not isinstance(document, list):
        raise DriftFromHarbor(f"{method} {template}: Harbor answers a JSON array, got {type(document).__name__}")
    if getattr(answer, "values", False):
        if not isinstance(document, dict):
            raise DriftFromHarbor(f"{method} {template}: Harbor answers a JSON object, got {type(document).__name__}")
        items = list(document.values())
    for index, item in enumerate(items):
        try:
            answer.model.model_validate(item)
        except ValidationError as exc:
            where = f"[{index}]" if answer.many else ""
            raise DriftFromHarbor(
                f"{method} {template}{where} does not match Harbor's {answer.model.__name__}:\n{exc}\n{item!r:.2000}"
            ) from None


def checked(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not path.startswith(f"{API}/"):
            return app(environ, start_response)
        seen: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen["status"], seen["headers"] = int(status.split(maxsplit=1)[0]), headers
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        body = b"".join(app(environ, capture))
        content_type = next((v for k, v in seen.get("headers", []) if k.lower() == "content-type"), "")
        check(environ["REQUEST_METHOD"], path, seen.get("status", 0), content_type, body)
        return [body]

    return wsgi
