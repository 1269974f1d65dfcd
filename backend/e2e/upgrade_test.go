package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// The upgrade tests start from what the last release stored and prove that an
// in-place upgrade keeps every byte of it: scripts/build-old-plugin.sh builds
// the plugin at the release's commit, a real Vault is filled through that
// build with everything the release supports, and the mount is moved to the
// working tree's build the way the README says (vault plugin register,
// vault secrets tune -plugin-version, vault plugin reload) while readers read
// credentials through the move.

// upgradeHostsEnv is what both builds are registered with, as the docs
// register the plugin for a local emulator: the working tree's build refuses
// loopback token and array hosts unless the registrar allows them, and the
// release, which allowed loopback anyway, takes the word as one more host
// name.
const upgradeHostsEnv = "PURE1_ALLOWED_TOKEN_HOSTS=loopback"

// oldRelease is the last release's plugin, as scripts/build-old-plugin.sh
// built it.
type oldRelease struct {
	Bin, Commit, Version, SHA256 string
	BuildTime                    time.Duration // what the script took here (0.0s when cached)
}

// buildOldRelease runs scripts/build-old-plugin.sh. make test runs it before
// the tests; here it answers from its cache at once.
func buildOldRelease(t testing.TB) oldRelease {
	t.Helper()
	root := RepoRoot(t)
	began := time.Now()
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "build-old-plugin.sh"))
	cmd.Dir = root
	cmd.Env = childEnv()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/build-old-plugin.sh: %v\n%s", err, stderr.String())
	}
	dir := strings.TrimSpace(string(out))
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("the last release's build in %s: %v", dir, err)
		}
		return strings.TrimSpace(string(b))
	}
	r := oldRelease{Bin: filepath.Join(dir, PluginName), Commit: read("COMMIT"), Version: read("VERSION"), BuildTime: time.Since(began)}
	r.SHA256 = FileSHA256(t, r.Bin)
	// Registered by its SHA256SUMS line, as an operator registers a release.
	if sums := read("SHA256SUMS"); !strings.HasPrefix(sums, r.SHA256+" ") {
		t.Fatalf("%s/SHA256SUMS says %q; the binary's sha256 is %s", dir, sums, r.SHA256)
	}
	t.Logf("last release: %s at %s (sha256 %s); scripts/build-old-plugin.sh took %s",
		r.Version, r.Commit[:12], r.SHA256[:12], r.BuildTime.Round(time.Millisecond))
	return r
}

// nextBuild is the working tree's plugin and the version it reports: bin/'s
// when that version is not the release's. Otherwise (VERSION not moved on
// yet) the tree is built here under another version, since Vault refuses to
// register a binary under a version other than the one it reports.
func nextBuild(t *testing.T, old oldRelease) (bin, version string) {
	t.Helper()
	if v := PluginVersion(); v != old.Version {
		return BinPath(t, PluginName), v
	}
	version = "v0.2.0-dev"
	bin = filepath.Join(t.TempDir(), PluginName+"-"+version)
	began := time.Now()
	clRun(t, RepoRoot(t), childEnv("CGO_ENABLED=0"), clGoTool(), "build", "-trimpath",
		"-ldflags", "-s -w -X "+ModulePath+"/backend.Version="+version, "-o", bin, "./cmd/vault-plugin-secrets-pure1")
	t.Logf("bin/ is stamped %s, as the release is: the working tree built as %s in %s",
		old.Version, version, time.Since(began).Round(time.Millisecond))
	return bin, version
}

// registerPlugin registers a file of the plugin directory as the plugin at
// version, the way the docs do.
func registerPlugin(t testing.TB, v *Vault, command, sha, version string) {
	t.Helper()
	v.MustCLI(t, "plugin", "register", "-sha256="+sha, "-version="+version, "-command="+command,
		"-env", upgradeHostsEnv, "secret", PluginName)
}

// mountRuns fails unless pure1/ is pinned to and runs version with sha.
func mountRuns(t testing.TB, v *Vault, version, sha string) {
	t.Helper()
	m := v.MustCLIJSON(t, "secrets", "list", "-detailed", "-format=json")
	mount, _ := m[Mount+"/"].(map[string]any)
	if mount["plugin_version"] != version || mount["running_plugin_version"] != version || mount["running_sha256"] != sha {
		t.Fatalf("%s/ is pinned to %v and runs %v (sha256 %v); want %s (sha256 %s)",
			Mount, mount["plugin_version"], mount["running_plugin_version"], mount["running_sha256"], version, sha)
	}
}

// ---- what the release stores ------------------------------------------------------------

// upgradeKeys are fixtures of backend/pure1/testdata (made by openssl, see
// gen.sh), by the config that imports them: one per key form the release
// takes. fingerprints.txt holds each one's fingerprint as openssl computed it.
var upgradeKeys = map[string]struct {
	file      string
	encrypted bool
}{
	"pkcs1":      {"rsa2048-pkcs1.pem", false},            // BEGIN RSA PRIVATE KEY
	"pkcs8":      {"rsa3072-pkcs8.pem", false},            // BEGIN PRIVATE KEY
	"enc-pkcs8":  {"rsa2048-enc-pkcs8.pem", true},         // BEGIN ENCRYPTED PRIVATE KEY (PBES2, AES-256)
	"enc-legacy": {"rsa2048-enc-legacy-aes256.pem", true}, // RSA PRIVATE KEY with Proc-Type: 4,ENCRYPTED
	"pending":    {"rsa2048-enc-legacy-des3.pem", true},   // the rotation left pending across the upgrade
	"after":      {"rsa4096-pkcs1.pem", false},            // a config the working tree's build writes
}

