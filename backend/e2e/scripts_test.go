package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDevBootstrapScript runs bootstrap/dev-bootstrap.sh against a fresh
// Vault and emulator and checks what it set up.
func TestDevBootstrapScript(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	e := StartEmulator(t)
	v := StartVaultDev(t)
	work := t.TempDir()
	out := runScript(t, filepath.Join(RepoRoot(t), "bootstrap", "dev-bootstrap.sh"), nil, []string{
		"VAULT_ADDR=" + v.Addr, "VAULT_TOKEN=" + v.Token, "VAULT_BIN=" + v.Bin,
		"PURE1_EMULATOR_ADDR=" + e.URL, "PURE1_EMULATOR_BIN=" + BinPath(t, "pure1-emulator"),
		"PURE1_WORK_DIR=" + work,
	})
	t.Logf("dev-bootstrap.sh:\n%s", out)

	cfg := v.MustCLIJSON(t, "read", "-format=json", "pure1/config/main")
	if got := jget(cfg, "data", "token_url"); got != e.TokenURL() {
		t.Errorf("token_url %v, want the emulator's %s", got, e.TokenURL())
	}
	if got := jget(cfg, "data", "key_source"); got != "generated" {
		t.Errorf("key_source %v", got)
	}
	saved, err := os.ReadFile(filepath.Join(work, "main-public.pem"))
	if err != nil || strings.TrimSpace(string(saved)) != strings.TrimSpace(jstr(t, cfg, "data", "public_key")) {
		t.Errorf("saved public key %q (%v) differs from the config's", saved, err)
	}
	e.MustCallAPI(t, strings.TrimSpace(v.MustCLI(t, "read", "-field=access_token", "pure1/creds/readonly")))
	if got := jget(v.MustCLIJSON(t, "read", "-format=json", "pure1/roles/readonly-jwt"), "data", "credential_type"); got != "jwt" {
		t.Errorf("readonly-jwt credential_type %v", got)
	}
	v.MustCLI(t, "read", "-field=jwt", "pure1/creds/readonly-jwt")
	if pol := v.MustCLI(t, "policy", "read", "pure1-creds"); !strings.Contains(pol, `path "pure1/creds/*"`) {
		t.Errorf("policy pure1-creds:\n%s", pol)
	}
}

// TestRegisterApplicationScript runs bootstrap/register-application.sh as an
// operator would, answering its prompt with the application ID the
// (emulated) Pure1 UI gave for the public key it saved; then again with the
// ID of an application registered under another key, which must fail with
// advice.
func TestRegisterApplicationScript(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	e := StartEmulator(t)
	v := StartVaultDev(t)
	dir := t.TempDir()
	script := filepath.Join(RepoRoot(t), "bootstrap", "register-application.sh")
	keyFile := filepath.Join(dir, "pub.pem")
	env := []string{
		"VAULT_ADDR=" + v.Addr, "VAULT_TOKEN=" + v.Token, "VAULT_BIN=" + v.Bin,
		"PURE1_TOKEN_URL=" + e.TokenURL(), "PURE1_PUBLIC_KEY_FILE=" + keyFile,
	}

	// Interactive: wait for the public key, "register" it, type the ID.
	cmd := exec.Command(script, "prod", "reader")
	cmd.Env = childEnv(env...)
	cmd.Dir = dir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var output strings.Builder
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	pub := waitForFile(t, nil, keyFile, 30*time.Second, func(s string) bool { return strings.Contains(s, "END PUBLIC KEY") })
	app := e.Register(t, pub)
	io.WriteString(stdin, "  "+app+"\n") // pasted with stray spaces
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("register-application.sh did not finish:\n%s", output.String())
	}
	out := output.String()
	t.Logf("register-application.sh:\n%s", out)
	if err != nil {
		t.Fatalf("register-application.sh: %v", err)
	}
	for _, want := range []string{"Administration > API Registration", "Register Application", "BEGIN PUBLIC KEY",
		"Application ID:", "Pure1 issued a credential"} {
		if !strings.Contains(out, want) {
			t.Errorf("the script's output does not contain %q", want)
		}
	}
	if got := jget(v.MustCLIJSON(t, "read", "-format=json", "pure1/config/prod"), "data", "app_id"); got != app {
		t.Errorf("config prod app_id %v, want %s", got, app)
	}
	e.MustCallAPI(t, strings.TrimSpace(v.MustCLI(t, "read", "-field=access_token", "pure1/creds/reader")))

	// The existing config is not replaced without consent.
	out2, err := runScriptErr(t, script, []string{"prod", "reader"}, append(env, "PURE1_APP_ID="+app))
	if err == nil || !strings.Contains(out2, "PURE1_REPLACE_KEY=1") {
		t.Errorf("re-running on an existing config without PURE1_REPLACE_KEY: %v\n%s", err, out2)
	}

	// Not even with consent while roles use it: the way is a rotation.
	out2, err = runScriptErr(t, script, []string{"prod", "reader"}, append(env, "PURE1_APP_ID="+app, "PURE1_REPLACE_KEY=1"))
	if err == nil || !strings.Contains(out2, "rotate-key.sh") || !strings.Contains(out2, "config/prod/rotate") {
		t.Errorf("replacing the key of a config in use: %v\n%s", err, out2)
	}
	if got := jget(v.MustCLIJSON(t, "read", "-format=json", "pure1/config/prod"), "data", "app_id"); got != app {
		t.Errorf("config prod app_id %v after the refused replacement, want %s", got, app)
	}

	// A wrong application (another key) fails the test read, with advice.
	other := e.Register(t, runCmd(t, "", "openssl", "rsa", "-pubout", "-in", writeKey(t, dir)))
	out3, err := runScriptErr(t, script, []string{"staging", "reader2"}, append(env, "PURE1_APP_ID="+other))
	if err == nil || !strings.Contains(out3, "Pure1 did not accept the application") || !strings.Contains(out3, "fingerprint") {
		t.Errorf("register-application.sh with the wrong application: %v\n%s", err, out3)
	}
}

