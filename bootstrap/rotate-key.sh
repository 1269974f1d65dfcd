#!/usr/bin/env bash
# Rotates the Pure1 key of a config, step by step, without an outage: the
# current key keeps issuing credentials until the new one is proven.
#
#   bootstrap/rotate-key.sh [CONFIG]      (default: main)
#
# 1. Vault makes a pending key pair (the private key never leaves Vault):
#    vault write pure1/config/CONFIG/rotate generate_key=true
# 2. The public key is saved to a file, and the Pure1 UI steps are printed.
# 3. You register it in Pure1 and paste the new application ID.
# 4. vault write pure1/config/CONFIG/rotate app_id=... proves the new key with
#    a token exchange and promotes it; vault read pure1/config/CONFIG/check
#    confirms it.
# 5. You are reminded which Pure1 application to delete, and when.
#
# Run it again after an interruption: it picks up the pending key it made.
#
# Needs VAULT_ADDR and VAULT_TOKEN (or a vault login) with write access to the
# mount, and a config that is set up already (register-application.sh does that).
# Environment:
#   PURE1_MOUNT             mount path, default pure1
#   PURE1_KEY_BITS          size of the new key: 2048 (default), 3072 or 4096
#   PURE1_PRIVATE_KEY_FILE  bring this key instead of generating one; its password,
#                           if any, in PURE1_PRIVATE_KEY_PASSWORD (never on a command line)
#   PURE1_PUBLIC_KEY_FILE   where to save the public key, default ./pure1-CONFIG-new-public.pem
#   PURE1_APP_ID            the new application ID, to run without the prompt
#   PURE1_RESTART=1         replace a pending key left by an earlier run instead of using it
#   PURE1_VERIFY=0          promote without the verifying exchange (Vault cannot reach Pure1)
#   VAULT_BIN               vault binary, default vault on PATH
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/../scripts/lib.sh"

need jq

