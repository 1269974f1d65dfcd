package backend

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1/emulator"
)

// emulatorConfig writes config/name with key k registered in the emulator,
// and returns the application ID.
func (e *testEnv) emulatorConfig(te *testEmulator, name string, k *keyFixture) string {
	e.t.Helper()
	id := te.register(e.t, k.publicPEM)
	e.mustWrite("config/"+name, map[string]interface{}{"private_key": k.pkcs8, "app_id": id, "token_url": te.tokenURL})
	return id
}

// useAccessToken calls the emulator's resource API with tok, proving Pure1
// would accept it.
func (te *testEmulator) useAccessToken(t *testing.T, tok string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, te.srv.URL+emulator.ArraysPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := te.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the access token is refused by the resource API: %s", resp.Status)
	}
}

func TestCredsAccessTokenFromEmulator(t *testing.T) {
	e, te := newEmulatorEnv(t, 0, envOptions{})
	id := e.emulatorConfig(te, "c", keyA())
	e.mustWrite("roles/at", map[string]interface{}{"config": "c"})

	resp := e.creds("at")
	tok := dataString(t, resp, "access_token")
	if got := dataString(t, resp, "token_type"); got != "Bearer" {
		t.Errorf("token_type %q", got)
	}
	if got := dataString(t, resp, "app_id"); got != id {
		t.Errorf("app_id %q, want %q", got, id)
	}
	if got := dataString(t, resp, "org"); got != testOrg {
		t.Errorf("org %q, want %q", got, testOrg)
	}
	if got := dataString(t, resp, "max_role"); got != testMaxRole {
		t.Errorf("max_role %q, want %q", got, testMaxRole)
	}
	if sub := accessTokenSub(t, tok); sub != id {
		t.Errorf("token issued to %q, want %q", sub, id)
	}
	// Unset ttl: the lease is the token's remaining life (Pure1's 35999 s)
	// less the safety margin.
	life := emulator.DefaultTokenLifetime
	if lease := life - leaseSafetyMargin; resp.Secret.TTL != lease || resp.Secret.MaxTTL != lease || resp.Secret.Renewable {
		t.Errorf("lease %s/%s renewable=%v; want %s, not renewable", resp.Secret.TTL, resp.Secret.MaxTTL, resp.Secret.Renewable, lease)
	}
	at := parseExpiresAt(t, resp)
	if !at.Equal(e.clock.Now().Add(life)) {
		t.Errorf("expires_at %s, want %s", at, e.clock.Now().Add(life))
	}
	if exp := pure1.DecodeAccessTokenClaims(tok).Expiry; !exp.Equal(at) {
		t.Errorf("expires_at %s is not the access token's exp %s", at, exp)
	}
	if resp.Secret.InternalData["credential_type"] != "access_token" {
		t.Errorf("internal data %v", resp.Secret.InternalData)
	}
	te.useAccessToken(t, tok)
	if st := te.emu.Stats(); st.TokenRequests != 1 || st.TokensIssued != 1 {
		t.Errorf("emulator stats %+v, want one request, one token", st)
	}
	// Without reuse every read is a new exchange.
	if tok2 := dataString(t, e.creds("at"), "access_token"); tok2 == tok {
		t.Errorf("second read without reuse returned the same token")
	}
	if st := te.emu.Stats(); st.TokensIssued != 2 {
		t.Errorf("tokens issued %d, want 2", st.TokensIssued)
	}
}

