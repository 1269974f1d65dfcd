#!/usr/bin/env bash
# Register the Pure1 secrets plugin in a Vault's plugin catalog by the sha256
# its release lists in SHA256SUMS, and by version: how an operator installs a
# release, and what `make dev` and the cluster run, so that path is tested.
#
#   scripts/register.sh [options] PLUGIN_FILE
#
# PLUGIN_FILE is the plugin binary as it sits (or will sit) in the
# plugin_directory of every Vault server; its file name is what Vault runs.
# Copy it there first: Vault runs it once at registration to read its version.
#
# Options:
#   -version vX.Y.Z    the version to register. Default: from the release file
#                      name its checksum is listed under (NAME_X.Y.Z_OS_ARCH).
#                      Vault refuses one the binary does not report.
#   -sums FILE         the release's SHA256SUMS (default: SHA256SUMS beside PLUGIN_FILE)
#   -compute           register by PLUGIN_FILE's own sha256, not SHA256SUMS's:
#                      a build of your own (make build); needs -version
#   -command NAME      its file name in plugin_directory, when PLUGIN_FILE is a
#                      copy elsewhere (default: PLUGIN_FILE's file name)
#   -allow-hosts LIST  register with -env PURE1_ALLOWED_TOKEN_HOSTS=LIST: the
#                      word loopback (a local emulator or array on the Vault
#                      host) and/or host[:port] names, comma-separated.
#                      Without it the plugin sends JWTs to Pure1 only.
#   -name NAME         the catalog name (default vault-plugin-secrets-pure1)
#   -replace           register even when this version is registered with
#                      another sha256 (a rebuild under the same version)
#   -q                 print only errors
#
# Vault: VAULT_ADDR, VAULT_TOKEN and the vault CLI's other variables, as for
# any vault command; the CLI is $VAULT_BIN, else vault on PATH. The token
# needs sudo on sys/plugins/catalog. Idempotent: registering what is
# registered already changes nothing but the environment given.
# Exit status: 0 registered, 1 failed, 2 usage.
set -euo pipefail

NAME=vault-plugin-secrets-pure1
VERSION_ARG="" SUMS="" COMPUTE=0 COMMAND="" ALLOW_HOSTS="" ALLOW_SET=0 REPLACE=0 QUIET=0

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
  exit "${1:-2}"
}
die() { printf 'register.sh: %s\n' "$*" >&2; exit 1; }
bad_usage() { printf 'register.sh: %s (see register.sh -h)\n' "$*" >&2; exit 2; }
say() { ((QUIET)) || printf '%s\n' "$*"; }

need_value() { [[ $# -ge 2 && -n "$2" && "$2" != -* ]] || bad_usage "$1 needs a value"; }
PLUGIN_FILE=""
while (($#)); do
  case "$1" in
    -h | -help | --help) usage 0 ;;
    -version | --version) need_value "$@"; VERSION_ARG="$2"; shift 2 ;;
    -version=* | --version=*) VERSION_ARG="${1#*=}"; shift ;;
    -sums | --sums) need_value "$@"; SUMS="$2"; shift 2 ;;
    -sums=* | --sums=*) SUMS="${1#*=}"; shift ;;
    -compute | --compute) COMPUTE=1; shift ;;
    -command | --command) need_value "$@"; COMMAND="$2"; shift 2 ;;
    -command=* | --command=*) COMMAND="${1#*=}"; shift ;;
    -allow-hosts | --allow-hosts) need_value "$@"; ALLOW_HOSTS="$2"; ALLOW_SET=1; shift 2 ;;
    -allow-hosts=* | --allow-hosts=*) ALLOW_HOSTS="${1#*=}"; ALLOW_SET=1; shift ;;
    -name | --name) need_value "$@"; NAME="$2"; shift 2 ;;
    -name=* | --name=*) NAME="${1#*=}"; shift ;;
    -replace | --replace) REPLACE=1; shift ;;
    -q | --quiet) QUIET=1; shift ;;
    --) shift; break ;;
    -*) bad_usage "unknown option $1" ;;
    *) [[ -z "$PLUGIN_FILE" ]] || bad_usage "one PLUGIN_FILE only, got $PLUGIN_FILE and $1"; PLUGIN_FILE="$1"; shift ;;
  esac
