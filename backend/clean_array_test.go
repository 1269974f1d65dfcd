package backend

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Clean (unmount, plugin reload) does not wait behind a scheduled rotation
// whose array calls hang: the rotation ends with the mount, what it made
// stays on the delete list in storage, and the next start deletes it. The
// array hangs every call (exchange, delete, logout) until its context ends:
// Clean returns once the bounded logout gave up, not after a cleanup or a
// timeout of the array's. The deadline is that bound, not a speed measured.
func TestCleanEndsAHangingRotation(t *testing.T) {
	env, fa := newArrayEnv(t, envOptions{})
	env.mustWrite("config/fa", managedArrayConfig(map[string]interface{}{fieldRotationPeriod: "1h"}))
	gate := make(chan struct{}) // never opened: the new client's verifying exchange hangs
	fa.mu.Lock()
	fa.gate = gate
	fa.mu.Unlock()
	env.clock.Add(time.Hour)
	if err := env.b.Initialize(env.ctx, &logical.InitializationRequest{Storage: env.storage}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the scheduled rotation to reach the array", func() bool {
		fa.mu.Lock()
		defer fa.mu.Unlock()
		return len(fa.created) == 2 // the registration's, and the rotation's
	})
	cleaned := make(chan struct{})
	go func() { env.b.clean(context.Background()); close(cleaned) }()
	select {
	case <-cleaned:
	case <-time.After(10 * time.Second):
		t.Fatal("Clean waited behind the rotation's array calls")
	}
	if got := fa.clientNames(); len(got) != 2 {
		t.Fatalf("clients after Clean = %v, want the active one and the half-made one", got)
	}
	if keys := env.cleanupKeys(t); len(keys) != 1 {
		t.Fatalf("delete list after Clean = %v, want the half-made client's journal", keys)
	}
	// The array answers again; the plugin starts again.
	close(gate)
	env2 := env.restart(t, fa)
	env2.drain(t, 0)
	if got, want := fa.clientNames(), []string{"vault-fa"}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("clients after the restart's loop = %v, want %v", got, want)
	}
	if keys := env2.cleanupKeys(t); len(keys) != 0 {
		t.Errorf("delete list after the restart's loop = %v", keys)
	}
	// The logout Clean gave up on is the one session left to the array's
	// idle timeout.
	if n := fa.openSessions(); n != 1 {
		t.Errorf("%d sessions open, want the 1 whose logout Clean did not wait for", n)
	}
}
