package e2e

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// rotationRead is one credential read by a reader of TestRotation.
type rotationRead struct {
	role         string
	start, end   time.Time
	appID, cred  string
	err          string
	accessToken  bool
	jwtVerified  bool
	jwtVerifyErr string
}

// appKeys maps application IDs to the public key their JWTs must verify
// with; a reader looks up the app_id each credential carries.
type appKeys struct {
	mu sync.Mutex
	m  map[string]*rsa.PublicKey
}

func (a *appKeys) set(id string, k *rsa.PublicKey) {
	a.mu.Lock()
	a.m[id] = k
	a.mu.Unlock()
}

func (a *appKeys) get(id string) *rsa.PublicKey {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m[id]
}

// verifyRS256 checks a JWT's RS256 signature with pub, without failing a
// test, for use in reader goroutines.
func verifyRS256(jwt string, pub *rsa.PublicKey) error {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return fmt.Errorf("JWT has %d parts", len(parts))
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig)
}

// TestRotation rotates the key of config main through the HTTP API while 8
// readers read creds over HTTP continuously, and a Vault Agent renders a
// short-lived token: a pending key is stored; a registration of the wrong key
// fails verification; the right registration is verified and promoted; the
// old application is deleted at the emulator. No read may fail; every read
// that starts after the promotion carries the new app_id; every JWT verifies
// with the key of the application it names; the agent moves to the new
// application without an error.
func TestRotation(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	e := StartEmulator(t, "-quiet")
	v := StartVaultDevOpts(t, VaultOptions{LogLevel: "info"})
	boot := Bootstrap(t, v, e)
	oldApp := boot.AppID
	v.MustCLI(t, "write", Mount+"/roles/shared", "config=main", "reuse_access_token=true")
	v.MustCLI(t, "write", Mount+"/roles/agent", "config=main", "ttl=6s")
	root := RepoRoot(t)
	v.MustCLI(t, "policy", "write", "pure1-creds", filepath.Join(root, "bootstrap", "policy-pure1-creds.hcl"))
	token := strings.TrimSpace(v.MustCLI(t, "token", "create", "-policy=pure1-creds", "-period=1h", "-field=token"))

	keys := &appKeys{m: map[string]*rsa.PublicKey{oldApp: parsePublicKey(t, boot.PublicKeyPEM)}}
	agent := startRotationAgent(t, v, token)

	// ---- the readers ----------------------------------------------------------------
	// Static creds refresh when the config's identity changes, and a read
	// that finds its token from the old identity refreshes first, so the
	// checks after the promotion apply to them unchanged.
	v.MustCLI(t, "write", Mount+"/static-roles/fleet", "config=main")
	roles := []struct{ path, name, field string }{
		{"creds", "readonly", "access_token"}, {"creds", "readonly-jwt", "jwt"}, {"creds", "shared", "access_token"},
		{"static-creds", "fleet", "access_token"},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu    sync.Mutex
		reads []rotationRead
		wg    sync.WaitGroup
	)
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(reads)
	}
	for r := 0; r < 8; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				role := roles[(r+i)%len(roles)]
				rd := rotationRead{role: role.name, start: time.Now(), accessToken: role.field == "access_token"}
				status, body, err := v.Request(context.Background(), token, "GET", Mount+"/"+role.path+"/"+role.name, nil)
				rd.end = time.Now()
				switch {
				case err != nil:
					rd.err = err.Error()
				case status != 200:
					rd.err = fmt.Sprintf("HTTP %d %v", status, body)
				default:
					rd.cred, _ = jget(body, "data", role.field).(string)
					rd.appID, _ = jget(body, "data", "app_id").(string)
					if strings.Count(rd.cred, ".") != 2 {
						rd.err = fmt.Sprintf("no %s in %v", role.field, body)
					} else if !rd.accessToken {
						if pub := keys.get(rd.appID); pub == nil {
							rd.jwtVerifyErr = "no key known for app_id " + rd.appID
						} else if err := verifyRS256(rd.cred, pub); err != nil {
							rd.jwtVerifyErr = err.Error()
						} else {
							rd.jwtVerified = true
						}
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
	// Each step of the rotation waits until the readers have read on, so
	// every step overlaps reads however the machine schedules them.
	readOn := func(n int) {
		target := count() + n
		eventually(t, 60*time.Second, 5*time.Millisecond, "readers read on", func() (bool, string) {
			return count() >= target, fmt.Sprintf("%d of %d reads", count(), target)
		})
	}
	readOn(100)
	waitAgentApp(t, agent, oldApp)

	// ---- 1. pending key ----------------------------------------------------------------------
	status, resp := v.HTTP(t, "POST", Mount+"/config/main/rotate", map[string]any{"generate_key": true})
	if status != 200 {
		t.Fatalf("pending key: HTTP %d %v", status, resp)
	}
	pendingPEM := jstr(t, resp, "data", "public_key")
	pendingFP := jstr(t, resp, "data", "public_key_fingerprint")
	readOn(100)

	// ---- 2. a wrong registration: verification fails, nothing changes ---------------------------
	wrongApp := e.Register(t, runCmd(t, "", "openssl", "rsa", "-pubout", "-in", writeKey(t, t.TempDir())))
	status, resp = v.HTTP(t, "POST", Mount+"/config/main/rotate", map[string]any{"app_id": wrongApp})
	if msg := fmt.Sprint(resp); status != 400 || !strings.Contains(msg, "did not accept") || !strings.Contains(msg, pendingFP) {
		t.Fatalf("promotion with a wrongly registered key: HTTP %d %v", status, resp)
	}
	cfg := v.MustCLIJSON(t, "read", "-format=json", Mount+"/config/main")
	if jget(cfg, "data", "app_id") != oldApp || jget(cfg, "data", "pending_public_key_fingerprint") != pendingFP {
		t.Fatalf("after the failed verification: %v", cfg["data"])
	}
	readOn(100)

	// ---- 3. the right registration: verified and promoted ---------------------------------------------
	newApp := e.Register(t, pendingPEM)
	keys.set(newApp, parsePublicKey(t, pendingPEM))
	promoteStart := time.Now()
	status, resp = v.HTTP(t, "POST", Mount+"/config/main/rotate", map[string]any{"app_id": newApp})
	promoted := time.Now()
	if status != 200 || jget(resp, "data", "verified") != true || jget(resp, "data", "previous_app_id") != oldApp {
		t.Fatalf("promotion: HTTP %d %v", status, resp)
	}
	t.Logf("promotion (verifying exchange included) took %s", promoted.Sub(promoteStart).Round(time.Millisecond))
	readOn(200)
	waitAgentApp(t, agent, newApp)

	// ---- 4. the old application deleted in Pure1 --------------------------------------------------------
	e.Unregister(t, oldApp)
	readOn(200)
	stopReaders()

	// ---- what the readers saw ----------------------------------------------------------------------------
	var failed, before, during, after, jwts int
	var sample []string
	for _, rd := range reads {
		switch {
		case rd.err != "":
			failed++
			if failed <= 10 {
				t.Errorf("read of %s failed: %s", rd.role, rd.err)
			}
			continue
		case rd.jwtVerifyErr != "":
			t.Errorf("JWT of %s (app_id %s) does not verify: %s", rd.role, rd.appID, rd.jwtVerifyErr)
		}
		if rd.jwtVerified {
			jwts++
		}
		switch {
		case rd.end.Before(promoteStart):
			before++
			if rd.appID != oldApp {
				t.Errorf("read of %s before the promotion carries app_id %q, want %q", rd.role, rd.appID, oldApp)
			}
		case rd.start.After(promoted):
			after++
			if rd.appID != newApp {
				t.Errorf("read of %s after the promotion carries app_id %q, want the new %q", rd.role, rd.appID, newApp)
			}
			if rd.accessToken && len(sample) < 20 {
				sample = append(sample, rd.cred)
			}
		default:
			during++
			if rd.appID != oldApp && rd.appID != newApp {
				t.Errorf("read of %s during the promotion carries app_id %q", rd.role, rd.appID)
			}
		}
	}
	t.Logf("%d reads by 8 readers: %d failed; %d before the promotion, %d overlapping it, %d after; %d JWTs verified with their application's key",
		len(reads), failed, before, during, after, jwts)
	if failed > 0 {
		t.Fatalf("%d of %d reads failed during the rotation", failed, len(reads))
	}
	// New tokens work at Pure1 with the old application gone.
	for _, tok := range sample {
		e.MustCallAPI(t, tok)
	}
	check := v.MustCLIJSON(t, "read", "-format=json", Mount+"/config/main/check")
	if jget(check, "data", "ok") != true || jget(check, "data", "app_id") != newApp {
		t.Errorf("check after the rotation: %v", check["data"])
	}
	stats := e.Stats(t)
	t.Logf("emulator: %d token requests, %d tokens issued, %d rejected (the wrong registration)",
		stats["token_requests"], stats["tokens_issued"], stats["rejected"])
	if stats["rejected"] != 1 {
		t.Errorf("emulator rejected %d exchanges, want 1: the wrong registration's verification", stats["rejected"])
	}
	if log := agent.Log(); strings.Contains(log, "[ERROR]") || agent.Exited() {
		t.Errorf("the agent logged errors or exited:\n%s", agent.LogTail(40))
	}
}

// startRotationAgent runs Vault Agent with the shipped agent.hcl and a
// template that renders the app_id and access token of role agent.
func startRotationAgent(t *testing.T, v *Vault, token string) *proc {
	t.Helper()
	dir := t.TempDir()
	copyFile(t, filepath.Join(RepoRoot(t), "bootstrap", "agent.hcl"), filepath.Join(dir, "agent.hcl"), 0o644)
	tmpl := `{{ with secret "pure1/creds/agent" }}{{ .Data.app_id }} {{ .Data.access_token }}{{ end }}`
	for name, content := range map[string]string{"agent-template.ctmpl": tmpl, "agent-token": token + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return startProcessOpts(t, "vault agent",
		[]string{v.Bin, "agent", "-config=agent.hcl", "-log-level=info"},
		[]string{"VAULT_ADDR=" + v.Addr, "HOME=" + dir}, filepath.Join(dir, "agent.log"),
		procOptions{Dir: dir})
}

// waitAgentApp waits until the agent's file shows a token of app.
func waitAgentApp(t *testing.T, agent *proc, app string) {
	t.Helper()
	out := filepath.Join(filepath.Dir(agent.LogPath), "pure1-access-token")
	eventually(t, 60*time.Second, 100*time.Millisecond, "the agent renders a token of "+app, func() (bool, string) {
		if agent.Exited() {
			t.Fatalf("vault agent exited: %v\n%s", agent.waitErr, agent.LogTail(40))
		}
		b, _ := os.ReadFile(out)
		f := strings.Fields(string(b))
		return len(f) == 2 && f[0] == app && strings.Count(f[1], ".") == 2, "file holds " + strings.Join(f, " ")
	})
}

// TestRotateKeyScript runs bootstrap/rotate-key.sh as an operator would:
// interactively, registering the public key it saved and typing the new ID;
// then again with a wrong registration (refused with advice, nothing changed,
// the pending key kept), and once more to finish with the same pending key.
func TestRotateKeyScript(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	e := StartEmulator(t)
	v := StartVaultDev(t)
	boot := Bootstrap(t, v, e)
	dir := t.TempDir()
	script := filepath.Join(RepoRoot(t), "bootstrap", "rotate-key.sh")
	keyFile := filepath.Join(dir, "new.pem")
	env := []string{
		"VAULT_ADDR=" + v.Addr, "VAULT_TOKEN=" + v.Token, "VAULT_BIN=" + v.Bin, "PURE1_PUBLIC_KEY_FILE=" + keyFile, "NO_COLOR=1",
	}
	config := func() map[string]any { return v.MustCLIJSON(t, "read", "-format=json", Mount+"/config/main") }

	// Interactive.
	cmd := exec.Command(script, "main")
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
	// Until the operator answers, the old key still issues.
	if got := jget(config(), "data", "app_id"); got != boot.AppID {
		t.Errorf("app_id %v while the script waits, want %s", got, boot.AppID)
	}
	app := e.Register(t, pub)
	io.WriteString(stdin, boot.AppID+"\n") // the old ID by mistake: asked again
	io.WriteString(stdin, " "+app+" \n")
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("rotate-key.sh did not finish:\n%s", output.String())
	}
	out := output.String()
	t.Logf("rotate-key.sh:\n%s", out)
	if err != nil {
		t.Fatalf("rotate-key.sh: %v", err)
	}
	for _, want := range []string{"Register Application", "BEGIN PUBLIC KEY", "New application ID:", "is the current application",
		"promoted", "Pure1 issued a token", "delete", boot.AppID} {
		if !strings.Contains(out, want) {
			t.Errorf("the script's output does not contain %q", want)
		}
	}
	cfg := config()
	if jget(cfg, "data", "app_id") != app || jget(cfg, "data", "previous_app_id") != boot.AppID ||
		jget(cfg, "data", "public_key") != strings.TrimSpace(pub)+"\n" {
		t.Errorf("after the script: %v", cfg["data"])
	}
	e.MustCallAPI(t, strings.TrimSpace(v.MustCLI(t, "read", "-field=access_token", Mount+"/creds/readonly")))

	// Non-interactive, wrongly registered: refused with advice; the pending
	// key stays for the next run.
	wrong := e.Register(t, runCmd(t, "", "openssl", "rsa", "-pubout", "-in", writeKey(t, dir)))
	out2, err := runScriptErr(t, script, []string{"main"}, append(env, "PURE1_APP_ID="+wrong))
	if err == nil || !strings.Contains(out2, "NOT promoted") || !strings.Contains(out2, "fingerprint") || !strings.Contains(out2, "run this script again") {
		t.Errorf("rotate-key.sh with a wrong registration: %v\n%s", err, out2)
	}
	cfg = config()
	pending, _ := jget(cfg, "data", "pending_public_key_fingerprint").(string)
	if jget(cfg, "data", "app_id") != app || pending == "" {
		t.Fatalf("after the refused promotion: %v", cfg["data"])
	}
	e.MustCallAPI(t, strings.TrimSpace(v.MustCLI(t, "read", "-field=access_token", Mount+"/creds/readonly")))

	// Run again: it resumes with the same pending key.
	pub2, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	app2 := e.Register(t, string(pub2))
	out3 := runScript(t, script, []string{"main"}, append(env, "PURE1_APP_ID="+app2))
	if !strings.Contains(out3, "Using the pending key of an earlier run") {
		t.Errorf("the second run did not resume:\n%s", out3)
	}
	cfg = config()
	if jget(cfg, "data", "app_id") != app2 || jget(cfg, "data", "public_key_fingerprint") != pending {
		t.Errorf("after the resumed run: %v", cfg["data"])
	}

	// A config without app_id has nothing to rotate: the script says so.
	v.MustCLI(t, "write", Mount+"/config/fresh", "generate_key=true")
	out4, err := runScriptErr(t, script, []string{"fresh"}, env)
	if err == nil || !strings.Contains(out4, "register-application.sh") {
		t.Errorf("rotate-key.sh on a config without app_id: %v\n%s", err, out4)
	}
}
