package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	arrayemu "github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray/emulator"
)

// ArrayEmulator is `pure1-emulator array`: an emulated FlashArray or
// FlashBlade over TLS with a CA of its own, strict as the kind's array is,
// with its admin API (stats, clients, faults) under /emulator/.
type ArrayEmulator struct {
	URL      string // https://127.0.0.1:PORT
	Kind     string // arrayemu.FlashArray or arrayemu.FlashBlade
	CAPEM    string
	CAFile   string // the CA's PEM on disk, for Python and curl
	APIToken string

	proc   *proc
	client *http.Client // trusts the emulator's CA
}

// StartArrayEmulator runs an emulated FlashArray; see StartArrayEmulatorKind.
func StartArrayEmulator(t testing.TB, extraArgs ...string) *ArrayEmulator {
	t.Helper()
	return StartArrayEmulatorKind(t, arrayemu.FlashArray, extraArgs...)
}

// StartArrayEmulatorKind runs `pure1-emulator array -kind kind` on a free
// port, with users pureuser and ops, and reads the CA and API token it
// writes. t.Cleanup stops it.
func StartArrayEmulatorKind(t testing.TB, kind string, extraArgs ...string) *ArrayEmulator {
	t.Helper()
	dir := t.TempDir()
	addrFile, caFile, tokenFile := filepath.Join(dir, "addr"), filepath.Join(dir, "ca.pem"), filepath.Join(dir, "api-token")
	args := append([]string{BinPath(t, "pure1-emulator"), "array", "-kind", kind, "-listen", "127.0.0.1:0", "-addr-file", addrFile,
		"-ca-file", caFile, "-api-token-file", tokenFile, "-users", "pureuser,ops"}, extraArgs...)
	p := startProcess(t, "pure1-emulator-"+kind, args, nil, filepath.Join(dir, kind+".log"))
	raw := waitForFile(t, p, addrFile, 30*time.Second, func(s string) bool {
		u, err := url.Parse(strings.TrimSpace(s))
		return err == nil && u.Scheme == "https" && u.Port() != ""
	})
	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("the array emulator's CA file holds no certificate:\n%s", ca)
	}
	return &ArrayEmulator{
		URL: strings.TrimSpace(raw), Kind: kind, CAPEM: string(ca), CAFile: caFile, APIToken: strings.TrimSpace(string(tok)), proc: p,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
	}
}

// Version is the newest REST version the emulated array offers.
func (a *ArrayEmulator) Version() string {
	if a.Kind == arrayemu.FlashBlade {
		return arrayemu.FlashBladeAPIVersion
	}
	return arrayemu.FlashArrayAPIVersion
}

// Host is host:port, the target Pure's SDK takes.
func (a *ArrayEmulator) Host() string { return strings.TrimPrefix(a.URL, "https://") }

// Proc is the emulator's process.
func (a *ArrayEmulator) Proc() *proc { return a.proc }

// get is GET path with a header, decoding the JSON answer.
func (a *ArrayEmulator) get(path, header, value string) (int, map[string]any, error) {
	req, err := http.NewRequest(http.MethodGet, a.URL+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set(header, value)
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, nil
}

// Arrays is GET /api/<ver>/arrays with an access token: 200 when it works.
func (a *ArrayEmulator) Arrays(accessToken string) (int, error) {
	status, _, err := a.get("/api/"+a.Version()+"/arrays", "Authorization", "Bearer "+accessToken)
	return status, err
}

// admin performs one admin API call, decoding a 2xx answer into out.
func (a *ArrayEmulator) admin(t testing.TB, method, path string, body any, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatalf("array emulator admin API %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("array emulator admin API %s %s: HTTP %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("array emulator admin API %s %s: %v in %s", method, path, err, raw)
		}
	}
}

// adminItems is GET path on the admin API: the items of its {"items": [...]}.
func adminItems[T any](t testing.TB, a *ArrayEmulator, path string) []T {
	t.Helper()
	var list struct {
		Items []T `json:"items"`
	}
	a.admin(t, http.MethodGet, path, nil, &list)
	return list.Items
}

// APIClients lists the API clients on the array, by name, through the
// admin API (no session is opened, so session counts stay the test's).
func (a *ArrayEmulator) APIClients(t testing.TB) []arrayemu.APIClient {
	t.Helper()
	return adminItems[arrayemu.APIClient](t, a, arrayemu.ClientsPath)
}