// upgradeKeyPassword is the fixtures' password (testdata/gen.sh).
const upgradeKeyPassword = "pure1-test-password"

// upgradeRole is a credential the readers read.
type upgradeRole struct {
	path   string // creds/NAME or static-creds/NAME
	config string
	jwt    bool // creds carry a jwt, not an access_token
	array  bool // the token is the array's, not Pure1's
}

// upgradeState is what was written and what Vault answered for it: every
// read is compared after each move between builds.
type upgradeState struct {
	emu        *Emulator
	arr        *ArrayEmulator
	tokenURL   string
	pwFile     string
	pendingPub string // the public key of the rotation left pending

	// reads maps a path to the data Vault answered for it, nil for a 404.
	reads map[string]map[string]any
	// lists maps a LIST path to its keys, sorted.
	lists map[string][]string
	roles []upgradeRole
}

// volatile are fields whose value moves with the clock, not with storage.
var volatile = map[string]bool{
	"static-creds/ttl": true, // seconds until the token is replaced
}

func (s *upgradeState) addRole(r upgradeRole) { s.roles = append(s.roles, r) }

// fill writes, through v, everything the release supports: Pure1 configs
// with a key generated in Vault and imported in each form, a rotation done
// and one pending, max_key_age, a managed FlashArray config rotated once,
// leased roles of both credential types with and without reuse, and static
// roles on Pure1 and the array.
func fill(t *testing.T, v *Vault, emu *Emulator, arr *ArrayEmulator) *upgradeState {
	t.Helper()
	s := &upgradeState{emu: emu, arr: arr, tokenURL: emu.TokenURL(), pwFile: filepath.Join(t.TempDir(), "key-password")}
	if err := os.WriteFile(s.pwFile, []byte(upgradeKeyPassword), 0o600); err != nil {
		t.Fatal(err)
	}

	gen := v.MustCLIJSON(t, "write", "-format=json", Mount+"/config/generated", "generate_key=true", "key_bits=3072",
		"max_key_age=8760h", "token_url="+s.tokenURL)
	v.MustCLI(t, "write", Mount+"/config/generated", "app_id="+emu.Register(t, jstr(t, gen, "data", "public_key")))
	for _, name := range []string{"pkcs1", "pkcs8", "enc-pkcs8", "enc-legacy"} {
		s.importConfig(t, v, name, name)
	}

	// A rotation done (the config keeps the previous key's fingerprint and
	// app), and a second one left pending with an imported key.
	rot := v.MustCLIJSON(t, "write", "-format=json", Mount+"/config/rotated", "generate_key=true", "token_url="+s.tokenURL)
	v.MustCLI(t, "write", Mount+"/config/rotated", "app_id="+emu.Register(t, jstr(t, rot, "data", "public_key")))
	next := v.MustCLIJSON(t, "write", "-format=json", Mount+"/config/rotated/rotate", "generate_key=true")
	promoted := v.MustCLIJSON(t, "write", "-format=json", Mount+"/config/rotated/rotate",
		"app_id="+emu.Register(t, jstr(t, next, "data", "public_key")))
	if jget(promoted, "data", "verified") != true {
		t.Fatalf("the rotation's promotion was not verified: %v", promoted["data"])
	}
	file, fp := s.keyFile(t, "pending")
	pending := v.MustCLIJSON(t, "write", "-format=json", Mount+"/config/rotated/rotate", "private_key=@"+file, "private_key_password=@"+s.pwFile)
	if got := jstr(t, pending, "data", "public_key_fingerprint"); got != fp {
		t.Fatalf("pending key fingerprint %s, openssl's %s", got, fp)
	}
	s.pendingPub = jstr(t, pending, "data", "public_key")

	// A FlashArray whose API client Vault registered with the admin token,
	// and rotated once (its previous client deleted at the array).
	status, resp := v.HTTP(t, "POST", Mount+"/config/fa", map[string]any{
		"kind": "flasharray", "array_url": arr.URL, "ca_cert": arr.CAPEM, "username": "pureuser",
		"admin_api_token": arr.APIToken, "max_role": "readonly", "access_token_ttl": "1h",
	})
	if status != 200 || jget(resp, "data", "managed") != true {
		t.Fatalf("managed FlashArray registration: HTTP %d %v", status, resp)
	}
	status, resp = v.HTTP(t, "POST", Mount+"/config/fa/rotate", map[string]any{})
	if status != 200 || jget(resp, "data", "previous_api_client_deleted") != true {
		t.Fatalf("FlashArray client rotation: HTTP %d %v", status, resp)
	}

	for _, r := range []struct {
		name string
		args []string
		role upgradeRole
	}{
		{"gen-token", []string{"config=generated", "ttl=15m", "max_ttl=30m"}, upgradeRole{config: "generated"}},
		{"gen-jwt", []string{"config=generated", "credential_type=jwt", "ttl=5m"}, upgradeRole{config: "generated", jwt: true}},
		{"gen-shared", []string{"config=generated", "reuse_access_token=true", "reuse_margin=2m"}, upgradeRole{config: "generated"}},
		{"pkcs1-token", []string{"config=pkcs1"}, upgradeRole{config: "pkcs1"}},
		{"pkcs8-jwt", []string{"config=pkcs8", "credential_type=jwt"}, upgradeRole{config: "pkcs8", jwt: true}},
		{"enc-pkcs8-token", []string{"config=enc-pkcs8", "credential_type=access_token"}, upgradeRole{config: "enc-pkcs8"}},
		{"enc-legacy-jwt", []string{"config=enc-legacy", "credential_type=jwt"}, upgradeRole{config: "enc-legacy", jwt: true}},
		{"rotated-token", []string{"config=rotated"}, upgradeRole{config: "rotated"}},
		{"fa-ops", []string{"config=fa", "username=ops"}, upgradeRole{config: "fa", array: true}},
		{"fa-shared", []string{"config=fa", "username=pureuser", "reuse_access_token=true"}, upgradeRole{config: "fa", array: true}},
	} {
		v.MustCLI(t, append([]string{"write", Mount + "/roles/" + r.name}, r.args...)...)
		r.role.path = "creds/" + r.name
		s.addRole(r.role)
	}
	for _, r := range []struct {
		name string
		args []string
		role upgradeRole
	}{
		{"fleet", []string{"config=generated", "rotation_period=1h"}, upgradeRole{config: "generated"}},
		{"rotated-fleet", []string{"config=rotated", "rotation_period=2h"}, upgradeRole{config: "rotated"}},
		{"fa-fleet", []string{"config=fa", "username=pureuser"}, upgradeRole{config: "fa", array: true}},
	} {
		v.MustCLI(t, append([]string{"write", Mount + "/static-roles/" + r.name}, r.args...)...)
		r.role.path = "static-creds/" + r.name
		s.addRole(r.role)
	}
	return s
}