// TestAccessTokenLeaseTTL: unset ttl → the token's remaining life; a shorter
// ttl wins; max_ttl and the mount max cap; with reuse the lease ends
// reuse_margin before the token.
func TestAccessTokenLeaseTTL(t *testing.T) {
	const life = 2 * time.Hour
	cases := []struct {
		name     string
		mountMax time.Duration
		role     map[string]interface{}
		want     time.Duration
	}{
		{name: "unset ttl: token lifetime", want: life - leaseSafetyMargin},
		{name: "shorter ttl", role: map[string]interface{}{"ttl": "30m"}, want: 30 * time.Minute},
		{name: "longer ttl: token lifetime", role: map[string]interface{}{"ttl": "5h"}, want: life - leaseSafetyMargin},
		{name: "max_ttl caps", role: map[string]interface{}{"max_ttl": "1h"}, want: time.Hour},
		{name: "mount max caps", mountMax: 45 * time.Minute, want: 45 * time.Minute},
		{name: "reuse: remaining minus margin", role: map[string]interface{}{"reuse_access_token": true}, want: life - 10*time.Minute - leaseSafetyMargin},
		{name: "reuse with custom margin", role: map[string]interface{}{"reuse_access_token": true, "reuse_margin": "25m"}, want: life - 25*time.Minute - leaseSafetyMargin},
		{name: "reuse with shorter ttl", role: map[string]interface{}{"reuse_access_token": true, "ttl": "15m"}, want: 15 * time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, te := newEmulatorEnv(t, life, envOptions{maxLeaseTTL: tc.mountMax})
			e.emulatorConfig(te, "c", keyA())
			data := map[string]interface{}{"config": "c"}
			for k, v := range tc.role {
				data[k] = v
			}
			e.mustWrite("roles/at", data)
			resp := e.creds("at")
			if resp.Secret.TTL != tc.want || resp.Secret.MaxTTL != tc.want || resp.Secret.Renewable {
				t.Errorf("lease %s/%s renewable=%v, want %s not renewable", resp.Secret.TTL, resp.Secret.MaxTTL, resp.Secret.Renewable, tc.want)
			}
			at := parseExpiresAt(t, resp)
			if !at.Equal(e.clock.Now().Add(life)) {
				t.Errorf("expires_at %s, want the token's end %s", at, e.clock.Now().Add(life))
			}
			if e.clock.Now().Add(resp.Secret.TTL).After(at.Add(-leaseSafetyMargin)) {
				t.Errorf("lease ends less than %s before the token", leaseSafetyMargin)
			}
		})
	}
}

func TestAccessTokenReuse(t *testing.T) {
	const life = 2 * time.Hour
	e, te := newEmulatorEnv(t, life, envOptions{})
	e.emulatorConfig(te, "c", keyA())
	e.mustWrite("roles/shared", map[string]interface{}{"config": "c", "reuse_access_token": true, "reuse_margin": "10m"})
	e.mustWrite("roles/other", map[string]interface{}{"config": "c", "reuse_access_token": true})

	first := e.creds("shared")
	tok := dataString(t, first, "access_token")
	expires := parseExpiresAt(t, first)
	for i := 1; i <= 50; i++ {
		e.clock.Add(time.Minute)
		resp := e.creds("shared")
		if got := dataString(t, resp, "access_token"); got != tok {
			t.Fatalf("read %d: a new token while the shared one is valid", i)
		}
		if got := parseExpiresAt(t, resp); !got.Equal(expires) {
			t.Fatalf("read %d: expires_at %s, want %s", i, got, expires)
		}
		if want := expires.Sub(e.clock.Now()) - 10*time.Minute - leaseSafetyMargin; resp.Secret.TTL != want {
			t.Fatalf("read %d: lease %s, want remaining life minus margin %s", i, resp.Secret.TTL, want)
		}
	}
	if n := te.emu.Stats().TokenRequests; n != 1 {
		t.Fatalf("51 reads of a reuse role made %d exchanges, want 1", n)
	}
	// Another role does not get this role's token.
	if other := dataString(t, e.creds("other"), "access_token"); other == tok {
		t.Errorf("role other was handed role shared's token")
	}
	// Once less than margin + a minute is left, a new token is exchanged.
	e.clock.Set(expires.Add(-10*time.Minute - time.Minute + time.Second))
	resp := e.creds("shared")
	if dataString(t, resp, "access_token") == tok {
		t.Errorf("token handed out within margin+1m of its end")
	}
	if resp.Secret.TTL != life-10*time.Minute-leaseSafetyMargin {
		t.Errorf("lease of the renewed token %s", resp.Secret.TTL)
	}
	if n := te.emu.Stats().TokenRequests; n != 3 {
		t.Errorf("exchanges %d, want 3", n)
	}
}

