#!/usr/bin/env bash
# make dev: a real Vault dev server with this plugin, against the Pure1
# emulator, set up and shown working.
#
#   1. starts bin/pure1-emulator on a free 127.0.0.1 port, listing 3 arrays
#      (so a page size of 2 shows Pure1's paging);
#   2. starts `vault server -dev` on another, with .dev/plugins holding a copy
#      of bin/vault-plugin-secrets-pure1;
#   3. registers the plugin with scripts/register.sh, by sha256 and version
#      ($VERSION, default the VERSION file's), loopback allowed for the
#      emulators, and mounts it at pure1/;
#   4. runs bootstrap/dev-bootstrap.sh: a key generated inside Vault, its
#      public key registered with the emulator, roles readonly (access_token)
#      and readonly-jwt (jwt);
#   5. reads pure1/creds/readonly and calls the emulated Pure1 API with the
#      access token; beside it an emulated FlashArray and an emulated
#      FlashBlade (pure1-emulator array -kind ..., each TLS with its own CA,
#      each answering only its kind's wire) on which Vault registers its own
#      API clients (configs fa and fb, roles fa-readonly and fb-readonly), and
#      reads and uses a token on each too;
#   6. prints the export lines to try more, then stays in the foreground
#      until Ctrl-C, which stops everything it started.
#
#   DEV_DETACH=1 make dev   leave it running in the background; make dev-stop ends it.
#
# State (pids, logs, addresses, the plugin directory) is in .dev/. Running it
# again stops the previous one first. Binaries: $PURE1_BIN_DIR (default bin/),
# Vault: $VAULT_BIN (default bin/vault).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need curl setsid sha256sum

VERSION="${VERSION:-$(cat "$ROOT/VERSION")}"
BIN_DIR="${PURE1_BIN_DIR:-$ROOT/bin}"
VAULT="${VAULT_BIN:-$BIN_DIR/vault}"
PLUGIN_NAME=vault-plugin-secrets-pure1
PLUGIN_BIN="$BIN_DIR/$PLUGIN_NAME"
EMULATOR_BIN="$BIN_DIR/pure1-emulator"
MOUNT=pure1
DETACH="${DEV_DETACH:-0}"
LOG_DIR="$DEV_DIR/logs"
ROOT_TOKEN=root

for f in "$VAULT" "$PLUGIN_BIN" "$EMULATOR_BIN"; do
  [[ -x "$f" ]] || die "$f is missing: run 'make dev' (it builds it) or 'make build vault'"
done

# The environment of the shell running make must not redirect the vault CLI
# to another server, namespace or output format.
unset VAULT_NAMESPACE VAULT_FORMAT VAULT_CACERT VAULT_CAPATH VAULT_CLIENT_CERT \
  VAULT_CLIENT_KEY VAULT_SKIP_VERIFY VAULT_TLS_SERVER_NAME VAULT_AGENT_ADDR

# ---- a previous make dev ------------------------------------------------------

if running vault >/dev/null || running emulator >/dev/null || running array >/dev/null || running blade >/dev/null || running agent >/dev/null; then
  step "A previous 'make dev' is running: stopping it first"
  "$ROOT/scripts/dev-stop.sh"
fi
rm -rf "${LOG_DIR:?}" "${DEV_DIR:?}/plugins" "${DEV_DIR:?}/home" "$DEV_DIR/bootstrap" "$DEV_DIR/agent" \
  "$DEV_DIR/env" "$DEV_DIR/emulator.addr" "$DEV_DIR/vault.addr" "$DEV_DIR/vault.hcl" \
  "$DEV_DIR/array.addr" "$DEV_DIR/array-ca.pem" "$DEV_DIR/array-api-token" \
  "$DEV_DIR/blade.addr" "$DEV_DIR/blade-ca.pem" "$DEV_DIR/blade-api-token"
mkdir -p "$DEV_DIR/run" "$LOG_DIR" "$DEV_DIR/plugins" "$DEV_DIR/home"

# ---- stop everything on the way out (unless detached and ready) ------------------

