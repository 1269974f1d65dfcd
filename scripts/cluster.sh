#!/usr/bin/env bash
# A 3-node Vault cluster with integrated (Raft) storage on loopback, with the
# Pure1 plugin registered and mounted at pure1/: what a production HA
# deployment looks like, on one machine, for trying failover and upgrades.
#
#   scripts/cluster.sh start [DIR]          new cluster (DIR, default .cluster/, is wiped first)
#   scripts/cluster.sh stop [DIR]           stop every node (idempotent)
#   scripts/cluster.sh status [DIR]         nodes, their state, Raft peers, the plugin mount
#   scripts/cluster.sh kill-node N [DIR]    SIGKILL node N (1-3) and its plugin processes: a crash
#   scripts/cluster.sh restart-node N [DIR] start a stopped node again with its config and data, unseal it
#
# After start, DIR/env holds VAULT_ADDR_1..3, VAULT_ADDR (node 1), VAULT_TOKEN
# (root) and VAULT_UNSEAL_KEY as `export` lines:
#   source .cluster/env && vault read pure1/creds/readonly   # once a config and role exist
# DIR/nodeN/ holds vault.hcl, vault.log, vault.pid, raft/ and plugins/.
#
# Environment:
#   VAULT_BIN             the vault binary (default bin/vault: make vault)
#   PURE1_BIN_DIR         where the plugin binary is (default bin/: make build)
#   VERSION               the plugin version to register (default: the VERSION file, what make build stamps)
#   RAFT_PERF_MULTIPLIER  Raft timing multiplier (default: Vault's own, 5; 1 = fastest failover)
#   CLUSTER_STOP_GRACE    seconds stop waits after SIGTERM before SIGKILL (default 5)
#
# Every node is started in its own session (setsid), so its pid is its process
# group: stop and kill-node signal the group, which takes Vault's plugin
# processes along. The unseal key and root token sit in DIR in the clear: this
# is a development cluster, never a template for production.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PLUGIN_NAME="vault-plugin-secrets-pure1"
MOUNT="pure1"
NODES=(1 2 3)

# The caller's environment must not send the vault CLI elsewhere (VAULT_ADDR
# and VAULT_TOKEN are set per command).
unset VAULT_NAMESPACE VAULT_FORMAT VAULT_CACERT VAULT_CAPATH VAULT_CLIENT_CERT \
  VAULT_CLIENT_KEY VAULT_SKIP_VERIFY VAULT_TLS_SERVER_NAME VAULT_AGENT_ADDR

# Messages (step, info, ok, die) and need come from the scripts' shared helpers.
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

# die_node N MESSAGE: fail, showing the end of node N's log.
die_node() {
  local n="$1"
  shift
  local log="$DIR/node$n/vault.log"
  if [[ -r "$log" ]]; then
    echo "---- last 40 lines of $log ----" >&2
    tail -n 40 "$log" | sed 's/^/    /' >&2
    echo "----" >&2
  fi
  die "$*"
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
  exit "${1:-2}"
}

# ---- state ----------------------------------------------------------------------

