package backend

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1/emulator"
)

// publicKeyOf parses a PEM public key from a response.
func publicKeyOf(t testing.TB, pemText string) *rsa.PublicKey {
	t.Helper()
	blk, _ := pem.Decode([]byte(pemText))
	if blk == nil {
		t.Fatalf("no PEM in %q", pemText)
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pub.(*rsa.PublicKey)
}

// rotationEnv is a config c with key A registered at the emulator as idA,
// and roles at (access_token), atr (reuse_access_token) and j (jwt) on it.
func rotationEnv(t *testing.T) (*testEnv, *testEmulator, string) {
	e, te := newEmulatorEnv(t, 0, envOptions{})
	idA := e.emulatorConfig(te, "c", keyA())
	e.mustWrite("roles/at", map[string]interface{}{"config": "c"})
	e.mustWrite("roles/atr", map[string]interface{}{"config": "c", "reuse_access_token": true})
	e.mustWrite("roles/j", map[string]interface{}{"config": "c", "credential_type": "jwt"})
	return e, te, idA
}

// expectIssuer reads every role and checks each credential belongs to appID
// and, for the JWT, verifies with pub (and only with pub).
func expectIssuer(t *testing.T, e *testEnv, appID string, pub, notPub *rsa.PublicKey) string {
	t.Helper()
	jwt := dataString(t, e.creds("j"), "jwt")
	c, err := checkJWT(jwt, pub)
	if err != nil || c.Iss != appID {
		t.Fatalf("JWT: %v, iss %q; want a JWT of %s verifying with its key", err, c.Iss, appID)
	}
	if notPub != nil {
		if _, err := checkJWT(jwt, notPub); err == nil {
			t.Fatalf("the JWT of %s also verifies with the other key", appID)
		}
	}
	for _, role := range []string{"at", "atr"} {
		resp := e.creds(role)
		if sub := accessTokenSub(t, dataString(t, resp, "access_token")); sub != appID || resp.Data["app_id"] != appID {
			t.Fatalf("%s: token of %q with app_id %v, want %s", role, sub, resp.Data["app_id"], appID)
		}
	}
	return jwt
}

func TestRotateWalkthrough(t *testing.T) {
	e, te, idA := rotationEnv(t)
	pubA := &keyA().priv.PublicKey
	oldJWT := expectIssuer(t, e, idA, pubA, nil)

	// Step 1: a pending key, made inside Vault.
	e.clock.Add(time.Hour)
	pendingAt := e.clock.Now()
	resp := e.mustWrite("config/c/rotate", map[string]interface{}{"generate_key": true, "key_bits": 2048})
	pendingPEM := dataString(t, resp, "public_key")
	pendingFP := dataString(t, resp, "public_key_fingerprint")
	if resp.Data["key_source"] != "generated" || resp.Data["key_bits"] != 2048 || resp.Data["active_app_id"] != idA ||
		resp.Data["created_at"] != pendingAt.Format(time.RFC3339) {
		t.Errorf("pending key response %v", resp.Data)
	}
	if !warningsContain(resp, "still issued with the active key") || !warningsContain(resp, "vault write pure1/config/c/rotate app_id=") {
		t.Errorf("warnings %q should say the active key still works and give the next command", resp.Warnings)
	}
	// Nothing changes for readers.
	expectIssuer(t, e, idA, pubA, nil)
	cfg := e.mustRead("config/c").Data
	if cfg["app_id"] != idA || cfg["public_key_fingerprint"] != keyA().fingerprint || cfg["pending_public_key_fingerprint"] != pendingFP ||
		cfg["pending_key_created_at"] != pendingAt.Format(time.RFC3339) {
		t.Errorf("config read during the rotation: %v", cfg)
	}
	rd := e.mustRead("config/c/rotate").Data
	if rd["public_key"] != pendingPEM || rd["public_key_fingerprint"] != pendingFP || rd["active_public_key_fingerprint"] != keyA().fingerprint {
		t.Errorf("rotate read %v", rd)
	}

	// Steps 2 and 3: registered in Pure1, proven, promoted.
	idN := te.register(t, pendingPEM)
	before := te.emu.Stats().TokenRequests
	e.clock.Add(time.Minute)
	resp = e.mustWrite("config/c/rotate", map[string]interface{}{"app_id": idN})
	if n := te.emu.Stats().TokenRequests - before; n != 1 {
		t.Errorf("promotion made %d exchanges, want 1 (the verification)", n)
	}
	if resp.Data["verified"] != true || resp.Data["app_id"] != idN || resp.Data["public_key_fingerprint"] != pendingFP ||
		resp.Data["org"] != testOrg || resp.Data["max_role"] != testMaxRole || resp.Data["previous_app_id"] != idA ||
		resp.Data["previous_public_key_fingerprint"] != keyA().fingerprint {
		t.Errorf("promotion response %v", resp.Data)
	}
	if !warningsContain(resp, "delete application \""+idA+"\" in Pure1") {
		t.Errorf("warnings %q should say to delete the old application", resp.Warnings)
	}

	// Every credential now belongs to the new key and application, shared
	// tokens included; the JWT does not verify with the old key.
	pubN := publicKeyOf(t, pendingPEM)
	expectIssuer(t, e, idN, pubN, pubA)
	// What was issued before still verifies with the old key.
	if c, err := checkJWT(oldJWT, pubA); err != nil || c.Iss != idA {
		t.Errorf("the JWT issued before the rotation: %v", err)
	}
	cfg = e.mustRead("config/c").Data
	if cfg["key_created_at"] != pendingAt.Format(time.RFC3339) || cfg["previous_retired_at"] != e.clock.Now().Format(time.RFC3339) {
		t.Errorf("config read after promotion: key_created_at %v previous_retired_at %v", cfg["key_created_at"], cfg["previous_retired_at"])
	}
	if _, ok := cfg["pending_public_key_fingerprint"]; ok {
		t.Errorf("a pending key is still shown after the promotion")
	}
	st := e.storedConfig("c")
	if st.Pending != nil || st.Previous == nil || st.Previous.PublicKey != keyA().publicPEM || st.Previous.AppID != idA ||
		strings.Contains(st.Previous.PublicKey, "PRIVATE") {
		t.Errorf("stored after promotion: pending %v previous %+v", st.Pending, st.Previous)
	}

	// The old application deleted in Pure1: nothing here notices.
	te.emu.DeleteApplication(idA)
	expectIssuer(t, e, idN, pubN, nil)
}

// TestRotateImportedKey brings the pending key, encrypted, and promotes it
// unverified (a Vault that cannot reach Pure1).
func TestRotateImportedKey(t *testing.T) {
	e := newTestEnv(t, envOptions{exchanger: unreachable{}})
	e.writeConfig("c", keyA(), appID1)
	e.mustWrite("roles/j", map[string]interface{}{"config": "c", "credential_type": "jwt"})

	resp := e.mustWrite("config/c/rotate", map[string]interface{}{"private_key": keyB().encPKCS8, "private_key_password": testPassword})
	if resp.Data["key_source"] != "imported (encrypted PKCS#8)" || resp.Data["public_key_fingerprint"] != keyB().fingerprint {
		t.Errorf("pending import: %v", resp.Data)
	}
	for k, v := range e.snapshot() {
		if strings.Contains(string(v), testPassword) {
			t.Errorf("password stored under %s", k)
		}
	}
	resp = e.mustWrite("config/c/rotate", map[string]interface{}{"app_id": appID2, "verify": false})
	if resp.Data["verified"] != false || !warningsContain(resp, "without verification") || !warningsContain(resp, "config/c/check") {
		t.Errorf("unverified promotion: verified %v warnings %q", resp.Data["verified"], resp.Warnings)
	}
	if c, err := checkJWT(dataString(t, e.creds("j"), "jwt"), &keyB().priv.PublicKey); err != nil || c.Iss != appID2 {
		t.Errorf("after the promotion: %v, iss %q", err, c.Iss)
	}
}

// unreachable is a Pure1 that never answers.
type unreachable struct{}

func (unreachable) Exchange(context.Context, string, string) (*pure1.AccessToken, error) {
	return nil, pure1.ErrUnavailable
}

// TestRotateRefusals: every refused request names what to do and changes no
// byte of storage.
func TestRotateRefusals(t *testing.T) {
	e, te, idA := rotationEnv(t)
	e.mustWrite("config/nopending", map[string]interface{}{"private_key": keyC().pkcs8, "app_id": appID3, "token_url": te.tokenURL})
	e.mustWrite("config/c/rotate", map[string]interface{}{"private_key": keyB().pkcs8})

	cases := []struct {
		name string
		path string
		data map[string]interface{}
		want []string
	}{
		{"no such config, pending key", "config/nope/rotate", map[string]interface{}{"private_key": keyB().pkcs8}, []string{"does not exist", "generate_key=true"}},
		{"no such config, promotion", "config/nope/rotate", map[string]interface{}{"app_id": appID2}, []string{"does not exist"}},
		{"nothing to do", "config/c/rotate", map[string]interface{}{}, []string{"nothing to do", "generate_key=true", "app_id="}},
		{"key and app_id at once", "config/c/rotate", map[string]interface{}{"generate_key": true, "app_id": appID2}, []string{"two writes"}},
		{"verify with a key", "config/c/rotate", map[string]interface{}{"private_key": keyC().pkcs8, "verify": false}, []string{"verify", "app_id"}},
		{"the active key as pending key", "config/c/rotate", map[string]interface{}{"private_key": keyA().pkcs1}, []string{"active key", keyA().fingerprint}},
		{"the active app_id", "config/c/rotate", map[string]interface{}{"app_id": idA}, []string{"active key's application", keyB().fingerprint}},
		{"no pending key", "config/nopending/rotate", map[string]interface{}{"app_id": appID2}, []string{"no pending key", "generate_key=true"}},
		{"malformed app_id", "config/c/rotate", map[string]interface{}{"app_id": "apikey:1"}, []string{"app_id", "pure1:apikey:"}},
		{"empty app_id", "config/c/rotate", map[string]interface{}{"app_id": " "}, []string{"app_id"}},
		{"garbage key", "config/c/rotate", map[string]interface{}{"private_key": "not a key"}, []string{"private_key", "PEM"}},
		{"wrong password", "config/c/rotate", map[string]interface{}{"private_key": keyC().encPKCS8, "private_key_password": "wrong"}, []string{"private_key_password", "does not decrypt"}},
		{"password without key", "config/c/rotate", map[string]interface{}{"private_key_password": "x"}, []string{"private_key_password"}},
		{"key_bits 1024", "config/c/rotate", map[string]interface{}{"generate_key": true, "key_bits": 1024}, []string{"key_bits"}},
		{"typo", "config/c/rotate", map[string]interface{}{"app_idd": appID2}, []string{"unknown field", "app_idd"}},
		{"new key straight to a config in use", "config/c", map[string]interface{}{"private_key": keyC().pkcs8}, []string{"in use", "role(s) at, atr, j", "vault write pure1/config/c/rotate"}},
		{"new key and app_id straight to a config in use", "config/c", map[string]interface{}{"generate_key": true, "app_id": appID2}, []string{"in use", "config/c/rotate"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.snapshot()
			resp, err := e.write(tc.path, tc.data)
			msg := errorText(resp, err)
			if msg == "" {
				t.Fatalf("accepted: %v", resp)
			}
			if st := httpStatus(resp, err); st != http.StatusBadRequest {
				t.Errorf("status %d, want 400 (%s)", st, msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
			if d := diffSnapshots(before, e.snapshot()); d != "" {
				t.Errorf("a refused request changed storage: %s", d)
			}
		})
	}
	expectIssuer(t, e, idA, &keyA().priv.PublicKey, nil)
}

// TestRotateFailedVerification: a registration that does not match the
// pending key, or a Pure1 that does not answer, changes nothing.
func TestRotateFailedVerification(t *testing.T) {
	e, te, idA := rotationEnv(t)
	e.mustWrite("config/c/rotate", map[string]interface{}{"private_key": keyB().pkcs8})
	wrong := te.register(t, keyC().publicPEM) // the operator registered another key

	cases := []struct {
		name   string
		appID  string
		fault  *emulator.Fault
		status int
		want   []string
	}{
		{"registered with another key", wrong, nil, http.StatusBadRequest,
			[]string{"did not accept", "Invalid identity", wrong, keyB().fingerprint, "Nothing changed"}},
		{"unknown application", "pure1:apikey:NoSuchApp0000000", nil, http.StatusBadRequest,
			[]string{"did not accept", keyB().fingerprint, "Nothing changed"}},
		{"Pure1 unavailable", te.register(t, keyB().publicPEM),
			&emulator.Fault{Kind: "status", Status: 503, Count: 10}, http.StatusBadGateway,
			[]string{"could not verify", keyB().fingerprint, "verify=false", "Nothing changed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fault != nil {
				te.emu.InjectFaults(*tc.fault)
				t.Cleanup(te.emu.ClearFaults)
			}
			before := e.snapshot()
			resp, err := e.write("config/c/rotate", map[string]interface{}{"app_id": tc.appID})
			msg := errorText(resp, err)
			if st := httpStatus(resp, err); st != tc.status {
				t.Errorf("status %d, want %d: %s", st, tc.status, msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
			if d := diffSnapshots(before, e.snapshot()); d != "" {
				t.Errorf("a failed verification changed storage: %s", d)
			}
			te.emu.ClearFaults()
			expectIssuer(t, e, idA, &keyA().priv.PublicKey, nil)
		})
	}
	// The right registration still promotes the same pending key.
	idB := te.register(t, keyB().publicPEM)
	e.mustWrite("config/c/rotate", map[string]interface{}{"app_id": idB})
	expectIssuer(t, e, idB, &keyB().priv.PublicKey, &keyA().priv.PublicKey)
}

// rotateGateExchanger holds every exchange until released, after telling started.
type rotateGateExchanger struct {
	inner   pure1.Exchanger
	started chan struct{}
	release chan struct{}
}

func (g *rotateGateExchanger) Exchange(ctx context.Context, tokenURL, jwt string) (*pure1.AccessToken, error) {
	g.started <- struct{}{}
	<-g.release
	return g.inner.Exchange(ctx, tokenURL, jwt)
}

// TestRotatePendingReplacedDuringVerification: the pending key verified is
// the one promoted, or nothing is.
func TestRotatePendingReplacedDuringVerification(t *testing.T) {
	clock := newClock(testEpoch)
	te := newTestEmulator(t, clock, 0)
	gate := &rotateGateExchanger{inner: te.exchanger, started: make(chan struct{}), release: make(chan struct{})}
	e := newTestEnv(t, envOptions{exchanger: gate, clock: clock})
	idA := te.register(t, keyA().publicPEM)
	e.mustWrite("config/c", map[string]interface{}{"private_key": keyA().pkcs8, "app_id": idA, "token_url": te.tokenURL})
	e.mustWrite("roles/j", map[string]interface{}{"config": "c", "credential_type": "jwt"})
	e.mustWrite("config/c/rotate", map[string]interface{}{"private_key": keyB().pkcs8})
	idB := te.register(t, keyB().publicPEM)

	type result struct {
		msg string
	}
	done := make(chan result, 1)
	go func() {
		resp, err := e.write("config/c/rotate", map[string]interface{}{"app_id": idB})
		done <- result{errorText(resp, err)}
	}()
	<-gate.started
	// Meanwhile another operator starts over with key C.
	e.mustWrite("config/c/rotate", map[string]interface{}{"private_key": keyC().pkcs8})
	close(gate.release)
	r := <-done
	if !strings.Contains(r.msg, "changed while it was being verified") {
		t.Fatalf("promotion after the pending key was replaced: %q", r.msg)
	}
	st := e.storedConfig("c")
	if st.AppID != idA || st.Pending == nil || st.Pending.Fingerprint != keyC().fingerprint {
		t.Errorf("stored: app_id %q pending %v; want %s and key C pending", st.AppID, st.Pending, idA)
	}
	if c, err := checkJWT(dataString(t, e.creds("j"), "jwt"), &keyA().priv.PublicKey); err != nil || c.Iss != idA {
		t.Errorf("creds after the refused promotion: %v iss %q", err, c.Iss)
	}
}

func TestRotateDelete(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	e.writeConfig("c", keyA(), appID1)
	e.mustWrite("roles/j", map[string]interface{}{"config": "c", "credential_type": "jwt"})
	before := e.snapshot()
	e.mustWrite("config/c/rotate", map[string]interface{}{"private_key": keyB().pkcs8})
	resp, err := e.delete("config/c/rotate")
	mustOK(t, "delete config/c/rotate", resp, err)
	if resp == nil || !warningsContain(resp, keyB().fingerprint) {
		t.Errorf("delete should name the dropped key: %v", resp)
	}
	if d := diffSnapshots(before, e.snapshot()); d != "" {
		t.Errorf("after dropping the pending key, storage differs from before it: %s", d)
	}
	// Again, and on a config that does not exist: nothing to do, no error.
	e.mustDelete("config/c/rotate")
	e.mustDelete("config/nope/rotate")
	if msg := errorText(e.write("config/c/rotate", map[string]interface{}{"app_id": appID2})); !strings.Contains(msg, "no pending key") {
		t.Errorf("promotion after delete: %q", msg)
	}
	if rd := e.mustRead("config/c/rotate"); !warningsContain(rd, "no rotation in progress") || rd.Data["public_key"] != nil {
		t.Errorf("read without a rotation: %v %q", rd.Data, rd.Warnings)
	}
	if resp, err := e.read("config/nope/rotate"); resp != nil || err != nil {
		t.Errorf("read of a config that does not exist: %v %v", resp, err)
	}
}

// TestRotateOldEntry: a config stored before rotation existed (no
// key_created_at, pending or previous) reads, issues and rotates.
func TestRotateOldEntry(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	e.putRaw("config/old", map[string]string{
		"app_id": appID1, "private_key": keyA().pkcs8, "key_source": "imported (PKCS#1)", "token_url": pure1.DefaultTokenURL,
	})
	e.mustWrite("roles/j", map[string]interface{}{"config": "old", "credential_type": "jwt"})
	e.mustWrite("config/old", map[string]interface{}{"max_key_age": "1h"})
	cfg := e.mustRead("config/old")
	if cfg.Data["key_created_at"] != "" || cfg.Data["app_id"] != appID1 || len(cfg.Warnings) != 0 {
		t.Errorf("old entry reads %v (warnings %q): want an unknown key age and no age warning", cfg.Data, cfg.Warnings)
	}
	if c, err := checkJWT(dataString(t, e.creds("j"), "jwt"), &keyA().priv.PublicKey); err != nil || c.Iss != appID1 {
		t.Fatalf("old entry issues: %v", err)
	}
	e.mustWrite("config/old/rotate", map[string]interface{}{"private_key": keyB().pkcs8})
	e.mustWrite("config/old/rotate", map[string]interface{}{"app_id": appID2, "verify": false})
	st := e.storedConfig("old")
	if st.Previous == nil || st.Previous.AppID != appID1 || !st.Previous.KeyCreatedAt.IsZero() || st.KeyCreatedAt.IsZero() {
		t.Errorf("after rotating an old entry: %+v", st)
	}
}

// TestRotateUnderConcurrentReads: 8 readers of a jwt role, an access_token
// role and a shared-token role while the config is rotated 3 times (verified
// with the emulator). No read fails, and every credential belongs to an
// application that was active at some point, with a JWT that verifies with
// that application's key. Run under -race.
func TestRotateUnderConcurrentReads(t *testing.T) {
	e, te, idA := rotationEnv(t)
	keys := map[string]*rsa.PublicKey{idA: &keyA().priv.PublicKey}
	var keysMu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer halt() // also when the test fails early: no reader outlives it
	var failMu sync.Mutex
	var failures []string
	reads := 0
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				role := []string{"j", "at", "atr"}[(g+i)%3]
				resp, err := e.read("creds/" + role)
				msg := errorText(resp, err)
				if msg == "" {
					id, _ := resp.Data["app_id"].(string)
					keysMu.Lock()
					pub := keys[id]
					keysMu.Unlock()
					switch {
					case pub == nil:
						msg = "app_id " + id + " was never promoted"
					case role == "j":
						if c, err := checkJWT(resp.Data["jwt"].(string), pub); err != nil || c.Iss != id {
							msg = "JWT does not verify with its application's key"
						}
					default:
						if accessTokenSub(t, resp.Data["access_token"].(string)) != id {
							msg = "access token of another application than app_id"
						}
					}
				}
				failMu.Lock()
				reads++
				if msg != "" {
					failures = append(failures, role+": "+msg)
				}
				failMu.Unlock()
			}
		}(g)
	}
	// Each step waits until the readers have read on: the rotation must
	// overlap reads, however the scheduler runs them.
	readOn := func() {
		failMu.Lock()
		target := reads + 40
		failMu.Unlock()
		for {
			failMu.Lock()
			n := reads
			failMu.Unlock()
			if n >= target {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	for _, k := range []*keyFixture{keyB(), keyC(), keyA()} {
		readOn()
		e.mustWrite("config/c/rotate", map[string]interface{}{"private_key": k.pkcs8})
		readOn()
		id := te.register(t, k.publicPEM)
		keysMu.Lock()
		keys[id] = &k.priv.PublicKey // known before the promotion that can issue it
		keysMu.Unlock()
		e.mustWrite("config/c/rotate", map[string]interface{}{"app_id": id})
		if got := e.storedConfig("c").AppID; got != id {
			t.Fatalf("promoted app_id %q, want %q", got, id)
		}
	}
	readOn()
	halt()
	t.Logf("%d reads across 3 rotations", reads)
	if len(failures) > 0 {
		t.Fatalf("%d of %d reads failed; first: %s", len(failures), reads, strings.Join(failures[:min(5, len(failures))], "; "))
	}
}
