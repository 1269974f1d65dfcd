package backend

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

const (
	// staticCheckInterval is the longest the refresher sleeps: it also picks
	// up what changed without waking it (a role written on another node
	// before a failover, a clock jump).
	staticCheckInterval = time.Minute
	// staticMinWait keeps a refresher whose storage keeps failing from
	// spinning.
	staticMinWait = time.Second
)

// staticRefresher is the background loop that keeps static tokens fresh. It
// runs on the node that may write, from Initialize until Clean.
type staticRefresher struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	// wake asks a sleeping loop to look again now (a config or static role
	// changed). Buffered, so a wake while it is busy is not lost.
	wake chan struct{}
}

func newStaticRefresher() *staticRefresher {
	return &staticRefresher{wake: make(chan struct{}, 1)}
}

// initialize is Vault's InitializeFunc: it runs once the mount is set up on
// an active node, with the storage the loop keeps using.
func (b *backend) initialize(_ context.Context, req *logical.InitializationRequest) error {
	b.startStaticRefresher(req.Storage)
	return nil
}

func (b *backend) startStaticRefresher(s logical.Storage) {
	r := b.refresher
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done != nil {
		return // already running
	}
	ctx, cancel := context.WithCancel(b.ctx) // ends with the mount, too
	r.cancel, r.done = cancel, make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		b.runStaticRefresher(ctx, s)
	}(r.done)
}

// stopStaticRefresher ends the loop and waits for it, so that nothing of the
// mount runs on after Clean.
func (b *backend) stopStaticRefresher() {
	r := b.refresher
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.cancel, r.done = nil, nil
	r.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

func (b *backend) wakeStaticRefresher() {
	select {
	case b.refresher.wake <- struct{}{}:
	default:
	}
}

func (b *backend) runStaticRefresher(ctx context.Context, s logical.Storage) {
	b.Logger().Debug("static token refresher started")
	defer b.Logger().Debug("static token refresher stopped")
	for {
		wait := staticCheckInterval
		if next := b.refreshDueStatic(ctx, s); !next.IsZero() {
			wait = min(wait, next.Sub(b.now()))
		}
		// Scheduled rotations of array configs ride on the same loop: one
		// background worker per mount, started and stopped in one place.
		if next := b.rotateDueConfigs(ctx, s); !next.IsZero() {
			wait = min(wait, next.Sub(b.now()))
		}
		// So does the delete list of array API clients (cleanup.go).
		if next := b.drainCleanup(ctx, s, ""); !next.IsZero() {
			wait = min(wait, next.Sub(b.now()))
		}
		// And the tidy of the array users Vault makes (array_users.go).
		if next := b.tidyDueUsers(ctx, s); !next.IsZero() {
			wait = min(wait, next.Sub(b.now()))
		}
		wait = max(wait, staticMinWait)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-b.refresher.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// refreshDueStatic refreshes every static token that is due and returns when
// the next one will be (zero when none is scheduled). A node that may not
// write refreshes nothing: the node that may, does, and stores the result
// for all.
func (b *backend) refreshDueStatic(ctx context.Context, s logical.Storage) time.Time {
	if !b.mayWrite() {
		return time.Time{}
	}
	names, err := s.List(ctx, staticRoleStoragePrefix)
	if err != nil {
		if ctx.Err() == nil {
			b.Logger().Warn("listing static roles to refresh failed", "error", err)
		}
		return time.Time{}
	}
	var next time.Time
	for _, name := range names {
		if ctx.Err() != nil {
			return time.Time{}
		}
		due, err := b.refreshIfDue(ctx, s, name)
		if err != nil && ctx.Err() == nil {
			b.Logger().Warn("checking a static token failed", "static_role", name, "error", err)
		}
		if !due.IsZero() && (next.IsZero() || due.Before(next)) {
			next = due
		}
	}
	return next
}

// refreshIfDue refreshes one static role's token when it is due and returns
// when it is due next (zero if unknown). A failed exchange is recorded in the
// token, not returned: it is retried on the token's schedule.
func (b *backend) refreshIfDue(ctx context.Context, s logical.Storage, name string) (time.Time, error) {
	role, err := b.getStaticRole(ctx, s, name)
	if err != nil || role == nil {
		return time.Time{}, err
	}
	cfg, err := b.getConfig(ctx, s, role.Config)
	if err != nil {
		return time.Time{}, err
	}
	t, err := b.getStaticToken(ctx, s, name)
	if err != nil {
		return time.Time{}, err
	}
	if staticDue(t, role, cfg, b.now()) {
		if _, err := b.refreshStatic(ctx, s, name); err != nil && ctx.Err() != nil {
			return time.Time{}, err
		}
		if t, err = b.getStaticToken(ctx, s, name); err != nil || t == nil {
			return time.Time{}, err
		}
	}
	return t.nextRefresh(role), nil
}
