package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestThroughput is the real-Vault half of `make bench` (PURE1_BENCH=1): the
// same 8 concurrent keep-alive clients against Vault's own transit/sign with
// an rsa-2048 key, and against pure1/creds/<jwt role>, interleaved in one run
// so the machine's state affects both alike. It also measures what Pure1 sees:
// exchanges in flight for concurrent reads, and exchanges per reads with token
// reuse. It reports figures; it asserts only that requests succeed.
func TestThroughput(t *testing.T) {
	if os.Getenv("PURE1_BENCH") != "1" {
		t.Skip("set PURE1_BENCH=1 (make bench) to run the throughput benchmark")
	}
	const clients = 8
	phase := envDuration("PURE1_BENCH_PHASE", 8*time.Second)
	rounds := 2

	emu := StartEmulator(t)
	v := StartVaultDev(t)
	Bootstrap(t, v, emu)
	v.MustCLI(t, "secrets", "enable", "transit")
	v.MustCLI(t, "write", "-f", "transit/keys/bench", "type=rsa-2048")

	signBody, _ := json.Marshal(map[string]string{"input": "cHVyZTEgYmVuY2htYXJr"}) // "pure1 benchmark"
	transit := loadTarget{name: "transit/sign (rsa-2048)", method: http.MethodPost, path: "/v1/transit/sign/bench", body: signBody}
	creds := loadTarget{name: "pure1/creds/readonly-jwt", method: http.MethodGet, path: "/v1/pure1/creds/readonly-jwt"}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	// Warm both paths (plugin start, key load, connection pool).
	for _, tg := range []loadTarget{transit, creds} {
		runLoad(t, client, v, tg, clients, 2*time.Second)
	}
	results := map[string]*loadResult{}
	for i := 0; i < rounds; i++ {
		for _, tg := range []loadTarget{transit, creds} {
			r := runLoad(t, client, v, tg, clients, phase)
			if prev, ok := results[tg.name]; ok {
				prev.merge(r)
			} else {
				results[tg.name] = r
			}
		}
	}
	tr, cr := results[transit.name], results[creds.name]
	ratio := cr.rps() / tr.rps()

	// What Pure1 sees: 32 concurrent reads of an access_token role, then 200
	// reads of a role with token reuse.
	emu.ClearFaults(t)
	v.MustCLI(t, "write", "pure1/roles/readonly-reuse", "config=main", "reuse_access_token=true")
	before := emu.Stats(t)
	// A 300 ms delay on the exchange makes the 32 reads overlap it for sure.
	emu.Fault(t, map[string]any{"kind": "delay", "delay": "300ms", "count": 1})
	// Its own client: the load client's 8-connection cap would let the reads
	// arrive in batches rather than all at once.
	wide := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	concurrent := runFixed(t, wide, v, loadTarget{method: http.MethodGet, path: "/v1/pure1/creds/readonly"}, 32, 32)
	mid := emu.Stats(t)
	reuse := runFixed(t, client, v, loadTarget{method: http.MethodGet, path: "/v1/pure1/creds/readonly-reuse"}, clients, 200)
	after := emu.Stats(t)

	exchConcurrent := mid["token_requests"] - before["token_requests"]
	exchReuse := after["token_requests"] - mid["token_requests"]

	var b strings.Builder
	fmt.Fprintf(&b, "| measurement (Vault v1.21.0 dev server, %d clients, %d x %s per side) | value |\n|---|---|\n", clients, rounds, phase)
	fmt.Fprintf(&b, "| baseline: transit/sign rsa-2048 | %.0f req/s (p50 %s, %d errors) |\n", tr.rps(), tr.p50(), tr.errors)
	fmt.Fprintf(&b, "| pure1/creds/readonly-jwt | %.0f req/s (p50 %s, %d errors) |\n", cr.rps(), cr.p50(), cr.errors)
	fmt.Fprintf(&b, "| **ratio creds/transit** (target >= 1.5) | **%.2fx** |\n", ratio)
	fmt.Fprintf(&b, "| 32 concurrent reads of an access_token role | %d exchange(s), max %d in flight at Pure1, %d errors |\n",
		exchConcurrent, mid["max_in_flight"], concurrent.errors)
	fmt.Fprintf(&b, "| 200 reads of a reuse_access_token role | %d exchange(s), %d errors |\n", exchReuse, reuse.errors)
	t.Log("\n" + b.String())
	if out := os.Getenv("PURE1_BENCH_OUT"); out != "" {
		if err := os.WriteFile(filepath.Clean(out), []byte(b.String()), 0o644); err != nil {
			t.Errorf("writing %s: %v", out, err)
		}
	}
	if tr.errors+cr.errors+concurrent.errors+reuse.errors > 0 {
		t.Errorf("requests failed: transit %d, creds %d, concurrent %d, reuse %d (first: %s)",
			tr.errors, cr.errors, concurrent.errors, reuse.errors, firstNonEmpty(tr.firstErr, cr.firstErr, concurrent.firstErr, reuse.firstErr))
	}
}

