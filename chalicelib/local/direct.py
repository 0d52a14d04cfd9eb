"""DynamoDB calls of the embedded runner handed to moto's handler directly, not through botocore's
HTTP pipeline.

A botocore call on the in-process mock runs the whole client pipeline before moto sees it:
endpoint-ruleset resolution, a dozen event hooks, a SigV4 signature, the retry handler, an
`AWSPreparedRequest`, moto's URL matching against every service's patterns. Profiled during skopeo
pushes (py-spy, `docs/benchmarks.md`), that was about a third of each DynamoDB call's CPU, and a
zero-byte blob `PUT` makes seven of them. What a call means is decided by the two ends this keeps:
botocore's own parameter validation, moto's `DynamoHandler` actions (and the backend behind them,
with `moto_patches`' lock and the journal's observer) and botocore's own response parser. Errors are
raised as botocore raises them (`client.exceptions.from_code`, the parsed error response,
`CancellationReasons` included). What is skipped has no effect on an in-process mock: there is no
endpoint, no signature to check, no connection to retry.

Between the two ends, the request's text is skipped too. botocore's serializer writes the
parameters as JSON, moto builds a werkzeug request around it, parses its URL, query string, form
and body, then decodes the JSON and walks the input shape over it: per call, as much CPU as the
action itself for a GetItem. Here moto's handler is set up without a request (`_Handler`) and given
the parameters as its parser would have read them (`_moto_params`: blobs as bytes, `None`s dropped,
fresh containers; anything unusual takes the JSON round trip itself). The answer keeps its JSON (moto
writes it, botocore's parser reads it), read by a copy of the client's parser that reads each
`AttributeValue` without trying its ten members in turn (`_attribute_value_parser`).

Only DynamoDB clients without an endpoint URL (the mock) take this path; every other client,
and every call while the patch is not installed, runs botocore as usual. `install` is called by the
local runner after `mock_aws` started; tests/unit/local/test_direct.py holds the two paths to the
same answers and errors, the parameters to moto's own parsing of botocore's body, and the parser
copy to botocore's. `python -m tests.bench.dynamocalls` measures the CPU per call of both paths.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from botocore.awsrequest import HeadersDict
from botocore.client import BaseClient
from botocore.exceptions import ParamValidationError
from botocore.validate import ParamValidationDecorator, ParamValidator
from moto.core.parse import PROTOCOL_PARSERS
from moto.core.responses import BaseResponse
from moto.core.utils import get_service_model, utcnow
from moto.dynamodb.responses import DynamoHandler
from moto.iam.models import mark_account_as_visited
from moto.utilities.aws_headers import gen_amzn_requestid_long
from moto.utilities.utils import get_partition
from werkzeug.datastructures import Headers, ImmutableMultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.http import http_date

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
    """One DynamoDB call: botocore's validation, moto's handler, botocore's parser."""
    constants = _constants(client)
    operation_model = client.meta.service_model.operation_model(operation_name)
    params = _moto_params(client, operation_model, api_params)
    handler = _Handler()
    handler.set_up(constants, operation_model.name, params)
    try:
        status, response_headers, body = handler.call_action()
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
    parser = constants.parser
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


class _Constants:
    """What is the same for every call of one client: its endpoint, region and credential."""

    def __init__(self, client: BaseClient) -> None:
        metadata = client.meta.service_model.metadata
        self.url = client.meta.endpoint_url.rstrip("/") + "/"
        self.parsed_url = urlparse(self.url)
        # moto's `get_region_from_url`: the endpoint's region, else the credential scope's.
        match = BaseResponse.region_regex.search(self.url)
        self.region = match.group(1) if match else client.meta.region_name
        self.partition = get_partition(self.region)
        self.target_prefix = metadata["targetPrefix"]
        self.content_type = f"application/x-amz-json-{metadata['jsonVersion']}"
        # moto reads the account from the access key.
        self.authorization = (
            f"AWS4-HMAC-SHA256 Credential={_access_key(client)}/20200101/{self.region}/dynamodb/aws4_request, "
            "SignedHeaders=host;x-amz-target, Signature=0"
        )
        # botocore validates the parameters unless the client was configured not to.
        self.validate = isinstance(client._serializer, ParamValidationDecorator)  # type: ignore[attr-defined]
        self.parser = _attribute_value_parser(client._response_parser)  # type: ignore[attr-defined]


_CONSTANTS: weakref.WeakKeyDictionary[BaseClient, _Constants] = weakref.WeakKeyDictionary()


def _constants(client: BaseClient) -> _Constants:
    constants = _CONSTANTS.get(client)
    if constants is None:
        constants = _CONSTANTS[client] = _Constants(client)
    return constants


