// Package e2e drives the plugin the way its users do: a real Vault server
// (built from source, bin/vault) with the plugin registered from a plugin
// directory, the vault CLI and HTTP API as clients, and the Pure1 emulator
// binary standing in for Pure1.
//
// The tests run only with PURE1_E2E=1 (make test-e2e sets it), so that
// `go test ./...` stays fast. Binaries come from PURE1_BIN_DIR (default
// <repo>/bin) and VAULT_BIN (default <bin dir>/vault).
//
// This file is the harness, meant for reuse by the cluster and benchmark
// tests as well: processes in their own process groups (stopped in
// t.Cleanup, also when a test fails; their logs dumped when it did), free
// ports, an emulator, a Vault dev server with the plugin mounted, and the
// dev bootstrap.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Environment variables the harness reads.
const (
	EnvE2E           = "PURE1_E2E"            // "1" runs the end-to-end tests
	EnvBinDir        = "PURE1_BIN_DIR"        // plugin, emulator (and vault) binaries; default <repo>/bin
	EnvVaultBin      = "VAULT_BIN"            // the vault binary; default <bin dir>/vault
	EnvPluginVersion = "PURE1_PLUGIN_VERSION" // version bin/ was built with; default v0.2.0
	EnvVaultLogLevel = "PURE1_E2E_VAULT_LOG_LEVEL"
)

const (
	// PluginName is the plugin's name in Vault's catalog and the file name
	// of its binary.
	PluginName = "vault-plugin-secrets-pure1"
	// DefaultPluginVersion is what `make build` stamps into the plugin.
	DefaultPluginVersion = "v0.2.0"
	// Mount is where StartVaultDev enables the plugin.
	Mount = "pure1"
	// RootToken is the dev server's root token.
	RootToken = "root"
	// ModulePath is the plugin's Go module.
	ModulePath = "github.com/pure1vault/vault-plugin-secrets-pure1"
)

// requireE2E skips the test unless PURE1_E2E=1.
func requireE2E(t testing.TB) {
	t.Helper()
	requireEnv(t, EnvE2E)
}

// requireEnv skips the test unless the variable name is "1".
func requireEnv(t testing.TB, name string) {
	t.Helper()
	if os.Getenv(name) != "1" {
		t.Skipf("end-to-end test against a real Vault: set %s=1 to run it (make test-e2e does, after building the binaries)", name)
	}
}

// ---- binaries and paths -----------------------------------------------------

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// RepoRoot is the directory holding go.mod, found upwards from the test's
// working directory (go test runs tests in their package directory).
func RepoRoot(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = errors.New("no go.mod above the working directory")
				return
			}
			dir = parent
		}
	})
	if rootErr != nil {
		t.Fatalf("finding the repository root: %v", rootErr)
	}
	return rootDir
}

// BinDir is where the plugin and emulator binaries are: $PURE1_BIN_DIR or
// <repo>/bin.
func BinDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv(EnvBinDir); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(t), "bin")
}

// BinPath is the executable name in BinDir; the test fails with a hint when
// it is not there.
func BinPath(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(BinDir(t), name)
	if err := checkExecutable(p); err != nil {
		t.Fatalf("%v: run `make build vault` first (make test-e2e does)", err)
	}
	return p
}

// VaultBin is $VAULT_BIN or <bin dir>/vault.
func VaultBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvVaultBin); p != "" {
		if err := checkExecutable(p); err != nil {
			t.Fatalf("VAULT_BIN: %v", err)
		}
		return p
	}
	return BinPath(t, "vault")
}

