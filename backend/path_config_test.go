package backend

import (
	"context"
	"crypto/rsa"
	"errors"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
)

// storedConfig decodes config/name as stored.
func (e *testEnv) storedConfig(name string) configEntry {
	e.t.Helper()
	ent, err := e.inmem.Get(e.ctx, "config/"+name)
	if err != nil || ent == nil {
		e.t.Fatalf("config/%s not in storage: %v", name, err)
	}
	var c configEntry
	if err := ent.DecodeJSON(&c); err != nil {
		e.t.Fatal(err)
	}
	return c
}

func warningsContain(resp *logical.Response, sub string) bool {
	for _, w := range resp.Warnings {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}

func TestConfigImportFormats(t *testing.T) {
	k := keyA()
	cases := []struct {
		name, pem, password, source string
		wantWarning                 string
	}{
		{name: "PKCS#1", pem: k.pkcs1, source: "imported (PKCS#1)"},
		{name: "PKCS#8", pem: k.pkcs8, source: "imported (PKCS#8)"},
		{name: "legacy encrypted AES-256", pem: k.legacyAES, password: testPassword, source: "imported (encrypted PEM (legacy))"},
		{name: "legacy encrypted 3DES", pem: k.legacyDES3, password: testPassword, source: "imported (encrypted PEM (legacy))"},
		{name: "encrypted PKCS#8 PBES2 AES-256", pem: k.encPKCS8, password: testPassword, source: "imported (encrypted PKCS#8)"},
		{name: "encrypted PKCS#8 PBES2 AES-128", pem: k.encPKCS8AES, password: testPassword, source: "imported (encrypted PKCS#8)"},
		{name: "certificate then key in one bundle", pem: selfSignedCertPEM(k) + k.pkcs1, source: "imported (PKCS#1)"},
		{name: "CRLF line endings", pem: strings.ReplaceAll(k.pkcs8, "\n", "\r\n"), source: "imported (PKCS#8)"},
		{name: "password with a plain key", pem: k.pkcs8, password: testPassword, source: "imported (PKCS#8)",
			wantWarning: "private_key_password was ignored"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, envOptions{})
			data := map[string]interface{}{"private_key": tc.pem, "app_id": appID1}
			if tc.password != "" {
				data["private_key_password"] = tc.password
			}
			resp := e.mustWrite("config/imp", data)
			if tc.wantWarning != "" && !warningsContain(resp, tc.wantWarning) {
				t.Errorf("warnings %q lack %q", resp.Warnings, tc.wantWarning)
			}
			if tc.wantWarning == "" && len(resp.Warnings) != 0 {
				t.Errorf("unexpected warnings %q", resp.Warnings)
			}
			want := map[string]interface{}{
				"kind":                   "pure1",
				"app_id":                 appID1,
				"public_key":             k.publicPEM,
				"public_key_fingerprint": k.fingerprint,
				"key_bits":               2048,
				"key_source":             tc.source,
				"token_url":              pure1.DefaultTokenURL,
				"key_created_at":         testEpoch.Format(time.RFC3339),
				"max_key_age":            int64(0),
			}
			if !reflect.DeepEqual(resp.Data, want) {
				t.Errorf("write response\n got %v\nwant %v", resp.Data, want)
			}
			if got := e.mustRead("config/imp").Data; !reflect.DeepEqual(got, want) {
				t.Errorf("read\n got %v\nwant %v", got, want)
			}
			// Stored unencrypted PKCS#8 behind the barrier; the password is
			// used once and kept nowhere.
			st := e.storedConfig("imp")
			if !strings.HasPrefix(st.PrivateKey, "-----BEGIN PRIVATE KEY-----") {
				t.Errorf("stored key is not plain PKCS#8: %.40q", st.PrivateKey)
			}
			for k, v := range e.snapshot() {
				if strings.Contains(string(v), testPassword) {
					t.Errorf("password stored under %s", k)
				}
			}
			// The key signs: a JWT verifies with the original public key.
			e.mustWrite("roles/j", map[string]interface{}{"config": "imp", "credential_type": "jwt"})
			c, err := checkJWT(dataString(t, e.creds("j"), "jwt"), &k.priv.PublicKey)
			if err != nil || c.Iss != appID1 {
				t.Errorf("JWT from imported key: %v (iss %q)", err, c.Iss)
			}
		})
	}
}

