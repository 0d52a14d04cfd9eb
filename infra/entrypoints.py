"""Write the template `chalice package` merges: infra/resources.json plus what the entry point table
(`chalicelib/jobs/entrypoints.py`) decides for each background Lambda function.

From each row of the table: the function's properties (role, timeout, log group and environment of
its profile), and for each state machine the `DefinitionSubstitutions` of its Task ARNs and the
`lambda:InvokeFunction` grant of its role (`<Machine>StateMachine`, `<Machine>StateMachineRole`).
A function or a state machine is therefore named once, in the table, and a row cannot be forgotten
in the template.

Usage: python infra/entrypoints.py infra/resources.json OUT.json   (run from the repository root)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chalicelib.jobs.entrypoints import ENTRY_POINTS, EntryPoint

_ARGC = 3  # program, source template, output file


def _machine_arn(stem: str) -> dict[str, str]:
    return {"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-"
            + stem}  # fmt: skip


_COMMON = {
    "REGISTRY_TABLE_NAME": {"Ref": "RegistryTable"},
    "REGISTRY_BUCKET_NAME": {"Ref": "BlobBucket"},
    "REGISTRY_ADMIN_PASSWORD_PARAMETER": {"Ref": "AdminPasswordSecret"},
    "REGISTRY_TOKEN_KEY_PARAMETER": {"Ref": "TokenKeySecretArn"},
}
# Profile -> (role, environment). Jobs start other jobs' state machines; webhook delivery POSTs to
# the targets and records the outcome, with the role that allows nothing more.
PROFILES: dict[str, tuple[str, dict[str, Any]]] = {
    "jobs": ("RegistryJobsRole", {
        **_COMMON,
        "REGISTRY_GC_STATE_MACHINE_ARN": _machine_arn("gc"),
        "REGISTRY_RETENTION_STATE_MACHINE_ARN": _machine_arn("retention"),
        "REGISTRY_SCAN_STATE_MACHINE_ARN": _machine_arn("scan"),
        "REGISTRY_SCAN_ALL_STATE_MACHINE_ARN": _machine_arn("scan_all"),
        "REGISTRY_REPLICATION_STATE_MACHINE_ARN": _machine_arn("replication"),
        "REGISTRY_EVENT_BUS_NAME": "default",
        # Where a scanner pulls the image it scans from (Harbor: the external endpoint).
        "REGISTRY_EXTERNAL_URL": {"Fn::If": ["HasCustomDomain", {"Fn::Sub": "https://${CustomDomainName}"},
                                             {"Ref": "AWS::NoValue"}]},
    }),
    "webhook": ("WebhookDeliveryRole", {
        **_COMMON,
        "REGISTRY_EVENT_BUS_NAME": "default",
        "REGISTRY_EXTERNAL_URL": {"Fn::If": ["HasCustomDomain", {"Fn::Sub": "https://${CustomDomainName}"},
                                             {"Ref": "AWS::NoValue"}]},
    }),
}  # fmt: skip


# Checks of the infrastructure scanner (checkov) declined for every background function, with the reason.
DECLINED = [
    {
        "id": "CKV_AWS_116",
        "comment": "Invoked synchronously (Step Functions Tasks: failures go to the state "
        "machines' Catch states; the schedule tick: the next minute's tick retries); a dead-letter queue applies "
        "to asynchronous invocations only.",
    },
    {
        "id": "CKV_AWS_117",
        "comment": "Calls only AWS APIs (and webhook targets) over TLS with IAM; a VPC would "
        "need a NAT gateway or interface endpoints, a fixed monthly cost the $0-idle stack avoids.",
    },
    {
        "id": "CKV_AWS_173",
        "comment": "The environment holds names and ARNs only; secrets are read from Secrets "
        "Manager. Lambda encrypts it at rest with its AWS managed key.",
    },
]


def _function(entry: EntryPoint) -> dict[str, Any]:
    role, environment = PROFILES[entry.profile]
    return {"Metadata": {"checkov": {"skip": DECLINED}}, "Properties": {
        "Role": {"Fn::GetAtt": [role, "Arn"]},
        "Timeout": entry.timeout,
        "ReservedConcurrentExecutions": {
            "Fn::If": ["HasJobsReservedConcurrency", {"Ref": "JobsReservedConcurrency"}, {"Ref": "AWS::NoValue"}]},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": {"Ref": "RegistryJobsLogGroup"}},
        "Environment": {"Variables": environment},
    }}  # fmt: skip


def merge(template: dict[str, Any]) -> dict[str, Any]:
    resources = template["Resources"]
    for entry in ENTRY_POINTS:
        if entry.logical_id in resources:
            raise ValueError(f"{entry.logical_id} is generated from the entry point table; remove it from the template")
        resources[entry.logical_id] = _function(entry)
    machines = sorted({entry.machine for entry in ENTRY_POINTS if entry.machine is not None})
    for machine in machines:
        tasks = [entry.logical_id for entry in ENTRY_POINTS if entry.machine == machine]
        prefix = "".join(part.capitalize() for part in machine.split("_"))
        state_machine = resources[f"{prefix}StateMachine"]["Properties"]
        state_machine["DefinitionSubstitutions"] = {f"{task}Arn": {"Fn::GetAtt": [task, "Arn"]} for task in tasks}
        role = resources[f"{prefix}StateMachineRole"]["Properties"]
        (invoke,) = [statement for policy in role["Policies"] for statement in policy["PolicyDocument"]["Statement"]
                     if statement["Action"] == "lambda:InvokeFunction"]  # fmt: skip
        invoke["Resource"] = [{"Fn::GetAtt": [task, "Arn"]} for task in tasks]
    return template


def main(argv: list[str]) -> int:
    if len(argv) != _ARGC:
        print(__doc__, file=sys.stderr)
        return 2
    template = merge(json.loads(Path(argv[1]).read_text()))
    Path(argv[2]).write_text(json.dumps(template, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
