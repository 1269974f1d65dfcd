package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	arrayemu "github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray/emulator"
)

// arrayConfig is a managed FlashArray config for e.
func arrayConfig(e *ArrayEmulator) map[string]any {
	return map[string]any{
		"kind": "flasharray", "array_url": e.URL, "ca_cert": e.CAPEM, "username": "pureuser",
		"admin_api_token": e.APIToken, "max_role": "readonly", "access_token_ttl": "1h",
	}
}

// TestArrayManaged registers Vault's own API client on an emulated FlashArray
// over TLS, issues leased and static access tokens that work on the array's
// /api/2.x/arrays, and rotates the client with no person in the middle while
// 8 readers read creds and static-creds over HTTP: no read may fail, every
// read that starts after the rotation returned carries the new client, the
// old client is gone from the array, and new tokens work there.
func TestArrayManaged(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	e := StartArrayEmulator(t, "-quiet", "-wrap-token")
	v := StartVaultDevOpts(t, VaultOptions{LogLevel: "info"})

	status, resp := v.HTTP(t, "POST", Mount+"/config/fa", arrayConfig(e))
	if status != 200 || jget(resp, "data", "managed") != true {
		t.Fatalf("managed registration: HTTP %d %v", status, resp)
	}
	if strings.Contains(fmt.Sprint(resp), e.APIToken) {
		t.Fatal("the config write's answer shows admin_api_token")
	}
	oldClient := jstr(t, resp, "data", "client_id")
	if got := e.Clients(t); fmt.Sprint(got) != "[vault-fa]" {
		t.Fatalf("clients on the array after registration: %v, want [vault-fa] enabled", got)
	}
	read := v.MustCLIJSON(t, "read", "-format=json", Mount+"/config/fa")
	if strings.Contains(fmt.Sprint(read), e.APIToken) || jget(read, "data", "admin_api_token_configured") != true {
		t.Fatalf("config read shows the admin token or not that it is set: %v", read["data"])
	}

	v.MustCLI(t, "write", Mount+"/roles/fa-ops", "config=fa", "username=ops")
	v.MustCLI(t, "write", Mount+"/roles/fa-shared", "config=fa", "username=pureuser", "reuse_access_token=true")
	v.MustCLI(t, "write", Mount+"/static-roles/fa-fleet", "config=fa", "username=pureuser")
	for _, p := range []string{"creds/fa-ops", "creds/fa-shared", "static-creds/fa-fleet"} {
		c := v.MustCLIJSON(t, "read", "-format=json", Mount+"/"+p)
		tok := jstr(t, c, "data", "access_token")
		if st, err := e.Arrays(tok); err != nil || st != 200 {
			t.Fatalf("%s: the token on /api/2.x/arrays: %d %v", p, st, err)
		}
		if p == "creds/fa-ops" {
			if lease := jint(t, c, "lease_duration"); lease <= 0 || lease > 3600 {
				t.Errorf("creds lease %d s, want within the token's hour", lease)
			}
		}
	}

	// ---- the readers --------------------------------------------------------------
	type arrayRead struct {
		start    time.Time
		path     string
		clientID string
		err      string
	}
	paths := []string{"creds/fa-ops", "creds/fa-shared", "static-creds/fa-fleet"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu    sync.Mutex
		reads []arrayRead
		wg    sync.WaitGroup
	)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(reads) }
	for r := 0; r < 8; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				rd := arrayRead{start: time.Now(), path: paths[(r+i)%len(paths)]}
				status, body, err := v.Request(context.Background(), v.Token, "GET", Mount+"/"+rd.path, nil)
				switch {
				case err != nil:
					rd.err = err.Error()
				case status != 200:
					rd.err = fmt.Sprintf("HTTP %d %v", status, body)
				default:
					rd.clientID, _ = jget(body, "data", "app_id").(string)
					if tok, _ := jget(body, "data", "access_token").(string); strings.Count(tok, ".") != 2 {
						rd.err = fmt.Sprintf("no access_token in %v", body)
					}
				}
				mu.Lock()
				reads = append(reads, rd)
				mu.Unlock()
			}
		}(r)
	}
	stopReaders := sync.OnceFunc(func() { cancel(); wg.Wait() })
	defer stopReaders()
	readOn := func(n int) {
		target := count() + n
		eventually(t, 60*time.Second, 5*time.Millisecond, "readers read on", func() (bool, string) {
			return count() >= target, fmt.Sprintf("%d of %d reads", count(), target)
		})
	}
	readOn(200)

	// ---- the rotation: no person, one write -----------------------------------------
	rotStart := time.Now()
	status, resp = v.HTTP(t, "POST", Mount+"/config/fa/rotate", map[string]any{})
	rotated := time.Now()
	if status != 200 || jget(resp, "data", "verified") != true || jget(resp, "data", "previous_api_client_deleted") != true {
		t.Fatalf("rotation: HTTP %d %v", status, resp)
	}
	newClient := jstr(t, resp, "data", "client_id")
	newName := jstr(t, resp, "data", "api_client_name")
	if newClient == oldClient || jget(resp, "data", "previous_client_id") != oldClient {
		t.Fatalf("rotation: client_id %s (was %s), previous %v", newClient, oldClient, jget(resp, "data", "previous_client_id"))
	}
	t.Logf("rotation (create, enable, verifying exchange, promotion, delete of the old client) took %s", rotated.Sub(rotStart).Round(time.Millisecond))
	readOn(300)
	stopReaders()

	var failed, before, after, stale int
	var sample []string
	for _, rd := range reads {
		switch {
		case rd.err != "":
			failed++
			if len(sample) < 5 {
				sample = append(sample, rd.path+": "+rd.err)
			}
		case rd.start.After(rotated):
			after++
			if rd.clientID != newClient {
				stale++
				if len(sample) < 5 {
					sample = append(sample, fmt.Sprintf("%s started %s after the rotation returned, got client %s", rd.path, rd.start.Sub(rotated), rd.clientID))
				}
			}
		case rd.start.Before(rotStart):
			before++
		}
	}
	t.Logf("%d reads by 8 readers: %d before the rotation, %d during, %d after; %d failed; %d after it with the old client",
		len(reads), before, len(reads)-before-after-failed, after, failed, stale)
	if failed > 0 || stale > 0 {
		t.Errorf("%d failed reads, %d stale reads after the rotation; first: %s", failed, stale, strings.Join(sample, "; "))
	}

	if got := e.Clients(t); fmt.Sprint(got) != "["+newName+"]" {
		t.Errorf("clients on the array after the rotation: %v, want only %s (the old client deleted)", got, newName)
	}
	for _, p := range paths {
		c := v.MustCLIJSON(t, "read", "-format=json", Mount+"/"+p)
		if st, err := e.Arrays(jstr(t, c, "data", "access_token")); err != nil || st != 200 {
			t.Errorf("%s after the rotation: the token on /api/2.x/arrays: %d %v", p, st, err)
		}
	}
	if logs := v.proc.Log(); strings.Contains(logs, e.APIToken) {
		t.Error("Vault's log shows the admin API token")
	}
}

