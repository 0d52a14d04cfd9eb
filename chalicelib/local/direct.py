"""DynamoDB calls of the embedded runner handed to moto's handler directly, not through botocore's
HTTP pipeline.

A botocore call on the in-process mock runs the whole client pipeline before moto sees it:
endpoint-ruleset resolution, a dozen event hooks, a SigV4 signature, the retry handler, an
`AWSPreparedRequest`, moto's URL matching against every service's patterns. Profiled during skopeo
pushes (py-spy, `docs/benchmarks.md`), that was about a third of each DynamoDB call's CPU, and a
zero-byte blob `PUT` makes seven of them. What a call means is decided by the two ends this keeps:
botocore's own parameter validation and JSON serializer build the request body, moto's
`DynamoHandler.dispatch` (and the backend behind it, with `moto_patches`' lock and the journal's
observer) answers it, and botocore's own response parser reads the answer. Errors are raised as
botocore raises them (`client.exceptions.from_code`, the parsed error response, `CancellationReasons`
included). What is skipped has no effect on an in-process mock: there is no endpoint, no signature
to check, no connection to retry.

Only DynamoDB clients without an endpoint URL (the mock) take this path; every other client,
and every call while the patch is not installed, runs botocore as usual. `install` is called by the
local runner after `mock_aws` started; tests/unit/local/test_direct.py holds the two paths to the
same answers and errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.awsrequest import HeadersDict
from botocore.client import BaseClient
from moto.core.request import Request
from moto.dynamodb.responses import DynamoHandler
from werkzeug.exceptions import HTTPException

_ORIGINAL: list[Callable[..., Any]] = []
_CLIENT_CLASS: Any = BaseClient  # `_make_api_call` is private: not in botocore's stubs


def install() -> None:
    """Route the in-process DynamoDB clients' calls to moto directly (idempotent)."""
    if _ORIGINAL:
        return
    original = _CLIENT_CLASS._make_api_call
    _ORIGINAL.append(original)

    def _make_api_call(client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        if client.meta.service_model.service_name == "dynamodb" and _mocked(client):
            return call(client, operation_name, api_params)
        return original(client, operation_name, api_params)

    _CLIENT_CLASS._make_api_call = _make_api_call


def uninstall() -> None:
    """botocore's own path again (tests)."""
    if _ORIGINAL:
        _CLIENT_CLASS._make_api_call = _ORIGINAL.pop()


def _mocked(client: BaseClient) -> bool:
    """A client of the mock: AWS's own endpoint, which `mock_aws` intercepts (an endpoint URL
    set by configuration is a real DynamoDB, DynamoDB Local say, and keeps botocore's path)."""
    return str(client.meta.endpoint_url).endswith(".amazonaws.com")


def call(client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
    """One DynamoDB call: botocore's validation and serialisation, moto's handler, botocore's parser."""
    operation_model = client.meta.service_model.operation_model(operation_name)
    # Validates the parameters first (ParamValidationError, as botocore raises it).
    request_dict = client._serializer.serialize_to_request(api_params, operation_model)  # type: ignore[attr-defined]
    headers = dict(request_dict["headers"])
    region = client.meta.region_name
    # moto reads the account from the access key and the region from the credential scope.
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={_access_key(client)}/20200101/{region}/dynamodb/aws4_request, "
        "SignedHeaders=host;x-amz-target, Signature=0"
    )
    url = client.meta.endpoint_url.rstrip("/") + "/"
    request = Request.from_primitives("POST", url, headers, request_dict["body"])
    try:
        status, response_headers, body = DynamoHandler.dispatch(request, request.raw_url, request.headers)
    except HTTPException as exc:  # what moto's botocore stubber does with them
        status, response_headers, body = exc.code, exc.get_headers(), exc.get_body()
    if isinstance(body, str):
        body = body.encode()
    response = {
        "status_code": status,
        "headers": HeadersDict(response_headers),  # as botocore's AWSResponse holds them
        "body": body,
        "context": {"operation_name": operation_name},
    }
    parser = client._response_parser  # type: ignore[attr-defined]
    parsed = parser.parse(response, operation_model.output_shape)
    parsed.setdefault("ResponseMetadata", {})["RetryAttempts"] = 0
    if status >= 300:
        error = parsed.get("Error", {})
        # The error's modelled members (`Item` of a failed condition, `CancellationReasons`), as
        # botocore's endpoint adds them in a second pass.
        code = error.get("Code")
        error_shape = operation_model.service_model.shape_for_error_code(code) if code is not None else None
        if error_shape is not None:
            parsed.update(parser.parse(response, error_shape))
        error_class: Any = client.exceptions.from_code(error.get("QueryErrorCode") or code)
        raise error_class(parsed, operation_name)
    return parsed


def _access_key(client: BaseClient) -> str:
    credentials = client._request_signer._credentials  # type: ignore[attr-defined]
    return str(credentials.access_key) if credentials is not None else "local"
