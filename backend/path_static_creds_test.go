package backend

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1/emulator"
)

// staticEnv is a backend on an emulator whose tokens live lifetime, with
// config prod and static role fleet refreshing every period.
func staticEnv(t *testing.T, lifetime, period time.Duration, opts envOptions) (*testEnv, *testEmulator, string) {
	t.Helper()
	e, te := newEmulatorEnv(t, lifetime, opts)
	app := e.emulatorConfig(te, "prod", keyA())
	e.mustWrite("static-roles/fleet", map[string]interface{}{"config": "prod", "rotation_period": int(period / time.Second)})
	return e, te, app
}

func TestStaticCredsFirstReadAndSchedule(t *testing.T) {
	e, te, app := staticEnv(t, 10*time.Hour, time.Hour, envOptions{})

	resp := e.mustRead("static-creds/fleet")
	if resp.Secret != nil {
		t.Fatalf("static-creds must carry no lease: %#v", resp.Secret)
	}
	tok := dataString(t, resp, fieldAccessToken)
	if accessTokenSub(t, tok) != app {
		t.Errorf("token is not for app %s", app)
	}
	want := map[string]interface{}{
		fieldTokenType:      "Bearer",
		fieldAppID:          app,
		fieldOrg:            testOrg,
		fieldMaxRole:        testMaxRole,
		fieldRotationPeriod: int64(3600),
		fieldStaticTTL:      int64(3600),
		fieldLastRefreshed:  e.clock.Now().Format(time.RFC3339),
		fieldExpiresAt:      e.clock.Now().Add(10 * time.Hour).Format(time.RFC3339),
	}
	for k, v := range want {
		if resp.Data[k] != v {
			t.Errorf("%s = %v, want %v", k, resp.Data[k], v)
		}
	}
	if n := te.emu.Stats().TokensIssued; n != 1 {
		t.Fatalf("exchanges after the first read = %d, want 1", n)
	}

	// Later reads share the stored token; ttl counts down to the refresh.
	e.clock.Add(30 * time.Minute)
	resp = e.mustRead("static-creds/fleet")
	if dataString(t, resp, fieldAccessToken) != tok || resp.Data[fieldStaticTTL] != int64(1800) {
		t.Errorf("half way: token changed or ttl = %v (want 1800)", resp.Data[fieldStaticTTL])
	}
	if next := e.b.refreshDueStatic(e.ctx, e.storage); !next.Equal(testEpoch.Add(time.Hour)) {
		t.Errorf("next refresh = %v, want %v", next, testEpoch.Add(time.Hour))
	}
	if n := te.emu.Stats().TokensIssued; n != 1 {
		t.Fatalf("exchanges before the period ended = %d, want 1", n)
	}

	// At the due time the refresher replaces it, though nobody reads.
	e.clock.Add(30 * time.Minute)
	e.b.refreshDueStatic(e.ctx, e.storage)
	if n := te.emu.Stats().TokensIssued; n != 2 {
		t.Fatalf("exchanges after the period = %d, want 2", n)
	}
	resp = e.mustRead("static-creds/fleet")
	if dataString(t, resp, fieldAccessToken) == tok {
		t.Errorf("the token was not replaced")
	}
	if resp.Data[fieldLastRefreshed] != e.clock.Now().Format(time.RFC3339) || resp.Data[fieldStaticTTL] != int64(3600) {
		t.Errorf("after refresh: %v", resp.Data)
	}
}

func TestStaticCredsConcurrentFirstReadOneExchange(t *testing.T) {
	e, te, _ := staticEnv(t, 10*time.Hour, time.Hour, envOptions{})
	// A slow Pure1, so that every reader arrives while the exchange runs.
	te.emu.InjectFaults(emulator.Fault{Kind: emulator.FaultDelay, Delay: emulator.Duration(200 * time.Millisecond)})

	const readers = 16
	tokens := make([]string, readers)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.read("static-creds/fleet")
			if err != nil || resp.IsError() {
				t.Errorf("reader %d: %v %v", i, resp, err)
				return
			}
			tokens[i] = resp.Data[fieldAccessToken].(string)
		}()
	}
	wg.Wait()
	for i := range tokens {
		if tokens[i] != tokens[0] {
			t.Fatalf("readers got different tokens")
		}
	}
	if st := te.emu.Stats(); st.TokenRequests != 1 {
		t.Errorf("token requests = %d for %d concurrent first readers, want 1", st.TokenRequests, readers)
	}
}