func TestConfigGenerateKey(t *testing.T) {
	cases := []struct {
		name     string
		bits     interface{} // nil: key_bits unset
		wantBits int
		slow     bool
	}{
		{"default", nil, 2048, false},
		{"2048", 2048, 2048, false},
		{"3072 as a string, as the CLI sends it", "3072", 3072, true},
		{"4096", 4096, 4096, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.slow && testing.Short() {
				t.Skip("generating a 3072/4096-bit key is slow; skipped in -short")
			}
			e := newTestEnv(t, envOptions{})
			data := map[string]interface{}{"generate_key": true}
			if tc.bits != nil {
				data["key_bits"] = tc.bits
			}
			resp := e.mustWrite("config/gen", data)
			if got := resp.Data["key_bits"]; got != tc.wantBits {
				t.Errorf("key_bits %v, want %d", got, tc.wantBits)
			}
			if resp.Data["key_source"] != "generated" {
				t.Errorf("key_source %v, want generated", resp.Data["key_source"])
			}
			if resp.Data["app_id"] != "" {
				t.Errorf("app_id %v, want empty", resp.Data["app_id"])
			}
			if !warningsContain(resp, "no app_id yet") || !warningsContain(resp, "vault write pure1/config/gen app_id=") {
				t.Errorf("warnings %q should say how to register the key and write app_id", resp.Warnings)
			}
			pubPEM, _ := resp.Data["public_key"].(string)
			if !strings.HasPrefix(pubPEM, "-----BEGIN PUBLIC KEY-----") {
				t.Fatalf("public_key %q", pubPEM)
			}
			fp := resp.Data["public_key_fingerprint"].(string)
			if len(fp) != 64 || strings.ToLower(fp) != fp {
				t.Errorf("fingerprint %q is not lowercase hex SHA-256", fp)
			}
			// The write's answer is what a read shows, and the stored key is
			// the pair of the public key shown.
			if got := e.mustRead("config/gen").Data; !reflect.DeepEqual(got, resp.Data) {
				t.Errorf("read %v differs from write response %v", got, resp.Data)
			}
			stored, err := pure1.ParsePrivateKey([]byte(e.storedConfig("gen").PrivateKey), nil)
			if err != nil {
				t.Fatal(err)
			}
			if stored.PublicKeyPEM() != pubPEM || stored.Fingerprint() != fp || stored.Bits() != tc.wantBits {
				t.Errorf("stored key does not match the public key shown")
			}
		})
	}
}

