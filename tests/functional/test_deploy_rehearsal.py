"""Rehearsal of `make deploy` (`infra/deploy.py`) against moto's server on 127.0.0.1.

The tool runs as users run it, through the standard AWS endpoint setting (AWS_ENDPOINT_URL). Three
deploys: a first one; a second one after a change (the next release: a module added to the app,
the GC state machine's definition changed and a log group added in the template; and two
parameters changed: `LogRetentionDays`, a stack parameter, and `JobsReservedConcurrency`, a
function setting), which must update the stack and the functions
in place and keep the table's items and the bucket's objects; a third one from a fresh clone (no
`.chalice/deployed/`), which must find the previous deploy's state in the artifacts bucket and
update the same REST API. The test then checks through the AWS APIs what exists and how it is wired.

Where moto 5.2.5 cannot emulate a step, the test says so and checks the exact request instead:
- CloudFormation: moto skips `AWS::SecretsManager::Secret` (the admin password secret) and
  `AWS::Scheduler::Schedule` (the schedule ticks), and ignores `DefinitionSubstitutions` (the
  deploy route does not use them: it inlines the definition with `Fn::Sub`). The CreateStack
  request's template is checked for them; the admin password secret is stood in for with a secret
  created through the API, so the stack's outputs are complete.
- CloudFormation also skips `AWS::CloudWatch::Alarm` and `AWS::ApiGateway::Account` (checked in the
  template), and Lambda does not store a function's `DeadLetterConfig` (the request is checked).
- CloudFormation's UpdateStack, two gaps, each taught to moto here (`_teach_moto_stack_updates`):
  it updates a resource whose condition is false (the relay's, `UploadRelay=disabled`) when a
  parameter it names looks changed, and fails on its `Fn::GetAtt` of another such resource (its
  CreateStack skips them). Every parameter left at its default looks changed to moto: it compares
  the update's parameters with those the CreateStack request named, not with the defaults it
  resolved, and the tool sends every parameter's value. And it has no update for
  `AWS::Logs::LogGroup` (the group is dropped from the stack's resources and later references to
  it fail), where CloudFormation changes the retention in place.
- API Gateway: moto imports only OpenAPI 3 documents, Chalice sends Swagger 2.0. ImportRestApi and
  PutRestApi are stood in for (the API and its resource tree created from the document's paths),
  and the document itself is compared with the app's routes.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "infra"))

import deploy
from chalice_route import deployed_name, function_overrides, merged_template

STAGE = "rehearsal"
STACK = f"registry-{STAGE}"


def _stand_in_for_swagger2(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's ImportRestApi/PutRestApi accept OpenAPI 3 only: build the resource tree of a Swagger 2 document."""
    from moto.apigateway import models

    def tree(backend: Any, api: Any, doc: dict[str, Any]) -> Any:
        for path in doc.get("paths", {}):
            parent = api.default.id
            for part in [p for p in path.split("/") if p]:
                existing = [r for r in api.resources.values() if r.parent_id == parent and r.path_part == part]
                parent = (existing[0] if existing else backend.create_resource(api.id, parent, part)).id
            for method, operation in doc["paths"][path].items():
                if not method.startswith("x-"):
                    integration = operation["x-amazon-apigateway-integration"]
                    backend.put_method(api.id, parent, method.upper(), "NONE")
                    backend.put_integration(
                        api.id,
                        parent,
                        method.upper(),
                        integration["type"].upper(),
                        integration["uri"],
                        integration["httpMethod"],
                    )
        return api

    def import_rest_api(self: Any, api_doc: dict[str, Any], fail_on_warnings: bool) -> Any:
        return tree(self, self.create_rest_api(api_doc["info"]["title"], ""), api_doc)

    def put_rest_api(self: Any, function_id: str, api_doc: dict[str, Any], fail_on_warnings: bool,
                     mode: str = "merge") -> Any:  # fmt: skip
        return tree(self, self.get_rest_api(function_id), api_doc)

    monkeypatch.setattr(models.APIGatewayBackend, "import_rest_api", import_rest_api)
    monkeypatch.setattr(models.APIGatewayBackend, "put_rest_api", put_rest_api)


