package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	arrayemu "github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray/emulator"
)

// LoginAPIToken logs in at the emulated array with an API token, as every
// consumer of one does (Ansible, PowerShell, Pure's SDK), and logs out
// again: 200 when the token works.
func (a *ArrayEmulator) LoginAPIToken(token string) (int, error) {
	login, logout := "/api/"+a.Version()+"/login", "/api/"+a.Version()+"/logout"
	if a.Kind == arrayemu.FlashBlade {
		login, logout = "/api/login", "/api/logout"
	}
	req, err := http.NewRequest(http.MethodPost, a.URL+login, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("api-token", token)
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return resp.StatusCode, nil
	}
	out, _ := http.NewRequest(http.MethodPost, a.URL+logout, nil)
	out.Header.Set("x-auth-token", resp.Header.Get("x-auth-token"))
	if r, err := a.client.Do(out); err == nil {
		r.Body.Close()
	}
	return 200, nil
}

// vaultUsers are the emulated array's users whose name starts with prefix.
func vaultUsers(t *testing.T, e *ArrayEmulator, prefix string) []string {
	var out []string
	for _, u := range e.Users(t) {
		if strings.HasPrefix(u.Name, prefix) {
			out = append(out, u.Name)
		}
	}
	return out
}

// sdkWithAPIToken is Pure's SDK logged in with token: it lists arrays and
// looks the user up with the array's own admin token.
const sdkWithAPIToken = `
import json, os, sys
from pypureclient import flasharray, flashblade
from pypureclient.configuration import Configuration
from pypureclient.exceptions import PureError
FA = os.environ["ARRAY_KIND"] == "flasharray"
SDK = flasharray if FA else flashblade
def client(**auth):
    cfg = Configuration(ssl_ca_cert=os.environ["ARRAY_CA_FILE"]); cfg.verify_ssl = True
    return SDK.Client(os.environ["ARRAY_TARGET"], version=os.environ["ARRAY_VERSION"], configuration=cfg, verify_ssl=True, **auth)
out = {}
try:
    c = client(api_token=os.environ["LEASE_TOKEN"])
    r = c.get_arrays()
    out["arrays_status"] = r.status_code
    out["arrays"] = [a.name for a in (r.items or [])] if r.status_code == 200 else []
except PureError as e:
    out["arrays_status"] = 0
    out["error"] = str(e)[:200]
admin = client(api_token=os.environ["ARRAY_API_TOKEN"])
users = admin.get_admins()
out["admins"] = sorted(u.name for u in (users.items or []))
if not FA:
    admin.logout()
print(json.dumps(out))
`

type sdkLeaseView struct {
	ArraysStatus int      `json:"arrays_status"`
	Arrays       []string `json:"arrays"`
	Error        string   `json:"error"`
	Admins       []string `json:"admins"`
}

