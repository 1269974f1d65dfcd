#!/usr/bin/env bash
# make bench: every performance figure of the project, each ratio beside the
# baseline measured in the same run on the same machine.
#
#   1. Backend (go test -bench): a creds/<jwt role> read through HandleRequest
#      vs one golang-jwt RS256 signature with the same key, when every read
#      must sign (the clock moves a second per read) and when it need not.
#   2. Pure1 side: the plugin's overhead over the emulator's own round trip.
#   3. Through a real Vault v1.21.0 dev server, 8 concurrent clients:
#      pure1/creds/<jwt role> vs Vault's own transit/sign (rsa-2048), plus the
#      exchanges Pure1 sees for concurrent and reusing readers.
#   4. Static roles through a real Vault: static-creds vs kv-v2 reads/s, Vault's
#      memory over 50,000 static reads beside 50,000 leased creds reads, and
#      the exchanges 50,000 reads over 3 static roles cost.
#   5. API-token leases through a real Vault, on each kind: leases issued and
#      revoked per second beside the same user cycle made with the array's
#      own calls, array calls per lease, admin logins per 1,000 leases.
#
# Nothing here asserts a time: it measures and prints.
#   BENCH_TIME=2s         go test -benchtime for part 1
#   PURE1_BENCH_PHASE=8s  length of each real-Vault load phase (2 rounds per side)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH_TIME="${BENCH_TIME:-2s}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

echo "==> 1-2. Backend benchmarks (go test -bench, benchtime $BENCH_TIME)"
go test -run '^$' -bench 'BenchmarkGolangJWTSign$|BenchmarkCredsJWTFreshSignature$|BenchmarkCredsJWTSameSecond$|BenchmarkCredsAccessTokenReuse$|BenchmarkExchangeOverhead$|BenchmarkStaticCredsRead$' \
  -benchtime "$BENCH_TIME" -benchmem ./backend/ | tee "$out/backend.txt"

nsop() { awk -v b="$1" '$1 ~ "^"b"(-[0-9]+)?$" { for (i=1;i<=NF;i++) if ($(i+1)=="ns/op") { print $i; exit } }' "$out/backend.txt"; }
metric() { awk -v b="$1" -v m="$2" '$1 ~ "^"b"(-[0-9]+)?$" { for (i=1;i<=NF;i++) if ($(i+1)==m) { print $i; exit } }' "$out/backend.txt"; }
base="$(nsop BenchmarkGolangJWTSign)"
fresh="$(nsop BenchmarkCredsJWTFreshSignature)"
same="$(nsop BenchmarkCredsJWTSameSecond)"
reuse="$(nsop BenchmarkCredsAccessTokenReuse)"
static="$(nsop BenchmarkStaticCredsRead)"
rawp50="$(metric BenchmarkExchangeOverhead raw-p50-ns)"
credsp50="$(metric BenchmarkExchangeOverhead creds-p50-ns)"
overhead="$(metric BenchmarkExchangeOverhead overhead-p50-ns)"

echo
echo "==> 3-4. Through a real Vault (this takes a few minutes)"
PURE1_BENCH=1 PURE1_BENCH_OUT="$out/vault.md" PURE1_BENCH_STATIC_OUT="$out/static.md" PURE1_BENCH_APITOKEN_OUT="$out/apitoken.md" \
  VAULT_BIN="${VAULT_BIN:-$ROOT/bin/vault}" PURE1_BIN_DIR="$ROOT/bin" \
  go test -count=1 -timeout 20m -run '^TestThroughput$|^TestStaticThroughput$|^TestAPITokenThroughput$' ./backend/e2e/ >"$out/vault.log" 2>&1 ||
  { cat "$out/vault.log"; echo "real-Vault benchmark failed" >&2; exit 1; }

printf '\n## Results (%s, %s cores, %s)\n\n' "$(date -u +%F)" "$(nproc)" "$(go version | awk '{print $3}')"
printf '| backend (go test -bench) | ns/op | ratio to baseline |\n|---|---|---|\n'
printf '| baseline: golang-jwt RS256 sign, 2048-bit key | %s | 1.00 |\n' "$base"
awk -v b="$base" -v v="$fresh" 'BEGIN { printf "| creds/<jwt role> via HandleRequest, fresh signature every read (target <= 1.1) | %s | **%.3f** |\n", v, v/b }'
awk -v b="$base" -v v="$same" 'BEGIN { printf "| creds/<jwt role>, same second (byte-identical JWT reused) | %s | %.4f |\n", v, v/b }'
awk -v b="$base" -v v="$reuse" 'BEGIN { printf "| creds/<access_token role> with reuse_access_token | %s | %.4f |\n", v, v/b }'
awk -v b="$base" -v v="$static" 'BEGIN { printf "| static-creds/<name>, token stored | %s | %.4f |\n", v, v/b }'
echo
printf '| Pure1 exchange, p50 over loopback | value |\n|---|---|\n'
awk -v r="$rawp50" -v c="$credsp50" -v o="$overhead" 'BEGIN {
  printf "| baseline: emulator round trip (POST, keep-alive) | %.3f ms |\n", r/1e6
  printf "| creds/<access_token role> read through HandleRequest | %.3f ms |\n", c/1e6
  printf "| **plugin overhead** (target <= 1 ms) | **%.3f ms** |\n", o/1e6 }'
echo
cat "$out/vault.md"
cat "$out/static.md"
cat "$out/apitoken.md"
