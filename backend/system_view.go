package backend

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
)

// systemViewRefresh is how long an answer of Vault's system view is reused.
const systemViewRefresh = time.Second

// cachingSystemView remembers, for a second, the two system-view answers that
// every creds read needs. In a plugin each SystemView call is an RPC back to
// Vault, and the framework asks ReplicationState on every request: two round
// trips per read were a measurable share of its cost. Both values change
// rarely (a mount tune, a replication change) and a second's delay is
// harmless: Vault caps every lease at the mount's max itself, and a write that
// reaches a node that has just become read-only fails with ErrReadOnly and is
// forwarded all the same.
type cachingSystemView struct {
	logical.SystemView
	replication cachedValue[consts.ReplicationState]
	maxLeaseTTL cachedValue[time.Duration]
}

func newCachingSystemView(sv logical.SystemView) *cachingSystemView {
	return &cachingSystemView{SystemView: sv}
}

func (s *cachingSystemView) ReplicationState() consts.ReplicationState {
	return s.replication.get(s.SystemView.ReplicationState)
}

func (s *cachingSystemView) MaxLeaseTTL() time.Duration {
	return s.maxLeaseTTL.get(s.SystemView.MaxLeaseTTL)
}

// liveMaxLeaseTTL asks Vault itself, for checks on writes: a role written
// right after `vault secrets tune` must be checked against the new value.
func (b *backend) liveMaxLeaseTTL() time.Duration {
	if c, ok := b.System().(*cachingSystemView); ok {
		return c.SystemView.MaxLeaseTTL()
	}
	return b.System().MaxLeaseTTL()
}

type cachedValue[T any] struct {
	p atomic.Pointer[timedValue[T]]
}

type timedValue[T any] struct {
	v  T
	at time.Time
}

// get returns the remembered value, or asks fetch when it is older than
// systemViewRefresh. Concurrent misses may each fetch; the answers agree.
func (c *cachedValue[T]) get(fetch func() T) T {
	now := time.Now()
	if t := c.p.Load(); t != nil && now.Sub(t.at) < systemViewRefresh {
		return t.v
	}
	v := fetch()
	c.p.Store(&timedValue[T]{v: v, at: now})
	return v
}
