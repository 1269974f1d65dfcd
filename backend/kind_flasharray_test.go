package backend

import (
	"strings"
	"testing"
	"time"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray"
)

// A FlashArray config registers vault-<config> on the FlashArray wire.
func TestFlashArrayManagedDefaults(t *testing.T) {
	env, fa := newArrayEnv(t, envOptions{})
	resp := env.mustWrite("config/fa", managedArrayConfig(nil))
	if got := resp.Data[fieldAPIClientName]; got != "vault-fa" {
		t.Errorf("api_client_name = %v, want vault-fa", got)
	}
	if len(fa.createdKinds) != 1 || fa.createdKinds[0] != purearray.FlashArray {
		t.Errorf("the create went out on %v, want the FlashArray wire", fa.createdKinds)
	}
	assertArrayClean(t, env, fa, "fa")
}

// access_token_ttl is minutes at least: a token of seconds would be
// exchanged on nearly every read.
func TestFlashArrayAccessTokenTTLFloor(t *testing.T) {
	env, fa := newArrayEnv(t, envOptions{})
	for _, ttl := range []string{"1s", "5s", "4m59s"} {
		resp, err := env.write("config/fa", managedArrayConfig(map[string]interface{}{fieldAccessTokenTTL: ttl}))
		if msg := errorText(resp, err); !strings.Contains(msg, "access_token_ttl") || !strings.Contains(msg, "5m0s") {
			t.Errorf("access_token_ttl=%s: %q", ttl, msg)
		}
	}
	if len(fa.created) != 0 {
		t.Errorf("a refused write reached the array: %v", fa.created)
	}
	env.mustWrite("config/fa", managedArrayConfig(map[string]interface{}{fieldAccessTokenTTL: "5m"}))
}

// The array client cache holds one client per config, replaced when the
// config's array or CA changes and dropped with the config; a CA that was
// only tried is never kept.
func TestFlashArrayClientCacheBounded(t *testing.T) {
	env, _ := newArrayEnv(t, envOptions{})
	env.mustWrite("config/fa", managedArrayConfig(nil))
	env.mustWrite("roles/r", map[string]interface{}{fieldConfig: "fa", fieldUsername: "pureuser"})
	for i := 0; i < 3; i++ {
		env.mustRead("creds/r")
	}
	cached := func() int {
		env.b.arraysLock.Lock()
		defer env.b.arraysLock.Unlock()
		return len(env.b.arrays)
	}
	if n := cached(); n != 1 {
		t.Errorf("%d cached array clients after reads of one config, want 1", n)
	}
	env.mustDelete("roles/r")
	env.mustDelete("config/fa")
	if n := cached(); n != 0 {
		t.Errorf("%d cached array clients after the config was deleted, want 0", n)
	}
}

// A scheduled rotation that keeps failing waits longer each time, up to a
// day, is counted, and reads say so.
func TestFlashArrayScheduledRotationBackoff(t *testing.T) {
	env, fa := newArrayEnv(t, envOptions{})
	env.mustWrite("config/fa", managedArrayConfig(map[string]interface{}{fieldRotationPeriod: "1h"}))
	fa.setFail("login", errFakeStep)
	env.clock.Add(time.Hour)
	var waits []time.Duration
	for i := 0; i < 10; i++ {
		next := env.b.rotateDueConfigs(env.ctx, env.storage)
		waits = append(waits, next.Sub(env.clock.Now()))
		env.clock.Set(next)
	}
	want := []time.Duration{10 * time.Minute, 20 * time.Minute, 40 * time.Minute, 80 * time.Minute, 160 * time.Minute,
		320 * time.Minute, 640 * time.Minute, 1280 * time.Minute, 24 * time.Hour, 24 * time.Hour}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits = %v, want %v", waits, want)
		}
	}
	resp := env.mustRead("config/fa")
	if resp.Data[fieldRotationFailures] != 10 || !warningsContain(resp, "has failed 10 time(s) in a row") {
		t.Errorf("config read: failures=%v warnings=%v", resp.Data[fieldRotationFailures], resp.Warnings)
	}
	if v := counterValue(t, env, "pure1_scheduled_rotation_failures_total", "fa"); v != 10 {
		t.Errorf("pure1_scheduled_rotation_failures_total = %v", v)
	}
	fa.setFail("login", nil)
	env.b.rotateDueConfigs(env.ctx, env.storage)
	if resp := env.mustRead("config/fa"); resp.Data[fieldRotationFailures] != nil {
		t.Errorf("after a successful rotation the failures are still shown: %v", resp.Data[fieldRotationFailures])
	}
}
