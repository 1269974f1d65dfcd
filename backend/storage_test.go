package backend

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// jwtIss reads creds/role and returns the iss of the JWT after checking it
// verifies with k.
func (e *testEnv) jwtIss(role string, k *keyFixture) string {
	e.t.Helper()
	c, err := checkJWT(dataString(e.t, e.creds(role), "jwt"), &k.priv.PublicKey)
	if err != nil {
		e.t.Fatalf("creds/%s: %v", role, err)
	}
	return c.Iss
}

// mustFail checks a request failed with the injected storage error, as an
// error (Vault's 500), not a panic nor a success.
func mustFailStorage(t *testing.T, what string, resp *logical.Response, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded despite the storage failure (response %v)", what, resp)
	}
	if !errors.Is(err, errInjected) {
		t.Errorf("%s: error %v does not wrap the storage error", what, err)
	}
	if resp != nil && resp.Secret != nil {
		t.Errorf("%s: a lease came with the error", what)
	}
}

func TestStorageFailures(t *testing.T) {
	t.Run("put fails on create", func(t *testing.T) {
		e := newTestEnv(t, envOptions{})
		e.storage.failPut.Store(true)
		resp, err := e.write("config/c", map[string]interface{}{"private_key": keyA().pkcs8, "app_id": appID1})
		mustFailStorage(t, "create config", resp, err)
		e.storage.clear()
		if resp, err := e.read("config/c"); resp != nil || err != nil {
			t.Fatalf("config readable after a failed create: %v %v", resp, err)
		}
		e.writeConfig("c", keyA(), appID1)
		e.storage.failPut.Store(true)
		resp, err = e.write("roles/j", map[string]interface{}{"config": "c", "credential_type": "jwt"})
		mustFailStorage(t, "create role", resp, err)
		e.storage.clear()
		if msg := errorText(e.read("creds/j")); !strings.Contains(msg, "does not exist") {
			t.Fatalf("creds of a role whose create failed: %q", msg)
		}
		e.mustWrite("roles/j", map[string]interface{}{"config": "c", "credential_type": "jwt"})
		if iss := e.jwtIss("j", keyA()); iss != appID1 {
			t.Errorf("iss %q", iss)
		}
	})

	t.Run("put fails on rewrite: cache not poisoned", func(t *testing.T) {
		e := newTestEnv(t, envOptions{})
		e.writeConfig("c", keyA(), appID1)
		e.mustWrite("roles/j", map[string]interface{}{"config": "c", "credential_type": "jwt", "ttl": "10m"})
		e.jwtIss("j", keyA()) // warm the caches
		e.mustWrite("config/c/rotate", map[string]interface{}{"private_key": keyB().pkcs8})
		before := e.snapshot()

		e.storage.failPut.Store(true)
		resp, err := e.write("config/c/rotate", map[string]interface{}{"app_id": appID2, "verify": false})
		mustFailStorage(t, "promote a pending key", resp, err)
		resp, err = e.write("config/c/rotate", map[string]interface{}{"private_key": keyC().pkcs8})
		mustFailStorage(t, "store a pending key", resp, err)
		resp, err = e.write("roles/j", map[string]interface{}{"ttl": "20m"})
		mustFailStorage(t, "rewrite role", resp, err)
		// Still the old values, while the failure lasts and after.
		for i := 0; i < 2; i++ {
			if d := diffSnapshots(before, e.snapshot()); d != "" {
				t.Fatalf("failed writes changed storage: %s", d)
			}
			if iss := e.jwtIss("j", keyA()); iss != appID1 {
				t.Fatalf("iss %q after a failed rewrite, want %q", iss, appID1)
			}
			if ttl := e.creds("j").Secret.TTL; ttl != 10*time.Minute-leaseSafetyMargin {
				t.Fatalf("lease %s after a failed role rewrite, want 10m", ttl)
			}
			if got := e.mustRead("config/c").Data["public_key_fingerprint"]; got != keyA().fingerprint {
				t.Fatalf("config reads fingerprint %v after a failed rewrite", got)
			}
			e.storage.clear()
		}
		// And a promotion that succeeds is seen at once.
		e.mustWrite("config/c/rotate", map[string]interface{}{"app_id": appID2, "verify": false})
		e.mustWrite("roles/j", map[string]interface{}{"ttl": "20m"})
		if iss := e.jwtIss("j", keyB()); iss != appID2 {
			t.Errorf("iss %q after the rewrite, want %q", iss, appID2)
		}
		if ttl := e.creds("j").Secret.TTL; ttl != 20*time.Minute-leaseSafetyMargin {
			t.Errorf("lease %s after the rewrite, want 20m", ttl)
		}
	})

	t.Run("get fails", func(t *testing.T) {
		e := newTestEnv(t, envOptions{})
		e.writeConfig("c", keyA(), appID1)
		e.mustWrite("roles/j", map[string]interface{}{"config": "c", "credential_type": "jwt"})
		before := e.snapshot()
		e.storage.failGet.Store(true)
		// Cold caches: every read needs storage.
		for _, p := range []string{"config/c", "roles/j", "creds/j"} {
			resp, err := e.read(p)
			mustFailStorage(t, "read "+p, resp, err)
		}
		// Writes read the old entry first (and the existence check does).
		resp, err := e.write("config/c", map[string]interface{}{"app_id": appID2})
		mustFailStorage(t, "write config", resp, err)
		resp, err = e.write("roles/j", map[string]interface{}{"ttl": "5m"})
		mustFailStorage(t, "write role", resp, err)
		resp, err = e.delete("config/c")
		mustFailStorage(t, "delete config", resp, err)
		if d := diffSnapshots(before, e.snapshot()); d != "" {
			t.Fatalf("storage changed: %s", d)
		}
		e.storage.clear()
		if iss := e.jwtIss("j", keyA()); iss != appID1 {
			t.Errorf("iss %q after recovery", iss)
		}
		if got := e.mustRead("config/c").Data["app_id"]; got != appID1 {
			t.Errorf("app_id %v after recovery", got)
		}
	})

	t.Run("list fails", func(t *testing.T) {
		e := newTestEnv(t, envOptions{})
		e.writeConfig("c", keyA(), appID1)
		e.storage.failList.Store(true)
		for _, p := range []string{"config/", "roles/"} {
			resp, err := e.list(p)
			mustFailStorage(t, "list "+p, resp, err)
		}
		// Deleting a config must check its roles: without the list, refuse.
		resp, err := e.delete("config/c")
		mustFailStorage(t, "delete config", resp, err)
		e.storage.clear()
		if got := e.mustRead("config/c").Data["app_id"]; got != appID1 {
			t.Fatalf("config after a failed delete: app_id %v", got)
		}
		resp, err = e.list("config/")
		mustOK(t, "list", resp, err)
		if keys, _ := resp.Data["keys"].([]string); len(keys) != 1 || keys[0] != "c" {
			t.Errorf("list %v", resp.Data["keys"])
		}
	})

	t.Run("delete fails", func(t *testing.T) {
		e := newTestEnv(t, envOptions{})
		e.writeConfig("c", keyA(), appID1)
		e.writeConfig("lonely", keyB(), appID2)
		e.mustWrite("roles/j", map[string]interface{}{"config": "c", "credential_type": "jwt"})
		e.jwtIss("j", keyA())
		e.mustRead("config/lonely")
		e.storage.failDelete.Store(true)
		resp, err := e.delete("roles/j")
		mustFailStorage(t, "delete role", resp, err)
		resp, err = e.delete("config/lonely")
		mustFailStorage(t, "delete config", resp, err)
		e.storage.clear()
		// Both still there, in storage and through the backend.
		if iss := e.jwtIss("j", keyA()); iss != appID1 {
			t.Errorf("role after a failed delete: iss %q", iss)
		}
		if got := e.mustRead("config/lonely").Data["app_id"]; got != appID2 {
			t.Errorf("config after a failed delete: app_id %v", got)
		}
		e.mustDelete("roles/j")
		e.mustDelete("config/lonely")
		if msg := errorText(e.read("creds/j")); !strings.Contains(msg, "does not exist") {
			t.Errorf("creds after delete: %q", msg)
		}
		if resp, err := e.read("config/lonely"); resp != nil || err != nil {
			t.Errorf("config after delete: %v %v", resp, err)
		}
	})
}

