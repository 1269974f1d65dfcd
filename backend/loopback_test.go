package backend

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1/emulator"
)

// countedEmulator is a Pure1 emulator on loopback that counts the requests
// it gets, so a refusal can be shown to have sent nothing.
func countedEmulator(t *testing.T, clock *fakeClock) (*testEmulator, *atomic.Int64) {
	t.Helper()
	emu, err := emulator.New(emulator.Options{Org: testOrg, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int64
	h := emu.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &testEmulator{emu: emu, srv: srv, tokenURL: srv.URL + emulator.TokenPath}, &hits
}

// Loopback token and array hosts are the registrar's to allow
// (PURE1_ALLOWED_TOKEN_HOSTS=loopback), not a config writer's: without the
// word, a write naming one is refused with the fix, and a config stored
// before (under a plugin that allowed it) gets no request sent; with it,
// the backend's own exchanger, as Setup builds it, reaches the emulator.
func TestLoopbackNeedsRegistrarOptIn(t *testing.T) {
	t.Parallel()
	clock := newClock(testEpoch)

	t.Run("refused without it", func(t *testing.T) {
		te, hits := countedEmulator(t, clock)
		e := newTestEnv(t, envOptions{clock: clock, noLoopback: true})
		if e.b.hosts.AllowsLoopback() {
			t.Fatal("the test env allowed loopback with noLoopback set")
		}
		id := te.register(t, keyA().publicPEM)
		for _, u := range []string{te.tokenURL, strings.Replace(te.tokenURL, "127.0.0.1", "localhost", 1), "https://[::1]:8443/oauth2/1.0/token"} {
			resp, err := e.write("config/c", map[string]interface{}{"private_key": keyA().pkcs8, "app_id": id, "token_url": u})
			if err == nil && !resp.IsError() {
				t.Fatalf("config with token_url %s accepted without the loopback opt-in", u)
			}
			msg := errText(resp, err)
			for _, want := range []string{"token_url", "loopback", "vault plugin register -env PURE1_ALLOWED_TOKEN_HOSTS=loopback"} {
				if !strings.Contains(msg, want) {
					t.Errorf("token_url %s: %q should say %q", u, msg, want)
				}
			}
		}
		resp, err := e.write("config/arr", managedArrayConfig(map[string]interface{}{fieldArrayURL: "https://127.0.0.1:8443"}))
		if err == nil && !resp.IsError() {
			t.Fatal("array config on loopback accepted without the opt-in")
		}
		if msg := errText(resp, err); !strings.Contains(msg, "array_url") || !strings.Contains(msg, "PURE1_ALLOWED_TOKEN_HOSTS=loopback") {
			t.Errorf("array_url on loopback: %q should name array_url and the fix", msg)
		}

		// A config stored while loopback was allowed (an emulator set up
		// before the upgrade): the read says why and sends nothing.
		e.putRaw("config/old", configEntry{AppID: id, PrivateKey: keyA().pkcs8, KeySource: "generated", TokenURL: te.tokenURL})
		e.mustWrite("roles/r", map[string]interface{}{"config": "old"})
		resp, err = e.read("creds/r")
		if err == nil && !resp.IsError() {
			t.Fatal("creds from a stored loopback token_url without the opt-in")
		}
		if msg := errText(resp, err); !strings.Contains(msg, "PURE1_ALLOWED_TOKEN_HOSTS=loopback") || !strings.Contains(msg, "no request was sent") {
			t.Errorf("creds: %q should say no request was sent and name the fix", msg)
		}
		if n := hits.Load(); n != 0 {
			t.Errorf("the loopback emulator got %d request(s) without the opt-in", n)
		}
	})

	t.Run("allowed with it", func(t *testing.T) {
		// The production exchanger reads the wall clock.
		clock := newClock(time.Now())
		te, hits := countedEmulator(t, clock)
		// No exchanger given: Setup builds the production one on the
		// policy's guarded transport.
		e := newTestEnv(t, envOptions{clock: clock})
		if !e.b.hosts.AllowsLoopback() {
			t.Fatal("the test env should carry the loopback opt-in")
		}
		e.emulatorConfig(te, "c", keyA())
		e.mustWrite("roles/r", map[string]interface{}{"config": "c"})
		resp := e.mustRead("creds/r")
		if tok, _ := resp.Data["access_token"].(string); tok == "" {
			t.Fatalf("creds without an access token: %v", resp.Data)
		}
		if hits.Load() == 0 {
			t.Error("the emulator was not reached")
		}
	})
}

// errText is a failed request's message, from the error or the response.
func errText(resp *logical.Response, err error) string {
	var parts []string
	if err != nil {
		parts = append(parts, err.Error())
	}
	if resp != nil {
		if rerr := resp.Error(); rerr != nil {
			parts = append(parts, rerr.Error())
		}
	}
	return strings.Join(parts, ": ")
}
