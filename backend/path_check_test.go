package backend

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1/emulator"
)

func TestCheckOK(t *testing.T) {
	const lifetime = 2 * time.Hour
	e, te := newEmulatorEnv(t, lifetime, envOptions{})
	id := e.emulatorConfig(te, "c", keyA())

	resp := e.mustRead("config/c/check")
	want := map[string]interface{}{
		"ok": true, "app_id": id, "public_key_fingerprint": keyA().fingerprint, "token_url": te.tokenURL,
		"org": testOrg, "max_role": testMaxRole, "token_ttl": int64(lifetime / time.Second),
		"checked_at": testEpoch.Format(time.RFC3339), "cached": false,
	}
	for k, v := range want {
		if resp.Data[k] != v {
			t.Errorf("%s = %v (%T), want %v", k, resp.Data[k], resp.Data[k], v)
		}
	}
	if _, ok := resp.Data["round_trip_ms"].(int64); !ok {
		t.Errorf("round_trip_ms %v", resp.Data["round_trip_ms"])
	}
	for _, k := range []string{"error", "advice", "access_token"} {
		if _, ok := resp.Data[k]; ok {
			t.Errorf("a successful check returns %s", k)
		}
	}
	if len(resp.Warnings) != 0 {
		t.Errorf("warnings %q", resp.Warnings)
	}
	if n := te.emu.Stats().TokenRequests; n != 1 {
		t.Fatalf("exchanges %d, want 1", n)
	}
}

// TestCheckCache: within a minute the result is answered again without an
// exchange; after it, or after any config change, a new exchange is made.
func TestCheckCache(t *testing.T) {
	e, te := newEmulatorEnv(t, 0, envOptions{})
	e.emulatorConfig(te, "c", keyA())
	exchanges := func() int64 { return te.emu.Stats().TokenRequests }

	steps := []struct {
		name       string
		before     func()
		wantCached bool
		wantAppID  string // "" : unchanged
	}{
		{name: "first", wantCached: false},
		{name: "again at once", wantCached: true},
		{name: "59 s later", before: func() { e.clock.Add(59 * time.Second) }, wantCached: true},
		{name: "a minute after the exchange", before: func() { e.clock.Add(time.Second) }, wantCached: false},
		{name: "after an app_id change", before: func() {
			e.mustWrite("config/c", map[string]interface{}{"app_id": te.register(t, keyA().publicPEM)})
		}, wantCached: false},
		{name: "after a role write (not the config)", before: func() {
			e.mustWrite("roles/r", map[string]interface{}{"config": "c"})
		}, wantCached: true},
		{name: "after a pending key is stored", before: func() {
			e.mustWrite("config/c/rotate", map[string]interface{}{"private_key": keyB().pkcs8})
		}, wantCached: false},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		n := exchanges()
		resp := e.mustRead("config/c/check")
		if resp.Data["cached"] != s.wantCached || resp.Data["ok"] != true {
			t.Fatalf("%s: cached %v ok %v, want cached %v", s.name, resp.Data["cached"], resp.Data["ok"], s.wantCached)
		}
		wantExchanges := int64(1)
		if s.wantCached {
			wantExchanges = 0
		}
		if got := exchanges() - n; got != wantExchanges {
			t.Fatalf("%s: %d exchanges, want %d", s.name, got, wantExchanges)
		}
		if got := resp.Data["app_id"]; got != e.storedConfig("c").AppID {
			t.Fatalf("%s: checked app_id %v, the config has %q", s.name, got, e.storedConfig("c").AppID)
		}
	}
}