// TestArrayAPITokenLeases, on each kind: a creds read of an api_token role
// gives an array user's API token with which Pure's own SDK lists arrays;
// after vault lease revoke the same call is refused and get_admins no longer
// shows the user. 200 leases issued and revoked by 8 readers leave no user,
// cost at most three array calls each and one admin login for all. With the
// array refusing deletes while leases expire, Vault's revoke retries delete
// every user once the array is back.
func TestArrayAPITokenLeases(t *testing.T) {
	requireE2E(t)
	sdk := installArraysSDK(t)
	for _, kind := range arrayKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := StartArrayEmulatorKind(t, kind, "-quiet")
			v := StartVaultDevOpts(t, VaultOptions{LogLevel: "info"})
			cfg := arrayConfig(e)
			cfg["allowed_array_roles"] = "readonly,storage_admin"
			if status, resp := v.HTTP(t, "POST", Mount+"/config/arr", cfg); status != 200 {
				t.Fatalf("config: HTTP %d %v", status, resp)
			}
			v.MustCLI(t, "write", Mount+"/roles/ansible", "config=arr", "credential_type=api_token", "array_role=storage_admin", "ttl=10m")
			prefix := "vault-pure1-ansible-"

			// One lease, judged by Pure's SDK, then revoked.
			lease := v.MustCLIJSON(t, "read", "-format=json", Mount+"/creds/ansible")
			token, user := jstr(t, lease, "data", "api_token"), jstr(t, lease, "data", "username")
			if !strings.HasPrefix(user, prefix) || jint(t, lease, "lease_duration") != 600 {
				t.Fatalf("lease: user %q, lease_duration %v", user, jget(lease, "lease_duration"))
			}
			var before, after sdkLeaseView
			RunArraySDKSnippet(t, sdk, sdkWithAPIToken, append(e.SDKEnv(), "LEASE_TOKEN="+token)...).JSON(t, &before)
			if before.ArraysStatus != 200 || len(before.Arrays) == 0 || !slices.Contains(before.Admins, user) {
				t.Fatalf("Pure's SDK with the lease's token: %+v", before)
			}
			v.MustCLI(t, "lease", "revoke", jstr(t, lease, "lease_id"))
			RunArraySDKSnippet(t, sdk, sdkWithAPIToken, append(e.SDKEnv(), "LEASE_TOKEN="+token)...).JSON(t, &after)
			if after.ArraysStatus == 200 || slices.Contains(after.Admins, user) {
				t.Fatalf("after vault lease revoke Pure's SDK still lists arrays with the token, or get_admins shows %s: %+v", user, after)
			}
			t.Logf("%s: Pure's SDK with the lease's token listed %v; after the revoke: %q, admins %v", kind, before.Arrays, after.Error, after.Admins)

			// 200 leases by 8 readers, each revoked by its reader.
			st0 := e.Stats(t)
			var wg sync.WaitGroup
			var mu sync.Mutex
			var failed []string
			issued := 0
			start := time.Now()
			for w := 0; w < 8; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 25; i++ {
						status, body, err := v.Request(context.Background(), v.Token, "GET", Mount+"/creds/ansible", nil)
						if err != nil || status != 200 {
							mu.Lock()
							failed = append(failed, fmt.Sprintf("read: %d %v %v", status, err, body))
							mu.Unlock()
							continue
						}
						id, _ := body["lease_id"].(string)
						tok, _ := jget(body, "data", "api_token").(string)
						if st, err := e.LoginAPIToken(tok); err != nil || st != 200 {
							mu.Lock()
							failed = append(failed, fmt.Sprintf("the lease's token at the array: %d %v", st, err))
							mu.Unlock()
						}
						status, body, err = v.Request(context.Background(), v.Token, "PUT", "sys/leases/revoke", map[string]any{"lease_id": id})
						mu.Lock()
						issued++
						if err != nil || status/100 != 2 {
							failed = append(failed, fmt.Sprintf("revoke: %d %v %v", status, err, body))
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			took := time.Since(start)
			st1 := e.Stats(t)
			calls := (st1.Requests[arrayemu.StepAdminsPost] - st0.Requests[arrayemu.StepAdminsPost]) +
				(st1.Requests[arrayemu.StepAPITokensPost] - st0.Requests[arrayemu.StepAPITokensPost]) +
				(st1.Requests[arrayemu.StepAdminsDelete] - st0.Requests[arrayemu.StepAdminsDelete])
			logins := st1.SessionsOpened - st0.SessionsOpened
			left := vaultUsers(t, e, prefix)
			t.Logf("%s: %d leases issued and revoked by 8 readers in %s (%.0f/s), %d failed; %d array calls (%.2f per lease), %d admin logins, %d users left",
				kind, issued, took.Round(time.Millisecond), float64(issued)/took.Seconds(), len(failed), calls, float64(calls)/float64(issued),
				logins-issued /* the readers' own logins with the tokens */, len(left))
			if len(failed) > 0 || len(left) != 0 || calls > 3*issued || logins-issued > 1 {
				t.Errorf("failed %v; users left %v; %d calls for %d leases; %d admin logins", failed[:min(5, len(failed))], left, calls, issued, logins-issued)
			}

			// The array down while leases expire: Vault's revokes fail, and
			// its retries delete every user once the array is back.
			v.MustCLI(t, "write", Mount+"/roles/short", "config=arr", "credential_type=api_token", "array_role=readonly", "ttl=1m")
			for i := 0; i < 5; i++ {
				v.MustCLI(t, "read", "-format=json", Mount+"/creds/short")
			}
			short := "vault-pure1-short-"
			if got := vaultUsers(t, e, short); len(got) != 5 {
				t.Fatalf("users of the short leases: %v", got)
			}
			deletes := e.Stats(t).Requests[arrayemu.StepAdminsDelete]
			e.Fault(t, arrayemu.Fault{Step: arrayemu.StepAdminsDelete, Mode: arrayemu.ModeError, Status: 503, Count: 1000})
			eventually(t, 3*time.Minute, time.Second, "Vault to try the expired leases' revokes", func() (bool, string) {
				n := e.Stats(t).Requests[arrayemu.StepAdminsDelete] - deletes
				return n >= 5, fmt.Sprintf("%d delete attempts", n)
			})
			refused := e.Stats(t).Requests[arrayemu.StepAdminsDelete] - deletes
			back := time.Now()
			e.ClearFaults(t)
			eventually(t, 4*time.Minute, time.Second, "Vault's revoke retries to delete every user", func() (bool, string) {
				got := vaultUsers(t, e, short)
				return len(got) == 0, fmt.Sprint(got)
			})
			t.Logf("%s: the array refused %d deletes while 5 leases expired; Vault's retries deleted every user %s after it was back",
				kind, refused, time.Since(back).Round(time.Second))
			if n := e.Stats(t).OpenSessions; n > 1 {
				t.Errorf("%d admin sessions open: Vault keeps one per config", n)
			}
		})
	}
}