READY=0
TAKEN_OVER=0
EMU_PID=
ARRAY_PID=
BLADE_PID=
VAULT_PID=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ "$DETACH" == 1 && "$READY" == 1 ]] || [[ "$TAKEN_OVER" == 1 ]]; then
    exit "$rc"
  fi
  echo
  step "Stopping what 'make dev' started"
  stop_mine vault "${VAULT_PID:-}"
  stop_mine emulator "${EMU_PID:-}"
  stop_mine array "${ARRAY_PID:-}"
  stop_mine blade "${BLADE_PID:-}"
  ok "stopped (logs kept in ${LOG_DIR#"$ROOT"/})"
  exit "$rc"
}

# stop_mine NAME PID: stop NAME if its pid file still holds PID, the process
# this run started: when another make dev took over, its processes stay.
stop_mine() {
  local name="$1" pid="$2"
  [[ -n "$pid" && "$(cat "$DEV_DIR/run/$name.pid" 2>/dev/null)" == "$pid" ]] || return 0
  stop_proc "$name"
  [[ "$name" != vault ]] || rm -f "$DEV_DIR/env"
}

# taken_over: true if a newer make dev replaced this run's processes.
taken_over() {
  [[ "$(cat "$DEV_DIR/run/vault.pid" 2>/dev/null)" != "$VAULT_PID" ]]
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 1. the emulator ------------------------------------------------------------------

step "Starting the Pure1 emulator"
start_bg emulator "$LOG_DIR/emulator.log" \
  "$EMULATOR_BIN" serve -listen 127.0.0.1:0 -addr-file "$DEV_DIR/emulator.addr" -arrays 3
EMU_PID=$START_BG_PID
if ! wait_for_file "$DEV_DIR/emulator.addr" 20 "$EMU_PID"; then
  log_tail "$LOG_DIR/emulator.log"
  die "the emulator did not start"
fi
EMU="$(tr -d '[:space:]' <"$DEV_DIR/emulator.addr")"
wait_for_http "$EMU/emulator/health" 20 "$EMU_PID" || { log_tail "$LOG_DIR/emulator.log"; die "the emulator does not answer at $EMU"; }
ok "emulator at $EMU (pid $EMU_PID, log ${LOG_DIR#"$ROOT"/}/emulator.log)"

step "Starting the FlashArray emulator (TLS with its own CA)"
start_bg array "$LOG_DIR/array.log" \
  "$EMULATOR_BIN" array -kind flasharray -listen 127.0.0.1:0 -addr-file "$DEV_DIR/array.addr" \
  -ca-file "$DEV_DIR/array-ca.pem" -api-token-file "$DEV_DIR/array-api-token" -users pureuser,ops
ARRAY_PID=$START_BG_PID
if ! wait_for_file "$DEV_DIR/array.addr" 20 "$ARRAY_PID"; then
  log_tail "$LOG_DIR/array.log"
  die "the FlashArray emulator did not start"
fi
ARRAY="$(tr -d '[:space:]' <"$DEV_DIR/array.addr")"
ok "FlashArray emulator at $ARRAY (pid $ARRAY_PID, CA in ${DEV_DIR#"$ROOT"/}/array-ca.pem, log ${LOG_DIR#"$ROOT"/}/array.log)"

step "Starting the FlashBlade emulator (TLS with its own CA)"
start_bg blade "$LOG_DIR/blade.log" \
  "$EMULATOR_BIN" array -kind flashblade -listen 127.0.0.1:0 -addr-file "$DEV_DIR/blade.addr" \
  -ca-file "$DEV_DIR/blade-ca.pem" -api-token-file "$DEV_DIR/blade-api-token" -users pureuser,ops
BLADE_PID=$START_BG_PID
if ! wait_for_file "$DEV_DIR/blade.addr" 20 "$BLADE_PID"; then
  log_tail "$LOG_DIR/blade.log"
  die "the FlashBlade emulator did not start"
fi
BLADE="$(tr -d '[:space:]' <"$DEV_DIR/blade.addr")"
ok "FlashBlade emulator at $BLADE (pid $BLADE_PID, CA in ${DEV_DIR#"$ROOT"/}/blade-ca.pem, log ${LOG_DIR#"$ROOT"/}/blade.log)"

# ---- 2. Vault -------------------------------------------------------------------------------

step "Starting vault server -dev ($("$VAULT" version | awk '{sub(/,$/, "", $2); print $2}'))"
cp "$PLUGIN_BIN" "$DEV_DIR/plugins/$PLUGIN_NAME"
chmod 0755 "$DEV_DIR/plugins/$PLUGIN_NAME"
printf 'plugin_directory = "%s"\n' "$DEV_DIR/plugins" >"$DEV_DIR/vault.hcl"

VAULT_PID=
for attempt in 1 2 3; do
  port="$(free_port pair)" || die "no free port pair on 127.0.0.1"
  export VAULT_ADDR="http://127.0.0.1:$port"
  # HOME points into .dev so the dev server's token helper does not
  # overwrite your ~/.vault-token.
  start_bg vault "$LOG_DIR/vault.log" env HOME="$DEV_DIR/home" \
    "$VAULT" server -dev -dev-root-token-id="$ROOT_TOKEN" \
    -dev-listen-address="127.0.0.1:$port" -config="$DEV_DIR/vault.hcl" -log-level=debug
  VAULT_PID=$START_BG_PID
  if wait_for_http "$VAULT_ADDR/v1/sys/health" 60 "$VAULT_PID" 2>/dev/null; then
    break
  fi
  if ! alive "$VAULT_PID" && grep -q "address already in use" "$LOG_DIR/vault.log" && ((attempt < 3)); then
    info "port $port was taken meanwhile; trying another"
    stop_proc vault
    continue
  fi
  log_tail "$LOG_DIR/vault.log" 40
  die "Vault did not become healthy at $VAULT_ADDR"
done
export VAULT_TOKEN="$ROOT_TOKEN"
echo "$VAULT_ADDR" >"$DEV_DIR/vault.addr"
ok "Vault at $VAULT_ADDR (pid $VAULT_PID, root token '$ROOT_TOKEN', log ${LOG_DIR#"$ROOT"/}/vault.log)"

# ---- 3. the plugin -------------------------------------------------------------------------

SHA="$(sha256_of "$DEV_DIR/plugins/$PLUGIN_NAME")"
step "Registering the plugin: $PLUGIN_NAME $VERSION (sha256 ${SHA:0:16}...), loopback allowed for the emulators"
# As an operator does (scripts/register.sh): by the checksum SHA256SUMS lists
# when the binaries are a release's (a SHA256SUMS beside them, as make
# test-e2e lays out), else by the build's own. loopback: the emulators
# listen there, and the plugin reaches loopback only when told so.
register=(-q -version "$VERSION" -allow-hosts loopback)
if [[ -r "$BIN_DIR/SHA256SUMS" ]]; then register+=(-sums "$BIN_DIR/SHA256SUMS"); else register+=(-compute); fi
VAULT_BIN="$VAULT" "$ROOT/scripts/register.sh" "${register[@]}" "$DEV_DIR/plugins/$PLUGIN_NAME"
"$VAULT" secrets enable -path="$MOUNT" -plugin-version="$VERSION" "$PLUGIN_NAME" >/dev/null
running_version="$("$VAULT" read -field=running_plugin_version "sys/mounts/$MOUNT")"
ok "mounted at $MOUNT/ (running version $running_version)"

# ---- 4. bootstrap ---------------------------------------------------------------------------

step "Bootstrapping: bootstrap/dev-bootstrap.sh"
VAULT_BIN="$VAULT" PURE1_EMULATOR_ADDR="$EMU" PURE1_EMULATOR_BIN="$EMULATOR_BIN" \
  PURE1_MOUNT="$MOUNT" PURE1_WORK_DIR="$DEV_DIR/bootstrap" \
  PURE1_ARRAY_ADDR="$ARRAY" PURE1_ARRAY_CA_FILE="$DEV_DIR/array-ca.pem" PURE1_ARRAY_API_TOKEN_FILE="$DEV_DIR/array-api-token" \
  PURE1_BLADE_ADDR="$BLADE" PURE1_BLADE_CA_FILE="$DEV_DIR/blade-ca.pem" PURE1_BLADE_API_TOKEN_FILE="$DEV_DIR/blade-api-token" \
  "$ROOT/bootstrap/dev-bootstrap.sh" 2>&1 | sed 's/^/    | /'

# ---- 5. show it working -----------------------------------------------------------------------

step "vault read $MOUNT/creds/readonly"
"$VAULT" read "$MOUNT/creds/readonly" | sed 's/^/    /'

step "Calling the emulated Pure1 API with a fresh access token"
TOKEN="$("$VAULT" read -field=access_token "$MOUNT/creds/readonly")"
info "curl -H \"Authorization: Bearer \$TOKEN\" $EMU/api/1.latest/arrays"
if ! body="$(curl -fsS -H "Authorization: Bearer $TOKEN" "$EMU/api/1.latest/arrays")"; then
  die "the emulator refused the access token Vault issued"
fi
info "$body"
ok "the emulator accepted the token"

step "vault read $MOUNT/creds/fa-readonly   (a FlashArray access token, from the API client Vault registered)"
ATOKEN="$("$VAULT" read -field=access_token "$MOUNT/creds/fa-readonly")"
info "curl --cacert .dev/array-ca.pem -H \"Authorization: Bearer \$TOKEN\" $ARRAY/api/2.30/arrays"
if ! body="$(curl -fsS --cacert "$DEV_DIR/array-ca.pem" -H "Authorization: Bearer $ATOKEN" "$ARRAY/api/2.30/arrays")"; then
  die "the FlashArray emulator refused the access token Vault issued"
fi
info "$body"
ok "the FlashArray emulator accepted the token"

step "vault read $MOUNT/creds/fb-readonly   (a FlashBlade access token, from the API client Vault registered)"
BTOKEN="$("$VAULT" read -field=access_token "$MOUNT/creds/fb-readonly")"
info "curl --cacert .dev/blade-ca.pem -H \"Authorization: Bearer \$TOKEN\" $BLADE/api/2.17/arrays"
if ! body="$(curl -fsS --cacert "$DEV_DIR/blade-ca.pem" -H "Authorization: Bearer $BTOKEN" "$BLADE/api/2.17/arrays")"; then
  die "the FlashBlade emulator refused the access token Vault issued"
fi
info "$body"
ok "the FlashBlade emulator accepted the token"

step "vault read $MOUNT/static-creds/fleet   (one token shared by every reader, no lease)"
"$VAULT" read "$MOUNT/static-creds/fleet" | sed -e 's/^/    /' -e 's/\(access_token *\)\(.\{24\}\).*/\1\2... (shortened here)/'

step "vault read -field=jwt $MOUNT/creds/readonly-jwt"
JWT="$("$VAULT" read -field=jwt "$MOUNT/creds/readonly-jwt")"
info "${JWT:0:60}... (header: $(cut -d. -f1 <<<"$JWT" | tr '_-' '/+' | base64 -d 2>/dev/null || true))"

# A ready-to-run Vault Agent directory with the shipped config and template.
mkdir -p "$DEV_DIR/agent"
cp "$ROOT/bootstrap/agent.hcl" "$ROOT/bootstrap/agent-template.ctmpl" "$ROOT/bootstrap/agent-static-template.ctmpl" "$DEV_DIR/agent/"
"$VAULT" token create -policy=pure1-creds -period=24h -field=token >"$DEV_DIR/agent/agent-token"
chmod 0600 "$DEV_DIR/agent/agent-token"

PATH_ADD="$(dirname "$VAULT")"
[[ "$PATH_ADD" == "$BIN_DIR" ]] || PATH_ADD="$PATH_ADD:$BIN_DIR"

cat >"$DEV_DIR/env" <<EOF
export VAULT_ADDR=$VAULT_ADDR
export VAULT_TOKEN=$ROOT_TOKEN
export PURE1_EMULATOR_ADDR=$EMU
export PURE1_ARRAY_ADDR=$ARRAY
export PURE1_BLADE_ADDR=$BLADE
export PATH="$PATH_ADD:\$PATH"
EOF

# ---- 6. ready --------------------------------------------------------------------------------------

READY=1
cat <<EOF

$(step "Ready. To try more, in another shell:")
    export VAULT_ADDR=$VAULT_ADDR VAULT_TOKEN=$ROOT_TOKEN
    export PURE1_EMULATOR_ADDR=$EMU PURE1_ARRAY_ADDR=$ARRAY PURE1_BLADE_ADDR=$BLADE
    export PATH="$PATH_ADD:\$PATH"      # (or all of it: source .dev/env)

    vault read pure1/creds/readonly
    vault read -format=json pure1/creds/readonly-jwt
    vault read pure1/static-creds/fleet                         # the shared token; vault read pure1/static-roles/fleet for its state
    curl -H "Authorization: Bearer \$(vault read -field=access_token pure1/creds/readonly)" \\
         \$PURE1_EMULATOR_ADDR/api/1.latest/arrays
    pure1-emulator fault -kind status -status 503 -count 2    # make Pure1 misbehave
    pure1-emulator stats
    vault read pure1/metrics                                     # what the engine did: the Prometheus series as JSON
    (cd .dev/agent && vault agent -config=agent.hcl)           # Vault Agent renders .dev/agent/pure1-access-token

    # The FlashArray and the FlashBlade: Vault registered API clients vault-fa and vault_fb itself;
    # rotate them with no person in the middle
    vault read pure1/config/fa
    curl --cacert .dev/array-ca.pem -H "Authorization: Bearer \$(vault read -field=access_token pure1/creds/fa-readonly)" \\
         \$PURE1_ARRAY_ADDR/api/2.30/arrays
    curl --cacert .dev/blade-ca.pem -H "Authorization: Bearer \$(vault read -field=access_token pure1/creds/fb-readonly)" \\
         \$PURE1_BLADE_ADDR/api/2.17/arrays
    vault write -f pure1/config/fa/rotate                      # new key, new client, verified; the old one retires when its tokens expire
    vault write pure1/config/fb/rotate retire_previous=now     # the same, cutting every earlier client off at once (a leaked key)

    # Pure's Python SDK with Vault's JWT (once, as root: scripts/install-sdk-deps.sh)
    PURE1_ID_TOKEN="\$(vault read -field=jwt pure1/creds/readonly-jwt)" PURE1_API_URL=\$PURE1_EMULATOR_ADDR PURE1_PAGE_SIZE=2 \\
      PYTHONPATH=.cache/py-pure-client /usr/bin/python3 bootstrap/sdk-list-arrays.py
    # a CI pipeline's login: Vault's JWT auth as GitHub Actions and GitLab CI use it
    bootstrap/ci/try-ci-login.sh github                          # or gitlab; see bootstrap/ci/

    Logs: .dev/logs/vault.log, .dev/logs/emulator.log, .dev/logs/array.log, .dev/logs/blade.log
EOF

if [[ "$DETACH" == 1 ]]; then
  echo
  step "Left running in the background (DEV_DETACH=1). Stop it with: make dev-stop"
  exit 0
fi

echo
step "Running in the foreground; Ctrl-C stops the emulators and Vault."
info "(DEV_DETACH=1 make dev leaves them running for make dev-stop instead.)"
# Poll rather than block, so Ctrl-C is handled at once and a crash is noticed.
while true; do
  if ! alive "$VAULT_PID" || ! alive "$EMU_PID" || ! alive "$ARRAY_PID" || ! alive "$BLADE_PID"; then
    sleep 0.5 # a make dev taking over stops them first, then rewrites the pid files
  fi
  if taken_over; then
    step "Another 'make dev' took over (it stopped this one's processes); exiting"
    TAKEN_OVER=1
    exit 0
  fi
  if ! alive "$VAULT_PID"; then
    log_tail "$LOG_DIR/vault.log" 40
    die "Vault exited unexpectedly"
  fi
  if ! alive "$EMU_PID"; then
    log_tail "$LOG_DIR/emulator.log"
    die "the emulator exited unexpectedly"
  fi
  if ! alive "$ARRAY_PID"; then
    log_tail "$LOG_DIR/array.log"
    die "the FlashArray emulator exited unexpectedly"
  fi
  if ! alive "$BLADE_PID"; then
    log_tail "$LOG_DIR/blade.log"
    die "the FlashBlade emulator exited unexpectedly"
  fi
  sleep 1 &
  wait $! || true
done
