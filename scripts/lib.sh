# Shared shell helpers for scripts/dev.sh, scripts/dev-stop.sh and the
# bootstrap scripts. Source it; it defines functions and a few variables and
# runs nothing.
#
#   ROOT      the repository root
#   DEV_DIR   where `make dev` keeps its state: .dev/ (gitignored), or
#             $PURE1_DEV_DIR (the end-to-end tests use a temporary directory)

# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEV_DIR="${PURE1_DEV_DIR:-$ROOT/.dev}"

# ---- messages ---------------------------------------------------------------

if [[ -t 1 && -z "${NO_COLOR:-}" ]]; then
  _c_step=$'\033[1;34m' _c_ok=$'\033[32m' _c_warn=$'\033[33m' _c_err=$'\033[1;31m' _c_off=$'\033[0m'
else
  _c_step='' _c_ok='' _c_warn='' _c_err='' _c_off=''
fi

step() { printf '%s==>%s %s\n' "$_c_step" "$_c_off" "$*"; }
info() { printf '    %s\n' "$*"; }
ok()   { printf '    %sok%s %s\n' "$_c_ok" "$_c_off" "$*"; }
warn() { printf '%swarning:%s %s\n' "$_c_warn" "$_c_off" "$*" >&2; }
die()  { printf '%serror:%s %s\n' "$_c_err" "$_c_off" "$*" >&2; exit 1; }

# need CMD...: fail with a hint unless every command exists.
need() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || die "'$c' is required but not installed (Debian: apt-get install $c)"
  done
}

# ---- ports and waiting --------------------------------------------------------

# port_free PORT: true if nothing listens on 127.0.0.1:PORT.
port_free() {
  # bash's /dev/tcp connects; a refused connection means the port is free.
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port [PAIR]: print a TCP port on 127.0.0.1 that nothing listens on.
# With PAIR=pair, PORT+1 is free as well (Vault's dev server puts its cluster
# listener on the API port + 1).
free_port() {
  local pair="${1:-}" port i
  for ((i = 0; i < 200; i++)); do
    port=$((20000 + RANDOM % 12000)) # below the kernel's ephemeral range (32768+)
    port_free "$port" || continue
    if [[ "$pair" == pair ]]; then
      port_free "$((port + 1))" || continue
    fi
    echo "$port"
    return 0
  done
  return 1
}

# wait_for_file FILE [TIMEOUT_S] [PID]: wait until FILE exists and is not
# empty. Gives up early if PID (the process meant to write it) exits.
wait_for_file() {
  local file="$1" timeout="${2:-30}" pid="${3:-}" deadline=$((SECONDS + ${2:-30}))
  while ((SECONDS < deadline)); do
    [[ -s "$file" ]] && return 0
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      warn "process $pid exited before writing $file"
      return 1
    fi
    sleep 0.1
  done
  warn "$file did not appear within ${timeout}s"
  return 1
}

# wait_for_http URL [TIMEOUT_S] [PID]: wait until URL answers 2xx. Gives up
# early if PID exits.
wait_for_http() {
  local url="$1" timeout="${2:-30}" pid="${3:-}" deadline=$((SECONDS + ${2:-30}))
  while ((SECONDS < deadline)); do
    curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null && return 0
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      warn "process $pid exited before $url answered"
      return 1
    fi
    sleep 0.2
  done
  warn "$url did not answer within ${timeout}s"
  return 1
}

# ---- processes ------------------------------------------------------------------
#
# Every long-running process is started in its own session (setsid), so its
# pid is also its process group id: stopping it signals the whole group, which
# takes Vault's plugin processes along. Pid files live in $DEV_DIR/run as
# NAME.pid, with NAME.cmd holding the command line the pid was started with,
# so a stale pid reused by an unrelated process is never signalled.

# start_bg NAME LOGFILE CMD ARGS...: start CMD in the background in its own
# session, output appended to LOGFILE; record the pid in $DEV_DIR/run and in
# START_BG_PID. (Not printed: a command substitution would run it in a
# subshell, and the caller could then not wait for or reap it.)
start_bg() {
  local name="$1" log="$2"
  shift 2
  mkdir -p "$DEV_DIR/run" "$(dirname "$log")"
  setsid "$@" </dev/null >>"$log" 2>&1 &
  START_BG_PID=$!
  echo "$START_BG_PID" >"$DEV_DIR/run/$name.pid"
  printf '%s\n' "$*" >"$DEV_DIR/run/$name.cmd"
}

# alive PID: true if PID runs and is not a zombie waiting to be reaped.
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local state
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [[ "$state" != Z ]]
}

# pid_is_ours NAME PID: true if PID is alive and runs the program NAME.cmd
# recorded (so a pid reused by an unrelated process is never signalled).
pid_is_ours() {
  local name="$1" pid="$2" prog
  alive "$pid" || return 1
  [[ -r "$DEV_DIR/run/$name.cmd" && -r "/proc/$pid/cmdline" ]] || return 0
  prog="$(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n 1)"
  [[ -n "$prog" ]] && grep -qF -- "$(basename -- "$prog")" "$DEV_DIR/run/$name.cmd"
}

# running NAME: print the pid of NAME if it is running.
running() {
  local name="$1" pid
  [[ -r "$DEV_DIR/run/$name.pid" ]] || return 1
  pid="$(<"$DEV_DIR/run/$name.pid")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  pid_is_ours "$name" "$pid" || return 1
  echo "$pid"
}

# stop_proc NAME [TIMEOUT_S]: TERM the process group of NAME, KILL it after
# TIMEOUT_S, remove its pid file. Quiet and successful if it is not running.
stop_proc() {
  local name="$1" timeout="${2:-10}" pid deadline
  if pid="$(running "$name")"; then
    info "stopping $name (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + timeout))
    while alive "$pid" && ((SECONDS < deadline)); do
      sleep 0.1
    done
    if alive "$pid"; then
      warn "$name (pid $pid) did not stop within ${timeout}s; killing it"
    fi
    # Also catches children (plugins) left after the leader exited.
    kill -KILL -- "-$pid" 2>/dev/null || true
    # Reap it if it is this shell's child, so no zombie lingers.
    wait "$pid" 2>/dev/null || true
  fi
  rm -f "$DEV_DIR/run/$name.pid" "$DEV_DIR/run/$name.cmd"
}

# log_tail FILE [N]: the last N lines of FILE, indented, for error messages.
log_tail() {
  local file="$1" n="${2:-25}"
  [[ -r "$file" ]] || return 0
  echo "---- last $n lines of $file ----" >&2
  tail -n "$n" "$file" | sed 's/^/    /' >&2
  echo "----" >&2
}

# sha256_of FILE: the hex SHA-256 of FILE.
sha256_of() {
  sha256sum "$1" | awk '{print $1}'
}
