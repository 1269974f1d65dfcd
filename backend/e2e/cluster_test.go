package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCluster is the high-availability end-to-end test (PURE1_CLUSTER=1, make
// test-cluster): a real 3-node Vault cluster on Raft storage, made by
// scripts/cluster.sh, with the plugin mounted at pure1/ and the Pure1
// emulator behind it.
//
//  1. Through the leader: a config with a key generated in Vault and one with
//     an imported encrypted key, both registered with the emulator, and an
//     access_token and a jwt role on each. Creds are read through every node
//     (standbys forward to the active node) and proven usable.
//  2. The active node is SIGKILLed while a reader keeps reading
//     pure1/creds/readonly round-robin through the survivors, ~10 reads/s.
//     A survivor takes over with the same keys, configs and roles; the killed
//     node is restarted, rejoins and serves again.
//  3. The plugin is upgraded in place to v0.2.1 (register, tune, global
//     reload): every node serves creds from the new version with the same
//     keys, and so does the next active node after a step-down.
//
// It logs the failover figures (reads attempted and failed, time to recover,
// time for the restarted node to serve) and a one-line summary.
func TestCluster(t *testing.T) {
	if os.Getenv("PURE1_CLUSTER") != "1" {
		t.Skip("set PURE1_CLUSTER=1 (make test-cluster) to run the 3-node Raft cluster test")
	}
	testStart := time.Now()
	c := startRaftCluster(t)
	emu := StartEmulator(t)
	work := t.TempDir()

	// ---- 1. configure through the leader; read through every node ----------------

	leader := c.waitActive(t, 30*time.Second, 0)
	t.Logf("cluster up in %s; node%d is active", c.startTime.Round(time.Second), leader)

	gen := c.node[leader].MustCLIJSON(t, "write", "-format=json", "pure1/config/main", "generate_key=true")
	genPub := jstr(t, gen, "data", "public_key")
	genApp := emu.Register(t, genPub)
	c.node[leader].MustCLI(t, "write", "pure1/config/main", "app_id="+genApp, "token_url="+emu.TokenURL())

	const password = "cluster-test-passphrase"
	encPEM := filepath.Join(work, "enc.pem")
	clRun(t, "", nil, "openssl", "genrsa", "-aes256", "-passout", "pass:"+password, "-out", encPEM, "2048")
	impPub := clRun(t, "", nil, "openssl", "rsa", "-in", encPEM, "-passin", "pass:"+password, "-pubout")
	impApp := emu.Register(t, impPub)
	// The password from a file (the CLI's @file), so the logged command line does not show it.
	pwFile := filepath.Join(work, "enc.pass")
	if err := os.WriteFile(pwFile, []byte(password), 0o600); err != nil {
		t.Fatal(err)
	}
	c.node[leader].MustCLI(t, "write", "pure1/config/imported", "private_key=@"+encPEM, "private_key_password=@"+pwFile,
		"app_id="+impApp, "token_url="+emu.TokenURL())

	roles := []clusterRole{
		{name: "readonly", config: "main", jwt: false},
		{name: "readonly-jwt", config: "main", jwt: true},
		{name: "imported-readonly", config: "imported", jwt: false},
		{name: "imported-readonly-jwt", config: "imported", jwt: true},
	}
	for _, r := range roles {
		c.node[leader].MustCLI(t, "write", "pure1/roles/"+r.name, "config="+r.config, "credential_type="+r.credentialType())
	}

	configs := map[string]clusterConfig{}
	for name, app := range map[string]string{"main": genApp, "imported": impApp} {
		cfg := c.readConfig(t, leader, name)
		if cfg.appID != app {
			t.Fatalf("config %s: app_id %q, want %q", name, cfg.appID, app)
		}
		configs[name] = cfg
		t.Logf("config %s: key %s, fingerprint %s, app %s", name, cfg.keySource, cfg.fingerprint, cfg.appID)
	}
	if clPEMFingerprint(t, genPub) != configs["main"].fingerprint || clPEMFingerprint(t, impPub) != configs["imported"].fingerprint {
		t.Fatalf("a config's fingerprint is not the SHA-256 of its public key")
	}

	for _, n := range c.nodes() {
		for _, r := range roles {
			c.checkCreds(t, emu, n, r, configs[r.config])
		}
	}
	t.Logf("all %d roles issue usable creds through each of the 3 nodes", len(roles))

	// A static role on a config of its own, against an emulator of its own,
	// so that its exchanges are counted apart from the dynamic reads below.
	staticEmu := StartEmulator(t)
	staticGen := c.node[leader].MustCLIJSON(t, "write", "-format=json", "pure1/config/static", "generate_key=true")
	c.node[leader].MustCLI(t, "write", "pure1/config/static", "app_id="+staticEmu.Register(t, jstr(t, staticGen, "data", "public_key")),
		"token_url="+staticEmu.TokenURL())
	c.node[leader].MustCLI(t, "write", "pure1/static-roles/fleet", "config=static", "rotation_period=10m")
	staticTok := c.staticToken(t, leader)
	for _, n := range c.nodes() {
		if got := c.staticToken(t, n); got != staticTok {
			t.Fatalf("node%d serves another static token than node%d", n, leader)
		}
	}
	staticExchanges := staticEmu.Stats(t)["tokens_issued"]
	configs["static"] = c.readConfig(t, leader, "static")

	// ---- 2. kill the active node while reading through the survivors ---------------

	var survivors []int
	for _, n := range c.nodes() {
		if n != leader {
			survivors = append(survivors, n)
		}
	}
	rd := c.startReader(emu, survivors, 100*time.Millisecond)
	// A baseline of reads through the healthy cluster, for at least 2s, and
	// until Raft's start-up timeouts are over: Vault triples a node's Raft
	// heartbeat timeout (1s x performance_multiplier, default 5) for the first
	// 3-6 timeouts after it starts, so a kill sooner would measure that, not
	// the steady state.
	mult := 5
	if v, err := strconv.Atoi(os.Getenv("RAFT_PERF_MULTIPLIER")); err == nil && v > 0 {
		mult = v
	}
	startup := time.Duration(6*mult)*time.Second + time.Second
	wait := max(2*time.Second, time.Until(c.readyAt.Add(startup)))
	t.Logf("reading through node%d and node%d for %s before killing node%d (Raft performance_multiplier %d: start-up timeouts over %s after start)",
		survivors[0], survivors[1], wait.Round(time.Second), leader, mult, startup)
	time.Sleep(wait)

	killAt := time.Now()
	c.script(t, "kill-node", fmt.Sprint(leader))
	// The node is surely dead only once the script has returned: reads that
	// started while it ran may still have reached it and succeeded, which
	// says nothing of recovery.
	killDone := time.Now()
	// Recovered: reads through a survivor succeed again. Each standby learns
	// of the new active node on its own, so wait until both have served.
	servedAt := map[int]time.Time{}
	var firstServed, allServed time.Time
	for _, n := range survivors {
		at, ok := rd.firstSuccessAfter(killDone, n, 90*time.Second)
		if !ok {
			rd.stop()
			t.Fatalf("no read through node%d succeeded within 90s of killing node%d", n, leader)
		}
		servedAt[n] = at
		if firstServed.IsZero() || at.Before(firstServed) {
			firstServed = at
		}
		if at.After(allServed) {
			allServed = at
		}
	}
	timeToRecover, timeToRecoverAll := firstServed.Sub(killAt), allServed.Sub(killAt)
	time.Sleep(3 * time.Second) // keep reading after the takeover: it must stay up
	samples := rd.stop()

	// A read counts as "during the failover" unless it had ended before the kill.
	var base, during, failed, failedAfter int
	kinds := map[string]*clusterErrKind{}
	var kindOrder []string
	for _, s := range samples {
		if s.end.Before(killAt) {
			base++
			if s.err != nil {
				t.Errorf("read through node%d before the kill failed: %v", s.node, s.err)
			}
			continue
		}
		during++
		if s.err == nil {
			continue
		}
		failed++
		if s.start.After(allServed) {
			failedAfter++
		}
		key := fmt.Sprintf("node%d: %s", s.node, clErrKind(s.err))
		k, ok := kinds[key]
		if !ok {
			k = &clusterErrKind{first: s.start.Sub(killAt)}
			kinds[key] = k
			kindOrder = append(kindOrder, key)
		}
		k.count++
		k.last = s.start.Sub(killAt)
	}
	newLeader := c.waitActive(t, 30*time.Second, leader)
	t.Logf("failover: node%d killed, node%d active; %d reads before the kill (all ok); %d reads attempted from the kill on, %d failed; "+
		"time to recover %s (first read served by a survivor), %s (both survivors serving: node%d after %s, node%d after %s)",
		leader, newLeader, base, during, failed, timeToRecover.Round(time.Millisecond), timeToRecoverAll.Round(time.Millisecond),
		survivors[0], servedAt[survivors[0]].Sub(killAt).Round(time.Millisecond), survivors[1], servedAt[survivors[1]].Sub(killAt).Round(time.Millisecond))
	for _, key := range kindOrder {
		k := kinds[key]
		t.Logf("  %3d failed reads, started +%s to +%s after the kill, through %s", k.count, k.first.Round(time.Millisecond), k.last.Round(time.Millisecond), key)
	}
	if failedAfter > 0 {
		t.Errorf("%d reads failed after both survivors had served again", failedAfter)
	}

	// The vault CLI, through each survivor: same keys, all configs and roles.
	for _, n := range survivors {
		out := c.node[n].MustCLIJSON(t, "read", "-format=json", "pure1/creds/readonly")
		if err := clAPIAccepts(emu, jstr(t, out, "data", "access_token")); err != nil {
			t.Fatalf("access token read through node%d after the failover: %v", n, err)
		}
	}
	c.checkState(t, survivors[0], configs, roles)

	// The static token survives the failover as it was: every survivor
	// serves the stored token without asking Pure1 ...
	for _, n := range survivors {
		if got := c.staticToken(t, n); got != staticTok {
			t.Errorf("node%d serves another static token after the failover", n)
		}
	}
	if n := staticEmu.Stats(t)["tokens_issued"]; n != staticExchanges {
		t.Errorf("the failover cost %d static exchange(s), want 0", n-staticExchanges)
	}
	if err := clAPIAccepts(staticEmu, staticTok); err != nil {
		t.Errorf("the static token after the failover: %v", err)
	}
	// ... and the new active node carries on refreshing: shorten the period
	// and the token is replaced by itself.
	c.node[survivors[0]].MustCLI(t, "write", "pure1/static-roles/fleet", "rotation_period=10s")
	eventually(t, 60*time.Second, 500*time.Millisecond, "a refresh by node"+fmt.Sprint(newLeader), func() (bool, string) {
		return c.staticToken(t, survivors[1]) != staticTok, "still the token from before the failover"
	})
	if n := staticEmu.Stats(t)["tokens_issued"]; n <= staticExchanges {
		t.Errorf("no exchange after the period was shortened")
	}
	if err := clAPIAccepts(staticEmu, c.staticToken(t, survivors[0])); err != nil {
		t.Errorf("the static token refreshed by the new active node: %v", err)
	}
	t.Logf("static role: the same token through both survivors after the failover with 0 exchanges; node%d refreshed it afterwards", newLeader)

	// Restart the killed node: it rejoins and serves.
	restartAt := time.Now()
	c.script(t, "restart-node", fmt.Sprint(leader))
	restartedServing := c.waitCreds(t, emu, leader, 60*time.Second).Sub(restartAt)
	t.Logf("node%d restarted: unsealed, rejoined and serving creds %s after restart-node began", leader, restartedServing.Round(time.Millisecond))
	for _, n := range c.nodes() {
		for _, r := range roles {
			c.checkCreds(t, emu, n, r, configs[r.config])
		}
	}
	c.checkVoters(t, newLeader)

	// ---- 3. upgrade the plugin in place ------------------------------------------------

	upgradeStart := time.Now()
	newVersion := "v0.2.1"
	if c.version == newVersion {
		newVersion = "v0.1.2"
	}
	newCmd := PluginName + "-" + newVersion
	// Built once and copied into every node's plugin directory: whichever
	// node is active runs it from its own.
	built := filepath.Join(work, newCmd)
	clRun(t, c.root, childEnv("CGO_ENABLED=0"), clGoTool(), "build", "-trimpath",
		"-ldflags", "-s -w -X "+ModulePath+"/backend.Version="+newVersion,
		"-o", built, "./cmd/vault-plugin-secrets-pure1")
	newSHA := FileSHA256(t, built)
	for _, n := range c.nodes() {
		copyFile(t, built, filepath.Join(c.dir, fmt.Sprintf("node%d", n), "plugins", newCmd), 0o755)
	}
	active := c.waitActive(t, 30*time.Second, 0)
	c.node[active].MustCLI(t, "plugin", "register", "-sha256="+newSHA, "-version="+newVersion, "-command="+newCmd,
		"-env", "PURE1_ALLOWED_TOKEN_HOSTS=loopback", "secret", PluginName) // the same -env as the first registration: the emulators are on loopback
	c.node[active].MustCLI(t, "secrets", "tune", "-plugin-version="+newVersion, "pure1/")
	c.node[active].MustCLI(t, "plugin", "reload", "-type=secret", "-plugin="+PluginName, "-scope=global")
	for _, n := range c.nodes() {
		c.waitMountVersion(t, n, newVersion, newSHA, 30*time.Second)
	}
	c.checkState(t, active, configs, roles)
	for _, n := range c.nodes() {
		for _, r := range roles {
			c.checkCreds(t, emu, n, r, configs[r.config])
		}
	}
	upgradeTime := time.Since(upgradeStart)
	t.Logf("upgrade: %s registered (sha256 %s), tuned and reloaded; every node shows it running and serves creds with the same keys (%s including the build)",
		newVersion, newSHA[:12], upgradeTime.Round(time.Millisecond))

	// The next active node starts the new version from its own plugin directory.
	handoffStart := time.Now()
	c.node[active].MustCLI(t, "operator", "step-down")
	next := c.waitActive(t, 60*time.Second, active)
	c.waitCreds(t, emu, next, 60*time.Second)
	handoff := time.Since(handoffStart)
	c.waitMountVersion(t, next, newVersion, newSHA, 30*time.Second)
	// Each standby learns of the new active node on its own; until it has,
	// it redirects to the one that stepped down.
	for _, n := range c.nodes() {
		c.waitCreds(t, emu, n, 60*time.Second)
	}
	for _, n := range c.nodes() {
		for _, r := range roles {
			c.checkCreds(t, emu, n, r, configs[r.config])
		}
	}
	t.Logf("step-down: node%d handed over to node%d, which serves %s creds %s later", active, next, newVersion, handoff.Round(time.Millisecond))

	t.Logf("SUMMARY cluster: failover of the active node: %d reads attempted, %d failed, time to recover %s (both survivors %s); "+
		"restarted node serving after %s; plugin upgrade %s->%s kept keys on all 3 nodes (%s); step-down handoff %s; whole test %s",
		during, failed, timeToRecover.Round(time.Millisecond), timeToRecoverAll.Round(time.Millisecond), restartedServing.Round(time.Millisecond),
		c.version, newVersion, upgradeTime.Round(time.Second), handoff.Round(time.Millisecond), time.Since(testStart).Round(time.Second))
}

// staticToken reads static-creds/fleet through node n.
func (c *raftCluster) staticToken(t *testing.T, n int) string {
	t.Helper()
	return jstr(t, c.node[n].MustCLIJSON(t, "read", "-format=json", "pure1/static-creds/fleet"), "data", "access_token")
}

// raftCluster is a cluster started by scripts/cluster.sh in a temporary directory.
type raftCluster struct {
	root, dir, vaultBin, binDir, version string
	addrs                                map[int]string
	node                                 map[int]*Vault // the harness's CLI and HTTP helpers, per node
	token                                string
	client                               *http.Client
	startTime                            time.Duration
	readyAt                              time.Time
}

func startRaftCluster(t *testing.T) *raftCluster {
	t.Helper()
	c := &raftCluster{
		root:     RepoRoot(t),
		vaultBin: VaultBin(t),
		binDir:   BinDir(t),
		version:  PluginVersion(),
		addrs:    map[int]string{},
		node:     map[int]*Vault{},
		client: &http.Client{
			Timeout: 5 * time.Second,
			// A read "through node N" must be served by node N (forwarding to
			// the active node if it is a standby), not redirected elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	BinPath(t, PluginName) // fails with a hint when it is not built
	// PURE1_CLUSTER_DIR keeps the cluster's directory (configs, logs, Raft
	// data) after the test, for a look at what happened.
	if c.dir = os.Getenv("PURE1_CLUSTER_DIR"); c.dir == "" {
		c.dir = t.TempDir()
	}
	// Registered after t.TempDir, so it runs before the directory is removed:
	// stop every node, also when the test failed half-way.
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs(t)
		}
		began := time.Now()
		out, err := c.run("stop")
		if err != nil {
			t.Errorf("cluster.sh stop: %v\n%s", err, out)
			return
		}
		t.Logf("cluster.sh stop (%s):\n%s", time.Since(began).Round(time.Millisecond), strings.TrimRight(out, "\n"))
	})
	began := time.Now()
	c.script(t, "start")
	c.readyAt = time.Now()
	c.startTime = c.readyAt.Sub(began)

	env := clReadEnv(t, filepath.Join(c.dir, "env"))
	c.token = env["VAULT_TOKEN"]
	if c.token == "" {
		t.Fatalf("%s/env has no VAULT_TOKEN", c.dir)
	}
	for _, n := range c.nodes() {
		c.addrs[n] = env[fmt.Sprintf("VAULT_ADDR_%d", n)]
		if c.addrs[n] == "" {
			t.Fatalf("%s/env has no VAULT_ADDR_%d", c.dir, n)
		}
		c.node[n] = AttachVault(t, c.addrs[n], c.token)
	}
	return c
}

