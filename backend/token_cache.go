package backend

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
)

// minReuseLease is the shortest lease a shared access token is still handed
// out for; closer to its end, a new token is exchanged instead.
const minReuseLease = time.Minute

// isCurrentConfig reports whether cfg is still what the config's storage
// holds, by identity.
func (b *backend) isCurrentConfig(ctx context.Context, s logical.Storage, cfg *config) bool {
	cur, err := b.getConfig(ctx, s, cfg.name)
	return err == nil && cur != nil && cur.identity == cfg.identity
}

// isCurrentRole reports whether role is still what storage holds for name,
// in what a token depends on: its config and its user.
func (b *backend) isCurrentRole(ctx context.Context, s logical.Storage, name string, role *roleEntry) bool {
	cur, err := b.getRole(ctx, s, name)
	return err == nil && cur != nil && cur.Config == role.Config && cur.Username == role.Username
}

// tokenCache keeps the access token of each reuse_access_token role.
type tokenCache struct {
	mu sync.Mutex
	m  map[string]cachedToken // by role name
}

type cachedToken struct {
	tok      *pure1.AccessToken
	config   string
	identity string
	user     string // the array user the token carries the rights of
}

func newTokenCache() *tokenCache { return &tokenCache{m: make(map[string]cachedToken)} }

// get returns the role's token if it was issued for user under cfg as it is
// now and stays valid for margin plus minReuseLease.
func (t *tokenCache) get(role, user string, cfg *config, now time.Time, margin time.Duration) *pure1.AccessToken {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.m[role]
	if !ok || c.identity != cfg.identity || c.config != cfg.name || c.user != user {
		return nil
	}
	if c.tok.ExpiresAt.Sub(now)-margin < minReuseLease {
		delete(t.m, role)
		return nil
	}
	return c.tok
}

func (t *tokenCache) put(role, user string, cfg *config, tok *pure1.AccessToken) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.m[role]; ok && c.identity == cfg.identity && c.user == user && c.tok.ExpiresAt.After(tok.ExpiresAt) {
		return // keep the longer-lived one
	}
	t.m[role] = cachedToken{tok: tok, config: cfg.name, identity: cfg.identity, user: user}
}

func (t *tokenCache) dropRole(role string) {
	t.mu.Lock()
	delete(t.m, role)
	t.mu.Unlock()
}

func (t *tokenCache) dropConfig(config string) {
	t.mu.Lock()
	for role, c := range t.m {
		if c.config == config {
			delete(t.m, role)
		}
	}
	t.mu.Unlock()
}

// maxFlight bounds one coalesced exchange, retries included, when no waiter
// has a deadline.
const maxFlight = 90 * time.Second

// flightGroup runs one exchange per key at a time and shares its answer with
// every reader that arrives while it runs. Unlike singleflight, the exchange
// runs on its own context that is cancelled only when every waiter has given
// up, so one impatient client cannot fail the others, and nobody waiting
// means no retries continue in the background. Every flight also ends with
// base, the backend's context, which Clean cancels.
type flightGroup struct {
	base context.Context
	mu   sync.Mutex
	m    map[string]*flight
	// joined, when set, is told of each reader that joins a flight in
	// progress (for pure1_readers_shared_exchange_total).
	joined func(key string)
}

type flight struct {
	done    chan struct{}
	tok     *pure1.AccessToken
	err     error
	waiters int
	cancel  context.CancelFunc
}

// inFlight counts the exchanges running now.
func (g *flightGroup) inFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.m)
}

func newFlightGroup(base context.Context) *flightGroup {
	return &flightGroup{base: base, m: make(map[string]*flight)}
}

func (g *flightGroup) do(ctx context.Context, key string, fn func(context.Context) (*pure1.AccessToken, error)) (*pure1.AccessToken, error) {
	g.mu.Lock()
	f, ok := g.m[key]
	if !ok {
		// Not the reader's context: the flight outlives any one reader. The
		// backend's, so that an unmount or reload stops it.
		fctx, cancel := context.WithTimeout(g.base, maxFlight)
		f = &flight{done: make(chan struct{}), cancel: cancel}
		g.m[key] = f
		go func() {
			defer cancel()
			tok, err := fn(fctx)
			g.mu.Lock()
			f.tok, f.err = tok, err
			if g.m[key] == f {
				delete(g.m, key)
			}
			g.mu.Unlock()
			close(f.done)
		}()
	}
	f.waiters++
	g.mu.Unlock()
	if ok && g.joined != nil {
		g.joined(key)
	}

	select {
	case <-f.done:
		return f.tok, f.err
	case <-ctx.Done():
		g.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			f.cancel()
			if g.m[key] == f {
				delete(g.m, key) // the next reader starts afresh
			}
		}
		g.mu.Unlock()
		return nil, ctx.Err()
	}
}
