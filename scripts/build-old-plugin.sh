#!/usr/bin/env bash
# Builds the plugin as the last release shipped it, from a pinned commit of
# this repository, for the upgrade tests (backend/e2e/upgrade_test.go): they
# fill a Vault with what that build stores, then upgrade to the working tree's
# build and downgrade back.
#
#   scripts/build-old-plugin.sh     prints the directory holding the built
#                                   vault-plugin-secrets-pure1, its SHA256SUMS,
#                                   and COMMIT and VERSION (one line each)
#
# The source comes from git (git archive of the commit into a temporary
# directory): the working tree is not touched, so this runs while anything is
# being edited. The binary is cached per user outside the clone, keyed by
# commit and version, so a fresh clone (as CI makes every run) builds it once
# per machine; later runs print the cached directory at once.
#
# Environment:
#   PURE1_OLD_COMMIT    the commit to build (default 99c4d42, the last release)
#   PURE1_OLD_VERSION   the version stamped into it (default v0.1.0, what that release reported)
#   PURE1_CACHE_DIR     the cache (default ${XDG_CACHE_HOME:-~/.cache}/vault-plugin-secrets-pure1)
#   GO                  the go command (default go)
#
# A shallow clone may not hold the commit: then this fails and says how to
# fetch it. It never fetches anything itself.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
COMMIT="${PURE1_OLD_COMMIT:-99c4d42}"
VERSION="${PURE1_OLD_VERSION:-v0.1.0}"
GO="${GO:-go}"
PKG="github.com/pure1vault/vault-plugin-secrets-pure1"
PLUGIN="vault-plugin-secrets-pure1"
CACHE_DIR="${PURE1_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-secrets-pure1}"

need git flock tar sha256sum
[[ "$VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$ ]] ||
  die "PURE1_OLD_VERSION=$VERSION is not a semantic version such as v0.1.0 (Vault registers plugins by it)"
git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1 ||
  die "$ROOT is not a git clone: the upgrade tests build the last release ($COMMIT) from its history; clone the repository with git"

if ! full="$(git -C "$ROOT" rev-parse --verify --quiet "$COMMIT^{commit}")"; then
  if [[ "$(git -C "$ROOT" rev-parse --is-shallow-repository)" == true ]]; then
    die "commit $COMMIT (the release the upgrade tests start from) is not in this shallow clone: run git fetch --unshallow (or clone without --depth; in GitHub Actions, actions/checkout with fetch-depth: 0)"
  fi
  die "commit $COMMIT (PURE1_OLD_COMMIT) is not in this repository"
fi

out="$CACHE_DIR/old-plugin/$full-$VERSION"
if [[ -x "$out/$PLUGIN" && -f "$out/SHA256SUMS" ]]; then
  echo "$out"
  exit 0
fi

mkdir -p "$CACHE_DIR/old-plugin"
# Two test binaries (e2e and cluster) may ask at once: one builds, the other waits.
exec 9>"$CACHE_DIR/old-plugin/.lock"
flock 9
if [[ -x "$out/$PLUGIN" && -f "$out/SHA256SUMS" ]]; then
  echo "$out"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
t0=$SECONDS
echo "==> Building $PLUGIN $VERSION from commit ${full:0:12} (the last release) into $out" >&2
git -C "$ROOT" archive --format=tar "$full" | tar -x -C "$work/" ||
  die "git archive $full failed"
[[ -f "$work/go.mod" ]] || die "commit ${full:0:12} has no go.mod at its root: not a commit of this plugin"
# GOWORK=off: a go.work above the temporary directory must not change what
# the old go.mod pins. GOFLAGS=-mod=readonly: build what go.sum says, or fail.
(cd "$work" && GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=0 "$GO" build -trimpath \
  -ldflags "-s -w -X $PKG/backend.Version=$VERSION" \
  -o "$work/bin/$PLUGIN" "./cmd/$PLUGIN") >&2 ||
  die "building $PLUGIN at ${full:0:12} failed (see above); its modules come from the Go module proxy"

# Into place in one rename, so that a build that fails half-way leaves no
# directory that looks complete.
tmp="$out.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
mv "$work/bin/$PLUGIN" "$tmp/$PLUGIN"
(cd "$tmp" && sha256sum "$PLUGIN" >SHA256SUMS)
echo "$full" >"$tmp/COMMIT"
echo "$VERSION" >"$tmp/VERSION"
rm -rf "$out"
mv "$tmp" "$out"
echo "    built in $((SECONDS - t0))s" >&2
echo "$out"
