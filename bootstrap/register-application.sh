#!/usr/bin/env bash
# Registers Vault as a Pure1 API client, step by step, against the real Pure1.
#
#   bootstrap/register-application.sh [CONFIG] [ROLE]      (defaults: main readonly)
#
# 1. Vault generates the application's RSA key pair (the private key never
#    leaves Vault): vault write pure1/config/CONFIG generate_key=true
# 2. The public key is saved to a file, and the Pure1 UI steps are printed.
# 3. You register it in Pure1 and paste the application ID it shows.
# 4. The ID is written to the config, a role ROLE is created, and
#    vault read pure1/creds/ROLE proves Pure1 accepts it.
#
# Needs VAULT_ADDR and VAULT_TOKEN (or a vault login) with write access to the
# mount, and the engine mounted (vault secrets enable -path=pure1 ...).
# Environment:
#   PURE1_MOUNT            mount path, default pure1
#   PURE1_CREDENTIAL_TYPE  access_token (default) or jwt, for the role
#   PURE1_TOKEN_URL        Pure1 token endpoint; default: the plugin's (api.pure1.purestorage.com)
#   PURE1_PUBLIC_KEY_FILE  where to save the public key, default ./pure1-CONFIG-public.pem
#   PURE1_APP_ID           the application ID, to run without the prompt
#   PURE1_REPLACE_KEY=1    replace the key of an existing config without asking
#                          (its app_id is cleared: Pure1 binds one key to one ID).
#                          Vault refuses this while roles use the config: rotate
#                          its key with rotate-key.sh instead.
#   VAULT_BIN              vault binary, default vault on PATH
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/../scripts/lib.sh"

need jq

