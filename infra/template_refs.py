"""What a CloudFormation template refers to, and pruning what nothing refers to any more.

`infra/chalice_route.py` derives the `chalice deploy` route's stack from the merge template
`infra/resources.json` by dropping resources; `infra/fix_condition.py` drops resources whose
condition is false. Both then remove what dangles: resources and outputs that name something no
longer there, and the conditions, parameters and rules nothing uses. Stdlib only.
"""

from __future__ import annotations

import re
from typing import Any

_SUB_VAR = re.compile(r"\$\{([A-Za-z0-9_:]+)(?:\.[A-Za-z0-9_.]+)?\}")


def _refs(node: Any) -> tuple[set[str], set[str]]:
    """Names that `node` refers to: (resources or parameters, conditions)."""
    names: set[str] = set()
    conditions: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "Ref" and isinstance(item, str):
                    names.add(item.split(".")[0])
                elif key == "Fn::GetAtt":
                    target = item[0] if isinstance(item, list) else str(item).split(".")[0]
                    names.add(target)
                elif key == "Fn::Sub":
                    text = item[0] if isinstance(item, list) else item
                    local = set(item[1]) if isinstance(item, list) and len(item) > 1 else set()
                    if isinstance(text, str):
                        names.update(set(_SUB_VAR.findall(text)) - local)
                elif key == "Condition" and isinstance(item, str):
                    conditions.add(item)
                elif key == "Fn::If" and isinstance(item, list) and item:
                    conditions.add(item[0])
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(node)
    return {n for n in names if not n.startswith("AWS::")}, conditions


def drop_dangling(resources: dict[str, Any], params: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
    """Delete (in place) every resource that refers to one that is not here, until none does; the
    outputs that still resolve."""
    changed = True
    while changed:
        known = set(resources) | set(params)
        gone = [k for k, v in resources.items() if not _refs(v)[0] <= known]
        for key in gone:
            del resources[key]
        changed = bool(gone)
    known = set(resources) | set(params)
    return {k: v for k, v in outputs.items() if _refs(v)[0] <= known}


def keep_used(out: dict[str, Any], resources: dict[str, Any], outputs: dict[str, Any]) -> None:
    """Set `out`'s resources and outputs, with only the conditions, parameters and rules they still use."""
    params: dict[str, Any] = out.get("Parameters", {})
    conditions: dict[str, Any] = out.get("Conditions", {})
    rules: dict[str, Any] = out.get("Rules", {})

    # Keep the conditions still used (conditions may use conditions).
    used_conditions: set[str] = set()
    pending = set().union(*(_refs(v)[1] for v in [*resources.values(), *outputs.values()]))
    while pending:
        name = pending.pop()
        if name in used_conditions or name not in conditions:
            continue
        used_conditions.add(name)
        pending |= _refs(conditions[name])[1]
    conditions = {k: v for k, v in conditions.items() if k in used_conditions}

    # Keep the parameters still used; drop rules about parameters that are gone.
    used_params: set[str] = set()
    for node in [*resources.values(), *outputs.values(), *conditions.values()]:
        used_params |= _refs(node)[0] & set(params)
    rules = {k: v for k, v in rules.items() if _refs(v)[0] <= used_params}
    params = {k: v for k, v in params.items() if k in used_params}

    for section, value in (
        ("Resources", resources),
        ("Parameters", params),
        ("Conditions", conditions),
        ("Outputs", outputs),
        ("Rules", rules),
    ):
        if value:
            out[section] = value
        else:
            out.pop(section, None)