# set_dir [DIR]: the cluster directory, absolute.
set_dir() {
  DIR="${1:-$ROOT/.cluster}"
  [[ "$DIR" == /* ]] || DIR="$PWD/$DIR"
  DIR="${DIR%/}"
}

load_env() {
  [[ -r "$DIR/env" ]] || die "no cluster in $DIR (no $DIR/env): start one with scripts/cluster.sh start${DIR:+ $DIR}"
  # Read, not sourced: its export lines would export the root token and the
  # unseal key to every process started from here.
  local line k v
  while IFS= read -r line; do
    line="${line#export }"
    [[ "$line" =~ ^([A-Z_][A-Z0-9_]*)=(.*)$ ]] || continue
    k="${BASH_REMATCH[1]}" v="${BASH_REMATCH[2]}"
    printf -v "$k" '%s' "$v"
  done <"$DIR/env"
  VAULT_BIN="${CLUSTER_VAULT_BIN:-${VAULT_BIN:-$ROOT/bin/vault}}"
}

node_addr() {
  local v="VAULT_ADDR_$1"
  echo "${!v}"
}

check_node_arg() {
  [[ "${1:-}" =~ ^[123]$ ]] || die "node must be 1, 2 or 3, not '${1:-}'"
}

# ---- processes ----------------------------------------------------------------------

# node_pid N: print node N's pid if it runs: alive, not a zombie, and still
# running this node's config (a recycled pid is never signalled).
node_pid() {
  local f="$DIR/node$1/vault.pid" pid state
  [[ -r "$f" ]] || return 1
  pid="$(<"$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
  [[ "$state" != Z ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$DIR/node$1/vault.hcl" || return 1
  echo "$pid"
}

# health N: the HTTP status of node N's sys/health: 200 active, 429 standby,
# 501 not initialised, 503 sealed, 000 not answering.
health() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$(node_addr "$1")/v1/sys/health" 2>/dev/null || true
}

state_name() {
  case "$1" in
    200) echo active ;;
    429) echo standby ;;
    473) echo "performance standby" ;;
    501) echo "not initialised" ;;
    503) echo sealed ;;
    000 | "") echo "not answering" ;;
    *) echo "HTTP $1" ;;
  esac
}

# vault_at N ARGS...: the vault CLI against node N with the root token.
vault_at() {
  local n="$1"
  shift
  VAULT_ADDR="$(node_addr "$n")" VAULT_TOKEN="${VAULT_TOKEN:-}" VAULT_NAMESPACE='' \
    "$VAULT_BIN" "$@"
}

# launch N: start node N's server in its own session and wait until its API
# answers (sealed is fine).
launch() {
  local n="$1" d="$DIR/node$1" pid deadline code
  # The server needs neither the root token nor the unseal key in its environment.
  setsid env -u VAULT_TOKEN -u VAULT_UNSEAL_KEY "$VAULT_BIN" server -config="$d/vault.hcl" </dev/null >>"$d/vault.log" 2>&1 &
  pid=$!
  echo "$pid" >"$d/vault.pid"
  deadline=$((SECONDS + 60))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$d/vault.pid"
      die_node "$n" "node$n exited while starting"
    fi
    code="$(health "$n")"
    [[ "$code" != 000 ]] && break
    ((SECONDS < deadline)) || die_node "$n" "node$n's API at $(node_addr "$n") did not answer within 60s"
    sleep 0.2
  done
  info "node$n started (pid $pid, $(node_addr "$n"), $(state_name "$code"))"
}

# wait_health N TIMEOUT_S CODE...: wait until node N's health is one of CODEs.
wait_health() {
  local n="$1" timeout="$2" deadline code
  shift 2
  deadline=$((SECONDS + timeout))
  while :; do
    code="$(health "$n")"
    local c
    for c in "$@"; do
      [[ "$code" == "$c" ]] && return 0
    done
    node_pid "$n" >/dev/null || die_node "$n" "node$n exited (last state: $(state_name "$code"))"
    ((SECONDS < deadline)) || die_node "$n" "node$n is $(state_name "$code") after ${timeout}s; expected $(for c in "$@"; do printf '%s ' "$(state_name "$c")"; done)"
    sleep 0.3
  done
}

# unseal N: unseal node N. A node that is still joining the cluster (its
# retry_join has not reached the leader yet) refuses; retry until it takes.
unseal() {
  local n="$1" deadline out
  deadline=$((SECONDS + 90))
  until out="$(vault_at "$n" operator unseal -format=json "$VAULT_UNSEAL_KEY" 2>&1)"; do
    node_pid "$n" >/dev/null || die_node "$n" "node$n exited while being unsealed"
    ((SECONDS < deadline)) || die_node "$n" "node$n could not be unsealed within 90s: $out"
    sleep 1
  done
}

# stop_node N SIGNAL: signal node N's process group, wait until it is gone.
stop_node() {
  local n="$1" sig="$2" pid deadline
  if ! pid="$(node_pid "$n")"; then
    rm -f "$DIR/node$n/vault.pid"
    return 1
  fi
  kill "-$sig" -- "-$pid" 2>/dev/null || kill "-$sig" "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 15))
  while node_pid "$n" >/dev/null && ((SECONDS < deadline)); do
    sleep 0.1
  done
  # Whatever is left of the group (a plugin, a node that ignored TERM).
  kill -KILL -- "-$pid" 2>/dev/null || true
  deadline=$((SECONDS + 10))
  while node_pid "$n" >/dev/null; do
    ((SECONDS < deadline)) || die "node$n (pid $pid) survived SIGKILL for 10s"
    sleep 0.1
  done
  rm -f "$DIR/node$n/vault.pid"
  echo "$pid"
}

# ---- configuration ------------------------------------------------------------------

# pick_ports: six ports (API and cluster port of each node) on 127.0.0.1 that
# nothing listens on, below the ephemeral range so that outgoing connections
# do not take them between now and the nodes' start.
pick_ports() {
  local used p tries=0
  PORTS=()
  used=" $(ss -Htln 2>/dev/null | awk '{n=split($4,a,":"); printf "%s ", a[n]}') "
  while ((${#PORTS[@]} < 6)); do
    ((tries++ < 1000)) || die "found no free ports on 127.0.0.1"
    p=$((20000 + RANDOM % 12000))
    [[ "$used" == *" $p "* ]] && continue
    port_free "$p" || continue
    used+="$p "
    PORTS+=("$p")
  done
}

write_config() {
  local n="$1" d="$DIR/node$1" api="${PORTS[$((2 * ($1 - 1)))]}" cl="${PORTS[$((2 * ($1 - 1) + 1))]}" m joins=""
  for m in "${NODES[@]}"; do
    [[ "$m" == "$n" ]] && continue
    joins+="
  retry_join {
    leader_api_addr = \"http://127.0.0.1:${PORTS[$((2 * (m - 1)))]}\"
  }"
  done
  local perf=""
  [[ -n "${RAFT_PERF_MULTIPLIER:-}" ]] && perf="
  performance_multiplier = ${RAFT_PERF_MULTIPLIER}"
  cat >"$d/vault.hcl" <<EOF
# node$n of the cluster in $DIR, written by scripts/cluster.sh
ui               = false
disable_mlock    = true
log_level        = "info"
api_addr         = "http://127.0.0.1:$api"
cluster_addr     = "https://127.0.0.1:$cl"
plugin_directory = "$d/plugins"

storage "raft" {
  path    = "$d/raft"
  node_id = "node$n"$perf$joins
}

listener "tcp" {
  address         = "127.0.0.1:$api"
  cluster_address = "127.0.0.1:$cl"
  tls_disable     = true
}
EOF
}

write_env() {
  local tmp="$DIR/env.tmp" n
  {
    echo "# The cluster in $DIR, written by scripts/cluster.sh. Source it: source $DIR/env"
    echo "export CLUSTER_DIR=$DIR"
    echo "export CLUSTER_VAULT_BIN=$VAULT_BIN"
    for n in "${NODES[@]}"; do
      echo "export VAULT_ADDR_$n=http://127.0.0.1:${PORTS[$((2 * (n - 1)))]}"
    done
    for n in "${NODES[@]}"; do
      echo "export VAULT_CLUSTER_ADDR_$n=https://127.0.0.1:${PORTS[$((2 * (n - 1) + 1))]}"
    done
    echo "export VAULT_ADDR=http://127.0.0.1:${PORTS[0]}"
    echo "export VAULT_TOKEN=${VAULT_TOKEN:-}"
    echo "export VAULT_UNSEAL_KEY=${VAULT_UNSEAL_KEY:-}"
    echo "export PURE1_PLUGIN_NAME=$PLUGIN_NAME"
    echo "export PURE1_PLUGIN_VERSION=$VERSION"
    echo "export PURE1_PLUGIN_SHA256=$SHA"
    echo "export PURE1_MOUNT=$MOUNT"
  } >"$tmp"
  chmod 600 "$tmp"
  mv "$tmp" "$DIR/env"
}

# ---- commands -----------------------------------------------------------------------

cmd_start() {
  need curl jq ss setsid sha256sum
  VAULT_BIN="${VAULT_BIN:-$ROOT/bin/vault}"
  VERSION="${VERSION:-$(cat "$ROOT/VERSION")}"
  local plugin="${PURE1_BIN_DIR:-$ROOT/bin}/$PLUGIN_NAME" n t0=$SECONDS
  [[ -x "$VAULT_BIN" ]] || die "no Vault binary at $VAULT_BIN: run make vault (or set VAULT_BIN)"
  [[ -x "$plugin" ]] || die "no plugin binary at $plugin: run make build"

  # A new cluster every time. Refuse to wipe a directory this script did not make.
  for n in "${NODES[@]}"; do
    if node_pid "$n" >/dev/null; then
      die "a cluster is already running in $DIR: scripts/cluster.sh stop $DIR first (or status $DIR)"
    fi
  done
  mkdir -p "$DIR"
  if [[ -n "$(ls -A "$DIR")" && ! -e "$DIR/.pure1-cluster" ]]; then
    die "$DIR is not empty and was not made by scripts/cluster.sh; choose another directory"
  fi
  rm -rf "$DIR/node1" "$DIR/node2" "$DIR/node3" "$DIR/env" "$DIR/init.json"
  touch "$DIR/.pure1-cluster"

  SHA="$(sha256sum "$plugin" | awk '{print $1}')"
  pick_ports
  for n in "${NODES[@]}"; do
    printf -v "VAULT_ADDR_$n" 'http://127.0.0.1:%s' "${PORTS[$((2 * (n - 1)))]}"
  done
  # A half-made cluster is no use: stop what was started if anything fails.
  # The logs stay in DIR.
  trap 'on_start_failure' EXIT
  step "Writing configs for 3 nodes in $DIR ($("$VAULT_BIN" version | awk '{sub(",", "", $2); print $1, $2}'), plugin $VERSION)"
  for n in "${NODES[@]}"; do
    mkdir -p "$DIR/node$n/raft" "$DIR/node$n/plugins"
    chmod 700 "$DIR/node$n"
    cp "$plugin" "$DIR/node$n/plugins/$PLUGIN_NAME"
    write_config "$n"
    info "node$n: api http://127.0.0.1:${PORTS[$((2 * (n - 1)))]}  cluster 127.0.0.1:${PORTS[$((2 * (n - 1) + 1))]}"
  done
  VAULT_TOKEN='' VAULT_UNSEAL_KEY=''
  write_env # so that stop works whatever fails from here on

  step "Starting the nodes"
  for n in "${NODES[@]}"; do
    launch "$n"
  done

  step "Initialising node1 (1 key share)"
  local out
  out="$(vault_at 1 operator init -key-shares=1 -key-threshold=1 -format=json 2>&1)" ||
    die_node 1 "vault operator init failed: $out"
  (umask 077 && printf '%s\n' "$out" >"$DIR/init.json")
  VAULT_UNSEAL_KEY="$(jq -r '.unseal_keys_b64[0]' <<<"$out")"
  VAULT_TOKEN="$(jq -r '.root_token' <<<"$out")"
  [[ -n "$VAULT_UNSEAL_KEY" && "$VAULT_UNSEAL_KEY" != null ]] || die "no unseal key in the init output: $out"
  write_env

  step "Unsealing node1"
  unseal 1
  wait_health 1 60 200
  ok "node1 is active"

  step "Joining node2 and node3 (retry_join) and unsealing them"
  for n in 2 3; do
    unseal "$n"
    wait_health "$n" 90 429 473
    ok "node$n joined, standby"
  done

  step "Waiting for autopilot to make all 3 nodes voters"
  local deadline=$((SECONDS + 120)) voters=0 peers=""
  while :; do
    peers="$(vault_at 1 operator raft list-peers -format=json 2>/dev/null || true)"
    voters=0
    [[ -n "$peers" ]] && voters="$(jq -r '[.data.config.servers[]? | select(.voter)] | length' <<<"$peers" 2>/dev/null || echo 0)"
    ((voters == 3)) && break
    ((SECONDS < deadline)) || die_node 1 "only $voters of 3 nodes are Raft voters after 120s"
    sleep 1
  done
  ok "3 voters"

  step "Registering $PLUGIN_NAME $VERSION (sha256 ${SHA:0:12}...) and mounting it at $MOUNT/"
  # As an operator does (scripts/register.sh): by SHA256SUMS when the plugin
  # is a release's (a SHA256SUMS beside it), else by its own checksum; loopback
  # allowed for the emulators, which listen there.
  local register=(-q -version "$VERSION" -allow-hosts loopback)
  local sums
  sums="$(dirname "$plugin")/SHA256SUMS"
  if [[ -r "$sums" ]]; then register+=(-sums "$sums"); else register+=(-compute); fi
  out="$(VAULT_ADDR="$(node_addr 1)" VAULT_TOKEN="$VAULT_TOKEN" VAULT_NAMESPACE='' VAULT_BIN="$VAULT_BIN" \
    "$ROOT/scripts/register.sh" "${register[@]}" "$DIR/node1/plugins/$PLUGIN_NAME" 2>&1)" ||
    die_node 1 "plugin register failed: $out"
  out="$(vault_at 1 secrets enable -path="$MOUNT" -plugin-version="$VERSION" "$PLUGIN_NAME" 2>&1)" ||
    die_node 1 "secrets enable failed: $out"
  ok "$MOUNT/ mounted"

  trap - EXIT
  step "Cluster ready in $((SECONDS - t0))s"
  info "source $DIR/env    # VAULT_ADDR (node1), VAULT_TOKEN, VAULT_ADDR_1..3"
  info "scripts/cluster.sh status${1:+ $DIR}    scripts/cluster.sh stop${1:+ $DIR}"
}

on_start_failure() {
  local rc=$? n
  ((rc == 0)) && return
  echo "start failed: stopping the nodes it started (logs stay in $DIR/node*/vault.log)" >&2
  for n in "${NODES[@]}"; do
    stop_node "$n" KILL >/dev/null || true
  done
  exit "$rc"
}

cmd_stop() {
  local n pid deadline
  local -A pids=()
  if [[ ! -e "$DIR/.pure1-cluster" ]]; then
    echo "no cluster in $DIR"
    return 0
  fi
  # All nodes at once: stopped one by one, the last ones lose quorum and
  # spend seconds waiting for it while they shut down.
  for n in "${NODES[@]}"; do
    if pid="$(node_pid "$n")"; then
      pids[$n]="$pid"
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    else
      rm -f "$DIR/node$n/vault.pid"
    fi
  done
  if ((${#pids[@]} == 0)); then
    echo "no node of the cluster in $DIR was running"
    return 0
  fi
  # A node whose peers are gone can keep its Raft running for 10s or more
  # waiting for a quorum that will not come back; a development cluster need
  # not wait for that (Raft's log is safe on disk either way).
  local grace="${CLUSTER_STOP_GRACE:-5}"
  deadline=$((SECONDS + grace))
  for n in "${!pids[@]}"; do
    while node_pid "$n" >/dev/null && ((SECONDS < deadline)); do
      sleep 0.1
    done
  done
  for n in $(printf '%s\n' "${!pids[@]}" | sort); do
    if node_pid "$n" >/dev/null; then
      info "node$n still shutting down ${grace}s after SIGTERM: SIGKILL"
    fi
    # Whatever is left of the group (a plugin, a node that ignored TERM).
    kill -KILL -- "-${pids[$n]}" 2>/dev/null || true
    rm -f "$DIR/node$n/vault.pid"
    info "node$n stopped (pid ${pids[$n]})"
  done
  ok "cluster in $DIR stopped"
}

cmd_status() {
  load_env
  local n pid code up=""
  step "Cluster in $DIR"
  for n in "${NODES[@]}"; do
    if pid="$(node_pid "$n")"; then
      code="$(health "$n")"
      printf '    node%s  %-24s  pid %-7s  %s\n' "$n" "$(node_addr "$n")" "$pid" "$(state_name "$code")"
      [[ "$code" == 200 || "$code" == 429 || "$code" == 473 ]] && up="${up:-$n}"
    else
      printf '    node%s  %-24s  %-11s  down\n' "$n" "$(node_addr "$n")" ""
    fi
  done
  if [[ -z "$up" ]]; then
    echo "    (no node is up and unsealed)"
    return 0
  fi
  step "Raft peers (via node$up)"
  vault_at "$up" operator raft list-peers 2>&1 | sed 's/^/    /' || true
  step "Plugin mount"
  vault_at "$up" secrets list -detailed -format=json 2>/dev/null |
    jq -r --arg m "$MOUNT/" '.[$m] // empty | "    \($m)  plugin \(.type)  version \(.plugin_version // "-")  running \(.running_plugin_version // "-")  sha256 \((.running_sha256 // "-")[0:12])"' ||
    true
}

cmd_kill_node() {
  local n="$1" pid
  check_node_arg "$n"
  load_env
  if pid="$(stop_node "$n" KILL)"; then
    ok "node$n killed (SIGKILL to process group $pid)"
  else
    echo "node$n was not running"
  fi
}

cmd_restart_node() {
  local n="$1" t0=$SECONDS
  check_node_arg "$n"
  load_env
  need curl
  if node_pid "$n" >/dev/null; then
    die "node$n is running (pid $(node_pid "$n")); kill-node $n first"
  fi
  step "Restarting node$n"
  launch "$n"
  unseal "$n"
  wait_health "$n" 120 200 429 473
  ok "node$n unsealed and $(state_name "$(health "$n")") after $((SECONDS - t0))s"
}

# ---- main -------------------------------------------------------------------------------

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  start)
    set_dir "${1:-}"
    cmd_start "$@"
    ;;
  stop)
    set_dir "${1:-}"
    cmd_stop
    ;;
  status)
    set_dir "${1:-}"
    cmd_status
    ;;
  kill-node)
    [[ $# -ge 1 ]] || usage
    set_dir "${2:-}"
    cmd_kill_node "$1"
    ;;
  restart-node)
    [[ $# -ge 1 ]] || usage
    set_dir "${2:-}"
    cmd_restart_node "$1"
    ;;
  -h | --help | help) usage 0 ;;
  *) usage ;;
esac