func TestConfigUpdateSemantics(t *testing.T) {
	e := newTestEnv(t, envOptions{hosts: allowExample(t)})
	a, b, c := keyA(), keyB(), keyC()
	readCfg := func() map[string]interface{} { return e.mustRead("config/u").Data }
	expect := func(step string, got map[string]interface{}, appID string, k *keyFixture, tokenURL string) {
		t.Helper()
		if got["app_id"] != appID || got["public_key_fingerprint"] != k.fingerprint ||
			got["public_key"] != k.publicPEM || got["token_url"] != tokenURL {
			t.Errorf("%s: got app_id=%v fingerprint=%v token_url=%v; want %q %s %s",
				step, got["app_id"], got["public_key_fingerprint"], got["token_url"], appID, k.fingerprint, tokenURL)
		}
	}

	e.writeConfig("u", a, appID1)
	expect("create", readCfg(), appID1, a, pure1.DefaultTokenURL)

	// Only app_id: the key and its fingerprint stay.
	resp := e.mustWrite("config/u", map[string]interface{}{"app_id": appID2})
	if len(resp.Warnings) != 0 {
		t.Errorf("app_id-only write warned: %q", resp.Warnings)
	}
	expect("app_id only", readCfg(), appID2, a, pure1.DefaultTokenURL)
	if src := readCfg()["key_source"]; src != "imported (PKCS#8)" {
		t.Errorf("key_source changed to %v by an app_id-only write", src)
	}

	// token_url override, then back to the default with an empty value.
	const custom = "https://pure1.example.com/oauth2/1.0/token"
	e.mustWrite("config/u", map[string]interface{}{"token_url": custom})
	expect("token_url override", readCfg(), appID2, a, custom)
	e.mustWrite("config/u", map[string]interface{}{"token_url": "http://localhost:8443/oauth2/1.0/token"})
	expect("loopback http token_url", readCfg(), appID2, a, "http://localhost:8443/oauth2/1.0/token")
	e.mustWrite("config/u", map[string]interface{}{"token_url": ""})
	expect("token_url reset", readCfg(), appID2, a, pure1.DefaultTokenURL)

	// The same key again, in another format: app_id stays.
	resp = e.mustWrite("config/u", map[string]interface{}{"private_key": a.legacyAES, "private_key_password": testPassword})
	if warningsContain(resp, "cleared") {
		t.Errorf("re-importing the same key cleared app_id: %q", resp.Warnings)
	}
	expect("same key re-imported", readCfg(), appID2, a, pure1.DefaultTokenURL)
	if src := readCfg()["key_source"]; src != "imported (encrypted PEM (legacy))" {
		t.Errorf("key_source %v after re-import", src)
	}

	// A new key without app_id clears it, with a warning naming the old one.
	resp = e.mustWrite("config/u", map[string]interface{}{"private_key": b.pkcs1})
	if !warningsContain(resp, "app_id \""+appID2+"\" was cleared") {
		t.Errorf("warnings %q should say app_id %s was cleared", resp.Warnings, appID2)
	}
	expect("new key", readCfg(), "", b, pure1.DefaultTokenURL)

	// A new key with its app_id in the same write: no clearing.
	e.mustWrite("config/u", map[string]interface{}{"app_id": appID1})
	resp = e.mustWrite("config/u", map[string]interface{}{"private_key": c.pkcs8, "app_id": appID3})
	if len(resp.Warnings) != 0 {
		t.Errorf("new key with app_id warned: %q", resp.Warnings)
	}
	expect("new key with app_id", readCfg(), appID3, c, pure1.DefaultTokenURL)

	// Regenerating clears app_id too, unless one is given.
	resp = e.mustWrite("config/u", map[string]interface{}{"generate_key": true})
	if !warningsContain(resp, "was cleared") || resp.Data["app_id"] != "" {
		t.Errorf("generate_key kept app_id %v / warnings %q", resp.Data["app_id"], resp.Warnings)
	}
	if resp.Data["public_key_fingerprint"] == c.fingerprint {
		t.Errorf("generate_key kept the old key")
	}
	resp = e.mustWrite("config/u", map[string]interface{}{"generate_key": true, "app_id": appID1})
	if resp.Data["app_id"] != appID1 || warningsContain(resp, "cleared") {
		t.Errorf("generate_key with app_id: app_id %v, warnings %q", resp.Data["app_id"], resp.Warnings)
	}

	// An explicitly empty app_id unsets it.
	resp = e.mustWrite("config/u", map[string]interface{}{"app_id": ""})
	if resp.Data["app_id"] != "" || !warningsContain(resp, "no app_id yet") {
		t.Errorf("app_id=\"\": app_id %v, warnings %q", resp.Data["app_id"], resp.Warnings)
	}
}

