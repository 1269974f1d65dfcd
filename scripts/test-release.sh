#!/usr/bin/env bash
# make test-release: the release builds, for every target, and reproducibly.
#
#   1. scripts/release.sh into dist/ (what make test-e2e then registers):
#      an archive and a bare binary for each of the five targets, SHA256SUMS
#      verified with sha256sum -c, each archive holding what it should.
#   2. The same release again from a copy of the tree at another path, with
#      its own dist/: every file SHA256SUMS lists, and SHA256SUMS itself,
#      must be the same bytes. (Go's build cache is shared, so this proves
#      the link, stamps, timestamps and archives; 3 proves the compile.)
#   3. The linux/amd64 plugin compiled from nothing (an empty GOCACHE) with
#      make build's flags: the same bytes as the release's, so a build from
#      source, bin/'s plugin and the download are one program.
#
# Prints the time of each build and the artifact sizes. Environment: GO.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need git jq sha256sum tar unzip cmp

GO="${GO:-go}"
cd "$ROOT"
VERSION="$(tr -d '[:space:]' <VERSION)"
NUM="${VERSION#v}"
NAME=vault-plugin-secrets-pure1
TARGETS=(linux_amd64 linux_arm64 darwin_amd64 darwin_arm64 windows_amd64)
fail=0
bad() { printf 'FAIL: %s\n' "$*" >&2; fail=1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/pure1-release-test.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# ---- 1. the release -------------------------------------------------------------

t0=$SECONDS
scripts/release.sh
first=$((SECONDS - t0))

for t in "${TARGETS[@]}"; do
  ext="" arc="tar.gz"
  [[ "$t" == windows_* ]] && ext=".exe" arc="zip"
  bin="${NAME}_${NUM}_${t}${ext}"
  archive="${NAME}_${NUM}_${t}.${arc}"
  for f in "$bin" "$archive"; do
    [[ -f "dist/$f" ]] || bad "dist/$f is missing"
    grep -qE "^[0-9a-f]{64}  $f\$" dist/SHA256SUMS || bad "SHA256SUMS does not list $f"
  done
  [[ -f "dist/$archive" ]] || continue
  if [[ "$arc" == zip ]]; then
    listing="$(unzip -Z1 "dist/$archive" | sort | tr '\n' ' ')"
  else
    listing="$(tar -tzf "dist/$archive" | sort | tr '\n' ' ')"
  fi
  want="$(printf '%s\n' CHANGELOG.md README.md register.sh "$NAME$ext" | sort | tr '\n' ' ')"
  [[ "$listing" == "$want" ]] || bad "$archive holds [$listing], want [$want]"
  # The binary in the archive is the bare one.
  mkdir -p "$WORK/x/$t"
  if [[ "$arc" == zip ]]; then
    unzip -q -o "dist/$archive" "$NAME$ext" -d "$WORK/x/$t"
  else
    tar -xzf "dist/$archive" -C "$WORK/x/$t" "$NAME$ext"
  fi
  cmp -s "$WORK/x/$t/$NAME$ext" "dist/$bin" || bad "the plugin in $archive differs from $bin"
done
n="$(wc -l <dist/SHA256SUMS)"
((n == 2 * ${#TARGETS[@]})) || bad "SHA256SUMS lists $n files, want $((2 * ${#TARGETS[@]}))"
(cd dist && sha256sum --quiet --strict -c SHA256SUMS) || bad "sha256sum -c SHA256SUMS failed"
# The plugin says the version it is registered by (Vault refuses a mismatch;
# the end-to-end tests register it with -version=$VERSION).
grep -aq "$VERSION" "dist/${NAME}_${NUM}_linux_amd64" || bad "the linux/amd64 plugin does not carry $VERSION"

# ---- 2. again, elsewhere ---------------------------------------------------------

step "Building the release again from a copy of the tree in $WORK/tree"
mkdir -p "$WORK/tree"
# Everything git tracks or would track (the work tree as it is, uncommitted
# changes included, as the snapshot above took it), and the repository.
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$WORK/tree"
cp -a .git "$WORK/tree/.git"
t0=$SECONDS
(cd "$WORK/tree" && GO="$GO" scripts/release.sh >"$WORK/second.log" 2>&1) || {
  cat "$WORK/second.log" >&2
  die "the second release build failed"
}
second=$((SECONDS - t0))
same=0
while read -r _ name; do
  if cmp -s "dist/$name" "$WORK/tree/dist/$name"; then
    same=$((same + 1))
  else
    bad "$name differs between the two builds"
  fi
done <dist/SHA256SUMS
cmp -s dist/SHA256SUMS "$WORK/tree/dist/SHA256SUMS" || bad "SHA256SUMS differs between the two builds"
ok "second build: $same of $n artifacts and SHA256SUMS byte-identical"

# ---- 3. the linux/amd64 plugin from nothing --------------------------------------

step "Compiling the linux/amd64 plugin with an empty build cache and make build's flags"
t0=$SECONDS
mkdir -p "$WORK/gocache"
GOCACHE="$WORK/gocache" CGO_ENABLED=0 GOOS=linux GOARCH=amd64 "$GO" build -trimpath -buildvcs=false \
  -ldflags "-s -w -X github.com/pure1vault/vault-plugin-secrets-pure1/backend.Version=$VERSION" \
  -o "$WORK/plugin-cold" ./cmd/vault-plugin-secrets-pure1
cold=$((SECONDS - t0))
if cmp -s "$WORK/plugin-cold" "dist/${NAME}_${NUM}_linux_amd64"; then
  ok "identical to the release's linux/amd64 plugin"
else
  bad "the linux/amd64 plugin compiled from nothing differs from the release's"
fi
chmod -R u+w "$WORK/gocache" 2>/dev/null || true

step "Release build: ${first}s (dist/), again from a copy: ${second}s, linux/amd64 from an empty cache: ${cold}s"
((fail == 0)) || die "the release test failed (see FAIL above)"
echo "release: reproducible, $n artifacts, SHA256SUMS verified"
