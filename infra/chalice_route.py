"""The `chalice deploy` route, derived from the same merge template as the packaged stack.

`infra/entrypoints.py` turns `infra/resources.json` and the entry point table into the template
`chalice package` merges. This module derives from that same template the two halves of the other
route, so that both routes create the same resources with the same wiring:

- `stack_template(stage)`: the supporting CloudFormation stack. Every typed resource of the merge
  template (table, bucket, secrets, roles, state machines, schedules, log groups, alarms, the
  optional relay) except those that only make sense beside Chalice's own resources (the REST API's
  custom domain mapping: `chalice deploy` maps the domain itself). References to a function that
  Chalice creates (`Fn::GetAtt [GcMark, Arn]`) become the ARN of the function `chalice deploy`
  names `<app>-<stage>-gc_mark`; a function's log group becomes the group Lambda writes to by
  default for that name (Chalice cannot point a function at another group); a state machine's
  definition is inlined with its Task ARNs substituted. Every value a function's properties refer
  to is an output of the stack.
- `function_settings(...)`: each function's properties (role, timeout, concurrency, environment),
  resolved against the stack's outputs into the per-function section of a Chalice stage config.

Stdlib only (the deploy tool imports it before anything else is installed).
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from entrypoints import merge
from template_refs import drop_dangling, keep_used

INFRA = Path(__file__).resolve().parent
RESOURCES = INFRA / "resources.json"
STATE_MACHINES = INFRA / "statemachines"
APP_NAME = "registry"
API_HANDLER = "APIHandler"
# Resources `chalice package` generates that are not functions: the deploy tool applies their
# overrides with API calls after `chalice deploy` (the REST API's access log setting).
CHALICE_NON_FUNCTIONS = ("RestAPI",)
_PACKAGE_ONLY = "RegistryPackageOnly"  # Metadata: a resource that only exists beside Chalice's generated ones
_SUB_VAR = re.compile(r"\$\{([A-Za-z0-9_:]+)(?:\.([A-Za-z0-9_.]+))?\}")
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
# Function properties the Chalice stage config can express, and the key it takes them under.
_CHALICE_KEYS = {
    "Role": "iam_role_arn",
    "Timeout": "lambda_timeout",
    "MemorySize": "lambda_memory_size",
    "ReservedConcurrentExecutions": "reserved_concurrency",
}


def merged_template() -> dict[str, Any]:
    """The template `chalice package` merges (resources.json + the entry point table)."""
    return merge(json.loads(RESOURCES.read_text()))


def chalice_name(logical_id: str) -> str:
    """`GcMark` -> `gc_mark`: the Chalice function name whose packaged logical id is `logical_id`."""
    return "api_handler" if logical_id == API_HANDLER else _CAMEL.sub("_", logical_id).lower()


def deployed_name(logical_id: str, stage: str, app_name: str = APP_NAME) -> str:
    """The Lambda function name `chalice deploy` gives the function."""
    if logical_id == API_HANDLER:
        return f"{app_name}-{stage}"
    return f"{app_name}-{stage}-{chalice_name(logical_id)}"


def function_arn(logical_id: str, stage: str, app_name: str = APP_NAME) -> dict[str, Any]:
    name = deployed_name(logical_id, stage, app_name)
    return {"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:" + name}


def chalice_overrides(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Logical id -> merge entry, for every resource Chalice generates (entries without a Type)."""
    return {k: v for k, v in template["Resources"].items() if "Type" not in v}