func TestConfigExistenceCheck(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	check := func() (bool, bool) {
		found, exists, err := e.b.HandleExistenceCheck(e.ctx, &logical.Request{
			Operation: logical.UpdateOperation, Path: "config/ex", Storage: e.storage,
		})
		if err != nil {
			t.Fatal(err)
		}
		return found, exists
	}
	if found, exists := check(); !found || exists {
		t.Fatalf("before create: found=%v exists=%v, want true false", found, exists)
	}
	// A create request straight to the handler works, as Vault sends it.
	resp, err := e.b.HandleRequest(e.ctx, &logical.Request{
		Operation: logical.CreateOperation, Path: "config/ex", Storage: e.storage,
		Data: map[string]interface{}{"private_key": keyA().pkcs8},
	})
	mustOK(t, "create", resp, err)
	if found, exists := check(); !found || !exists {
		t.Fatalf("after create: found=%v exists=%v, want true true", found, exists)
	}
	resp, err = e.b.HandleRequest(e.ctx, &logical.Request{
		Operation: logical.UpdateOperation, Path: "config/ex", Storage: e.storage,
		Data: map[string]interface{}{"app_id": appID1},
	})
	mustOK(t, "update", resp, err)
	if got := e.mustRead("config/ex").Data["app_id"]; got != appID1 {
		t.Errorf("app_id after update %v", got)
	}
	e.mustDelete("config/ex")
	if _, exists := check(); exists {
		t.Errorf("exists after delete")
	}
}

func TestConfigReadMissingAndList(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	resp, err := e.read("config/nope")
	if err != nil || resp != nil {
		t.Fatalf("read of a missing config: %v, %v; want nil, nil", resp, err)
	}
	resp, err = e.list("config/")
	mustOK(t, "list", resp, err)
	if keys, ok := resp.Data["keys"]; ok && len(keys.([]string)) != 0 {
		t.Errorf("empty mount lists %v", keys)
	}
	for _, n := range []string{"zeta", "alpha", "mid.dle", "with-dash"} {
		e.writeConfig(n, keyA(), "")
	}
	listKeys := func() []string {
		resp, err := e.list("config")
		mustOK(t, "list", resp, err)
		keys, _ := resp.Data["keys"].([]string)
		return keys
	}
	if got, want := listKeys(), []string{"alpha", "mid.dle", "with-dash", "zeta"}; !reflect.DeepEqual(got, want) {
		t.Errorf("list %v, want %v", got, want)
	}
	e.mustDelete("config/mid.dle")
	if got, want := listKeys(), []string{"alpha", "with-dash", "zeta"}; !reflect.DeepEqual(got, want) {
		t.Errorf("list after delete %v, want %v", got, want)
	}
	if resp, err := e.read("config/mid.dle"); err != nil || resp != nil {
		t.Errorf("read after delete: %v, %v", resp, err)
	}
	// Deleting what is not there is not an error, as elsewhere in Vault.
	e.mustDelete("config/never-was")
}

func TestConfigDeleteBlockedByRoles(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	e.writeConfig("shared", keyA(), appID1)
	e.writeConfig("other", keyB(), appID2)
	e.mustWrite("roles/r2", map[string]interface{}{"config": "shared"})
	e.mustWrite("roles/r1", map[string]interface{}{"config": "shared", "credential_type": "jwt"})
	e.mustWrite("roles/r3", map[string]interface{}{"config": "other"})

	before := e.snapshot()
	resp, err := e.delete("config/shared")
	msg := errorText(resp, err)
	if !strings.Contains(msg, "r1, r2") || strings.Contains(msg, "r3") {
		t.Fatalf("delete of a used config: %q; want an error naming r1, r2 only", msg)
	}
	if st := httpStatus(resp, err); st != 400 {
		t.Errorf("status %d, want 400", st)
	}
	if d := diffSnapshots(before, e.snapshot()); d != "" {
		t.Errorf("refused delete changed storage: %s", d)
	}
	if got := e.mustRead("config/shared").Data["app_id"]; got != appID1 {
		t.Errorf("config after refused delete: app_id %v", got)
	}

	// Moving r1 away leaves r2 as the only user.
	e.mustWrite("roles/r1", map[string]interface{}{"config": "other"})
	if msg := errorText(e.delete("config/shared")); !strings.Contains(msg, "r2") || strings.Contains(msg, "r1") {
		t.Errorf("second refusal %q should name r2 only", msg)
	}
	e.mustDelete("roles/r2")
	e.mustDelete("config/shared")
	if resp, err := e.read("config/shared"); resp != nil || err != nil {
		t.Errorf("config still readable after delete: %v %v", resp, err)
	}
	// And a role cannot be pointed at it any more.
	if msg := errorText(e.write("roles/r4", map[string]interface{}{"config": "shared"})); !strings.Contains(msg, `config "shared" does not exist`) {
		t.Errorf("role on deleted config: %q", msg)
	}
}

