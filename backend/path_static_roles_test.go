package backend

import (
	"strings"
	"testing"
	"time"
)

func TestStaticRoleWriteReadListDelete(t *testing.T) {
	e, te := newEmulatorEnv(t, 10*time.Hour, envOptions{})
	e.emulatorConfig(te, "prod", keyA())

	resp := e.mustWrite("static-roles/fleet", map[string]interface{}{"config": "prod"})
	if got := resp.Data[fieldRotationPeriod]; got != int64(3600) {
		t.Errorf("default rotation_period = %v, want 3600", got)
	}
	resp = e.mustRead("static-roles/fleet")
	if resp.Data[fieldConfig] != "prod" || resp.Data[fieldRotationPeriod] != int64(3600) {
		t.Errorf("read = %v", resp.Data)
	}
	if _, ok := resp.Data[fieldAccessToken]; ok {
		t.Errorf("a static role read must not show the token: %v", resp.Data)
	}

	// An update keeps what it does not set.
	e.mustWrite("static-roles/fleet", map[string]interface{}{"rotation_period": "30m"})
	resp = e.mustRead("static-roles/fleet")
	if resp.Data[fieldConfig] != "prod" || resp.Data[fieldRotationPeriod] != int64(1800) {
		t.Errorf("after update: %v", resp.Data)
	}

	list, err := e.list("static-roles/")
	mustOK(t, "list", list, err)
	if keys, _ := list.Data["keys"].([]string); len(keys) != 1 || keys[0] != "fleet" {
		t.Errorf("list = %v", list.Data)
	}

	// The config cannot go while a static role uses it.
	resp, err = e.delete("config/prod")
	if msg := errorText(resp, err); !strings.Contains(msg, "static-roles/fleet") {
		t.Errorf("deleting a config in use: %q, want it to name static-roles/fleet", msg)
	}

	// Deleting the role deletes its stored token.
	e.mustRead("static-creds/fleet")
	if ent, _ := e.inmem.Get(e.ctx, staticTokenStoragePrefix+"fleet"); ent == nil {
		t.Fatalf("no token stored")
	}
	e.mustDelete("static-roles/fleet")
	if ent, _ := e.inmem.Get(e.ctx, staticTokenStoragePrefix+"fleet"); ent != nil {
		t.Errorf("the token outlived its static role")
	}
	if resp, err := e.read("static-creds/fleet"); !strings.Contains(errorText(resp, err), "does not exist") {
		t.Errorf("read after delete: %v %v", resp, err)
	}
	e.mustDelete("config/prod")
}

func TestStaticRoleBadInput(t *testing.T) {
	e, te := newEmulatorEnv(t, 10*time.Hour, envOptions{})
	e.emulatorConfig(te, "prod", keyA())
	e.mustWrite("static-roles/kept", map[string]interface{}{"config": "prod", "rotation_period": "2h"})

	cases := []struct {
		name, path string
		data       map[string]interface{}
		want       string
	}{
		{"no config", "static-roles/new", map[string]interface{}{}, "config is required"},
		{"missing config", "static-roles/new", map[string]interface{}{"config": "nope"}, `config "nope" does not exist`},
		{"bad config name", "static-roles/new", map[string]interface{}{"config": "a b"}, "not a valid config name"},
		{"period too short", "static-roles/new", map[string]interface{}{"config": "prod", "rotation_period": "5s"}, "rotation_period 5s is out of range"},
		{"period too long", "static-roles/new", map[string]interface{}{"config": "prod", "rotation_period": "10h"}, "rotation_period 10h0m0s is out of range"},
		{"unknown field", "static-roles/new", map[string]interface{}{"config": "prod", "ttl": "1h"}, "unknown field(s) ttl"},
		{"update out of range", "static-roles/kept", map[string]interface{}{"rotation_period": "1s"}, "out of range"},
		{"update to missing config", "static-roles/kept", map[string]interface{}{"config": "gone"}, `config "gone" does not exist`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.snapshot()
			resp, err := e.write(c.path, c.data)
			if msg := errorText(resp, err); !strings.Contains(msg, c.want) {
				t.Errorf("error %q, want it to contain %q", msg, c.want)
			}
			if d := diffSnapshots(before, e.snapshot()); d != "" {
				t.Errorf("a refused write changed storage: %s", d)
			}
		})
	}
}

func TestStaticRoleRepointDropsToken(t *testing.T) {
	e, te := newEmulatorEnv(t, 10*time.Hour, envOptions{})
	appA := e.emulatorConfig(te, "a", keyA())
	appB := e.emulatorConfig(te, "b", keyB())
	e.mustWrite("static-roles/fleet", map[string]interface{}{"config": "a"})
	if got := dataString(t, e.mustRead("static-creds/fleet"), fieldAppID); got != appA {
		t.Fatalf("app_id = %s, want %s", got, appA)
	}
	e.mustWrite("static-roles/fleet", map[string]interface{}{"config": "b"})
	if got := dataString(t, e.mustRead("static-creds/fleet"), fieldAppID); got != appB {
		t.Errorf("after pointing the role at config b, app_id = %s, want %s", got, appB)
	}
}

func TestStaticRoleRefreshNow(t *testing.T) {
	e, te := newEmulatorEnv(t, 10*time.Hour, envOptions{})
	e.emulatorConfig(te, "prod", keyA())
	e.mustWrite("static-roles/fleet", map[string]interface{}{"config": "prod"})
	first := dataString(t, e.mustRead("static-creds/fleet"), fieldAccessToken)

	e.clock.Add(5 * time.Second)
	resp := e.mustWrite("static-roles/fleet/refresh", nil)
	if _, ok := resp.Data[fieldAccessToken]; ok {
		t.Errorf("refresh must not return the token: %v", resp.Data)
	}
	if got := resp.Data[fieldLastRefreshed]; got != e.clock.Now().Format(time.RFC3339) {
		t.Errorf("last_refreshed = %v, want now", got)
	}
	second := dataString(t, e.mustRead("static-creds/fleet"), fieldAccessToken)
	if first == second {
		t.Errorf("refresh did not replace the token")
	}
	if n := te.emu.Stats().TokensIssued; n != 2 {
		t.Errorf("exchanges = %d, want 2", n)
	}

	if resp, err := e.write("static-roles/nope/refresh", nil); !strings.Contains(errorText(resp, err), `static role "nope" does not exist`) {
		t.Errorf("refresh of a missing role: %v %v", resp, err)
	}
}