// TestAccessTokenReuseAfterConfigChange: a new key or app_id means a new
// exchange; the token of the old identity is never handed out again.
func TestAccessTokenReuseAfterConfigChange(t *testing.T) {
	e, te := newEmulatorEnv(t, 0, envOptions{})
	idA := e.emulatorConfig(te, "c", keyA())
	e.mustWrite("roles/r", map[string]interface{}{"config": "c", "reuse_access_token": true})

	seen := map[string]bool{}
	read := func(wantSub string) {
		t.Helper()
		resp := e.creds("r")
		tok := dataString(t, resp, "access_token")
		if sub := accessTokenSub(t, tok); sub != wantSub {
			t.Fatalf("token for %q, want %q", sub, wantSub)
		}
		if dataString(t, resp, "app_id") != wantSub {
			t.Fatalf("app_id %q, want %q", resp.Data["app_id"], wantSub)
		}
		seen[tok] = true
	}
	read(idA)
	read(idA)
	if n := te.emu.Stats().TokenRequests; n != 1 {
		t.Fatalf("exchanges %d, want 1", n)
	}

	// New key and app_id, by a rotation verified with the emulator: one
	// exchange to verify, one for the next read.
	idB := te.register(t, keyB().publicPEM)
	e.mustWrite("config/c/rotate", map[string]interface{}{"private_key": keyB().pkcs1})
	e.mustWrite("config/c/rotate", map[string]interface{}{"app_id": idB})
	read(idB)
	if n := te.emu.Stats().TokenRequests; n != 3 || len(seen) != 2 {
		t.Fatalf("after a key change: exchanges %d, distinct tokens %d; want 3, 2", n, len(seen))
	}

	// Same key, another application registered for it: app_id only.
	idB2 := te.register(t, keyB().publicPEM)
	e.mustWrite("config/c", map[string]interface{}{"app_id": idB2})
	read(idB2)
	read(idB2)
	if n := te.emu.Stats().TokenRequests; n != 4 || len(seen) != 3 {
		t.Fatalf("after an app_id change: exchanges %d, distinct tokens %d; want 4, 3", n, len(seen))
	}

	// A generated key written straight to the config is refused (it would
	// clear app_id under the role); through a rotation, reads keep getting
	// the current application's token until the promotion, then the new.
	if msg := errorText(e.write("config/c", map[string]interface{}{"generate_key": true})); !strings.Contains(msg, "config/c/rotate") {
		t.Fatalf("generate_key on a config in use: %q, want a refusal naming the rotation", msg)
	}
	resp := e.mustWrite("config/c/rotate", map[string]interface{}{"generate_key": true})
	read(idB2)
	idG := te.register(t, resp.Data["public_key"].(string))
	e.mustWrite("config/c/rotate", map[string]interface{}{"app_id": idG})
	read(idG)
	read(idG)
	// Storing the pending key drops the config's caches like any config
	// write (one exchange more, still for idB2); the promotion moves the
	// shared token to idG.
	if len(seen) != 5 {
		t.Fatalf("after regeneration: distinct tokens %d, want 5", len(seen))
	}
}

