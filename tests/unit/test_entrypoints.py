"""The background entry point table is the one source of the Lambda functions: the app registers
each row, the merge template gets each row's properties, and every state machine's Task ARNs are
exactly its rows."""

from __future__ import annotations

import json
import re

from chalicelib.jobs.entrypoints import ENTRY_POINTS, HANDLERS
from tests.conftest import REPO_ROOT

STATE_MACHINES = REPO_ROOT / "infra" / "statemachines"
_PLACEHOLDER = re.compile(r"\$\{(\w+)Arn\}")


def test_every_row_is_a_lambda_function_of_the_app() -> None:
    import app

    functions = {f.name: f.handler_string for f in app.app.pure_lambda_functions}
    assert functions == {entry.name: f"app.{entry.name}" for entry in ENTRY_POINTS}
    assert set(HANDLERS) == set(functions)
    for entry in ENTRY_POINTS:  # the attribute Lambda's runtime resolves `app.<name>` to
        assert callable(getattr(app, entry.name))


def test_each_state_machine_calls_exactly_its_rows() -> None:
    for path in sorted(STATE_MACHINES.glob("*.asl.json")):
        machine = path.name.removesuffix(".asl.json")
        placeholders = set(_PLACEHOLDER.findall(path.read_text()))
        assert placeholders == {entry.logical_id for entry in ENTRY_POINTS if entry.machine == machine}, machine
    machines = {entry.machine for entry in ENTRY_POINTS if entry.machine is not None}
    assert machines == {p.name.removesuffix(".asl.json") for p in STATE_MACHINES.glob("*.asl.json")}


def test_the_merge_template_gets_each_row() -> None:
    from infra.entrypoints import merge

    template = merge(json.loads((REPO_ROOT / "infra" / "resources.json").read_text()))
    resources = template["Resources"]
    for entry in ENTRY_POINTS:
        assert resources[entry.logical_id]["Properties"]["Timeout"] == entry.timeout
    gc = resources["GcStateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert gc["GcMarkArn"] == {"Fn::GetAtt": ["GcMark", "Arn"]}