CONFIG="${1:-main}"
ROLE="${2:-readonly}"
MOUNT="${PURE1_MOUNT:-pure1}"
CRED_TYPE="${PURE1_CREDENTIAL_TYPE:-access_token}"
KEY_FILE="${PURE1_PUBLIC_KEY_FILE:-$PWD/pure1-$CONFIG-public.pem}"
VAULT="${VAULT_BIN:-$(command -v vault || true)}"
[[ -n "$VAULT" && -x "$VAULT" ]] || die "no vault binary on PATH: install Vault or set VAULT_BIN"
[[ "$CONFIG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] || die "config name '$CONFIG': use letters, digits, '-', '_' and '.'"
[[ "$ROLE" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] || die "role name '$ROLE': use letters, digits, '-', '_' and '.'"
[[ "$CRED_TYPE" == access_token || "$CRED_TYPE" == jwt ]] || die "PURE1_CREDENTIAL_TYPE must be access_token or jwt"

# ---- preflight ---------------------------------------------------------------------

step "Checking Vault at ${VAULT_ADDR:-(VAULT_ADDR unset: the CLI default)}"
mounts="$("$VAULT" secrets list -format=json)" || die "cannot list secrets engines: check VAULT_ADDR and VAULT_TOKEN (vault login)"
[[ "$(jq -r --arg m "$MOUNT/" '.[$m].type // empty' <<<"$mounts")" != "" ]] ||
  die "nothing is mounted at $MOUNT/: vault secrets enable -path=$MOUNT vault-plugin-secrets-pure1"
ok "$MOUNT/ is mounted"

if existing="$("$VAULT" read -format=json "$MOUNT/config/$CONFIG" 2>/dev/null)"; then
  old_app="$(jq -r '.data.app_id // ""' <<<"$existing")"
  warn "config $MOUNT/config/$CONFIG exists already (app_id '${old_app:-none}', key $(jq -r .data.public_key_fingerprint <<<"$existing" | cut -c1-16)...)"
  if [[ -n "$old_app" ]]; then
    warn "to give it a new key without an outage, run $HERE/rotate-key.sh $CONFIG instead (Vault refuses a new key here while roles use the config)"
  fi
  if [[ "${PURE1_REPLACE_KEY:-}" != 1 ]]; then
    [[ -t 0 ]] || die "not replacing its key without PURE1_REPLACE_KEY=1"
    read -r -p "Generate a new key for it? Its app_id is cleared and the Pure1 application must be registered again [y/N] " answer
    [[ "$answer" == [yY]* ]] || die "left unchanged"
  fi
fi

# ---- 1. key ---------------------------------------------------------------------------

step "vault write $MOUNT/config/$CONFIG generate_key=true"
args=(generate_key=true)
[[ -n "${PURE1_TOKEN_URL:-}" ]] && args+=(token_url="$PURE1_TOKEN_URL")
resp="$("$VAULT" write -format=json "$MOUNT/config/$CONFIG" "${args[@]}")"
jq -r '.data.public_key | rtrimstr("\n")' <<<"$resp" >"$KEY_FILE"
grep -q "BEGIN PUBLIC KEY" "$KEY_FILE" || die "Vault returned no public key: $resp"
fp="$(jq -r '.data.public_key_fingerprint' <<<"$resp")"
ok "RSA $(jq -r '.data.key_bits' <<<"$resp")-bit key generated inside Vault"
ok "public key saved to $KEY_FILE (sha256 fingerprint $fp)"

# ---- 2. Pure1 UI ---------------------------------------------------------------------

cat <<EOF

$(step "Register the public key in Pure1")
    1. Sign in to Pure1 (https://pure1.purestorage.com) as an administrator.
    2. Go to Administration > API Registration and click Register Application.
    3. Application name: for example vault-$CONFIG.
    4. Public key: paste the whole content of $KEY_FILE, including the
       -----BEGIN PUBLIC KEY----- and -----END PUBLIC KEY----- lines:

$(sed 's/^/       /' "$KEY_FILE")

    5. Role: pick the least role that is enough (Viewer for read-only use).
    6. Click Register. Pure1 shows the Application ID, like pure1:apikey:AbCdEf0123456789.

EOF

# ---- 3. application ID -----------------------------------------------------------------

app_id="${PURE1_APP_ID:-}"
tries=0
until [[ "$app_id" =~ ^pure1:apikey:[A-Za-z0-9_-]+$ ]]; do
  if [[ -n "$app_id" ]]; then
    warn "'$app_id' is not an application ID: it looks like pure1:apikey:XXXXXXXXXXXXXXXX"
  fi
  ((tries++ < 3)) || die "no application ID; run again, or set PURE1_APP_ID"
  printf 'Application ID: '
  IFS= read -r app_id || die "no application ID on standard input"
  [[ -t 0 ]] || echo # the answer was not echoed: end the prompt line
  app_id="$(tr -d '[:space:]' <<<"$app_id")"
done

step "vault write $MOUNT/config/$CONFIG app_id=$app_id"
"$VAULT" write -format=json "$MOUNT/config/$CONFIG" app_id="$app_id" >/dev/null
ok "config $CONFIG has its application ID"

# ---- 4. role and test -------------------------------------------------------------------

step "vault write $MOUNT/roles/$ROLE config=$CONFIG credential_type=$CRED_TYPE"
"$VAULT" write "$MOUNT/roles/$ROLE" config="$CONFIG" credential_type="$CRED_TYPE" >/dev/null
ok "role $ROLE created"

step "Testing: vault read $MOUNT/creds/$ROLE"
if ! creds="$("$VAULT" read -format=json "$MOUNT/creds/$ROLE" 2>&1)"; then
  printf '%s\n' "$creds" | sed 's/^/    /' >&2
  cat >&2 <<EOF

Pure1 did not accept the application. Check that:
  - the public key registered in Pure1 is $KEY_FILE (fingerprint $fp;
    compare with: vault read $MOUNT/config/$CONFIG);
  - the application ID is the one Pure1 shows for that key ($app_id);
  - this Vault node's clock is right (the JWT's iat/exp are checked).
Fix the ID with: vault write $MOUNT/config/$CONFIG app_id=pure1:apikey:...
EOF
  exit 1
fi
ok "Pure1 issued a credential: lease $(jq -r .lease_duration <<<"$creds")s, expires $(jq -r .data.expires_at <<<"$creds")"
if [[ "$CRED_TYPE" == access_token ]]; then
  ok "max_role $(jq -r '.data.max_role // "?"' <<<"$creds"), org $(jq -r '.data.org // "?"' <<<"$creds")"
fi

cat <<EOF

$(step "Done. Next:")
    vault policy write pure1-creds $HERE/policy-pure1-creds.hcl   # for the clients
    vault read $MOUNT/creds/$ROLE                                   # what a client runs
    vault agent -config=agent.hcl                                   # a token file kept fresh: see $HERE/agent.hcl
EOF
