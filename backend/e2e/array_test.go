package e2e

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	arrayemu "github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray/emulator"
)

// arrayKinds are the kinds every array test runs on.
var arrayKinds = []string{arrayemu.FlashArray, arrayemu.FlashBlade}

// arrayConfig is a managed config of e's kind, without api_client_name: the
// kind's default name (vault-<config>, vault_<config> on a FlashBlade).
func arrayConfig(e *ArrayEmulator) map[string]any {
	return map[string]any{
		"kind": e.Kind, "array_url": e.URL, "ca_cert": e.CAPEM, "username": "pureuser",
		"admin_api_token": e.APIToken, "max_role": "readonly", "access_token_ttl": "1h",
	}
}

// defaultClientName is the name Vault gives config's client on kind.
func defaultClientName(kind, config string) string {
	if kind == arrayemu.FlashBlade {
		return "vault_" + strings.NewReplacer("-", "_", ".", "_").Replace(config)
	}
	return "vault-" + config
}

// sdkJudgement is what backend/e2e/testdata/sdk_array_vault.py saw.
type sdkJudgement struct {
	Kind       string `json:"kind"`
	APIClients []struct {
		Name        string `json:"name"`
		Enabled     bool   `json:"enabled"`
		MaxRole     string `json:"max_role"`
		MaxRoleType string `json:"max_role_type"`
	} `json:"api_clients"`
	ArraysIDToken []string `json:"arrays_id_token"`
	OpenSessions  int      `json:"open_sessions"`
}

// enabledClients are the clients the SDK saw enabled, sorted.
func (j sdkJudgement) enabledClients() []string {
	var out []string
	for _, c := range j.APIClients {
		if c.Enabled {
			out = append(out, c.Name)
		}
	}
	sort.Strings(out)
	return out
}

// judge runs Pure's SDK against e as an operator would, with jwt (a Vault
// jwt role's credential, or "") as its id_token.
func judge(t *testing.T, sdk string, e *ArrayEmulator, jwt string) sdkJudgement {
	t.Helper()
	var j sdkJudgement
	RunArraySDK(t, sdk, "testdata/sdk_array_vault.py", append(e.SDKEnv(), "VAULT_JWT="+jwt)...).JSON(t, &j)
	wantType := map[string]string{arrayemu.FlashArray: "str", arrayemu.FlashBlade: "FixedReference"}[e.Kind]
	for _, c := range j.APIClients {
		if c.MaxRoleType != wantType || c.MaxRole != "readonly" {
			t.Errorf("Pure's %s SDK reads client %s's max_role as %s %q, want %s readonly", e.Kind, c.Name, c.MaxRoleType, c.MaxRole, wantType)
		}
	}
	return j
}

// arrayReaders reads paths over HTTP with 8 readers until stopped, and
// counts what failed.
type arrayReaders struct {
	mu     sync.Mutex
	reads  int
	failed []string
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startArrayReaders(t *testing.T, v *Vault, paths ...string) *arrayReaders {
	ctx, cancel := context.WithCancel(context.Background())
	r := &arrayReaders{cancel: cancel}
	for w := 0; w < 8; w++ {
		r.wg.Add(1)
		go func(w int) {
			defer r.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				p := paths[(w+i)%len(paths)]
				status, body, err := v.Request(context.Background(), v.Token, "GET", Mount+"/"+p, nil)
				fail := ""
				switch {
				case err != nil:
					fail = err.Error()
				case status != 200:
					fail = fmt.Sprintf("HTTP %d %v", status, body)
				case strings.Count(fmt.Sprint(jget(body, "data", "access_token")), ".") != 2:
					fail = fmt.Sprintf("no access_token in %v", body)
				}
				r.mu.Lock()
				r.reads++
				if fail != "" {
					r.failed = append(r.failed, p+": "+fail)
				}
				r.mu.Unlock()
			}
		}(w)
	}
	t.Cleanup(r.stop)
	return r
}

