"""Harbor's /api/v2.0 response definitions, field by field as its swagger gives them.

Required here: what Harbor always writes (see the package docstring); optional (`= None`): omitted
when empty. Names follow the swagger's definitions. Maps with free keys (`metadata` values, resource
lists) are plain dicts.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from chalicelib.api.mgmt.wire import DateTime, HarborModel


class UserResp(HarborModel):
    user_id: int | None = None
    username: str | None = None
    email: str | None = None
    realname: str | None = None
    comment: str | None = None
    sysadmin_flag: bool
    admin_role_in_auth: bool
    oidc_user_meta: dict[str, Any] | None = None
    creation_time: DateTime
    update_time: DateTime


class UserSearchRespItem(HarborModel):
    user_id: int | None = None
    username: str | None = None


class Permission(HarborModel):
    resource: str | None = None
    action: str | None = None


class QuotaRefObject(HarborModel):
    """Harbor's `ref` of a project quota: `{id, name, owner_name}` (free keys in the swagger)."""

    id: int | None = None
    name: str | None = None
    owner_name: str | None = None


class Quota(HarborModel):
    id: int | None = None
    ref: QuotaRefObject | None = None
    hard: dict[str, int] | None = Field(...)
    used: dict[str, int] | None = Field(...)
    creation_time: DateTime
    update_time: DateTime


class GeneralInfo(HarborModel):
    pointers = frozenset({"banner_message", "current_time", "registry_url", "external_url", "auth_mode",
                          "primary_auth_mode", "project_creation_restriction", "self_registration", "has_ca_root",
                          "harbor_version", "registry_storage_provider_name", "read_only", "notification_enable",
                          "oidc_provider_name"})  # fmt: skip

    banner_message: str | None = None
    current_time: DateTime | None = None
    registry_url: str | None = None
    external_url: str | None = None
    auth_mode: str | None = None
    primary_auth_mode: bool | None = None
    project_creation_restriction: str | None = None
    self_registration: bool | None = None
    has_ca_root: bool | None = None
    harbor_version: str | None = None
    registry_storage_provider_name: str | None = None
    read_only: bool | None = None
    notification_enable: bool | None = None
    oidc_provider_name: str | None = None


class AuditLog(HarborModel):
    id: int | None = None
    username: str | None = None
    resource: str | None = None
    resource_type: str | None = None
    operation: str | None = None
    op_time: DateTime


class AuditLogExt(HarborModel):
    id: int | None = None
    username: str | None = None
    resource: str | None = None
    resource_type: str | None = None
    operation: str | None = None
    operation_description: str | None = None
    operation_result: bool
    op_time: DateTime


class AuditLogEventType(HarborModel):
    event_type: str | None = None
