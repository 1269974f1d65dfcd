#!/usr/bin/env bash
# Try a CI pipeline's login on a development Vault (make dev): play GitHub's
# or GitLab's token service with a key of your own, so the JWT auth method
# that bootstrap/ci/setup-jwt-auth.sh configures can be seen working without
# GitHub or GitLab.
#
#   bootstrap/ci/try-ci-login.sh github|gitlab [OWNER/REPO] [BRANCH]
#
# It makes an RSA key in $PURE1_CI_DIR (default .dev/ci), runs
# setup-jwt-auth.sh with that key as jwt_validation_pubkeys (instead of the
# real issuer's keys), signs a token shaped like the CI system's (its claim
# names, for OWNER/REPO on BRANCH; default acme/storage-automation main),
# logs in as a job would, and reads pure1/creds/readonly with the Vault token
# it got. Never point it at a production Vault: it replaces the auth mount's
# trusted key with its own.
#
# Needs VAULT_ADDR and VAULT_TOKEN (source .dev/env), openssl and the vault CLI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PROVIDER="${1:-}" REPO="${2:-acme/storage-automation}" BRANCH="${3:-main}"
[[ "$PROVIDER" == github || "$PROVIDER" == gitlab ]] || { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
VAULT="${VAULT_BIN:-vault}"
DIR="${PURE1_CI_DIR:-$ROOT/.dev/ci}"
[[ -n "${VAULT_ADDR:-}" && -n "${VAULT_TOKEN:-}" ]] || { echo "try-ci-login.sh: VAULT_ADDR and VAULT_TOKEN are not set: source .dev/env (make dev writes it)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "try-ci-login.sh: openssl is required (apt-get install openssl)" >&2; exit 1; }

mkdir -p "$DIR"
key="$DIR/$PROVIDER-issuer.pem"
[[ -s "$key" ]] || (umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$key" 2>/dev/null)
openssl pkey -in "$key" -pubout -out "$DIR/$PROVIDER-issuer.pub.pem"

aud="https://github.com/${REPO%%/*}"
[[ "$PROVIDER" == github ]] || aud="$VAULT_ADDR"
setup_out="$(JWT_VALIDATION_PUBKEYS="$DIR/$PROVIDER-issuer.pub.pem" JWT_AUDIENCE="$aud" VAULT_BIN="$VAULT" \
  "$ROOT/bootstrap/ci/setup-jwt-auth.sh" "$PROVIDER" "$REPO" "$BRANCH")"
role="$(awk '$1 == "role" {sub(/:$/, "", $2); print $2}' <<<"$setup_out")"

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
now="$(date +%s)"
if [[ "$PROVIDER" == github ]]; then
  claims=$(printf '{"iss":"https://token.actions.githubusercontent.com","aud":"%s","sub":"repo:%s:ref:refs/heads/%s","repository":"%s","repository_owner":"%s","ref":"refs/heads/%s","ref_type":"branch","actor":"%s","workflow":"try-ci-login","run_id":"1","sha":"0000000000000000000000000000000000000000","event_name":"workflow_dispatch","iat":%d,"nbf":%d,"exp":%d}' \
    "$aud" "$REPO" "$BRANCH" "$REPO" "${REPO%%/*}" "$BRANCH" "${USER:-dev}" "$now" "$now" "$((now + 300))")
else
  claims=$(printf '{"iss":"https://gitlab.com","aud":"%s","sub":"project_path:%s:ref_type:branch:ref:%s","project_path":"%s","namespace_path":"%s","ref":"%s","ref_type":"branch","ref_protected":"true","user_login":"%s","pipeline_id":"1","job_id":"1","pipeline_source":"web","iat":%d,"nbf":%d,"exp":%d}' \
    "$aud" "$REPO" "$BRANCH" "$REPO" "${REPO%/*}" "$BRANCH" "${USER:-dev}" "$now" "$now" "$((now + 300))")
fi
input="$(printf '{"alg":"RS256","typ":"JWT","kid":"try-ci-login"}' | b64url).$(printf '%s' "$claims" | b64url)"
jwt="$input.$(printf '%s' "$input" | openssl dgst -sha256 -sign "$key" -binary | b64url)"

mount="jwt-$PROVIDER"
echo "==> vault write auth/$mount/login role=$role jwt=<a $PROVIDER-shaped token for $REPO@$BRANCH>"
ci_token="$(VAULT_TOKEN= "$VAULT" write -field=token "auth/$mount/login" role="$role" jwt="$jwt")"
echo "==> as the pipeline: vault read -field=expires_at pure1/creds/readonly"
VAULT_TOKEN="$ci_token" "$VAULT" read -field=expires_at pure1/creds/readonly
echo
echo "==> as the pipeline: vault read pure1/config/main (refused by its policy)"
if VAULT_TOKEN="$ci_token" "$VAULT" read pure1/config/main >/dev/null 2>&1; then
  echo "try-ci-login.sh: the pipeline's token could read pure1/config/main" >&2
  exit 1
fi
echo "    permission denied, as it should be"