// PluginVersion is the version the plugin binary in BinDir reports.
func PluginVersion() string {
	if v := os.Getenv(EnvPluginVersion); v != "" {
		return v
	}
	return DefaultPluginVersion
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("%s is missing", p)
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// FileSHA256 is the hex SHA-256 of a file, as `vault plugin register
// -sha256` takes it.
func FileSHA256(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("hashing %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// copyFile copies src to dst with mode.
func copyFile(t testing.TB, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatalf("copying %s to %s: %v", src, dst, err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// ---- free ports -----------------------------------------------------------------

var (
	portsMu sync.Mutex
	// portsGiven keeps this test binary from handing out a port twice: the
	// kernel may well offer a just-closed port again.
	portsGiven = map[int]bool{}
)

// FreePort returns a TCP port on 127.0.0.1 that nothing listened on a moment
// ago and that this test binary has not handed out before. Another process
// may still take it first; StartVaultDev retries when that happens.
func FreePort(t testing.TB) int {
	t.Helper()
	return freePorts(t, 1)
}

// FreePortPair returns a port P such that P and P+1 are free: a Vault server
// started with -dev-listen-address puts its cluster listener on P+1.
func FreePortPair(t testing.TB) int {
	t.Helper()
	return freePorts(t, 2)
}

// freePorts returns the first of n consecutive free ports.
func freePorts(t testing.TB, n int) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for attempt := 0; attempt < 200; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		base := l.Addr().(*net.TCPAddr).Port
		held := []net.Listener{l}
		ok := !portsGiven[base]
		for i := 1; ok && i < n; i++ {
			if portsGiven[base+i] || base+i > 65535 {
				ok = false
				break
			}
			li, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				break
			}
			held = append(held, li)
		}
		for _, h := range held {
			h.Close()
		}
		if ok {
			for i := 0; i < n; i++ {
				portsGiven[base+i] = true
			}
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports on 127.0.0.1", n)
	return 0
}

// ---- processes ---------------------------------------------------------------------

// proc is a process started by startProcess, in its own process group so
// that stopping it also stops its children (Vault's plugin processes).
type proc struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string

	done    chan struct{}
	waitErr error // set before done is closed
}

// procOptions are the less common knobs of startProcessOpts.
type procOptions struct {
	Dir   string    // working directory; default the test's
	Stdin io.Reader // default none
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL in
	// t.Cleanup; default 10s.
	StopTimeout time.Duration
}

// startProcess starts args[0] with args[1:] in a new process group, stdout
// and stderr appended to logPath, environment = this process's without any
// VAULT_* variables, plus env (later entries win). t.Cleanup stops the group
// (SIGTERM, then SIGKILL) and, if the test failed, logs the tail of logPath.
// If the test binary dies without cleaning up, the child gets SIGTERM.
func startProcess(t testing.TB, name string, args []string, env []string, logPath string) *proc {
	t.Helper()
	return startProcessOpts(t, name, args, env, logPath, procOptions{})
}

func startProcessOpts(t testing.TB, name string, args []string, env []string, logPath string, opts procOptions) *proc {
	t.Helper()
	if len(args) == 0 {
		t.Fatalf("startProcess %s: no command", name)
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = childEnv(env...)
	cmd.Dir = opts.Dir
	cmd.Stdin = opts.Stdin
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s (%s): %v", name, args[0], err)
	}
	p := &proc{Name: name, Cmd: cmd, LogPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	stopTimeout := opts.StopTimeout
	if stopTimeout <= 0 {
		stopTimeout = 10 * time.Second
	}
	t.Cleanup(func() {
		p.Stop(stopTimeout)
		if t.Failed() {
			t.Logf("---- %s log %s (last 60 lines) ----\n%s", name, logPath, p.LogTail(60))
		}
	})
	return p
}

// childEnv is os.Environ() without VAULT_* (so no setting of the developer's
// shell redirects a child to another server), plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VAULT_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// Pid is the process id, which is also its process group id.
func (p *proc) Pid() int { return p.Cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process only (not its group), e.g. SIGHUP.
func (p *proc) Signal(sig syscall.Signal) error {
	return p.Cmd.Process.Signal(sig)
}

func (p *proc) signalGroup(sig syscall.Signal) {
	// The group can outlive its leader (plugin processes), so it is
	// signalled even after the leader exited. ESRCH just means it is gone.
	_ = syscall.Kill(-p.Pid(), sig)
}

// Stop sends SIGTERM to the process group, waits up to timeout, then sends
// SIGKILL to whatever is left of the group. It returns the leader's exit
// error and may be called more than once.
func (p *proc) Stop(timeout time.Duration) error {
	if !p.Exited() {
		p.signalGroup(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(timeout):
		}
	}
	return p.Kill()
}

// Kill sends SIGKILL to the process group and waits for the leader to exit:
// a crash, as far as the process's peers can tell.
func (p *proc) Kill() error {
	p.signalGroup(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.Name, p.Pid())
	}
	return p.waitErr
}

// Log is the whole log so far.
func (p *proc) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// LogTail is the last n lines of the log.
func (p *proc) LogTail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---- waiting --------------------------------------------------------------------------

// eventually polls cond every interval until it returns true or timeout
// passes, then fails the test with the last message cond gave.
func eventually(t testing.TB, timeout, interval time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var msg string
	for {
		var ok bool
		ok, msg = cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not done after %s: %s", what, timeout, msg)
		}
		time.Sleep(interval)
	}
}

// waitForFile waits until path holds content that accept takes, failing
// early if p exits.
func waitForFile(t testing.TB, p *proc, path string, timeout time.Duration, accept func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if b, err := os.ReadFile(path); err == nil && accept(string(b)) {
			return string(b)
		}
		if p != nil && p.Exited() {
			t.Fatalf("%s exited (%v) before writing %s; log:\n%s", p.Name, p.waitErr, path, p.LogTail(40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %s", path, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitHTTP waits until GET url answers with status want, failing early if p
// exits. It returns false (without failing) only when p exits and
// tolerateExit is set, so callers can retry a start.
func waitHTTP(t testing.TB, p *proc, rawURL string, want int, timeout time.Duration, tolerateExit bool) bool {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for {
		resp, err := client.Get(rawURL)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return true
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if p != nil && p.Exited() {
			if tolerateExit {
				return false
			}
			t.Fatalf("%s exited (%v) before %s answered; log:\n%s", p.Name, p.waitErr, rawURL, p.LogTail(40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %d within %s (last: %s)", rawURL, want, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ---- the emulator ------------------------------------------------------------------------

// Emulator is a running pure1-emulator binary.
type Emulator struct {
	URL     string // base URL, http://127.0.0.1:PORT
	Dir     string
	LogPath string

	proc   *proc
	client *http.Client
}

// StartEmulator runs `pure1-emulator serve` on a free port in a temporary
// directory and waits until it answers. t.Cleanup stops it.
func StartEmulator(t testing.TB, extraArgs ...string) *Emulator {
	t.Helper()
	bin := BinPath(t, "pure1-emulator")
	dir := t.TempDir()
	addrFile := filepath.Join(dir, "addr")
	logPath := filepath.Join(dir, "emulator.log")
	args := append([]string{bin, "serve", "-listen", "127.0.0.1:0", "-addr-file", addrFile}, extraArgs...)
	p := startProcess(t, "pure1-emulator", args, nil, logPath)
	raw := waitForFile(t, p, addrFile, 30*time.Second, func(s string) bool {
		u, err := url.Parse(strings.TrimSpace(s))
		return err == nil && u.Scheme == "http" && u.Port() != ""
	})
	e := &Emulator{
		URL:     strings.TrimRight(strings.TrimSpace(raw), "/"),
		Dir:     dir,
		LogPath: logPath,
		proc:    p,
		client:  &http.Client{Timeout: 30 * time.Second},
	}
	waitHTTP(t, p, e.URL+"/emulator/health", http.StatusOK, 30*time.Second, false)
	return e
}

// AttachEmulator returns an Emulator for one that runs already (started by
// a script, or shared by several Vault servers); it is not stopped by the
// test.
func AttachEmulator(url string) *Emulator {
	return &Emulator{URL: strings.TrimRight(url, "/"), client: &http.Client{Timeout: 30 * time.Second}}
}

// TokenURL is the emulator's token endpoint, for a config's token_url.
func (e *Emulator) TokenURL() string { return e.URL + "/oauth2/1.0/token" }

// Stop stops the emulator now (t.Cleanup would anyway).
func (e *Emulator) Stop() { e.proc.Stop(10 * time.Second) }

// Proc is the emulator's process.
func (e *Emulator) Proc() *proc { return e.proc }

// request sends a JSON body (if not nil) and returns the status and body.
func (e *Emulator) request(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (e *Emulator) mustRequest(t testing.TB, method, path string, body any, want int) []byte {
	t.Helper()
	status, b, err := e.request(method, path, body)
	if err != nil {
		t.Fatalf("emulator %s %s: %v", method, path, err)
	}
	if status != want {
		t.Fatalf("emulator %s %s: HTTP %d, want %d: %s", method, path, status, want, bytes.TrimSpace(b))
	}
	return b
}

// Register registers an application with the public key (PEM) as Pure1's
// UI does, with max role viewer, and returns its application ID.
func (e *Emulator) Register(t testing.TB, publicKeyPEM string) string {
	t.Helper()
	return e.RegisterWithRole(t, publicKeyPEM, "")
}

// RegisterWithRole is Register with a max role ("" is viewer).
func (e *Emulator) RegisterWithRole(t testing.TB, publicKeyPEM, maxRole string) string {
	t.Helper()
	req := map[string]string{"public_key": publicKeyPEM}
	if maxRole != "" {
		req["max_role"] = maxRole
	}
	b := e.mustRequest(t, http.MethodPost, "/emulator/applications", req, http.StatusCreated)
	var app struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &app); err != nil || !strings.HasPrefix(app.ID, "pure1:apikey:") {
		t.Fatalf("emulator registration answered %s", b)
	}
	return app.ID
}

// Unregister deletes an application.
func (e *Emulator) Unregister(t testing.TB, appID string) {
	t.Helper()
	e.mustRequest(t, http.MethodDelete, "/emulator/applications/"+url.PathEscape(appID), nil, http.StatusNoContent)
}

// Fault is one fault for the emulator's token endpoint, as its admin API
// takes it (kinds: status, reset, delay, slow_body, non_json,
// truncated_json, no_access_token, no_expires_in, zero_expires_in).
type Fault struct {
	Kind       string `json:"kind"`
	Status     int    `json:"status,omitempty"`      // kind status: 400-599
	RetryAfter string `json:"retry_after,omitempty"` // kind status: raw Retry-After
	Delay      string `json:"delay,omitempty"`       // delay, slow_body: a Go duration such as "2s"
	Count      int    `json:"count,omitempty"`       // token requests affected; 0 means 1
}

// Fault queues faults: a Fault, a []Fault, or any value that marshals to
// the emulator's fault JSON (a map, an array of maps).
func (e *Emulator) Fault(t testing.TB, fault any) {
	t.Helper()
	e.mustRequest(t, http.MethodPost, "/emulator/faults", fault, http.StatusNoContent)
}

// ClearFaults empties the fault queue.
func (e *Emulator) ClearFaults(t testing.TB) {
	t.Helper()
	e.mustRequest(t, http.MethodDelete, "/emulator/faults", nil, http.StatusNoContent)
}

// Stats returns the emulator's counters: token_requests, tokens_issued,
// rejected, rate_limited, faults_served, in_flight, max_in_flight,
// api_requests.
func (e *Emulator) Stats(t testing.TB) map[string]int64 {
	t.Helper()
	b := e.mustRequest(t, http.MethodGet, "/emulator/stats", nil, http.StatusOK)
	var m map[string]int64
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("emulator stats: %v: %s", err, b)
	}
	return m
}

// ResetStats zeroes the counters.
func (e *Emulator) ResetStats(t testing.TB) {
	t.Helper()
	e.mustRequest(t, http.MethodPost, "/emulator/stats/reset", nil, http.StatusNoContent)
}

// CallAPI calls GET /api/1.latest/arrays with the access token, as a Pure1
// client would, and returns the status and the decoded body. It does not
// fail the test, so it can be used from any goroutine.
func (e *Emulator) CallAPI(accessToken string) (int, map[string]any, error) {
	req, err := http.NewRequest(http.MethodGet, e.URL+"/api/1.latest/arrays", nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var body map[string]any
	err = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body, err
}

// MustCallAPI is CallAPI that requires 200 and returns the body.
func (e *Emulator) MustCallAPI(t testing.TB, accessToken string) map[string]any {
	t.Helper()
	status, body, err := e.CallAPI(accessToken)
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET %s/api/1.latest/arrays with the access token: HTTP %d, %v, %v", e.URL, status, err, body)
	}
	return body
}

// Exchange posts a client JWT to the token endpoint as Pure1 clients do and
// returns the status and the decoded answer.
func (e *Emulator) Exchange(t testing.TB, jwt string) (int, map[string]any) {
	t.Helper()
	form := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"},
		"subject_token":      {jwt},
	}
	resp, err := e.client.PostForm(e.TokenURL(), form)
	if err != nil {
		t.Fatalf("POST %s: %v", e.TokenURL(), err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("POST %s: HTTP %d, body is not JSON: %v", e.TokenURL(), resp.StatusCode, err)
	}
	return resp.StatusCode, body
}

// ---- Vault ---------------------------------------------------------------------------------

// Vault is a running `vault server -dev` with the plugin in its plugin
// directory.
type Vault struct {
	Addr  string // http://127.0.0.1:PORT
	Token string // root token
	Dir   string // temporary directory: config, plugins/, home/, vault.log

	Port          int
	PluginDir     string
	ConfigPath    string
	LogPath       string
	Bin           string
	PluginVersion string // the version the plugin was registered and mounted with
	PluginSHA256  string

	proc   *proc
	client *http.Client
}

// VaultOptions adjust StartVaultDevOpts.
type VaultOptions struct {
	// NoMount starts the server with the plugin in its directory but
	// neither registers nor mounts it.
	NoMount bool
	// ExtraConfig is appended to the server's HCL config file.
	ExtraConfig string
	// LogLevel of the server; default $PURE1_E2E_VAULT_LOG_LEVEL or debug.
	LogLevel string
}

// StartVaultDev starts `vault server -dev` on free ports in a temporary
// directory, its plugin directory holding a copy of the plugin binary,
// waits until it is healthy, registers the plugin by sha256 and version and
// enables it at pure1/. t.Cleanup kills its process group (plugins
// included), also when the test fails, and then dumps the server log.
func StartVaultDev(t testing.TB) *Vault {
	t.Helper()
	return StartVaultDevOpts(t, VaultOptions{})
}

// StartVaultDevOpts is StartVaultDev with options.
func StartVaultDevOpts(t testing.TB, opts VaultOptions) *Vault {
	t.Helper()
	bin := VaultBin(t)
	plugin := BinPath(t, PluginName)
	dir := t.TempDir()
	v := &Vault{
		Token:         RootToken,
		Dir:           dir,
		PluginDir:     filepath.Join(dir, "plugins"),
		ConfigPath:    filepath.Join(dir, "vault.hcl"),
		LogPath:       filepath.Join(dir, "vault.log"),
		Bin:           bin,
		PluginVersion: PluginVersion(),
		client:        &http.Client{Timeout: 90 * time.Second},
	}
	for _, d := range []string{v.PluginDir, filepath.Join(dir, "home")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	v.PluginSHA256 = v.InstallPlugin(t, plugin, PluginName)
	cfg := fmt.Sprintf("plugin_directory = %q\n%s\n", v.PluginDir, opts.ExtraConfig)
	if err := os.WriteFile(v.ConfigPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	level := opts.LogLevel
	if level == "" {
		level = os.Getenv(EnvVaultLogLevel)
	}
	if level == "" {
		level = "debug"
	}

	for attempt := 1; ; attempt++ {
		v.Port = FreePortPair(t)
		v.Addr = fmt.Sprintf("http://127.0.0.1:%d", v.Port)
		args := []string{bin, "server", "-dev",
			"-dev-root-token-id=" + v.Token,
			fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", v.Port),
			"-config=" + v.ConfigPath,
			"-log-level=" + level,
		}
		// HOME in the temporary directory: the dev server stores its root
		// token with the token helper, which must not touch ~/.vault-token.
		env := []string{"HOME=" + filepath.Join(dir, "home")}
		v.proc = startProcess(t, "vault", args, env, v.LogPath)
		if waitHTTP(t, v.proc, v.Addr+"/v1/sys/health", http.StatusOK, 90*time.Second, true) {
			break
		}
		if attempt < 3 && strings.Contains(v.proc.Log(), "address already in use") {
			t.Logf("vault: port %d was taken meanwhile; trying another", v.Port)
			continue
		}
		t.Fatalf("vault server -dev exited (%v) before it was healthy; log:\n%s", v.proc.waitErr, v.proc.LogTail(60))
	}
	if !opts.NoMount {
		v.RegisterPlugin(t, PluginName, v.PluginSHA256, v.PluginVersion)
		v.MustCLI(t, "secrets", "enable", "-path="+Mount, "-plugin-version="+v.PluginVersion, PluginName)
	}
	return v
}

// AttachVault returns a Vault for a server that runs already (a cluster
// node, one started by a script), for its CLI and HTTP helpers; it is not
// stopped by the test.
func AttachVault(t testing.TB, addr, token string) *Vault {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "home"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &Vault{
		Addr: strings.TrimRight(addr, "/"), Token: token, Dir: dir,
		Bin: VaultBin(t), PluginVersion: PluginVersion(),
		client: &http.Client{Timeout: 90 * time.Second},
	}
}

// Proc is the server's process (nil for an attached one).
func (v *Vault) Proc() *proc { return v.proc }

// PluginProcesses lists the processes in the server's process group other
// than the server itself (its plugins): pid -> command path.
func (v *Vault) PluginProcesses(t testing.TB) map[int]string {
	t.Helper()
	if v.proc == nil {
		t.Fatal("PluginProcesses needs a Vault started by the harness")
	}
	return groupMembers(v.proc.Pid())
}

// groupMembers lists the live processes of process group pgid except its
// leader: pid -> argv[0].
func groupMembers(pgid int) map[int]string {
	out := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == pgid {
			continue
		}
		stat, err := os.ReadFile("/proc/" + ent.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ')'.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" || f[2] != strconv.Itoa(pgid) {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + ent.Name() + "/cmdline")
		out[pid] = strings.SplitN(string(cmdline), "\x00", 2)[0]
	}
	return out
}

// InstallPlugin copies a plugin binary into the plugin directory as
// fileName and returns its sha256.
func (v *Vault) InstallPlugin(t testing.TB, src, fileName string) string {
	t.Helper()
	dst := filepath.Join(v.PluginDir, fileName)
	copyFile(t, src, dst, 0o755)
	return FileSHA256(t, dst)
}

// RegisterPlugin registers command (a file in the plugin directory) as the
// secret plugin vault-plugin-secrets-pure1 at version, allowing loopback
// token and array hosts (the emulators), as the docs tell an operator to.
func (v *Vault) RegisterPlugin(t testing.TB, command, sha256, version string) {
	t.Helper()
	v.MustCLI(t, "plugin", "register", "-sha256="+sha256, "-version="+version, "-command="+command,
		"-env", "PURE1_ALLOWED_TOKEN_HOSTS=loopback", "secret", PluginName)
}

// CLIError is a vault CLI run that exited non-zero.
type CLIError struct {
	Args     []string
	ExitCode int
	Stdout   string
	Stderr   string
	Err      error
}

func (e *CLIError) Error() string {
	return fmt.Sprintf("vault %s: exit %d: %s", strings.Join(e.Args, " "), e.ExitCode, strings.TrimSpace(e.Stderr))
}

func (e *CLIError) Unwrap() error { return e.Err }

// ExitCode is the exit status of a failed CLI run, 0 for nil and -1 for an
// error that is not a CLIError.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ce *CLIError
	if errors.As(err, &ce) {
		return ce.ExitCode
	}
	return -1
}

// CLI runs the real vault binary with args, VAULT_ADDR and VAULT_TOKEN set
// (and no other VAULT_* variable). It returns stdout; a non-zero exit is a
// *CLIError whose message carries stderr.
func (v *Vault) CLI(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return v.CLIEnv(t, nil, args...)
}

// CLIAs is CLI with another Vault token.
func (v *Vault) CLIAs(t testing.TB, token string, args ...string) (string, error) {
	t.Helper()
	return v.CLIEnv(t, []string{"VAULT_TOKEN=" + token}, args...)
}

// CLIEnv is CLI with extra environment (later entries win).
func (v *Vault) CLIEnv(t testing.TB, env []string, args ...string) (string, error) {
	t.Helper()
	stdout, _, err := v.CLIStreams(t, env, args...)
	return stdout, err
}

// CLIStreams is CLIEnv that also returns stderr, where the CLI prints the
// warnings of a successful request (a failed one's stderr is in the
// *CLIError too).
func (v *Vault) CLIStreams(t testing.TB, env []string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, v.Bin, args...)
	cmd.Env = childEnv(append([]string{
		"VAULT_ADDR=" + v.Addr,
		"VAULT_TOKEN=" + v.Token,
		"HOME=" + filepath.Join(v.Dir, "home"),
	}, env...)...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	exit := -1
	if cmd.ProcessState != nil {
		exit = cmd.ProcessState.ExitCode()
	}
	t.Logf("$ vault %s  (%s, exit %d)", strings.Join(args, " "), time.Since(start).Round(time.Millisecond), exit)
	if err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return stdout.String(), stderr.String(), &CLIError{Args: args, ExitCode: code, Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
	}
	return stdout.String(), stderr.String(), nil
}

// MustCLI is CLI that fails the test on a non-zero exit.
func (v *Vault) MustCLI(t testing.TB, args ...string) string {
	t.Helper()
	out, err := v.CLI(t, args...)
	if err != nil {
		t.Fatalf("%v\nstdout: %s", err, out)
	}
	return out
}

// MustCLIJSON runs MustCLI and decodes its stdout as a JSON object; pass
// -format=json among args.
func (v *Vault) MustCLIJSON(t testing.TB, args ...string) map[string]any {
	t.Helper()
	return mustJSONObject(t, v.MustCLI(t, args...))
}

// HTTP calls Vault's HTTP API at /v1/path with the root token and a JSON
// body (nil for none), and returns the status and the decoded JSON answer
// (nil when empty).
func (v *Vault) HTTP(t testing.TB, method, path string, body any) (int, map[string]any) {
	t.Helper()
	status, resp, err := v.Request(context.Background(), v.Token, method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return status, resp
}

// Request is HTTP with a token of choice that does not fail the test, for
// use from any goroutine.
func (v *Vault) Request(ctx context.Context, token, method, path string, body any) (int, map[string]any, error) {
	path = strings.TrimPrefix(strings.TrimPrefix(path, "/"), "v1/")
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, v.Addr+"/v1/"+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return resp.StatusCode, nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("HTTP %d, body is not a JSON object: %.200s", resp.StatusCode, raw)
	}
	return resp.StatusCode, m, nil
}

// ---- the dev bootstrap ---------------------------------------------------------------------

// Bootstrapped is what Bootstrap set up.
type Bootstrapped struct {
	Config       string // config name: main
	AppID        string
	PublicKeyPEM string
	Fingerprint  string
}

// Bootstrap does what bootstrap/dev-bootstrap.sh does, through the vault
// CLI: a key generated inside Vault at pure1/config/main, its public key
// registered with the emulator, app_id and the emulator's token_url written,
// and roles readonly (access_token) and readonly-jwt (jwt).
func Bootstrap(t testing.TB, v *Vault, e *Emulator) *Bootstrapped {
	t.Helper()
	gen := v.MustCLIJSON(t, "write", "-format=json", Mount+"/config/main", "generate_key=true")
	b := &Bootstrapped{
		Config:       "main",
		PublicKeyPEM: jstr(t, gen, "data", "public_key"),
		Fingerprint:  jstr(t, gen, "data", "public_key_fingerprint"),
	}
	b.AppID = e.Register(t, b.PublicKeyPEM)
	v.MustCLI(t, "write", Mount+"/config/main", "app_id="+b.AppID, "token_url="+e.TokenURL())
	v.MustCLI(t, "write", Mount+"/roles/readonly", "config=main")
	v.MustCLI(t, "write", Mount+"/roles/readonly-jwt", "config=main", "credential_type=jwt")
	return b
}

// ---- JSON helpers -------------------------------------------------------------------------

func mustJSONObject(t testing.TB, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("not a JSON object (%v):\n%s", err, s)
	}
	return m
}

// jget walks nested objects by keys; nil if a key is missing.
func jget(m map[string]any, keys ...string) any {
	var cur any = m
	for _, k := range keys {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[k]
	}
	return cur
}

// jstr is the string at keys; the test fails if it is not a non-empty string.
func jstr(t testing.TB, m map[string]any, keys ...string) string {
	t.Helper()
	s, ok := jget(m, keys...).(string)
	if !ok || s == "" {
		t.Fatalf("no string at %s in %v", strings.Join(keys, "."), m)
	}
	return s
}

// jint is the integer at keys (a json.Number or float64).
func jint(t testing.TB, m map[string]any, keys ...string) int64 {
	t.Helper()
	switch n := jget(m, keys...).(type) {
	case json.Number:
		i, err := n.Int64()
		if err != nil {
			t.Fatalf("%s = %s is not an integer", strings.Join(keys, "."), n)
		}
		return i
	case float64:
		return int64(n)
	}
	t.Fatalf("no number at %s in %v", strings.Join(keys, "."), m)
	return 0
}

// lines splits output into trimmed, non-empty lines.
func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}
