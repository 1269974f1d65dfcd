package backend

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// layoutEnv is a backend holding one entry of each kind: a config, two
// roles, a static role and its stored token.
func layoutEnv(t *testing.T) *testEnv {
	t.Helper()
	e, te := newEmulatorEnv(t, 10*time.Hour, envOptions{})
	e.emulatorConfig(te, "prod", keyA())
	e.mustWrite("roles/ro", map[string]interface{}{"config": "prod"})
	e.mustWrite("roles/ro-jwt", map[string]interface{}{"config": "prod", "credential_type": "jwt"})
	e.mustWrite("static-roles/fleet", map[string]interface{}{"config": "prod"})
	e.mustRead("static-creds/fleet") // stores the token
	return e
}

// layoutReads are the reads that show every entry of layoutEnv.
var layoutReads = []string{"config/prod", "roles/ro", "roles/ro-jwt", "static-roles/fleet", "static-creds/fleet"}

// layoutUsers maps each storage key of layoutEnv to the reads that decode
// it: a static read checks the token against its config's identity, and a
// static role's read shows when its token was refreshed.
var layoutUsers = map[string][]string{
	configStoragePrefix + "prod":       {"config/prod", "creds/ro", "creds/ro-jwt", "static-creds/fleet"},
	roleStoragePrefix + "ro":           {"roles/ro", "creds/ro"},
	roleStoragePrefix + "ro-jwt":       {"roles/ro-jwt", "creds/ro-jwt"},
	staticRoleStoragePrefix + "fleet":  {"static-roles/fleet", "static-creds/fleet"},
	staticTokenStoragePrefix + "fleet": {"static-creds/fleet", "static-roles/fleet"},
}

// readAllData reads layoutReads and returns each answer's data.
func (e *testEnv) readAllData() map[string]map[string]interface{} {
	e.t.Helper()
	out := map[string]map[string]interface{}{}
	for _, p := range layoutReads {
		out[p] = e.mustRead(p).Data
	}
	return out
}

// entryFields decodes a stored entry as a JSON object, numbers kept as
// written.
func entryFields(t testing.TB, raw []byte) map[string]interface{} {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]interface{}
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("stored entry is not a JSON object: %v: %.80q", err, raw)
	}
	return m
}

// storedLayout is the layout field of a snapshot's entry, nil when absent.
func storedLayout(t testing.TB, raw []byte) interface{} {
	t.Helper()
	return entryFields(t, bytes.TrimSuffix(raw, []byte("\x00sealwrap")))["layout"]
}

// setStoredLayout rewrites the entry at key behind the backend's back with
// layout set (0: no layout field, as v0.1.0 stored entries), and invalidates
// it as Vault does when storage changes under a plugin.
func (e *testEnv) setStoredLayout(key string, layout int) {
	e.t.Helper()
	ent, err := e.inmem.Get(e.ctx, key)
	if err != nil || ent == nil {
		e.t.Fatalf("no stored entry %s: %v", key, err)
	}
	m := entryFields(e.t, ent.Value)
	if layout == 0 {
		delete(m, "layout")
	} else {
		m["layout"] = layout
	}
	raw, err := json.Marshal(m)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.inmem.Put(e.ctx, &logical.StorageEntry{Key: key, Value: raw, SealWrap: ent.SealWrap}); err != nil {
		e.t.Fatal(err)
	}
	e.b.invalidate(e.ctx, key)
}

// TestStorageLayoutWritten: every entry this build stores names its layout.
func TestStorageLayoutWritten(t *testing.T) {
	e := layoutEnv(t)
	snap := e.snapshot()
	for k, raw := range snap {
		if got := storedLayout(t, raw); got != json.Number(strconv.Itoa(storageLayout)) {
			t.Errorf("%s stored with layout %v, want %d", k, got, storageLayout)
		}
	}
	for k := range layoutUsers {
		if _, ok := snap[k]; !ok {
			t.Errorf("no entry %s in storage", k)
		}
	}
}