func TestCheckFailures(t *testing.T) {
	e, te := newEmulatorEnv(t, 0, envOptions{})
	wrong := te.register(t, keyB().publicPEM)
	e.mustWrite("config/wrongkey", map[string]interface{}{"private_key": keyA().pkcs8, "app_id": wrong, "token_url": te.tokenURL})
	e.emulatorConfig(te, "down", keyC())
	e.mustWrite("config/noapp", map[string]interface{}{"private_key": keyA().pkcs8})

	t.Run("registered with another key", func(t *testing.T) {
		resp := e.mustRead("config/wrongkey/check")
		if resp.Data["ok"] != false || !strings.Contains(resp.Data["error"].(string), "Invalid identity") {
			t.Fatalf("check %v", resp.Data)
		}
		advice := resp.Data["advice"].(string)
		for _, want := range []string{wrong, keyA().fingerprint, "clock", "API Registration"} {
			if !strings.Contains(advice, want) {
				t.Errorf("advice %q lacks %q", advice, want)
			}
		}
		if !warningsContain(resp, "did not issue a token") {
			t.Errorf("warnings %q", resp.Warnings)
		}
		// A failure is answered again too: polling a broken config must
		// not hammer Pure1 either.
		n := te.emu.Stats().TokenRequests
		if again := e.mustRead("config/wrongkey/check"); again.Data["cached"] != true || again.Data["ok"] != false {
			t.Errorf("second check %v", again.Data)
		}
		if te.emu.Stats().TokenRequests != n {
			t.Errorf("the second check exchanged again")
		}
	})
	t.Run("Pure1 unavailable", func(t *testing.T) {
		te.emu.InjectFaults(emulator.Fault{Kind: "status", Status: 503, Count: 10})
		defer te.emu.ClearFaults()
		resp := e.mustRead("config/down/check")
		if resp.Data["ok"] != false || !strings.Contains(resp.Data["advice"].(string), "could not be reached") ||
			!strings.Contains(resp.Data["error"].(string), "503") {
			t.Fatalf("check %v", resp.Data)
		}
	})
	for _, tc := range []struct{ path, want string }{
		{"config/noapp/check", "no app_id"},
		{"config/nope/check", "does not exist"},
	} {
		if msg := errorText(e.read(tc.path)); !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %q, want %q", tc.path, msg, tc.want)
		}
	}
}

// TestCheckConcurrent: checks that arrive together share one exchange.
func TestCheckConcurrent(t *testing.T) {
	e, te := newEmulatorEnv(t, 0, envOptions{})
	e.emulatorConfig(te, "c", keyA())
	te.emu.InjectFaults(emulator.Fault{Kind: "delay", Delay: emulator.Duration(300 * time.Millisecond)})
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.read("config/c/check")
			if msg := errorText(resp, err); msg != "" || resp.Data["ok"] != true {
				errs <- msg
			}
		}()
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Errorf("check failed: %s", msg)
	}
	if n := te.emu.Stats().TokenRequests; n < 1 || n > 2 {
		// Readers arriving after the first exchange ended use its cached
		// result; only a reader between the end of the exchange and the
		// cache fill could start a second one.
		t.Errorf("%d exchanges for 8 concurrent checks", n)
	}
}

// TestOpenAPIRotateAndCheck: the new paths are in the OpenAPI document that
// vault path-help and the UI are built from, with operation IDs, summaries,
// response schemas, and the key fields marked sensitive.
func TestOpenAPIRotateAndCheck(t *testing.T) {
	conf := logical.TestBackendConfig()
	conf.System = logical.StaticSystemView{PluginEnvironment: &logical.PluginEnvironment{VaultVersion: "test"}}
	conf.StorageView = &logical.InmemStorage{}
	b := newBackend(Options{})
	if err := b.Setup(context.Background(), conf); err != nil {
		t.Fatal(err)
	}
	resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.HelpOperation, Storage: conf.StorageView})
	mustOK(t, "root help", resp, err)
	raw, err := json.Marshal(resp.Data["openapi"])
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					DisplayAttrs struct {
						Sensitive bool `json:"sensitive"`
					} `json:"x-vault-displayAttrs"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, op := range []struct{ path, method, id string }{
		{"/config/{name}/rotate", "post", "pure1-write-config-key-rotation"},
		{"/config/{name}/rotate", "get", "pure1-read-config-key-rotation"},
		{"/config/{name}/rotate", "delete", "pure1-delete-config-key-rotation"},
		{"/config/{name}/check", "get", "pure1-check-config"},
	} {
		var o struct {
			OperationID string                     `json:"operationId"`
			Summary     string                     `json:"summary"`
			Responses   map[string]json.RawMessage `json:"responses"`
		}
		if err := json.Unmarshal(doc.Paths[op.path][op.method], &o); err != nil || o.OperationID != op.id || o.Summary == "" {
			t.Errorf("%s %s: operation %+v (%v), want id %s and a summary", op.method, op.path, o, err, op.id)
		}
	}
	req := doc.Components.Schemas["Pure1WriteConfigKeyRotationRequest"].Properties
	for _, f := range []string{"private_key", "private_key_password"} {
		if !req[f].DisplayAttrs.Sensitive {
			t.Errorf("rotate field %s is not marked sensitive", f)
		}
	}
	if _, ok := doc.Components.Schemas["Pure1CheckConfigResponse"].Properties["round_trip_ms"]; !ok {
		t.Errorf("the check response schema lacks round_trip_ms")
	}
}
