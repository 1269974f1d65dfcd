#!/usr/bin/env bash
# Let CI pipelines read Pure1 credentials from Vault with their own identity
# token: no Vault token stored in the CI system.
#
#   bootstrap/ci/setup-jwt-auth.sh github OWNER/REPO [BRANCH]
#   bootstrap/ci/setup-jwt-auth.sh gitlab GROUP/PROJECT [BRANCH]
#
# Configures Vault's built-in JWT auth method for the CI system's OIDC tokens
# (GitHub Actions: https://token.actions.githubusercontent.com; GitLab CI:
# id_tokens from https://gitlab.com or $GITLAB_URL), and creates
#
#   - a policy pure1-ci-<pure1 role> that can read pure1/creds/<role> (and
#     pure1/static-creds/<name> when PURE1_STATIC_ROLE is set) and nothing
#     else;
#   - a role that gives that policy only to tokens of that repository (or
#     project), on that branch (default main), with the expected audience.
#
# GitHub: bound_claims repository=OWNER/REPO, ref=refs/heads/BRANCH,
# ref_type=branch; user_claim sub ("repo:OWNER/REPO:ref:refs/heads/BRANCH").
# GitLab: bound_claims project_path=GROUP/PROJECT, ref=BRANCH, ref_type=branch,
# ref_protected=true (unset GITLAB_REQUIRE_PROTECTED=0 to allow unprotected
# branches); user_claim sub ("project_path:GROUP/PROJECT:ref_type:branch:ref:BRANCH").
# Both keep who ran it (actor / user_login), the workflow or pipeline and its
# run in the Vault token's metadata, so the audit log shows them.
#
# Each CI system gets its own auth mount, because one JWT mount trusts one
# issuer: auth/jwt-github and auth/jwt-gitlab by default. Running the script
# again updates the config, policy and role in place.
#
# Environment:
#   VAULT_ADDR, VAULT_TOKEN   a Vault token that may write sys/auth, sys/policy
#                             and auth/<mount> (an admin's)
#   VAULT_BIN                 vault binary (default: vault on PATH)
#   PURE1_MOUNT               the Pure1 engine's mount (default pure1)
#   PURE1_ROLE                the creds role the pipeline reads (default readonly)
#   PURE1_STATIC_ROLE         a static role it may read too (static-creds/<name>)
#   JWT_AUTH_PATH             auth mount (default jwt-github / jwt-gitlab)
#   JWT_AUDIENCE              the aud the tokens carry. GitHub default
#                             https://github.com/OWNER (what hashicorp/vault-action
#                             asks for without jwtGithubAudience); GitLab default
#                             $VAULT_ADDR (set the same in the job's id_tokens: aud)
#   CI_ROLE_NAME              the auth role's name (default
#                             pure1-<owner>-<repo>-<branch>, / and . as -)
#   GITHUB_OIDC_ISSUER        default https://token.actions.githubusercontent.com
#                             (GitHub Enterprise Server: https://HOST/_services/token)
#   GITLAB_URL                default https://gitlab.com (self-managed: yours)
#   JWT_VALIDATION_PUBKEYS    a PEM file with the public key to verify tokens
#                             with, instead of fetching the issuer's keys (OIDC
#                             discovery). For air-gapped Vaults and for tests.
#   VAULT_TOKEN_TTL           the pipeline's Vault token TTL (default 10m; max 1h)
set -euo pipefail