CONFIG="${1:-main}"
MOUNT="${PURE1_MOUNT:-pure1}"
BITS="${PURE1_KEY_BITS:-2048}"
KEY_FILE="${PURE1_PUBLIC_KEY_FILE:-$PWD/pure1-$CONFIG-new-public.pem}"
VAULT="${VAULT_BIN:-$(command -v vault || true)}"
[[ -n "$VAULT" && -x "$VAULT" ]] || die "no vault binary on PATH: install Vault or set VAULT_BIN"
[[ "$CONFIG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] || die "config name '$CONFIG': use letters, digits, '-', '_' and '.'"
[[ "$BITS" =~ ^(2048|3072|4096)$ ]] || die "PURE1_KEY_BITS must be 2048, 3072 or 4096"
ROTATE="$MOUNT/config/$CONFIG/rotate"

# ---- preflight ---------------------------------------------------------------------

step "Checking $MOUNT/config/$CONFIG at ${VAULT_ADDR:-(VAULT_ADDR unset: the CLI default)}"
cfg="$("$VAULT" read -format=json "$MOUNT/config/$CONFIG")" ||
  die "cannot read $MOUNT/config/$CONFIG: check VAULT_ADDR, VAULT_TOKEN and the config name (vault list $MOUNT/config)"
old_app="$(jq -r '.data.app_id // ""' <<<"$cfg")"
old_fp="$(jq -r '.data.public_key_fingerprint' <<<"$cfg")"
[[ -n "$old_app" ]] || die "config $CONFIG has no app_id yet: there is nothing to rotate; set it up with $HERE/register-application.sh $CONFIG"
ok "active key $old_fp, app_id $old_app (it keeps issuing credentials until the new key is promoted)"

# ---- 1. pending key -------------------------------------------------------------------

pending="$(jq -r '.data.pending_public_key_fingerprint // ""' <<<"$cfg")"
if [[ -n "$pending" && "${PURE1_RESTART:-}" != 1 ]]; then
  step "Using the pending key of an earlier run ($pending, made $(jq -r .data.pending_key_created_at <<<"$cfg"))"
  info "(PURE1_RESTART=1 replaces it with a new one)"
  resp="$("$VAULT" read -format=json "$ROTATE")"
else
  args=()
  if [[ -n "${PURE1_PRIVATE_KEY_FILE:-}" ]]; then
    [[ -r "$PURE1_PRIVATE_KEY_FILE" ]] || die "PURE1_PRIVATE_KEY_FILE $PURE1_PRIVATE_KEY_FILE is not readable"
    step "vault write $ROTATE private_key=@$PURE1_PRIVATE_KEY_FILE"
    args+=(private_key=@"$PURE1_PRIVATE_KEY_FILE")
    if [[ -n "${PURE1_PRIVATE_KEY_PASSWORD:-}" ]]; then
      # Through a private file, so the password is in no process's arguments.
      pwfile="$(mktemp)"
      trap 'rm -f "$pwfile"' EXIT
      chmod 600 "$pwfile"
      printf '%s' "$PURE1_PRIVATE_KEY_PASSWORD" >"$pwfile"
      args+=(private_key_password=@"$pwfile")
    fi
  else
    step "vault write $ROTATE generate_key=true key_bits=$BITS"
    args+=(generate_key=true key_bits="$BITS")
  fi
  resp="$("$VAULT" write -format=json "$ROTATE" "${args[@]}")" || die "Vault did not store the pending key (see above)"
fi
jq -r '.data.public_key | rtrimstr("\n")' <<<"$resp" >"$KEY_FILE"
grep -q "BEGIN PUBLIC KEY" "$KEY_FILE" || die "Vault returned no pending public key: $resp"
fp="$(jq -r '.data.public_key_fingerprint' <<<"$resp")"
ok "pending RSA $(jq -r '.data.key_bits' <<<"$resp")-bit key ($(jq -r '.data.key_source' <<<"$resp")); credentials still use the active key"
ok "public key saved to $KEY_FILE (sha256 fingerprint $fp)"

# ---- 2. Pure1 UI ---------------------------------------------------------------------

cat <<EOF

$(step "Register the new public key in Pure1")
    1. Sign in to Pure1 (https://pure1.purestorage.com) as an administrator.
    2. Go to Administration > API Registration and click Register Application.
    3. Application name: for example vault-$CONFIG-$(date +%Y%m%d).
    4. Public key: paste the whole content of $KEY_FILE, including the
       -----BEGIN PUBLIC KEY----- and -----END PUBLIC KEY----- lines:

$(sed 's/^/       /' "$KEY_FILE")

    5. Role: the same as the current application's ($old_app), so that
       credentials keep their rights.
    6. Click Register. Pure1 shows the new Application ID, like pure1:apikey:AbCdEf0123456789.
       Do not delete $old_app yet.

EOF

# ---- 3. application ID -----------------------------------------------------------------

app_id="${PURE1_APP_ID:-}"
tries=0
until [[ "$app_id" =~ ^pure1:apikey:[A-Za-z0-9_-]+$ && "$app_id" != "$old_app" ]]; do
  if [[ "$app_id" == "$old_app" ]]; then
    warn "$app_id is the current application: paste the ID Pure1 showed for the NEW public key"
  elif [[ -n "$app_id" ]]; then
    warn "'$app_id' is not an application ID: it looks like pure1:apikey:XXXXXXXXXXXXXXXX"
  fi
  ((tries++ < 3)) || die "no new application ID; run again (the pending key is kept), or set PURE1_APP_ID"
  printf 'New application ID: '
  IFS= read -r app_id || die "no application ID on standard input; run again (the pending key is kept)"
  [[ -t 0 ]] || echo # the answer was not echoed: end the prompt line
  app_id="$(tr -d '[:space:]' <<<"$app_id")"
done

# ---- 4. verify and promote -----------------------------------------------------------------

promote=(app_id="$app_id")
if [[ "${PURE1_VERIFY:-1}" == 0 ]]; then
  promote+=(verify=false)
  step "vault write $ROTATE app_id=$app_id verify=false (no verifying exchange)"
else
  step "vault write $ROTATE app_id=$app_id (Vault proves the new key with a token exchange first)"
fi
if ! out="$("$VAULT" write -format=json "$ROTATE" "${promote[@]}" 2>&1)"; then
  printf '%s\n' "$out" | sed 's/^/    /' >&2
  cat >&2 <<EOF

The new key was NOT promoted: credentials are still issued with the active
key ($old_fp) and app_id $old_app, as before. Check that:
  - the public key registered in Pure1 is $KEY_FILE (fingerprint $fp);
  - $app_id is the application Pure1 showed for that key;
  - this Vault node's clock is right.
Then run this script again: it uses the same pending key. To give up instead:
  vault delete $ROTATE     (and delete application $app_id in Pure1)
EOF
  exit 1
fi
ok "promoted: credentials are now issued with key $fp and app_id $app_id"

step "Checking: vault read $MOUNT/config/$CONFIG/check"
check="$("$VAULT" read -format=json "$MOUNT/config/$CONFIG/check")" || die "vault read $MOUNT/config/$CONFIG/check failed (see above)"
if [[ "$(jq -r .data.ok <<<"$check")" == true ]]; then
  ok "Pure1 issued a token: org $(jq -r '.data.org // "?"' <<<"$check"), max_role $(jq -r '.data.max_role // "?"' <<<"$check"), round trip $(jq -r .data.round_trip_ms <<<"$check") ms"
else
  warn "Pure1 did not issue a token: $(jq -r .data.error <<<"$check")"
  warn "$(jq -r .data.advice <<<"$check")"
  exit 1
fi

# ---- 5. the old application ------------------------------------------------------------------

retired="$("$VAULT" read -field=previous_retired_at "$MOUNT/config/$CONFIG" 2>/dev/null || true)"
cat <<EOF

$(step "Done. One thing left, in Pure1:")
    Credentials issued before ${retired:-the promotion} under $old_app stay valid
    until they expire (access tokens live about 10 hours). After that, delete
    application $old_app in Pure1 (Administration > API Registration).
    vault read $MOUNT/config/$CONFIG shows it as previous_app_id until the next rotation.
EOF