// TestDevScript runs scripts/dev.sh (make dev) with its state in a
// temporary directory: detached, then stopped by scripts/dev-stop.sh; and in
// the foreground, stopped by Ctrl-C (SIGINT to its process group).
func TestDevScript(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	root := RepoRoot(t)
	devDir := t.TempDir()
	env := []string{
		"PURE1_DEV_DIR=" + devDir, "PURE1_BIN_DIR=" + BinDir(t), "VAULT_BIN=" + VaultBin(t),
		"VERSION=" + PluginVersion(), "NO_COLOR=1",
	}
	stop := func() string { return runScript(t, filepath.Join(root, "scripts", "dev-stop.sh"), nil, env) }
	// Whatever happens, nothing stays running: the processes are in their
	// own sessions, out of reach of the harness's process-group kill.
	t.Cleanup(func() { stop() })

	t.Run("detached", func(t *testing.T) {
		out := runScript(t, filepath.Join(root, "scripts", "dev.sh"), nil, append(env, "DEV_DETACH=1"))
		t.Logf("dev.sh:\n%s", out)
		for _, want := range []string{"export VAULT_ADDR=", "VAULT_TOKEN=root", "the emulator accepted the token",
			"the FlashArray emulator accepted the token", "the FlashBlade emulator accepted the token",
			"vault write -f pure1/config/fa/rotate", "make dev-stop"} {
			if !strings.Contains(out, want) {
				t.Errorf("dev.sh output lacks %q", want)
			}
		}
		pids := devPids(t, devDir)
		if len(pids) != 4 {
			t.Fatalf("pid files in %s/run: %v, want vault, emulator, array and blade", devDir, pids)
		}
		vaultAddr := envFileValue(t, filepath.Join(devDir, "env"), "VAULT_ADDR")
		dv := AttachVault(t, vaultAddr, "root")
		emu := AttachEmulator(envFileValue(t, filepath.Join(devDir, "env"), "PURE1_EMULATOR_ADDR"))
		emu.MustCallAPI(t, strings.TrimSpace(dv.MustCLI(t, "read", "-field=access_token", "pure1/creds/readonly")))

		// Pure's own SDK judges make dev's arrays: Vault's client enabled
		// with the kind's max_role form, a jwt role's JWT as its id_token
		// listing arrays, no admin session left open.
		sdk := installArraysSDK(t)
		for _, a := range []struct{ kind, file, config, client string }{
			{"flasharray", "array", "fa", "vault-fa"}, {"flashblade", "blade", "fb", "vault_fb"},
		} {
			token, err := os.ReadFile(filepath.Join(devDir, a.file+"-api-token"))
			if err != nil {
				t.Fatal(err)
			}
			addr, err := os.ReadFile(filepath.Join(devDir, a.file+".addr"))
			if err != nil {
				t.Fatal(err)
			}
			e := &ArrayEmulator{URL: strings.TrimSpace(string(addr)), Kind: a.kind, CAFile: filepath.Join(devDir, a.file+"-ca.pem"),
				APIToken: strings.TrimSpace(string(token))}
			dv.MustCLI(t, "write", "pure1/roles/"+a.config+"-jwt", "config="+a.config, "username=pureuser", "credential_type=jwt")
			j := judge(t, sdk, e, strings.TrimSpace(dv.MustCLI(t, "read", "-field=jwt", "pure1/creds/"+a.config+"-jwt")))
			if got := fmt.Sprint(j.enabledClients()); got != "["+a.client+"]" || len(j.ArraysIDToken) == 0 || j.OpenSessions != 0 {
				t.Errorf("Pure's %s SDK on make dev's %s: clients %s, arrays by Vault's JWT %v, open sessions %d; want [%s], some, 0",
					a.kind, a.kind, got, j.ArraysIDToken, j.OpenSessions, a.client)
			}
		}

		// make dev again stops the running one first.
		out = runScript(t, filepath.Join(root, "scripts", "dev.sh"), nil, append(env, "DEV_DETACH=1"))
		if !strings.Contains(out, "stopping it first") {
			t.Errorf("a second dev.sh did not say it stopped the first:\n%s", out)
		}
		for name, pid := range pids {
			if processAlive(pid) {
				t.Errorf("%s (pid %d) of the first dev.sh still runs", name, pid)
			}
		}
		pids = devPids(t, devDir)

		out = stop()
		if !strings.Contains(out, "stopped") {
			t.Errorf("dev-stop.sh:\n%s", out)
		}
		for name, pid := range pids {
			if processAlive(pid) {
				t.Errorf("%s (pid %d) still runs after dev-stop.sh", name, pid)
			}
		}
		if out = stop(); !strings.Contains(out, "nothing was running") {
			t.Errorf("dev-stop.sh with nothing running:\n%s", out)
		}
	})

	t.Run("foreground, Ctrl-C", func(t *testing.T) {
		logPath := filepath.Join(t.TempDir(), "dev.log")
		p := startProcess(t, "dev.sh", []string{filepath.Join(root, "scripts", "dev.sh")}, env, logPath)
		eventually(t, 2*time.Minute, 200*time.Millisecond, "dev.sh is ready", func() (bool, string) {
			if p.Exited() {
				t.Fatalf("dev.sh exited: %v\n%s", p.waitErr, p.Log())
			}
			return strings.Contains(p.Log(), "Ctrl-C stops"), "not ready yet"
		})
		pids := devPids(t, devDir)
		if len(pids) != 4 {
			t.Fatalf("pid files: %v, want vault, emulator, array and blade", pids)
		}
		// Ctrl-C: the terminal signals the whole foreground process group.
		syscall.Kill(-p.Pid(), syscall.SIGINT)
		select {
		case <-p.Done():
		case <-time.After(30 * time.Second):
			t.Fatalf("dev.sh did not exit on SIGINT:\n%s", p.LogTail(30))
		}
		for name, pid := range pids {
			if processAlive(pid) {
				t.Errorf("%s (pid %d) still runs after Ctrl-C", name, pid)
			}
		}
		if !strings.Contains(p.Log(), "Stopping what 'make dev' started") {
			t.Errorf("dev.sh did not report stopping:\n%s", p.LogTail(20))
		}
		if left := devPids(t, devDir); len(left) != 0 {
			t.Errorf("pid files left: %v", left)
		}
	})
}