die() { printf 'setup-jwt-auth.sh: %s\n' "$*" >&2; exit 1; }
usage() {
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[[ $# -ge 2 && $# -le 3 ]] || usage
PROVIDER="$1" REPO="$2" BRANCH="${3:-main}"
VAULT="${VAULT_BIN:-vault}"
MOUNT="${PURE1_MOUNT:-pure1}"
PURE1_ROLE="${PURE1_ROLE:-readonly}"
STATIC_ROLE="${PURE1_STATIC_ROLE:-}"
TTL="${VAULT_TOKEN_TTL:-10m}"

command -v "$VAULT" >/dev/null 2>&1 || die "'$VAULT' not found: install the vault CLI or set VAULT_BIN"
[[ -n "${VAULT_ADDR:-}" ]] || die "VAULT_ADDR is not set: export VAULT_ADDR=https://vault.example.com:8200"
[[ "$REPO" =~ ^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$ ]] ||
  die "repository '$REPO' is not OWNER/REPO (GitHub) or GROUP[/SUBGROUP]/PROJECT (GitLab)"
[[ "$BRANCH" =~ ^[A-Za-z0-9_./-]+$ && "$BRANCH" != refs/* ]] ||
  die "branch '$BRANCH' is not a plain branch name such as main (without refs/heads/)"
[[ "$PURE1_ROLE" =~ ^[A-Za-z0-9_.-]+$ ]] || die "PURE1_ROLE '$PURE1_ROLE' is not a role name"
[[ -z "$STATIC_ROLE" || "$STATIC_ROLE" =~ ^[A-Za-z0-9_.-]+$ ]] || die "PURE1_STATIC_ROLE '$STATIC_ROLE' is not a role name"

case "$PROVIDER" in
github)
  [[ "$REPO" =~ ^[^/]+/[^/]+$ ]] || die "GitHub repository '$REPO' must be OWNER/REPO"
  ISSUER="${GITHUB_OIDC_ISSUER:-https://token.actions.githubusercontent.com}"
  AUTH_PATH="${JWT_AUTH_PATH:-jwt-github}"
  AUDIENCE="${JWT_AUDIENCE:-https://github.com/${REPO%%/*}}"
  BOUND_CLAIMS=$(printf '{"repository": "%s", "ref": "refs/heads/%s", "ref_type": "branch"}' "$REPO" "$BRANCH")
  CLAIM_MAPPINGS='{"actor": "actor", "repository": "repository", "ref": "ref", "workflow": "workflow", "run_id": "run_id", "sha": "sha"}'
  ;;
gitlab)
  ISSUER="${GITLAB_URL:-https://gitlab.com}"
  ISSUER="${ISSUER%/}"
  AUTH_PATH="${JWT_AUTH_PATH:-jwt-gitlab}"
  AUDIENCE="${JWT_AUDIENCE:-$VAULT_ADDR}"
  PROTECTED=""
  [[ "${GITLAB_REQUIRE_PROTECTED:-1}" == 0 ]] || PROTECTED=', "ref_protected": "true"'
  BOUND_CLAIMS=$(printf '{"project_path": "%s", "ref": "%s", "ref_type": "branch"%s}' "$REPO" "$BRANCH" "$PROTECTED")
  CLAIM_MAPPINGS='{"user_login": "user_login", "project_path": "project_path", "ref": "ref", "pipeline_id": "pipeline_id", "job_id": "job_id", "pipeline_source": "pipeline_source"}'
  ;;
*) usage ;;
esac
[[ "$AUTH_PATH" =~ ^[A-Za-z0-9_-]+$ ]] || die "JWT_AUTH_PATH '$AUTH_PATH' is not a mount name"
[[ "$AUDIENCE" != *'"'* ]] || die "JWT_AUDIENCE must not contain a double quote"

ROLE_NAME="${CI_ROLE_NAME:-pure1-$(tr '/.' '--' <<<"$REPO")-$(tr '/.' '--' <<<"$BRANCH")}"
ROLE_NAME="$(tr 'A-Z' 'a-z' <<<"$ROLE_NAME")"
POLICY="pure1-ci-$PURE1_ROLE${STATIC_ROLE:+-$STATIC_ROLE}"

# ---- the auth method ------------------------------------------------------------

# Captured first: grep -q ending the pipe early could fail it under pipefail.
auths="$("$VAULT" auth list -format=json)"
if ! grep -q "\"$AUTH_PATH/\"" <<<"$auths"; then
  "$VAULT" auth enable -path="$AUTH_PATH" -description="$PROVIDER CI identity tokens (bootstrap/ci)" jwt >/dev/null
fi
if [[ -n "${JWT_VALIDATION_PUBKEYS:-}" ]]; then
  [[ -r "$JWT_VALIDATION_PUBKEYS" ]] || die "JWT_VALIDATION_PUBKEYS=$JWT_VALIDATION_PUBKEYS is not a readable PEM file"
  grep -q "BEGIN PUBLIC KEY" "$JWT_VALIDATION_PUBKEYS" ||
    die "$JWT_VALIDATION_PUBKEYS holds no '-----BEGIN PUBLIC KEY-----' block (openssl pkey -pubout gives one)"
  "$VAULT" write "auth/$AUTH_PATH/config" bound_issuer="$ISSUER" \
    jwt_validation_pubkeys=@"$JWT_VALIDATION_PUBKEYS" >/dev/null
else
  # Vault fetches the issuer's discovery document and keys now and refuses
  # the config if it cannot; the keys are then refreshed as the issuer rotates.
  "$VAULT" write "auth/$AUTH_PATH/config" bound_issuer="$ISSUER" oidc_discovery_url="$ISSUER" >/dev/null
fi

# ---- the policy: the Pure1 paths the pipeline reads, nothing else ----------------

{
  echo "# Written by bootstrap/ci/setup-jwt-auth.sh: read one Pure1 credential, nothing else."
  printf 'path "%s/creds/%s" {\n  capabilities = ["read"]\n}\n' "$MOUNT" "$PURE1_ROLE"
  [[ -z "$STATIC_ROLE" ]] || printf 'path "%s/static-creds/%s" {\n  capabilities = ["read"]\n}\n' "$MOUNT" "$STATIC_ROLE"
} | "$VAULT" policy write "$POLICY" - >/dev/null

# A static role the policy names but Vault does not have is a read that
# fails later, in the pipeline: say so now (the admin may create it next).
if [[ -n "$STATIC_ROLE" ]] && ! "$VAULT" read "$MOUNT/static-roles/$STATIC_ROLE" >/dev/null 2>&1; then
  printf 'setup-jwt-auth.sh: warning: %s/static-roles/%s does not exist: create it (vault write %s/static-roles/%s config=<your config>), or the pipeline'"'"'s read of %s/static-creds/%s fails\n' \
    "$MOUNT" "$STATIC_ROLE" "$MOUNT" "$STATIC_ROLE" "$MOUNT" "$STATIC_ROLE" >&2
fi

# ---- the role: this repository, this branch, this audience -----------------------

# JSON, because bound_claims and claim_mappings are maps.
"$VAULT" write "auth/$AUTH_PATH/role/$ROLE_NAME" - >/dev/null <<EOF
{
  "role_type": "jwt",
  "user_claim": "sub",
  "bound_audiences": ["$AUDIENCE"],
  "bound_claims_type": "string",
  "bound_claims": $BOUND_CLAIMS,
  "claim_mappings": $CLAIM_MAPPINGS,
  "token_policies": ["$POLICY"],
  "token_ttl": "$TTL",
  "token_max_ttl": "1h"
}
EOF

cat <<EOF
$PROVIDER CI can now read $MOUNT/creds/$PURE1_ROLE${STATIC_ROLE:+ and $MOUNT/static-creds/$STATIC_ROLE}:
  auth mount  auth/$AUTH_PATH (issuer $ISSUER)
  role        $ROLE_NAME: $REPO, branch $BRANCH, aud $AUDIENCE
  policy      $POLICY
Log in from a job:
  vault write -field=token auth/$AUTH_PATH/login role=$ROLE_NAME jwt="\$ID_TOKEN"
EOF
if [[ -z "$STATIC_ROLE" ]]; then
  cat <<EOF
A static role too (one token shared by every job)? Run this again with
PURE1_STATIC_ROLE=<name>: until then the policy allows $MOUNT/creds/$PURE1_ROLE
only, and a read of $MOUNT/static-creds/<name> is refused with 403.
EOF
fi