// TestAccessTokenRejected: Pure1 refusing the JWT (here: app_id registered
// for another key) is the operator's to fix: a 400 that quotes Pure1's
// error_description and names the key's fingerprint, and no lease.
func TestAccessTokenRejected(t *testing.T) {
	e, te := newEmulatorEnv(t, 0, envOptions{})
	other := te.register(t, keyB().publicPEM)
	e.mustWrite("config/c", map[string]interface{}{"private_key": keyA().pkcs8, "app_id": other, "token_url": te.tokenURL})
	e.mustWrite("roles/r", map[string]interface{}{"config": "c", "reuse_access_token": true})
	e.mustWrite("config/unknown", map[string]interface{}{"private_key": keyA().pkcs8, "app_id": appID1, "token_url": te.tokenURL})
	e.mustWrite("roles/u", map[string]interface{}{"config": "unknown"})

	for _, tc := range []struct{ role, appID string }{{"r", other}, {"u", appID1}} {
		resp, err := e.read("creds/" + tc.role)
		if err != nil {
			t.Fatalf("%s: error %v, want an error response", tc.role, err)
		}
		if resp == nil || !resp.IsError() || resp.Secret != nil {
			t.Fatalf("%s: response %#v, want an error response without a lease", tc.role, resp)
		}
		if st := httpStatus(resp, err); st != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", tc.role, st)
		}
		msg := resp.Error().Error()
		for _, want := range []string{
			"Invalid identity: JWT validation failed.", // Pure1's error_description
			"401", tc.appID, keyA().fingerprint, "app_id", "clock",
		} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: message %q lacks %q", tc.role, msg, want)
			}
		}
	}
	if st := te.emu.Stats(); st.Rejected != 2 || st.TokensIssued != 0 {
		t.Errorf("emulator stats %+v", st)
	}
	// Once the right key's application is written, the role works: nothing
	// of the failure was cached.
	good := te.register(t, keyA().publicPEM)
	e.mustWrite("config/c", map[string]interface{}{"app_id": good})
	e.creds("r")
}

func closedLoopbackURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + emulator.TokenPath
}

func TestAccessTokenNetworkFailure(t *testing.T) {
	clock := newClock(testEpoch)
	ex := pure1.NewHTTPExchanger(pure1.HTTPExchangerOptions{Now: clock.Now, Retry: testRetry, AttemptTimeout: 5 * time.Second, Hosts: loopbackHosts})
	e := newTestEnv(t, envOptions{exchanger: ex, clock: clock})
	url := closedLoopbackURL(t)
	e.mustWrite("config/c", map[string]interface{}{"private_key": keyA().pkcs8, "app_id": appID1, "token_url": url})
	e.mustWrite("roles/r", map[string]interface{}{"config": "c", "reuse_access_token": true})

	resp, err := e.read("creds/r")
	if err == nil {
		t.Fatalf("no error from an unreachable token_url; response %#v", resp)
	}
	if resp != nil && resp.Secret != nil {
		t.Fatalf("a lease despite the failure: %#v", resp.Secret)
	}
	if st := httpStatus(resp, err); st != http.StatusBadGateway {
		t.Errorf("status %d, want 502", st)
	}
	if msg := err.Error(); !strings.Contains(msg, strings.TrimSuffix(strings.TrimPrefix(url, "http://"), emulator.TokenPath)) ||
		!strings.Contains(msg, "connection refused") {
		t.Errorf("error %q should name the address and the cause", msg)
	}
}

