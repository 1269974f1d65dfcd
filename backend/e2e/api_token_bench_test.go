package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	arrayemu "github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray/emulator"
)

// TestAPITokenThroughput is the API-token part of `make bench`
// (PURE1_BENCH=1): on each kind, 8 clients issue and revoke api_token leases
// through a real Vault for a phase, beside a baseline that makes and deletes
// the same users with the array's own REST calls (a kept session, no
// Vault). It reports leases per second, the ratio to the baseline, array
// calls per lease and admin logins per 1,000 leases; it asserts only that
// requests succeed.
func TestAPITokenThroughput(t *testing.T) {
	if os.Getenv("PURE1_BENCH") != "1" {
		t.Skip("set PURE1_BENCH=1 (make bench) to run the throughput benchmark")
	}
	const clients = 8
	phase := envDuration("PURE1_BENCH_PHASE", 8*time.Second)
	var rows []string
	for _, kind := range arrayKinds {
		e := StartArrayEmulatorKind(t, kind, "-quiet", "-max-users", "100000")
		v := StartVaultDevOpts(t, VaultOptions{LogLevel: "warn"})
		if status, resp := v.HTTP(t, "POST", Mount+"/config/arr", arrayConfig(e)); status != 200 {
			t.Fatalf("config: HTTP %d %v", status, resp)
		}
		v.MustCLI(t, "write", Mount+"/roles/bench", "config=arr", "credential_type=api_token", "array_role=readonly", "ttl=10m")
		// The kept session opens here, outside the count.
		warm := v.MustCLIJSON(t, "read", "-format=json", Mount+"/creds/bench")
		v.MustCLI(t, "lease", "revoke", jstr(t, warm, "lease_id"))

		run := func(one func() error) (int, error) {
			ctx, cancel := context.WithTimeout(context.Background(), phase)
			defer cancel()
			var mu sync.Mutex
			n := 0
			var firstErr error
			var wg sync.WaitGroup
			for c := 0; c < clients; c++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						err := one()
						mu.Lock()
						if err != nil && firstErr == nil {
							firstErr = err
						}
						if err == nil {
							n++
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			return n, firstErr
		}
		st0 := e.Stats(t)
		leases, err := run(func() error {
			status, body, err := v.Request(context.Background(), v.Token, "GET", Mount+"/creds/bench", nil)
			if err != nil || status != 200 {
				return fmt.Errorf("read: %d %v %v", status, err, body)
			}
			status, body, err = v.Request(context.Background(), v.Token, "PUT", "sys/leases/revoke", map[string]any{"lease_id": body["lease_id"]})
			if err != nil || status/100 != 2 {
				return fmt.Errorf("revoke: %d %v %v", status, err, body)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		st1 := e.Stats(t)
		calls := 0
		for _, s := range []string{arrayemu.StepAdminsPost, arrayemu.StepAPITokensPost, arrayemu.StepAdminsDelete} {
			calls += st1.Requests[s] - st0.Requests[s]
		}
		logins := st1.SessionsOpened - st0.SessionsOpened

		raw, err := rawUserCycles(t, e, clients, phase)
		if err != nil {
			t.Fatal(err)
		}
		vaultRate, rawRate := float64(leases)/phase.Seconds(), float64(raw)/phase.Seconds()
		rows = append(rows, fmt.Sprintf("| %s | %.0f | %.0f | **%.2f** | %.2f | %.1f |", kind, vaultRate, rawRate, vaultRate/rawRate,
			float64(calls)/float64(leases), 1000*float64(logins)/float64(leases)))
		t.Logf("%s: %d leases issued and revoked through Vault in %s (%d array calls, %d logins); %d users made and deleted raw",
			kind, leases, phase, calls, logins, raw)
		if left := vaultUsers(t, e, "vault-pure1-bench-"); len(left) != 0 {
			t.Errorf("%d users left after the benchmark", len(left))
		}
	}
	table := fmt.Sprintf("\n| API-token leases, %d clients, %s phases | leases/s through Vault (issue + revoke) | baseline: the same user cycle with the array's own calls/s | ratio | array calls per lease (target <= 3) | admin logins per 1,000 leases (target <= 1) |\n|---|---|---|---|---|---|\n%s\n",
		clients, phase, strings.Join(rows, "\n"))
	t.Log(table)
	if out := os.Getenv("PURE1_BENCH_APITOKEN_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(table), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// rawUserCycles makes and deletes users with the array's own REST calls
// (create, API token, delete) over one kept session per client, for phase:
// what one lease costs the array, without Vault.
func rawUserCycles(t *testing.T, e *ArrayEmulator, clients int, phase time.Duration) (int, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(e.CAPEM))
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: clients}}
	ver := e.Version()
	login, tokenParam := "/api/"+ver+"/login", "names"
	if e.Kind == arrayemu.FlashBlade {
		login, tokenParam = "/api/login", "admin_names"
	}
	do := func(method, path, session, body string) (*http.Response, error) {
		req, err := http.NewRequest(method, e.URL+path, strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if session == "" {
			req.Header.Set("api-token", e.APIToken)
		} else {
			req.Header.Set("x-auth-token", session)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return resp, fmt.Errorf("%s %s: HTTP %d", method, path, resp.StatusCode)
		}
		return resp, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), phase)
	defer cancel()
	var mu sync.Mutex
	n := 0
	var firstErr error
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			resp, err := do(http.MethodPost, login, "", "")
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
				return
			}
			session := resp.Header.Get("x-auth-token")
			for i := 0; ctx.Err() == nil; i++ {
				user := fmt.Sprintf("raw-bench-%d-%d", c, i)
				_, err := do(http.MethodPost, "/api/"+ver+"/admins?names="+user, session, `{"password":"Pw-0123456789-raw","role":{"name":"readonly"}}`)
				if err == nil {
					_, err = do(http.MethodPost, "/api/"+ver+"/admins/api-tokens?"+tokenParam+"="+user+"&timeout=600000", session, "")
				}
				if err == nil {
					_, err = do(http.MethodDelete, "/api/"+ver+"/admins?names="+user, session, "")
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					n++
				}
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	return n, firstErr
}
