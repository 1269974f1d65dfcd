#!/usr/bin/env bash
# Builds the pinned Vault server from source (there is no Vault download or
# Docker engine on our machines) and links it at bin/vault.
#
# The binary lives in a per-user cache outside the clone, so a fresh clone (as
# CI makes every run) finds it instantly; only the very first build on a
# machine pays the ~20 minutes it takes on 2 cores.
#
#   VAULT_BIN=/path/to/vault   use that binary; build nothing.
#   VAULT_VERSION=v1.21.0      the pinned version (v1.21.4 does not build this
#                              way: its go.mod does not pin the sdk/api it needs).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VAULT_VERSION="${VAULT_VERSION:-v1.21.0}"
CACHE_DIR="${PURE1_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-secrets-pure1}"
CACHED="$CACHE_DIR/vault-$VAULT_VERSION/vault"
LINK="$ROOT/bin/vault"

if [[ -n "${VAULT_BIN:-}" ]]; then
  [[ -x "$VAULT_BIN" ]] || { echo "VAULT_BIN=$VAULT_BIN is not an executable file" >&2; exit 1; }
  echo "$VAULT_BIN"
  exit 0
fi

if [[ ! -x "$CACHED" ]]; then
  mkdir -p "$(dirname "$CACHED")"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  {
    echo "==> Building Vault $VAULT_VERSION from source into $CACHED"
    echo "    The first build takes about 20 minutes on 2 cores; later runs reuse it."
  } >&2
  cd "$work"
  go mod init pure1.local/vaultbuild >/dev/null 2>&1
  echo "==> Resolving modules (go get github.com/hashicorp/vault@$VAULT_VERSION)" >&2
  GOFLAGS=-mod=mod go get "github.com/hashicorp/vault@$VAULT_VERSION" >&2
  echo "==> Compiling (a line every 100 packages)" >&2
  # -v names each package as it is compiled: a cheap progress bar.
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -v -trimpath -ldflags "-s -w" \
      -o "$CACHED.tmp" github.com/hashicorp/vault 2>&1 |
    awk '{ n++; if (n % 100 == 0) { printf "    ... %d packages\n", n; fflush() } }
         /^#|error|cannot|undefined/ { print; fflush() }' >&2
  [[ -x "$CACHED.tmp" ]] || { echo "Vault build failed (see above)" >&2; exit 1; }
  mv "$CACHED.tmp" "$CACHED"
  echo "==> Built $("$CACHED" version)" >&2
fi

mkdir -p "$ROOT/bin"
ln -sf "$CACHED" "$LINK"
echo "$LINK"