class _Handler(DynamoHandler):
    """moto's DynamoDB handler, set up from the call's parameters rather than from an HTTP request.

    Replaces `BaseResponse.setup_class` and `parse_parameters` of moto 5.2.5 (`moto_patches`'
    version check holds the pin): those build the request's URL, query string, form and body views
    through werkzeug, parse the JSON body as a query string too, and walk the operation's input
    shape over the decoded JSON, per call. `DynamoHandler`'s actions read only `self.body` (the
    parsed parameters), the region and the account; `call_action` reads the target and content
    type from the headers. Everything else `setup_class` sets is set here to what it would hold for
    this request. moto's IAM checks (`set_initial_no_auth_action_count`) are not supported: the
    direct path has no signature for them to check.
    """

    def set_up(self, constants: _Constants, operation: str, params: dict[str, Any]) -> None:
        headers = Headers(
            [
                ("Content-Type", constants.content_type),
                ("X-Amz-Target", f"{constants.target_prefix}.{operation}"),
                ("Authorization", constants.authorization),
                ("Host", constants.parsed_url.netloc),
            ]
        )
        self.is_werkzeug_request = False
        self.normalized_request = None  # type: ignore[assignment]
        self.parsed_url = constants.parsed_url
        self.form_data = ImmutableMultiDict()
        self.querystring = self.data = {}
        self.body = self.raw_body = self.params = params
        self.uri = constants.url
        self.path = self.raw_path = constants.parsed_url.path
        self.method = "POST"
        self.region = constants.region
        self.partition = constants.partition
        self.uri_match = {}
        self.headers = headers
        self.response_headers = {"server": "amazon.com", "date": http_date(utcnow())}
        self.access_key = self.get_access_key()
        self.current_account = self.get_current_account()
        mark_account_as_visited(
            account_id=self.current_account, access_key=self.access_key, service="dynamodb", region=self.region
        )

    @staticmethod
    def _enrich_response(headers: dict[str, str], body: Any) -> tuple[dict[str, str], Any]:
        """moto's, without its search of the whole answer for an XML `<RequestId>` to rewrite when
        there is none (a JSON answer has none; a Query page is tens of kilobytes)."""
        if isinstance(body, str) and "<RequestId>" not in body:
            if "status" in headers:
                headers["status"] = str(headers["status"])
            gen_amzn_requestid_long(headers)
            return headers, body
        return DynamoHandler._enrich_response(headers, body)


def _attribute_value_parser(parser: Any) -> Any:
    """A copy of the client's response parser that reads DynamoDB's `AttributeValue`s in one step.

    Every attribute of every item in an answer is an `AttributeValue`: a tagged union of ten
    members with one present (`{"S": "x"}`). botocore's JSON parser reads one by copying it to
    check the union's tag, then looking up each of the ten members in turn. This one reads the
    present member and parses it with the same handler, and leaves anything else (several keys, an
    unknown tag, a null) to botocore's own method: the same result.
    """
    fast = copy.copy(parser)
    structure = fast._handle_structure  # botocore's method, on the copy: its members read fast too

    def _handle_structure(shape: Any, value: Any) -> Any:
        if shape.name == "AttributeValue" and type(value) is dict and len(value) == 1:
            ((tag, raw),) = value.items()
            member = shape.members.get(tag)
            if member is not None and raw is not None and "name" not in member.serialization:
                return {tag: fast._parse_shape(member, raw)}
        return structure(shape, value)

    fast._handle_structure = _handle_structure
    return fast


class _NotJson(Exception):
    """A value whose JSON round trip this module does not reproduce (it takes botocore's and
    moto's own serialiser and parser then)."""


def _moto_params(client: BaseClient, operation_model: Any, api_params: dict[str, Any]) -> dict[str, Any]:
    """The parameters as moto's handler would parse them out of botocore's JSON body.

    botocore's validator first (ParamValidationError, as botocore raises it), then the values
    copied along the input shape: what the JSON round trip does (blobs base64-encoded by botocore
    and decoded to bytes by moto, numbers read back as the shape's type, `None` members dropped,
    new containers) without the text in between. Timestamps and other unusual values take the
    round trip itself.
    """
    shape = operation_model.input_shape
    if shape is None:
        return {}
    if _constants(client).validate:
        report = ParamValidator().validate(api_params, shape)
        if report.has_errors():
            raise ParamValidationError(report=report.generate_report())
    try:
        params: dict[str, Any] = _copy(shape, api_params)
    except (_NotJson, AttributeError, TypeError):  # botocore's serializer says what is wrong, if anything
        body = client._serializer.serialize_to_request(api_params, operation_model)["body"]  # type: ignore[attr-defined]
        moto_model = get_service_model("dynamodb").operation_model(operation_model.name)
        params = PROTOCOL_PARSERS["json"](moto_model, map_type=dict).parse(
            {"method": "POST", "values": {}, "headers": {}, "body": body, "url_path": "/", "url_params": {}}  # type: ignore[typeddict-item]
        )
    return params


def _copy(shape: Any, value: Any) -> Any:
    kind = shape.type_name
    if kind == "structure":
        members = shape.members
        return {name: _copy(member, value[name]) for name, member in members.items() if value.get(name) is not None}
    if kind == "map":
        key, item = shape.key, shape.value
        return {_copy(key, k): _copy(item, v) for k, v in value.items()}
    if kind == "list":
        member = shape.member
        return [_copy(member, v) for v in value]
    scalar = _SCALARS.get(kind)
    if scalar is None:
        raise _NotJson(kind)
    return scalar(value)


def _exactly(kind: type) -> Callable[[Any], Any]:
    """A JSON string, boolean or integer reads back as the plain `kind` (`True` as an integer: 1)."""

    def convert(value: Any) -> Any:
        if isinstance(value, kind):
            return kind(value)
        raise _NotJson(value)

    return convert


def _blob(value: Any) -> bytes:
    """botocore base64-encodes bytes, and strings as UTF-8; moto decodes to bytes."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise _NotJson(value)


def _float(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise _NotJson(value)


_SCALARS: dict[str, Callable[[Any], Any]] = {
    "string": _exactly(str), "blob": _blob, "boolean": _exactly(bool),
    "integer": _exactly(int), "long": _exactly(int), "float": _float, "double": _float,
}  # fmt: skip


def _access_key(client: BaseClient) -> str:
    credentials = client._request_signer._credentials  # type: ignore[attr-defined]
    return str(credentials.access_key) if credentials is not None else "local"