func TestStaticCredsStaleWhileFailingThenExpired(t *testing.T) {
	e, te, _ := staticEnv(t, 90*time.Second, 30*time.Second, envOptions{})
	tok := dataString(t, e.mustRead("static-creds/fleet"), fieldAccessToken)

	// Pure1 goes down just before the refresh is due.
	te.emu.InjectFaults(emulator.Fault{Kind: emulator.FaultStatus, Status: http.StatusServiceUnavailable, Count: 1000})
	e.clock.Add(30 * time.Second)
	failedAt := e.clock.Now()
	next := e.b.refreshDueStatic(e.ctx, e.storage)
	if want := failedAt.Add(staticRetryMin); !next.Equal(want) {
		t.Errorf("after a failure the next try is at %v, want %v", next, want)
	}

	resp := e.mustRead("static-creds/fleet")
	if dataString(t, resp, fieldAccessToken) != tok {
		t.Fatalf("a failing refresh must keep serving the current token")
	}
	warn := strings.Join(resp.Warnings, " ")
	if !strings.Contains(warn, "failed since "+failedAt.Format(time.RFC3339)) || !strings.Contains(warn, "503") {
		t.Errorf("warning = %q, want since when and Pure1's reason", warn)
	}
	status := e.mustRead("static-roles/fleet")
	if status.Data[fieldFailingSince] != failedAt.Format(time.RFC3339) || !strings.Contains(status.Data[fieldLastError].(string), "503") {
		t.Errorf("static role status = %v", status.Data)
	}
	if ttl := resp.Data[fieldStaticTTL].(int64); ttl <= 0 || ttl > int64(staticRetryMin/time.Second) {
		t.Errorf("ttl while failing = %d, want a re-read by the next try", ttl)
	}

	// Once the token has expired, reads fail with 502 and never return it.
	e.clock.Add(61 * time.Second)
	resp, err := e.read("static-creds/fleet")
	if code := httpStatus(resp, err); code != http.StatusBadGateway {
		t.Errorf("read of an expired static token: HTTP %d (%v %v), want 502", code, resp, err)
	}
	if msg := errorText(resp, err); strings.Contains(msg, tok) || !strings.Contains(msg, "expired at") || !strings.Contains(msg, "503") {
		t.Errorf("error = %q: want why, and never the token", msg)
	}

	// Pure1 is back: the next try succeeds and the warning goes.
	te.emu.ClearFaults()
	e.clock.Add(staticRetryMax)
	e.b.refreshDueStatic(e.ctx, e.storage)
	resp = e.mustRead("static-creds/fleet")
	if len(resp.Warnings) != 0 || dataString(t, resp, fieldAccessToken) == tok {
		t.Errorf("after recovery: warnings %v, token replaced: %v", resp.Warnings, dataString(t, resp, fieldAccessToken) != tok)
	}
	if status := e.mustRead("static-roles/fleet"); status.Data[fieldLastError] != nil {
		t.Errorf("the failure state outlived a success: %v", status.Data)
	}
}

func TestStaticRefreshBacksOff(t *testing.T) {
	e, te, _ := staticEnv(t, 10*time.Hour, time.Hour, envOptions{})
	e.mustRead("static-creds/fleet")
	te.emu.InjectFaults(emulator.Fault{Kind: emulator.FaultStatus, Status: http.StatusBadGateway, Count: 1000})
	e.clock.Add(time.Hour)
	var waits []time.Duration
	for i := range 8 {
		if i > 0 {
			e.clock.Add(waits[i-1])
		}
		before := e.clock.Now()
		waits = append(waits, e.b.refreshDueStatic(e.ctx, e.storage).Sub(before))
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute, 5 * time.Minute}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits between tries = %v, want %v", waits, want)
		}
	}
	// Between tries the refresher leaves Pure1 alone.
	n := te.emu.Stats().TokenRequests
	e.clock.Add(time.Second)
	e.b.refreshDueStatic(e.ctx, e.storage)
	if te.emu.Stats().TokenRequests != n {
		t.Errorf("the refresher tried before its backoff ended")
	}
}

