#!/usr/bin/env bash
# Install what Pure's Python SDK (py-pure-client) needs to run, from Debian
# packages, and unpack the SDK into the repo's cache: its Pure1 client, and
# beside it its FlashArray (REST 2.30) and FlashBlade (REST 2.17) clients.
#
#   scripts/install-sdk-deps.sh                  check, install what is missing, unpack;
#                                                print the Pure1 SDK's directory
#   scripts/install-sdk-deps.sh --arrays         the same; print the arrays SDK's directory
#   scripts/install-sdk-deps.sh --check [--arrays]  only check; exit 1 and say what is missing
#
# Idempotent: a module that already imports is not installed again, and an
# SDK already unpacked is kept. Installing needs root (CI on Debian runs as
# root); without it the script prints the apt-get command to run.
#
# The SDK's modules are imported with $PURE1_PYTHON (default /usr/bin/python3,
# Debian's own interpreter): Debian's python3-* packages are on its path only,
# not on a pyenv or /usr/local python that may come first in $PATH.
#
# The SDK tarball comes from $PURE1_SDK_TARBALL (default
# ../shared/clients/py-pure-client-1.90.0-pure1.tar.gz beside the clone) and is
# unpacked into $PURE1_SDK_DIR (default .cache/py-pure-client, git-ignored).
# The arrays tarball comes from $PURE1_ARRAYS_SDK_TARBALL (default
# ../shared/clients/py-pure-client-1.90.0-arrays.tar.gz) and is unpacked into
# $PURE1_ARRAYS_SDK_DIR (default .cache/py-pure-client-arrays). Both hold a
# pypureclient/, so each has its own directory: put one on PYTHONPATH at a time.
#
# The last line on stdout is the directory to put on PYTHONPATH: the Pure1
# SDK's, or with --arrays the arrays SDK's. Without --arrays a missing arrays
# tarball is only a warning, so the Pure1 SDK alone still installs.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY="${PURE1_PYTHON:-/usr/bin/python3}"
TARBALL="${PURE1_SDK_TARBALL:-$ROOT/../shared/clients/py-pure-client-1.90.0-pure1.tar.gz}"
SDK_DIR="${PURE1_SDK_DIR:-$ROOT/.cache/py-pure-client}"
ARRAYS_TARBALL="${PURE1_ARRAYS_SDK_TARBALL:-$ROOT/../shared/clients/py-pure-client-1.90.0-arrays.tar.gz}"
ARRAYS_SDK_DIR="${PURE1_ARRAYS_SDK_DIR:-$ROOT/.cache/py-pure-client-arrays}"
CHECK_ONLY=0
ARRAYS=0
for arg in "$@"; do
  case "$arg" in
    --check) CHECK_ONLY=1 ;;
    --arrays) ARRAYS=1 ;;
    *) die "unknown argument $arg; use --check and/or --arrays" ;;
  esac
done

# module:package, from the SDK's pyproject.toml dependencies and its imports
# (typing_extensions is imported by every generated client).
DEPS=(
  urllib3:python3-urllib3
  dateutil:python3-dateutil
  pydantic:python3-pydantic
  paramiko:python3-paramiko
  jwt:python3-jwt
  typing_extensions:python3-typing-extensions
)

[[ -x "$PY" ]] || die "$PY not found: install Debian's python3 (apt-get install -y python3) or set PURE1_PYTHON"

# missing_pkgs: the packages of the modules $PY cannot import, in one run.
missing_pkgs() {
  "$PY" - "${DEPS[@]}" <<'PY'
import importlib, sys
missing = []
for dep in sys.argv[1:]:
    mod, pkg = dep.split(":")
    try:
        importlib.import_module(mod)
    except Exception:
        missing.append(pkg)
print(" ".join(missing))
PY
}

