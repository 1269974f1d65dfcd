#!/usr/bin/env bash
# make release: the release's artifacts in dist/, built by GoReleaser (the v2
# release pinned in tools/goreleaser/go.mod, run as a Go tool: its compile is
# kept in the Go build cache) from .goreleaser.yaml.
#
#   HEAD tagged, tree clean   the release of that tag (VERSION must name it)
#   otherwise                 a snapshot of the work tree, versioned as VERSION
#
# Nothing is published either way (that is .github/workflows/release.yml's).
# dist/ then holds, per target, the archive and the bare plugin binary under
# its release name, and SHA256SUMS, checked here with sha256sum -c.
#
# Environment: GO (default go).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need git jq sha256sum

GO="${GO:-go}"
cd "$ROOT"
[[ -r VERSION ]] || die "VERSION is missing: it holds the version to release, such as v0.1.0"
VERSION="$(tr -d '[:space:]' <VERSION)"
[[ "$VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] ||
  die "VERSION holds '$VERSION': write a semantic version with its v, such as v0.1.0"
git rev-parse --verify -q HEAD >/dev/null || die "GoReleaser needs a git checkout with at least one commit"

mode=(--snapshot)
what="snapshot of the work tree as $VERSION"
if tag="$(git describe --exact-match --tags HEAD 2>/dev/null)"; then
  if [[ -z "$(git status --porcelain)" ]]; then
    mode=("--skip=publish,announce")
    what="release $tag"
  else
    warn "HEAD is tagged $tag, but the tree has changes: building a snapshot (commit or stash them for the release)"
  fi
fi

# Every timestamp in the artifacts is the commit's, whatever the tags:
# GoReleaser's .CommitTimestamp is empty in a snapshot without tags.
SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)"
PURE1_COMMIT_DATE="$(git log -1 --format=%cI)"
export SOURCE_DATE_EPOCH PURE1_COMMIT_DATE

step "GoReleaser: $what"
began=$SECONDS
"$GO" tool -modfile="$ROOT/tools/goreleaser/go.mod" goreleaser release --clean "${mode[@]}" 2>&1 |
  sed 's/^/    /'
ok "built in $((SECONDS - began))s"

# GoReleaser lists the bare binaries under their release names but leaves
# them in its build directories; put them beside SHA256SUMS, as a release's
# download page has them.
jq -r '.[] | select(.type == "Binary" and .extra.Format == "binary") | [.path, .name] | @tsv' dist/artifacts.json |
  while IFS=$'\t' read -r path name; do
    cp -p "$path" "dist/$name"
  done

(cd dist && sha256sum --quiet --strict -c SHA256SUMS) || die "dist/SHA256SUMS does not match the files it lists"
ok "dist/SHA256SUMS verified ($(wc -l <dist/SHA256SUMS) files):"
while read -r _ name; do
  info "$(printf '%10s  %s' "$(stat -c %s "dist/$name")" "$name")"
done <dist/SHA256SUMS