done
if (($#)); then
  [[ -z "$PLUGIN_FILE" && $# -eq 1 ]] || bad_usage "one PLUGIN_FILE only"
  PLUGIN_FILE="$1"
fi
[[ -n "$PLUGIN_FILE" ]] || bad_usage "give the plugin binary: register.sh [options] PLUGIN_FILE"

VAULT="${VAULT_BIN:-vault}"
command -v "$VAULT" >/dev/null 2>&1 || die "the vault CLI ($VAULT) is not found: put it on PATH or set VAULT_BIN"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum is required (Debian: apt-get install coreutils)"

FILE_NAME="$(basename -- "$PLUGIN_FILE")"
COMMAND="${COMMAND:-$FILE_NAME}"
[[ "$COMMAND" != */* ]] || bad_usage "-command is a file name in Vault's plugin_directory, not a path: $COMMAND"

if ((ALLOW_SET)); then
  # The plugin checks the list when it starts; catching a typo here saves a
  # mount that fails later. Items: loopback, host, host:port, [v6]:port.
  IFS=',' read -r -a items <<<"$ALLOW_HOSTS"
  ((${#items[@]})) || bad_usage "-allow-hosts is empty: give loopback and/or host names"
  for item in "${items[@]}"; do
    item="${item// /}"
    [[ "$item" =~ ^(loopback|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?)$ ]] ||
      bad_usage "-allow-hosts: '$item' is neither the word loopback nor a host[:port] (no https://, no path)"
  done
fi

# ---- the checksum -------------------------------------------------------------

LOCAL_SHA=""
if [[ -e "$PLUGIN_FILE" ]]; then
  [[ -f "$PLUGIN_FILE" && -r "$PLUGIN_FILE" ]] || die "$PLUGIN_FILE is not a readable file"
  LOCAL_SHA="$(sha256sum -- "$PLUGIN_FILE" | awk '{print $1}')"
fi

ARTIFACT=""
if ((COMPUTE)); then
  [[ -n "$LOCAL_SHA" ]] || die "-compute needs the binary: $PLUGIN_FILE does not exist"
  [[ -z "$SUMS" ]] || bad_usage "-compute and -sums exclude each other: the checksum comes from one place"
  SHA="$LOCAL_SHA"
  SOURCE="computed from $PLUGIN_FILE"
else
  SUMS="${SUMS:-$(dirname -- "$PLUGIN_FILE")/SHA256SUMS}"
  [[ -r "$SUMS" ]] || die "no checksum file at $SUMS: give the release's SHA256SUMS with -sums FILE (or -compute for a build of your own)"
  # SHA256SUMS lines: <64 hex>  <name> (a '*' before the name in binary mode).
  lookup_name() { awk -v n="$1" '{f=$2; sub(/^\*/, "", f)} f == n {print $1; exit}' "$SUMS"; }
  lookup_sha() { awk -v s="$1" '{f=$2; sub(/^\*/, "", f)} tolower($1) == s {print f; exit}' "$SUMS"; }
  SHA="$(lookup_name "$FILE_NAME")"
  if [[ -n "$SHA" ]]; then
    ARTIFACT="$FILE_NAME"
    if [[ -n "$LOCAL_SHA" && "${SHA,,}" != "$LOCAL_SHA" ]]; then
      die "$PLUGIN_FILE has sha256 $LOCAL_SHA, but $SUMS lists $SHA for $FILE_NAME: the file is not that release's (damaged, or another build); download it again"
    fi
  elif [[ -n "$LOCAL_SHA" ]]; then
    # A release binary renamed for plugin_directory: found by its content.
    ARTIFACT="$(lookup_sha "$LOCAL_SHA")"
    [[ -n "$ARTIFACT" ]] || die "$PLUGIN_FILE (sha256 $LOCAL_SHA) is not listed in $SUMS: it is no file of that release; use the release's binary, or -compute to register a build of your own"
    SHA="$LOCAL_SHA"
  else
    die "$FILE_NAME is not listed in $SUMS, and $PLUGIN_FILE is not here to look up by content: give the release file name as PLUGIN_FILE (with -command NAME for its name in plugin_directory)"
  fi
  SHA="${SHA,,}"
  [[ "$SHA" =~ ^[0-9a-f]{64}$ ]] || die "$SUMS lists '$SHA' for $ARTIFACT, which is no sha256"
  SOURCE="$SUMS ($ARTIFACT)"
fi

# ---- the version ---------------------------------------------------------------

VERSION="$VERSION_ARG"
if [[ -z "$VERSION" ]]; then
  # Release names are NAME_X.Y.Z_OS_ARCH[.exe] (.goreleaser.yaml).
  if [[ "${ARTIFACT:-$FILE_NAME}" =~ _([0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]*)?)_[a-z0-9]+_[a-z0-9]+(\.exe)?$ ]]; then
    VERSION="v${BASH_REMATCH[1]}"
  else
    die "give -version vX.Y.Z: ${ARTIFACT:-$FILE_NAME} names no version (release files are ${NAME}_X.Y.Z_OS_ARCH)"
  fi
fi
[[ "$VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$ ]] ||
  bad_usage "-version '$VERSION' is not a semantic version such as v0.1.0 (with the leading v)"

# ---- Vault -------------------------------------------------------------------------

# What this version is registered as now, if anything. `plugin info` exits
# non-zero both for "not registered" and for an unreachable Vault; tell them
# apart by the message.
set +e
info="$("$VAULT" plugin info -format=json -version="$VERSION" secret "$NAME" 2>&1)"
rc=$?
set -e
REGISTERED_SHA=""
if ((rc == 0)); then
  REGISTERED_SHA="$(sed -n 's/^ *"sha256": *"\([0-9a-fA-F]*\)".*/\1/p' <<<"$info" | head -n 1)"
  REGISTERED_SHA="${REGISTERED_SHA,,}"
elif ! grep -qiE 'no (such )?plugin|unknown plugin|not found|404' <<<"$info"; then
  die "cannot read Vault's plugin catalog at ${VAULT_ADDR:-the default address}: $(tail -n 3 <<<"$info" | tr '\n' ' ')(set VAULT_ADDR and VAULT_TOKEN: a token with sudo on sys/plugins/catalog)"
fi

if [[ -n "$REGISTERED_SHA" && "$REGISTERED_SHA" != "$SHA" ]] && ((!REPLACE)); then
  die "$NAME $VERSION is registered already with sha256 $REGISTERED_SHA, and this binary is $SHA: a different build under the same version. Register it under its own version, or pass -replace to overwrite (mounts running $VERSION then run the new binary after a reload)"
fi

args=(plugin register -sha256="$SHA" -version="$VERSION" -command="$COMMAND")
((ALLOW_SET)) && args+=(-env="PURE1_ALLOWED_TOKEN_HOSTS=$ALLOW_HOSTS")
args+=(secret "$NAME")

set +e
out="$("$VAULT" "${args[@]}" 2>&1)"
rc=$?
set -e
if ((rc != 0)); then
  hint=""
  case "$out" in
    *"version mismatch"*) hint="the binary reports another version than $VERSION: register it with the version it was built with (make release and make build stamp VERSION's)" ;;
    *"no such file"* | *"could not find"* | *"not found in"*) hint="copy the binary into plugin_directory of every Vault server as $COMMAND first" ;;
    *"permission denied"* | *"403"*) hint="the token needs sudo on sys/plugins/catalog" ;;
    *"checksums did not match"* | *"sha256"*) hint="the file $COMMAND in plugin_directory is not the one whose checksum was given: copy this release's binary there" ;;
  esac
  die "vault plugin register failed: $(tr '\n' ' ' <<<"$out")${hint:+
  fix: $hint}"
fi

# Read it back: the catalog must now hold exactly this checksum.
got="$("$VAULT" plugin info -format=json -version="$VERSION" secret "$NAME" 2>&1)" ||
  die "registered, but reading it back failed: $got"
got_sha="$(sed -n 's/^ *"sha256": *"\([0-9a-fA-F]*\)".*/\1/p' <<<"$got" | head -n 1)"
[[ "${got_sha,,}" == "$SHA" ]] || die "registered, but the catalog lists sha256 '$got_sha' for $NAME $VERSION, not $SHA"

if [[ "$REGISTERED_SHA" == "$SHA" ]]; then
  say "$NAME $VERSION was registered already with sha256 $SHA: registration refreshed"
else
  say "registered $NAME $VERSION: sha256 $SHA from $SOURCE, command $COMMAND"
fi
if ((ALLOW_SET)); then
  say "  env PURE1_ALLOWED_TOKEN_HOSTS=$ALLOW_HOSTS"
fi
say "next: vault secrets enable -path=pure1 -plugin-version=$VERSION $NAME"
say "  or, to upgrade a mount: vault secrets tune -plugin-version=$VERSION pure1 && vault plugin reload -plugin=$NAME -scope=global"