type loadTarget struct {
	name, method, path string
	body               []byte
}

type loadResult struct {
	ok, errors int
	elapsed    time.Duration
	latencies  []time.Duration
	firstErr   string
}

func (r *loadResult) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

func (r *loadResult) p50() time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), r.latencies...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2].Round(10 * time.Microsecond)
}

func (r *loadResult) merge(o *loadResult) {
	r.ok += o.ok
	r.errors += o.errors
	r.elapsed += o.elapsed
	r.latencies = append(r.latencies, o.latencies...)
	if r.firstErr == "" {
		r.firstErr = o.firstErr
	}
}

// runLoad keeps `clients` workers busy on tg for d.
func runLoad(t testing.TB, c *http.Client, v *Vault, tg loadTarget, clients int, d time.Duration) *loadResult {
	deadline := time.Now().Add(d)
	return drive(t, c, v, tg, clients, func(int64) bool { return time.Now().Before(deadline) })
}

// runFixed sends exactly n requests from `clients` workers.
func runFixed(t testing.TB, c *http.Client, v *Vault, tg loadTarget, clients, n int) *loadResult {
	return drive(t, c, v, tg, clients, func(i int64) bool { return i < int64(n) })
}

func drive(t testing.TB, c *http.Client, v *Vault, tg loadTarget, clients int, more func(int64) bool) *loadResult {
	t.Helper()
	var (
		mu     sync.Mutex
		res    = &loadResult{}
		issued atomic.Int64
		wg     sync.WaitGroup
	)
	start := time.Now()
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			ok, bad := 0, 0
			firstErr := ""
			for more(issued.Add(1) - 1) {
				t0 := time.Now()
				err := doRequest(c, v, tg)
				if err != nil {
					bad++
					if firstErr == "" {
						firstErr = err.Error()
					}
					continue
				}
				ok++
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			res.ok += ok
			res.errors += bad
			res.latencies = append(res.latencies, lat...)
			if res.firstErr == "" {
				res.firstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

func doRequest(c *http.Client, v *Vault, tg loadTarget) error {
	var body io.Reader
	if tg.body != nil {
		body = bytes.NewReader(tg.body)
	}
	req, err := http.NewRequest(tg.method, v.Addr+tg.path, body)
	if err != nil {
		return err
	}
	req.Header.Set("X-Vault-Token", v.Token)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: HTTP %d: %.200s", tg.method, tg.path, resp.StatusCode, b)
	}
	return nil
}

func envDuration(name string, def time.Duration) time.Duration {
	if s := os.Getenv(name); s != "" {
		if d, err := time.ParseDuration(s); err == nil {
			return d
		}
		if n, err := strconv.Atoi(s); err == nil {
			return time.Duration(n) * time.Second
		}
	}
	return def
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