// TestAccessTokenUpstreamFaults: whatever goes wrong upstream, the read fails
// clearly, without a lease, and the next read after the fault works.
func TestAccessTokenUpstreamFaults(t *testing.T) {
	cases := []struct {
		name     string
		fault    emulator.Fault
		status   int
		contains string
	}{
		{"503 on every attempt", emulator.Fault{Kind: "status", Status: 503, Count: 2}, 502, "HTTP 503"},
		{"400 invalid_request", emulator.Fault{Kind: "status", Status: 400}, 400, "HTTP 400"},
		{"403", emulator.Fault{Kind: "status", Status: 403}, 400, "Access denied."},
		{"connection reset", emulator.Fault{Kind: "reset", Count: 2}, 502, "POST "},
		{"HTML instead of JSON", emulator.Fault{Kind: "non_json"}, 502, "not JSON"},
		{"truncated JSON", emulator.Fault{Kind: "truncated_json"}, 502, "not JSON"},
		{"no access_token", emulator.Fault{Kind: "no_access_token"}, 502, "no access_token"},
		{"no expires_in", emulator.Fault{Kind: "no_expires_in"}, 502, "expires_in"},
		{"zero expires_in", emulator.Fault{Kind: "zero_expires_in"}, 502, "expires_in"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, te := newEmulatorEnv(t, 0, envOptions{})
			e.emulatorConfig(te, "c", keyA())
			e.mustWrite("roles/r", map[string]interface{}{"config": "c", "reuse_access_token": true})
			te.emu.InjectFaults(tc.fault)
			resp, err := e.read("creds/r")
			msg := errorText(resp, err)
			if msg == "" {
				t.Fatalf("no error; response %#v", resp)
			}
			if resp != nil && resp.Secret != nil {
				t.Fatalf("a lease despite the failure")
			}
			if st := httpStatus(resp, err); st != tc.status {
				t.Errorf("status %d, want %d (%s)", st, tc.status, msg)
			}
			if !strings.Contains(msg, tc.contains) {
				t.Errorf("message %q lacks %q", msg, tc.contains)
			}
			if len(te.emu.PendingFaults()) != 0 {
				t.Fatalf("faults left unserved: %+v", te.emu.PendingFaults())
			}
			e.creds("r")
		})
	}
}

func TestAccessTokenRetriesTransientFailure(t *testing.T) {
	e, te := newEmulatorEnv(t, 0, envOptions{})
	e.emulatorConfig(te, "c", keyA())
	e.mustWrite("roles/r", map[string]interface{}{"config": "c"})
	te.emu.InjectFaults(emulator.Fault{Kind: "status", Status: 503})
	e.creds("r")
	if st := te.emu.Stats(); st.TokenRequests != 2 || st.TokensIssued != 1 {
		t.Errorf("stats %+v, want 2 requests, 1 token", st)
	}
}

// TestAccessTokenCoalescing: concurrent reads of one role while an exchange is
// slow share that one exchange.
func TestAccessTokenCoalescing(t *testing.T) {
	const n = 16
	e, te := newEmulatorEnv(t, 0, envOptions{})
	e.emulatorConfig(te, "c", keyA())
	e.mustWrite("roles/r", map[string]interface{}{"config": "c"})
	// Long enough for all readers to arrive while the exchange waits, even
	// under -race on a loaded machine; the test does not wait for it unless
	// a reader is that slow.
	te.emu.InjectFaults(emulator.Fault{Kind: "delay", Delay: emulator.Duration(2 * time.Second)})

	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		toks  = make([]string, n)
		errs  = make([]string, n)
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			resp, err := e.read("creds/r")
			if msg := errorText(resp, err); msg != "" {
				errs[i] = msg
				return
			}
			if resp == nil || resp.Secret == nil {
				errs[i] = "no lease"
				return
			}
			toks[i], _ = resp.Data["access_token"].(string)
		}(i)
	}
	close(start)
	wg.Wait()
	for i := 0; i < n; i++ {
		if errs[i] != "" {
			t.Errorf("reader %d: %s", i, errs[i])
		} else if toks[i] == "" || toks[i] != toks[0] {
			t.Errorf("reader %d got another token than reader 0", i)
		}
	}
	if st := te.emu.Stats(); st.TokenRequests != 1 || st.MaxInFlight != 1 {
		t.Errorf("%d concurrent reads made %d token requests (max in flight %d), want 1", n, st.TokenRequests, st.MaxInFlight)
	}
}

// TestCredsWriteNothing: issuing credentials writes nothing.
func TestCredsWriteNothing(t *testing.T) {
	e, te := newEmulatorEnv(t, 0, envOptions{})
	e.emulatorConfig(te, "c", keyA())
	e.mustWrite("roles/at", map[string]interface{}{"config": "c", "reuse_access_token": true})
	e.mustWrite("roles/j", map[string]interface{}{"config": "c", "credential_type": "jwt"})
	before := e.snapshot()
	e.creds("at")
	e.creds("j")
	if d := diffSnapshots(before, e.snapshot()); d != "" {
		t.Errorf("creds reads changed storage: %s", d)
	}
}

