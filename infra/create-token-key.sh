#!/usr/bin/env bash
# Create the Secrets Manager secret holding the registry's token signing key (run once per stack).
#
#   bash infra/create-token-key.sh [SECRET_NAME]      (default SECRET_NAME registry/token-signing-key)
#
# Generates a 2048-bit RSA private key (PKCS#8 PEM) with openssl in a private temporary directory,
# stores it as a new secret with `aws secretsmanager create-secret` (encrypted with the default
# aws/secretsmanager key: the API role has no kms:Decrypt), deletes the local copy and prints the
# secret's full ARN: pass it to the stack as the TokenKeySecretArn parameter.
#
# Uses the AWS CLI's usual credentials, region and profile (AWS_REGION / AWS_DEFAULT_REGION /
# AWS_PROFILE); create the secret in the stack's region. Fails if the secret name exists already.
# Not run by the tests.
set -euo pipefail

name="${1:-registry/token-signing-key}"

umask 077
work_dir="$(mktemp -d)"
trap 'rm -rf -- "$work_dir"' EXIT

# openssl 3 prints progress dots on stderr: show its output only if it fails.
if ! openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work_dir/key.pem" 2>"$work_dir/openssl.log"; then
    cat -- "$work_dir/openssl.log" >&2
    exit 1
fi

# file:// keeps the key material off the command line (and out of `ps`).
aws secretsmanager create-secret \
    --name "$name" \
    --description "RSA private key (PEM) that signs the registry's RS256 tokens (REGISTRY_TOKEN_KEY_PARAMETER)." \
    --secret-string "file://$work_dir/key.pem" \
    --query ARN \
    --output text
