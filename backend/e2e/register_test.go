package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// registerScript runs scripts/register.sh against v and returns its output
// (stdout and stderr) and exit code.
func registerScript(t *testing.T, v *Vault, args ...string) (string, int) {
	t.Helper()
	script := filepath.Join(RepoRoot(t), "scripts", "register.sh")
	cmd := exec.Command(script, args...)
	cmd.Env = childEnv("VAULT_ADDR="+v.Addr, "VAULT_TOKEN="+v.Token, "VAULT_BIN="+v.Bin,
		"HOME="+filepath.Join(v.Dir, "home"))
	began := time.Now()
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("register.sh %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	t.Logf("$ register.sh %s  (%s, exit %d)\n%s", strings.Join(args, " "), time.Since(began).Round(time.Millisecond), code, strings.TrimRight(string(out), "\n"))
	return string(out), code
}

// A plugin registered without PURE1_ALLOWED_TOKEN_HOSTS=loopback sends no
// JWT to the Vault host's own loopback: a config naming the emulator there
// (by address or as localhost) is refused with the fix in the message; the
// operator's fix, scripts/register.sh -allow-hosts loopback and a reload,
// makes the same config work.
func TestLoopbackNeedsRegistrarOptIn(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	v := StartVaultDevOpts(t, VaultOptions{NoMount: true})
	emu := StartEmulator(t)
	// Registered as a release is, without the opt-in.
	v.MustCLI(t, "plugin", "register", "-sha256="+v.PluginSHA256, "-version="+v.PluginVersion,
		"-command="+PluginName, "secret", PluginName)
	v.MustCLI(t, "secrets", "enable", "-path="+Mount, "-plugin-version="+v.PluginVersion, PluginName)

	gen := v.MustCLIJSON(t, "write", "-format=json", Mount+"/config/main", "generate_key=true")
	appID := emu.Register(t, jstr(t, gen, "data", "public_key"))
	before := emu.Stats(t)["token_requests"]
	localhost := strings.Replace(emu.TokenURL(), "127.0.0.1", "localhost", 1)
	for _, u := range []string{emu.TokenURL(), localhost} {
		out, err := v.CLI(t, "write", Mount+"/config/main", "app_id="+appID, "token_url="+u)
		if err == nil {
			t.Fatalf("token_url %s accepted by a plugin registered without the loopback opt-in:\n%s", u, out)
		}
		msg := err.Error()
		for _, want := range []string{"token_url", "loopback", "vault plugin register -env PURE1_ALLOWED_TOKEN_HOSTS=loopback"} {
			if !strings.Contains(msg, want) {
				t.Errorf("token_url %s: the refusal should say %q:\n%s", u, want, msg)
			}
		}
	}
	if after := emu.Stats(t)["token_requests"]; after != before {
		t.Errorf("the emulator got %d token request(s) from a plugin not allowed loopback", after-before)
	}

	// The fix the message names, the way an operator runs it.
	if out, code := registerScript(t, v, "-compute", "-version", v.PluginVersion, "-allow-hosts", "loopback",
		filepath.Join(v.PluginDir, PluginName)); code != 0 {
		t.Fatalf("register.sh -allow-hosts loopback: exit %d\n%s", code, out)
	}
	v.MustCLI(t, "plugin", "reload", "-plugin="+PluginName)
	v.MustCLI(t, "write", Mount+"/config/main", "app_id="+appID, "token_url="+emu.TokenURL())
	v.MustCLI(t, "write", Mount+"/roles/readonly", "config=main")
	creds := v.MustCLIJSON(t, "read", "-format=json", Mount+"/creds/readonly")
	emu.MustCallAPI(t, jstr(t, creds, "data", "access_token"))
}

// scripts/register.sh as an operator runs it on a release: the checksum
// from SHA256SUMS (for a binary renamed into plugin_directory, found by its
// content), the version from the release file name, idempotent, and clear
// refusals: a file that is not the release's, a version the binary does not
// report, a second build under a registered version, an unreachable Vault.
func TestRegisterScript(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	v := StartVaultDevOpts(t, VaultOptions{NoMount: true})
	work := t.TempDir()
	plugin := filepath.Join(v.PluginDir, PluginName)
	num := strings.TrimPrefix(v.PluginVersion, "v")
	// The release's SHA256SUMS when the binaries are a release's (make
	// test-e2e); else one written as GoReleaser writes it.
	sums := filepath.Join(BinDir(t), "SHA256SUMS")
	artifact := fmt.Sprintf("%s_%s_linux_amd64", PluginName, num)
	if _, err := os.Stat(sums); err != nil {
		sums = filepath.Join(work, "SHA256SUMS")
		line := fmt.Sprintf("%s  %s\n%s  %s.tar.gz\n", v.PluginSHA256, artifact, strings.Repeat("0", 64), artifact)
		if err := os.WriteFile(sums, []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Logf("using the release's %s", sums)
	}

	out, code := registerScript(t, v, "-sums", sums, "-allow-hosts", "loopback", plugin)
	if code != 0 || !strings.Contains(out, "registered "+PluginName+" "+v.PluginVersion) || !strings.Contains(out, v.PluginSHA256) {
		t.Fatalf("register.sh by SHA256SUMS: exit %d, want it registered as %s with sha256 %s:\n%s", code, v.PluginVersion, v.PluginSHA256, out)
	}
	info := v.MustCLIJSON(t, "plugin", "info", "-format=json", "-version="+v.PluginVersion, "secret", PluginName)
	if jget(info, "sha256") != v.PluginSHA256 || jget(info, "command") != PluginName {
		t.Errorf("catalog after register.sh: %v", info)
	}
	out, code = registerScript(t, v, "-sums", sums, "-allow-hosts", "loopback", plugin)
	if code != 0 || !strings.Contains(out, "registered already") {
		t.Errorf("register.sh a second time: exit %d, want success saying it was registered already:\n%s", code, out)
	}
	// The mount works: registered with loopback allowed, it reaches the emulator.
	v.MustCLI(t, "secrets", "enable", "-path="+Mount, "-plugin-version="+v.PluginVersion, PluginName)
	emu := StartEmulator(t)
	Bootstrap(t, v, emu)
	creds := v.MustCLIJSON(t, "read", "-format=json", Mount+"/creds/readonly")
	emu.MustCallAPI(t, jstr(t, creds, "data", "access_token"))

	// Another build under the same version: refused, the catalog unchanged.
	other := filepath.Join(v.PluginDir, "other-build")
	copyFile(t, plugin, other, 0o755)
	f, err := os.OpenFile(other, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("another build")
	f.Close()

	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"not the release's file", []string{"-sums", sums, other}, 1, "is not listed in"},
		{"a version the binary does not report", []string{"-sums", sums, "-version", "v9.9.9", plugin}, 1, "reports another version than v9.9.9"},
		{"another build under a registered version", []string{"-compute", "-version", v.PluginVersion, other}, 1, "a different build under the same version"},
		{"no version", []string{"-compute", other}, 1, "give -version"},
		{"a malformed host list", []string{"-sums", sums, "-allow-hosts", "https://pure1.example.com/", plugin}, 2, "neither the word loopback nor a host"},
		{"not in plugin_directory", []string{"-compute", "-version", "v0.0.9", "-command", "missing", other}, 1, "copy the binary into plugin_directory"},
	} {
		out, code := registerScript(t, v, c.args...)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("%s: exit %d, want %d with %q:\n%s", c.name, code, c.code, c.want, out)
		}
	}
	info = v.MustCLIJSON(t, "plugin", "info", "-format=json", "-version="+v.PluginVersion, "secret", PluginName)
	if jget(info, "sha256") != v.PluginSHA256 {
		t.Errorf("a refused registration changed the catalog: %v", info)
	}

	down := AttachVault(t, "http://127.0.0.1:1", v.Token)
	down.Bin = v.Bin
	out, code = registerScript(t, down, "-sums", sums, plugin)
	if code != 1 || !strings.Contains(out, "cannot read Vault's plugin catalog") || !strings.Contains(out, "VAULT_ADDR") {
		t.Errorf("an unreachable Vault: exit %d:\n%s", code, out)
	}
}