// TestAccessTokenImpatientReader: a reader that gives up does not fail the
// others sharing its exchange; when every reader has given up the exchange
// is abandoned, and the next read starts a new one.
func TestAccessTokenImpatientReader(t *testing.T) {
	e, te := newEmulatorEnv(t, 0, envOptions{})
	e.emulatorConfig(te, "c", keyA())
	e.mustWrite("roles/r", map[string]interface{}{"config": "c"})
	read := func(ctx context.Context) (*logical.Response, error) {
		return e.b.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: "creds/r", Storage: e.storage})
	}

	te.emu.InjectFaults(emulator.Fault{Kind: "delay", Delay: emulator.Duration(500 * time.Millisecond)})
	patient := make(chan string, 1)
	go func() {
		resp, err := read(context.Background())
		if msg := errorText(resp, err); msg != "" || resp == nil || resp.Secret == nil {
			patient <- "patient reader failed: " + msg
			return
		}
		patient <- ""
	}()
	// Join the same exchange, then give up long before it answers.
	waitForWaiters(t, e.b, 1)
	resp, err := readThenCancel(t, read, func() { waitForWaiters(t, e.b, 2) })
	if err == nil || (resp != nil && resp.Secret != nil) {
		t.Errorf("impatient reader: %v %v, want an error and no lease", resp, err)
	}
	if msg := <-patient; msg != "" {
		t.Fatal(msg)
	}
	if n := te.emu.Stats().TokenRequests; n != 1 {
		t.Fatalf("token requests %d, want 1", n)
	}

	// Alone and impatient: the exchange is abandoned, not left running.
	te.emu.InjectFaults(emulator.Fault{Kind: "delay", Delay: emulator.Duration(30 * time.Second)})
	resp, err = readThenCancel(t, read, func() { waitForTokenRequests(t, te, 2) })
	if err == nil || (resp != nil && resp.Secret != nil) {
		t.Fatalf("abandoned read: %v %v, want an error", resp, err)
	}
	waitForWaiters(t, e.b, 0)
	// The abandoned HTTP request is cancelled: the emulator sees it go.
	deadline := time.Now().Add(10 * time.Second)
	for te.emu.Stats().InFlight != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the abandoned exchange is still running at the emulator")
		}
		time.Sleep(time.Millisecond)
	}
	e.creds("r")
	if n := te.emu.Stats().TokenRequests; n != 3 {
		t.Errorf("token requests %d, want 3", n)
	}
}

// readThenCancel starts read on a context it cancels once ready returns, and
// returns what read returned.
func readThenCancel(t *testing.T, read func(context.Context) (*logical.Response, error), ready func()) (*logical.Response, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		resp *logical.Response
		err  error
	}
	out := make(chan result, 1)
	go func() {
		resp, err := read(ctx)
		out <- result{resp, err}
	}()
	ready()
	cancel()
	r := <-out
	return r.resp, r.err
}

