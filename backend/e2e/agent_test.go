package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAgent runs Vault Agent with the shipped bootstrap/agent.hcl and
// agent-template.ctmpl, authenticated by a token file holding a token with
// only the shipped pure1-creds policy. The agent must render a working
// access token, then render a new one before the lease ends (role ttl 20s),
// which also works.
func TestAgent(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	e := StartEmulator(t)
	v := StartVaultDev(t)
	Bootstrap(t, v, e)
	const ttl = 20 * time.Second
	v.MustCLI(t, "write", "pure1/roles/readonly", "ttl=20s")

	root := RepoRoot(t)
	v.MustCLI(t, "policy", "write", "pure1-creds", filepath.Join(root, "bootstrap", "policy-pure1-creds.hcl"))
	token := strings.TrimSpace(v.MustCLI(t, "token", "create", "-policy=pure1-creds", "-period=1h", "-field=token"))

	// The agent's working directory, as bootstrap/agent.hcl describes it.
	dir := t.TempDir()
	for _, f := range []string{"agent.hcl", "agent-template.ctmpl"} {
		copyFile(t, filepath.Join(root, "bootstrap", f), filepath.Join(dir, f), 0o644)
	}
	if err := os.WriteFile(filepath.Join(dir, "agent-token"), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "pure1-access-token")
	agent := startProcessOpts(t, "vault agent",
		[]string{v.Bin, "agent", "-config=agent.hcl", "-log-level=debug"},
		[]string{"VAULT_ADDR=" + v.Addr, "HOME=" + dir}, filepath.Join(dir, "agent.log"),
		procOptions{Dir: dir})

	// First render.
	read := func() string {
		b, _ := os.ReadFile(out)
		return strings.TrimSpace(string(b))
	}
	var first string
	var firstAt time.Time
	eventually(t, 30*time.Second, 100*time.Millisecond, "the agent renders "+out, func() (bool, string) {
		if agent.Exited() {
			t.Fatalf("vault agent exited: %v\n%s", agent.waitErr, agent.LogTail(40))
		}
		first, firstAt = read(), time.Now()
		return strings.Count(first, ".") == 2, "file content " + first
	})
	e.MustCallAPI(t, first)
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v (%v), want 0600 as agent.hcl sets", out, fi.Mode().Perm(), err)
	}

	// The agent reads the non-renewable lease again at 85-95% of its 20s,
	// so the file changes before the lease (and well before the token) ends.
	var second string
	eventually(t, ttl+15*time.Second, 100*time.Millisecond, "the agent renders a new token", func() (bool, string) {
		if agent.Exited() {
			t.Fatalf("vault agent exited: %v\n%s", agent.waitErr, agent.LogTail(40))
		}
		second = read()
		return second != "" && second != first, "still the first token"
	})
	after := time.Since(firstAt)
	t.Logf("re-rendered %s after the first render (lease %s)", after.Round(100*time.Millisecond), ttl)
	if after > ttl+time.Second {
		t.Errorf("the new token came %s after the first, later than the %s lease", after, ttl)
	}
	if strings.Count(second, ".") != 2 {
		t.Fatalf("re-rendered file holds %q", second)
	}
	e.MustCallAPI(t, second)
	if log := agent.Log(); strings.Contains(log, "[ERROR]") {
		t.Errorf("the agent logged errors:\n%s", agent.LogTail(40))
	}
}