// keyFile is the fixture for a config and openssl's fingerprint of it.
func (s *upgradeState) keyFile(t testing.TB, config string) (path, fp string) {
	t.Helper()
	k, ok := upgradeKeys[config]
	if !ok {
		t.Fatalf("no key fixture for config %s", config)
	}
	dir := filepath.Join(RepoRoot(t), "backend", "pure1", "testdata")
	fps, err := os.ReadFile(filepath.Join(dir, "fingerprints.txt"))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(fps)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == k.file {
			return filepath.Join(dir, k.file), f[1]
		}
	}
	t.Fatalf("%s is not in testdata/fingerprints.txt", k.file)
	return "", ""
}

// importConfig writes config name with fixture key, registers its public key
// with the emulator and writes the app_id.
func (s *upgradeState) importConfig(t *testing.T, v *Vault, name, key string) {
	t.Helper()
	file, fp := s.keyFile(t, key)
	args := []string{"write", "-format=json", Mount + "/config/" + name, "private_key=@" + file, "token_url=" + s.tokenURL}
	if upgradeKeys[key].encrypted {
		args = append(args, "private_key_password=@"+s.pwFile)
	}
	out := v.MustCLIJSON(t, args...)
	if got := jstr(t, out, "data", "public_key_fingerprint"); got != fp {
		t.Fatalf("config %s from %s: fingerprint %s, openssl's %s", name, upgradeKeys[key].file, got, fp)
	}
	v.MustCLI(t, "write", Mount+"/config/"+name, "app_id="+s.emu.Register(t, jstr(t, out, "data", "public_key")))
}

// ---- reading it all back -------------------------------------------------------------------

// readAll reads, through v, every config (and its rotate path), role,
// static role and static token, and the lists of each.
func (s *upgradeState) readAll(t *testing.T, v *Vault) (map[string]map[string]any, map[string][]string) {
	t.Helper()
	reads := map[string]map[string]any{}
	lists := map[string][]string{}
	for _, dir := range []string{"config", "roles", "static-roles"} {
		status, body := v.HTTP(t, "LIST", Mount+"/"+dir, nil)
		if status != 200 {
			t.Fatalf("LIST %s/%s: HTTP %d %v", Mount, dir, status, body)
		}
		var keys []string
		for _, k := range jget(body, "data", "keys").([]any) {
			keys = append(keys, k.(string))
		}
		sort.Strings(keys)
		lists[dir] = keys
		for _, name := range keys {
			paths := []string{dir + "/" + name}
			switch dir {
			case "config":
				paths = append(paths, "config/"+name+"/rotate")
			case "static-roles":
				paths = append(paths, "static-creds/"+name)
			}
			for _, p := range paths {
				status, body := v.HTTP(t, "GET", Mount+"/"+p, nil)
				switch {
				case status == 404 || (status == 400 && strings.HasSuffix(p, "/rotate")):
					// No rotation under way: the release answers so; kept
					// as nil so that a later build must answer the same.
					reads[p] = nil
				case status != 200:
					t.Fatalf("GET %s/%s: HTTP %d %v", Mount, p, status, body)
				default:
					data, _ := body["data"].(map[string]any)
					reads[p] = data
				}
			}
		}
	}
	return reads, lists
}

