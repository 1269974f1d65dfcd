package e2e

// Hardening, end to end: bad input, secrecy, load while keys are rotated, and
// Pure1 misbehaving, all through the real vault CLI and HTTP API against the
// Pure1 emulator binary. Like the other tests here, they run only with
// PURE1_E2E=1.

import (
	"bufio"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ---- TestBadInputE2E -----------------------------------------------------------

// hdKeyFiles are key files made by openssl for the bad-input table.
type hdKeyFiles struct {
	Plain, Garbage, Truncated, TruncatedDER, Public, EC, Ed25519, RSA1024 string
	EncPKCS8, Legacy, Oversized                                           string
	Password                                                              string
}

// hdMakeKeyFiles writes the key files into dir with openssl.
func hdMakeKeyFiles(t *testing.T, dir string) hdKeyFiles {
	t.Helper()
	p := func(name string) string { return filepath.Join(dir, name) }
	k := hdKeyFiles{
		Plain: p("plain.pem"), Garbage: p("garbage.pem"), Truncated: p("truncated.pem"),
		TruncatedDER: p("truncated-der.pem"), Public: p("public.pem"), EC: p("ec.pem"),
		Ed25519: p("ed25519.pem"), RSA1024: p("rsa1024.pem"), EncPKCS8: p("enc-pkcs8.pem"),
		Legacy: p("legacy.pem"), Oversized: p("oversized.pem"),
		Password: "bad-input e2e password 5d41402abc",
	}
	runCmd(t, "", "openssl", "genrsa", "-out", k.Plain, "2048")
	runCmd(t, "", "openssl", "rsa", "-in", k.Plain, "-pubout", "-out", k.Public)
	runCmd(t, "", "openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", k.EC)
	runCmd(t, "", "openssl", "genpkey", "-algorithm", "ed25519", "-out", k.Ed25519)
	runCmd(t, "", "openssl", "genrsa", "-out", k.RSA1024, "1024")
	runCmd(t, "", "openssl", "genrsa", "-aes256", "-passout", "pass:"+k.Password, "-out", k.EncPKCS8, "2048")
	runCmd(t, "", "openssl", "genrsa", "-aes256", "-traditional", "-passout", "pass:"+k.Password, "-out", k.Legacy, "2048")
	for file, want := range map[string]string{k.EncPKCS8: "BEGIN ENCRYPTED PRIVATE KEY", k.Legacy: "Proc-Type: 4,ENCRYPTED"} {
		if b, _ := os.ReadFile(file); !strings.Contains(string(b), want) {
			t.Fatalf("openssl wrote %s without %q:\n%s", file, want, b)
		}
	}
	plain, err := os.ReadFile(k.Plain)
	if err != nil {
		t.Fatal(err)
	}
	pemLines := strings.Split(strings.TrimSpace(string(plain)), "\n")
	write := func(path, content string) {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(k.Garbage, "this is not a key, just a file someone picked by mistake\n")
	// Cut off mid-body, as a copy-paste that stopped early: no END line.
	write(k.Truncated, strings.Join(pemLines[:len(pemLines)/2], "\n")+"\n")
	// BEGIN and END intact, half of the body gone: the DER inside is cut.
	der := append(append([]string{pemLines[0]}, pemLines[1:len(pemLines)/2]...), pemLines[len(pemLines)-1])
	write(k.TruncatedDER, strings.Join(der, "\n")+"\n")
	// A valid key followed by more than 64 KiB of junk.
	write(k.Oversized, string(plain)+strings.Repeat("# padding to push the file over the limit\n", 1700))
	if fi, _ := os.Stat(k.Oversized); fi.Size() <= 64<<10 {
		t.Fatalf("%s is only %d bytes", k.Oversized, fi.Size())
	}
	return k
}

// hdBadCase is one refused request: CLI arguments ("write" or "read", the
// path, then key=value pairs, @file allowed) and substrings of the error,
// the first of which names the field at fault.
type hdBadCase struct {
	name string
	args []string
	want []string
}

// TestBadInputE2E runs one table of bad inputs across config, roles and
// creds through the vault CLI and the HTTP API. Each must be refused (CLI
// exit 2, HTTP 4xx) with a message naming the field, and change nothing: the
// config it tried to rewrite keeps its key and app_id and still issues
// credentials. The plugin process survives all of it.
func TestBadInputE2E(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	start := time.Now()
	e := StartEmulator(t, "-quiet")
	v := StartVaultDev(t)
	boot := Bootstrap(t, v, e)
	bootPub := parsePublicKey(t, boot.PublicKeyPEM)
	k := hdMakeKeyFiles(t, t.TempDir())

	// A config without app_id and a role on it.
	v.MustCLI(t, "write", "pure1/config/noapp", "generate_key=true")
	v.MustCLI(t, "write", "pure1/roles/noapp", "config=noapp", "credential_type=jwt")
	// A second mount of the plugin whose max lease TTL is tuned down to 1h,
	// so the dev server's pure1/ keeps its defaults.
	const tuned = "pure1-tuned"
	v.MustCLI(t, "secrets", "enable", "-path="+tuned, "-plugin-version="+v.PluginVersion, PluginName)
	v.MustCLI(t, "secrets", "tune", "-max-lease-ttl=1h", tuned+"/")
	v.MustCLI(t, "write", tuned+"/config/main", "generate_key=true")
	v.MustCLI(t, "write", tuned+"/roles/short", "config=main", "credential_type=jwt", "ttl=30m")
	v.MustCLI(t, "read", "pure1/creds/readonly-jwt")

	pids := v.PluginProcesses(t)
	if len(pids) == 0 {
		t.Fatal("no plugin process in the Vault server's process group")
	}

	cfg := "pure1/config/main"
	cases := []hdBadCase{
		// ---- config: the private key, rewriting the good config ----
		{"garbage PEM", []string{"write", cfg, "private_key=@" + k.Garbage}, []string{"private_key", "PEM"}},
		{"truncated PEM (no END line)", []string{"write", cfg, "private_key=@" + k.Truncated}, []string{"private_key", "PEM"}},
		{"truncated DER (body lines missing)", []string{"write", cfg, "private_key=@" + k.TruncatedDER}, []string{"private_key"}},
		{"public key as private_key", []string{"write", cfg, "private_key=@" + k.Public}, []string{"private_key", "public key"}},
		{"EC key", []string{"write", cfg, "private_key=@" + k.EC}, []string{"private_key", "RSA"}},
		{"Ed25519 key", []string{"write", cfg, "private_key=@" + k.Ed25519}, []string{"private_key", "Ed25519"}},
		{"RSA 1024", []string{"write", cfg, "private_key=@" + k.RSA1024}, []string{"private_key", "2048"}},
		{"genrsa -aes256 without password", []string{"write", cfg, "private_key=@" + k.EncPKCS8}, []string{"private_key_password"}},
		{"genrsa -aes256 wrong password", []string{"write", cfg, "private_key=@" + k.EncPKCS8, "private_key_password=not " + k.Password},
			[]string{"private_key_password", "does not decrypt"}},
		{"legacy -traditional -aes256 wrong password", []string{"write", cfg, "private_key=@" + k.Legacy, "private_key_password=wrong"},
			[]string{"private_key_password", "does not decrypt"}},
		{"oversized private_key (>64 KiB)", []string{"write", cfg, "private_key=@" + k.Oversized}, []string{"private_key", "bytes"}},
		{"unknown field privat_key", []string{"write", cfg, "privat_key=@" + k.Plain}, []string{"privat_key", "unknown field"}},
		{"good key with a bad app_id", []string{"write", cfg, "private_key=@" + k.Plain, "app_id=nope"}, []string{"app_id"}},
		// ---- config: key source ----
		{"neither key nor generate_key on a new config", []string{"write", "pure1/config/fresh", "app_id=" + boot.AppID},
			[]string{"private_key", "generate_key"}},
		{"both private_key and generate_key", []string{"write", cfg, "private_key=@" + k.Plain, "generate_key=true"},
			[]string{"private_key and generate_key"}},
		{"key_bits=1024", []string{"write", cfg, "generate_key=true", "key_bits=1024"}, []string{"key_bits", "2048, 3072 or 4096"}},
		{"key_bits=5000", []string{"write", cfg, "generate_key=true", "key_bits=5000"}, []string{"key_bits", "5000"}},
		{"key_bits=abc", []string{"write", cfg, "generate_key=true", "key_bits=abc"}, []string{"key_bits"}},
		{"key_bits without generate_key", []string{"write", cfg, "key_bits=4096"}, []string{"key_bits", "generate_key"}},
		{"password without key", []string{"write", cfg, "private_key_password=" + k.Password}, []string{"private_key_password"}},
		// ---- config: token_url and app_id ----
		{"ftp token_url", []string{"write", cfg, "token_url=ftp://api.pure1.purestorage.com/oauth2/1.0/token"}, []string{"token_url", "ftp"}},
		{"http token_url to a non-loopback host", []string{"write", cfg, "token_url=http://example.com/oauth2/1.0/token"},
			[]string{"token_url", "https", "example.com"}},
		{"unparseable token_url", []string{"write", cfg, "token_url=https://[::1"}, []string{"token_url", "absolute URL"}},
		{"token_url with user:pass@", []string{"write", cfg, "token_url=https://user:secret@api.pure1.purestorage.com/oauth2/1.0/token"},
			[]string{"token_url", "user name or password"}},
		{"bad app_id shape", []string{"write", cfg, "app_id=apikey:1234"}, []string{"app_id", "pure1:apikey:"}},
		{"oversized app_id", []string{"write", cfg, "app_id=pure1:apikey:" + strings.Repeat("x", 300)}, []string{"app_id", "bytes"}},
		// ---- roles ----
		{"role without config", []string{"write", "pure1/roles/newrole", "credential_type=jwt"}, []string{"config is required"}},
		{"role with an unknown config", []string{"write", "pure1/roles/readonly", "config=nope"}, []string{`config "nope" does not exist`}},
		{"bad credential_type", []string{"write", "pure1/roles/readonly", "credential_type=password"}, []string{"credential_type", "password"}},
		{"negative ttl", []string{"write", "pure1/roles/readonly", "ttl=-5m"}, []string{"ttl", "negative"}},
		{"non-duration ttl", []string{"write", "pure1/roles/readonly", "ttl=soon"}, []string{"ttl", "soon"}},
		{"ttl > max_ttl", []string{"write", "pure1/roles/readonly", "ttl=2h", "max_ttl=1h"}, []string{"ttl", "max_ttl"}},
		{"ttl over the mount's max lease TTL", []string{"write", tuned + "/roles/short", "ttl=2h"}, []string{"ttl", "max lease TTL"}},
		{"reuse_access_token on a jwt role", []string{"write", "pure1/roles/readonly-jwt", "reuse_access_token=true"},
			[]string{"reuse_access_token", "access_token"}},
		{"unknown role field", []string{"write", "pure1/roles/readonly", "tll=5m"}, []string{"tll", "unknown field"}},
		// ---- creds ----
		{"creds for an unknown role", []string{"read", "pure1/creds/nope"}, []string{`role "nope" does not exist`}},
		{"creds for a config without app_id", []string{"read", "pure1/creds/noapp"}, []string{"app_id", `config "noapp"`}},
	}
	if len(cases) < 25 {
		t.Fatalf("only %d bad inputs", len(cases))
	}

	// What a bad request could change: what an operator sees with vault
	// read and vault list, and over HTTP the other objects the table aims at.
	snapshot := func(t *testing.T) map[string]string {
		t.Helper()
		snap := map[string]string{}
		for _, args := range [][]string{
			{"read", "-format=json", "pure1/config/main"},
			{"read", "-format=json", "pure1/roles/readonly"},
			{"list", "-format=json", "pure1/config"},
			{"list", "-format=json", "pure1/roles"},
		} {
			out := v.MustCLI(t, args...)
			if args[0] == "read" { // drop request_id and the like
				b, _ := json.Marshal(jget(mustJSONObject(t, out), "data"))
				out = string(b)
			}
			snap["vault "+strings.Join(args, " ")] = strings.TrimSpace(out)
		}
		for _, p := range []string{"pure1/roles/readonly-jwt", "pure1/config/noapp", "pure1/roles/noapp",
			tuned + "/config/main", tuned + "/roles/short", "pure1/config/fresh", "pure1/roles/newrole"} {
			status, body := v.HTTP(t, "GET", p, nil)
			b, _ := json.Marshal(jget(body, "data"))
			snap["GET "+p] = fmt.Sprintf("%d %s", status, b)
		}
		status, body := v.HTTP(t, "LIST", tuned+"/roles", nil)
		b, _ := json.Marshal(jget(body, "data", "keys"))
		snap["LIST "+tuned+"/roles"] = fmt.Sprintf("%d %s", status, b)
		return snap
	}
	before := snapshot(t)
	mainCfg := mustJSONObject(t, before["vault read -format=json pure1/config/main"])
	if mainCfg["public_key_fingerprint"] != boot.Fingerprint || mainCfg["app_id"] != boot.AppID {
		t.Fatalf("pure1/config/main before the table: %v", mainCfg)
	}
	initial := before

	// The good config still issues: a JWT signed by its key, for its app_id.
	stillIssues := func(t *testing.T) {
		t.Helper()
		status, body := v.HTTP(t, "GET", "pure1/creds/readonly-jwt", nil)
		jwt, _ := jget(body, "data", "jwt").(string)
		if status != 200 || jwt == "" {
			t.Fatalf("GET pure1/creds/readonly-jwt after the refused request: %d %v", status, body)
		}
		iss, _, err := hdVerifyJWT(jwt, bootPub)
		if err != nil || iss != boot.AppID {
			t.Errorf("JWT after the refused request: iss %q (want %s), %v", iss, boot.AppID, err)
		}
	}

	refused := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := v.CLI(t, c.args...)
			if ExitCode(err) != 2 {
				t.Errorf("vault %s: exit %d (%v), want 2; stdout %q", hdShort(c.args), ExitCode(err), err, out)
			} else {
				for _, w := range c.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("vault %s: message does not say %q: %v", hdShort(c.args), w, err)
					}
				}
			}
			method, path, body := hdHTTPForm(t, c.args)
			status, resp := v.HTTP(t, method, path, body)
			msg := fmt.Sprint(resp["errors"])
			if status < 400 || status > 499 {
				t.Errorf("%s /v1/%s: HTTP %d, want 4xx: %v", method, path, status, resp)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%s /v1/%s: errors %s do not say %q", method, path, msg, w)
				}
			}
			if jget(resp, "lease_id") != nil && jget(resp, "lease_id") != "" {
				t.Errorf("%s /v1/%s: a lease came with the error: %v", method, path, resp)
			}
			after := snapshot(t)
			if d := hdDiff(before, after); d != "" {
				t.Errorf("state changed:\n%s", d)
			}
			before = after
			stillIssues(t)
			if !t.Failed() {
				refused++
			}
		})
	}

	if d := hdDiff(initial, snapshot(t)); d != "" {
		t.Errorf("after the table, state differs from before it:\n%s", d)
	}
	// The access-token role still works end to end, and no plugin crashed
	// or was restarted on the way.
	resp := v.MustCLIJSON(t, "read", "-format=json", "pure1/creds/readonly")
	e.MustCallAPI(t, jstr(t, resp, "data", "access_token"))
	if got := jget(resp, "data", "app_id"); got != boot.AppID {
		t.Errorf("creds after the table carry app_id %v, want %s", got, boot.AppID)
	}
	after := v.PluginProcesses(t)
	if !hdSamePids(pids, after) {
		t.Errorf("plugin processes changed: before %v, after %v", pids, after)
	}
	t.Logf("%d bad inputs, %d refused cleanly by CLI (exit 2) and HTTP (4xx) with state unchanged; plugin pid(s) %v unchanged; %s",
		len(cases), refused, hdPidList(after), time.Since(start).Round(time.Millisecond))
}