func (r *arrayReaders) count() int { r.mu.Lock(); defer r.mu.Unlock(); return r.reads }

// readOn waits until the readers made n more reads.
func (r *arrayReaders) readOn(t *testing.T, n int) {
	t.Helper()
	target := r.count() + n
	eventually(t, 60*time.Second, 5*time.Millisecond, "readers read on", func() (bool, string) {
		return r.count() >= target, fmt.Sprintf("%d of %d reads", r.count(), target)
	})
}

func (r *arrayReaders) stop() { r.cancel(); r.wg.Wait() }

// result stops the readers and returns how many reads they made and which
// failed.
func (r *arrayReaders) result() (int, []string) {
	r.stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reads, r.failed
}

// TestArrayManaged, on an emulated FlashArray and FlashBlade over TLS, each
// as strict as Pure's SDK: Vault registers its own API client (the kind's
// default name and max_role form), issues leased and static tokens that work
// on the array, and Pure's own SDK is the judge: (a) logged in with the
// array's API token it sees Vault's client enabled with the kind's max_role
// form; (b) a jwt role's JWT, as its id_token, lists arrays; (c) after a
// rotation it sees the new client and the old one, which stays until its
// retirement (here forced with retire_previous=now), then only the new one;
// (d) no admin session is left open. 8 readers read through both rotations
// with 0 failures.
func TestArrayManaged(t *testing.T) {
	requireE2E(t)
	sdk := installArraysSDK(t)
	for _, kind := range arrayKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			testArrayManaged(t, sdk, kind)
		})
	}
}