// TestPrintableHidesPEM: a key pasted into a field whose errors echo the
// value (token_url, a role's config or credential_type) is not echoed.
func TestPrintableHidesPEM(t *testing.T) {
	a := keyA()
	for _, s := range []string{a.pkcs8, a.pkcs1, a.encPKCS8, a.legacyAES, "  " + a.pkcs8} {
		if got := printable(s); strings.Contains(got, "BEGIN") || strings.Contains(got, "MII") {
			t.Errorf("printable echoes key material: %q", got)
		}
	}
	if got := printable("ftp\x00x"); got != "ftp?x" {
		t.Errorf("printable(%q) = %q", "ftp\x00x", got)
	}
	resp, err := newTestEnv(t, envOptions{}).write("config/x", map[string]interface{}{"generate_key": true, "token_url": a.pkcs8})
	if msg := errorText(resp, err); !strings.Contains(msg, "token_url") || strings.Contains(msg, "BEGIN") {
		t.Errorf("token_url holding a key: %q", msg)
	}
}

// otherToolExport is k's key pair as another tool may write it: the primes
// in the other order (so another CRT coefficient) and the private exponent
// reduced mod (p-1)(q-1) rather than mod lcm(p-1, q-1). Same public key,
// other PKCS#8 bytes.
func otherToolExport(t *testing.T, k *keyFixture) *keyFixture {
	t.Helper()
	p, q := k.priv.Primes[0], k.priv.Primes[1]
	one := big.NewInt(1)
	phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
	d := new(big.Int).ModInverse(big.NewInt(int64(k.priv.E)), phi)
	v := &rsa.PrivateKey{PublicKey: k.priv.PublicKey, D: d, Primes: []*big.Int{q, p}}
	v.Precompute()
	if err := v.Validate(); err != nil {
		t.Fatal(err)
	}
	return newKeyFixture(v)
}

// TestConfigSameKeyOtherTool (issue 10, item 8): the same key pair brought
// again, exported by another tool as PKCS#1, PKCS#8 or encrypted, is the same
// key: app_id stays, and a config in use accepts it.
func TestConfigSameKeyOtherTool(t *testing.T) {
	other := otherToolExport(t, keyA())
	cases := []struct{ name, pem, password string }{
		{"PKCS#1", other.pkcs1, ""},
		{"PKCS#8", other.pkcs8, ""},
		{"encrypted PKCS#8", other.encPKCS8, testPassword},
		{"legacy encrypted PEM", other.legacyAES, testPassword},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, envOptions{})
			e.writeConfig("c", keyA(), appID1)
			e.mustWrite("roles/j", map[string]interface{}{"config": "c", "credential_type": "jwt"})
			if e.storedConfig("c").PrivateKey == string(mustParse(t, tc.pem, tc.password).MarshalPKCS8PEM()) {
				t.Fatal("the other tool's export stores the same bytes: the case tests nothing")
			}
			data := map[string]interface{}{"private_key": tc.pem}
			if tc.password != "" {
				data["private_key_password"] = tc.password
			}
			resp := e.mustWrite("config/c", data)
			if resp.Data["app_id"] != appID1 || warningsContain(resp, "cleared") {
				t.Errorf("app_id %v, warnings %q: the same key pair was taken for a new one", resp.Data["app_id"], resp.Warnings)
			}
			if resp.Data["public_key_fingerprint"] != keyA().fingerprint || resp.Data["key_created_at"] != testEpoch.Format(time.RFC3339) {
				t.Errorf("fingerprint %v key_created_at %v", resp.Data["public_key_fingerprint"], resp.Data["key_created_at"])
			}
			if c, err := checkJWT(dataString(t, e.creds("j"), "jwt"), &keyA().priv.PublicKey); err != nil || c.Iss != appID1 {
				t.Errorf("creds after re-import: %v, iss %q", err, c.Iss)
			}
		})
	}
}

