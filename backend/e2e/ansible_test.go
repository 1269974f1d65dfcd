package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	arrayemu "github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray/emulator"
)

// installAnsible runs scripts/install-ansible.sh, which installs Debian's
// ansible (with Pure's collections and community.hashi_vault) and
// python3-hvac when missing, and returns ansible-playbook's path. It fails
// the test, never skips it: a machine that cannot run Ansible must not look
// green.
func installAnsible(t testing.TB) string {
	t.Helper()
	script := filepath.Join(RepoRoot(t), "scripts", "install-ansible.sh")
	cmd := exec.Command(script)
	cmd.Env = childEnv(EnvPython + "=" + pythonBin())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("Ansible cannot run here: %s: %v\n%s%s", script, err, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return lines[len(lines)-1]
}

// ansibleModuleRun is what testdata/ansible_api_token.yml recorded of one
// run of a Pure module.
type ansibleModuleRun struct {
	Failed    bool   `json:"failed"`
	Msg       string `json:"msg"`
	Exception string `json:"exception"`
}

// ansibleLeasePlay is the play's out_file. Jinja renders numbers inside a
// dict as strings.
type ansibleLeasePlay struct {
	Username      string           `json:"username"`
	ArrayRole     string           `json:"array_role"`
	ArrayHost     string           `json:"array_host"`
	LeaseID       string           `json:"lease_id"`
	LeaseDuration string           `json:"lease_duration"`
	Renewable     bool             `json:"renewable"`
	TokenLength   string           `json:"token_length"`
	WithLease     ansibleModuleRun `json:"with_lease"`
	AfterRevoke   ansibleModuleRun `json:"after_revoke"`
}

// runAnsiblePlay runs testdata/ansible_api_token.yml against Vault v and
// returns what it recorded. Only VAULT_ADDR and VAULT_TOKEN point it at v:
// ANSIBLE_* settings of the caller's shell are dropped, and HOME (where
// Ansible keeps its temporary files) is the test's own.
func runAnsiblePlay(t *testing.T, playbook string, v *Vault, kind, credsPath, sdk string) ansibleLeasePlay {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "play.json")
	var env []string
	for _, kv := range childEnv() {
		if !strings.HasPrefix(kv, "ANSIBLE_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+dir, "VAULT_ADDR="+v.Addr, "VAULT_TOKEN="+v.Token,
		"ANSIBLE_PYTHON_INTERPRETER="+pythonBin(), "ANSIBLE_NOCOLOR=1", "ANSIBLE_RETRY_FILES_ENABLED=0",
		"ANSIBLE_LOCALHOST_WARNING=0", "ANSIBLE_INVENTORY_UNPARSED_WARNING=0")
	extra, err := json.Marshal(map[string]string{"kind": kind, "creds_path": credsPath, "pure_sdk": sdk, "out_file": out})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(playbook, "-i", "localhost,", "-e", string(extra),
		filepath.Join(RepoRoot(t), "backend", "e2e", "testdata", "ansible_api_token.yml"))
	cmd.Env, cmd.Dir = env, dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	t.Logf("ansible-playbook (%s) took %s", kind, time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("ansible-playbook failed: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("the play wrote no result (%v):\n%s", err, stdout.String())
	}
	var p ansibleLeasePlay
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("the play's result is not JSON (%v): %s", err, raw)
	}
	return p
}

// TestAnsibleAPITokenLease runs Debian's Ansible 7.7 as an operator would
// (docs/consumers/ansible.md), on each kind: community.hashi_vault's
// vault_read lookup reads a lease of an api_token role from a real Vault,
// Pure's own collection module (purestorage.flasharray.purefa_maintenance
// in check mode, purestorage.flashblade.purefb_messages) takes its
// array_url and api_token and logs in at the emulated array as the lease's
// user, and community.hashi_vault.vault_write revokes the lease at the end
// of the play; the same module with the same token is then refused at the
// login, and the user is gone from the array.
//
// What it does not show: a module finishing its work. After the login both
// modules call endpoints the emulator does not play (GET hardware on both
// kinds, GET maintenance-windows on a FlashArray), so they fail there, past
// the login; and the info modules (purefa_info, purefb_info) cannot run at
// all, since they need Pure's REST 1 SDKs (purestorage, purity_fb), which
// neither Debian nor this machine's registries carry.
func TestAnsibleAPITokenLease(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	sdk := installArraysSDK(t)
	playbook := installAnsible(t)
	for _, kind := range arrayKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := StartArrayEmulatorKind(t, kind, "-quiet")
			v := StartVaultDevOpts(t, VaultOptions{LogLevel: "info"})
			if status, resp := v.HTTP(t, "POST", Mount+"/config/arr", arrayConfig(e)); status != 200 {
				t.Fatalf("config: HTTP %d %v", status, resp)
			}
			v.MustCLI(t, "write", Mount+"/roles/ansible", "config=arr", "credential_type=api_token", "array_role=readonly", "ttl=10m")

			st0 := e.Stats(t)
			p := runAnsiblePlay(t, playbook, v, kind, Mount+"/creds/ansible", sdk)
			st := e.Stats(t)
			t.Logf("%s: the play saw %+v", kind, p)

			if !strings.HasPrefix(p.Username, "vault-pure1-ansible-") || p.ArrayRole != "readonly" || p.Renewable || p.LeaseDuration != "600" ||
				!strings.HasPrefix(p.LeaseID, Mount+"/creds/ansible/") || p.TokenLength == "0" || p.ArrayHost != e.Host() {
				t.Fatalf("the vault_read lookup gave %+v; want a readonly vault-pure1-ansible-* user, a token, a 600 s non-renewable lease, array host %s", p, e.Host())
			}

			// Pure's module logged in with the lease's token once: before
			// the revoke; the login after it was refused.
			if n := st.LoginsByUser[p.Username] - st0.LoginsByUser[p.Username]; n != 1 {
				t.Errorf("logins as %s during the play: %d, want 1 (Pure's module with the lease's token, before the revoke); logins by user %v", p.Username, n, st.LoginsByUser)
			}
			if n := st.Refused[arrayemu.StepLogin] - st0.Refused[arrayemu.StepLogin]; n != 1 {
				t.Errorf("logins refused during the play: %d, want 1 (the same token after the revoke)", n)
			}
			// Past the login the modules call what the emulator does not
			// play; a module that succeeded would mean it plays them now,
			// and this test should then say so.
			if !p.WithLease.Failed {
				t.Errorf("Pure's %s module finished with the lease's token: the emulator now plays its endpoints; update this test and docs/consumers/ansible.md", kind)
			} else if st.Requests[arrayemu.StepOther] == st0.Requests[arrayemu.StepOther] {
				t.Errorf("Pure's %s module failed with the lease's token before reaching an endpoint past the login: %q %s", kind, p.WithLease.Msg, p.WithLease.Exception)
			}
			if !p.AfterRevoke.Failed || !strings.Contains(p.AfterRevoke.Msg+p.AfterRevoke.Exception, "Invalid api-token") {
				t.Errorf("Pure's %s module after the revoke: %+v, want refused with Invalid api-token", kind, p.AfterRevoke)
			}
			if left := vaultUsers(t, e, "vault-pure1-ansible-"); len(left) != 0 {
				t.Errorf("users left on the array after the play revoked its lease: %v", left)
			}
			if status, resp := v.HTTP(t, "LIST", "sys/leases/lookup/"+Mount+"/creds/ansible", nil); status != 404 {
				t.Errorf("leases left in Vault after the play: HTTP %d %v", status, resp)
			}
			if st.UsersCreated-st0.UsersCreated != 1 || st.UsersDeleted-st0.UsersDeleted != 1 {
				t.Errorf("users created %d, deleted %d during the play; want 1, 1 (set_fact renders the lookup once)",
					st.UsersCreated-st0.UsersCreated, st.UsersDeleted-st0.UsersDeleted)
			}
			t.Logf("%s: Pure's module with the lease's token: %q%s; after the revoke: %q%s", kind,
				p.WithLease.Msg, lastLine(p.WithLease.Exception), p.AfterRevoke.Msg, lastLine(p.AfterRevoke.Exception))
		})
	}
}