func testArrayManaged(t *testing.T, sdk, kind string) {
	e := StartArrayEmulatorKind(t, kind, "-quiet")
	v := StartVaultDevOpts(t, VaultOptions{LogLevel: "info"})

	status, resp := v.HTTP(t, "POST", Mount+"/config/arr", arrayConfig(e))
	if status != 200 || jget(resp, "data", "managed") != true {
		t.Fatalf("managed registration: HTTP %d %v", status, resp)
	}
	if strings.Contains(fmt.Sprint(resp), e.APIToken) {
		t.Fatal("the config write's answer shows admin_api_token")
	}
	first := defaultClientName(kind, "arr")
	if got := jget(resp, "data", "api_client_name"); got != first {
		t.Fatalf("api_client_name = %v, want the %s default %s", got, kind, first)
	}
	read := v.MustCLIJSON(t, "read", "-format=json", Mount+"/config/arr")
	if strings.Contains(fmt.Sprint(read), e.APIToken) || jget(read, "data", "admin_api_token_configured") != true {
		t.Fatalf("config read shows the admin token or not that it is set: %v", read["data"])
	}

	v.MustCLI(t, "write", Mount+"/roles/arr-jwt", "config=arr", "username=pureuser", "credential_type=jwt", "ttl=10m")
	v.MustCLI(t, "write", Mount+"/roles/arr-ops", "config=arr", "username=ops")
	v.MustCLI(t, "write", Mount+"/roles/arr-shared", "config=arr", "username=pureuser", "reuse_access_token=true")
	v.MustCLI(t, "write", Mount+"/static-roles/arr-fleet", "config=arr", "username=pureuser")
	paths := []string{"creds/arr-ops", "creds/arr-shared", "static-creds/arr-fleet"}
	for _, p := range paths {
		tok := jstr(t, v.MustCLIJSON(t, "read", "-format=json", Mount+"/"+p), "data", "access_token")
		if st, err := e.Arrays(tok); err != nil || st != 200 {
			t.Fatalf("%s: the token on /api/%s/arrays: %d %v", p, e.Version(), st, err)
		}
	}
	jwtOf := func() string { return v.MustCLI(t, "read", "-field=jwt", Mount+"/creds/arr-jwt") }

	// (a), (b), (d): Pure's SDK sees Vault's client as the kind shows it.
	j := judge(t, sdk, e, jwtOf())
	if got := j.enabledClients(); fmt.Sprint(got) != "["+first+"]" || len(j.APIClients) != 1 {
		t.Fatalf("Pure's SDK sees clients %v, want only %s enabled", j.APIClients, first)
	}
	if len(j.ArraysIDToken) == 0 {
		t.Errorf("Pure's SDK with Vault's JWT as id_token listed no arrays")
	}
	if j.OpenSessions != 0 {
		t.Errorf("%d admin sessions open on the array after registration and the SDK's run", j.OpenSessions)
	}

	readers := startArrayReaders(t, v, paths...)
	readers.readOn(t, 200)

	// (c) A rotation: the new client issues at once, the old one stays
	// enabled for what it issued.
	status, resp = v.HTTP(t, "POST", Mount+"/config/arr/rotate", map[string]any{})
	if status != 200 || jget(resp, "data", "verified") != true || jget(resp, "data", "previous_api_client_deleted") != false {
		t.Fatalf("rotation: HTTP %d %v", status, resp)
	}
	second := jstr(t, resp, "data", "api_client_name")
	if retire := jstr(t, resp, "data", "previous_api_client_delete_at"); retire == "" {
		t.Errorf("the rotation names no previous_api_client_delete_at: %v", resp["data"])
	}
	readers.readOn(t, 200)
	j = judge(t, sdk, e, jwtOf())
	if got, want := j.enabledClients(), []string{first, second}; fmt.Sprint(got) != fmt.Sprint(sortedCopy(want)) {
		t.Errorf("after a rotation Pure's SDK sees %v enabled, want the new %s and the old %s until its retirement", got, second, first)
	}
	pending := v.MustCLIJSON(t, "read", "-format=json", Mount+"/config/arr")
	if !strings.Contains(fmt.Sprint(jget(pending, "data", "pending_deletions")), first) {
		t.Errorf("the config read does not list %s on the delete list: %v", first, jget(pending, "data", "pending_deletions"))
	}

	// Retirement, forced: the earlier clients go at once.
	status, resp = v.HTTP(t, "POST", Mount+"/config/arr/rotate", map[string]any{"retire_previous": "now"})
	if status != 200 {
		t.Fatalf("rotation with retire_previous=now: HTTP %d %v", status, resp)
	}
	third := jstr(t, resp, "data", "api_client_name")
	readers.readOn(t, 200)
	reads, failed := readers.result()
	j = judge(t, sdk, e, jwtOf())
	if got := j.enabledClients(); fmt.Sprint(got) != "["+third+"]" || len(j.APIClients) != 1 {
		t.Errorf("after retire_previous=now Pure's SDK sees %v, want only %s", j.APIClients, third)
	}
	if j.OpenSessions != 0 {
		t.Errorf("%d admin sessions left open on the array", j.OpenSessions)
	}
	t.Logf("%s: %d reads by 8 readers through two rotations, %d failed; clients %s -> %s -> %s", kind, reads, len(failed), first, second, third)
	if len(failed) > 0 {
		t.Errorf("%d reads failed; first: %s", len(failed), strings.Join(failed[:min(5, len(failed))], "; "))
	}
	for _, p := range paths {
		c := v.MustCLIJSON(t, "read", "-format=json", Mount+"/"+p)
		if st, err := e.Arrays(jstr(t, c, "data", "access_token")); err != nil || st != 200 {
			t.Errorf("%s after the rotations: the token on the array: %d %v", p, st, err)
		}
	}
	if logs := v.proc.Log(); strings.Contains(logs, e.APIToken) {
		t.Error("Vault's log shows the admin API token")
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// assertOneClient: the array holds exactly the client config arr names,
// enabled; nothing waits on the delete list; no admin session is open.
func assertOneClient(t *testing.T, v *Vault, e *ArrayEmulator, what string) {
	t.Helper()
	cfg := v.MustCLIJSON(t, "read", "-format=json", Mount+"/config/arr")
	name := jstr(t, cfg, "data", "api_client_name")
	var got []string
	for _, c := range e.APIClients(t) {
		got = append(got, fmt.Sprintf("%s(enabled=%v)", c.Name, c.Enabled))
	}
	if want := []string{name + "(enabled=true)"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: clients on the array %v, want exactly %v (the one storage names)", what, got, want)
	}
	if p := jget(cfg, "data", "pending_deletions"); p != nil {
		t.Errorf("%s: pending_deletions %v", what, p)
	}
}

// TestArrayFaults: on each kind, a fault at every admin step of a rotation
// (an error answer, a refusal, a change applied whose answer was dropped, a
// connection dropped, a hang past the client's timeout) while 8 readers
// read: once tidy ran (the background loop's work, now), exactly one
// enabled client of Vault's is on the array and storage names it, and no
// read failed.
func TestArrayFaults(t *testing.T) {
	requireE2E(t)
	for _, kind := range arrayKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := StartArrayEmulatorKind(t, kind, "-quiet")
			v := StartVaultDevOpts(t, VaultOptions{LogLevel: "info"})
			v.MustCLI(t, "write", Mount+"/config/arr", "kind="+kind, "array_url="+e.URL, "ca_cert="+e.CAPEM,
				"username=pureuser", "admin_api_token="+e.APIToken, "access_token_ttl=1h")
			v.MustCLI(t, "write", Mount+"/roles/arr", "config=arr", "username=pureuser")
			v.MustCLI(t, "write", Mount+"/static-roles/arr-static", "config=arr", "username=pureuser")
			readers := startArrayReaders(t, v, "creds/arr", "static-creds/arr-static")

			type fcase struct {
				step, mode string
				status     int
			}
			var cases []fcase
			for _, step := range []string{arrayemu.StepAPIVersion, arrayemu.StepLogin, arrayemu.StepCreate, arrayemu.StepPatch,
				arrayemu.StepGet, arrayemu.StepDelete, arrayemu.StepLogout} {
				cases = append(cases, fcase{step, arrayemu.ModeError, 500}, fcase{step, arrayemu.ModeError, 400},
					fcase{step, arrayemu.ModeAppliedDrop, 0}, fcase{step, arrayemu.ModeDrop, 0})
			}
			cases = append(cases, fcase{arrayemu.StepCreate, arrayemu.ModeAppliedHang, 0}, fcase{arrayemu.StepDelete, arrayemu.ModeHang, 0})
			failedWrites := 0
			for _, c := range cases {
				f := arrayemu.Fault{Step: c.step, Mode: c.mode, Status: c.status}
				if strings.Contains(c.mode, "hang") {
					f.Delay = arrayemu.Duration(20 * time.Second) // past the client's 15 s
				}
				e.Fault(t, f)
				if status, _ := v.HTTP(t, "POST", Mount+"/config/arr/rotate", map[string]any{"retire_previous": "now"}); status != 200 {
					failedWrites++
				}
				e.ClearFaults(t)
				v.MustCLI(t, "write", "-f", Mount+"/config/arr/tidy")
				assertOneClient(t, v, e, fmt.Sprintf("%s %s %d", c.step, c.mode, c.status))
				readers.readOn(t, 20)
			}
			reads, failed := readers.result()
			st := e.Stats(t)
			t.Logf("%s: %d faults (%d rotations refused or failed, the others rode them out), %d reads by 8 readers, %d failed; "+
				"%d sessions opened, %d open at the end, %d clients on the array", kind, len(cases), failedWrites, reads, len(failed),
				st.SessionsOpened, st.OpenSessions, st.Clients)
			if len(failed) > 0 {
				t.Errorf("%d reads failed; first: %s", len(failed), strings.Join(failed[:min(5, len(failed))], "; "))
			}
			// A logout the array failed (500, 400, dropped) leaves its
			// session to the array's idle timeout, and so does a login it
			// applied but whose answer (the session token) was dropped;
			// every other path logged out.
			// The background loop may be in a session of its own as the
			// counters are read: what counts is where they settle.
			const lost = 4
			eventually(t, 30*time.Second, 100*time.Millisecond, "the open sessions to settle", func() (bool, string) {
				n := e.Stats(t).OpenSessions
				return n == lost, fmt.Sprintf("%d sessions open, want the %d whose logout or login answer the faults lost", n, lost)
			})
		})
	}
}