// record reads everything back as the state to compare with later.
func (s *upgradeState) record(t *testing.T, v *Vault) {
	t.Helper()
	s.reads, s.lists = s.readAll(t, v)
}

// staticToken is the recorded token of static-creds path.
func (s *upgradeState) staticToken(path string) string {
	tok, _ := s.reads[path]["access_token"].(string)
	return tok
}

// diffReads lists how got differs from want: a path or list that is gone or
// changed, a field of want missing or with another value in got. Fields got
// adds are not differences (a newer build may show more); skip names paths
// not compared.
func diffReads(want, got map[string]map[string]any, wantLists, gotLists map[string][]string, skip map[string]bool) []string {
	var diffs []string
	for dir, keys := range wantLists {
		if !slices.Equal(keys, gotLists[dir]) {
			diffs = append(diffs, fmt.Sprintf("LIST %s: %v, was %v", dir, gotLists[dir], keys))
		}
	}
	paths := make([]string, 0, len(want))
	for p := range want {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if skip[p] {
			continue
		}
		w := want[p]
		g, ok := got[p]
		switch {
		case !ok:
			diffs = append(diffs, p+": not read back")
			continue
		case w == nil && g != nil:
			diffs = append(diffs, p+": was not found, now reads")
			continue
		case w != nil && g == nil:
			diffs = append(diffs, p+": gone")
			continue
		}
		kind := strings.SplitN(p, "/", 2)[0]
		for k, wv := range w {
			if volatile[kind+"/"+k] {
				continue
			}
			gv, ok := g[k]
			if !ok {
				diffs = append(diffs, fmt.Sprintf("%s: field %s missing (was %v)", p, k, short(wv)))
			} else if !reflect.DeepEqual(wv, gv) {
				diffs = append(diffs, fmt.Sprintf("%s: %s = %v, was %v", p, k, short(gv), short(wv)))
			}
		}
	}
	return diffs
}