def _teach_moto_stack_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two gaps of moto's UpdateStack that a stack update of this template meets (module docstring).

    1. `ResourceMap.update` re-parses every resource that names a changed parameter (to moto, every
       parameter the CreateStack request left at its default: `build_resource_diff` compares with
       `input_parameters`), without the condition check `parse_and_create_resource` makes on
       create: skip a condition-false resource the same way. A resource whose condition turns
       false would have to be deleted, which this does not do: it fails instead (the rehearsal
       never flips a condition).
    2. `LogGroup` has no `update_from_cloudformation_json`: apply `RetentionInDays` to the same
       group, as CloudFormation does (a changed name would be a replacement: refused).
    """
    from moto.cloudformation import parsing
    from moto.logs.models import LogGroup, logs_backends

    real = parsing.parse_and_update_resource

    def update_resource(logical_id: str, resource_json: dict[str, Any], resources_map: Any, account_id: str,
                        region_name: str) -> Any:  # fmt: skip
        condition = resource_json.get("Condition")
        if condition and not resources_map.lazy_condition_map[condition]:
            if resources_map._parsed_resources.get(logical_id) is not None:
                raise AssertionError(f"{logical_id}: its condition turned false; this stand-in does not delete it")
            return None
        return real(logical_id, resource_json, resources_map, account_id, region_name)

    def update_log_group(cls: Any, original_resource: Any, new_resource_name: str, cloudformation_json: Any,
                         account_id: str, region_name: str) -> Any:  # fmt: skip
        properties = cloudformation_json["Properties"]
        if properties.get("LogGroupName", original_resource.name) != original_resource.name:
            raise AssertionError("a renamed log group is a replacement; this stand-in only updates in place")
        backend = logs_backends[account_id][region_name]
        if "RetentionInDays" in properties:
            backend.put_retention_policy(original_resource.name, int(properties["RetentionInDays"]))
        else:
            backend.delete_retention_policy(original_resource.name)
        return original_resource

    monkeypatch.setattr(parsing, "parse_and_update_resource", update_resource)
    monkeypatch.setattr(LogGroup, "update_from_cloudformation_json", classmethod(update_log_group), raising=False)


NEXT_RELEASE = "Next release. "


def _next_release(template: dict[str, Any]) -> dict[str, Any]:
    """The stack template of a later version of the code: the GC state machine's definition changed,
    and a resource added (a log group, with the stack's retention)."""
    changed = copy.deepcopy(template)
    definition = changed["Resources"]["GcStateMachine"]["Properties"]["DefinitionString"]["Fn::Sub"]
    assert definition[0].count('"Comment": "') >= 1
    definition[0] = definition[0].replace('"Comment": "', '"Comment": "' + NEXT_RELEASE, 1)
    changed["Resources"]["NextReleaseLogGroup"] = {
        "Type": "AWS::Logs::LogGroup",
        "Properties": {"LogGroupName": NEXT_RELEASE_GROUP, "RetentionInDays": {"Ref": "LogRetentionDays"}},
    }
    return changed


NEXT_RELEASE_GROUP = f"/registry/{STAGE}/next-release"


def _next_release_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app of a later version of the code: one more module in the bundle every function runs."""
    real = deploy.Deployer._project

    def project(self: deploy.Deployer, config: dict[str, Any]) -> Path:
        path = real(self, config)
        (path / "chalicelib" / "next_release.py").write_text('"""A module of the next release."""\n')
        return path

    monkeypatch.setattr(deploy.Deployer, "_project", project)


def _stand_in_for_admin_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's CloudFormation skips AWS::SecretsManager::Secret: create it through the API instead."""
    real = deploy.Deployer._stack

    def stack(self: deploy.Deployer, template_url: str, token_key_arn: str) -> dict[str, str]:
        outputs = real(self, template_url, token_key_arn)
        assert self.aws is not None
        secrets = self.aws.client("secretsmanager")
        try:
            arn = secrets.describe_secret(SecretId=f"{self.stack}/admin-password")["ARN"]
        except secrets.exceptions.ResourceNotFoundException:
            arn = secrets.create_secret(Name=f"{self.stack}/admin-password", SecretString="Stand-in-1")["ARN"]
        outputs.setdefault("AdminPasswordSecretRef", arn)
        outputs.setdefault("AdminPasswordSecretArn", arn)
        return outputs

    monkeypatch.setattr(deploy.Deployer, "_stack", stack)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = dict(os.environ)
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")  # fmt: skip
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(key, None)
    import urllib.request

    request = urllib.request.Request(f"{endpoint}/moto-api/config", method="POST",
                                     data=json.dumps({"lambda": {"use_docker": False}}).encode())  # fmt: skip
    urllib.request.urlopen(request, timeout=10).close()
    try:
        yield endpoint
    finally:
        srv.stop()
        os.environ.clear()
        os.environ.update(saved)


def _run(clone: Path, parameters: dict[str, str]) -> tuple[deploy.Aws, dict[str, Any]]:
    """One `make deploy` from the clone `clone` (its own `.chalice/deployed/` and build directory)."""
    aws = deploy.Aws(None, lambda line: None)
    tool = deploy.Deployer(STAGE, aws, lambda line: None, clone / "state", clone / "work", parameters,
                           skip_dependencies=True)  # fmt: skip
    return aws, tool.deploy()


CHANGED = {"LogRetentionDays": "14", "JobsReservedConcurrency": "3"}


def _snapshot(aws: deploy.Aws, outputs: dict[str, str]) -> dict[str, Any]:
    """What the later deploys must keep (identities) or change (settings), read through the AWS APIs."""
    sfn, lam = aws.client("stepfunctions"), aws.client("lambda")
    machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
    gc = sfn.describe_state_machine(stateMachineArn=machines[f"{STACK}-gc"])
    (api,) = [a for a in aws.client("apigateway").get_rest_apis()["items"] if a["name"] == "registry"]
    table = aws.client("dynamodb").describe_table(TableName=outputs["RegistryTableName"])["Table"]
    group = f"/aws/lambda/registry-{STAGE}-gc_mark"
    (log_group,) = aws.client("logs").describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    return {
        "machines": machines,
        "gc_definition": gc["definition"],
        "rest_api_id": api["id"],
        "table_arn": table["TableArn"],
        "table_created": table["CreationDateTime"],
        "token_key": aws.client("secretsmanager").describe_secret(SecretId=f"{STACK}/token-signing-key")["ARN"],
        "functions": {f["FunctionName"]: f["FunctionArn"] for f in lam.list_functions()["Functions"]},
        "code": {f["FunctionName"]: f["CodeSha256"] for f in lam.list_functions()["Functions"]},
        "retention": log_group.get("retentionInDays"),
        "job_concurrency": lam.get_function_concurrency(FunctionName=f"registry-{STAGE}-gc_mark")[
            "ReservedConcurrentExecutions"
        ],
    }


@pytest.fixture(scope="module")
def deployments(server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("deploy")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _stand_in_for_swagger2(monkeypatch)
        _stand_in_for_admin_secret(monkeypatch)
        _teach_moto_stack_updates(monkeypatch)
        first_aws, first = _run(tmp / "clone", {})
        before = _snapshot(first_aws, first["outputs"])
        # Data written between the deploys must survive the later ones.
        table, bucket = first["outputs"]["RegistryTableName"], first["outputs"]["RegistryBucketName"]
        first_aws.client("dynamodb").put_item(TableName=table, Item={"pk": {"S": "keep"}, "sk": {"S": "me"}})
        first_aws.client("s3").put_object(Bucket=bucket, Key="blobs/sha256/keep", Body=b"bytes")
        # The next release (a changed template) deployed with two changed parameters.
        release = _next_release(deploy.stack_template(STAGE))
        monkeypatch.setattr(deploy, "stack_template", lambda stage, app_name="registry": copy.deepcopy(release))
        _next_release_code(monkeypatch)
        second_aws, second = _run(tmp / "clone", CHANGED)
        after = _snapshot(second_aws, second["outputs"])
        # The same release deployed from a fresh clone: no local state, no parameters given.
        third_aws, third = _run(tmp / "fresh", {})
        yield {"first": first, "first_aws": first_aws, "second": second, "second_aws": second_aws,
               "third": third, "third_aws": third_aws, "before": before, "after": after,
               "release": release, "clones": (tmp / "clone", tmp / "fresh")}  # fmt: skip


def _policy(iam: Any, role_arn: str) -> dict[str, Any]:
    role = role_arn.rsplit("/", 1)[1]
    (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    if not isinstance(document, str):
        return dict(document)
    text = unquote(document)
    # moto returns the inline policies CloudFormation created as a Python repr, not JSON.
    loaded: dict[str, Any] = json.loads(text) if text.startswith('{"') else ast.literal_eval(text)
    return loaded


def _actions(document: dict[str, Any]) -> set[str]:
    return {a for s in document["Statement"] for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}


def _calls(aws: deploy.Aws, service: str, operation: str) -> list[dict[str, Any]]:
    return [params for svc, op, params in aws.calls if svc == service and op == operation]


def test_functions_run_with_the_stack_roles_and_settings(deployments: dict[str, Any]) -> None:
    aws = deployments["first_aws"]
    outputs = deployments["first"]["outputs"]
    lam = aws.client("lambda")
    functions = {f["FunctionName"]: f for f in lam.list_functions()["Functions"]}
    overrides = function_overrides(merged_template())
    expected = {deployed_name(logical_id, STAGE): logical_id for logical_id in overrides}
    assert {name for name in functions if name.startswith(STACK)} == set(expected)
    # every background function of the entry point table, the scan and replication ones included
    assert {f"{STACK}-scan_submit", f"{STACK}-scan_all_step", f"{STACK}-replication_task"} <= set(expected)
    roles = {"RegistryApiRole": outputs["RegistryApiRoleArn"], "RegistryJobsRole": outputs["RegistryJobsRoleArn"],
             "WebhookDeliveryRole": outputs["WebhookDeliveryRoleArn"]}  # fmt: skip
    for name, logical_id in expected.items():
        props = overrides[logical_id]["Properties"]
        function = functions[name]
        assert function["Role"] == roles[props["Role"]["Fn::GetAtt"][0]], name
        if "Timeout" in props:
            assert function["Timeout"] == props["Timeout"], name
        env = function["Environment"]["Variables"]
        assert env["REGISTRY_TABLE_NAME"] == outputs["RegistryTableName"], name
        assert env["REGISTRY_BUCKET_NAME"] == outputs["RegistryBucketName"], name
        assert env["REGISTRY_TOKEN_KEY_PARAMETER"].endswith(f"secret:{STACK}/token-signing-key-" +
                                                            env["REGISTRY_TOKEN_KEY_PARAMETER"][-6:])  # fmt: skip
        assert env["POWERTOOLS_SERVICE_NAME"] == "registry", name  # the stage's own settings are kept
    api_env = functions[f"registry-{STAGE}"]["Environment"]["Variables"]
    assert api_env["REGISTRY_GC_STATE_MACHINE_ARN"].endswith(f":stateMachine:{STACK}-gc")


def test_roles_policies_table_bucket_and_secrets(deployments: dict[str, Any]) -> None:
    aws = deployments["first_aws"]
    outputs = deployments["first"]["outputs"]
    iam = aws.client("iam")
    assert {"dynamodb:Scan", "states:StartExecution", "s3:DeleteObject"} <= _actions(
        _policy(iam, outputs["RegistryJobsRoleArn"])
    )
    api_actions = _actions(_policy(iam, outputs["RegistryApiRoleArn"]))
    assert "dynamodb:Scan" not in api_actions
    assert "s3:ListBucket" not in api_actions
    table = aws.client("dynamodb").describe_table(TableName=outputs["RegistryTableName"])["Table"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
    aws.client("s3").head_bucket(Bucket=outputs["RegistryBucketName"])
    key = aws.client("secretsmanager").get_secret_value(SecretId=f"{STACK}/token-signing-key")["SecretString"]
    assert key.startswith("-----BEGIN PRIVATE KEY-----")


def _template_machines(aws: deploy.Aws) -> dict[str, dict[str, Any]]:
    """Name -> properties of every state machine in the template the first deploy sent."""
    (create,) = _calls(aws, "cloudformation", "CreateStack")
    resources = _template(aws, create["TemplateURL"])["Resources"]
    machines = {}
    for resource in resources.values():
        if resource["Type"] == "AWS::StepFunctions::StateMachine":
            name = resource["Properties"]["StateMachineName"]["Fn::Sub"].replace("${AWS::StackName}", STACK)
            machines[name] = resource["Properties"]
    return machines


def test_state_machines_name_the_deployed_functions(deployments: dict[str, Any]) -> None:
    """Every state machine of the template exists, and its Tasks name functions the deploy created."""
    aws = deployments["third_aws"]
    sfn = aws.client("stepfunctions")
    functions = {f["FunctionArn"] for f in aws.client("lambda").list_functions()["Functions"]}
    machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
    expected = _template_machines(deployments["first_aws"])
    assert {"gc", "retention", "webhook", "scan", "scan_all", "replication"} <= {
        n.removeprefix(f"{STACK}-") for n in expected
    }
    assert set(machines) == set(expected)
    for name, properties in expected.items():
        described = sfn.describe_state_machine(stateMachineArn=machines[name])
        tasks = [s["Parameters"]["FunctionName"] for s in _states(json.loads(described["definition"]))
                 if s.get("Type") == "Task"]  # fmt: skip
        assert tasks, name
        assert set(tasks) <= functions, (name, set(tasks) - functions)
        # the Tasks the template's definition names, each substituted with a deployed function's ARN
        text, variables = properties["DefinitionString"]["Fn::Sub"]
        named = {_pseudo(variables[v]["Fn::Sub"]) for v in re.findall(r"\$\{(\w+)\}", text) if v in variables}
        assert set(tasks) == named, name
        assert described["roleArn"].split("/")[-1] in {
            r["RoleName"] for r in aws.client("iam").list_roles()["Roles"]
        }, name


def _pseudo(text: str) -> str:
    """`text` with the pseudo parameters of moto's account and region substituted."""
    for name, value in {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}.items():
        text = text.replace("${" + name + "}", value)
    return text


def _states(definition: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for state in definition.get("States", {}).values():
        yield state
        for nested in ("Iterator", "ItemProcessor"):
            if nested in state:
                yield from _states(state[nested])
        for branch in state.get("Branches", []):
            yield from _states(branch)


def test_rules_and_schedules_target_the_deployed_functions(deployments: dict[str, Any]) -> None:
    aws = deployments["first_aws"]
    events = aws.client("events")
    consumer = f"registry-{STAGE}-event_consumer"
    rules = [r for r in events.list_rules()["Rules"] if r["Name"].startswith(consumer)]
    assert len(rules) == 1
    assert json.loads(rules[0]["EventPattern"]) == {"source": ["oci-registry"]}
    (target,) = events.list_targets_by_rule(Rule=rules[0]["Name"])["Targets"]
    assert target["Arn"].endswith(f":function:{consumer}")
    # moto's CloudFormation does not create AWS::Scheduler::Schedule: check the request's template.
    (create,) = _calls(aws, "cloudformation", "CreateStack")
    template = _template(aws, create["TemplateURL"])
    functions = {f["FunctionArn"] for f in aws.client("lambda").list_functions()["Functions"]}
    schedules = {
        k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == "AWS::Scheduler::Schedule"
    }
    assert {"GcScheduleTick", "RetentionScheduleTick", "ScanAllScheduleTick", "ReplicationScheduleTick"} <= set(
        schedules
    )
    for tick, properties in schedules.items():
        assert _pseudo(properties["Target"]["Arn"]["Fn::Sub"]) in functions, tick
        assert properties["Target"]["RoleArn"] == {"Fn::GetAtt": ["JobScheduleRole", "Arn"]}, tick
        json.loads(properties["Target"]["Input"])
    role = _policy(aws.client("iam"), _role_arn(aws, "JobScheduleRole"))
    assert _actions(role) == {"lambda:InvokeFunction"}
    assert template["Resources"]["AdminPasswordSecret"]["Type"] == "AWS::SecretsManager::Secret"


def _role_arn(aws: deploy.Aws, logical_id: str) -> str:
    resources = aws.client("cloudformation").list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    (name,) = [r["PhysicalResourceId"] for r in resources if r["LogicalResourceId"] == logical_id]
    return str(aws.client("iam").get_role(RoleName=name.rsplit("/", 1)[-1])["Role"]["Arn"])


def _template(aws: deploy.Aws, url: str) -> dict[str, Any]:
    bucket = url.split("//", 1)[1].split(".s3.", 1)[0]
    key = url.split(".amazonaws.com/", 1)[1]
    loaded: dict[str, Any] = json.loads(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    return loaded


def test_rest_api_has_the_app_routes(deployments: dict[str, Any]) -> None:
    import app

    aws = deployments["first_aws"]
    (request,) = _calls(aws, "apigateway", "ImportRestApi")
    swagger = json.loads(request["body"])
    assert swagger["swagger"] == "2.0"  # what moto cannot import; the stand-in builds its tree
    assert set(swagger["paths"]) == set(app.app.routes)
    apigw = aws.client("apigateway")
    (api,) = [a for a in apigw.get_rest_apis()["items"] if a["name"] == "registry"]
    paths = {r["path"] for r in apigw.get_resources(restApiId=api["id"], limit=500)["items"]}
    assert set(app.app.routes) <= paths
    assert deployments["first"]["url"].startswith("https://")


def test_second_deploy_updates_in_place_and_keeps_the_data(deployments: dict[str, Any]) -> None:
    """The next release with two changed parameters: the stack is updated, nothing is recreated."""
    first, second, aws = deployments["first"], deployments["second"], deployments["second_aws"]
    before, after = deployments["before"], deployments["after"]
    # The request: the new template, the changed parameter with the kept ones, the same capabilities.
    (update,) = _calls(aws, "cloudformation", "UpdateStack")
    assert update["StackName"] == STACK
    assert _template(aws, update["TemplateURL"]) == deployments["release"]
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in update["Parameters"]}
    assert parameters["LogRetentionDays"] == "14"
    assert parameters["TokenKeySecretArn"] == before["token_key"]
    assert "JobsReservedConcurrency" not in parameters  # a function setting, not a stack parameter
    assert update["Capabilities"] == ["CAPABILITY_IAM"]
    stack = aws.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    # Nothing holding data is created or deleted, and neither is the REST API or a function.
    for service, operation in [("cloudformation", "CreateStack"), ("cloudformation", "DeleteStack"),
                               ("dynamodb", "CreateTable"), ("dynamodb", "DeleteTable"), ("s3", "CreateBucket"),
                               ("s3", "DeleteBucket"), ("s3", "DeleteObject"), ("s3", "DeleteObjects"),
                               ("secretsmanager", "CreateSecret"), ("secretsmanager", "DeleteSecret"),
                               ("lambda", "CreateFunction"), ("lambda", "DeleteFunction"),
                               ("apigateway", "ImportRestApi"), ("apigateway", "DeleteRestApi")]:  # fmt: skip
        assert not _calls(aws, service, operation), operation
    # Applied in place, read through the AWS APIs: the same identities, the changed settings.
    assert second["outputs"]["RegistryTableName"] == first["outputs"]["RegistryTableName"]
    assert second["outputs"]["RegistryBucketName"] == first["outputs"]["RegistryBucketName"]
    for key in ("machines", "rest_api_id", "table_arn", "table_created", "token_key", "functions"):
        assert after[key] == before[key], key
    assert NEXT_RELEASE not in before["gc_definition"]
    assert NEXT_RELEASE in after["gc_definition"]  # the changed definition, on the same state machine
    assert (before["retention"], after["retention"]) == (30, 14)  # the stack parameter
    assert (before["job_concurrency"], after["job_concurrency"]) == (5, 3)  # the function setting
    groups = aws.client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{STACK}")["logGroups"]
    assert len(groups) == len(before["functions"])
    assert {g["retentionInDays"] for g in groups} == {14}
    (group,) = aws.client("logs").describe_log_groups(logGroupNamePrefix=NEXT_RELEASE_GROUP)["logGroups"]
    assert group["retentionInDays"] == 14  # the resource the release added
    # Every function got the new code, and its settings still name the stack's resources.
    updated = {c["FunctionName"].rsplit(":", 1)[-1] for c in _calls(aws, "lambda", "UpdateFunctionCode")}
    assert updated == set(before["functions"])
    assert all(after["code"][name] != before["code"][name] for name in before["code"]), "the code is the new one"
    env = aws.client("lambda").get_function_configuration(FunctionName=f"{STACK}-gc_mark")["Environment"]
    assert env["Variables"]["REGISTRY_TABLE_NAME"] == first["outputs"]["RegistryTableName"]
    _assert_data_kept(aws, first["outputs"])


def _assert_data_kept(aws: deploy.Aws, outputs: dict[str, str]) -> None:
    item = aws.client("dynamodb").get_item(TableName=outputs["RegistryTableName"],
                                           Key={"pk": {"S": "keep"}, "sk": {"S": "me"}})  # fmt: skip
    assert "Item" in item
    body = aws.client("s3").get_object(Bucket=outputs["RegistryBucketName"], Key="blobs/sha256/keep")
    assert body["Body"].read() == b"bytes"


def test_deploy_from_a_fresh_clone_updates_the_same_api(deployments: dict[str, Any]) -> None:
    """No `.chalice/deployed/` and no parameters: the state stored in the artifacts bucket is used."""
    aws, third = deployments["third_aws"], deployments["third"]
    state_key = f"{STACK}/deploy-state.json"
    (restore,) = _calls(aws, "s3", "GetObject")
    assert restore["Key"] == state_key
    for service, operation in [("cloudformation", "CreateStack"), ("cloudformation", "UpdateStack"),
                               ("lambda", "CreateFunction"), ("apigateway", "ImportRestApi"),
                               ("apigateway", "CreateRestApi"), ("secretsmanager", "CreateSecret")]:  # fmt: skip
        assert not _calls(aws, service, operation), operation
    rest = {r["name"]: r for r in third["chalice"]["resources"]}["rest_api"]["rest_api_id"]
    assert rest == deployments["before"]["rest_api_id"]
    # The same release's code: the same bundle (so the second deploy's differed by the code change).
    code = {f["FunctionName"]: f["CodeSha256"] for f in aws.client("lambda").list_functions()["Functions"]}
    assert code == deployments["after"]["code"]
    apis = [a for a in aws.client("apigateway").get_rest_apis()["items"] if a["name"] == "registry"]
    assert len(apis) == 1
    # The parameters given to the earlier deploy are remembered (a function setting included).
    lam = aws.client("lambda")
    assert lam.get_function_concurrency(FunctionName=f"{STACK}-gc_mark")["ReservedConcurrentExecutions"] == 3
    bucket = restore["Bucket"]
    stored = json.loads(aws.client("s3").get_object(Bucket=bucket, Key=state_key)["Body"].read())
    assert stored["parameters"] == CHANGED
    assert stored["chalice"] == json.loads((deployments["clones"][1] / "state" / f"{STAGE}.json").read_text())
    _assert_data_kept(aws, third["outputs"])


def test_operations_basics(deployments: dict[str, Any]) -> None:
    """Concurrency limits, the consumer's dead-letter queue, access logs, alarms and the dashboard."""
    aws = deployments["first_aws"]
    outputs = deployments["first"]["outputs"]
    lam = aws.client("lambda")
    api_limit = lam.get_function_concurrency(FunctionName=f"registry-{STAGE}")["ReservedConcurrentExecutions"]
    assert api_limit == 50
    for name in (f"registry-{STAGE}-scan_poll", f"registry-{STAGE}-replication_task"):  # after the change: 3
        assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 3
    # moto accepts DeadLetterConfig but does not store it: check the request.
    (update,) = [c for c in _calls(aws, "lambda", "UpdateFunctionConfiguration") if "DeadLetterConfig" in c]
    assert update["FunctionName"].endswith(f":function:registry-{STAGE}-event_consumer")
    queue = update["DeadLetterConfig"]["TargetArn"]
    assert queue == outputs["EventConsumerDeadLetterQueueArn"]
    # Lambda sends a dead letter with the function's role: the jobs role may, the API role may not.
    iam = aws.client("iam")
    assert "sqs:SendMessage" in _actions(_policy(iam, outputs["RegistryJobsRoleArn"]))
    assert "sqs:SendMessage" not in _actions(_policy(iam, outputs["RegistryApiRoleArn"]))
    sqs = aws.client("sqs")
    sqs.get_queue_url(QueueName=queue.rsplit(":", 1)[1])
    apigw = aws.client("apigateway")
    (api,) = [a for a in apigw.get_rest_apis()["items"] if a["name"] == "registry"]
    settings = apigw.get_stage(restApiId=api["id"], stageName="api")["accessLogSettings"]
    assert settings["destinationArn"] == outputs["ApiAccessLogGroupArn"]
    assert json.loads(settings["format"])["status"] == "$context.status"
    dashboard = aws.client("cloudwatch").get_dashboard(DashboardName=STACK)["DashboardBody"]
    assert "ManifestPulls" in dashboard
    # moto's CloudFormation does not create AWS::CloudWatch::Alarm: check the request's template.
    (create,) = _calls(aws, "cloudformation", "CreateStack")
    resources = _template(aws, create["TemplateURL"])["Resources"]
    alarms = {k: v["Properties"] for k, v in resources.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    assert alarms["ApiThrottlesAlarm"]["Dimensions"] == [{"Name": "FunctionName", "Value": f"registry-{STAGE}"}]
    assert alarms["ApiServerErrorRateAlarm"]["MetricName"] == "5XXError"
    # Every state machine: an alarm on its failed executions, and its runs on the dashboard.
    failed = {
        a["Dimensions"][0]["Value"]["Ref"]
        for a in alarms.values()
        if a["Namespace"] == "AWS/States" and a["MetricName"] == "ExecutionsFailed"
    }
    machines = {k for k, v in resources.items() if v["Type"] == "AWS::StepFunctions::StateMachine"}
    assert failed == machines
    for name in _template_machines(aws):
        assert f'"StateMachineArn","arn:aws:states:us-east-1:123456789012:stateMachine:{name}"' in dashboard.replace(
            " ", ""
        ), name


def test_destroy_keeps_the_data_unless_asked(deployments: dict[str, Any], tmp_path: Path) -> None:
    """Runs last in this module (pytest keeps file order): it deletes what the others look at.

    From yet another clone, without local state: Chalice's record comes from the artifacts bucket."""
    aws = deploy.Aws(None, lambda line: None)
    outputs = deployments["third"]["outputs"]
    tool = deploy.Deployer(STAGE, aws, lambda line: None, tmp_path / "state", tmp_path / "work", {})
    tool.destroy(delete_data=False)
    names = {f["FunctionName"] for f in aws.client("lambda").list_functions()["Functions"]}
    assert not {n for n in names if n.startswith(f"registry-{STAGE}")}
    assert not [a for a in aws.client("apigateway").get_rest_apis()["items"] if a["name"] == "registry"]
    (delete,) = _calls(aws, "cloudformation", "DeleteStack")
    assert delete["StackName"] == STACK
    (forget,) = _calls(aws, "s3", "DeleteObject")
    assert forget["Key"] == f"{STACK}/deploy-state.json"
    # The request the stack deletion honours: the table and bucket are retained.
    (create,) = _calls(deployments["first_aws"], "cloudformation", "CreateStack")
    resources = _template(aws, create["TemplateURL"])["Resources"]
    assert resources["RegistryTable"]["DeletionPolicy"] == "Retain"
    assert resources["BlobBucket"]["DeletionPolicy"] == "Retain"
    aws.client("secretsmanager").describe_secret(SecretId=f"{STACK}/token-signing-key")
    _assert_data_kept(aws, outputs)
