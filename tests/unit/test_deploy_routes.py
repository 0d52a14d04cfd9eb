"""Both deploy routes come from one merge template: the packaged stack (`chalice package
--merge-template`) and `make deploy` (`infra/chalice_route.py` + `chalice deploy`) create the same
resources with the same wiring."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "infra"))

from chalice_route import deployed_name, function_arn, function_overrides, merged_template, stack_template

STAGE = "prod"


def test_the_deploy_stack_has_every_typed_resource_of_the_packaged_one() -> None:
    packaged = merged_template()["Resources"]
    deployed = stack_template(STAGE)["Resources"]
    package_only = {k for k, v in packaged.items() if v.get("Metadata", {}).get("RegistryPackageOnly")}
    shared = (
        {k for k, v in packaged.items() if "Type" in v} - package_only - {"RegistryApiLogGroup", "RegistryJobsLogGroup"}
    )
    assert shared <= set(deployed), shared - set(deployed)
    for name in shared:
        assert deployed[name]["Type"] == packaged[name]["Type"], name
    # Each function's log group is the one Lambda writes to for the name chalice deploy gives it.
    for logical_id in function_overrides(merged_template()):
        group = deployed[f"{logical_id}LogGroup"]["Properties"]["LogGroupName"]
        assert group == f"/aws/lambda/{deployed_name(logical_id, STAGE)}"


def test_state_machines_call_the_same_functions_on_both_routes() -> None:
    packaged = merged_template()["Resources"]
    deployed = stack_template(STAGE)["Resources"]
    machines = [k for k, v in packaged.items() if v.get("Type") == "AWS::StepFunctions::StateMachine"]
    assert machines
    for machine in machines:
        substitutions = packaged[machine]["Properties"]["DefinitionSubstitutions"]
        text, variables = deployed[machine]["Properties"]["DefinitionString"]["Fn::Sub"]
        assert set(variables) == set(substitutions)
        for key, value in substitutions.items():
            (function, attribute) = value["Fn::GetAtt"]
            assert attribute == "Arn"
            assert variables[key] == function_arn(function, STAGE)
            assert "${" + key + "}" in text
        # The invoke grant names the same functions.
        role = packaged[f"{machine.removesuffix('StateMachine')}StateMachineRole"]
        deployed_role = deployed[f"{machine.removesuffix('StateMachine')}StateMachineRole"]
        (grant,) = _invoke(role)
        (deployed_grant,) = _invoke(deployed_role)
        assert deployed_grant["Resource"] == [function_arn(r["Fn::GetAtt"][0], STAGE) for r in grant["Resource"]]


def test_schedules_target_the_same_function_on_both_routes() -> None:
    packaged = merged_template()["Resources"]
    deployed = stack_template(STAGE)["Resources"]
    for name, resource in packaged.items():
        if resource.get("Type") == "AWS::Scheduler::Schedule":
            (function, _) = resource["Properties"]["Target"]["Arn"]["Fn::GetAtt"]
            assert deployed[name]["Properties"]["Target"]["Arn"] == function_arn(function, STAGE)


def test_functions_are_the_apps() -> None:
    import app

    names = {f.name for f in app.app.pure_lambda_functions} | {s.name for s in app.app.event_sources}
    overrides = function_overrides(merged_template())
    assert {deployed_name(k, STAGE).removeprefix(f"registry-{STAGE}-") for k in overrides} - {
        f"registry-{STAGE}"
    } == names


def _invoke(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]
            if s["Action"] == "lambda:InvokeFunction"]  # fmt: skip


def test_the_readme_shows_what_the_dry_run_prints(tmp_path: Path) -> None:
    """Each line of the README's dry-run excerpt is printed by `make deploy DRY_RUN=1` (a line
    abridged with `...` as a prefix of one), and its resource counts are the template's."""
    import deploy

    readme = (REPO_ROOT / "README.md").read_text()
    excerpt = readme.split("$ make deploy STAGE=prod DRY_RUN=1\n", 1)[1].split("```", 1)[0].splitlines()
    printed: list[str] = []
    deploy.Deployer("prod", None, printed.append, tmp_path / "state", tmp_path / "work", {},
                    skip_dependencies=True).dry_run()  # fmt: skip

    def bytes_(line: str) -> str:  # the template's size changes with every description
        return re.sub(r"<\d+ bytes>", "<N bytes>", line)

    output = [bytes_(line) for line in printed]
    resources = stack_template("prod")["Resources"]
    relay = sum(1 for r in resources.values() if r.get("Condition") == "HasUploadRelay")
    for line in map(bytes_, excerpt):
        counts = re.fullmatch(r"\s+\.\.\. \((\d+) resources, (\d+) of them only with the upload relay\)", line)
        if counts:
            assert (int(counts[1]), int(counts[2])) == (len(resources), relay)
        elif line.strip() == "...":
            continue
        elif "..." in line:
            prefix = line.split("...", 1)[0]
            assert any(out.startswith(prefix) for out in output), line
        else:
            assert line in output, line


def test_the_concurrency_prerequisite_counts_the_functions() -> None:
    """docs/deployment.md tells how much of the account's concurrency quota the defaults reserve."""
    text = " ".join((REPO_ROOT / "docs" / "deployment.md").read_text().split())
    found = re.search(r"below about (\d+), reserve less: the API function reserves (\d+) and each of the (\d+) "
                      r"background functions (\d+) by default \(Lambda keeps 100 unreserved\)", text)  # fmt: skip
    assert found, "the prerequisite's sentence changed: update this test"
    params = merged_template()["Parameters"]
    background = len(function_overrides(merged_template())) - 1
    api, jobs = int(params["ApiReservedConcurrency"]["Default"]), int(params["JobsReservedConcurrency"]["Default"])
    assert (int(found[2]), int(found[3]), int(found[4])) == (api, background, jobs)
    assert abs(int(found[1]) - (api + background * jobs + 100)) <= 10