// short shows a value in a diff without flooding it (public keys).
func short(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

// mustReadBack fails unless every path, field and list of the recorded state
// reads back the same through v.
func (s *upgradeState) mustReadBack(t *testing.T, v *Vault, when string, skip map[string]bool) {
	t.Helper()
	got, gotLists := s.readAll(t, v)
	if d := diffReads(s.reads, got, s.lists, gotLists, skip); len(d) > 0 {
		t.Fatalf("%s, %d difference(s) from what was stored:\n  %s", when, len(d), strings.Join(d, "\n  "))
	}
	var added []string
	for p, g := range got {
		for k := range g {
			if w := s.reads[p]; w != nil {
				if _, ok := w[k]; !ok {
					added = append(added, p+"."+k)
				}
			}
		}
	}
	sort.Strings(added)
	fields := 0
	for _, r := range s.reads {
		fields += len(r)
	}
	t.Logf("%s: %d paths and %d fields read back unchanged through %s%s", when, len(s.reads), fields, v.Addr,
		map[bool]string{true: "; fields this build adds: " + strings.Join(added, ", "), false: ""}[len(added) > 0])
}

// ---- credentials work --------------------------------------------------------------------

// checkCred reads path through v and proves the credential at its upstream:
// an access token on Pure1's API or the array's, a JWT by its signature
// with the config's recorded public key and its iss. It returns the error
// rather than failing, for the readers.
func (s *upgradeState) checkCred(ctx context.Context, v *Vault, r upgradeRole, prove bool) error {
	status, body, err := v.Request(ctx, v.Token, "GET", Mount+"/"+r.path, nil)
	if err != nil {
		return err
	}
	if status != 200 {
		return fmt.Errorf("HTTP %d: %v", status, body)
	}
	cfg := s.reads["config/"+r.config]
	if r.jwt {
		tok, _ := jget(body, "data", "jwt").(string)
		if tok == "" {
			return fmt.Errorf("no jwt in %v", body["data"])
		}
		if !prove {
			return nil
		}
		pub, _ := cfg["public_key"].(string)
		app, _ := cfg["app_id"].(string)
		return clVerifyJWT(tok, clusterConfig{appID: app, publicKey: pub})
	}
	tok, _ := jget(body, "data", "access_token").(string)
	if strings.Count(tok, ".") != 2 {
		return fmt.Errorf("no access_token in %v", body["data"])
	}
	if strings.HasPrefix(r.path, "static-creds/") && tok != s.staticToken(r.path) {
		return fmt.Errorf("another token than the stored one (refreshed?)")
	}
	if !prove {
		return nil
	}
	if r.array {
		if st, err := s.arr.Arrays(tok); err != nil || st != 200 {
			return fmt.Errorf("the array refuses the token: HTTP %d %v", st, err)
		}
		return nil
	}
	return clAPIAccepts(s.emu, tok)
}

// mustCredsWork proves every role's credential through each of vs.
func (s *upgradeState) mustCredsWork(t *testing.T, when string, vs ...*Vault) {
	t.Helper()
	for _, v := range vs {
		for _, r := range s.roles {
			if err := s.checkCred(context.Background(), v, r, true); err != nil {
				t.Fatalf("%s: %s through %s: %v", when, r.path, v.Addr, err)
			}
		}
	}
	t.Logf("%s: all %d credentials work at Pure1 or the array through %d node(s)", when, len(s.roles), len(vs))
}

// ---- readers through a move ----------------------------------------------------------------

type upgradeRead struct {
	start, end time.Time
	path       string
	err        error
}

// readerCounts are the readers' figures through one move.
type readerCounts struct {
	before, during, after, failed int
	move                          time.Duration
	firstErrors                   []string
}

func (c readerCounts) String() string {
	return fmt.Sprintf("%d reads (%d before, %d during the %s move, %d after), %d failed",
		c.before+c.during+c.after, c.before, c.during, c.move.Round(time.Millisecond), c.after, c.failed)
}

// through runs move while readers read every role's credential over HTTP,
// round-robin over the nodes vs, each credential checked against what was
// recorded (static tokens must be the stored ones); at least 100 reads before
// the move and 100 after it. It fails the test on any failed read.
func (s *upgradeState) through(t *testing.T, what string, readers int, vs []*Vault, move func()) readerCounts {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu    sync.Mutex
		reads []upgradeRead
		wg    sync.WaitGroup
	)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(reads) }
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			for i := r; ctx.Err() == nil; i++ {
				role := s.roles[i%len(s.roles)]
				v := vs[(i/len(s.roles)+r)%len(vs)]
				rd := upgradeRead{start: time.Now(), path: role.path}
				rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
				rd.err = s.checkCred(rctx, v, role, false)
				rcancel()
				rd.end = time.Now()
				if ctx.Err() != nil {
					return // stopped mid-read: not a sample
				}
				if rd.err != nil {
					rd.err = fmt.Errorf("%s through %s: %w", role.path, v.Addr, rd.err)
				}
				mu.Lock()
				reads = append(reads, rd)
				mu.Unlock()
			}
		}(r)
	}
	stop := sync.OnceFunc(func() { cancel(); wg.Wait() })
	defer stop()
	readOn := func(n int) {
		target := count() + n
		eventually(t, 2*time.Minute, 10*time.Millisecond, "readers read on", func() (bool, string) {
			return count() >= target, fmt.Sprintf("%d of %d reads", count(), target)
		})
	}
	readOn(100)
	began := time.Now()
	move()
	ended := time.Now()
	readOn(100)
	stop()

	c := readerCounts{move: ended.Sub(began)}
	for _, rd := range reads {
		switch {
		case rd.end.Before(began):
			c.before++
		case rd.start.After(ended):
			c.after++
		default:
			c.during++
		}
		if rd.err != nil {
			c.failed++
			if len(c.firstErrors) < 5 {
				c.firstErrors = append(c.firstErrors, fmt.Sprintf("+%s: %v", rd.start.Sub(began).Round(time.Millisecond), rd.err))
			}
		}
	}
	t.Logf("%s, %d readers: %s", what, readers, c)
	if c.failed > 0 {
		t.Errorf("%s: %d of %d reads failed; first:\n  %s", what, c.failed, len(reads), strings.Join(c.firstErrors, "\n  "))
	}
	return c
}

// ---- storage as Vault holds it ---------------------------------------------------------------

// rawEntries is the mount's storage as Vault's barrier holds it, key ->
// bytes, read through sys/raw (the upgrade test's dev server enables
// raw_storage_endpoint).
func rawEntries(t *testing.T, v *Vault) map[string][]byte {
	t.Helper()
	uuid := jstr(t, v.MustCLIJSON(t, "read", "-format=json", "sys/mounts/"+Mount), "data", "uuid")
	prefix := "sys/raw/logical/" + uuid + "/"
	out := map[string][]byte{}
	var walk func(dir string)
	walk = func(dir string) {
		status, body := v.HTTP(t, "LIST", prefix+dir, nil)
		if status == 404 {
			return
		}
		keys, _ := jget(body, "data", "keys").([]any)
		if status != 200 || keys == nil {
			t.Fatalf("LIST %s%s: HTTP %d %v", prefix, dir, status, body)
		}
		for _, k := range keys {
			key := dir + k.(string)
			if strings.HasSuffix(key, "/") {
				walk(key)
				continue
			}
			status, body := v.HTTP(t, "GET", prefix+key+"?encoding=base64", nil)
			raw, err := base64.StdEncoding.DecodeString(fmt.Sprint(jget(body, "data", "value")))
			if status != 200 || err != nil {
				t.Fatalf("GET %s%s: HTTP %d %v", prefix, key, status, err)
			}
			out[key] = raw
		}
	}
	walk("")
	return out
}

// putRawEntry writes value at key of the mount's storage, behind the
// plugin's back.
func putRawEntry(t *testing.T, v *Vault, key string, value []byte) {
	t.Helper()
	uuid := jstr(t, v.MustCLIJSON(t, "read", "-format=json", "sys/mounts/"+Mount), "data", "uuid")
	status, body := v.HTTP(t, "PUT", "sys/raw/logical/"+uuid+"/"+key,
		map[string]any{"value": base64.StdEncoding.EncodeToString(value), "encoding": "base64"})
	if status != 200 && status != 204 {
		t.Fatalf("PUT sys/raw/logical/%s/%s: HTTP %d %v", uuid, key, status, body)
	}
}