// TestArrayPluginKilled: the plugin dies between two admin steps of a
// registration and of a rotation (held at the array, then SIGKILL). Vault
// then starts the plugin again and, when the dead process's connection ends
// as Unavailable, runs the killed request once more on the new process
// (its plugin backend does so once): either the write failed and the
// restarted plugin's background loop deletes the half-made client from the
// journal the dead process left, or Vault's retry finished the write and
// took that client for a leftover of Vault's own (both orders are pinned
// in TestArrayCrashBetweenRegisterAndStore). Either way exactly the
// clients storage names are left on the array.
func TestArrayPluginKilled(t *testing.T) {
	requireE2E(t)
	for _, kind := range arrayKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := StartArrayEmulatorKind(t, kind, "-quiet")
			v := StartVaultDevOpts(t, VaultOptions{LogLevel: "info"})
			// killDuring holds write at step, kills the plugin, and says
			// whether Vault's retry on the new process finished the write.
			killDuring := func(step string, write func() (int, map[string]any)) (retried bool) {
				t.Helper()
				before := e.Stats(t).Requests[step]
				e.Fault(t, arrayemu.Fault{Step: step, Mode: arrayemu.ModeDelay, Delay: arrayemu.Duration(30 * time.Second)})
				type answer struct {
					status int
					body   map[string]any
				}
				done := make(chan answer, 1)
				go func() { status, body := write(); done <- answer{status, body} }()
				eventually(t, 30*time.Second, 20*time.Millisecond, "the write to reach "+step, func() (bool, string) {
					return e.Stats(t).Requests[step] > before, fmt.Sprint(e.Stats(t).Requests)
				})
				// Vault's retry must not be held too: it runs as soon as
				// the new process is up.
				e.ClearFaults(t)
				killed := 0
				for pid, name := range v.PluginProcesses(t) {
					if strings.Contains(name, "vault-plugin-secrets-pure1") {
						if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
							killed++
						}
					}
				}
				if killed == 0 {
					t.Fatalf("no plugin process to kill: %v", v.PluginProcesses(t))
				}
				a := <-done
				if a.status == 200 {
					t.Logf("%s: the write killed at %s answered HTTP 200: Vault's retry on the new process finished it", kind, step)
				} else {
					t.Logf("%s: the write killed at %s answered HTTP %d %v", kind, step, a.status, jget(a.body, "errors"))
				}
				return a.status == 200
			}
			// A registration killed after create, before enable.
			if !killDuring(arrayemu.StepPatch, func() (int, map[string]any) {
				return v.HTTP(t, "POST", Mount+"/config/arr", arrayConfig(e))
			}) {
				// The next request starts the plugin again; its loop drains
				// the dead process's journal at once. The write then works.
				eventually(t, 60*time.Second, 200*time.Millisecond, "the half-made client to be deleted", func() (bool, string) {
					status, _ := v.HTTP(t, "GET", Mount+"/config/arr", nil)
					return len(e.APIClients(t)) == 0, fmt.Sprintf("config HTTP %d, clients %v", status, e.Clients(t))
				})
				v.MustCLI(t, "write", Mount+"/config/arr", "kind="+kind, "array_url="+e.URL, "ca_cert="+e.CAPEM,
					"username=pureuser", "admin_api_token="+e.APIToken)
			}
			assertOneClient(t, v, e, "after a registration killed between create and enable")

			// A rotation killed between its create and its enable.
			retried := killDuring(arrayemu.StepPatch, func() (int, map[string]any) {
				return v.HTTP(t, "POST", Mount+"/config/arr/rotate", map[string]any{})
			})
			want := 1 // the client the config names
			if retried {
				want = 2 // and the one the retry's rotation retired, until its credentials expire
			}
			eventually(t, 60*time.Second, 200*time.Millisecond, "the rotation's half-made client to be deleted", func() (bool, string) {
				_, cfg := v.HTTP(t, "GET", Mount+"/config/arr", nil)
				pending, _ := jget(cfg, "data", "pending_deletions").([]any)
				return len(e.APIClients(t)) == want && len(pending) == want-1,
					fmt.Sprintf("clients %v, want %d; pending_deletions %v", e.Clients(t), want, pending)
			})
			if retried {
				assertRetiredPending(t, v, e, "after a rotation killed between create and enable and finished by Vault's retry")
			} else {
				assertOneClient(t, v, e, "after a rotation killed between create and enable")
			}

			// A retirement killed in its delete: the entry stays on the list.
			// retire_previous=now cuts every earlier client, so a retry that
			// rotated once more ends the same way.
			killDuring(arrayemu.StepDelete, func() (int, map[string]any) {
				return v.HTTP(t, "POST", Mount+"/config/arr/rotate", map[string]any{"retire_previous": "now"})
			})
			v.MustCLI(t, "write", "-f", Mount+"/config/arr/tidy")
			assertOneClient(t, v, e, "after a retirement killed in its delete")
			t.Logf("%s: 3 kills between admin steps; %d sessions the dead processes could not close (the array's idle timeout ends them)",
				kind, e.Stats(t).OpenSessions)
		})
	}
}

