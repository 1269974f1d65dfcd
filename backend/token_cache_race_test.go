package backend

import (
	"strings"
	"sync"
	"testing"
)

// A role's user changed while an exchange for the old user was in flight:
// no reader after the change may be served the old user's token, neither by
// joining that exchange nor from the shared-token cache it would fill.
func TestUserChangeDuringExchangeNeverServesOldUser(t *testing.T) {
	env, fa := newArrayEnv(t, envOptions{})
	env.mustWrite("config/fa", managedArrayConfig(nil))
	env.mustWrite("roles/r", map[string]interface{}{fieldConfig: "fa", fieldUsername: "pureuser", fieldReuseAccessToken: true})

	gate := make(chan struct{})
	fa.mu.Lock()
	fa.gate = gate
	fa.mu.Unlock()

	var wg sync.WaitGroup
	old := make(chan string, 1)
	wg.Add(1)
	go func() { // the reader of the old user, held at the array
		defer wg.Done()
		old <- dataString(t, env.mustRead("creds/r"), fieldAccessToken)
	}()
	waitFor(t, "the old user's exchange to start", func() bool { return env.b.flights.inFlight() == 1 })

	env.mustWrite("roles/r", map[string]interface{}{fieldUsername: "ops"})
	const readers = 8
	got := make(chan string, readers)
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got <- dataString(t, env.mustRead("creds/r"), fieldAccessToken)
		}()
	}
	// Both flights are held: the old user's, and the new user's, which the
	// new readers share rather than join the old one.
	waitFor(t, "the new user's exchange to start", func() bool { return env.b.flights.inFlight() == 2 })
	close(gate)
	wg.Wait()
	close(got)
	if tok := <-old; !strings.Contains(tok, "/pureuser/") {
		t.Errorf("the reader before the change got %q, want pureuser's token", tok)
	}
	for tok := range got {
		if !strings.Contains(tok, "/ops/") {
			t.Errorf("a reader after the change got %q, want ops's token", tok)
		}
	}
	// And the cache holds no token of the old user for later readers.
	for i := 0; i < 3; i++ {
		if tok := dataString(t, env.mustRead("creds/r"), fieldAccessToken); !strings.Contains(tok, "/ops/") {
			t.Errorf("a later reader got %q", tok)
		}
	}
}