func (c *raftCluster) nodes() []int { return []int{1, 2, 3} }

// run runs scripts/cluster.sh CMD ARGS... DIR.
func (c *raftCluster) run(args ...string) (string, error) {
	args = append(append([]string{filepath.Join(c.root, "scripts", "cluster.sh")}, args...), c.dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", args...)
	cmd.Dir = c.root
	cmd.Env = childEnv("VAULT_BIN="+c.vaultBin, "PURE1_BIN_DIR="+c.binDir, "VERSION="+c.version, "NO_COLOR=1")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *raftCluster) script(t *testing.T, args ...string) string {
	t.Helper()
	began := time.Now()
	out, err := c.run(args...)
	t.Logf("cluster.sh %s (%s):\n%s", strings.Join(args, " "), time.Since(began).Round(time.Millisecond), strings.TrimRight(out, "\n"))
	if err != nil {
		t.Fatalf("cluster.sh %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (c *raftCluster) cliList(t *testing.T, n int, path string) []string {
	t.Helper()
	var names []string
	out := c.node[n].MustCLI(t, "list", "-format=json", path)
	if err := json.Unmarshal([]byte(out), &names); err != nil {
		t.Fatalf("vault list %s: %v\n%s", path, err, out)
	}
	slices.Sort(names)
	return names
}

// api sends one request to node n with the root token and decodes the answer.
func (c *raftCluster) api(ctx context.Context, n int, method, path string) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.addrs[n]+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Vault-Token", c.token)
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && loc != "" {
		// A standby that cannot forward redirects to the node it believes active.
		u, _ := url.Parse(loc)
		return nil, fmt.Errorf("HTTP %d: redirect to %s", resp.StatusCode, u.Host)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", path, err)
	}
	return m, nil
}

// health is node n's sys/health status: 200 active, 429 standby, 503 sealed, 0 down.
func (c *raftCluster) health(n int) int {
	resp, err := c.client.Get(c.addrs[n] + "/v1/sys/health")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitActive waits until a node other than not (0: any) is active.
func (c *raftCluster) waitActive(t *testing.T, limit time.Duration, not int) int {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		for _, n := range c.nodes() {
			if n != not && c.health(n) == http.StatusOK {
				return n
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no active node (other than node%d) within %s", not, limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitCreds waits until pure1/creds/readonly read through node n gives an
// access token the emulator accepts; returns when it did.
func (c *raftCluster) waitCreds(t *testing.T, emu *Emulator, n int, limit time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(limit)
	var err error
	for time.Now().Before(deadline) {
		if err = c.readCreds(context.Background(), emu, n); err == nil {
			return time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("node%d did not serve pure1/creds/readonly within %s: %v", n, limit, err)
	return time.Time{}
}

// readCreds reads pure1/creds/readonly through node n and checks its access
// token against the emulator's API.
func (c *raftCluster) readCreds(ctx context.Context, emu *Emulator, n int) error {
	m, err := c.api(ctx, n, http.MethodGet, "/v1/pure1/creds/readonly")
	if err != nil {
		return err
	}
	data, _ := m["data"].(map[string]any)
	tok, _ := data["access_token"].(string)
	if tok == "" {
		return errors.New("no access_token in the response")
	}
	return clAPIAccepts(emu, tok)
}

type clusterRole struct {
	name, config string
	jwt          bool
}

func (r clusterRole) credentialType() string {
	if r.jwt {
		return "jwt"
	}
	return "access_token"
}

type clusterConfig struct {
	appID, publicKey, fingerprint, keySource string
}

func (c *raftCluster) readConfig(t *testing.T, n int, name string) clusterConfig {
	t.Helper()
	m := c.node[n].MustCLIJSON(t, "read", "-format=json", "pure1/config/"+name)
	return clusterConfig{
		appID:       jstr(t, m, "data", "app_id"),
		publicKey:   jstr(t, m, "data", "public_key"),
		fingerprint: jstr(t, m, "data", "public_key_fingerprint"),
		keySource:   jstr(t, m, "data", "key_source"),
	}
}

// checkCreds reads creds of role r through node n over HTTP: an access token
// must be accepted by the emulator's API; a JWT must be signed by the config's
// key and issued by its application.
func (c *raftCluster) checkCreds(t *testing.T, emu *Emulator, n int, r clusterRole, cfg clusterConfig) {
	t.Helper()
	m, err := c.api(context.Background(), n, http.MethodGet, "/v1/pure1/creds/"+r.name)
	if err != nil {
		t.Fatalf("creds/%s through node%d: %v", r.name, n, err)
	}
	if app := jstr(t, m, "data", "app_id"); app != cfg.appID {
		t.Fatalf("creds/%s through node%d: app_id %q, want %q", r.name, n, app, cfg.appID)
	}
	if r.jwt {
		if err := clVerifyJWT(jstr(t, m, "data", "jwt"), cfg); err != nil {
			t.Fatalf("creds/%s through node%d: %v", r.name, n, err)
		}
		return
	}
	if err := clAPIAccepts(emu, jstr(t, m, "data", "access_token")); err != nil {
		t.Fatalf("creds/%s through node%d: %v", r.name, n, err)
	}
}

// checkState checks through node n that both configs kept their keys and app
// IDs, and every role its config and type.
func (c *raftCluster) checkState(t *testing.T, n int, configs map[string]clusterConfig, roles []clusterRole) {
	t.Helper()
	var wantConfigs []string
	for name := range configs {
		wantConfigs = append(wantConfigs, name)
	}
	slices.Sort(wantConfigs)
	if got := c.cliList(t, n, "pure1/config"); !slices.Equal(got, wantConfigs) {
		t.Fatalf("configs through node%d: %v, want %v", n, got, wantConfigs)
	}
	for name, want := range configs {
		if got := c.readConfig(t, n, name); got != want {
			t.Fatalf("config %s through node%d changed:\n got %+v\nwant %+v", name, n, got, want)
		}
	}
	var want []string
	for _, r := range roles {
		want = append(want, r.name)
	}
	slices.Sort(want)
	if got := c.cliList(t, n, "pure1/roles"); !slices.Equal(got, want) {
		t.Fatalf("roles through node%d: %v, want %v", n, got, want)
	}
	for _, r := range roles {
		m := c.node[n].MustCLIJSON(t, "read", "-format=json", "pure1/roles/"+r.name)
		if cfg, typ := jstr(t, m, "data", "config"), jstr(t, m, "data", "credential_type"); cfg != r.config || typ != r.credentialType() {
			t.Fatalf("role %s through node%d: config %q type %q, want %q %q", r.name, n, cfg, typ, r.config, r.credentialType())
		}
	}
}

// checkVoters checks through node n that all 3 nodes are Raft voters again.
func (c *raftCluster) checkVoters(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		m := c.node[n].MustCLIJSON(t, "operator", "raft", "list-peers", "-format=json")
		var voters []string
		data, _ := m["data"].(map[string]any)
		config, _ := data["config"].(map[string]any)
		servers, _ := config["servers"].([]any)
		for _, s := range servers {
			if s, _ := s.(map[string]any); s["voter"] == true {
				voters = append(voters, fmt.Sprint(s["node_id"]))
			}
		}
		if len(voters) == 3 {
			t.Logf("raft voters: %v", voters)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("raft voters after 60s: %v, want 3", voters)
		}
		time.Sleep(time.Second)
	}
}

// waitMountVersion waits until `vault secrets list -detailed` through node n
// shows pure1/ pinned to and running version (with binary sha256).
func (c *raftCluster) waitMountVersion(t *testing.T, n int, version, sha string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		m := c.node[n].MustCLIJSON(t, "secrets", "list", "-detailed", "-format=json")
		mount, _ := m["pure1/"].(map[string]any)
		pinned, _ := mount["plugin_version"].(string)
		running, _ := mount["running_plugin_version"].(string)
		runningSHA, _ := mount["running_sha256"].(string)
		if pinned == version && running == version && runningSHA == sha {
			t.Logf("node%d: secrets list -detailed shows pure1/ at %s, running %s (sha256 %s)", n, pinned, running, runningSHA[:12])
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node%d: pure1/ plugin_version %q running %q sha256 %q after %s, want %s (sha256 %s)",
				n, pinned, running, runningSHA, limit, version, sha)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (c *raftCluster) dumpLogs(t *testing.T) {
	if out, err := c.run("status"); err == nil {
		t.Logf("cluster.sh status:\n%s", out)
	}
	for _, n := range c.nodes() {
		f := filepath.Join(c.dir, fmt.Sprintf("node%d", n), "vault.log")
		b, err := os.ReadFile(f)
		if err != nil {
			t.Logf("%s: %v", f, err)
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 80 {
			lines = lines[len(lines)-80:]
		}
		t.Logf("---- last %d lines of node%d's vault.log ----\n%s", len(lines), n, strings.Join(lines, "\n"))
	}
}

// ---- the reader that runs through the failover ---------------------------------------

type clusterReadSample struct {
	node       int
	start, end time.Time
	err        error
}

type clusterReader struct {
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	samples []clusterReadSample
}

// startReader reads pure1/creds/readonly through nodes, round-robin, one read
// every interval (a read that takes longer delays the next), until stop.
func (c *raftCluster) startReader(emu *Emulator, nodes []int, interval time.Duration) *clusterReader {
	ctx, cancel := context.WithCancel(context.Background())
	r := &clusterReader{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			n := nodes[i%len(nodes)]
			s := clusterReadSample{node: n, start: time.Now()}
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			s.err = c.readCreds(rctx, emu, n)
			rcancel()
			s.end = time.Now()
			if ctx.Err() != nil {
				return // stopped mid-read: not a sample
			}
			r.mu.Lock()
			r.samples = append(r.samples, s)
			r.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return r
}

// firstSuccessAfter waits for the first successful read through node that
// started at or after t0 and returns when it ended.
func (r *clusterReader) firstSuccessAfter(t0 time.Time, node int, limit time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, s := range r.samples {
			if s.node == node && !s.start.Before(t0) && s.err == nil {
				r.mu.Unlock()
				return s.end, true
			}
		}
		r.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	return time.Time{}, false
}

func (r *clusterReader) stop() []clusterReadSample {
	r.cancel()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.samples)
}

type clusterErrKind struct {
	count       int
	first, last time.Duration
}

var clPortRe = regexp.MustCompile(`127\.0\.0\.1:\d+`)

// clErrKind is an error's text with ports masked and length capped, to group
// a failover's failed reads by cause.
func clErrKind(err error) string {
	s := clPortRe.ReplaceAllString(err.Error(), "127.0.0.1:PORT")
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	return s
}

// clAPIAccepts calls the emulated Pure1 API with the access token; nil if it
// was accepted.
func clAPIAccepts(emu *Emulator, token string) error {
	status, body, err := emu.CallAPI(token)
	if err != nil {
		return fmt.Errorf("GET /api/1.latest/arrays with the access token: %w", err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET /api/1.latest/arrays with the access token: HTTP %d: %v", status, body)
	}
	return nil
}

// ---- small helpers ------------------------------------------------------------------

// clVerifyJWT checks an RS256 JWT's signature against the config's public key and
// that its issuer is the config's application.
func clVerifyJWT(tok string, cfg clusterConfig) error {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return fmt.Errorf("jwt has %d parts, want 3", len(parts))
	}
	block, _ := pem.Decode([]byte(cfg.publicKey))
	if block == nil {
		return errors.New("config public_key is not PEM")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return err
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("config public key is %T, want RSA", pub)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("jwt signature: %w", err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(rsaPub, crypto.SHA256, digest[:], sig); err != nil {
		return fmt.Errorf("jwt is not signed by the config's key: %w", err)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return fmt.Errorf("jwt claims: %w", err)
	}
	var claims struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return fmt.Errorf("jwt claims: %w", err)
	}
	if claims.Iss != cfg.appID {
		return fmt.Errorf("jwt iss %q, want %q", claims.Iss, cfg.appID)
	}
	return nil
}

// clPEMFingerprint is the lowercase hex SHA-256 of a PEM public key's DER.
func clPEMFingerprint(t *testing.T, p string) string {
	t.Helper()
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		t.Fatalf("not PEM: %q", p)
	}
	sum := sha256.Sum256(block.Bytes)
	return hex.EncodeToString(sum[:])
}

// clRun runs a command and returns its stdout; fails the test on error.
func clRun(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, clRedact(args), err, stderr.String())
	}
	return stdout.String()
}

// clRedact hides passwords in logged command lines.
func clRedact(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "pass:"):
			a = "pass:REDACTED"
		case strings.HasPrefix(a, "private_key_password="):
			a = "private_key_password=REDACTED"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// clReadEnv reads the KEY=value (or export KEY=value) lines of DIR/env.
func clReadEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "export ")
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	return env
}

// clGoTool is the go command: $GO, else go on PATH.
func clGoTool() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

// TestClusterRotation (PURE1_CLUSTER=1) rotates a key through the standbys of
// a 3-node Raft cluster: the pending key is written through one standby and
// promoted, verified, through the other, and both land on the active node.
// Afterwards creds through every node carry the new app_id and JWTs verify
// with the new key only, also once the old application is deleted.
func TestClusterRotation(t *testing.T) {
	if os.Getenv("PURE1_CLUSTER") != "1" {
		t.Skip("set PURE1_CLUSTER=1 (make test-cluster) to run the 3-node Raft cluster tests")
	}
	c := startRaftCluster(t)
	emu := StartEmulator(t)
	leader := c.waitActive(t, 30*time.Second, 0)
	var standbys []int
	for _, n := range c.nodes() {
		if n != leader {
			standbys = append(standbys, n)
		}
	}

	gen := c.node[leader].MustCLIJSON(t, "write", "-format=json", "pure1/config/main", "generate_key=true")
	oldApp := emu.Register(t, jstr(t, gen, "data", "public_key"))
	c.node[leader].MustCLI(t, "write", "pure1/config/main", "app_id="+oldApp, "token_url="+emu.TokenURL())
	roles := []clusterRole{{name: "readonly", config: "main"}, {name: "readonly-jwt", config: "main", jwt: true}}
	for _, r := range roles {
		c.node[leader].MustCLI(t, "write", "pure1/roles/"+r.name, "config=main", "credential_type="+r.credentialType())
	}
	before := c.readConfig(t, leader, "main")
	for _, n := range c.nodes() {
		for _, r := range roles {
			c.checkCreds(t, emu, n, r, before)
		}
	}

	// Step 1 through one standby, step 3 through the other.
	pending := c.node[standbys[0]].MustCLIJSON(t, "write", "-format=json", "pure1/config/main/rotate", "generate_key=true")
	pendingPub := jstr(t, pending, "data", "public_key")
	onLeader := c.node[leader].MustCLIJSON(t, "read", "-format=json", "pure1/config/main/rotate")
	if jget(onLeader, "data", "public_key_fingerprint") != jget(pending, "data", "public_key_fingerprint") {
		t.Fatalf("the pending key written through node%d is not the active node's: %v", standbys[0], onLeader["data"])
	}
	for _, n := range c.nodes() { // still the old key everywhere
		for _, r := range roles {
			c.checkCreds(t, emu, n, r, before)
		}
	}
	newApp := emu.Register(t, pendingPub)
	c.node[standbys[1]].MustCLI(t, "write", "pure1/config/main/rotate", "app_id="+newApp)

	after := c.readConfig(t, leader, "main")
	if after.appID != newApp || after.publicKey != pendingPub || after.fingerprint == before.fingerprint {
		t.Fatalf("after the promotion through node%d, the active node has app_id %q fingerprint %s", standbys[1], after.appID, after.fingerprint)
	}
	emu.Unregister(t, oldApp)
	for _, n := range c.nodes() {
		if got := c.readConfig(t, n, "main"); got != after {
			t.Errorf("node%d reads config main as %+v, want %+v", n, got, after)
		}
		for _, r := range roles {
			c.checkCreds(t, emu, n, r, after)
		}
		m, err := c.api(context.Background(), n, http.MethodGet, "/v1/pure1/creds/readonly-jwt")
		if err != nil {
			t.Fatal(err)
		}
		// The old key with the new app ID: only the signature can fail.
		if clVerifyJWT(jstr(t, m, "data", "jwt"), clusterConfig{appID: newApp, publicKey: before.publicKey}) == nil {
			t.Errorf("node%d: a JWT after the rotation verifies with the old key", n)
		}
	}
	t.Logf("rotated through node%d and node%d; node%d (active) and both standbys issue with %s", standbys[0], standbys[1], leader, newApp)
}
