"""One-command deploy of the registry through `chalice deploy` (`make deploy STAGE=...`).

    python infra/deploy.py deploy  --stage prod [--dry-run] [--parameter Key=Value ...]
    python infra/deploy.py destroy --stage prod [--delete-data] [--dry-run]

`deploy`, idempotent (re-run it after any change):
1. the token signing key: a Secrets Manager secret `<app>-<stage>/token-signing-key` holding a new
   RSA key, created only if missing (CloudFormation cannot generate one);
2. the supporting CloudFormation stack `<app>-<stage>` from `infra/chalice_route.py` (the same
   merge template the packaged route uses): created, or updated in place (the template is uploaded
   to an artifacts bucket `<app>-deploy-<account>-<region>`: it exceeds CloudFormation's inline
   body limit);
3. `chalice deploy` of the app, driven in-process, with a stage config generated from the stack's
   outputs (each function's role, timeout, concurrency and environment) in a build directory:
   `.chalice/config.json` is never edited. Chalice's record of what it deployed
   (`.chalice/deployed/<stage>.json`) and the parameters given so far are stored in the artifacts
   bucket as `<app>-<stage>/deploy-state.json` and restored by the next run, from any clone, so it
   updates the same REST API and functions with the same settings;
4. what Chalice's config cannot express: the API stage's access logs and the event consumer's
   failure destination (the dead-letter queue), both from the stack's outputs.

It prints the registry URL, the admin password's secret and the next step. `--dry-run` calls no
AWS API: it prints every call a first deploy makes (Chalice's from its own plan). Endpoints,
credentials and region come from the standard AWS settings (AWS_ENDPOINT_URL, AWS_REGION,
AWS_PROFILE...), so the same command runs against a local emulation.

`destroy` deletes Chalice's resources and the stack; the table, the bucket and the admin password
secret are retained (DeletionPolicy) unless `--delete-data` (`DESTROY_DATA=1`) is given, which
deletes them and the token signing key too.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chalice_route import (
    APP_NAME,
    Resolver,
    chalice_name,
    chalice_overrides,
    function_overrides,
    function_settings,
    merged_template,
    stack_template,
)

REPO = Path(__file__).resolve().parents[1]
API_STAGE = json.loads((REPO / ".chalice" / "config.json").read_text()).get("api_gateway_stage", "api")
Printer = Callable[[str], None]


def _redact(params: dict[str, Any]) -> dict[str, Any]:
    """Call parameters as printed: secret values, code and templates by size only."""
    shown: dict[str, Any] = {}
    for key, value in params.items():
        if key in ("SecretString", "ZipFile", "Content", "Body", "TemplateBody", "body"):
            shown[key] = f"<{len(value)} bytes>" if isinstance(value, (str, bytes)) else "<...>"
        elif isinstance(value, dict):
            shown[key] = _redact(value)
        else:
            shown[key] = value
    return shown


class Aws:
    """One botocore session for the tool's calls and Chalice's, recording each call it makes."""

    def __init__(self, region: str | None, say: Printer) -> None:
        import boto3
        import botocore.session

        self.botocore = botocore.session.Session()
        if region:
            self.botocore.set_config_variable("region", region)
        self.boto3 = boto3.Session(botocore_session=self.botocore)
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self._say = say
        self.botocore.register("provide-client-params", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.service_name
        self.calls.append((service, model.name, json.loads(json.dumps(params, default=str))))
        self._say(f"  aws {service} {model.name} {json.dumps(_redact(params), default=str)[:300]}")

    def client(self, name: str) -> Any:
        return self.boto3.client(name)  # type: ignore[call-overload]


class Deployer:
    def __init__(self, stage: str, aws: Aws | None, say: Printer, state_dir: Path, work_dir: Path,  # noqa: PLR0917
                 parameters: dict[str, str], skip_dependencies: bool = False) -> None:  # fmt: skip
        self.stage = stage
        self.stack = f"{APP_NAME}-{stage}"
        self.aws = aws
        self.say = say
        self.state_dir = state_dir
        self.work_dir = work_dir / stage
        self.parameters = parameters
        self.skip_dependencies = skip_dependencies
        self.template = stack_template(stage)
        self.token_key_name = f"{self.stack}/token-signing-key"

    # -- dry run -------------------------------------------------------------------------------
    def dry_run(self) -> None:
        say = self.say
        say(f"Dry run of a first deploy of stage {self.stage}: no AWS API is called.")
        say("  aws sts GetCallerIdentity {}")
        say(f'  aws secretsmanager DescribeSecret {{"SecretId": "{self.token_key_name}"}}   (assumed absent)')
        say(f'  aws secretsmanager CreateSecret {{"Name": "{self.token_key_name}", "SecretString": "<RSA key PEM>"}}')
        body = json.dumps(self.template, separators=(",", ":"))
        say('  aws s3 HeadBucket {"Bucket": "<app>-deploy-<account>-<region>"}   (assumed absent)')
        say("  aws s3 CreateBucket / PutPublicAccessBlock / PutBucketEncryption  (the artifacts bucket)")
        say(
            f'  aws s3 GetObject {{"Key": "{self.state_key}"}}   (assumed absent; else Chalice\'s record '
            "and the parameters given before)"
        )
        say(f'  aws s3 PutObject {{"Key": "{self.stack}/<sha256>.json", "Body": "<{len(body)} bytes>"}}')
        say(f'  aws cloudformation DescribeStacks {{"StackName": "{self.stack}"}}   (assumed absent)')
        say(
            f'  aws cloudformation CreateStack {{"StackName": "{self.stack}", "Capabilities": ["CAPABILITY_IAM"], '
            f'"Parameters": {json.dumps(sorted({"TokenKeySecretArn", *self.parameters}))}}}'
        )
        for logical_id, resource in self.template["Resources"].items():
            condition = f"  (if {resource['Condition']})" if "Condition" in resource else ""
            say(f"      creates {logical_id} ({resource['Type']}){condition}")
        say(f'  aws cloudformation DescribeStacks {{"StackName": "{self.stack}"}}   (until CREATE_COMPLETE; outputs)')
        say("  chalice deploy, as planned by Chalice for a stage with nothing deployed (Chalice's client calls):")
        for line in self._chalice_plan():
            say(f"  aws {line}")
        say(f'  aws s3 PutObject {{"Key": "{self.state_key}", "Body": "<the parameters and Chalice\'s record>"}}')
        say(
            f'  aws apigateway UpdateStage {{"stageName": "{API_STAGE}", "patchOperations": '
            "[accessLogSettings: <ApiAccessLogGroup.Arn> and the RestAPI entry format]}"
        )
        say(
            f'  aws lambda UpdateFunctionConfiguration {{"FunctionName": "{self.stack}-event_consumer", '
            '"DeadLetterConfig": {"TargetArn": "<EventConsumerDeadLetterQueue.Arn>"}}'
        )

    def dry_run_destroy(self, delete_data: bool) -> None:
        say = self.say
        say(f"Dry run of destroying stage {self.stage}: no AWS API is called.")
        say(f'  aws cloudformation DescribeStacks {{"StackName": "{self.stack}"}}   (outputs)')
        say("  aws sts GetCallerIdentity {}")
        say(f'  aws s3 GetObject {{"Bucket": "<app>-deploy-<account>-<region>", "Key": "{self.state_key}"}}')
        say(f"  chalice delete of what the stored (or local .chalice/deployed/{self.stage}.json) record names:")
        say("    DeleteRestApi, DeleteFunction for each function, RemoveTargets and DeleteRule of the event rule")
        say(f'  aws s3 DeleteObject {{"Key": "{self.state_key}"}}')
        say(f'  aws cloudformation DeleteStack {{"StackName": "{self.stack}"}}   (table, bucket, secret retained)')
        if delete_data:
            say('  aws dynamodb DeleteTable {"TableName": "<RegistryTableName>"}')
            say('  aws s3 DeleteObjects ... then DeleteBucket {"Bucket": "<RegistryBucketName>"}')
            for secret in ("<AdminPasswordSecretArn>", self.token_key_name):
                say(f'  aws secretsmanager DeleteSecret {{"SecretId": "{secret}", "ForceDeleteWithoutRecovery": true}}')

    def _chalice_plan(self) -> list[str]:
        from chalice.awsclient import TypedAWSClient
        from chalice.deploy import models
        from chalice.deploy.planner import PlanStage, RemoteState
        from chalice.utils import OSUtils

        class Absent(TypedAWSClient):  # type: ignore[misc]
            """Answers every existence check of Chalice's planner with "absent", calling nothing."""

            def __init__(self) -> None:
                pass

            def __getattribute__(self, name: str) -> Any:
                if name.endswith("_exists"):
                    return lambda *a, **k: False
                return object.__getattribute__(self, name)

        outputs = {k: f"<{k}>" for k in self.template.get("Outputs", {})}
        config, _factory, _application, resources, _deps = self._chalice_build(outputs, placeholder=True)
        plan = PlanStage(osutils=OSUtils(), remote_state=RemoteState(Absent(), config.deployed_resources(self.stage)))
        lines = []
        for instruction in plan.execute(resources).instructions:
            if isinstance(instruction, models.APICall):
                params = {k: ("<zip>" if k in ("zip_contents",) else v) for k, v in instruction.params.items()}
                shown = json.dumps(_redact(params), default=lambda v: f"<{type(v).__name__}>")
                lines.append(f"{instruction.method_name} {shown[:300]}")
        return lines

    # -- deploy --------------------------------------------------------------------------------
    def deploy(self) -> dict[str, Any]:
        assert self.aws is not None
        sts = self.aws.client("sts")
        account = sts.get_caller_identity()["Account"]
        region = self.aws.botocore.get_config_variable("region")
        token_key_arn = self._token_key()
        bucket = self._artifacts_bucket(account, region)
        self._restore_state(bucket)
        template_url = self._upload_template(bucket, region)
        outputs = self._stack(template_url, token_key_arn)
        self.say(f"Stack {self.stack}: {len(outputs)} outputs")
        values = self._chalice_deploy(outputs, token_key_arn, account, region)
        self._save_state(bucket)
        url = self._after_chalice(values, self._resolver(outputs, token_key_arn, account, region))
        domain = self.parameters.get("CustomDomainName")
        secret = outputs.get("AdminPasswordSecretArn", "<see the AdminPasswordSecretArn output>")
        self.say("")
        self.say(f"Registry URL: {'https://' + domain if domain else url}")
        self.say(f"Admin password secret: {secret}")
        self.say(f"  aws secretsmanager get-secret-value --secret-id {secret} --query SecretString --output text")
        if domain:
            self.say(f"Next: point DNS for {domain} at the API's regional domain name "
                     f"(aws apigateway get-domain-name --domain-name {domain}), "
                     f"then docker login {domain}")  # fmt: skip
        else:
            self.say("Next: OCI clients need /v2/ at the host root: re-run with --parameter CustomDomainName=<host> "
                     "--parameter CustomDomainCertificateArn=<acm arn>, then point DNS at the domain.")  # fmt: skip
        return {"outputs": outputs, "chalice": values, "url": url}

    def _token_key(self) -> str:
        assert self.aws is not None
        secrets = self.aws.client("secretsmanager")
        try:
            arn: str = secrets.describe_secret(SecretId=self.token_key_name)["ARN"]
            return arn
        except secrets.exceptions.ResourceNotFoundException:
            pass
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()  # fmt: skip
        created: str = secrets.create_secret(
            Name=self.token_key_name,
            Description="RSA private key (PEM) that signs the registry's RS256 tokens (REGISTRY_TOKEN_KEY_PARAMETER).",
            SecretString=pem,
        )["ARN"]
        return created

    def _artifacts_bucket(self, account: str, region: str) -> str:
        """The bucket of the stack's templates and of the deploy state (created once: private, encrypted)."""
        assert self.aws is not None
        s3 = self.aws.client("s3")
        bucket = f"{APP_NAME}-deploy-{account}-{region}"
        try:
            s3.head_bucket(Bucket=bucket)
        except s3.exceptions.ClientError:
            create: dict[str, Any] = {"Bucket": bucket}
            if region != "us-east-1":
                create["CreateBucketConfiguration"] = {"LocationConstraint": region}
            s3.create_bucket(**create)
            s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
                "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True})  # fmt: skip
            s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})  # fmt: skip
        return bucket

    @property
    def state_key(self) -> str:
        return f"{self.stack}/deploy-state.json"

    def _restore_state(self, bucket: str) -> None:
        """What the previous deploy left in the artifacts bucket, so that a deploy from another clone
        (or after `.chalice/deployed/` was lost) updates the same REST API and functions, and keeps
        the parameters given before: Chalice's record replaces the local copy, the parameters given
        now override the stored ones."""
        assert self.aws is not None
        s3 = self.aws.client("s3")
        try:
            stored = json.loads(s3.get_object(Bucket=bucket, Key=self.state_key)["Body"].read())
        except (s3.exceptions.NoSuchKey, s3.exceptions.NoSuchBucket):
            return
        self.parameters = {**stored.get("parameters", {}), **self.parameters}
        if stored.get("chalice"):
            self.state_dir.mkdir(parents=True, exist_ok=True)
            (self.state_dir / f"{self.stage}.json").write_text(json.dumps(stored["chalice"], indent=2) + "\n")

    def _save_state(self, bucket: str) -> None:
        assert self.aws is not None
        record = json.loads((self.state_dir / f"{self.stage}.json").read_text())
        body = json.dumps({"parameters": self.parameters, "chalice": record}, indent=2).encode()
        self.aws.client("s3").put_object(Bucket=bucket, Key=self.state_key, Body=body,
                                         ContentType="application/json")  # fmt: skip

    def _upload_template(self, bucket: str, region: str) -> str:
        assert self.aws is not None
        s3 = self.aws.client("s3")
        body = json.dumps(self.template, separators=(",", ":")).encode()
        key = f"{self.stack}/{hashlib.sha256(body).hexdigest()}.json"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        # CloudFormation reads the template by its S3 URL (an emulation parses the same form).
        return f"https://{bucket}.s3.{region}.amazonaws.com/{key}"

    def _stack(self, template_url: str, token_key_arn: str) -> dict[str, str]:
        assert self.aws is not None
        cfn = self.aws.client("cloudformation")
        given = {**self.parameters, "TokenKeySecretArn": token_key_arn}
        try:
            existing = cfn.describe_stacks(StackName=self.stack)["Stacks"][0]
        except cfn.exceptions.ClientError:
            existing = None
        declared = self.template.get("Parameters", {})
        if existing is None or existing["StackStatus"] == "REVIEW_IN_PROGRESS":
            params = [{"ParameterKey": k, "ParameterValue": v} for k, v in given.items() if k in declared]
            cfn.create_stack(StackName=self.stack, TemplateURL=template_url, Parameters=params,
                             Capabilities=["CAPABILITY_IAM"],
                             Tags=[{"Key": "registry-stage", "Value": self.stage}])  # fmt: skip
            cfn.get_waiter("stack_create_complete").wait(StackName=self.stack, WaiterConfig={"Delay": 5})
        else:
            # The previous values, by value (no parameter is NoEcho), then the ones given now.
            previous = {p["ParameterKey"]: p["ParameterValue"] for p in existing.get("Parameters", [])}
            merged = {k: v for k, v in {**previous, **given}.items() if k in declared}
            params = [{"ParameterKey": k, "ParameterValue": v} for k, v in merged.items()]
            body = cfn.get_template(StackName=self.stack)["TemplateBody"]
            current = json.loads(body) if isinstance(body, str) else body
            if current == self.template and merged == {k: v for k, v in previous.items() if k in declared}:
                self.say(f"Stack {self.stack}: template and parameters unchanged, not updated")
                stack = cfn.describe_stacks(StackName=self.stack)["Stacks"][0]
                return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
            try:
                cfn.update_stack(StackName=self.stack, TemplateURL=template_url, Parameters=params,
                                 Capabilities=["CAPABILITY_IAM"])  # fmt: skip
                cfn.get_waiter("stack_update_complete").wait(StackName=self.stack, WaiterConfig={"Delay": 5})
            except cfn.exceptions.ClientError as error:
                if "No updates are to be performed" not in str(error):
                    raise
                self.say(f"Stack {self.stack}: no changes")
        stack = cfn.describe_stacks(StackName=self.stack)["Stacks"][0]
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    def _resolver(self, outputs: dict[str, str], token_key_arn: str, account: str, region: str) -> Resolver:
        partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
        pseudo = {"AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": partition,
                  "AWS::StackName": self.stack}  # fmt: skip
        return Resolver(merged_template(), outputs, {**self.parameters, "TokenKeySecretArn": token_key_arn}, pseudo)

    def stage_config(self, resolver: Resolver) -> dict[str, Any]:
        """The project's config with this stage generated: repository defaults, then the stack's values."""
        config: dict[str, Any] = json.loads((REPO / ".chalice" / "config.json").read_text())
        base = config["stages"].get(self.stage) or config["stages"].get("prod") or {}
        functions = function_settings(resolver, self.stage)
        api = functions["api_handler"]
        stage: dict[str, Any] = {
            "environment_variables": dict(base.get("environment_variables", {})),
            "manage_iam_role": False,
            "iam_role_arn": api["iam_role_arn"],
            "lambda_functions": functions,
        }
        domain = self.parameters.get("CustomDomainName")
        if domain:
            stage["api_gateway_custom_domain"] = {
                "domain_name": domain,
                "certificate_arn": self.parameters.get("CustomDomainCertificateArn", "")}  # fmt: skip
        config["stages"] = {self.stage: stage}
        return config

    def _project(self, config: dict[str, Any]) -> Path:
        """A copy of the app with the generated config (the repository's files are not touched)."""
        project = self.work_dir
        for name in ("app.py", "requirements.txt"):
            (project).mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, project / name)
        if self.skip_dependencies:
            (project / "requirements.txt").write_text("")
        shutil.rmtree(project / "chalicelib", ignore_errors=True)
        shutil.copytree(REPO / "chalicelib", project / "chalicelib",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
        (project / ".chalice" / "deployed").mkdir(parents=True, exist_ok=True)
        (project / ".chalice" / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        recorded = self.state_dir / f"{self.stage}.json"
        target = project / ".chalice" / "deployed" / f"{self.stage}.json"
        if recorded.exists():
            shutil.copy2(recorded, target)
        else:
            target.unlink(missing_ok=True)
        return project

    def _chalice_build(self, outputs: dict[str, str], placeholder: bool = False, token_key_arn: str = "",
                       account: str = "000000000000", region: str = "us-east-1") -> tuple[Any, ...]:  # fmt: skip
        from chalice.cli.factory import CLIFactory
        from chalice.deploy.deployer import ApplicationGraphBuilder, DependencyBuilder, create_build_stage
        from chalice.deploy.swagger import TemplatedSwaggerGenerator
        from chalice.utils import UI, OSUtils

        if placeholder:
            resolver = _Placeholders(merged_template(), self.parameters)
        else:
            resolver = self._resolver(outputs, token_key_arn, account, region)
        project = self._project(self.stage_config(resolver))
        factory = CLIFactory(str(project), environ=dict(os.environ))
        config = factory.create_config_obj(chalice_stage_name=self.stage)
        application = ApplicationGraphBuilder().build(config, self.stage)
        deps = DependencyBuilder()
        resources = deps.build_dependencies(application)
        create_build_stage(OSUtils(), UI(), TemplatedSwaggerGenerator(), config).execute(config, resources)
        resources = deps.build_dependencies(application)
        return config, factory, application, resources, deps

    def _chalice_deploy(self, outputs: dict[str, str], token_key_arn: str, account: str, region: str) -> dict[str, Any]:
        assert self.aws is not None
        from chalice.cli.factory import CLIFactory
        from chalice.deploy.deployer import create_default_deployer
        from chalice.utils import UI

        config = self.stage_config(self._resolver(outputs, token_key_arn, account, region))
        project = self._project(config)
        factory = CLIFactory(str(project), environ=dict(os.environ))
        chalice_config = factory.create_config_obj(chalice_stage_name=self.stage)
        values: dict[str, Any] = create_default_deployer(self.aws.botocore, chalice_config, UI()).deploy(
            chalice_config, chalice_stage_name=self.stage)  # fmt: skip
        self.state_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(project / ".chalice" / "deployed" / f"{self.stage}.json", self.state_dir / f"{self.stage}.json")
        return values

    def _after_chalice(self, values: dict[str, Any], resolver: Resolver) -> str:
        """What Chalice's config cannot say, from the same merge entries: the REST API's access log
        setting and each function's dead-letter queue."""
        assert self.aws is not None
        by_name = {r["name"]: r for r in values["resources"]}
        api = by_name.get("rest_api", {})
        url: str = api.get("rest_api_url", "")
        overrides = chalice_overrides(merged_template())
        access = overrides.get("RestAPI", {}).get("Properties", {}).get("AccessLogSetting")
        if api and access:
            setting = resolver.value(access)
            self.aws.client("apigateway").update_stage(
                restApiId=api["rest_api_id"], stageName=API_STAGE,
                patchOperations=[
                    {"op": "replace", "path": "/accessLogSettings/destinationArn", "value": setting["DestinationArn"]},
                    {"op": "replace", "path": "/accessLogSettings/format", "value": setting["Format"]},
                ],
            )  # fmt: skip
        for logical_id, entry in function_overrides(merged_template()).items():
            queue = entry["Properties"].get("DeadLetterQueue")
            deployed = by_name.get(chalice_name(logical_id))
            if queue and deployed:
                self.aws.client("lambda").update_function_configuration(
                    FunctionName=deployed["lambda_arn"],
                    DeadLetterConfig={"TargetArn": resolver.value(queue["TargetArn"])})  # fmt: skip
        return url

    # -- destroy -------------------------------------------------------------------------------
    def destroy(self, delete_data: bool) -> None:
        assert self.aws is not None
        from chalice.awsclient import TypedAWSClient
        from chalice.cli.factory import CLIFactory
        from chalice.deploy.deployer import create_deletion_deployer
        from chalice.utils import UI

        cfn = self.aws.client("cloudformation")
        try:
            stack = cfn.describe_stacks(StackName=self.stack)["Stacks"][0]
            outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        except cfn.exceptions.ClientError:
            outputs = {}
        account = self.aws.client("sts").get_caller_identity()["Account"]
        bucket = f"{APP_NAME}-deploy-{account}-{self.aws.botocore.get_config_variable('region')}"
        self._restore_state(bucket)
        recorded = self.state_dir / f"{self.stage}.json"
        if recorded.exists():
            # Chalice deletes what its record names; its config only has to load the app.
            config = json.loads((REPO / ".chalice" / "config.json").read_text())
            config["stages"] = {self.stage: {"manage_iam_role": False, "iam_role_arn": "not-used-for-deletion"}}
            project = self._project(config)
            factory = CLIFactory(str(project), environ=dict(os.environ))
            chalice_config = factory.create_config_obj(chalice_stage_name=self.stage)
            deployer = create_deletion_deployer(TypedAWSClient(self.aws.botocore), UI())
            deployer.deploy(chalice_config, chalice_stage_name=self.stage)
            recorded.unlink()
        with contextlib.suppress(self.aws.client("s3").exceptions.NoSuchBucket):
            self.aws.client("s3").delete_object(Bucket=bucket, Key=self.state_key)
        if outputs:
            cfn.delete_stack(StackName=self.stack)
            cfn.get_waiter("stack_delete_complete").wait(StackName=self.stack, WaiterConfig={"Delay": 5})
        if not delete_data:
            self.say(f"Kept (retained by the stack): table {outputs.get('RegistryTableName')}, "
                     f"bucket {outputs.get('RegistryBucketName')}, secret {outputs.get('AdminPasswordSecretArn')}, "
                     f"token key {self.token_key_name}. DESTROY_DATA=1 deletes them.")  # fmt: skip
            return
        if outputs.get("RegistryTableName"):
            self.aws.client("dynamodb").delete_table(TableName=outputs["RegistryTableName"])
        if outputs.get("RegistryBucketName"):
            bucket = self.aws.boto3.resource("s3").Bucket(outputs["RegistryBucketName"])
            bucket.objects.all().delete()
            bucket.delete()
        secrets = self.aws.client("secretsmanager")
        for secret in (outputs.get("AdminPasswordSecretArn"), self.token_key_name):
            if secret:
                with contextlib.suppress(secrets.exceptions.ResourceNotFoundException):
                    secrets.delete_secret(SecretId=secret, ForceDeleteWithoutRecovery=True)


class _Placeholders(Resolver):
    """Resolves every stack value to `<Output>`: the dry run's stage config, before any stack exists."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, str]) -> None:
        pseudo = {k: f"<{k}>" for k in ("AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::StackName")}
        super().__init__(template, {}, {"TokenKeySecretArn": "<TokenKeySecretArn>", **parameters}, pseudo)

    def _lookup(self, name: str, attribute: str | None) -> str:
        try:
            return super()._lookup(name, attribute)
        except KeyError:
            return f"<{name}{'.' + attribute if attribute else ''}>"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("deploy", "destroy"))
    parser.add_argument("--stage", default=os.environ.get("STAGE", "dev"))
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--delete-data", action="store_true", default=os.environ.get("DESTROY_DATA") == "1")
    parser.add_argument("--region")
    parser.add_argument("--state-dir", type=Path, default=REPO / ".chalice" / "deployed")
    parser.add_argument("--work-dir", type=Path, default=REPO / "build" / "deploy")
    parser.add_argument("--skip-dependencies", action="store_true",
                        help="bundle the app without requirements.txt "
                             "(rehearsals without PyPI; not runnable on Lambda)")  # fmt: skip
    args = parser.parse_args(argv)
    parameters = dict(p.split("=", 1) for p in args.parameter)
    say: Printer = print
    if args.dry_run:
        tool = Deployer(args.stage, None, say, args.state_dir, args.work_dir, parameters, skip_dependencies=True)
        if args.command == "deploy":
            tool.dry_run()
        else:
            tool.dry_run_destroy(args.delete_data)
        return 0
    aws = Aws(args.region, say)
    deployer = Deployer(args.stage, aws, say, args.state_dir, args.work_dir, parameters, args.skip_dependencies)
    if args.command == "deploy":
        deployer.deploy()
    else:
        deployer.destroy(args.delete_data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