// ---- helpers ------------------------------------------------------------------------

// runScript runs a script with args and env and returns its combined
// output; the test fails if it exits non-zero.
func runScript(t testing.TB, script string, args, env []string) string {
	t.Helper()
	out, err := runScriptErr(t, script, args, env)
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", script, args, err, out)
	}
	return out
}

func runScriptErr(t testing.TB, script string, args, env []string) (string, error) {
	t.Helper()
	cmd := exec.Command(script, args...)
	cmd.Env = childEnv(env...)
	cmd.Dir = t.TempDir()
	cmd.Stdin = nil
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// devPids reads the pid files dev.sh keeps in DEV_DIR/run.
func devPids(t testing.TB, devDir string) map[string]int {
	t.Helper()
	m := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(devDir, "run", "*.pid"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("%s: %q", f, b)
		}
		m[strings.TrimSuffix(filepath.Base(f), ".pid")] = pid
	}
	return m
}

// processAlive reports whether pid runs (a zombie counts as gone).
func processAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 {
		return s[i+2] != 'Z'
	}
	return true
}

// envFileValue reads NAME from a file of `export NAME=value` lines.
func envFileValue(t testing.TB, path, name string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export ")
		if v, ok := strings.CutPrefix(line, name+"="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	t.Fatalf("%s has no %s", path, name)
	return ""
}

// writeKey writes a fresh unencrypted RSA key with openssl and returns its path.
func writeKey(t testing.TB, dir string) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "key-*.pem")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	runCmd(t, "", "openssl", "genrsa", "-out", f.Name(), "2048")
	return f.Name()
}
