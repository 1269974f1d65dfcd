package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStaticThroughput is the static-role half of `make bench`
// (PURE1_BENCH=1), on one Vault dev server, 8 keep-alive clients:
//   - static-creds reads/s beside kv-v2 reads/s, interleaved, and beside the
//     cheapest read this plugin serves (roles/<name>, from its cache): kv-v2
//     is built into Vault, while every read of an external plugin also
//     crosses Vault's gRPC plugin channel, which the floor measures;
//   - Vault's resident memory growth over 50,000 static-creds reads beside
//     the same for creds/ (which leaves a lease per read);
//   - the Pure1 exchanges 50,000 reads over 3 static roles cost.
//
// It reports figures; it asserts only that requests succeed.
func TestStaticThroughput(t *testing.T) {
	if os.Getenv("PURE1_BENCH") != "1" {
		t.Skip("set PURE1_BENCH=1 (make bench) to run the throughput benchmark")
	}
	const clients, reads = 8, 50000
	phase := envDuration("PURE1_BENCH_PHASE", 8*time.Second)
	rounds := 2

	emu := StartEmulator(t)
	v := StartVaultDev(t)
	Bootstrap(t, v, emu)
	v.MustCLI(t, "kv", "put", "secret/bench", "token=not-a-secret-just-a-value-of-similar-size")
	before := emu.Stats(t)
	for i := 1; i <= 3; i++ {
		v.MustCLI(t, "write", fmt.Sprintf("pure1/static-roles/fleet%d", i), "config=main", "rotation_period=1h")
	}

	kv := loadTarget{name: "secret/data/bench (kv-v2)", method: http.MethodGet, path: "/v1/secret/data/bench"}
	static := loadTarget{name: "pure1/static-creds/fleet1", method: http.MethodGet, path: "/v1/pure1/static-creds/fleet1"}
	floor := loadTarget{name: "pure1/roles/readonly", method: http.MethodGet, path: "/v1/pure1/roles/readonly"}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	for _, tg := range []loadTarget{kv, static, floor} {
		runLoad(t, client, v, tg, clients, 2*time.Second)
	}
	results := map[string]*loadResult{}
	for range rounds {
		for _, tg := range []loadTarget{kv, static, floor} {
			r := runLoad(t, client, v, tg, clients, phase)
			if prev, ok := results[tg.name]; ok {
				prev.merge(r)
			} else {
				results[tg.name] = r
			}
		}
	}
	kr, sr, fr := results[kv.name], results[static.name], results[floor.name]

	// Memory: 50,000 static reads over the 3 roles, then 50,000 creds reads.
	rss0 := vaultRSS(t, v)
	var staticErrs int
	for i := 1; i <= 3; i++ {
		r := runFixed(t, client, v, loadTarget{method: http.MethodGet, path: fmt.Sprintf("/v1/pure1/static-creds/fleet%d", i)}, clients, reads/3+1)
		staticErrs += r.errors
	}
	rss1 := vaultRSS(t, v)
	afterStatic := emu.Stats(t)
	creds := runFixed(t, client, v, loadTarget{method: http.MethodGet, path: "/v1/pure1/creds/readonly-jwt"}, clients, reads)
	rss2 := vaultRSS(t, v)

	exchanges := afterStatic["tokens_issued"] - before["tokens_issued"]
	var b strings.Builder
	fmt.Fprintf(&b, "\n| static roles (Vault v1.21.0 dev server, %d clients, %d x %s per side) | value |\n|---|---|\n", clients, rounds, phase)
	fmt.Fprintf(&b, "| baseline: kv-v2 read | %.0f req/s (p50 %s, %d errors) |\n", kr.rps(), kr.p50(), kr.errors)
	fmt.Fprintf(&b, "| pure1/static-creds read | %.0f req/s (p50 %s, %d errors) |\n", sr.rps(), sr.p50(), sr.errors)
	fmt.Fprintf(&b, "| **ratio static-creds/kv-v2** (target >= 0.9) | **%.2fx** |\n", sr.rps()/kr.rps())
	fmt.Fprintf(&b, "| floor of an external plugin: pure1/roles read (cached, no work) | %.0f req/s (p50 %s, %d errors) |\n", fr.rps(), fr.p50(), fr.errors)
	fmt.Fprintf(&b, "| ratio static-creds/plugin floor | %.2fx |\n", sr.rps()/fr.rps())
	fmt.Fprintf(&b, "| Vault RSS growth over %d static-creds reads (target < 20 MB) | **%.1f MB** |\n", reads, float64(rss1-rss0)/1e6)
	fmt.Fprintf(&b, "| Vault RSS growth over %d creds/<jwt role> reads (a lease each) | %.1f MB |\n", reads, float64(rss2-rss1)/1e6)
	fmt.Fprintf(&b, "| Pure1 exchanges for %d reads over 3 static roles (target 3) | **%d** |\n", reads, exchanges)
	t.Log("\n" + b.String())
	if out := os.Getenv("PURE1_BENCH_STATIC_OUT"); out != "" {
		if err := os.WriteFile(filepath.Clean(out), []byte(b.String()), 0o644); err != nil {
			t.Errorf("writing %s: %v", out, err)
		}
	}
	if kr.errors+sr.errors+fr.errors+staticErrs+creds.errors > 0 {
		t.Errorf("requests failed: kv %d, static %d, static (memory) %d, creds %d (first: %s)",
			kr.errors, sr.errors, staticErrs, creds.errors, firstNonEmpty(kr.firstErr, sr.firstErr, creds.firstErr))
	}
}

// vaultRSS is the Vault server's resident set size in bytes.
func vaultRSS(t *testing.T, v *Vault) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", v.Proc().Pid()))
	if err != nil {
		t.Fatalf("reading Vault's memory: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb * 1024
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", v.Proc().Pid())
	return 0
}