// TestStorageLayoutAbsent: entries without a layout, as v0.1.0 stored them,
// read back as before, work for credentials, and are not rewritten by reads;
// the next write of one stores this build's layout.
func TestStorageLayoutAbsent(t *testing.T) {
	e := layoutEnv(t)
	before := e.readAllData()
	for key := range layoutUsers {
		e.setStoredLayout(key, 0)
	}
	old := e.snapshot()
	for k, raw := range old {
		if l := storedLayout(t, raw); l != nil {
			t.Fatalf("%s still names layout %v", k, l)
		}
	}

	if after := e.readAllData(); !reflect.DeepEqual(before, after) {
		for _, p := range layoutReads {
			if !reflect.DeepEqual(before[p], after[p]) {
				t.Errorf("%s without a layout reads\n  %v\nwas\n  %v", p, after[p], before[p])
			}
		}
	}
	if iss := e.jwtIss("ro-jwt", keyA()); iss == "" {
		t.Error("creds/ro-jwt: no iss")
	}
	if tok, _ := e.creds("ro").Data[fieldAccessToken].(string); tok == "" {
		t.Error("creds/ro: no access token")
	}
	if d := diffSnapshots(old, e.snapshot()); d != "" {
		t.Errorf("reads rewrote entries without a layout: %s", d)
	}

	e.mustWrite("roles/ro", map[string]interface{}{"ttl": "20m"})
	now := e.snapshot()
	if got := storedLayout(t, now[roleStoragePrefix+"ro"]); got != json.Number(strconv.Itoa(storageLayout)) {
		t.Errorf("roles/ro rewritten with layout %v, want %d", got, storageLayout)
	}
	if !bytes.Equal(now[roleStoragePrefix+"ro-jwt"], old[roleStoragePrefix+"ro-jwt"]) {
		t.Error("writing roles/ro rewrote roles/ro-jwt")
	}
}

// TestStorageLayoutNewer: an entry a newer build wrote (layout 99) is refused
// by every read that decodes it, with an error that names the layout and the
// fix; nothing is rewritten, updates of it are refused too, the other entries
// keep working, and once it is back at this build's layout it reads as
// before.
func TestStorageLayoutNewer(t *testing.T) {
	e := layoutEnv(t)
	before := e.readAllData()
	updates := map[string]struct {
		path string
		data map[string]interface{}
	}{
		configStoragePrefix + "prod":      {"config/prod", map[string]interface{}{"app_id": appID2}},
		roleStoragePrefix + "ro":          {"roles/ro", map[string]interface{}{"ttl": "20m"}},
		roleStoragePrefix + "ro-jwt":      {"roles/ro-jwt", map[string]interface{}{"ttl": "20m"}},
		staticRoleStoragePrefix + "fleet": {"static-roles/fleet", map[string]interface{}{"rotation_period": "30m"}},
	}
	keys := make([]string, 0, len(layoutUsers))
	for k := range layoutUsers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		func() {
			e.setStoredLayout(key, 99)
			stored := e.snapshot()
			refused := map[string]bool{}
			for _, p := range layoutUsers[key] {
				refused[p] = true
				resp, err := e.read(p)
				msg := errorText(resp, err)
				if !errors.Is(err, errNewerLayout) || !strings.Contains(msg, "storage layout 99") ||
					!strings.Contains(msg, "vault plugin register") || !strings.Contains(msg, "nothing was changed") {
					t.Errorf("read %s with %s at layout 99: %v %q; want a refusal naming the layout and the fix", p, key, resp, msg)
				}
			}
			if u, ok := updates[key]; ok {
				resp, err := e.write(u.path, u.data)
				if !errors.Is(err, errNewerLayout) {
					t.Errorf("update of %s at layout 99: %v %v; want it refused", u.path, resp, err)
				}
			}
			if d := diffSnapshots(stored, e.snapshot()); d != "" {
				t.Errorf("storage changed while %s was refused: %s", key, d)
			}
			for _, p := range layoutReads {
				if !refused[p] {
					if resp, err := e.read(p); err != nil || resp == nil || resp.IsError() {
						t.Errorf("read %s while only %s is refused: %v %v", p, key, resp, err)
					}
				}
			}

			e.setStoredLayout(key, storageLayout)
			if after := e.readAllData(); !reflect.DeepEqual(before, after) {
				t.Errorf("after %s is back at layout %d, reads differ:\n  %v\nwas\n  %v", key, storageLayout, after, before)
			}
		}()
	}
}