// lastLine is a traceback's last line, for a log line.
func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	return " (" + lines[len(lines)-1] + ")"
}

// TestAnsibleDocsPlay runs the play of docs/consumers/ansible.md as it is
// written, with the inventory its comment shows, against a real Vault and
// the emulated FlashArray. Its module (purefa_volume) needs Pure's REST 1
// SDK, which is not installed here, so the play fails at that task, as the
// page says; what it proves is the play's shape: set_fact reads one lease
// (one array user, not one per use) and the always: block revokes it after
// the failure, so the user is gone and Vault holds no lease.
func TestAnsibleDocsPlay(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	sdk := installArraysSDK(t)
	playbook := installAnsible(t)
	md, err := os.ReadFile(filepath.Join(RepoRoot(t), "docs", "consumers", "ansible.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := fencedBlocks(string(md), "yaml")
	if len(blocks) != 1 || !strings.Contains(blocks[0], "# fa1 creds_path=pure1/creds/fa-automation") {
		t.Fatalf("docs/consumers/ansible.md has %d yaml blocks; this test runs one play whose comment names the inventory line fa1 creds_path=pure1/creds/fa-automation", len(blocks))
	}
	e := StartArrayEmulatorKind(t, arrayemu.FlashArray, "-quiet")
	v := StartVaultDevOpts(t, VaultOptions{LogLevel: "info"})
	cfg := arrayConfig(e)
	cfg["allowed_array_roles"] = "readonly,storage_admin"
	if status, resp := v.HTTP(t, "POST", Mount+"/config/fa", cfg); status != 200 {
		t.Fatalf("config: HTTP %d %v", status, resp)
	}
	v.MustCLI(t, "write", Mount+"/roles/fa-automation", "config=fa", "credential_type=api_token", "array_role=storage_admin", "ttl=30m")

	dir := t.TempDir()
	play, inv := filepath.Join(dir, "play.yml"), filepath.Join(dir, "inventory")
	if err := os.WriteFile(play, []byte(blocks[0]), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inv, []byte("[flasharrays]\nfa1 creds_path=pure1/creds/fa-automation\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range childEnv() {
		if !strings.HasPrefix(kv, "ANSIBLE_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+dir, "VAULT_ADDR="+v.Addr, "VAULT_TOKEN="+v.Token, "PYTHONPATH="+sdk,
		"ANSIBLE_PYTHON_INTERPRETER="+pythonBin(), "ANSIBLE_NOCOLOR=1", "ANSIBLE_RETRY_FILES_ENABLED=0")
	st0 := e.Stats(t)
	cmd := exec.Command(playbook, "-i", inv, play)
	cmd.Env, cmd.Dir = env, dir
	out, err := cmd.CombinedOutput()
	st := e.Stats(t)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "purestorage SDK is not installed.") {
		t.Fatalf("the page's play: %v, want it to fail (exit 2) at purefa_volume for want of Pure's REST 1 SDK, as the page says:\n%s", err, out)
	}
	recap := regexp.MustCompile(`(?m)^fa1\s*: ok=.*$`).Find(out)
	t.Logf("the page's play: %s", recap)
	if !regexp.MustCompile(`(?m)^fa1\s*: ok=2 .* failed=1 `).Match(out) {
		t.Errorf("the play's recap: want set_fact and the revoke ok, purefa_volume failed:\n%s", out)
	}
	if c, d := st.UsersCreated-st0.UsersCreated, st.UsersDeleted-st0.UsersDeleted; c != 1 || d != 1 {
		t.Errorf("users created %d, deleted %d by the play; want 1, 1 (one lease, revoked in always:)", c, d)
	}
	if left := vaultUsers(t, e, "vault-pure1-fa-automat"); len(left) != 0 {
		t.Errorf("users left on the array: %v", left)
	}
	if status, resp := v.HTTP(t, "LIST", "sys/leases/lookup/"+Mount+"/creds/fa-automation", nil); status != 404 {
		t.Errorf("leases left in Vault: HTTP %d %v", status, resp)
	}
}