// hdHTTPForm turns CLI arguments of the table into an HTTP request: write is
// POST with a JSON body (@file read in), read is GET.
func hdHTTPForm(t *testing.T, args []string) (method, path string, body map[string]any) {
	t.Helper()
	switch args[0] {
	case "read":
		return "GET", args[1], nil
	case "write":
		body = map[string]any{}
		for _, kv := range args[2:] {
			key, val, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("argument %q is not key=value", kv)
			}
			if strings.HasPrefix(val, "@") {
				b, err := os.ReadFile(val[1:])
				if err != nil {
					t.Fatal(err)
				}
				val = string(b)
			}
			body[key] = val
		}
		return "POST", args[1], body
	}
	t.Fatalf("unknown CLI verb %q", args[0])
	return "", "", nil
}

// hdShort shows CLI arguments with long values shortened.
func hdShort(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if len(a) > 70 {
			a = a[:67] + "..."
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// hdDiff lists the entries of two snapshots that differ.
func hdDiff(a, b map[string]string) string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var d []string
	for _, k := range keys {
		if a[k] != b[k] {
			d = append(d, fmt.Sprintf("  %s:\n    before %.300s\n    after  %.300s", k, a[k], b[k]))
		}
	}
	return strings.Join(d, "\n")
}

func hdSamePids(a, b map[int]string) bool {
	if len(a) != len(b) {
		return false
	}
	for pid, cmd := range a {
		if b[pid] != cmd {
			return false
		}
	}
	return true
}

func hdPidList(m map[int]string) []int {
	var pids []int
	for pid := range m {
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	return pids
}

// ---- TestSecrecyE2E ------------------------------------------------------------

// hdPrivateKeyMarker is the start of any PEM private key block.
var hdPrivateKeyMarker = regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----`)

// TestSecrecyE2E uses the engine the way an operator does, mistakes
// included, with Vault logging at trace (plugin logs included) and a file
// audit device, then searches everything a person or a log collector could
// see for the key's password, the private key, and the credentials issued.
func TestSecrecyE2E(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	start := time.Now()
	e := StartEmulator(t)
	v := StartVaultDevOpts(t, VaultOptions{LogLevel: "trace"})
	dir := t.TempDir()
	auditPath := filepath.Join(dir, "audit.log")
	v.MustCLI(t, "audit", "enable", "file", "file_path="+auditPath)

	const (
		password      = "Secrecy e2e passphrase: 7c1f0e92 purple elephants juggle quietly"
		wrongPassword = "Not the passphrase, but close: 7c1f0e92 purple elephants"
	)
	enc, legacy := filepath.Join(dir, "enc.pem"), filepath.Join(dir, "legacy.pem")
	runCmd(t, "", "openssl", "genrsa", "-aes256", "-passout", "pass:"+password, "-out", enc, "2048")
	runCmd(t, "", "openssl", "genrsa", "-aes256", "-traditional", "-passout", "pass:"+password, "-out", legacy, "2048")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("-----BEGIN PRIVATE KEY-----\nnot base64 at all!\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The decrypted forms of both keys, as PKCS#8 and PKCS#1 (what Vault
	// stores is PKCS#8): their base64 must not show up anywhere either.
	var keyTexts []string
	for _, f := range []string{enc, legacy} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		keyTexts = append(keyTexts, string(b),
			runCmd(t, "", "openssl", "pkey", "-in", f, "-passin", "pass:"+password),
			runCmd(t, "", "openssl", "rsa", "-in", f, "-passin", "pass:"+password, "-traditional"))
	}
	plain8 := filepath.Join(dir, "plain8.pem")
	if err := os.WriteFile(plain8, []byte(keyTexts[1]), 0o600); err != nil {
		t.Fatal(err)
	}
	secrets := []string{password, wrongPassword}
	for _, text := range keyTexts {
		for _, l := range strings.Split(text, "\n") {
			l = strings.TrimSpace(l)
			if len(l) == 64 || strings.HasPrefix(l, "DEK-Info:") { // full base64 lines; the legacy key's IV
				secrets = append(secrets, l)
			}
		}
	}
	if len(secrets) < 6*20 {
		t.Fatalf("only %d secret lines to look for", len(secrets))
	}

	// Every CLI run is kept, stdout and stderr, to be searched at the end.
	type cliRun struct {
		args   []string
		out    string
		issued string // the credential a creds read returned: its output may show that one
	}
	var runs []cliRun
	run := func(args ...string) (string, error) {
		t.Helper()
		out, stderr, err := v.CLIStreams(t, nil, args...)
		runs = append(runs, cliRun{args: args, out: out + "\n" + stderr})
		return out, err
	}
	mustRun := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("%v\nstdout: %s", err, out)
		}
		return out
	}
	mustFail := func(want string, args ...string) {
		t.Helper()
		if _, err := run(args...); ExitCode(err) != 2 || !strings.Contains(err.Error(), want) {
			t.Errorf("vault %s: %v; want exit 2 and %q", hdShort(args), err, want)
		}
	}

	// Import (both encrypted formats), generate, register with "Pure1".
	imported := mustJSONObject(t, mustRun("write", "-format=json", "pure1/config/imported",
		"private_key=@"+enc, "private_key_password="+password))
	mustRun("write", "pure1/config/legacy", "private_key=@"+legacy, "private_key_password="+password)
	gen := mustJSONObject(t, mustRun("write", "-format=json", "pure1/config/gen", "generate_key=true"))
	for name, resp := range map[string]map[string]any{"imported": imported, "gen": gen} {
		app := e.Register(t, jstr(t, resp, "data", "public_key"))
		mustRun("write", "pure1/config/"+name, "app_id="+app, "token_url="+e.TokenURL())
	}
	mustRun("write", "pure1/roles/at", "config=imported")
	mustRun("write", "pure1/roles/jwt", "config=imported", "credential_type=jwt", "ttl=10m")
	mustRun("write", "pure1/roles/gen-at", "config=gen", "reuse_access_token=true")

	// Look around.
	for _, args := range [][]string{
		{"read", "pure1/config/imported"}, {"read", "-format=json", "pure1/config/imported"},
		{"read", "pure1/config/legacy"}, {"read", "-format=json", "pure1/config/gen"},
		{"list", "pure1/config"}, {"list", "-format=json", "pure1/roles"}, {"read", "pure1/roles/at"},
		{"path-help", "pure1/config/x"}, {"path-help", "pure1/roles/x"}, {"path-help", "pure1/creds/x"}, {"path-help", "pure1/"},
	} {
		mustRun(args...)
	}

	// Mistakes.
	mustFail("private_key_password does not decrypt", "write", "pure1/config/imported", "private_key=@"+enc, "private_key_password="+wrongPassword)
	mustFail("private_key_password does not decrypt", "write", "pure1/config/legacy", "private_key=@"+legacy, "private_key_password="+wrongPassword)
	mustFail("supply private_key_password", "write", "pure1/config/imported", "private_key=@"+enc)
	mustFail("private_key", "write", "pure1/config/imported", "private_key=@"+garbage)
	mustFail("private_key_password", "write", "pure1/config/imported", "private_key_password="+password)
	mustFail("unknown field(s) privat_key", "write", "pure1/config/imported", "privat_key=@"+enc, "private_key_password="+password)
	mustFail("token_url", "write", "pure1/config/imported", "token_url=@"+plain8) // the key pasted into the wrong field
	mustFail("app_id", "write", "pure1/config/imported", "app_id=@"+plain8)
	mustFail("config", "write", "pure1/roles/x", "config=@"+plain8)
	mustFail("credential_type", "write", "pure1/roles/x", "config=imported", "credential_type=@"+plain8)
	mustFail("private_key and generate_key", "write", "pure1/config/x", "private_key=@"+plain8, "generate_key=true")
	// Pure1 refusing, then failing: logged by the plugin at Warn.
	e.Fault(t, Fault{Kind: "status", Status: 401})
	mustFail("Pure1 rejected the token exchange", "read", "pure1/creds/at")
	e.Fault(t, Fault{Kind: "status", Status: 503, Count: 10})
	mustFail("503", "read", "pure1/creds/at")
	e.ClearFaults(t)

	// Credentials of every role, CLI and HTTP.
	var tokens []string
	for _, r := range []struct{ role, field string }{{"at", "access_token"}, {"jwt", "jwt"}, {"gen-at", "access_token"}, {"gen-at", "access_token"}} {
		resp := mustJSONObject(t, mustRun("read", "-format=json", "pure1/creds/"+r.role))
		tokens = append(tokens, jstr(t, resp, "data", r.field))
		runs[len(runs)-1].issued = tokens[len(tokens)-1]
		if r.field == "access_token" {
			e.MustCallAPI(t, tokens[len(tokens)-1])
		}
		mustRun("lease", "lookup", jstr(t, resp, "lease_id"))
	}
	for _, r := range []struct{ role, field string }{{"at", "access_token"}, {"jwt", "jwt"}} {
		status, body := v.HTTP(t, "GET", "pure1/creds/"+r.role, nil)
		tok, _ := jget(body, "data", r.field).(string)
		if status != 200 || tok == "" {
			t.Fatalf("GET /v1/pure1/creds/%s: %d %v", r.role, status, body)
		}
		tokens = append(tokens, tok)
	}
	mustRun("lease", "revoke", "-prefix", "pure1/creds/")

	// The logs, once the plugin's lines of the last requests are in.
	var serverLog string
	eventually(t, 10*time.Second, 100*time.Millisecond, "plugin log lines in the server log", func() (bool, string) {
		serverLog = v.Proc().Log()
		for _, want := range []string{"Pure1 token exchange failed", "Pure1 token exchanged", "Pure1 token endpoint answered", "[TRACE]"} {
			if !strings.Contains(serverLog, want) {
				return false, "no " + want
			}
		}
		return true, ""
	})
	auditLog, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	emuLog := e.Proc().Log()
	if !strings.Contains(emuLog, "/oauth2/1.0/token") {
		t.Errorf("the emulator log shows no token request:\n%s", emuLog)
	}

	type place struct {
		name, text string
		log        bool   // a log: not even the words PRIVATE KEY
		issued     string // the one credential it may show
	}
	places := []place{
		{name: "the audit log", text: string(auditLog), log: true},
		{name: "the Vault server log (trace)", text: serverLog, log: true},
		{name: "the emulator log", text: emuLog, log: true},
	}
	for _, r := range runs {
		places = append(places, place{name: "the output of vault " + hdShort(r.args), text: r.out, issued: r.issued})
	}
	leaks := 0
	leak := func(where, what, s string) {
		leaks++
		if leaks <= 20 {
			t.Errorf("%s contains %s %.16q...", where, what, s)
		}
	}
	for _, p := range places {
		for _, s := range secrets {
			if strings.Contains(p.text, s) {
				leak(p.name, "secret material", s)
			}
		}
		if m := hdPrivateKeyMarker.FindString(p.text); m != "" {
			leak(p.name, "a private key block", m)
		}
		if p.log && strings.Contains(p.text, "PRIVATE KEY") {
			leak(p.name, "the marker", "PRIVATE KEY")
		}
		for _, tok := range tokens {
			if tok != p.issued && strings.Contains(p.text, tok) {
				leak(p.name, "an issued credential", tok)
			}
		}
	}
	if strings.Contains(emuLog, "eyJ") {
		leak("the emulator log", "something like a JWT", "eyJ")
	}
	// The audit log has the secret fields, HMAC'd.
	hmacd, plainFields := hdAuditFields(t, string(auditLog), []string{"private_key", "private_key_password", "access_token", "jwt"})
	for _, f := range []string{"private_key", "private_key_password", "access_token", "jwt"} {
		if hmacd[f] == 0 {
			t.Errorf("the audit log has no HMAC'd %s: is the audit device logging the plugin's requests?", f)
		}
	}
	for _, p := range plainFields {
		t.Errorf("the audit log has a field in clear: %s", p)
	}
	var help []string
	for _, r := range runs {
		if r.args[0] == "path-help" {
			help = append(help, r.out)
		}
	}
	if len(help) != 4 || !strings.Contains(help[0], "private_key_password") || !strings.Contains(help[2], "access_token") {
		t.Errorf("path-help did not document the fields:\n%s", strings.Join(help, "\n----\n"))
	}
	t.Logf("%d secret strings (password, wrong password, %d key lines) and %d issued credentials searched in %d CLI outputs "+
		"(%d of them path-help), the audit log (%d lines; HMAC'd fields: %v), the server log at trace (%d KiB) and the emulator log: %d leaks; %s",
		len(secrets), len(secrets)-2, len(tokens), len(runs), len(help), strings.Count(string(auditLog), "\n"), hmacd,
		len(serverLog)>>10, leaks, time.Since(start).Round(time.Millisecond))
}

// hdAuditFields walks the audit log's JSON lines and counts, per field name,
// the values of request and response data under pure1/ that are HMAC'd; it
// returns the ones that are not.
func hdAuditFields(t *testing.T, log string, fields []string) (map[string]int, []string) {
	t.Helper()
	hmacd := map[string]int{}
	var plain []string
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	n := 0
	for sc.Scan() {
		var ent struct {
			Type    string `json:"type"`
			Request struct {
				Path string         `json:"path"`
				Data map[string]any `json:"data"`
			} `json:"request"`
			Response struct {
				Data map[string]any `json:"data"`
			} `json:"response"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ent); err != nil {
			t.Fatalf("audit log line %d is not JSON: %v", n+1, err)
		}
		n++
		if !strings.HasPrefix(ent.Request.Path, "pure1/") {
			continue
		}
		for _, data := range []map[string]any{ent.Request.Data, ent.Response.Data} {
			for _, f := range fields {
				val, ok := data[f]
				if !ok {
					continue
				}
				if s, _ := val.(string); strings.HasPrefix(s, "hmac-sha256:") {
					hmacd[f]++
				} else {
					plain = append(plain, fmt.Sprintf("%s %s %s = %.20v...", ent.Type, ent.Request.Path, f, val))
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("the audit log is empty")
	}
	return hmacd, plain
}

// ---- TestLoadE2E ---------------------------------------------------------------

// TestLoadE2E is the unit load test's shape through a real Vault: 8 readers
// × 150 HTTP reads with a pure1-creds token while a churner rewrites role
// TTLs and rotates a config's key through the CLI (config/churn/rotate: a
// pending key, registered with the emulator, promoted with its app_id).
//
// Readers use two configs, "stable" (roles sj, jwt, and sa, access_token)
// and "churn" (role cj, jwt). Every read must succeed, also of cj through
// the rotations; every JWT must verify with the key of the generation its
// iss names; a sample of access tokens must be accepted by the Pure1 API.
func TestLoadE2E(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	e := StartEmulator(t, "-quiet")
	v := StartVaultDevOpts(t, VaultOptions{LogLevel: "info"})

	var (
		gensMu sync.Mutex
		gens   = map[string]*rsa.PublicKey{} // app_id -> the public key registered for it
	)
	setup := func(name string) string {
		resp := v.MustCLIJSON(t, "write", "-format=json", "pure1/config/"+name, "generate_key=true")
		pub := jstr(t, resp, "data", "public_key")
		app := e.Register(t, pub)
		gens[app] = parsePublicKey(t, pub)
		v.MustCLI(t, "write", "pure1/config/"+name, "app_id="+app, "token_url="+e.TokenURL())
		return app
	}
	stableApp := setup("stable")
	setup("churn")
	v.MustCLI(t, "write", "pure1/roles/sj", "config=stable", "credential_type=jwt", "ttl=10m")
	v.MustCLI(t, "write", "pure1/roles/sa", "config=stable", "ttl=10m")
	v.MustCLI(t, "write", "pure1/roles/cj", "config=churn", "credential_type=jwt", "ttl=10m")
	v.MustCLI(t, "policy", "write", "pure1-creds", filepath.Join(RepoRoot(t), "bootstrap", "policy-pure1-creds.hcl"))
	token := strings.TrimSpace(v.MustCLI(t, "token", "create", "-policy=pure1-creds", "-field=token"))
	e.ResetStats(t)

	const (
		readers, readsPer = 8, 150
		readPace          = 20 * time.Millisecond
	)
	ttls := []string{"10m", "30m", "1h"}
	ttlSecs := map[int64]bool{600: true, 1800: true, 3600: true}

	var (
		errCount atomic.Int64
		errMu    sync.Mutex
		errs     []string
	)
	fail := func(format string, a ...any) {
		if errCount.Add(1) <= 15 {
			errMu.Lock()
			errs = append(errs, fmt.Sprintf(format, a...))
			errMu.Unlock()
		}
	}

	// The churner.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	done := make(chan struct{})
	var (
		churnWG                 sync.WaitGroup
		regenerations, rewrites atomic.Int64
	)
	churnWG.Add(1)
	go func() {
		defer churnWG.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			if i%2 == 0 {
				// A key rotation, as an operator does it: readers of the
				// config must not notice it at all.
				out, err := v.CLI(t, "write", "-format=json", "pure1/config/churn/rotate", "generate_key=true")
				if err != nil {
					fail("churner: regenerating: %v", err)
					continue
				}
				var resp struct {
					Data struct {
						PublicKey string `json:"public_key"`
					} `json:"data"`
				}
				if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.Data.PublicKey == "" {
					fail("churner: regenerating answered %q (%v)", out, err)
					continue
				}
				pub, err := hdParsePublicKey(resp.Data.PublicKey)
				if err != nil {
					fail("churner: %v", err)
					continue
				}
				app, err := hdRegister(e, resp.Data.PublicKey)
				if err != nil {
					fail("churner: %v", err)
					continue
				}
				gensMu.Lock()
				gens[app] = pub
				gensMu.Unlock()
				if _, err := v.CLI(t, "write", "pure1/config/churn/rotate", "app_id="+app); err != nil {
					fail("churner: promoting: %v", err)
					continue
				}
				regenerations.Add(1)
			} else {
				for r, role := range []string{"sj", "sa", "cj"} {
					if _, err := v.CLI(t, "write", "pure1/roles/"+role, "ttl="+ttls[(i+r)%len(ttls)]); err != nil {
						fail("churner: rewriting %s: %v", role, err)
					}
				}
				rewrites.Add(1)
			}
		}
	}()

	type jwtRead struct{ role, jwt string }
	var (
		readWG  sync.WaitGroup
		jwts    = make([][]jwtRead, readers)
		access  = make([][]string, readers)
		reads   atomic.Int64
		perRole sync.Map // role -> *atomic.Int64 of successful reads
	)
	count := func(role string) {
		c, _ := perRole.LoadOrStore(role, new(atomic.Int64))
		c.(*atomic.Int64).Add(1)
	}
	start := time.Now()
	for g := 0; g < readers; g++ {
		readWG.Add(1)
		go func(g int) {
			defer readWG.Done()
			for i := 0; i < readsPer; i++ {
				// Paced so that the reads span a few seconds: the churner
				// works through the CLI, at a few writes per second, and
				// must overlap them. Unpaced throughput is TestParallelReaders'.
				time.Sleep(readPace)
				role := "sj" // 6 in 10
				switch (g + i) % 10 {
				case 6, 7:
					role = "cj"
				case 8, 9:
					role = "sa"
				}
				reads.Add(1)
				status, body, err := v.Request(ctx, token, "GET", "pure1/creds/"+role, nil)
				switch {
				case err != nil:
					fail("reader %d read %d (%s): %v", g, i, role, err)
					continue
				case status != 200:
					fail("reader %d read %d (%s): HTTP %d %v", g, i, role, status, body)
					continue
				}
				// Leases end no later than the role's ttl, whichever of the
				// churner's it had; an access token lease is exactly that ttl.
				lease, _ := body["lease_duration"].(float64)
				if lease <= 0 || lease > 3600 || (role == "sa" && !ttlSecs[int64(lease)]) || body["renewable"] != false {
					fail("reader %d read %d (%s): lease_duration %v renewable %v", g, i, role, body["lease_duration"], body["renewable"])
					continue
				}
				if role == "sa" {
					tok, _ := jget(body, "data", "access_token").(string)
					if strings.Count(tok, ".") != 2 || jget(body, "data", "app_id") != stableApp {
						fail("reader %d read %d (sa): access_token %.20q... app_id %v", g, i, tok, jget(body, "data", "app_id"))
						continue
					}
					access[g] = append(access[g], tok)
				} else {
					tok, _ := jget(body, "data", "jwt").(string)
					jwts[g] = append(jwts[g], jwtRead{role, tok})
				}
				count(role)
			}
		}(g)
	}
	readWG.Wait()
	elapsed := time.Since(start)
	close(done)
	churnWG.Wait()

	// Every JWT verifies with the key of the generation its iss names.
	verified := 0
	churnGens := map[string]bool{}
	var exchangeSample []string
	for _, rs := range jwts {
		for _, r := range rs {
			iss := hdUnverifiedIss(r.jwt)
			gensMu.Lock()
			pub := gens[iss]
			gensMu.Unlock()
			if pub == nil {
				fail("%s JWT with iss %q, an app_id no generation was registered as", r.role, iss)
				continue
			}
			if r.role == "sj" && iss != stableApp {
				fail("sj JWT with iss %q, want the stable app %s", iss, stableApp)
				continue
			}
			_, life, err := hdVerifyJWT(r.jwt, pub)
			if err != nil {
				fail("%s JWT of %s: %v", r.role, iss, err)
				continue
			}
			if !ttlSecs[life] {
				fail("%s JWT of %s lives %d s, not one of the role's ttls", r.role, iss, life)
			}
			verified++
			if r.role == "cj" && !churnGens[iss] {
				churnGens[iss] = true
				if len(exchangeSample) < 4 {
					exchangeSample = append(exchangeSample, r.jwt)
				}
			}
		}
	}
	// Pure1 takes the churn JWTs too: each generation's app has its key.
	for _, jwt := range exchangeSample {
		if status, body := e.Exchange(t, jwt); status != 200 {
			fail("exchanging a churn JWT of %s: HTTP %d %v", hdUnverifiedIss(jwt), status, body)
		}
	}
	accessChecked, accessTotal := 0, 0
	for _, toks := range access {
		for i, tok := range toks {
			accessTotal++
			if i%5 != 0 {
				continue
			}
			accessChecked++
			if status, body, err := e.CallAPI(tok); err != nil || status != 200 {
				fail("the Pure1 API refused an access token of sa: HTTP %d %v %v", status, err, body)
			}
		}
	}

	stats := e.Stats(t)
	roleCount := func(role string) int64 {
		if c, ok := perRole.Load(role); ok {
			return c.(*atomic.Int64).Load()
		}
		return 0
	}
	t.Logf("%d reads in %s (%.0f/s): sj %d, sa %d, cj %d ok; "+
		"%d JWTs verified (cj signed by %d of %d churn generations, %d exchanged with Pure1), %d access tokens (%d checked at the Pure1 API); "+
		"churner: %d regenerations, %d role rewrite rounds; emulator: %d token requests; %d unexpected errors",
		reads.Load(), elapsed.Round(time.Millisecond), float64(reads.Load())/elapsed.Seconds(),
		roleCount("sj"), roleCount("sa"), roleCount("cj"),
		verified, len(churnGens), regenerations.Load()+1, len(exchangeSample), accessTotal, accessChecked,
		regenerations.Load(), rewrites.Load(), stats["token_requests"], errCount.Load())
	for _, s := range errs {
		t.Error(s)
	}
	if n := errCount.Load(); n != 0 {
		t.Fatalf("%d unexpected errors", n)
	}
	if got := roleCount("sj") + roleCount("sa") + roleCount("cj"); got != readers*readsPer {
		t.Fatalf("%d of %d reads accounted for", got, readers*readsPer)
	}
	if roleCount("sj")+roleCount("sa") != int64(readers*readsPer*8/10) {
		t.Errorf("reads of the stable roles: %d, want all %d", roleCount("sj")+roleCount("sa"), readers*readsPer*8/10)
	}
	if regenerations.Load() < 2 || len(churnGens) < 2 {
		t.Errorf("only %d regenerations and %d generations seen by readers: the churner did not overlap the readers", regenerations.Load(), len(churnGens))
	}
}

// hdRegister registers a public key with the emulator without failing the
// test, for use from a goroutine.
func hdRegister(e *Emulator, publicKeyPEM string) (string, error) {
	status, b, err := e.request(http.MethodPost, "/emulator/applications", map[string]string{"public_key": publicKeyPEM})
	if err != nil {
		return "", fmt.Errorf("registering with the emulator: %v", err)
	}
	var app struct {
		ID string `json:"id"`
	}
	if status != http.StatusCreated || json.Unmarshal(b, &app) != nil || !strings.HasPrefix(app.ID, "pure1:apikey:") {
		return "", fmt.Errorf("registering with the emulator: HTTP %d %s", status, b)
	}
	return app.ID, nil
}

// ---- TestPure1FaultsE2E --------------------------------------------------------

// TestPure1FaultsE2E makes the emulated Pure1 misbehave under a real Vault:
// what the plugin retries must end in a working credential; what it must not
// retry, or cannot outlast, must end at once in a 502 that says what happened,
// with no lease. A response that takes longer than the plugin's 15 s attempt
// timeout runs meanwhile against a second emulator.
func TestPure1FaultsE2E(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	start := time.Now()
	e := StartEmulator(t)
	v := StartVaultDev(t)
	Bootstrap(t, v, e)

	// A slow Pure1 of its own: the first answer comes after 20 s, past the
	// plugin's 15 s attempt timeout; the retry gets a token.
	slow := StartEmulator(t)
	resp := v.MustCLIJSON(t, "write", "-format=json", "pure1/config/slow", "generate_key=true")
	v.MustCLI(t, "write", "pure1/config/slow", "app_id="+slow.Register(t, jstr(t, resp, "data", "public_key")), "token_url="+slow.TokenURL())
	v.MustCLI(t, "write", "pure1/roles/slow", "config=slow")
	slow.Fault(t, Fault{Kind: "delay", Delay: "20s"})
	type slowResult struct {
		out     string
		err     error
		elapsed time.Duration
	}
	slowDone := make(chan slowResult, 1)
	go func() {
		t0 := time.Now()
		out, err := v.CLI(t, "read", "-format=json", "pure1/creds/slow")
		slowDone <- slowResult{out, err, time.Since(t0)}
	}()

	leases := func(t *testing.T) int {
		t.Helper()
		status, body := v.HTTP(t, "LIST", "sys/leases/lookup/pure1/creds/readonly", nil)
		if status == http.StatusNotFound {
			return 0
		}
		keys, ok := jget(body, "data", "keys").([]any)
		if status != 200 || !ok {
			t.Fatalf("LIST sys/leases/lookup/pure1/creds/readonly: %d %v", status, body)
		}
		return len(keys)
	}
	survived, failedCleanly := 0, 0

	// ok: the read succeeds after the faults, with exactly wantRequests
	// token requests, a working token and one new lease.
	ok := func(t *testing.T, faults []Fault, wantRequests int64, minTime time.Duration) {
		t.Helper()
		e.ClearFaults(t)
		e.ResetStats(t)
		before := leases(t)
		if len(faults) > 0 {
			e.Fault(t, faults)
		}
		t0 := time.Now()
		out, err := v.CLI(t, "read", "-format=json", "pure1/creds/readonly")
		took := time.Since(t0)
		if err != nil {
			t.Fatalf("vault read pure1/creds/readonly after %v: %v\n%s", faults, err, out)
		}
		e.MustCallAPI(t, jstr(t, mustJSONObject(t, out), "data", "access_token"))
		s := e.Stats(t)
		if s["token_requests"] != wantRequests || s["faults_served"] != int64(len(faults)) || s["tokens_issued"] != 1 {
			t.Errorf("emulator stats %v: want %d token requests, %d faults served, 1 token issued", s, wantRequests, len(faults))
		}
		if took < minTime {
			t.Errorf("the read took %s, less than the %s Pure1 asked to wait", took, minTime)
		}
		if n := leases(t); n != before+1 {
			t.Errorf("%d leases after a successful read, want %d", n, before+1)
		}
		if !t.Failed() {
			survived += len(faults)
		}
	}
	// bad: the read fails (CLI exit 2 or HTTP 502) within maxTime with a
	// message holding want, after a number of token requests in
	// [minRequests, maxRequests], and leaves no lease.
	bad := func(t *testing.T, viaHTTP bool, fault Fault, want []string, minRequests, maxRequests int64, maxTime time.Duration) {
		t.Helper()
		e.ClearFaults(t)
		e.ResetStats(t)
		before := leases(t)
		e.Fault(t, fault)
		t0 := time.Now()
		var msg string
		if viaHTTP {
			status, body := v.HTTP(t, "GET", "pure1/creds/readonly", nil)
			msg = fmt.Sprint(body["errors"])
			if status != http.StatusBadGateway {
				t.Errorf("GET /v1/pure1/creds/readonly with fault %+v: HTTP %d %v, want 502", fault, status, body)
			}
		} else {
			out, err := v.CLI(t, "read", "pure1/creds/readonly")
			if ExitCode(err) != 2 || !strings.Contains(err.Error(), "Code: 502") {
				t.Errorf("vault read pure1/creds/readonly with fault %+v: %v (stdout %q), want exit 2 and Code: 502", fault, err, out)
			}
			if err != nil {
				msg = err.Error()
			}
		}
		took := time.Since(t0)
		for _, w := range want {
			if !strings.Contains(strings.ToLower(msg), strings.ToLower(w)) {
				t.Errorf("error %q does not say %q", msg, w)
			}
		}
		if took > maxTime {
			t.Errorf("the refusal took %s, want at most %s", took.Round(time.Millisecond), maxTime)
		}
		s := e.Stats(t)
		if n := s["token_requests"]; n < minRequests || n > maxRequests {
			t.Errorf("%d token requests, want %d to %d (stats %v)", n, minRequests, maxRequests, s)
		}
		if n := leases(t); n != before {
			t.Errorf("%d leases after the failed read, want %d: an error created a lease", n, before)
		}
		if !t.Failed() {
			failedCleanly++
		}
	}

	t.Run("429 Retry-After 1 is waited for and retried", func(t *testing.T) {
		ok(t, []Fault{{Kind: "status", Status: 429, RetryAfter: "1"}}, 2, time.Second)
	})
	t.Run("429 Retry-After 3600 fails fast", func(t *testing.T) {
		want := []string{"HTTP 429", "rate limit", "Retry-After 1h0m0s", "after 1 attempt"}
		cli := strings.TrimSpace(v.MustCLI(t, "list", "-format=json", "sys/leases/lookup/pure1/creds/readonly"))
		bad(t, false, Fault{Kind: "status", Status: 429, RetryAfter: "3600"}, want, 1, 1, 5*time.Second)
		bad(t, true, Fault{Kind: "status", Status: 429, RetryAfter: "3600"}, want, 1, 1, 5*time.Second)
		if after := strings.TrimSpace(v.MustCLI(t, "list", "-format=json", "sys/leases/lookup/pure1/creds/readonly")); after != cli {
			t.Errorf("vault list sys/leases/lookup/pure1/creds/readonly changed:\n%s\n%s", cli, after)
		}
	})
	t.Run("429 Retry-After beyond the 10 s cap fails fast", func(t *testing.T) {
		// README: "Retry-After is honoured up to 10 s". 12 s is inside the
		// request deadline and the retry budget, so only the cap stops it.
		bad(t, false, Fault{Kind: "status", Status: 429, RetryAfter: "12"}, []string{"HTTP 429", "Retry-After 12s"}, 1, 1, 5*time.Second)
	})
	for _, status := range []int{500, 502, 503, 504} {
		t.Run(fmt.Sprintf("%d once is retried", status), func(t *testing.T) {
			ok(t, []Fault{{Kind: "status", Status: status}}, 2, 0)
		})
	}
	t.Run("reset once is retried", func(t *testing.T) {
		ok(t, []Fault{{Kind: "reset"}}, 2, 0)
	})
	t.Run("sustained 503 gives up", func(t *testing.T) {
		sustained := Fault{Kind: "status", Status: 503, Count: 50}
		bad(t, false, sustained, []string{"Pure1 token exchange", "HTTP 503", "attempt(s)"}, 2, 4, 15*time.Second)
		bad(t, true, sustained, []string{"HTTP 503"}, 2, 4, 15*time.Second)
		e.ClearFaults(t)
		ok(t, nil, 1, 0) // and back to normal
	})
	for _, kind := range []string{"non_json", "truncated_json", "no_access_token", "no_expires_in", "zero_expires_in"} {
		t.Run(kind+" is not retried", func(t *testing.T) {
			want := []string{"unusable token response", "after 1 attempt"}
			bad(t, false, Fault{Kind: kind}, want, 1, 1, 5*time.Second)
			bad(t, true, Fault{Kind: kind}, want, 1, 1, 5*time.Second)
		})
	}
	e.ClearFaults(t)

	t.Run("delay past the attempt timeout is retried", func(t *testing.T) {
		r := <-slowDone
		if r.err != nil {
			t.Fatalf("vault read pure1/creds/slow with a 20 s delay: %v (after %s)", r.err, r.elapsed)
		}
		slow.MustCallAPI(t, jstr(t, mustJSONObject(t, r.out), "data", "access_token"))
		if r.elapsed < 14*time.Second || r.elapsed > 40*time.Second {
			t.Errorf("the read took %s: want one 15 s attempt timeout, then a quick retry", r.elapsed.Round(time.Millisecond))
		}
		if s := slow.Stats(t); s["token_requests"] != 2 || s["faults_served"] != 1 || s["tokens_issued"] != 1 {
			t.Errorf("slow emulator stats %v: want 2 token requests, 1 fault, 1 token", s)
		} else {
			survived++
		}
		t.Logf("a 20 s delay cost %s", r.elapsed.Round(time.Millisecond))
	})
	t.Logf("%d faults survived (retried to a working token), %d failures refused cleanly (502, no lease); %s",
		survived, failedCleanly, time.Since(start).Round(time.Millisecond))
}

// ---- helpers -------------------------------------------------------------------

// hdVerifyJWT checks an RS256 JWT's signature with pub and returns its iss
// and lifetime (exp - iat), without failing the test.
func hdVerifyJWT(jwt string, pub *rsa.PublicKey) (string, int64, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "", 0, fmt.Errorf("JWT has %d parts", len(parts))
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", 0, fmt.Errorf("signature: %v", err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return "", 0, fmt.Errorf("signature does not verify: %v", err)
	}
	var c struct {
		Iss string `json:"iss"`
		Iat int64  `json:"iat"`
		Exp int64  `json:"exp"`
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(payload, &c) != nil {
		return "", 0, fmt.Errorf("claims %q unreadable", parts[1])
	}
	return c.Iss, c.Exp - c.Iat, nil
}

// hdUnverifiedIss is the iss claim of a JWT, unverified.
func hdUnverifiedIss(jwt string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Iss string `json:"iss"`
	}
	_ = json.Unmarshal(payload, &c)
	return c.Iss
}

// hdParsePublicKey is parsePublicKey without a test to fail.
func hdParsePublicKey(pemText string) (*rsa.PublicKey, error) {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("not a PEM PUBLIC KEY: %.80q", pemText)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key is %T, not RSA", k)
	}
	return rk, nil
}
