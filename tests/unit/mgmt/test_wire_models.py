"""Harbor's wire rules as the response models state them: omit-empty, pointers, RFC 3339 times, and
which model a concrete path answers with."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chalicelib.api.mgmt.wire import ZERO_TIME, shape
from chalicelib.api.mgmt.wire.models import Artifact, GeneralInfo, Quota, RetentionPolicy, UserResp
from chalicelib.api.mgmt.wire.routes import model_for

T = "2026-01-02T03:04:05.000Z"


def test_shape_drops_what_go_omits_and_keeps_what_harbor_always_writes() -> None:
    user = {"user_id": 3, "username": "u", "comment": "", "email": "", "sysadmin_flag": False,
            "admin_role_in_auth": False, "creation_time": T, "update_time": T}  # fmt: skip
    assert shape(UserResp, user) == {"user_id": 3, "username": "u", "sysadmin_flag": False,
                                     "admin_role_in_auth": False, "creation_time": T, "update_time": T}  # fmt: skip
    UserResp.model_validate(shape(UserResp, user))


def test_shape_recurses_into_lists_and_maps() -> None:
    policy = {"id": 1, "rules": [{"priority": 0, "disabled": False, "template": "always", "params": {},
                                  "scope_selectors": {"repository": [{"pattern": "**", "extras": None}]}}]}  # fmt: skip
    assert shape(RetentionPolicy, policy) == {
        "id": 1, "rules": [{"template": "always", "scope_selectors": {"repository": [{"pattern": "**"}]}}]
    }  # fmt: skip
    tag = {"name": "v1", "id": 0, "immutable": False, "push_time": T, "pull_time": ZERO_TIME}
    art = shape(Artifact, {"tags": [tag], "labels": [], "annotations": {}, "push_time": T, "pull_time": ZERO_TIME})
    assert art == {"tags": [{"name": "v1", "immutable": False, "push_time": T, "pull_time": ZERO_TIME}],
                   "push_time": T, "pull_time": ZERO_TIME}  # fmt: skip


def test_pointer_fields_keep_false_and_empty_but_not_null() -> None:
    assert shape(GeneralInfo, {"read_only": False, "banner_message": "", "auth_mode": None}) == {
        "read_only": False, "banner_message": ""
    }  # fmt: skip
    with pytest.raises(ValidationError, match="omitempty"):
        GeneralInfo.model_validate({"auth_mode": None})


@pytest.mark.parametrize(
    "drift",
    [
        {"comment": ""},  # present though empty
        {"creation_time": 1767322800},  # an epoch number, not RFC 3339
        {"creation_time": "2026-01-02 03:04:05"},  # not RFC 3339
        {"surprise": 1},  # not in Harbor's model
        {"sysadmin_flag": "false"},  # a string for a boolean
    ],
)
def test_drift_is_refused(drift: dict[str, object]) -> None:
    good = {"sysadmin_flag": False, "admin_role_in_auth": False, "creation_time": T, "update_time": T}
    UserResp.model_validate(good)
    with pytest.raises(ValidationError):
        UserResp.model_validate({**good, **drift})


def test_required_fields_must_be_there() -> None:
    with pytest.raises(ValidationError, match="update_time"):
        Quota.model_validate({"id": 1, "hard": {"storage": -1}, "used": {"storage": 0}, "creation_time": T})


def test_model_for_prefers_literal_paths_and_knows_lists() -> None:
    template, answer = model_for("GET", "/system/gc/schedule") or ("", None)
    assert template == "/system/gc/schedule"
    template, answer = model_for("GET", "/system/gc/12") or ("", None)
    assert template == "/system/gc/{gc}" and answer is not None and not answer.many
    found = model_for("GET", "/projects/p/repositories/a%2Fb/artifacts")
    assert found is not None and found[1].model is Artifact and found[1].many
    assert model_for("GET", "/projects/p/metadatas") is None
    assert model_for("DELETE", "/projects/p") is None