func mustParse(t *testing.T, pemText, password string) *pure1.Key {
	t.Helper()
	k, err := pure1.ParsePrivateKey([]byte(pemText), []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestConfigNewKeyWhileInUse: a new key straight to config/<name> is refused
// only when it would break roles: they use the config and it has an app_id.
func TestConfigNewKeyWhileInUse(t *testing.T) {
	cases := []struct {
		name    string
		appID   string
		role    bool
		refused bool
	}{
		{"first setup: no app_id yet, no role", "", false, false},
		{"no app_id yet, a role", "", true, false},
		{"app_id, no role", appID1, false, false},
		{"app_id and a role", appID1, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, envOptions{hosts: allowExample(t)})
			e.writeConfig("c", keyA(), tc.appID)
			if tc.role {
				e.mustWrite("roles/j", map[string]interface{}{"config": "c", "credential_type": "jwt"})
			}
			writes := []map[string]interface{}{
				{"private_key": keyB().pkcs8},
				{"generate_key": true},
				{"private_key": keyB().pkcs1, "app_id": appID2}, // last: it changes app_id
			}
			for i, data := range writes {
				before := e.snapshot()
				resp, err := e.write("config/c", data)
				msg := errorText(resp, err)
				if !tc.refused {
					mustOK(t, "write a new key", resp, err)
					if i < len(writes)-1 {
						e.writeConfig("c", keyA(), tc.appID) // back, for the next write
					}
					continue
				}
				for _, want := range []string{"in use", "role(s) j", "vault write pure1/config/c/rotate generate_key=true", "rotate app_id="} {
					if !strings.Contains(msg, want) {
						t.Errorf("%v: message %q lacks %q", data, msg, want)
					}
				}
				if d := diffSnapshots(before, e.snapshot()); d != "" {
					t.Errorf("%v: refused write changed storage: %s", data, d)
				}
			}
			// What stays allowed on a config in use: app_id, token_url, max_key_age.
			e.mustWrite("config/c", map[string]interface{}{"app_id": appID3, "token_url": "https://pure1.example.com/oauth2/1.0/token", "max_key_age": "8760h"})
		})
	}
}

// slowParser makes key parsing block until released, for the tests of issue
// 10 item 5. Keys carrying the password "slow" block; others parse at once.
type slowParser struct {
	entered chan struct{}
	release chan struct{}
}

func installSlowParser(e *testEnv) *slowParser {
	sp := &slowParser{entered: make(chan struct{}, 1), release: make(chan struct{})}
	e.b.parseKey = func(pemData, password []byte) (*pure1.Key, error) {
		if string(password) == "slow" {
			sp.entered <- struct{}{}
			<-sp.release
		}
		return pure1.ParsePrivateKey(pemData, password)
	}
	return sp
}

// TestConfigKeyParsedOutsideWriteLock (issue 10, item 5): while one write's
// key is being decrypted, other config and role writes go ahead.
func TestConfigKeyParsedOutsideWriteLock(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	e.writeConfig("c", keyA(), appID1)
	sp := installSlowParser(e)
	for _, path := range []string{"config/slow", "config/c/rotate"} {
		done := make(chan string, 1)
		go func() {
			done <- errorText(e.write(path, map[string]interface{}{"private_key": keyB().encPKCS8, "private_key_password": "slow"}))
		}()
		<-sp.entered
		// The slow parse is in progress: these need the write lock. Were the
		// parse under the lock, they would wait for it forever; the bound
		// turns that deadlock into a failure.
		others := make(chan struct{})
		go func() {
			defer close(others)
			e.mustWrite("roles/j", map[string]interface{}{"config": "c", "credential_type": "jwt"})
			e.mustWrite("config/other", map[string]interface{}{"private_key": keyC().pkcs8})
			e.mustDelete("roles/j")
		}()
		select {
		case <-others:
		case <-time.After(time.Minute):
			sp.release <- struct{}{}
			<-others
			t.Fatalf("%s: other writes waited for a key being parsed", path)
		}
		sp.release <- struct{}{}
		if msg := <-done; !strings.Contains(msg, "does not decrypt") {
			t.Errorf("%s: the slow write ended with %q, want the wrong-password refusal", path, msg)
		}
	}
}