// assertRetiredPending: after a rotation, the array holds the client the
// config names and the retired previous one, which the delete list holds
// until its credentials have expired; nothing else.
func assertRetiredPending(t *testing.T, v *Vault, e *ArrayEmulator, what string) {
	t.Helper()
	cfg := v.MustCLIJSON(t, "read", "-format=json", Mount+"/config/arr")
	active := jstr(t, cfg, "data", "api_client_name")
	previous := jstr(t, cfg, "data", "previous_api_client_name")
	var got []string
	for _, c := range e.APIClients(t) {
		got = append(got, fmt.Sprintf("%s(enabled=%v)", c.Name, c.Enabled))
	}
	want := []string{active + "(enabled=true)", previous + "(enabled=true)"}
	slices.Sort(got)
	slices.Sort(want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: clients on the array %v, want exactly %v (active and retired)", what, got, want)
	}
	pending, _ := jget(cfg, "data", "pending_deletions").([]any)
	if len(pending) != 1 || fmt.Sprint(pending[0].(map[string]any)["api_client"]) != previous ||
		fmt.Sprint(pending[0].(map[string]any)["reason"]) != "retired" {
		t.Errorf("%s: pending_deletions %v, want the retired %s alone", what, pending, previous)
	}
}

// TestArrayRefusals: a ca_cert that did not sign the array's certificate is
// refused with the fix, a host the registrar did not allow is refused
// before anything is sent, and a FlashBlade config pointed at a FlashArray
// says so; none stores a config or leaves a client.
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
	t.Run("wrong kind", func(t *testing.T) {
		body := arrayConfig(e)
		body["kind"] = arrayemu.FlashBlade
		status, resp := v.HTTP(t, "POST", Mount+"/config/wrong-kind", body)
		msg := fmt.Sprint(resp)
		if status != 400 || !strings.Contains(msg, `no "versions" list`) || !strings.Contains(msg, "kind=flashblade") {
			t.Fatalf("HTTP %d %v, want 400 saying the array is not a FlashBlade", status, resp)
		}
		if got := e.Clients(t); len(got) != 0 || e.OpenSessions(t) != 0 {
			t.Errorf("clients on the array: %v, sessions %d", got, e.OpenSessions(t))
		}
	})
}
