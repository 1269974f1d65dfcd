package backend

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

const (
	// minConfigRotationPeriod keeps a scheduled rotation from churning API
	// clients on the array faster than anyone could follow in its audit log.
	minConfigRotationPeriod = time.Hour
	// configRotationRetry is how long a scheduled rotation that failed first
	// waits; each failure in a row doubles it, up to configRotationMaxRetry:
	// a rotation that keeps failing (an admin token revoked) must not log in
	// and generate a key every few minutes forever.
	configRotationRetry    = 10 * time.Minute
	configRotationMaxRetry = 24 * time.Hour
)

// rotationBackoff remembers, on the node that rotates, the scheduled
// rotations that failed: when each may be tried again, how many failed in a
// row and why. In memory on purpose: a new active node simply tries at once.
type rotationBackoff struct {
	mu sync.Mutex
	m  map[string]rotationFailure
}

type rotationFailure struct {
	next     time.Time
	failures int
	since    time.Time
	reason   string
}

func (r *rotationBackoff) get(name string) rotationFailure {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[name]
}

// failed records a failure at now and returns the record, with when to try
// again.
func (r *rotationBackoff) failed(name string, now time.Time, reason string) rotationFailure {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]rotationFailure{}
	}
	f := r.m[name]
	if f.failures == 0 {
		f.since = now
	}
	f.failures++
	f.next, f.reason = now.Add(doublingBackoff(configRotationRetry, configRotationMaxRetry, f.failures)), reason
	r.m[name] = f
	return f
}

func (r *rotationBackoff) clear(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, name)
}

// warning is what reads of config name say while its scheduled rotation
// keeps failing; "" while it does not.
func (r *rotationBackoff) warning(name string) string {
	f := r.get(name)
	if f.failures == 0 {
		return ""
	}
	return fmt.Sprintf("the scheduled rotation of config %q has failed %d time(s) in a row since %s (%s); the active API client keeps working. "+
		"Next try at %s; fix the cause (often admin_api_token) or rotate by hand: vault write -f <mount>config/%s/rotate",
		name, f.failures, formatTime(f.since), f.reason, formatTime(f.next), name)
}

// nextRotation is when e's scheduled rotation is due; zero when it has none.
func (e *configEntry) nextRotation() time.Time {
	if e.Managed == nil || e.RotationPeriod <= 0 || e.ClientID == "" {
		return time.Time{}
	}
	return e.KeyCreatedAt.Add(e.RotationPeriod)
}

// rotateDueConfigs runs the scheduled rotations that are due (managed array
// configs with a rotation_period) and returns when the next one is. It runs
// in the static refresher's loop, on the node that may write; a rotation is
// the same rotateManagedConfig an operator's write runs. Configs are read
// through the cache: a tick decodes nothing that did not change.
func (b *backend) rotateDueConfigs(ctx context.Context, s logical.Storage) time.Time {
	if !b.mayWrite() {
		return time.Time{}
	}
	names, err := s.List(ctx, configStoragePrefix)
	if err != nil {
		if ctx.Err() == nil {
			b.Logger().Warn("listing configs for scheduled rotations failed", "error", err)
		}
		return time.Time{}
	}
	var next time.Time
	later := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, name := range names {
		if ctx.Err() != nil {
			return time.Time{}
		}
		c, err := b.getConfig(ctx, s, name)
		if err != nil || c == nil {
			continue
		}
		due := c.entry.nextRotation()
		if due.IsZero() {
			continue
		}
		if retry := b.rotations.get(name).next; retry.After(due) {
			due = retry
		}
		if b.now().Before(due) {
			later(due)
			continue
		}
		resp, rotated, err := b.rotateManagedConfig(ctx, s, "", name, keyInput{generate: true}, false)
		switch {
		case rotated:
			b.rotations.clear(name)
			b.Logger().Info("scheduled rotation done", "config", name)
			if cur, err := b.getConfig(ctx, s, name); err == nil && cur != nil {
				later(cur.entry.nextRotation())
			}
		case ctx.Err() != nil:
			return time.Time{} // unmounting: not a failure of the rotation
		default:
			why := ""
			switch {
			case resp != nil && resp.IsError():
				why = resp.Error().Error()
			case err != nil:
				why = err.Error()
			}
			f := b.rotations.failed(name, b.now(), why)
			b.metrics.observeRotationFailure(name)
			b.Logger().Warn("scheduled rotation failed; the active API client keeps working", "config", name,
				"failures", f.failures, "next_try", f.next.Format(time.RFC3339), "reason", why)
			later(f.next)
		}
	}
	return next
}
