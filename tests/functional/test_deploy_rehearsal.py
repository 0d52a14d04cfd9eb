"""Rehearsal of `make deploy` (`infra/deploy.py`) against moto's server on 127.0.0.1.

The tool runs as users run it, through the standard AWS endpoint setting (AWS_ENDPOINT_URL); the
test then checks through the AWS APIs what exists and how it is wired, deploys a second time after
a change and checks that the update happened in place and kept the data.

Where moto 5.2.5 cannot emulate a step, the test says so and checks the exact request instead:
- CloudFormation: moto skips `AWS::SecretsManager::Secret` (the admin password secret) and
  `AWS::Scheduler::Schedule` (the two schedule ticks), and ignores `DefinitionSubstitutions`
  (the deploy route does not use them: it inlines the definition with `Fn::Sub`). The CreateStack
  request's template is checked for them; the admin password secret is stood in for with a secret
  created through the API, so the stack's outputs are complete.
- CloudFormation also skips `AWS::CloudWatch::Alarm` and `AWS::ApiGateway::Account` (checked in the
  template), and Lambda does not store a function's `DeadLetterConfig` (the request is checked).
- API Gateway: moto imports only OpenAPI 3 documents, Chalice sends Swagger 2.0. ImportRestApi and
  PutRestApi are stood in for (the API and its resource tree created from the document's paths),
  and the document itself is compared with the app's routes.
"""

from __future__ import annotations

import ast
import json
import os
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


def _run(tmp: Path, parameters: dict[str, str]) -> tuple[deploy.Aws, dict[str, Any]]:
    aws = deploy.Aws(None, lambda line: None)
    tool = deploy.Deployer(STAGE, aws, lambda line: None, tmp / "state", tmp / "work", parameters,
                           skip_dependencies=True)  # fmt: skip
    return aws, tool.deploy()