missing="$(missing_pkgs)"
if [[ -n "$missing" ]]; then
  if [[ "$CHECK_ONLY" == 1 ]]; then
    die "Pure's SDK needs: $missing (for $PY); run: apt-get update && apt-get install -y $missing"
  fi
  if [[ "$(id -u)" != 0 ]]; then
    die "Pure's SDK needs: $missing (for $PY); as root run: apt-get update && apt-get install -y --no-install-recommends $missing"
  fi
  need apt-get
  step "Installing from Debian: $missing" >&2
  # shellcheck disable=SC2086 # one word per package
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing; } >&2 ||
    die "apt-get could not install $missing; check the Debian mirror is reachable"
  missing="$(missing_pkgs)"
  [[ -z "$missing" ]] || die "installed, but $PY still cannot import the modules of: $missing"
fi

# unpack TARBALL DIR MARKER TARBALL_VAR: unpack TARBALL into DIR unless DIR
# already holds MARKER (a file of the SDK, relative to DIR).
unpack() {
  local tarball="$1" dir="$2" marker="$3" var="$4" tmp src
  [[ ! -f "$dir/$marker" ]] || return 0
  [[ "$CHECK_ONLY" == 0 ]] || die "the SDK is not unpacked in $dir; run scripts/install-sdk-deps.sh"
  [[ -f "$tarball" ]] || die "the SDK tarball $tarball is missing: it is in ../shared/clients beside the clone, or set $var"
  mkdir -p "$(dirname "$dir")"
  tmp="$(mktemp -d "$(dirname "$dir")/.sdk.XXXXXX")"
  tar xzf "$tarball" -C "$tmp"
  src="$(find "$tmp" -mindepth 2 -maxdepth 2 -type d -name pypureclient -printf '%h\n' | head -1)"
  [[ -n "$src" ]] || { rm -rf "$tmp"; die "$tarball holds no pypureclient/ directory"; }
  [[ -f "$src/$marker" ]] || { rm -rf "$tmp"; die "$tarball holds no $marker: is it the right tarball? (set $var)"; }
  rm -rf "$dir"
  mv "$src" "$dir" # a rename: a concurrent reader never sees half a tree
  rm -rf "$tmp"
}

unpack "$TARBALL" "$SDK_DIR" pypureclient/pure1/__init__.py PURE1_SDK_TARBALL
PYTHONPATH="$SDK_DIR" "$PY" -c 'import pypureclient.pure1' >&2 ||
  die "$PY cannot import pypureclient.pure1 from $SDK_DIR (see the error above)"

if [[ "$ARRAYS" == 1 ]]; then
  unpack "$ARRAYS_TARBALL" "$ARRAYS_SDK_DIR" pypureclient/flasharray/__init__.py PURE1_ARRAYS_SDK_TARBALL
  PYTHONPATH="$ARRAYS_SDK_DIR" "$PY" -c 'from pypureclient import flasharray, flashblade' >&2 ||
    die "$PY cannot import pypureclient.flasharray and .flashblade from $ARRAYS_SDK_DIR (see the error above)"
  echo "$ARRAYS_SDK_DIR"
  exit 0
fi

# Offered, not required: the Pure1 SDK's callers need nothing of it.
if [[ -f "$ARRAYS_SDK_DIR/pypureclient/flasharray/__init__.py" ]] ||
  { [[ "$CHECK_ONLY" == 0 && -f "$ARRAYS_TARBALL" ]] && (unpack "$ARRAYS_TARBALL" "$ARRAYS_SDK_DIR" pypureclient/flasharray/__init__.py PURE1_ARRAYS_SDK_TARBALL); }; then
  echo "Pure's FlashArray/FlashBlade SDK: $ARRAYS_SDK_DIR (scripts/install-sdk-deps.sh --arrays prints it)" >&2
else
  warn "Pure's FlashArray/FlashBlade SDK is not unpacked ($ARRAYS_TARBALL missing?); the array SDK tests need it: scripts/install-sdk-deps.sh --arrays"
fi
echo "$SDK_DIR"