// entryLayout is the layout an entry names: 0 with ok when it is a JSON
// object without one (what the release stored), !ok when it is not a JSON
// object at all.
func entryLayout(raw []byte) (layout int, ok bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return 0, false
	}
	if l, found := m["layout"]; found && json.Unmarshal(l, &layout) != nil {
		return -1, true
	}
	return layout, true
}

// changedKeys lists the keys added or changed from a to b, and those
// removed, sorted.
func changedKeys(a, b map[string][]byte) (changed, removed []string) {
	for k, v := range b {
		if w, ok := a[k]; !ok || !bytes.Equal(v, w) {
			changed = append(changed, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			removed = append(removed, k)
		}
	}
	sort.Strings(changed)
	sort.Strings(removed)
	return changed, removed
}

// ---- the single-node test -------------------------------------------------------------------

// TestUpgradeFromLastRelease fills a Vault dev server through the last
// release's plugin (scripts/build-old-plugin.sh), upgrades the mount in
// place to the working tree's build with 6 readers reading every credential
// over HTTP, and proves every config, role, static role and static token
// reads back field for field (the same key fingerprints, the same static
// tokens), every credential works at Pure1 or the array, and no read failed.
// The new build then uses what the release stored: a static refresh, the
// promotion of the rotation the release left pending, an array client
// rotation, a config and roles of its own. Then the mount is moved back to
// the release: it must read everything the new build wrote (the release
// cannot refuse a newer entry: it was built before entries carried a
// layout, and decoding ignores fields it does not know), issue working
// credentials, and write; moved forward again, everything reads back.
func TestUpgradeFromLastRelease(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	testStart := time.Now()
	old := buildOldRelease(t)
	nextBin, next := nextBuild(t, old)
	emu := StartEmulator(t, "-quiet")
	arr := StartArrayEmulator(t, "-quiet")
	// raw_storage_endpoint: the test reads the bytes the plugins store.
	v := StartVaultDevOpts(t, VaultOptions{NoMount: true, LogLevel: "info", ExtraConfig: "raw_storage_endpoint = true"})
	oldCmd, nextCmd := PluginName+"-"+old.Version, PluginName+"-"+next
	v.InstallPlugin(t, old.Bin, oldCmd)
	nextSHA := v.InstallPlugin(t, nextBin, nextCmd)

	// ---- the release, filled ------------------------------------------------------------------
	registerPlugin(t, v, oldCmd, old.SHA256, old.Version)
	v.MustCLI(t, "secrets", "enable", "-path="+Mount, "-plugin-version="+old.Version, PluginName)
	mountRuns(t, v, old.Version, old.SHA256)
	fillStart := time.Now()
	s := fill(t, v, emu, arr)
	s.record(t, v)
	s.mustCredsWork(t, "on "+old.Version, v)
	released := s.reads // what the release wrote, as it read it
	rawReleased := rawEntries(t, v)
	for k, raw := range rawReleased {
		if l, ok := entryLayout(raw); !ok || l != 0 {
			t.Fatalf("the release stored %s as %.60q: not a JSON object without a layout", k, raw)
		}
	}
	clientsBefore := arr.Clients(t)
	t.Logf("filled through %s in %s: %d configs, %d roles, %d static roles; array clients %v",
		old.Version, time.Since(fillStart).Round(time.Millisecond), len(s.lists["config"]), len(s.lists["roles"]), len(s.lists["static-roles"]), clientsBefore)

	// ---- upgrade in place, as the README says ----------------------------------------------------
	up := s.through(t, "upgrade "+old.Version+" -> "+next, 6, []*Vault{v}, func() {
		registerPlugin(t, v, nextCmd, nextSHA, next)
		v.MustCLI(t, "secrets", "tune", "-plugin-version="+next, Mount+"/")
		v.MustCLI(t, "plugin", "reload", "-plugin", PluginName)
	})
	mountRuns(t, v, next, nextSHA)
	if !pluginProcessRuns(t, v, nextCmd) {
		t.Errorf("no %s process runs under Vault after the upgrade: %v", nextCmd, v.PluginProcesses(t))
	}
	s.mustReadBack(t, v, "after the upgrade", nil)
	// Nothing but reads since the release wrote: every byte is as it was.
	if changed, removed := changedKeys(rawReleased, rawEntries(t, v)); len(changed)+len(removed) > 0 {
		t.Errorf("the upgrade and the reads after it changed stored entries %v and removed %v", changed, removed)
	} else {
		t.Logf("after the upgrade: all %d stored entries byte for byte as the release wrote them", len(rawReleased))
	}
	s.mustCredsWork(t, "after the upgrade", v)
	if got := arr.Clients(t); !slices.Equal(got, clientsBefore) {
		t.Errorf("API clients on the array after the upgrade: %v, were %v", got, clientsBefore)
	}

	// ---- the new build uses what the release stored ----------------------------------------------
	rawBefore := rawEntries(t, v)
	s.useWithNext(t, v)
	s.record(t, v)
	// What the new build wrote names its layout, one for all entries.
	rawAfter := rawEntries(t, v)
	written, _ := changedKeys(rawBefore, rawAfter)
	layouts := map[int][]string{}
	for _, k := range written {
		raw := rawAfter[k]
		l, ok := entryLayout(raw)
		if !ok || l < 2 {
			t.Errorf("%s wrote %s without a storage layout (>= 2): %.60q", next, k, raw)
			continue
		}
		layouts[l] = append(layouts[l], k)
	}
	if len(layouts) > 1 {
		t.Errorf("%s wrote entries of several layouts: %v", next, layouts)
	}
	t.Logf("%s wrote %d entries, layouts %v", next, len(written), layouts)
	s.mustCredsWork(t, "with "+next+"'s own writes", v)

	// ---- downgrade to the release ----------------------------------------------------------------
	down := s.through(t, "downgrade "+next+" -> "+old.Version, 6, []*Vault{v}, func() {
		v.MustCLI(t, "secrets", "tune", "-plugin-version="+old.Version, Mount+"/")
		v.MustCLI(t, "plugin", "reload", "-plugin", PluginName)
	})
	mountRuns(t, v, old.Version, old.SHA256)
	s.mustReadBackOnOld(t, v, released)
	s.mustCredsWork(t, "after the downgrade", v)
	// The release writes over what the new build stored: a static refresh,
	// and a role on the config the new build wrote.
	oldFleet := s.staticToken("static-creds/fleet")
	v.MustCLI(t, "write", "-f", Mount+"/static-roles/fleet/refresh")
	v.MustCLI(t, "write", Mount+"/roles/after-downgrade", "config=after", "credential_type=jwt")
	s.addRole(upgradeRole{path: "creds/after-downgrade", config: "after", jwt: true})
	beforeDown := s.reads
	s.record(t, v)
	if s.staticToken("static-creds/fleet") == oldFleet {
		t.Fatal("the release's static refresh kept the token")
	}
	s.mustCredsWork(t, "after the release wrote", v)

	// ---- and up again --------------------------------------------------------------------------
	again := s.through(t, "upgrade again "+old.Version+" -> "+next, 6, []*Vault{v}, func() {
		v.MustCLI(t, "secrets", "tune", "-plugin-version="+next, Mount+"/")
		v.MustCLI(t, "plugin", "reload", "-plugin", PluginName)
	})
	mountRuns(t, v, next, nextSHA)
	s.mustReadBack(t, v, "after upgrading again (what the release read and wrote)", nil)
	// What the new build wrote before the downgrade and the release did not
	// touch reads as the new build stored it, fields it adds included.
	now, nowLists := s.readAll(t, v)
	if d := diffReads(beforeDown, now, nil, nowLists, map[string]bool{"static-roles/fleet": true, "static-creds/fleet": true}); len(d) > 0 {
		t.Fatalf("after upgrading again, %d difference(s) from what %s had stored before the downgrade:\n  %s", len(d), next, strings.Join(d, "\n  "))
	}
	s.mustCredsWork(t, "after upgrading again", v)

	// ---- an entry of a newer layout is refused, not misread -----------------------------------
	refuseNewer(t, v, s)

	t.Logf("SUMMARY upgrade: %s (%s) -> %s on one node, %d paths: upgrade %s; downgrade %s; upgrade again %s; "+
		"old build %s; whole test %s",
		old.Version, old.Commit[:7], next, len(s.reads), up, down, again, old.BuildTime.Round(time.Millisecond), time.Since(testStart).Round(time.Second))
}

// useWithNext has the new build use what the release stored: a static
// token refreshed, the pending rotation promoted, the array client rotated,
// and a config with roles of its own.
func (s *upgradeState) useWithNext(t *testing.T, v *Vault) {
	t.Helper()
	oldFleet := s.staticToken("static-creds/fleet")
	v.MustCLI(t, "write", "-f", Mount+"/static-roles/fleet/refresh")
	fleet := v.MustCLIJSON(t, "read", "-format=json", Mount+"/static-creds/fleet")
	if tok := jstr(t, fleet, "data", "access_token"); tok == oldFleet {
		t.Fatal("static-roles/fleet/refresh kept the token the release stored")
	} else if err := clAPIAccepts(s.emu, tok); err != nil {
		t.Fatalf("the refreshed static token: %v", err)
	}

	_, fp := s.keyFile(t, "pending")
	promoted := v.MustCLIJSON(t, "write", "-format=json", Mount+"/config/rotated/rotate", "app_id="+s.emu.Register(t, s.pendingPub))
	if jget(promoted, "data", "verified") != true || jget(promoted, "data", "public_key_fingerprint") != fp {
		t.Fatalf("promoting the pending key the release stored: %v", promoted["data"])
	}

	status, resp := v.HTTP(t, "POST", Mount+"/config/fa/rotate", map[string]any{})
	if status != 200 || jget(resp, "data", "verified") != true {
		t.Fatalf("rotating the array client the release registered: HTTP %d %v", status, resp)
	}
	// This build retires the replaced client once its credentials have
	// expired (previous_api_client_delete_at), where the release deleted it at once.
	name := jstr(t, resp, "data", "api_client_name")
	clients := s.arr.Clients(t)
	if !slices.Contains(clients, name) {
		t.Errorf("API clients on the array after the rotation: %v, without the new %s", clients, name)
	}
	t.Logf("array clients after the new build's rotation: %v (previous_api_client_delete_at %v)", clients, jget(resp, "data", "previous_api_client_delete_at"))

	s.importConfig(t, v, "after", "after")
	v.MustCLI(t, "write", Mount+"/roles/after-token", "config=after")
	v.MustCLI(t, "write", Mount+"/static-roles/after-fleet", "config=after", "rotation_period=1h")
	s.addRole(upgradeRole{path: "creds/after-token", config: "after"})
	s.addRole(upgradeRole{path: "static-creds/after-fleet", config: "after"})
	t.Logf("the new build refreshed a static token, promoted the pending key (%s...), rotated the array client, wrote config after",
		fp[:12])
}

// mustReadBackOnOld checks, after a downgrade, that the release reads what
// the new build stored: every field the release shows has the value the new
// build showed, and a field the release showed when it wrote the path
// itself (released) and the new build showed too is there.
func (s *upgradeState) mustReadBackOnOld(t *testing.T, v *Vault, released map[string]map[string]any) {
	t.Helper()
	got, gotLists := s.readAll(t, v)
	var diffs []string
	for dir, keys := range s.lists {
		if !slices.Equal(keys, gotLists[dir]) {
			diffs = append(diffs, fmt.Sprintf("LIST %s: %v, was %v", dir, gotLists[dir], keys))
		}
	}
	for p, w := range s.reads {
		g, ok := got[p]
		switch {
		case !ok:
			diffs = append(diffs, p+": not read back")
			continue
		case (w == nil) != (g == nil):
			diffs = append(diffs, fmt.Sprintf("%s: found %v, was %v", p, g != nil, w != nil))
			continue
		case w == nil:
			continue
		}
		kind := strings.SplitN(p, "/", 2)[0]
		for k, gv := range g {
			if wv, ok := w[k]; ok && !volatile[kind+"/"+k] && !reflect.DeepEqual(wv, gv) {
				diffs = append(diffs, fmt.Sprintf("%s: %s = %v, %s showed %v", p, k, short(gv), "the new build", short(wv)))
			}
		}
		for k := range released[p] {
			if _, shown := w[k]; !shown {
				continue // gone from the state since (a pending key promoted)
			}
			if _, ok := g[k]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s: field %s missing", p, k))
			}
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("after the downgrade, the release reads %d thing(s) otherwise than the new build stored them:\n  %s", len(diffs), strings.Join(diffs, "\n  "))
	}
	t.Logf("after the downgrade: the release reads all %d paths as the new build showed them", len(s.reads))
}

// ---- helpers shared with the cluster test --------------------------------------------------

// pluginProcessRuns reports whether a process of v's group runs command (a
// file of the plugin directory).
func pluginProcessRuns(t testing.TB, v *Vault, command string) bool {
	t.Helper()
	for _, cmd := range v.PluginProcesses(t) {
		if filepath.Base(cmd) == command {
			return true
		}
	}
	return false
}

// refuseNewer stores config/after as a build of layout 99 would, restarts the
// plugin (it caches parsed configs), and checks that the config and its
// credentials are refused with a message saying what to do, the entry is
// left as it was, and the rest keeps working; then puts the entry back.
func refuseNewer(t *testing.T, v *Vault, s *upgradeState) {
	t.Helper()
	const key = "config/after"
	orig, ok := rawEntries(t, v)[key]
	if !ok {
		t.Fatalf("no storage entry %s", key)
	}
	var m map[string]any
	if err := json.Unmarshal(orig, &m); err != nil {
		t.Fatal(err)
	}
	m["layout"] = 99
	newer, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	putRawEntry(t, v, key, newer)
	v.MustCLI(t, "plugin", "reload", "-plugin", PluginName)
	for _, p := range []string{"config/after", "creds/after-token", "static-creds/after-fleet"} {
		status, body := v.HTTP(t, "GET", Mount+"/"+p, nil)
		msg := fmt.Sprint(body)
		if status == 200 || !strings.Contains(msg, "layout 99") || !strings.Contains(msg, "vault plugin register") {
			t.Errorf("GET %s with its config at layout 99: HTTP %d %s; want a refusal naming the layout and the fix (vault plugin register ...)", p, status, msg)
		} else {
			t.Logf("GET %s with its config at layout 99: HTTP %d %s", p, status, msg)
		}
	}
	if err := s.checkCred(context.Background(), v, s.roles[0], true); err != nil {
		t.Errorf("%s while config/after is refused: %v", s.roles[0].path, err)
	}
	if got := rawEntries(t, v)[key]; !bytes.Equal(got, newer) {
		t.Errorf("the refused entry was rewritten: %.200q", got)
	}
	putRawEntry(t, v, key, orig)
	v.MustCLI(t, "plugin", "reload", "-plugin", PluginName)
	s.mustReadBack(t, v, "with config/after put back", nil)
}
