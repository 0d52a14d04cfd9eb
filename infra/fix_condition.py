"""Write a copy of a template with one condition decided, for linting each shape of the stack.

cfn-lint checks a template with conditions as a whole; a stack is deployed with one value of each
parameter. `package.sh` lints the packaged template as is and, through this script, once more for
each value of `HasUploadRelay` (the opt-in upload relay): resources and outputs under the
condition are kept without it (true) or dropped (false), every `Fn::If` on it becomes the branch
taken, and conditions, parameters and rules nothing uses any more are dropped (`template_refs.py`'s
`keep_used`), so the copy is exactly what CloudFormation would create.

Usage: python infra/fix_condition.py TEMPLATE CONDITION true|false OUT.json   (stdlib only)
"""

from __future__ import annotations

import json
import sys
from typing import Any

from template_refs import keep_used

_ARGC = 5  # program, template, condition, value, output file
_DROP = object()  # an Fn::If branch that is AWS::NoValue


def fix_condition(template: dict[str, Any], condition: str, value: bool) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(template))
    out.get("Conditions", {}).pop(condition, None)

    def decide(section: dict[str, Any]) -> dict[str, Any]:
        kept = {}
        for name, node in section.items():
            if node.get("Condition") == condition and not value:
                continue
            unconditional = {k: v for k, v in node.items() if not (k == "Condition" and v == condition)}
            kept[name] = _resolve(unconditional, condition, value)
        return kept

    keep_used(out, decide(out["Resources"]), decide(out.get("Outputs", {})))
    return out


def _resolve(node: Any, condition: str, value: bool) -> Any:
    if isinstance(node, dict):
        branches = node.get("Fn::If")
        if len(node) == 1 and isinstance(branches, list) and branches and branches[0] == condition:
            chosen = branches[1] if value else branches[2]
            return _DROP if chosen == {"Ref": "AWS::NoValue"} else _resolve(chosen, condition, value)
        resolved = {k: _resolve(v, condition, value) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not _DROP}
    if isinstance(node, list):
        return [v for v in (_resolve(item, condition, value) for item in node) if v is not _DROP]
    return node


def main(argv: list[str]) -> int:
    if len(argv) != _ARGC or argv[3] not in ("true", "false"):
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as src:
        template = json.load(src)
    with open(argv[4], "w", encoding="utf-8") as dst:
        json.dump(fix_condition(template, argv[2], argv[3] == "true"), dst, indent=2)
        dst.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