// TestInvalidate: a performance standby or replica is told of storage changes
// made elsewhere through InvalidateKey; its next read must see them.
func TestInvalidate(t *testing.T) {
	e, te := newEmulatorEnv(t, 0, envOptions{})
	e.writeConfig("c", keyA(), appID1)
	e.mustWrite("roles/j", map[string]interface{}{"config": "c", "credential_type": "jwt", "ttl": "10m"})
	// Warm every cache.
	if iss := e.jwtIss("j", keyA()); iss != appID1 {
		t.Fatalf("iss %q", iss)
	}
	e.mustRead("config/c")
	e.mustRead("roles/j")

	// Another node rewrites the config with a new key and app_id.
	st := e.storedConfig("c")
	e.clock.Add(time.Second)
	st.AppID = appID2
	st.PrivateKey = keyB().pkcs8
	e.putRaw("config/c", st)
	e.b.InvalidateKey(e.ctx, "config/c")
	if iss := e.jwtIss("j", keyB()); iss != appID2 {
		t.Errorf("after invalidating config/c: iss %q, want %q", iss, appID2)
	}
	if got := e.mustRead("config/c").Data["public_key_fingerprint"]; got != keyB().fingerprint {
		t.Errorf("config read after invalidation shows fingerprint %v", got)
	}

	// Another node rewrites the role.
	e.putRaw("roles/j", roleEntry{Config: "c", CredentialType: credentialJWT, TTL: 3 * time.Minute, ReuseMargin: defaultReuseMargin})
	e.b.InvalidateKey(e.ctx, "roles/j")
	if ttl := e.creds("j").Secret.TTL; ttl != 3*time.Minute-leaseSafetyMargin {
		t.Errorf("after invalidating roles/j: lease %s, want 3m", ttl)
	}
	if got := e.mustRead("roles/j").Data["ttl"]; got != int64(180) {
		t.Errorf("role read after invalidation: ttl %v", got)
	}

	// Another node deletes the role.
	if err := e.inmem.Delete(e.ctx, "roles/j"); err != nil {
		t.Fatal(err)
	}
	e.b.InvalidateKey(e.ctx, "roles/j")
	if msg := errorText(e.read("creds/j")); !strings.Contains(msg, "does not exist") {
		t.Errorf("creds of a role deleted elsewhere: %q", msg)
	}

	// A shared access token of a config changed elsewhere is dropped.
	idA := e.emulatorConfig(te, "at", keyA())
	e.mustWrite("roles/at", map[string]interface{}{"config": "at", "reuse_access_token": true})
	tok1 := dataString(t, e.creds("at"), "access_token")
	idC := te.register(t, keyC().publicPEM)
	st = e.storedConfig("at")
	st.AppID, st.PrivateKey = idC, keyC().pkcs8
	e.putRaw("config/at", st)
	e.b.InvalidateKey(e.ctx, "config/at")
	tok2 := dataString(t, e.creds("at"), "access_token")
	if tok2 == tok1 || accessTokenSub(t, tok2) != idC {
		t.Errorf("after invalidating config/at: same token %v, sub %q (was %q), want %q",
			tok2 == tok1, accessTokenSub(t, tok2), idA, idC)
	}
	if n := te.emu.Stats().TokenRequests; n != 2 {
		t.Errorf("exchanges %d, want 2", n)
	}
}