func waitForTokenRequests(t *testing.T, te *testEmulator, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for te.emu.Stats().TokenRequests < n {
		if time.Now().After(deadline) {
			t.Fatalf("token requests %d, want %d", te.emu.Stats().TokenRequests, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitForWaiters waits until the backend's exchanges in flight have n
// waiters in all.
func waitForWaiters(t *testing.T, b *backend, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.flights.mu.Lock()
		got := 0
		for _, f := range b.flights.m {
			got += f.waiters
		}
		b.flights.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("exchanges in flight have %d waiters, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestAccessTokenStaleExchangeNotReused: an exchange that started before a
// config rewrite and ends after it must not leave its token to be shared
// under the new key and app_id.
func TestAccessTokenStaleExchangeNotReused(t *testing.T) {
	e, te := newEmulatorEnv(t, 0, envOptions{})
	idA := e.emulatorConfig(te, "c", keyA())
	e.mustWrite("roles/r", map[string]interface{}{"config": "c", "reuse_access_token": true})

	te.emu.InjectFaults(emulator.Fault{Kind: "delay", Delay: emulator.Duration(500 * time.Millisecond)})
	old := make(chan string, 1)
	go func() {
		resp, err := e.read("creds/r")
		if msg := errorText(resp, err); msg != "" || resp == nil {
			old <- ""
			return
		}
		tok, _ := resp.Data["access_token"].(string)
		old <- tok
	}()
	waitForWaiters(t, e.b, 1)
	idB := te.register(t, keyB().publicPEM)
	e.mustWrite("config/c/rotate", map[string]interface{}{"private_key": keyB().pkcs8})
	e.mustWrite("config/c/rotate", map[string]interface{}{"app_id": idB})
	oldTok := <-old
	if oldTok == "" || accessTokenSub(t, oldTok) != idA {
		t.Fatalf("the read that raced the rewrite failed or got a token for another app")
	}
	tok := dataString(t, e.creds("r"), "access_token")
	if tok == oldTok || accessTokenSub(t, tok) != idB {
		t.Fatalf("after the rewrite: got the old exchange's token (%v), sub %q, want %q", tok == oldTok, accessTokenSub(t, tok), idB)
	}
}

// recordingExchanger answers every exchange with a fixed token and records
// what it was asked.
type recordingExchanger struct {
	mu        sync.Mutex
	urls      []string
	jwts      []string
	expiresIn time.Duration
	clock     *fakeClock
}

func (r *recordingExchanger) Exchange(_ context.Context, tokenURL, subjectJWT string) (*pure1.AccessToken, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.urls = append(r.urls, tokenURL)
	r.jwts = append(r.jwts, subjectJWT)
	return &pure1.AccessToken{
		Token: "opaque-token", TokenType: "Bearer", ExpiresIn: r.expiresIn,
		ExpiresAt: r.clock.Now().Add(r.expiresIn).Truncate(time.Second), // as pure1.ParseTokenResponse does
	}, nil
}

// TestAccessTokenExchangeJWT: the JWT traded for an access token is the
// Pure1 client JWT with a 60 s lifetime, sent to the config's token_url; a
// token without org or max_role claims leaves those fields out.
func TestAccessTokenExchangeJWT(t *testing.T) {
	clock := newClock(testEpoch.Add(250 * time.Millisecond))
	ex := &recordingExchanger{expiresIn: time.Hour, clock: clock}
	e := newTestEnv(t, envOptions{exchanger: ex, clock: clock, hosts: allowExample(t)})
	const url = "https://pure1.example.com/oauth2/1.0/token"
	e.mustWrite("config/c", map[string]interface{}{"private_key": keyA().pkcs1, "app_id": appID1, "token_url": url})
	e.mustWrite("roles/r", map[string]interface{}{"config": "c"})
	resp := e.creds("r")
	if len(ex.jwts) != 1 || ex.urls[0] != url {
		t.Fatalf("exchanges %d to %v, want 1 to %s", len(ex.jwts), ex.urls, url)
	}
	c, err := checkJWT(ex.jwts[0], &keyA().priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if c.Iss != appID1 || c.Iat != testEpoch.Unix() || c.Exp-c.Iat != 60 {
		t.Errorf("exchange JWT claims %+v, want iss %s, iat %d, 60 s lifetime", c, appID1, testEpoch.Unix())
	}
	for _, f := range []string{"org", "max_role", "jwt"} {
		if _, ok := resp.Data[f]; ok {
			t.Errorf("response has %q: %v", f, resp.Data)
		}
	}
	if dataString(t, resp, "access_token") != "opaque-token" || resp.Secret.TTL != time.Hour-250*time.Millisecond-leaseSafetyMargin {
		t.Errorf("response %v, lease %s", resp.Data, resp.Secret.TTL)
	}
}