func TestStaticConfigChangeRefreshesAtOnce(t *testing.T) {
	e, te, app := staticEnv(t, 10*time.Hour, time.Hour, envOptions{})
	e.mustRead("static-creds/fleet")

	// The operator registers the key again and switches the config to the
	// new application: the token must move to it now, not in an hour.
	app2 := te.register(t, keyA().publicPEM)
	e.mustWrite("config/prod", map[string]interface{}{"app_id": app2})
	select {
	case <-e.b.refresher.wake:
	default:
		t.Errorf("a config write did not wake the refresher")
	}
	e.b.refreshDueStatic(e.ctx, e.storage)
	resp := e.mustRead("static-creds/fleet")
	if got := dataString(t, resp, fieldAppID); got != app2 || accessTokenSub(t, dataString(t, resp, fieldAccessToken)) != app2 {
		t.Errorf("after the config changed, app_id = %s (was %s), want %s", got, app, app2)
	}
	if n := te.emu.Stats().TokensIssued; n != 2 {
		t.Errorf("exchanges = %d, want 2", n)
	}
}

func TestStaticConfigWithoutAppID(t *testing.T) {
	e, te := newEmulatorEnv(t, 10*time.Hour, envOptions{})
	e.mustWrite("config/prod", map[string]interface{}{"private_key": keyA().pkcs8, "token_url": te.tokenURL})
	resp := e.mustWrite("static-roles/fleet", map[string]interface{}{"config": "prod"})
	if !strings.Contains(strings.Join(resp.Warnings, " "), "no app_id") {
		t.Errorf("warnings = %v, want one about app_id", resp.Warnings)
	}
	resp, err := e.read("static-creds/fleet")
	if code := httpStatus(resp, err); code != http.StatusBadRequest || !strings.Contains(errorText(resp, err), "no app_id") {
		t.Errorf("read without app_id: HTTP %d %q, want 400 naming app_id", code, errorText(resp, err))
	}
	// Writing app_id makes the next read work at once, backoff or not.
	e.mustWrite("config/prod", map[string]interface{}{"app_id": te.register(t, keyA().publicPEM)})
	e.mustRead("static-creds/fleet")
}

func TestStaticRotationPeriodClamped(t *testing.T) {
	e, _, _ := staticEnv(t, 90*time.Second, 2*time.Minute, envOptions{})
	resp := e.mustRead("static-creds/fleet")
	// 90 s tokens: replaced after 81 s, leaving readers a tenth.
	if ttl := resp.Data[fieldStaticTTL]; ttl != int64(81) {
		t.Errorf("ttl = %v, want 81 (the period clamped to the token's life)", ttl)
	}
	if w := strings.Join(resp.Warnings, " "); !strings.Contains(w, "rotation_period 2m0s is not shorter") {
		t.Errorf("warnings = %q, want the clamp explained", w)
	}
}

func TestStaticNoRefreshWhereNoWrite(t *testing.T) {
	for _, st := range []consts.ReplicationState{consts.ReplicationPerformanceStandby, consts.ReplicationDRSecondary, consts.ReplicationPerformanceSecondary} {
		primary, te, _ := staticEnv(t, 10*time.Hour, time.Hour, envOptions{})
		e := primary.peer(te, st)
		if next := e.b.refreshDueStatic(e.ctx, e.storage); !next.IsZero() || te.emu.Stats().TokenRequests != 0 {
			t.Errorf("replication state %v: the refresher exchanged", st)
		}
		// A read with nothing stored is forwarded to the node that may write.
		if _, err := e.read("static-creds/fleet"); !errors.Is(err, logical.ErrReadOnly) {
			t.Errorf("replication state %v: first read err = %v, want ErrReadOnly (forwarded)", st, err)
		}
		if _, err := e.write("static-roles/fleet/refresh", nil); !errors.Is(err, logical.ErrReadOnly) {
			t.Errorf("replication state %v: refresh err = %v, want ErrReadOnly", st, err)
		}
	}
}