// TestArrayRefusals: a ca_cert that did not sign the array's certificate is
// refused with the fix, and a host the registrar did not allow is refused
// before anything is sent; neither stores a config or leaves a client.
func TestArrayRefusals(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	e := StartArrayEmulator(t, "-quiet")
	v := StartVaultDevOpts(t, VaultOptions{LogLevel: "info"})
	other, err := arrayemu.NewTLS()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("wrong ca_cert", func(t *testing.T) {
		body := arrayConfig(e)
		body["ca_cert"] = string(other.CAPEM)
		status, resp := v.HTTP(t, "POST", Mount+"/config/wrong-ca", body)
		msg := fmt.Sprint(resp)
		if status != 400 || !strings.Contains(msg, "check ca_cert") || !strings.Contains(msg, "Nothing was stored") {
			t.Fatalf("HTTP %d %v, want 400 naming ca_cert", status, resp)
		}
		if status, _ := v.HTTP(t, "GET", Mount+"/config/wrong-ca", nil); status != 404 {
			t.Errorf("the refused config reads as HTTP %d, want 404", status)
		}
		if got := e.Clients(t); len(got) != 0 {
			t.Errorf("clients on the array: %v", got)
		}
	})
	t.Run("host not allowed", func(t *testing.T) {
		body := arrayConfig(e)
		body["array_url"] = "https://flasharray.example.net"
		status, resp := v.HTTP(t, "POST", Mount+"/config/elsewhere", body)
		msg := fmt.Sprint(resp)
		if status != 400 || !strings.Contains(msg, "PURE1_ALLOWED_TOKEN_HOSTS=flasharray.example.net") {
			t.Fatalf("HTTP %d %v, want 400 saying how the registrar allows the host", status, resp)
		}
		if status, _ := v.HTTP(t, "GET", Mount+"/config/elsewhere", nil); status != 404 {
			t.Errorf("the refused config reads as HTTP %d, want 404", status)
		}
	})
}