def function_overrides(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Logical id -> merge entry, for the functions Chalice generates."""
    return {k: v for k, v in chalice_overrides(template).items() if k not in CHALICE_NON_FUNCTIONS}


def _replace(node: Any, swap: Any) -> Any:
    """`node` with every sub-node for which `swap` returns something else replaced by it."""
    swapped = swap(node)
    if swapped is not node:
        return swapped
    if isinstance(node, dict):
        return {k: _replace(v, swap) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace(v, swap) for v in node]
    return node


def _output_key(name: str, attribute: str | None) -> str:
    return f"{name}{attribute.replace('.', '') if attribute else 'Ref'}"


def stack_template(stage: str, app_name: str = APP_NAME) -> dict[str, Any]:
    template = merged_template()
    functions = function_overrides(template)
    generated = chalice_overrides(template)
    resources = {k: v for k, v in template["Resources"].items() if k not in generated}
    resources = {k: v for k, v in resources.items() if not v.get("Metadata", {}).get(_PACKAGE_ONLY)}

    # A function's log group: the group Lambda writes to for the name chalice deploy gives it.
    groups: dict[str, list[str]] = {}
    for logical_id, entry in functions.items():
        group = entry["Properties"].get("LoggingConfig", {}).get("LogGroup", {}).get("Ref")
        if group is None:
            continue
        own = f"{logical_id}LogGroup"
        properties = {k: v for k, v in resources[group]["Properties"].items() if k != "LogGroupName"}
        properties["LogGroupName"] = f"/aws/lambda/{deployed_name(logical_id, stage, app_name)}"
        resources[own] = {**copy.deepcopy(resources[group]), "Properties": properties}
        groups.setdefault(group, []).append(own)

    def swap(node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            ((key, value),) = node.items()
            if key == "Fn::GetAtt" and value[0] in functions and value[1] == "Arn":
                return function_arn(value[0], stage, app_name)
            if key == "Ref" and value in functions:
                return deployed_name(value, stage, app_name)
            if key == "Fn::GetAtt" and value[0] in groups:  # a role's grant on the shared group
                return [{"Fn::GetAtt": [own, value[1]]} for own in groups[value[0]]]
            if key == "Ref" and value in groups:
                return {"Ref": groups[value][0]}
        return node

    resources = _replace({k: v for k, v in resources.items() if k not in groups}, swap)

    for machine in resources.values():  # inline the definition with its Task ARNs substituted
        props = machine.get("Properties", {})
        if machine.get("Type") == "AWS::StepFunctions::StateMachine" and "DefinitionS3Location" in props:
            text = (INFRA / props.pop("DefinitionS3Location")).read_text()
            props["DefinitionString"] = {"Fn::Sub": [text, props.pop("DefinitionSubstitutions", {})]}

    outputs = _replace(template.get("Outputs", {}), swap)
    # Drop what refers to something no longer here (resources, then outputs).
    outputs = drop_dangling(resources, template.get("Parameters", {}), outputs)

    # Every resource value a function's properties need becomes an output.
    for logical_id, entry in generated.items():
        for name, attribute in _needed(_replace(entry["Properties"], swap)):
            if name in resources:
                value = {"Ref": name} if attribute is None else {"Fn::GetAtt": [name, attribute]}
                condition = resources[name].get("Condition")
                output: dict[str, Any] = {"Description": f"Used by the settings of {logical_id}.", "Value": value}
                if condition:
                    output["Condition"] = condition
                outputs.setdefault(_output_key(name, attribute), output)

    out: dict[str, Any] = {k: v for k, v in template.items() if k not in ("Resources", "Outputs")}
    keep_used(out, resources, outputs)
    out["Description"] = (
        f"Serverless OCI registry ({app_name}, stage {stage}): everything `chalice deploy` does not create. "
        "Generated by infra/chalice_route.py from infra/resources.json and the entry point table; do not edit."
    )
    return out


def _needed(node: Any) -> set[tuple[str, str | None]]:
    """(resource, attribute or None for Ref) pairs that `node` refers to."""
    found: set[tuple[str, str | None]] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "Ref" and isinstance(item, str) and not item.startswith("AWS::"):
                    found.add((item, None))
                elif key == "Fn::GetAtt":
                    found.add((item[0], item[1]))
                elif key == "Fn::Sub":
                    text = item[0] if isinstance(item, list) else item
                    for name, attribute in _SUB_VAR.findall(text):
                        if not name.startswith("AWS::"):
                            found.add((name, attribute or None))
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(node)
    return found


class Resolver:
    """Evaluates the intrinsic functions of function properties against a deployed stack."""

    def __init__(self, template: dict[str, Any], outputs: dict[str, str], parameters: dict[str, str],
                 pseudo: dict[str, str]) -> None:  # fmt: skip
        self._outputs = outputs
        self._pseudo = pseudo
        declared = template.get("Parameters", {})
        self._params = {k: str(v.get("Default", "")) for k, v in declared.items()} | parameters
        self._conditions = template.get("Conditions", {})

    def _lookup(self, name: str, attribute: str | None) -> str:
        if name in self._pseudo:
            return self._pseudo[name]
        if attribute is None and name in self._params:
            return self._params[name]
        key = _output_key(name, attribute)
        if key not in self._outputs:
            raise KeyError(f"the stack has no output {key} (needed for {name})")
        return self._outputs[key]

    def condition(self, node: Any) -> bool:
        if isinstance(node, str):
            return self.condition(self._conditions[node])
        ((key, value),) = node.items()
        if key == "Condition":
            return self.condition(self._conditions[value])
        if key == "Fn::Not":
            return not self.condition(value[0])
        if key == "Fn::And":
            return all(self.condition(v) for v in value)
        if key == "Fn::Or":
            return any(self.condition(v) for v in value)
        if key == "Fn::Equals":
            return str(self.value(value[0])) == str(self.value(value[1]))
        raise ValueError(f"unsupported condition {key}")

    def value(self, node: Any) -> Any:  # noqa: PLR0911 (one return per intrinsic function)
        if isinstance(node, list):
            return [v for v in (self.value(item) for item in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref":
                return _NO_VALUE if value == "AWS::NoValue" else self._lookup(value, None)
            if key == "Fn::GetAtt":
                return self._lookup(value[0], value[1])
            if key == "Fn::If":
                return self.value(value[1] if self.condition(value[0]) else value[2])
            if key == "Fn::Sub":
                text, local = (value[0], value[1]) if isinstance(value, list) else (value, {})
                values = {k: self.value(v) for k, v in local.items()}

                def sub(match: re.Match[str]) -> str:
                    name, attribute = match.group(1), match.group(2)
                    return str(values[name]) if name in values else self._lookup(name, attribute)

                return _SUB_VAR.sub(sub, text)
            if key == "Fn::Join":
                return value[0].join(self.value(value[1]))
        resolved = {k: self.value(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}


_NO_VALUE = object()


def function_settings(resolver: Resolver, stage: str, app_name: str = APP_NAME) -> dict[str, dict[str, Any]]:
    """Chalice name -> its `lambda_functions` entry of the stage config, from the merge template."""
    template = merged_template()
    settings: dict[str, dict[str, Any]] = {}
    for logical_id, entry in function_overrides(template).items():
        props = _replace(entry["Properties"], lambda n: n)
        own: dict[str, Any] = {}
        for key, chalice_key in _CHALICE_KEYS.items():
            if key in props:
                value = resolver.value(props[key])
                if value is not _NO_VALUE:  # CloudFormation Number parameters resolve to strings
                    own[chalice_key] = value if chalice_key == "iam_role_arn" else int(value)
        if "iam_role_arn" in own:
            own["manage_iam_role"] = False
        variables = resolver.value(props.get("Environment", {}).get("Variables", {}))
        if variables:
            own["environment_variables"] = {k: str(v) for k, v in variables.items()}
        settings[chalice_name(logical_id)] = own
    return settings


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("Usage: python infra/chalice_route.py STAGE OUT.json", file=sys.stderr)
        return 2
    Path(argv[2]).write_text(json.dumps(stack_template(argv[1]), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