// peer is another node of e's cluster: its own backend, in the given
// replication state, on the same storage, clock and Pure1.
func (e *testEnv) peer(te *testEmulator, st consts.ReplicationState) *testEnv {
	p := newTestEnv(e.t, envOptions{clock: e.clock, exchanger: te.exchanger, replication: st})
	p.inmem, p.storage.Storage = e.inmem, e.inmem
	return p
}

// TestStaticStandbyServesStoredToken is a performance standby: another node
// stores the token, Vault invalidates the key here, and reads serve it at
// once without an exchange.
func TestStaticStandbyServesStoredToken(t *testing.T) {
	active, te, app := staticEnv(t, 10*time.Hour, time.Hour, envOptions{})
	tok := dataString(t, active.mustRead("static-creds/fleet"), fieldAccessToken)

	standby := active.peer(te, consts.ReplicationPerformanceStandby)
	if got := dataString(t, standby.mustRead("static-creds/fleet"), fieldAccessToken); got != tok {
		t.Fatalf("the standby served another token")
	}

	active.clock.Add(time.Hour)
	active.b.refreshDueStatic(active.ctx, active.storage)
	standby.b.invalidate(standby.ctx, staticTokenStoragePrefix+"fleet")
	resp := standby.mustRead("static-creds/fleet")
	if got := dataString(t, resp, fieldAccessToken); got == tok || accessTokenSub(t, got) != app {
		t.Errorf("after invalidation the standby still serves the old token")
	}
	if n := te.emu.Stats().TokensIssued; n != 2 {
		t.Errorf("exchanges = %d, want 2 (both by the active node)", n)
	}
}

func TestStaticStorageFailures(t *testing.T) {
	e, te, _ := staticEnv(t, 10*time.Hour, time.Hour, envOptions{})
	e.storage.failPut.Store(true)
	resp, err := e.read("static-creds/fleet")
	if err == nil || !errors.Is(err, errInjected) {
		t.Errorf("first read with storage failing: %v %v, want the storage error", resp, err)
	}
	e.storage.clear()
	tok := dataString(t, e.mustRead("static-creds/fleet"), fieldAccessToken)
	if n := te.emu.Stats().TokensIssued; n != 2 {
		t.Errorf("exchanges = %d, want 2", n)
	}
	// Failing storage at refresh time keeps the token served.
	e.clock.Add(time.Hour)
	e.storage.failPut.Store(true)
	e.b.refreshDueStatic(context.Background(), e.storage)
	e.storage.clear()
	if got := dataString(t, e.mustRead("static-creds/fleet"), fieldAccessToken); got == "" || got == tok {
		// The read itself refreshes (it is due) now that storage works.
		t.Errorf("read after a failed store: token %q", got)
	}
}

func TestStaticShorterPeriodReschedules(t *testing.T) {
	e, te, _ := staticEnv(t, 10*time.Hour, time.Hour, envOptions{})
	e.mustRead("static-creds/fleet")
	e.clock.Add(20 * time.Minute)
	e.mustWrite("static-roles/fleet", map[string]interface{}{"rotation_period": "15m"})
	if next := e.b.refreshDueStatic(e.ctx, e.storage); !next.Equal(e.clock.Now().Add(15 * time.Minute)) {
		t.Errorf("next refresh = %v, want 15m from now (the shorter period was overdue)", next)
	}
	if n := te.emu.Stats().TokensIssued; n != 2 {
		t.Errorf("exchanges = %d, want 2", n)
	}
	e.mustWrite("static-roles/fleet", map[string]interface{}{"rotation_period": "30m"})
	if ttl := e.mustRead("static-creds/fleet").Data[fieldStaticTTL]; ttl != int64(15*60) {
		t.Errorf("ttl after lengthening the period = %v, want the scheduled 900 (lengthening applies from the next refresh)", ttl)
	}
}
