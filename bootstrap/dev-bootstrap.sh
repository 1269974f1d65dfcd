#!/usr/bin/env bash
# Sets up a Pure1 secrets engine mount against the Pure1 emulator, the way an
# operator does against the real Pure1 (see register-application.sh), with the
# emulator standing in for Pure1's UI:
#
#   1. vault write pure1/config/main generate_key=true   (the key never leaves Vault)
#   2. register the returned public key with the emulator -> application ID
#   3. vault write pure1/config/main app_id=... token_url=<emulator>/oauth2/1.0/token
#   4. roles: readonly (access_token) and readonly-jwt (jwt); static role fleet
#   5. policy pure1-creds (bootstrap/policy-pure1-creds.hcl)
#   6. with PURE1_ARRAY_ADDR: config fa, a FlashArray on which Vault registers
#      its own API client with the array's API token (managed registration),
#      and role fa-readonly (user pureuser); with PURE1_BLADE_ADDR the same on
#      a FlashBlade: config fb (client vault_fb), role fb-readonly
#
# make dev runs it. Environment:
#   VAULT_ADDR, VAULT_TOKEN   the Vault to set up (required)
#   PURE1_EMULATOR_ADDR       the emulator's base URL, as `pure1-emulator serve` prints it (required)
#   VAULT_BIN                 vault binary (default: bin/vault, else vault on PATH)
#   PURE1_EMULATOR_BIN        default bin/pure1-emulator
#   PURE1_MOUNT               default pure1
#   PURE1_CONFIG              config name, default main
#   PURE1_WORK_DIR            where the public key is saved (default .dev/bootstrap)
#   PURE1_ARRAY_ADDR          an array's https:// address (`pure1-emulator array` prints it); optional
#   PURE1_ARRAY_CA_FILE       PEM of the CA that signed the array's certificate
#   PURE1_ARRAY_API_TOKEN_FILE  a file holding an array API token that may manage API clients
#   PURE1_BLADE_ADDR, PURE1_BLADE_CA_FILE, PURE1_BLADE_API_TOKEN_FILE   the same for a FlashBlade; optional
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/../scripts/lib.sh"

: "${VAULT_ADDR:?set VAULT_ADDR to the Vault to set up}"
: "${VAULT_TOKEN:?set VAULT_TOKEN (a token that may write the mount and policies)}"
EMU="${PURE1_EMULATOR_ADDR:?set PURE1_EMULATOR_ADDR to the emulator URL (pure1-emulator serve prints it)}"
EMU="${EMU%/}"
if [[ -n "${VAULT_BIN:-}" ]]; then
  VAULT="$VAULT_BIN"
elif [[ -x "$ROOT/bin/vault" ]]; then
  VAULT="$ROOT/bin/vault"
else
  VAULT="$(command -v vault)" || die "no vault binary: set VAULT_BIN or run make vault"
fi
EMULATOR_BIN="${PURE1_EMULATOR_BIN:-$ROOT/bin/pure1-emulator}"
[[ -x "$EMULATOR_BIN" ]] || die "$EMULATOR_BIN is missing: run make build"
MOUNT="${PURE1_MOUNT:-pure1}"
CONFIG="${PURE1_CONFIG:-main}"
WORK="${PURE1_WORK_DIR:-$DEV_DIR/bootstrap}"
TOKEN_URL="$EMU/oauth2/1.0/token"
mkdir -p "$WORK"

step "vault write $MOUNT/config/$CONFIG generate_key=true"
"$VAULT" write -field=public_key "$MOUNT/config/$CONFIG" generate_key=true >"$WORK/$CONFIG-public.pem"
grep -q "BEGIN PUBLIC KEY" "$WORK/$CONFIG-public.pem" || die "no public_key in the answer: $(cat "$WORK/$CONFIG-public.pem")"
fp="$("$VAULT" read -field=public_key_fingerprint "$MOUNT/config/$CONFIG")"
ok "key generated in Vault; public key saved to $WORK/$CONFIG-public.pem (sha256 $fp)"

