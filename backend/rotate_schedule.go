package backend

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

const (
	// minConfigRotationPeriod keeps a scheduled rotation from churning API
	// clients on the array faster than anyone could follow in its audit log.
	minConfigRotationPeriod = time.Hour
	// configRotationRetry is how long a scheduled rotation that failed waits
	// before it is tried again; the working client stays active meanwhile.
	configRotationRetry = 10 * time.Minute
)

// rotationBackoff remembers, on the node that rotates, when a failed scheduled
// rotation may be tried again. In memory on purpose: a new active node simply
// tries at once.
type rotationBackoff struct {
	mu   sync.Mutex
	next map[string]time.Time
}

func (r *rotationBackoff) get(name string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next[name]
}

func (r *rotationBackoff) set(name string, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t.IsZero() {
		delete(r.next, name)
		return
	}
	if r.next == nil {
		r.next = map[string]time.Time{}
	}
	r.next[name] = t
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
// the same rotateManagedConfig an operator's write runs.
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
	for _, name := range names {
		if ctx.Err() != nil {
			return time.Time{}
		}
		e, err := readConfigEntry(ctx, s, name)
		if err != nil || e == nil {
			continue
		}
		due := e.nextRotation()
		if due.IsZero() {
			continue
		}
		if retry := b.rotations.get(name); retry.After(due) {
			due = retry
		}
		if b.now().Before(due) {
			if next.IsZero() || due.Before(next) {
				next = due
			}
			continue
		}
		resp, rotated, err := b.rotateManagedConfig(ctx, s, "", name, keyInput{generate: true})
		switch {
		case rotated:
			b.rotations.set(name, time.Time{})
			b.Logger().Info("scheduled rotation done", "config", name)
			if resp != nil && len(resp.Warnings) > 0 {
				b.Logger().Warn("scheduled rotation: "+resp.Warnings[0], "config", name)
			}
			if cur, err := readConfigEntry(ctx, s, name); err == nil && cur != nil {
				if d := cur.nextRotation(); !d.IsZero() && (next.IsZero() || d.Before(next)) {
					next = d
				}
			}
		default:
			retry := b.now().Add(configRotationRetry)
			b.rotations.set(name, retry)
			why := ""
			if resp != nil {
				why = resp.Error().Error()
			}
			if ctx.Err() == nil {
				b.Logger().Warn("scheduled rotation failed; the active API client keeps working", "config", name,
					"next_try", retry.Format(time.RFC3339), "reason", why, "error", err)
			}
			if next.IsZero() || retry.Before(next) {
				next = retry
			}
		}
	}
	return next
}
