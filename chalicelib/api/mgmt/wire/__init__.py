"""Harbor's response models for /api/v2.0, and the omit-empty rule Harbor's Go server applies.

Harbor's handlers serialise go-swagger models: a property the swagger does not list as required is
written with Go's `omitempty` (absent when it is "", 0, false, an empty list or map, or a nil
pointer) unless the swagger says `x-omitempty: false`; a nested object is a pointer (absent only
when nil); a `date-time` is a struct and is always written. Clients generated from that swagger
read an absent field as `None`, so `"comment": ""` where Harbor omits the field is a difference a
script can see.

The models here say, field by field, what Harbor's swagger says:
- a required field is one Harbor always writes (swagger `required`, `x-omitempty: false`, or a
  `date-time`);
- an optional field (default `None`) is omit-empty: absent when it is zero; present, it must not be
  zero (`HarborModel` refuses that when validating a response);
- a field listed in `pointers` (swagger `x-nullable: true`, a Go pointer) is absent only when nil:
  present, any value is fine, `null` is not;
- `DateTime` is an RFC 3339 string, never an epoch number.

`shape(model, payload)` drops the zero-valued omit-empty fields of a view before it is sent, so the
wire follows the rule; the functional suite validates every /api/v2.0 response strictly against the
model registered for its route (`routes.py`), so drift shows where it starts.
"""

from __future__ import annotations

import re
import types
from typing import Annotated, Any, ClassVar, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def _rfc3339(value: str) -> str:
    if not _RFC3339.fullmatch(value):
        raise ValueError(f"not an RFC 3339 date-time: {value!r}")
    return value


DateTime = Annotated[str, AfterValidator(_rfc3339)]
"""Swagger `format: date-time`: an RFC 3339 string such as `2026-01-02T03:04:05.000Z`."""
ZERO_TIME = "0001-01-01T00:00:00.000Z"
"""What Harbor writes for a time never set (Go's zero time: a date-time is never omitted)."""


def _is_zero(value: Any) -> bool:
    return value is None or value is False or value == 0 or value in ("", [], {})


def _model_type(annotation: Any) -> type[HarborModel] | None:
    """The HarborModel inside `X | None` (a nested object is a Go pointer), else None."""
    candidates = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, HarborModel):
            return candidate
    return None


class HarborModel(BaseModel):
    """A swagger definition: unknown fields and loose types are drift, so validation is strict.

    Handlers only shape answers with these (field metadata); validation happens in the functional
    suite, so the validators are built on first use (`defer_build`), not when the Lambda handler loads.
    """

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)
    pointers: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def omitted_when(cls, name: str, value: Any) -> bool:
        """Whether Harbor leaves field `name` out when its value is `value`."""
        info = cls.model_fields[name]
        if info.is_required():
            return False
        if name in cls.pointers or _model_type(info.annotation) is not None:
            return value is None
        return _is_zero(value)

    @model_validator(mode="before")
    @classmethod
    def _omitted_when_empty(cls, data: Any) -> Any:
        if isinstance(data, dict):
            present = [
                (info.alias or name, name)
                for name, info in cls.model_fields.items()
                if not info.is_required() and (info.alias or name) in data
            ]
            empty = [f"{key}={data[key]!r}" for key, name in present if cls.omitted_when(name, data[key])]
            if empty:
                raise ValueError(f"Harbor omits these when empty (omitempty): {', '.join(empty)}")
        return data


def shape(model: type[HarborModel], payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` as Harbor writes it: zero-valued omit-empty fields dropped, nested objects too."""
    shaped: dict[str, Any] = {}
    names = {info.alias or name: name for name, info in model.model_fields.items()}
    for key, raw in payload.items():
        if key not in names:
            shaped[key] = raw
            continue
        name = names[key]
        value = _shape_value(model.model_fields[name].annotation, raw)
        if not model.omitted_when(name, value):
            shaped[key] = value
    return shaped


def _shape_value(annotation: Any, value: Any) -> Any:
    """Shape the models nested in `value` as its annotation says: `X | None`, `list[X]`, `dict[str, X]`."""
    if get_origin(annotation) in (Union, types.UnionType):
        for candidate in get_args(annotation):
            if candidate is not type(None):
                return _shape_value(candidate, value)
    nested = _model_type(annotation)
    if nested is not None and isinstance(value, dict):
        return shape(nested, value)
    if get_origin(annotation) is list and isinstance(value, list):
        (item,) = get_args(annotation)
        return [_shape_value(item, v) for v in value]
    if get_origin(annotation) is dict and isinstance(value, dict):
        _, item = get_args(annotation)
        return {k: _shape_value(item, v) for k, v in value.items()}
    return value