// Clients lists the API clients on the array as "name" or
// "name (disabled)", sorted.
func (a *ArrayEmulator) Clients(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, c := range a.APIClients(t) {
		n := c.Name
		if !c.Enabled {
			n += " (disabled)"
		}
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Users lists the array's local users, by name, through the admin API:
// roles and token times, never a secret.
func (a *ArrayEmulator) Users(t testing.TB) []arrayemu.User {
	t.Helper()
	return adminItems[arrayemu.User](t, a, arrayemu.UsersPath)
}

// Fault queues faults at the emulator (all or none: an invalid one fails
// the test).
func (a *ArrayEmulator) Fault(t testing.TB, faults ...arrayemu.Fault) {
	t.Helper()
	a.admin(t, http.MethodPost, arrayemu.FaultsPath, faults, nil)
}

// PendingFaults is the emulator's fault queue.
func (a *ArrayEmulator) PendingFaults(t testing.TB) []arrayemu.Fault {
	t.Helper()
	return adminItems[arrayemu.Fault](t, a, arrayemu.FaultsPath)
}

// ClearFaults empties the emulator's fault queue.
func (a *ArrayEmulator) ClearFaults(t testing.TB) {
	t.Helper()
	a.admin(t, http.MethodDelete, arrayemu.FaultsPath, nil, nil)
}

// Stats are the emulator's counters.
func (a *ArrayEmulator) Stats(t testing.TB) arrayemu.Stats {
	t.Helper()
	var st arrayemu.Stats
	a.admin(t, http.MethodGet, arrayemu.StatsPath, nil, &st)
	return st
}

// OpenSessions is the number of logins the array has not seen logged out.
func (a *ArrayEmulator) OpenSessions(t testing.TB) int {
	t.Helper()
	return a.Stats(t).OpenSessions
}

// SDKEnv is the environment backend/e2e/testdata's array SDK scripts read.
func (a *ArrayEmulator) SDKEnv() []string {
	return []string{
		"ARRAY_KIND=" + a.Kind, "ARRAY_TARGET=" + a.Host(), "ARRAY_CA_FILE=" + a.CAFile,
		"ARRAY_API_TOKEN=" + a.APIToken, "ARRAY_VERSION=" + a.Version(), "ARRAY_ADMIN_URL=" + a.URL,
	}
}

// ---- Pure's FlashArray/FlashBlade SDK ------------------------------------------

// installArraysSDK runs scripts/install-sdk-deps.sh --arrays, which installs
// the SDK's Debian dependencies when missing and unpacks Pure's FlashArray
// (REST 2.30) and FlashBlade (REST 2.17) clients into .cache/, and returns
// the directory to put on PYTHONPATH. It fails the test, never skips it: a
// machine that cannot run the SDK must not look green.
func installArraysSDK(t testing.TB) string {
	t.Helper()
	script := filepath.Join(RepoRoot(t), "scripts", "install-sdk-deps.sh")
	cmd := exec.Command(script, "--arrays")
	cmd.Env = childEnv(EnvPython + "=" + pythonBin())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("Pure's array SDK cannot run here: %s --arrays: %v\n%s%s", script, err, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := lines[len(lines)-1]
	for _, pkg := range []string{"flasharray", "flashblade"} {
		if _, err := os.Stat(filepath.Join(dir, "pypureclient", pkg, "__init__.py")); err != nil {
			t.Fatalf("install-sdk-deps.sh --arrays printed %q, which holds no pypureclient.%s: %v", dir, pkg, err)
		}
	}
	return dir
}

// ArraySDKRun is one run of Python with Pure's array SDK.
type ArraySDKRun struct {
	Stdout, Stderr string
	Err            error
	Dir            string // its working directory, where the SDK writes its access token
	Took           time.Duration
}

// JSON decodes the run's stdout, failing the test with the run's output
// when it failed or printed no JSON.
func (r ArraySDKRun) JSON(t testing.TB, out any) {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("Pure's SDK run failed: %v\nstdout:\n%s\nstderr:\n%s", r.Err, r.Stdout, r.Stderr)
	}
	if err := json.Unmarshal([]byte(r.Stdout), out); err != nil {
		t.Fatalf("Pure's SDK run printed no JSON (%v):\nstdout:\n%s\nstderr:\n%s", err, r.Stdout, r.Stderr)
	}
}

// RunArraySDK runs the Python script at path (relative paths are under
// backend/e2e) with Pure's array SDK on PYTHONPATH, in a fresh temporary
// directory, with env added.
func RunArraySDK(t testing.TB, sdkDir, path string, env ...string) ArraySDKRun {
	t.Helper()
	if !filepath.IsAbs(path) {
		path = filepath.Join(RepoRoot(t), "backend", "e2e", path)
	}
	cmd := exec.Command(pythonBin(), path)
	cmd.Env = childEnv(append([]string{"PYTHONPATH=" + sdkDir, "PYTHONDONTWRITEBYTECODE=1"}, env...)...)
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	return ArraySDKRun{Stdout: stdout.String(), Stderr: stderr.String(), Err: err, Dir: cmd.Dir, Took: time.Since(start)}
}

// RunArraySDKSnippet runs Python code with Pure's array SDK on PYTHONPATH,
// in a fresh temporary directory, with env added.
func RunArraySDKSnippet(t testing.TB, sdkDir, code string, env ...string) ArraySDKRun {
	t.Helper()
	f := filepath.Join(t.TempDir(), "snippet.py")
	if err := os.WriteFile(f, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	return RunArraySDK(t, sdkDir, f, env...)
}

// String describes a run for a log line.
func (r ArraySDKRun) String() string {
	return fmt.Sprintf("took %s, err %v, stderr: %s", r.Took.Round(time.Millisecond), r.Err, strings.TrimSpace(r.Stderr))
}
