"""`infra/package.sh` builds one deployable template that cfn-lint accepts, with the right shape.

Runs the real `chalice package` (it fetches Lambda wheels from PyPI unless cached in
`.chalice/deployments`) and cfn-lint, once per module, then checks the merged template.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_SH = REPO_ROOT / "infra" / "package.sh"
CREATE_TOKEN_KEY_SH = REPO_ROOT / "infra" / "create-token-key.sh"
RESOURCES = REPO_ROOT / "infra" / "resources.json"

# The keys the local runner maps onto boto3 create_table (or knowingly ignores).
TABLE_PROPERTY_KEYS = {
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "BillingMode",
    "TimeToLiveSpecification",
    "PointInTimeRecoverySpecification",
    "SSESpecification",
}
TABLE_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
}
OBJECT_ACTIONS = {
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
}
# The two secrets the function reads at cold start, as the role's resources and the env values.
ADMIN_SECRET_REF = {"Ref": "AdminPasswordSecret"}
# Credentials the registry presents to others (scanner adapters, remote registries), under the stack's prefix.
PRESENTED_CREDENTIALS_ARNS = [
    {
        "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${AWS::StackName}/"
        f"{kind}"
    }
    for kind in ("scanner-*", "registry/*")
]
TOKEN_KEY_REF = {"Ref": "TokenKeySecretArn"}
GC_MACHINE_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-gc"
}
GC_EXECUTIONS_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${AWS::StackName}-gc:*"
}
DEFAULT_BUS_ARN = {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"}
GC_FUNCTIONS = ("GcBegin", "GcUntagged", "GcMark", "GcSweep", "GcFinish", "GcFail")
RETENTION_MACHINE_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-retention"
}
RETENTION_EXECUTIONS_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${AWS::StackName}-retention:*"
}
RETENTION_FUNCTIONS = ("RetentionBegin", "RetentionTask", "RetentionTaskFailed", "RetentionFinish", "RetentionFail")
SCAN_MACHINE_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-scan"
}
SCAN_EXECUTIONS_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${AWS::StackName}-scan:*"
}
SCAN_FUNCTIONS = ("ScanPrepare", "ScanSubmit", "ScanPoll", "ScanTaskFailed", "ScanFinish", "ScanFail")
SCAN_ALL_MACHINE_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-scan_all"
}
SCAN_ALL_EXECUTIONS_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${AWS::StackName}-scan_all:*"
}
SCAN_EXPORT_MACHINE_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:"
    "${AWS::StackName}-scan_export"
}
SCAN_EXPORT_EXECUTIONS_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${AWS::StackName}-scan_export:*"
}
REPLICATION_MACHINE_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:"
    "${AWS::StackName}-replication"
}
REPLICATION_EXECUTIONS_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${AWS::StackName}-replication:*"
}
REPLICATION_FUNCTIONS = ("ReplicationBegin", "ReplicationTask", "ReplicationTaskFailed", "ReplicationFinish",
                         "ReplicationFail")  # fmt: skip
WEBHOOK_MACHINE_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-webhook"
}
WEBHOOK_FUNCTIONS = ("WebhookAttempt", "WebhookFinish", "WebhookFail")
EXTERNAL_URL = {"Fn::If": ["HasCustomDomain", {"Fn::Sub": "https://${CustomDomainName}"}, {"Ref": "AWS::NoValue"}]}


def _tool(name: str) -> str:
    """The tool from the environment running the tests (the repo's .venv when run as documented)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (REPO_ROOT / "app.py").exists():
        pytest.skip("app.py does not exist yet: nothing to package")
    out = tmp_path_factory.mktemp("package")
    env = {
        **os.environ,
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "CHALICE": _tool("chalice"),
        "CFN_LINT": _tool("cfn-lint"),
        "PYTHON": sys.executable,
    }
    bash = shutil.which("bash") or "/bin/bash"
    proc = subprocess.run(
        [bash, str(PACKAGE_SH), str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"package.sh failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return out


@pytest.fixture(scope="module")
def template(package_dir: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((package_dir / "sam.json").read_text())
    return loaded


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = template["Resources"]
    return loaded


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _keys(values: Any) -> list[str]:
    """Order-independent, comparable form of a statement's Resource (a value or a list)."""
    return sorted(json.dumps(v, sort_keys=True) for v in _as_list(values))


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in role["Properties"]["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def test_package_outputs(package_dir: Path) -> None:
    for name in ("sam.json", "deployment.zip", "infra-only.json"):
        assert (package_dir / name).is_file(), name


def test_table(resources: dict[str, Any]) -> None:
    table = resources["RegistryTable"]
    assert table["Type"] == "AWS::DynamoDB::Table"
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
    props = table["Properties"]
    assert set(props) <= TABLE_PROPERTY_KEYS, set(props) - TABLE_PROPERTY_KEYS
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    (gsi,) = props["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "gsi1"
    assert gsi["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True


def test_table_source_stays_loadable_by_local_runner() -> None:
    """The local runner reads RegistryTable.Properties straight from infra/resources.json."""
    source = json.loads(RESOURCES.read_text())
    props = source["Resources"]["RegistryTable"]["Properties"]
    assert set(props) <= TABLE_PROPERTY_KEYS


def test_bucket(resources: dict[str, Any]) -> None:
    bucket = resources["BlobBucket"]
    assert bucket["Type"] == "AWS::S3::Bucket"
    assert bucket["DeletionPolicy"] == "Retain"
    assert bucket["UpdateReplacePolicy"] == "Retain"
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    (sse,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert props.get("VersioningConfiguration", {}).get("Status") != "Enabled"
    uploads = [r for r in props["LifecycleConfiguration"]["Rules"] if r.get("Prefix") == "uploads/"]
    assert len(uploads) == 1
    (rule,) = uploads
    assert rule["Status"] == "Enabled"
    assert rule["ExpirationInDays"] == 2
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}


def test_bucket_policy_denies_plain_http(resources: dict[str, Any]) -> None:
    policy = resources["BlobBucketPolicy"]
    assert policy["Properties"]["Bucket"] == {"Ref": "BlobBucket"}
    (stmt,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert stmt["Effect"] == "Deny"
    assert stmt["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_api_handler_env_and_role(resources: dict[str, Any]) -> None:
    handler = resources["APIHandler"]["Properties"]
    env = handler["Environment"]["Variables"]
    assert env["REGISTRY_TABLE_NAME"] == {"Ref": "RegistryTable"}
    assert env["REGISTRY_BUCKET_NAME"] == {"Ref": "BlobBucket"}
    assert env["REGISTRY_ADMIN_PASSWORD_PARAMETER"] == ADMIN_SECRET_REF
    assert env["REGISTRY_TOKEN_KEY_PARAMETER"] == TOKEN_KEY_REF
    # https://<CustomDomainName> with a custom domain, else unset (the app uses the request's host).
    assert env["REGISTRY_EXTERNAL_URL"] == EXTERNAL_URL
    # The stage's own variables survive the merge.
    assert env["REGISTRY_MAX_BODY_BYTES"] == "4194304"
    assert env["POWERTOOLS_SERVICE_NAME"] == "registry"
    assert env["REGISTRY_EVENT_BUS_NAME"] == "default"
    assert handler["Role"] == {"Fn::GetAtt": ["RegistryApiRole", "Arn"]}
    assert handler["LoggingConfig"]["LogGroup"] == {"Ref": "RegistryApiLogGroup"}
    assert handler["Tracing"] == "Active"
    assert handler["Timeout"] <= 30
    assert handler["MemorySize"] == 1024


def test_api_role_is_least_privilege(resources: dict[str, Any]) -> None:
    role = resources["RegistryApiRole"]
    assert role["Type"] == "AWS::IAM::Role"
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert "ManagedPolicyArns" not in role["Properties"]

    granted: dict[str, set[str]] = {}
    for stmt in _statements(role):
        assert stmt["Effect"] == "Allow"
        for action in _as_list(stmt["Action"]):
            assert "*" not in action, action
            for resource in _as_list(stmt["Resource"]):
                granted.setdefault(json.dumps(resource, sort_keys=True), set()).add(action)

    def on(resource: Any) -> set[str]:
        return granted.pop(json.dumps(resource, sort_keys=True), set())

    assert on({"Fn::GetAtt": ["RegistryTable", "Arn"]}) == TABLE_ACTIONS
    assert on({"Fn::Sub": "${RegistryTable.Arn}/index/*"}) == {"dynamodb:Query"}
    assert on({"Fn::Sub": "${BlobBucket.Arn}/*"}) == OBJECT_ACTIONS
    assert on({"Fn::GetAtt": ["RegistryApiLogGroup", "Arn"]}) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert on(ADMIN_SECRET_REF) == {"secretsmanager:GetSecretValue"}
    assert on(TOKEN_KEY_REF) == {"secretsmanager:GetSecretValue"}
    # Scanner adapters' and remote registries' credentials, under the stack's own prefix only.
    for arn in PRESENTED_CREDENTIALS_ARNS:
        assert on(arn) == {"secretsmanager:CreateSecret", "secretsmanager:GetSecretValue",
                           "secretsmanager:DeleteSecret"}  # fmt: skip
    assert on("*") == {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
    # Starting, reading and stopping GC executions (the /system/gc API).
    assert on(GC_MACHINE_ARN) == {"states:StartExecution"}
    assert on(GC_EXECUTIONS_ARN) == {"states:DescribeExecution", "states:StopExecution"}
    # The same for tag retention executions (the /retentions API).
    assert on(RETENTION_MACHINE_ARN) == {"states:StartExecution"}
    assert on(RETENTION_EXECUTIONS_ARN) == {"states:DescribeExecution", "states:StopExecution"}
    # The same for scan executions (POST .../scan, .../scan/stop).
    assert on(SCAN_MACHINE_ARN) == {"states:StartExecution"}
    assert on(SCAN_EXECUTIONS_ARN) == {"states:DescribeExecution", "states:StopExecution"}
    # And for scan all (/system/scanAll) and replication executions (the /replication/executions API).
    assert on(SCAN_ALL_MACHINE_ARN) == {"states:StartExecution"}
    assert on(SCAN_ALL_EXECUTIONS_ARN) == {"states:DescribeExecution", "states:StopExecution"}
    assert on(REPLICATION_MACHINE_ARN) == {"states:StartExecution"}
    assert on(REPLICATION_EXECUTIONS_ARN) == {"states:DescribeExecution", "states:StopExecution"}
    # And for scan data exports (/export/cve): started, and read as the executions are shown.
    assert on(SCAN_EXPORT_MACHINE_ARN) == {"states:StartExecution"}
    assert on(SCAN_EXPORT_EXECUTIONS_ARN) == {"states:DescribeExecution", "states:StopExecution"}
    assert on(DEFAULT_BUS_ARN) == {"events:PutEvents"}  # domain events (stores/eventbus.py)
    assert granted == {}, f"unexpected grants: {granted}"


def test_secret_reads_are_scoped_to_the_two_secrets(resources: dict[str, Any]) -> None:
    """GetSecretValue on exactly the admin password secret and the token key secret: no wildcard.
    The one other secrets grant is the credentials it presents to others, under the stack's prefix."""
    statements = [
        s
        for s in _statements(resources["RegistryApiRole"])
        if any(a.split(":")[0] in {"secretsmanager", "ssm", "kms"} for a in _as_list(s["Action"]))
    ]
    assert len(statements) == 2, statements
    (remote,) = [s for s in statements if s.get("Sid") == "PresentedCredentials"]
    assert remote["Resource"] == PRESENTED_CREDENTIALS_ARNS
    (stmt,) = [s for s in statements if s is not remote]
    assert _as_list(stmt["Action"]) == ["secretsmanager:GetSecretValue"]
    assert "Condition" not in stmt
    assert "NotResource" not in stmt
    resource = _as_list(stmt["Resource"])
    assert _keys(resource) == _keys([ADMIN_SECRET_REF, TOKEN_KEY_REF])
    assert "*" not in json.dumps(resource)


def test_admin_password_secret(resources: dict[str, Any]) -> None:
    """A generated password that meets Harbor's rule: 8-128 chars with an upper, a lower and a digit."""
    secret = resources["AdminPasswordSecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    props = secret["Properties"]
    assert "SecretString" not in props
    generate = props["GenerateSecretString"]
    assert 8 <= generate["PasswordLength"] <= 128
    assert generate["RequireEachIncludedType"] is True
    assert generate["ExcludePunctuation"] is True
    assert generate.get("IncludeSpace", False) is False
    for excluded in ("ExcludeUppercase", "ExcludeLowercase", "ExcludeNumbers"):
        assert generate.get(excluded, False) is False, excluded
    # A plain string (no SecretStringTemplate): the app uses the whole value as the password.
    assert "SecretStringTemplate" not in generate
    assert "GenerateStringKey" not in generate
    # Bound to the retained table's admin user: kept when the stack goes.
    assert secret["DeletionPolicy"] == "Retain"
    assert secret.get("KmsKeyId") is None  # default aws/secretsmanager key: no kms:Decrypt needed


def test_token_key_secret_arn_parameter(template: dict[str, Any]) -> None:
    """Required (no default): only a full Secrets Manager ARN passes, so the IAM grant matches it exactly."""
    param = template["Parameters"]["TokenKeySecretArn"]
    assert param["Type"] == "String"
    assert "Default" not in param
    pattern = re.compile(param["AllowedPattern"])
    for good in (
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:registry/token-signing-key-AbC123",
        "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:key-a1B2c3",
    ):
        assert pattern.fullmatch(good), good
    for bad in (
        "",
        "*",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:*",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:registry/token-signing-key",  # partial ARN
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:registry/token-signing-key-AbC12*",
        "/registry/token-key",  # an SSM name: the role has no ssm:GetParameter
        "arn:aws:ssm:us-east-1:123456789012:parameter/registry/token-key",
    ):
        assert not pattern.fullmatch(bad), bad


def test_create_token_key_script_parses() -> None:
    """The operator's script (never run here: it calls AWS) is at least valid bash."""
    bash = shutil.which("bash") or "/bin/bash"
    proc = subprocess.run([bash, "-n", str(CREATE_TOKEN_KEY_SH)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    text = CREATE_TOKEN_KEY_SH.read_text()
    assert "rsa_keygen_bits:2048" in text
    assert "secretsmanager create-secret" in text


def test_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs["RegistryTableName"]["Value"] == {"Ref": "RegistryTable"}
    assert outputs["RegistryBucketName"]["Value"] == {"Ref": "BlobBucket"}
    assert outputs["RegistryApiRoleArn"]["Value"] == {"Fn::GetAtt": ["RegistryApiRole", "Arn"]}
    assert outputs["AdminPasswordSecretArn"]["Value"] == ADMIN_SECRET_REF


def test_infra_only_template(package_dir: Path) -> None:
    infra = json.loads((package_dir / "infra-only.json").read_text())
    assert "Transform" not in infra
    resources = infra["Resources"]
    assert {
        "RegistryTable",
        "BlobBucket",
        "BlobBucketPolicy",
        "RegistryApiRole",
        "APIHandlerLogGroup",
        "AdminPasswordSecret",
        "GcStateMachine",
        "GcScheduleTick",
    } <= set(resources)
    assert all("Type" in r for r in resources.values())
    assert "APIHandler" not in resources
    assert "RegistryDomainMapping" not in resources  # it needs the Chalice REST API
    assert "RegistryDomain" not in resources  # chalice deploy uses api_gateway_custom_domain
    assert {"RegistryTableName", "RegistryBucketName", "RegistryApiRoleArn", "AdminPasswordSecretArn"} <= set(
        infra["Outputs"]
    )
    # The function logs to the group Lambda uses for the name chalice deploy gives it.
    assert resources["APIHandlerLogGroup"]["Properties"]["LogGroupName"] == "/aws/lambda/registry-dev"
    # The chalice-deploy route's role reads the same two secrets.
    assert "Default" not in infra["Parameters"]["TokenKeySecretArn"]
    (stmt,) = [s for s in _statements(resources["RegistryApiRole"]) if s.get("Sid") == "RegistrySecrets"]
    assert _keys(stmt["Resource"]) == _keys([ADMIN_SECRET_REF, TOKEN_KEY_REF])


def test_job_functions_run_with_the_jobs_role_and_the_state_machine_calls_only_them(
    resources: dict[str, Any], package_dir: Path
) -> None:
    """The GC Task Lambdas and the schedule tick: their own least-privilege role, 15 min timeout; the
    state machine is the ASL file of infra/statemachines with its Lambda ARNs substituted."""
    assert "DefaultRole" not in resources  # no function falls back to Chalice's broad default role
    for name in (*GC_FUNCTIONS, "JobSchedule", "EventConsumer"):
        props = resources[name]["Properties"]
        assert props["Role"] == {"Fn::GetAtt": ["RegistryJobsRole", "Arn"]}, name
        # The consumer only records webhook executions and starts their state machine.
        assert props["Timeout"] == (30 if name == "EventConsumer" else 900)
        assert props["Environment"]["Variables"]["REGISTRY_EVENT_BUS_NAME"] == "default"
        assert props["Environment"]["Variables"]["REGISTRY_GC_STATE_MACHINE_ARN"] == GC_MACHINE_ARN
    machine = resources["GcStateMachine"]["Properties"]
    assert machine["StateMachineName"] == {"Fn::Sub": "${AWS::StackName}-gc"}
    assert (package_dir / machine["DefinitionS3Location"]).is_file()
    asl = (package_dir / machine["DefinitionS3Location"]).read_text()
    assert set(machine["DefinitionSubstitutions"]) == {f"{n}Arn" for n in GC_FUNCTIONS}
    assert all("${" + key + "}" in asl for key in machine["DefinitionSubstitutions"])
    (invoke,) = _statements(resources["GcStateMachineRole"])
    assert invoke["Action"] == "lambda:InvokeFunction"
    assert invoke["Resource"] == [{"Fn::GetAtt": [n, "Arn"]} for n in GC_FUNCTIONS]
    jobs_actions = {a for stmt in _statements(resources["RegistryJobsRole"]) for a in _as_list(stmt["Action"])}
    assert "dynamodb:Scan" in jobs_actions and "s3:ListBucket" in jobs_actions
    assert not any("*" in a for a in jobs_actions)
    schedule = resources["GcScheduleTick"]["Properties"]
    assert schedule["Target"]["Arn"] == {"Fn::GetAtt": ["JobSchedule", "Arn"]}
    assert json.loads(schedule["Target"]["Input"]) == {"vendor_type": "GARBAGE_COLLECTION"}


def test_retention_machine_calls_only_its_functions_and_ticks_every_minute(
    resources: dict[str, Any], package_dir: Path
) -> None:
    """Tag retention: its Task Lambdas run with the jobs role; its state machine is the ASL file with
    their ARNs substituted and may invoke only them; the schedule tick asks for RETENTION."""
    for name in (*RETENTION_FUNCTIONS, "JobSchedule"):
        props = resources[name]["Properties"]
        assert props["Role"] == {"Fn::GetAtt": ["RegistryJobsRole", "Arn"]}, name
        assert props["Environment"]["Variables"]["REGISTRY_RETENTION_STATE_MACHINE_ARN"] == RETENTION_MACHINE_ARN
    machine = resources["RetentionStateMachine"]["Properties"]
    assert machine["StateMachineName"] == {"Fn::Sub": "${AWS::StackName}-retention"}
    asl = (package_dir / machine["DefinitionS3Location"]).read_text()
    assert set(machine["DefinitionSubstitutions"]) == {f"{n}Arn" for n in RETENTION_FUNCTIONS}
    assert all("${" + key + "}" in asl for key in machine["DefinitionSubstitutions"])
    (invoke,) = _statements(resources["RetentionStateMachineRole"])
    assert invoke["Resource"] == [{"Fn::GetAtt": [n, "Arn"]} for n in RETENTION_FUNCTIONS]
    schedule = resources["RetentionScheduleTick"]["Properties"]
    assert json.loads(schedule["Target"]["Input"]) == {"vendor_type": "RETENTION"}


def test_scan_machine_calls_only_its_functions_and_the_jobs_role_may_run_scans(
    resources: dict[str, Any], package_dir: Path
) -> None:
    """Scans: the Task Lambdas run with the jobs role and know the registry's external URL; the
    state machine is the ASL file with their ARNs substituted and may invoke only them; the API,
    the event consumer (scan on push) and the jobs may start it; the jobs role may write scan
    reports and SBOM blobs (and nothing else new under the bucket) and read scanner credentials."""
    for name in (*SCAN_FUNCTIONS, "EventConsumer"):
        props = resources[name]["Properties"]
        assert props["Role"] == {"Fn::GetAtt": ["RegistryJobsRole", "Arn"]}, name
        assert props["Environment"]["Variables"]["REGISTRY_SCAN_STATE_MACHINE_ARN"] == SCAN_MACHINE_ARN
    assert resources["ScanSubmit"]["Properties"]["Environment"]["Variables"]["REGISTRY_EXTERNAL_URL"] == EXTERNAL_URL
    env = resources["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert env["REGISTRY_SCAN_STATE_MACHINE_ARN"] == SCAN_MACHINE_ARN
    machine = resources["ScanStateMachine"]["Properties"]
    assert machine["StateMachineName"] == {"Fn::Sub": "${AWS::StackName}-scan"}
    assert machine["StateMachineType"] == "STANDARD"  # a scan may take 30 minutes
    asl = (package_dir / machine["DefinitionS3Location"]).read_text()
    assert set(machine["DefinitionSubstitutions"]) == {f"{n}Arn" for n in SCAN_FUNCTIONS}
    assert all("${" + key + "}" in asl for key in machine["DefinitionSubstitutions"])
    (invoke,) = _statements(resources["ScanStateMachineRole"])
    assert invoke["Resource"] == [{"Fn::GetAtt": [n, "Arn"]} for n in SCAN_FUNCTIONS]
    jobs = {json.dumps(r, sort_keys=True): set(_as_list(st["Action"]))
            for st in _statements(resources["RegistryJobsRole"]) for r in _as_list(st["Resource"])}  # fmt: skip
    assert jobs[json.dumps(SCAN_MACHINE_ARN, sort_keys=True)] == {"states:StartExecution"}
    assert jobs[json.dumps(SCAN_EXECUTIONS_ARN, sort_keys=True)] == {"states:DescribeExecution", "states:StopExecution"}
    for prefix in ("scan-reports", "blobs"):
        assert jobs[json.dumps({"Fn::Sub": f"${{BlobBucket.Arn}}/{prefix}/*"}, sort_keys=True)] == {"s3:PutObject"}


def test_replication_machine_calls_only_its_functions_and_ticks_every_minute(
    resources: dict[str, Any], package_dir: Path
) -> None:
    """Replication: its Task Lambdas run with the jobs role (which may write blobs: a pull-based copy
    lands here); the API and the event consumer may start its machine; the tick asks for REPLICATION."""
    for name in (*REPLICATION_FUNCTIONS, "JobSchedule", "EventConsumer"):
        props = resources[name]["Properties"]
        assert props["Role"] == {"Fn::GetAtt": ["RegistryJobsRole", "Arn"]}, name
        assert props["Environment"]["Variables"]["REGISTRY_REPLICATION_STATE_MACHINE_ARN"] == REPLICATION_MACHINE_ARN
    api = resources["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert api["REGISTRY_REPLICATION_STATE_MACHINE_ARN"] == REPLICATION_MACHINE_ARN
    machine = resources["ReplicationStateMachine"]["Properties"]
    assert machine["StateMachineName"] == {"Fn::Sub": "${AWS::StackName}-replication"}
    asl = (package_dir / machine["DefinitionS3Location"]).read_text()
    assert set(machine["DefinitionSubstitutions"]) == {f"{n}Arn" for n in REPLICATION_FUNCTIONS}
    assert all("${" + key + "}" in asl for key in machine["DefinitionSubstitutions"])
    (invoke,) = _statements(resources["ReplicationStateMachineRole"])
    assert invoke["Resource"] == [{"Fn::GetAtt": [n, "Arn"]} for n in REPLICATION_FUNCTIONS]
    for role in ("RegistryJobsRole", "RegistryApiRole"):
        (start,) = [s for s in _statements(resources[role]) if s["Resource"] == REPLICATION_MACHINE_ARN]
        assert start["Action"] == "states:StartExecution"
    jobs_actions = {a for stmt in _statements(resources["RegistryJobsRole"]) for a in _as_list(stmt["Action"])}
    assert "s3:PutObject" in jobs_actions
    schedule = resources["ReplicationScheduleTick"]["Properties"]
    assert json.loads(schedule["Target"]["Input"]) == {"vendor_type": "REPLICATION"}


def test_webhook_delivery_machine_and_its_least_privilege_role(resources: dict[str, Any], package_dir: Path) -> None:
    """Durable webhook delivery: the consumer may start the webhook machine (and only start it);
    the machine may invoke only its three Task Lambdas; those run with a role that reads and writes
    table items and reads the two secrets, and nothing else (no Scan, no S3, no Step Functions)."""
    consumer = resources["EventConsumer"]["Properties"]
    assert consumer["Environment"]["Variables"]["REGISTRY_WEBHOOK_STATE_MACHINE_ARN"] == WEBHOOK_MACHINE_ARN
    (start,) = [s for s in _statements(resources["RegistryJobsRole"]) if s["Resource"] == WEBHOOK_MACHINE_ARN]
    assert start["Action"] == "states:StartExecution"
    for name in WEBHOOK_FUNCTIONS:
        props = resources[name]["Properties"]
        assert props["Role"] == {"Fn::GetAtt": ["WebhookDeliveryRole", "Arn"]}, name
        assert props["Environment"]["Variables"]["REGISTRY_EXTERNAL_URL"] == EXTERNAL_URL
        assert props["Environment"]["Variables"]["REGISTRY_EVENT_BUS_NAME"] == "default"
    # One attempt: a connect and a read timeout of at most 60 s each, with room to record it.
    assert resources["WebhookAttempt"]["Properties"]["Timeout"] > 2 * 60
    granted: dict[str, set[str]] = {}
    for stmt in _statements(resources["WebhookDeliveryRole"]):
        for resource in _as_list(stmt["Resource"]):
            granted.setdefault(json.dumps(resource, sort_keys=True), set()).update(_as_list(stmt["Action"]))
    assert granted == {
        json.dumps({"Fn::GetAtt": ["RegistryTable", "Arn"]}, sort_keys=True): TABLE_ACTIONS,
        json.dumps({"Fn::Sub": "${RegistryTable.Arn}/index/*"}, sort_keys=True): {"dynamodb:Query"},
        json.dumps(ADMIN_SECRET_REF, sort_keys=True): {"secretsmanager:GetSecretValue"},
        json.dumps(TOKEN_KEY_REF, sort_keys=True): {"secretsmanager:GetSecretValue"},
        json.dumps({"Fn::GetAtt": ["RegistryJobsLogGroup", "Arn"]}, sort_keys=True): {
            "logs:CreateLogStream", "logs:PutLogEvents"},
        json.dumps("*"): {"xray:PutTraceSegments", "xray:PutTelemetryRecords"},
    }  # fmt: skip
    machine = resources["WebhookStateMachine"]["Properties"]
    assert machine["StateMachineName"] == {"Fn::Sub": "${AWS::StackName}-webhook"}
    assert machine["StateMachineType"] == "STANDARD"
    asl = (package_dir / machine["DefinitionS3Location"]).read_text()
    assert set(machine["DefinitionSubstitutions"]) == {f"{n}Arn" for n in WEBHOOK_FUNCTIONS}
    assert all("${" + key + "}" in asl for key in machine["DefinitionSubstitutions"])
    (invoke,) = _statements(resources["WebhookStateMachineRole"])
    assert invoke["Resource"] == [{"Fn::GetAtt": [n, "Arn"]} for n in WEBHOOK_FUNCTIONS]


# The opt-in upload relay (parameter UploadRelay).

RELAY_ON = "HasUploadRelay"
RELAY_URL = {"Fn::Sub": "https://${UploadRelayDomainName}"}
RELAY_TABLE_ACTIONS = TABLE_ACTIONS - {"dynamodb:BatchWriteItem"}  # an upload writes item by item
FIX_CONDITION = REPO_ROOT / "infra" / "fix_condition.py"


def _shape(package_dir: Path, enabled: bool, tmp_path: Path) -> dict[str, Any]:
    """The packaged template as CloudFormation creates it with UploadRelay enabled or disabled."""
    out = tmp_path / f"relay-{enabled}.json"
    subprocess.run(
        [sys.executable, str(FIX_CONDITION), str(package_dir / "sam.json"), RELAY_ON, str(enabled).lower(), str(out)],
        check=True,
    )
    loaded: dict[str, Any] = json.loads(out.read_text())
    return loaded


def _relay_resources(resources: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resources.items() if v.get("Condition") == RELAY_ON}


def test_upload_relay_is_off_by_default_and_linted_both_ways(template: dict[str, Any], package_dir: Path) -> None:
    param = template["Parameters"]["UploadRelay"]
    assert param["Default"] == "disabled"
    assert param["AllowedValues"] == ["disabled", "enabled"]
    assert template["Conditions"][RELAY_ON] == {"Fn::Equals": [{"Ref": "UploadRelay"}, "enabled"]}
    # Enabling it without an image, a host name or a certificate is refused before anything is created.
    (rule,) = [r for r in template["Rules"].values() if "UploadRelay" in json.dumps(r["RuleCondition"])]
    asserted = json.dumps(rule["Assertions"])
    for name in ("UploadRelayImageUri", "UploadRelayDomainName", "UploadRelayCertificateArn"):
        assert name in asserted, name
    script = PACKAGE_SH.read_text()
    assert "fix_condition.py" in script and "sam-upload-relay-true.json" in script


def test_upload_relay_disabled_creates_nothing_and_leaves_the_api_unchanged(
    package_dir: Path, resources: dict[str, Any], tmp_path: Path
) -> None:
    off = _shape(package_dir, False, tmp_path)
    relay = _relay_resources(resources)
    assert len(relay) >= 20
    assert not set(relay) & set(off["Resources"])
    assert not any(r["Type"].startswith(("AWS::ECS::", "AWS::EC2::", "AWS::ElasticLoadBalancingV2::"))
                   for r in off["Resources"].values())  # fmt: skip
    env = off["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert "REGISTRY_RELAY_URL" not in env and "REGISTRY_RELAY_KEY_PARAMETER" not in env
    assert not any(k.startswith("UploadRelay") for k in off.get("Outputs", {}))


def test_upload_relay_enabled_wires_the_api_to_it(package_dir: Path, tmp_path: Path) -> None:
    on = _shape(package_dir, True, tmp_path)
    resources = on["Resources"]
    env = resources["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert env["REGISTRY_RELAY_URL"] == RELAY_URL
    assert env["REGISTRY_RELAY_KEY_PARAMETER"] == {"Ref": "RelayKeySecret"}
    # The generated key, readable by the API function through a policy of its own.
    generate = resources["RelayKeySecret"]["Properties"]["GenerateSecretString"]
    assert generate["PasswordLength"] >= 32 and "SecretString" not in resources["RelayKeySecret"]["Properties"]
    policy = resources["RegistryApiRelayKeyPolicy"]["Properties"]
    assert policy["RoleName"] == {"Ref": "RegistryApiRole"}
    (stmt,) = policy["PolicyDocument"]["Statement"]
    assert (stmt["Action"], stmt["Resource"]) == ("secretsmanager:GetSecretValue", {"Ref": "RelayKeySecret"})
    assert {"UploadRelayLoadBalancerDnsName", "UploadRelayUrl", "UploadRelayKeySecretArn"} <= set(on["Outputs"])


def test_upload_relay_task_is_the_smallest_arm_fargate_task(resources: dict[str, Any]) -> None:
    task = resources["RelayTaskDefinition"]["Properties"]
    assert (task["Cpu"], task["Memory"]) == ("256", "512")
    assert task["RuntimePlatform"] == {"CpuArchitecture": "ARM64", "OperatingSystemFamily": "LINUX"}
    assert task["RequiresCompatibilities"] == ["FARGATE"] and task["NetworkMode"] == "awsvpc"
    assert task["TaskRoleArn"] == {"Fn::GetAtt": ["RelayTaskRole", "Arn"]}
    assert task["ExecutionRoleArn"] == {"Fn::GetAtt": ["RelayExecutionRole", "Arn"]}
    (container,) = task["ContainerDefinitions"]
    assert container["Image"] == {"Ref": "UploadRelayImageUri"}
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["REGISTRY_TABLE_NAME"] == {"Ref": "RegistryTable"}
    assert env["REGISTRY_BUCKET_NAME"] == {"Ref": "BlobBucket"}
    assert env["REGISTRY_RELAY_URL"] == RELAY_URL
    assert env["REGISTRY_RELAY_KEY_PARAMETER"] == {"Ref": "RelayKeySecret"}
    assert "REGISTRY_TOKEN_KEY_PARAMETER" not in env  # the relay mints and checks no tokens
    (port,) = container["PortMappings"]
    assert env["REGISTRY_RELAY_PORT"] == str(port["ContainerPort"])
    assert env["REGISTRY_RELAY_HOST"] == "0.0.0.0"
    logs = container["LogConfiguration"]
    assert logs["LogDriver"] == "awslogs" and logs["Options"]["awslogs-group"] == {"Ref": "RelayLogGroup"}
    assert resources["RelayLogGroup"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    image = re.compile(json.loads(RESOURCES.read_text())["Parameters"]["UploadRelayImageUri"]["AllowedPattern"])
    assert image.fullmatch("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/registry-relay:v1")
    assert image.fullmatch("123456789012.dkr.ecr.us-east-1.amazonaws.com/relay@sha256:" + "a" * 64)
    assert image.fullmatch("")  # disabled: no image
    assert not image.fullmatch("docker.io/library/python:3.11")  # the execution role pulls from ECR only


def test_upload_relay_network_has_no_nat_and_a_long_idle_timeout(resources: dict[str, Any]) -> None:
    assert not any(r["Type"] == "AWS::EC2::NatGateway" for r in resources.values())
    service = resources["RelayService"]["Properties"]
    assert service["LaunchType"] == "FARGATE" and service["DesiredCount"] == 1
    network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "ENABLED"
    assert network["Subnets"] == [{"Ref": "RelaySubnetA"}, {"Ref": "RelaySubnetB"}]
    route = resources["RelayDefaultRoute"]["Properties"]
    assert (route["DestinationCidrBlock"], route["GatewayId"]) == ("0.0.0.0/0", {"Ref": "RelayInternetGateway"})
    for zone in "AB":
        assert resources[f"RelaySubnet{zone}Routes"]["Properties"]["RouteTableId"] == {"Ref": "RelayRouteTable"}
    endpoints = {
        json.dumps(r["Properties"]["ServiceName"]): r["Properties"]
        for r in resources.values() if r["Type"] == "AWS::EC2::VPCEndpoint"
    }  # fmt: skip
    assert set(endpoints) == {
        json.dumps({"Fn::Sub": "com.amazonaws.${AWS::Region}.s3"}),
        json.dumps({"Fn::Sub": "com.amazonaws.${AWS::Region}.dynamodb"}),
    }
    for endpoint in endpoints.values():
        assert endpoint["VpcEndpointType"] == "Gateway"
        assert endpoint["RouteTableIds"] == [{"Ref": "RelayRouteTable"}]
    alb = resources["RelayLoadBalancer"]["Properties"]
    attributes = {a["Key"]: a["Value"] for a in alb["LoadBalancerAttributes"]}
    assert int(attributes["idle_timeout.timeout_seconds"]) >= 900  # a multi-GB PUT, then the S3 completion
    assert alb["Scheme"] == "internet-facing"
    listener = resources["RelayListener"]["Properties"]
    assert (listener["Port"], listener["Protocol"]) == (443, "HTTPS")
    assert listener["Certificates"] == [{"CertificateArn": {"Ref": "UploadRelayCertificateArn"}}]
    (ingress,) = resources["RelayTaskSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert ingress["SourceSecurityGroupId"] == {"Ref": "RelayLoadBalancerSecurityGroup"}  # tasks: from the ALB only
    assert resources["RelayTargetGroup"]["Properties"]["TargetType"] == "ip"


def test_upload_relay_roles_are_least_privilege(resources: dict[str, Any]) -> None:
    def grants(role: str) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for stmt in _statements(resources[role]):
            assert stmt["Effect"] == "Allow"
            for resource in _as_list(stmt["Resource"]):
                found.setdefault(json.dumps(resource, sort_keys=True), set()).update(_as_list(stmt["Action"]))
        return found

    def key(value: Any) -> str:
        return json.dumps(value, sort_keys=True)

    for role in ("RelayTaskRole", "RelayExecutionRole"):
        (trust,) = resources[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert "ManagedPolicyArns" not in resources[role]["Properties"]
    assert grants("RelayTaskRole") == {
        key({"Fn::GetAtt": ["RegistryTable", "Arn"]}): RELAY_TABLE_ACTIONS,  # no Scan, no batch writes, no index
        key({"Fn::Sub": "${BlobBucket.Arn}/uploads/*"}): OBJECT_ACTIONS,
        key({"Fn::Sub": "${BlobBucket.Arn}/blobs/*"}): OBJECT_ACTIONS,  # not manifests/, not the bucket
        # The capability key only: with the token signing key a compromised relay could mint any token.
        key({"Ref": "RelayKeySecret"}): {"secretsmanager:GetSecretValue"},
    }
    execution = grants("RelayExecutionRole")
    assert execution.pop(key("*")) == {"ecr:GetAuthorizationToken"}  # has no resource-level form
    assert execution.pop(key({"Fn::GetAtt": ["RelayLogGroup", "Arn"]})) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    ((repository, actions),) = execution.items()
    assert actions == {"ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"}
    assert "UploadRelayImageUri" in repository and ":repository/" in repository  # the image's own repository


def test_upload_relay_image_uri_names_its_ecr_repository() -> None:
    """The execution role's repository ARN is cut out of the image URI with Fn::Split/Select: replay it."""
    statements = json.loads(RESOURCES.read_text())["Resources"]["RelayExecutionRole"]["Properties"]["Policies"]
    (pull,) = [s for p in statements for s in p["PolicyDocument"]["Statement"] if s["Sid"] == "PullRelayImage"]

    def evaluate(node: Any, uri: str) -> Any:
        if isinstance(node, dict):
            ((fn, arg),) = node.items()
            if fn == "Ref":
                return {"UploadRelayImageUri": uri, "AWS::Partition": "aws"}[arg]
            if fn == "Fn::Split":
                return evaluate(arg[1], uri).split(arg[0])
            if fn == "Fn::Select":
                return evaluate(arg[1], uri)[arg[0]]
            if fn == "Fn::Join":
                return arg[0].join(evaluate(x, uri) for x in arg[1])
            raise AssertionError(fn)
        return node

    repository = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/registry-relay"
    for uri in (f"{repository}@sha256:{'b' * 64}", f"{repository}:v3"):
        assert evaluate(pull["Resource"], uri) == "arn:aws:ecr:eu-west-1:123456789012:repository/team/registry-relay"


def test_dockerfile_builds_the_relay_as_a_non_root_user() -> None:
    lines = [line.strip() for line in (REPO_ROOT / "Dockerfile").read_text().splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    assert instructions[0] == "FROM python:3.11-slim"
    copies = " ".join(line for line in instructions if line.startswith("COPY"))
    assert "requirements.txt" in copies and "chalicelib" in copies
    assert "requirements-relay.txt" in copies
    (user,) = [line for line in instructions if line.startswith("USER ")]
    assert user.split()[1] not in ("root", "0")
    assert instructions[-1] == 'CMD ["python", "-m", "chalicelib.relay"]'
    relay_requirements = (REPO_ROOT / "requirements-relay.txt").read_text().splitlines()
    assert "-r requirements.txt" in relay_requirements


def _checkov() -> str:
    """checkov from its own venv (`make install` creates it; it cannot share the app's)."""
    candidate = Path(os.environ.get("CHECKOV", REPO_ROOT / ".venv-checkov" / "bin" / "checkov"))
    assert candidate.exists(), f"{candidate} is missing: run `make install` (requirements-checkov.txt)"
    return str(candidate)


@pytest.mark.parametrize("name", ["sam.json", "infra-only.json"])
def test_checkov_finds_nothing_undeclined(package_dir: Path, name: str) -> None:
    """Both routes' templates: every finding of the infrastructure scanner is fixed, or declined beside
    the resource with its reason (Metadata checkov.skip)."""
    proc = subprocess.run(
        [_checkov(), "-f", str(package_dir / name), "--framework", "cloudformation", "--compact",
         "-o", "json", "--skip-download"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    report = json.loads(proc.stdout)
    report = report[0] if isinstance(report, list) else report
    failed = [(r["check_id"], r["resource"]) for r in report["results"]["failed_checks"]]
    assert failed == [], failed
    for skipped in report["results"]["skipped_checks"]:
        assert len(skipped["check_result"].get("suppress_comment", "")) > 20, skipped["check_id"]
