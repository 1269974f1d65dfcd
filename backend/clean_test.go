package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"go.uber.org/goleak"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
)

// fakeTokenEndpoints starts two token endpoints: one that answers, whose
// connection the mount's transport then keeps alive, and one that holds
// every request until the client goes away: an exchange in flight when Vault
// unmounts the engine or reloads the plugin.
func fakeTokenEndpoints(t *testing.T) (okURL, hangURL string, arrived <-chan struct{}) {
	t.Helper()
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"ok","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(ok.Close)
	ch := make(chan struct{}, 16)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		ch <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(hang.Close)
	return ok.URL + "/oauth2/1.0/token", hang.URL + "/oauth2/1.0/token", ch
}

// TestCleanStopsExchangesAndConnections: Clean (unmount, plugin reload) ends
// the exchange in flight, so its readers get an answer at once, and leaves no
// goroutine behind: no flight, no kept-alive connection of the mount's
// transport, and so no server-side connection either. A backend made again
// on the same storage (the reload) works, and its Clean is as thorough.
// Not parallel: goleak compares all of the process's goroutines.
func TestCleanStopsExchangesAndConnections(t *testing.T) {
	okURL, hangURL, arrived := fakeTokenEndpoints(t)
	// The server's listener runs on; everything started after this may not.
	ignore := goleak.IgnoreCurrent()

	newEnv := func(storage *logical.InmemStorage) *testEnv {
		// The backend's own pooled transport, as in production, with an
		// attempt timeout far beyond the test's patience: only Clean can
		// end the hanging exchange.
		ex := pure1.NewHTTPExchanger(pure1.HTTPExchangerOptions{AttemptTimeout: 10 * time.Minute, Retry: testRetry, Hosts: loopbackHosts})
		e := newTestEnv(t, envOptions{exchanger: ex, clock: newClock(time.Now())})
		if storage != nil {
			e.inmem = storage
			e.storage.Storage = storage
		}
		return e
	}
	e := newEnv(nil)
	e.mustWrite("config/ok", map[string]interface{}{"private_key": keyA().pkcs1, "app_id": appID1, "token_url": okURL})
	e.mustWrite("roles/ok", map[string]interface{}{"config": "ok"})
	e.mustWrite("config/c", map[string]interface{}{"private_key": keyA().pkcs1, "app_id": appID1, "token_url": hangURL})
	e.mustWrite("roles/r", map[string]interface{}{"config": "c"})

	for round, env := range []*testEnv{e, nil} {
		if env == nil {
			env = newEnv(e.inmem) // the reload: a new backend, the same storage
		}
		// A finished exchange leaves a kept-alive connection behind.
		if tok := dataString(t, env.creds("ok"), "access_token"); tok != "ok" {
			t.Fatalf("round %d: exchange: %q", round, tok)
		}
		done := make(chan error, 1)
		go func() {
			resp, err := env.read("creds/r")
			switch {
			case err == nil && (resp == nil || !resp.IsError()):
				done <- errors.New("creds succeeded while Pure1 hung")
			case !strings.Contains(errorText(resp, err), "unmounted or reloaded"):
				done <- fmt.Errorf("creds after Clean: %q should say the mount is going away", errorText(resp, err))
			default:
				done <- nil
			}
		}()
		<-arrived
		env.b.Clean(context.Background())
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("round %d: %v", round, err)
			}
		case <-time.After(30 * time.Second): // a hang guard, not a timing assertion
			t.Fatalf("round %d: the exchange in flight outlived Clean", round)
		}
		// Reads after Clean fail at once instead of starting an exchange.
		if _, err := env.read("creds/r"); err == nil {
			t.Errorf("round %d: creds after Clean succeeded", round)
		}
	}
	goleak.VerifyNone(t, ignore)
}