@pytest.fixture(scope="module")
def deployments(server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("deploy")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _stand_in_for_swagger2(monkeypatch)
        _stand_in_for_admin_secret(monkeypatch)
        first_aws, first = _run(tmp, {})
        # Data written between the deploys must survive the second one.
        table, bucket = first["outputs"]["RegistryTableName"], first["outputs"]["RegistryBucketName"]
        first_aws.client("dynamodb").put_item(TableName=table, Item={"pk": {"S": "keep"}, "sk": {"S": "me"}})
        first_aws.client("s3").put_object(Bucket=bucket, Key="blobs/sha256/keep", Body=b"bytes")
        # The second deploy ships the code again with the stack unchanged. (A stack update cannot be
        # rehearsed here: moto's UpdateStack resolves Fn::GetAtt of resources whose condition is false,
        # the relay's, and fails; the tool skips UpdateStack when template and parameters are unchanged.)
        second_aws, second = _run(tmp, {})
        yield {"first": first, "first_aws": first_aws, "second": second, "second_aws": second_aws,
               "state_dir": tmp / "state", "work_dir": tmp / "work"}  # fmt: skip


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
    assert set(expected) <= set(functions)
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


def test_state_machines_name_the_deployed_functions(deployments: dict[str, Any]) -> None:
    aws = deployments["first_aws"]
    sfn = aws.client("stepfunctions")
    functions = {f["FunctionArn"] for f in aws.client("lambda").list_functions()["Functions"]}
    machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
    assert {f"{STACK}-gc", f"{STACK}-retention", f"{STACK}-webhook"} <= set(machines)
    for name in (f"{STACK}-gc", f"{STACK}-retention", f"{STACK}-webhook"):
        definition = sfn.describe_state_machine(stateMachineArn=machines[name])["definition"]
        tasks = [s["Parameters"]["FunctionName"] for s in _states(json.loads(definition)) if s.get("Type") == "Task"]
        assert tasks, name
        assert set(tasks) <= functions, (name, set(tasks) - functions)


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
    for tick in ("GcScheduleTick", "RetentionScheduleTick"):
        schedule = template["Resources"][tick]
        assert schedule["Type"] == "AWS::Scheduler::Schedule"
        arn = schedule["Properties"]["Target"]["Arn"]["Fn::Sub"]
        assert arn.endswith(f":function:registry-{STAGE}-job_schedule")
    assert template["Resources"]["AdminPasswordSecret"]["Type"] == "AWS::SecretsManager::Secret"


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
    first, second, aws = deployments["first"], deployments["second"], deployments["second_aws"]
    assert not _calls(aws, "cloudformation", "CreateStack")
    assert not _calls(aws, "cloudformation", "UpdateStack")  # nothing changed in the stack
    assert not _calls(aws, "lambda", "CreateFunction")
    assert _calls(aws, "lambda", "UpdateFunctionCode")
    assert not _calls(aws, "apigateway", "ImportRestApi")
    assert not _calls(aws, "secretsmanager", "CreateSecret")
    assert second["outputs"]["RegistryTableName"] == first["outputs"]["RegistryTableName"]
    rest = {r["name"]: r for r in first["chalice"]["resources"]}["rest_api"]["rest_api_id"]
    assert {r["name"]: r for r in second["chalice"]["resources"]}["rest_api"]["rest_api_id"] == rest
    item = aws.client("dynamodb").get_item(TableName=first["outputs"]["RegistryTableName"],
                                           Key={"pk": {"S": "keep"}, "sk": {"S": "me"}})  # fmt: skip
    assert "Item" in item
    body = aws.client("s3").get_object(Bucket=first["outputs"]["RegistryBucketName"], Key="blobs/sha256/keep")
    assert body["Body"].read() == b"bytes"


def test_operations_basics(deployments: dict[str, Any]) -> None:
    """Concurrency limits, the consumer's dead-letter queue, access logs, alarms and the dashboard."""
    aws = deployments["first_aws"]
    outputs = deployments["first"]["outputs"]
    lam = aws.client("lambda")
    api_limit = lam.get_function_concurrency(FunctionName=f"registry-{STAGE}")["ReservedConcurrentExecutions"]
    assert api_limit == 50
    job_limit = lam.get_function_concurrency(FunctionName=f"registry-{STAGE}-gc_mark")["ReservedConcurrentExecutions"]
    assert job_limit == 5
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
    assert "ManifestPulls" in dashboard and f":stateMachine:{STACK}-gc" in dashboard
    # moto's CloudFormation does not create AWS::CloudWatch::Alarm: check the request's template.
    (create,) = _calls(aws, "cloudformation", "CreateStack")
    resources = _template(aws, create["TemplateURL"])["Resources"]
    alarms = {k: v["Properties"] for k, v in resources.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    assert alarms["ApiThrottlesAlarm"]["Dimensions"] == [{"Name": "FunctionName", "Value": f"registry-{STAGE}"}]
    assert alarms["GcFailedExecutionsAlarm"]["Dimensions"][0]["Value"] == {"Ref": "GcStateMachine"}
    assert alarms["ApiServerErrorRateAlarm"]["MetricName"] == "5XXError"


def test_destroy_keeps_the_data_unless_asked(deployments: dict[str, Any], tmp_path: Path) -> None:
    """Runs last in this module (pytest keeps file order): it deletes what the others look at."""
    aws = deployments["second_aws"]
    outputs = deployments["second"]["outputs"]
    state = deployments["state_dir"]
    tool = deploy.Deployer(STAGE, aws, lambda line: None, state, deployments["work_dir"], {})
    tool.destroy(delete_data=False)
    names = {f["FunctionName"] for f in aws.client("lambda").list_functions()["Functions"]}
    assert not {n for n in names if n.startswith(f"registry-{STAGE}")}
    assert not [a for a in aws.client("apigateway").get_rest_apis()["items"] if a["name"] == "registry"]
    (delete,) = _calls(aws, "cloudformation", "DeleteStack")
    assert delete["StackName"] == STACK
    # The request the stack deletion honours: the table and bucket are retained.
    (create,) = _calls(deployments["first_aws"], "cloudformation", "CreateStack")
    resources = _template(aws, create["TemplateURL"])["Resources"]
    assert resources["RegistryTable"]["DeletionPolicy"] == "Retain"
    assert resources["BlobBucket"]["DeletionPolicy"] == "Retain"
    aws.client("secretsmanager").describe_secret(SecretId=f"{STACK}/token-signing-key")
    aws.client("dynamodb").describe_table(TableName=outputs["RegistryTableName"])
    aws.client("s3").head_object(Bucket=outputs["RegistryBucketName"], Key="blobs/sha256/keep")