step "Registering the public key with the emulator (Pure1: Administration > API Registration)"
app_id="$("$EMULATOR_BIN" register -addr "$EMU" -public-key "$WORK/$CONFIG-public.pem" -max-role viewer)"
[[ "$app_id" == pure1:apikey:* ]] || die "the emulator did not return an application ID: $app_id"
ok "application ID $app_id"

step "vault write $MOUNT/config/$CONFIG app_id=$app_id token_url=$TOKEN_URL"
"$VAULT" write "$MOUNT/config/$CONFIG" app_id="$app_id" token_url="$TOKEN_URL" >/dev/null
ok "config $CONFIG complete"

step "Roles: readonly (access_token), readonly-jwt (jwt)"
"$VAULT" write "$MOUNT/roles/readonly" config="$CONFIG" >/dev/null
"$VAULT" write "$MOUNT/roles/readonly-jwt" config="$CONFIG" credential_type=jwt >/dev/null
ok "$("$VAULT" list "$MOUNT/roles" | tail -n +3 | paste -sd, - | sed 's/,/, /g')"

step "Static role fleet (one shared access token, refreshed hourly)"
"$VAULT" write "$MOUNT/static-roles/fleet" config="$CONFIG" rotation_period=1h >/dev/null
ok "static-creds/fleet serves it"

step "Policy pure1-creds (read $MOUNT/creds/* and $MOUNT/static-creds/*, nothing else)"
sed "s#\"pure1/#\"$MOUNT/#" "$HERE/policy-pure1-creds.hcl" |
  "$VAULT" policy write pure1-creds - >/dev/null
ok "policy written"

if [[ -n "${PURE1_ARRAY_ADDR:-}" ]]; then
  : "${PURE1_ARRAY_CA_FILE:?set PURE1_ARRAY_CA_FILE to the PEM of the CA that signed the array certificate}"
  : "${PURE1_ARRAY_API_TOKEN_FILE:?set PURE1_ARRAY_API_TOKEN_FILE to a file holding the array API token}"
  step "vault write $MOUNT/config/fa kind=flasharray array_url=$PURE1_ARRAY_ADDR ca_cert=@... admin_api_token=@... (managed registration)"
  # The token from a file (@), never the command line, which ps shows.
  "$VAULT" write "$MOUNT/config/fa" kind=flasharray array_url="$PURE1_ARRAY_ADDR" ca_cert=@"$PURE1_ARRAY_CA_FILE" \
    username=pureuser admin_api_token=@"$PURE1_ARRAY_API_TOKEN_FILE" max_role=readonly access_token_ttl=1h >/dev/null
  ok "Vault registered API client $("$VAULT" read -field=api_client_name "$MOUNT/config/fa") (id $("$VAULT" read -field=client_id "$MOUNT/config/fa")) and verified it"
  "$VAULT" write "$MOUNT/roles/fa-readonly" config=fa username=pureuser >/dev/null
  ok "role fa-readonly: FlashArray access tokens of user pureuser"
fi

if [[ -n "${PURE1_BLADE_ADDR:-}" ]]; then
  : "${PURE1_BLADE_CA_FILE:?set PURE1_BLADE_CA_FILE to the PEM of the CA that signed the FlashBlade certificate}"
  : "${PURE1_BLADE_API_TOKEN_FILE:?set PURE1_BLADE_API_TOKEN_FILE to a file holding the FlashBlade API token}"
  step "vault write $MOUNT/config/fb kind=flashblade array_url=$PURE1_BLADE_ADDR ca_cert=@... admin_api_token=@... (managed registration)"
  "$VAULT" write "$MOUNT/config/fb" kind=flashblade array_url="$PURE1_BLADE_ADDR" ca_cert=@"$PURE1_BLADE_CA_FILE" \
    username=pureuser admin_api_token=@"$PURE1_BLADE_API_TOKEN_FILE" max_role=readonly access_token_ttl=1h >/dev/null
  ok "Vault registered API client $("$VAULT" read -field=api_client_name "$MOUNT/config/fb") (id $("$VAULT" read -field=client_id "$MOUNT/config/fb")) and verified it"
  "$VAULT" write "$MOUNT/roles/fb-readonly" config=fb username=pureuser >/dev/null
  ok "role fb-readonly: FlashBlade access tokens of user pureuser"
fi
