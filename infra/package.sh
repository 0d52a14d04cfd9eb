#!/usr/bin/env bash
# Package the registry into one deployable SAM/CloudFormation template and lint it.
#
#   bash infra/package.sh [OUT_DIR [STAGE]]      (default OUT_DIR build/package, STAGE dev)
#
# Writes OUT_DIR/sam.json (Chalice's template merged with infra/resources.json), the code zips
# it points at (deployment.zip, layer-deployment.zip) and OUT_DIR/infra-only.json (the table,
# bucket, admin password secret, role and log group alone, for the `chalice deploy` route). The
# deploy needs the TokenKeySecretArn parameter (infra/create-token-key.sh). Fails if cfn-lint reports an
# error or a warning on either template, or on sam.json with the upload relay (parameter
# UploadRelay) enabled or disabled. See infra/README.md for deploying the result.
#
# Environment: AWS_DEFAULT_REGION (default us-east-1; chalice needs one, nothing is called),
# CHALICE, CFN_LINT, PYTHON (default: the repo's .venv), CHALICE_STAGE (default dev),
# CFN_LINT_FAIL_LEVEL (error|warning|informational; default warning).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_arg="${1:-build/package}"
stage="${2:-${CHALICE_STAGE:-dev}}"

# Resolve OUT_DIR against the caller's directory before moving to the repo root.
mkdir -p "$out_arg"
out_dir="$(cd "$out_arg" && pwd)"

cd "$repo_root"
chalice="${CHALICE:-.venv/bin/chalice}"
cfn_lint="${CFN_LINT:-.venv/bin/cfn-lint}"
python="${PYTHON:-.venv/bin/python}"
fail_level="${CFN_LINT_FAIL_LEVEL:-warning}"

export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

# A stale template must never survive a failed run.
rm -f "$out_dir/sam.json" "$out_dir/infra-only.json" "$out_dir/merge-template.json"

# The merge template: infra/resources.json plus the background functions of the entry point table
# (chalicelib/jobs/entrypoints.py), their state machines' substitutions and invoke grants.
"$python" infra/entrypoints.py infra/resources.json "$out_dir/merge-template.json"

"$chalice" package \
    --stage "$stage" \
    --pkg-format cloudformation \
    --template-format json \
    --merge-template "$out_dir/merge-template.json" \
    "$out_dir"

# The state machines' DefinitionS3Location paths are relative to the template (aws cloudformation package uploads them).
mkdir -p "$out_dir/statemachines" && cp infra/statemachines/*.asl.json "$out_dir/statemachines/"

# The supporting stack of the `chalice deploy` route (make deploy), from the same merge template.
"$python" infra/chalice_route.py "$stage" "$out_dir/infra-only.json"

# The opt-in upload relay (parameter UploadRelay): besides the template as deployed, lint each shape
# of the stack the parameter gives, as CloudFormation would create it (infra/fix_condition.py).
shapes="$(mktemp -d)"
trap 'rm -rf "$shapes"' EXIT
for relay in true false; do
    "$python" infra/fix_condition.py "$out_dir/sam.json" HasUploadRelay "$relay" "$shapes/sam-upload-relay-$relay.json"
done

echo "cfn-lint $("$cfn_lint" --version 2>&1 | awk '{print $NF}'): $out_dir/sam.json $out_dir/infra-only.json" \
    "and sam.json with UploadRelay enabled and disabled"
"$cfn_lint" --non-zero-exit-code "$fail_level" -- "$out_dir/sam.json" "$out_dir/infra-only.json" \
    "$shapes/sam-upload-relay-true.json" "$shapes/sam-upload-relay-false.json"
echo "OK: $out_dir/sam.json (stage $stage)"