// TestArrayStaticAPIToken: a static api_token role's pair of users rotating
// every 20 s under 4 readers who log in at the array with every token they
// read: no read and no use fails, and a token stays valid after it is
// replaced. Deleting the role deletes the pair.
func TestArrayStaticAPIToken(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	e := StartArrayEmulatorKind(t, arrayemu.FlashArray, "-quiet")
	v := StartVaultDevOpts(t, VaultOptions{LogLevel: "info"})
	if status, resp := v.HTTP(t, "POST", Mount+"/config/arr", arrayConfig(e)); status != 200 {
		t.Fatalf("config: HTTP %d %v", status, resp)
	}
	v.MustCLI(t, "write", Mount+"/static-roles/fleet", "config=arr", "credential_type=api_token", "array_role=readonly", "rotation_period=20s")
	first := v.MustCLIJSON(t, "read", "-format=json", Mount+"/static-creds/fleet")
	if lid, _ := first["lease_id"].(string); lid != "" {
		t.Fatalf("static-creds has a lease: %s", lid)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		reads  int
		failed []string
		users  = map[string]int{}
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				status, body, err := v.Request(context.Background(), v.Token, "GET", Mount+"/static-creds/fleet", nil)
				var fail string
				user, _ := jget(body, "data", "username").(string)
				switch {
				case err != nil || status != 200:
					fail = fmt.Sprintf("read: %d %v %v", status, err, body)
				default:
					tok, _ := jget(body, "data", "api_token").(string)
					if st, err := e.LoginAPIToken(tok); err != nil || st != 200 {
						fail = fmt.Sprintf("using %s's token: %d %v", user, st, err)
					}
				}
				mu.Lock()
				reads++
				users[user]++
				if fail != "" {
					failed = append(failed, fail)
				}
				mu.Unlock()
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	time.Sleep(70 * time.Second) // three rotations
	cancel()
	wg.Wait()
	raw, _ := json.Marshal(users)
	t.Logf("%d reads by 4 readers through 3 rotations of the pair, each token used at the array: %d failed; reads by user %s", reads, len(failed), raw)
	if len(failed) > 0 || len(users) < 2 {
		t.Errorf("failed %v; users seen %v (want both of the pair)", failed[:min(5, len(failed))], users)
	}
	v.MustCLI(t, "delete", Mount+"/static-roles/fleet")
	if left := vaultUsers(t, e, "vault-pure1-static-fleet-"); len(left) != 0 {
		t.Errorf("the pair outlived its static role: %v", left)
	}
}
