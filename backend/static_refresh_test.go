package backend

import (
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// waitFor polls cond until it holds or a generous deadline passes: the
// background loop runs on its own schedule. It asserts an outcome, not a
// speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStaticRefresherInBackground runs the loop as Vault does, from
// Initialize to Clean: tokens are exchanged and moved to a changed config
// with nobody reading, and Clean ends the loop (TestMain fails the package
// on a goroutine left behind).
func TestStaticRefresherInBackground(t *testing.T) {
	e, te, _ := staticEnv(t, 10*time.Hour, time.Hour, envOptions{})
	if err := e.b.Initialize(e.ctx, &logical.InitializationRequest{Storage: e.storage}); err != nil {
		t.Fatalf("Initialize: %v", err)
	}
	t.Cleanup(func() { e.b.Cleanup(e.ctx) })

	stored := func() *staticToken {
		tok, err := readStaticToken(e.ctx, e.inmem, "fleet")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	waitFor(t, "the first token, unread", func() bool { return stored() != nil && stored().AccessToken != "" })

	app2 := te.register(t, keyA().publicPEM)
	e.mustWrite("config/prod", map[string]interface{}{"app_id": app2})
	waitFor(t, "the token to move to the new app_id", func() bool { return stored().AppID == app2 })
	if n := te.emu.Stats().TokensIssued; n != 2 {
		t.Errorf("exchanges = %d, want 2", n)
	}

	e.b.Cleanup(e.ctx)
	if e.b.refresher.done != nil {
		t.Errorf("Clean left the refresher running")
	}
	e.b.Cleanup(e.ctx) // twice is harmless (unmount after a failed reload)
}
