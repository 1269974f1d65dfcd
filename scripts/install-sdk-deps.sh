#!/usr/bin/env bash
# Install what Pure's Python SDK (py-pure-client, Pure1 client) needs to run,
# from Debian packages, and unpack the SDK into the repo's cache.
#
#   scripts/install-sdk-deps.sh            check, install what is missing, unpack
#   scripts/install-sdk-deps.sh --check    only check; exit 1 and say what is missing
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
# The last line on stdout is the directory to put on PYTHONPATH.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY="${PURE1_PYTHON:-/usr/bin/python3}"
TARBALL="${PURE1_SDK_TARBALL:-$ROOT/../shared/clients/py-pure-client-1.90.0-pure1.tar.gz}"
SDK_DIR="${PURE1_SDK_DIR:-$ROOT/.cache/py-pure-client}"
CHECK_ONLY=0
[[ "${1:-}" == --check ]] && CHECK_ONLY=1

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

if [[ ! -f "$SDK_DIR/pypureclient/pure1/__init__.py" ]]; then
  [[ "$CHECK_ONLY" == 0 ]] || die "the SDK is not unpacked in $SDK_DIR; run scripts/install-sdk-deps.sh"
  [[ -f "$TARBALL" ]] || die "the SDK tarball $TARBALL is missing: it is in ../shared/clients beside the clone, or set PURE1_SDK_TARBALL"
  mkdir -p "$(dirname "$SDK_DIR")"
  tmp="$(mktemp -d "$(dirname "$SDK_DIR")/.sdk.XXXXXX")"
  tar xzf "$TARBALL" -C "$tmp"
  src="$(find "$tmp" -mindepth 2 -maxdepth 2 -type d -name pypureclient -printf '%h\n' | head -1)"
  [[ -n "$src" ]] || { rm -rf "$tmp"; die "$TARBALL holds no pypureclient/ directory"; }
  rm -rf "$SDK_DIR"
  mv "$src" "$SDK_DIR" # a rename: a concurrent reader never sees half a tree
  rm -rf "$tmp"
fi

PYTHONPATH="$SDK_DIR" "$PY" -c 'import pypureclient.pure1' >&2 ||
  die "$PY cannot import pypureclient.pure1 from $SDK_DIR (see the error above)"
echo "$SDK_DIR"
