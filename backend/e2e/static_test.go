package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// staticSetup is a Vault with the plugin against an emulator whose tokens
// live 90 s, and static role fleet refreshing every 30 s.
func staticSetup(t *testing.T) (*Vault, *Emulator) {
	t.Helper()
	e := StartEmulator(t, "-token-lifetime", "90s")
	v := StartVaultDev(t)
	Bootstrap(t, v, e)
	v.MustCLI(t, "write", Mount+"/static-roles/fleet", "config=main", "rotation_period=30s")
	return v, e
}

// TestStaticCreds reads static-creds/fleet 1,000 times from 8 clients: every
// read is served the stored token, no lease is created, and Pure1 sees one
// exchange per refresh however many read. With nobody reading, the token is
// still replaced on schedule.
func TestStaticCreds(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	v, e := staticSetup(t)

	first := v.MustCLIJSON(t, "read", "-format=json", Mount+"/static-creds/fleet")
	if id, dur := jget(first, "lease_id"), fmt.Sprint(jget(first, "lease_duration")); id != "" || dur != "0" {
		t.Errorf("static-creds carries a lease: lease_id %v, lease_duration %v", id, dur)
	}
	e.MustCallAPI(t, jstr(t, first, "data", "access_token"))
	if ttl := jint(t, first, "data", "ttl"); ttl < 0 || ttl > 30 {
		t.Errorf("ttl = %d, want 0..30 (the rotation period)", ttl)
	}
	if p := jint(t, first, "data", "rotation_period"); p != 30 {
		t.Errorf("rotation_period = %d, want 30", p)
	}

	before := e.Stats(t)
	start := time.Now()
	const clients, perClient = 8, 125
	var (
		mu     sync.Mutex
		errs   []string
		tokens = map[string]bool{}
	)
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perClient {
				code, body, err := v.Request(context.Background(), v.Token, http.MethodGet, "/v1/"+Mount+"/static-creds/fleet", nil)
				mu.Lock()
				if err != nil || code != http.StatusOK {
					errs = append(errs, fmt.Sprintf("HTTP %d %v %v", code, err, body))
				} else {
					tokens[jget(body, "data", "access_token").(string)] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	after := e.Stats(t)
	if len(errs) > 0 {
		t.Fatalf("%d of %d reads failed, first: %s", len(errs), clients*perClient, errs[0])
	}
	exchanges := after["tokens_issued"] - before["tokens_issued"]
	refreshes := int64(elapsed/(30*time.Second)) + 1
	t.Logf("%d reads in %s: %d distinct token(s), %d exchange(s) at Pure1", clients*perClient, elapsed.Round(time.Millisecond), len(tokens), exchanges)
	if exchanges > refreshes {
		t.Errorf("%d exchanges for %d reads over %s: want at most %d (one per refresh)", exchanges, clients*perClient, elapsed, refreshes)
	}
	for tok := range tokens {
		e.MustCallAPI(t, tok)
	}

	// No lease was created by any of those reads.
	code, body := v.HTTP(t, "LIST", "/v1/sys/leases/lookup/"+Mount+"/static-creds/fleet/", nil)
	if code != http.StatusNotFound {
		t.Errorf("leases under static-creds/fleet: HTTP %d %v, want 404 (none)", code, body)
	}

	// Nobody reads now: the refresher replaces the token on its own.
	status := v.MustCLIJSON(t, "read", "-format=json", Mount+"/static-roles/fleet")
	last := jstr(t, status, "data", "last_refreshed")
	quiet := e.Stats(t)
	eventually(t, 60*time.Second, 500*time.Millisecond, "a background refresh", func() (bool, string) {
		s := v.MustCLIJSON(t, "read", "-format=json", Mount+"/static-roles/fleet")
		now := jstr(t, s, "data", "last_refreshed")
		return now != last, "last_refreshed still " + now
	})
	if n := e.Stats(t)["tokens_issued"] - quiet["tokens_issued"]; n != 1 {
		t.Errorf("exchanges for one background refresh = %d, want 1", n)
	}
	fresh := v.MustCLIJSON(t, "read", "-format=json", Mount+"/static-creds/fleet")
	if jstr(t, fresh, "data", "last_refreshed") == last {
		t.Errorf("static-creds still serves the old token after the refresh")
	}
	e.MustCallAPI(t, jstr(t, fresh, "data", "access_token"))

	// Refresh on demand, and deletion of the stored token with the role.
	v.MustCLI(t, "write", "-f", Mount+"/static-roles/fleet/refresh")
	v.MustCLI(t, "delete", Mount+"/static-roles/fleet")
	if out, err := v.CLI(t, "read", Mount+"/static-creds/fleet"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("read after delete: %v\n%s", err, out)
	}
}

// TestStaticCredsFaults: Pure1 fails every refresh; readers keep getting the
// current token with a warning until it expires, then a clear 502, never an
// expired token; once Pure1 is back, refreshing resumes by itself.
func TestStaticCredsFaults(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	v, e := staticSetup(t)
	good := v.MustCLIJSON(t, "read", "-format=json", Mount+"/static-creds/fleet")
	tok := jstr(t, good, "data", "access_token")
	expires, err := time.Parse(time.RFC3339, jstr(t, good, "data", "expires_at"))
	if err != nil {
		t.Fatal(err)
	}
	e.Fault(t, map[string]any{"kind": "status", "status": 503, "count": 100000})

	eventually(t, 60*time.Second, 500*time.Millisecond, "a read with a refresh warning", func() (bool, string) {
		r := v.MustCLIJSON(t, "read", "-format=json", Mount+"/static-creds/fleet")
		if got := jstr(t, r, "data", "access_token"); got != tok {
			t.Fatalf("a different token while Pure1 fails")
		}
		w := fmt.Sprint(jget(r, "warnings"))
		return strings.Contains(w, "failed since") && strings.Contains(w, "503"), "warnings " + w
	})

	// Past its expiry the token is never served.
	time.Sleep(time.Until(expires) + time.Second)
	code, body := v.HTTP(t, http.MethodGet, "/v1/"+Mount+"/static-creds/fleet", nil)
	msg := fmt.Sprint(body)
	if code != http.StatusBadGateway || !strings.Contains(msg, "expired at") || strings.Contains(msg, tok) {
		t.Errorf("read after expiry: HTTP %d %s, want 502 saying why and no token", code, msg)
	}

	e.ClearFaults(t)
	eventually(t, 6*time.Minute, time.Second, "refreshing to resume", func() (bool, string) {
		code, _ := v.HTTP(t, http.MethodGet, "/v1/"+Mount+"/static-creds/fleet", nil)
		return code == http.StatusOK, fmt.Sprintf("HTTP %d", code)
	})
	e.MustCallAPI(t, strings.TrimSpace(v.MustCLI(t, "read", "-field=access_token", Mount+"/static-creds/fleet")))
}

// TestStaticAgent runs Vault Agent with the shipped static template: it
// renders the shared token and renders again right after each refresh,
// always the token static-creds serves at that moment.
func TestStaticAgent(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	v, e := staticSetup(t)
	root := RepoRoot(t)
	v.MustCLI(t, "policy", "write", "pure1-creds", filepath.Join(root, "bootstrap", "policy-pure1-creds.hcl"))
	token := strings.TrimSpace(v.MustCLI(t, "token", "create", "-policy=pure1-creds", "-period=1h", "-field=token"))

	dir := t.TempDir()
	hcl, err := os.ReadFile(filepath.Join(root, "bootstrap", "agent.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	// The shipped agent.hcl, rendering the shipped static template instead.
	conf := strings.NewReplacer(`"./agent-template.ctmpl"`, `"./agent-static-template.ctmpl"`,
		`"./pure1-access-token"`, `"./pure1-static-token"`).Replace(string(hcl))
	if conf == string(hcl) {
		t.Fatal("bootstrap/agent.hcl no longer names agent-template.ctmpl and pure1-access-token")
	}
	if err := os.WriteFile(filepath.Join(dir, "agent.hcl"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(root, "bootstrap", "agent-static-template.ctmpl"), filepath.Join(dir, "agent-static-template.ctmpl"), 0o644)
	if err := os.WriteFile(filepath.Join(dir, "agent-token"), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "pure1-static-token")
	agent := startProcessOpts(t, "vault agent",
		[]string{v.Bin, "agent", "-config=agent.hcl", "-log-level=debug"},
		[]string{"VAULT_ADDR=" + v.Addr, "HOME=" + dir}, filepath.Join(dir, "agent.log"),
		procOptions{Dir: dir})
	read := func() string {
		b, _ := os.ReadFile(out)
		return strings.TrimSpace(string(b))
	}

	var renders []string
	for len(renders) < 3 {
		prev := ""
		if len(renders) > 0 {
			prev = renders[len(renders)-1]
		}
		var cur string
		eventually(t, 45*time.Second, 100*time.Millisecond, fmt.Sprintf("render %d", len(renders)+1), func() (bool, string) {
			if agent.Exited() {
				t.Fatalf("vault agent exited: %v\n%s", agent.waitErr, agent.LogTail(40))
			}
			cur = read()
			return strings.Count(cur, ".") == 2 && cur != prev, "file holds the previous token"
		})
		renders = append(renders, cur)
		// What the agent wrote is what every reader gets now.
		if served := strings.TrimSpace(v.MustCLI(t, "read", "-field=access_token", Mount+"/static-creds/fleet")); served != cur {
			t.Errorf("render %d differs from the token static-creds serves", len(renders))
		}
		e.MustCallAPI(t, cur)
	}
	if log := agent.Log(); strings.Contains(log, "[ERROR]") {
		t.Errorf("the agent logged errors:\n%s", agent.LogTail(40))
	}
}