// TestConfigWriteHonoursContext (issue 10, item 5): a client that gives up
// while its key is parsed gets its answer at once, and nothing is stored.
func TestConfigWriteHonoursContext(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	e.writeConfig("c", keyA(), appID1)
	sp := installSlowParser(e)
	defer close(sp.release) // lets the abandoned parse finish
	for _, path := range []string{"config/new", "config/c/rotate"} {
		before := e.snapshot()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := e.b.HandleRequest(ctx, &logical.Request{
				Operation: logical.UpdateOperation, Path: path, Storage: e.storage, MountPoint: "pure1/",
				Data: map[string]interface{}{"private_key": keyB().encPKCS8, "private_key_password": "slow"},
			})
			done <- err
		}()
		<-sp.entered
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s: error %v, want context.Canceled", path, err)
			}
		case <-time.After(time.Minute):
			// A write that ignores its context waits for the parse, which
			// waits for the end of the test: report it instead of hanging.
			t.Fatalf("%s: the write kept waiting for its key after its request was cancelled", path)
		}
		if d := diffSnapshots(before, e.snapshot()); d != "" {
			t.Errorf("%s: the abandoned write changed storage: %s", path, d)
		}
	}
}

// TestConfigMaxKeyAge: once the active key is older than max_key_age, config
// reads and every credential carry a warning; a rotation ends it.
func TestConfigMaxKeyAge(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	e.writeConfig("c", keyA(), appID1)
	e.mustWrite("config/c", map[string]interface{}{"max_key_age": "720h"})
	e.mustWrite("roles/j", map[string]interface{}{"config": "c", "credential_type": "jwt"})
	if got := e.mustRead("config/c").Data["max_key_age"]; got != int64(720*3600) {
		t.Errorf("max_key_age reads %v", got)
	}
	const warn = "longer than its max_key_age"
	steps := []struct {
		advance time.Duration
		warned  bool
	}{{0, false}, {720 * time.Hour, false}, {time.Second, true}}
	for _, s := range steps {
		e.clock.Add(s.advance)
		cfg, creds := e.mustRead("config/c"), e.creds("j")
		if warningsContain(cfg, warn) != s.warned || warningsContain(creds, warn) != s.warned {
			t.Fatalf("key age %s: config warnings %q, creds warnings %q; want warned=%v",
				e.clock.Now().Sub(testEpoch), cfg.Warnings, creds.Warnings, s.warned)
		}
		if s.warned && !warningsContain(creds, "vault write pure1/config/c/rotate generate_key=true") {
			t.Errorf("the warning does not say how to rotate: %q", creds.Warnings)
		}
	}
	e.mustWrite("config/c/rotate", map[string]interface{}{"private_key": keyB().pkcs8})
	e.mustWrite("config/c/rotate", map[string]interface{}{"app_id": appID2, "verify": false})
	if creds := e.creds("j"); warningsContain(creds, warn) {
		t.Errorf("the new key warns: %q", creds.Warnings)
	}
	e.mustWrite("config/c", map[string]interface{}{"max_key_age": 0})
	if msg := errorText(e.write("config/c", map[string]interface{}{"max_key_age": "-1h"})); !strings.Contains(msg, "max_key_age") {
		t.Errorf("negative max_key_age: %q", msg)
	}
}
