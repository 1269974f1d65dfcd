package backend

// The delete list: every API client Vault made on an array and means to
// delete (a rotated-out client once the credentials it issued have expired,
// a half-made client of a registration that failed or crashed, the clients
// of a deleted config) is an entry in storage until the array confirms it is
// gone. The active node's background loop drains it with growing backoff,
// so nothing of Vault's is left on an array by a fault, a crash or an
// unmount, and no array call runs under the write lock.

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray"
)

// cleanupStoragePrefix holds the list, seal-wrapped: an entry keeps the
// admin token that deletes its client, which outlives a deleted config.
const cleanupStoragePrefix = "array-cleanup/"

// Why a client is on the list.
const (
	cleanupRetired       = "retired"        // rotated out; due once its credentials expired
	cleanupRegistration  = "registration"   // journal of a registration under way
	cleanupConfigDeleted = "config_deleted" // its config was deleted
)

const (
	// registrationGrace is how long a registration's journal entry, written
	// by a registration this process does not run, waits before the loop
	// treats it as abandoned: longer than any registration runs, for one
	// that another node ran before a failover. An entry from before this
	// process started (a crash, a plugin restart) is abandoned at once.
	registrationGrace = 5 * time.Minute
	// cleanupFirstRetry doubles with every failed attempt, up to
	// cleanupMaxRetry: an array that is down is not hammered.
	cleanupFirstRetry = 30 * time.Second
	cleanupMaxRetry   = time.Hour
	// cleanupCallTimeout bounds one attempt's array calls.
	cleanupCallTimeout = 30 * time.Second
	// inlineCleanupTimeout bounds the attempt a request makes at once
	// (config delete, retire_previous=now) before leaving it to the loop.
	inlineCleanupTimeout = 10 * time.Second
)

// cleanupEntry is one API client to delete, with what it takes to do so
// after its config is gone.
type cleanupEntry struct {
	layoutVersion
	Config        string `json:"config"`
	Kind          string `json:"kind"`
	ArrayURL      string `json:"array_url"`
	CACert        string `json:"ca_cert,omitempty"`
	AdminAPIToken string `json:"admin_api_token"`
	Client        string `json:"client"`
	ClientID      string `json:"client_id,omitempty"`
	// KeyFingerprint is the client's public key as Vault made it: a client
	// of that name holding another key is not Vault's and is left alone.
	KeyFingerprint string    `json:"key_fingerprint,omitempty"`
	Reason         string    `json:"reason"`
	CreatedAt      time.Time `json:"created_at"`
	// NotBefore is when the client may go: a retired client's last
	// credential's expiry, or a journal entry's grace.
	NotBefore time.Time `json:"not_before"`
	Attempts  int       `json:"attempts,omitempty"`
	NextTry   time.Time `json:"next_try,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

func newCleanup(config string, e *configEntry, client, clientID, fingerprint, reason string, now, notBefore time.Time) *cleanupEntry {
	c := &cleanupEntry{Config: config, Kind: e.kindName(), ArrayURL: e.ArrayURL, CACert: e.CACert,
		Client: client, ClientID: clientID, KeyFingerprint: fingerprint, Reason: reason, CreatedAt: now.UTC(), NotBefore: notBefore.UTC()}
	if e.Managed != nil {
		c.AdminAPIToken = e.Managed.AdminAPIToken
	}
	return c
}

// storageKey: one entry per config and client name. Neither name can hold
// ':' (GenericNameRegex, the arrays' name rules).
func (c *cleanupEntry) storageKey() string { return cleanupStoragePrefix + c.Config + ":" + c.Client }

// neverDue is the due time of what may not be tried at all.
var neverDue = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// due is when the loop may try c: after its NotBefore (a journal entry
// that no registration of this process runs and that predates it: at once)
// and its backoff (unless force, an operator's tidy).
func (b *backend) due(c *cleanupEntry, force bool) time.Time {
	at := c.NotBefore
	if c.Reason == cleanupRegistration {
		if _, running := b.cleanup.registering.Load(c.storageKey()); running {
			return neverDue // while it runs
		}
		if !c.CreatedAt.After(b.started) {
			at = c.CreatedAt
		}
	}
	if !force && c.NextTry.After(at) {
		at = c.NextTry
	}
	return at
}

// cleanupList is the node's view of the list: cached like configs, dropped
// by every write and by Invalidate, so scrapes and the loop's ticks read
// storage only when the list changed.
type cleanupList struct {
	mu      sync.Mutex
	entries []*cleanupEntry // nil: not loaded
	// gen counts drops: a load that raced one is returned but not kept,
	// so a slow reader cannot put back an entry a write just removed.
	gen uint64
	// drain serialises drains (the loop's and a request's inline one).
	drain sync.Mutex
	// registering holds the journal keys of the registrations this
	// process runs now: their entries are never due.
	registering sync.Map
}

func (l *cleanupList) drop() {
	l.mu.Lock()
	l.entries = nil
	l.gen++
	l.mu.Unlock()
}

// cleanupEntries returns the list, from the cache or storage, sorted.
func (b *backend) cleanupEntries(ctx context.Context, s logical.Storage) ([]*cleanupEntry, error) {
	l := &b.cleanup
	l.mu.Lock()
	cached, gen := l.entries, l.gen
	l.mu.Unlock()
	if cached != nil {
		return cached, nil
	}
	keys, err := s.List(ctx, cleanupStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing the array delete list: %w", err)
	}
	out := make([]*cleanupEntry, 0, len(keys))
	for _, k := range keys {
		e, err := readEntry[cleanupEntry](ctx, s, cleanupStoragePrefix+k, fmt.Sprintf("delete list entry %q", k))
		if err != nil {
			return nil, err
		}
		if e != nil {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].storageKey() < out[j].storageKey() })
	l.mu.Lock()
	if l.gen == gen {
		l.entries = out
	}
	l.mu.Unlock()
	return out, nil
}

// queueCleanup puts entries on the list and wakes the loop.
func (b *backend) queueCleanup(ctx context.Context, s logical.Storage, entries ...*cleanupEntry) error {
	defer b.cleanup.drop()
	for _, c := range entries {
		if err := putEntry(ctx, s, c.storageKey(), fmt.Sprintf("delete list entry for API client %q", c.Client), c); err != nil {
			return err
		}
	}
	b.wakeStaticRefresher()
	return nil
}

func (b *backend) removeCleanup(ctx context.Context, s logical.Storage, c *cleanupEntry) error {
	defer b.cleanup.drop()
	if err := s.Delete(ctx, c.storageKey()); err != nil {
		return fmt.Errorf("removing API client %q from the delete list: %w", c.Client, err)
	}
	return nil
}

// drainCleanup works through every due entry and returns when the next one
// is due (zero: none). It runs on the node that may write: the background
// loop, and a request that wants its clients gone now (config, when not "").
func (b *backend) drainCleanup(ctx context.Context, s logical.Storage, config string) time.Time {
	return b.drain(ctx, s, config, false)
}

// drain is drainCleanup; force tries entries in backoff too (tidy).
func (b *backend) drain(ctx context.Context, s logical.Storage, config string, force bool) time.Time {
	if !b.mayWrite() {
		return time.Time{}
	}
	b.cleanup.drain.Lock()
	defer b.cleanup.drain.Unlock()
	entries, err := b.cleanupEntries(ctx, s)
	if err != nil {
		if ctx.Err() == nil {
			b.Logger().Warn("reading the array delete list failed", "error", err)
		}
		return time.Time{}
	}
	var next time.Time
	for _, c := range entries {
		if ctx.Err() != nil {
			return time.Time{}
		}
		if config != "" && c.Config != config {
			continue
		}
		if due := b.due(c, force); b.now().Before(due) {
			if next.IsZero() || due.Before(next) {
				next = due
			}
			continue
		}
		if retry := b.cleanupOne(ctx, s, c); !retry.IsZero() && (next.IsZero() || retry.Before(next)) {
			next = retry
		}
	}
	return next
}

// cleanupOne makes one attempt at entry c and returns when to try again
// (zero: it is done).
func (b *backend) cleanupOne(ctx context.Context, s logical.Storage, c *cleanupEntry) time.Time {
	cur, err := readConfigEntry(ctx, s, c.Config)
	if err != nil {
		return b.cleanupFailed(ctx, s, c, err)
	}
	// The live client is never deleted, whatever the list says: a journal
	// whose registration was stored after all, or a name a new config took.
	if cur != nil && cur.Managed != nil && cur.Managed.Name == c.Client && cur.ClientID != "" && sameArray(cur, c) {
		if c.Reason != cleanupRegistration {
			b.Logger().Warn("an API client on the delete list is the config's active client; it is kept", "config", c.Config, "api_client", c.Client)
		}
		if err := b.removeCleanup(ctx, s, c); err != nil {
			return b.cleanupFailed(ctx, s, c, err)
		}
		return time.Time{}
	}
	token := c.AdminAPIToken
	if cur != nil && cur.Managed != nil && cur.Managed.AdminAPIToken != "" && sameArray(cur, c) {
		token = cur.Managed.AdminAPIToken // an operator may have replaced it since
	}
	e := &configEntry{Kind: c.Kind, ArrayURL: c.ArrayURL, CACert: c.CACert}
	cctx, cancel := context.WithTimeout(ctx, cleanupCallTimeout)
	defer cancel()
	deleted := false
	err = b.withArrayAdmin(cctx, e, token, func(admin purearray.Admin) error {
		got, err := admin.GetAPIClient(cctx, c.Client)
		switch {
		case err != nil:
			return err
		case got == nil:
			return nil // gone already
		case c.KeyFingerprint != "" && got.PublicKey != "" && !got.HasKey(c.KeyFingerprint):
			b.Logger().Warn("an API client on the delete list now holds another key: it is not Vault's and is left alone",
				"config", c.Config, "api_client", c.Client)
			return nil
		}
		deleted = true
		return admin.DeleteAPIClient(cctx, c.Client)
	})
	if err != nil {
		return b.cleanupFailed(ctx, s, c, err)
	}
	if err := b.removeCleanup(ctx, s, c); err != nil {
		return b.cleanupFailed(ctx, s, c, err)
	}
	if deleted {
		b.metrics.observeClientDeleted(c.Config, c.Reason)
		b.Logger().Info("array API client deleted", "config", c.Config, "api_client", c.Client, "reason", c.Reason, "attempts", c.Attempts+1)
	}
	if c.Reason == cleanupRetired {
		if err := b.markPreviousDeleted(ctx, s, c.Config, c.Client); err != nil {
			b.Logger().Warn("recording a retired client's deletion failed", "config", c.Config, "api_client", c.Client, "error", err)
		}
	}
	return time.Time{}
}

// cleanupFailed records a failed attempt and schedules the next.
func (b *backend) cleanupFailed(ctx context.Context, s logical.Storage, c *cleanupEntry, err error) time.Time {
	if ctx.Err() != nil {
		return time.Time{} // unmounting: the entry stays as it was, for the next start
	}
	next := *c
	next.Attempts++
	next.NextTry = b.now().Add(doublingBackoff(cleanupFirstRetry, cleanupMaxRetry, next.Attempts)).UTC()
	next.LastError = err.Error()
	b.metrics.observeClientDeleteFailure(c.Config)
	b.Logger().Warn("deleting an API client on the array failed; it stays on the delete list", "config", c.Config, "api_client", c.Client,
		"reason", c.Reason, "attempts", next.Attempts, "next_try", next.NextTry.Format(time.RFC3339), "error", err)
	if perr := b.queueCleanup(ctx, s, &next); perr != nil {
		b.Logger().Warn("recording the failed attempt failed", "api_client", c.Client, "error", perr)
	}
	return next.NextTry
}

// sameArray: the config still names the array the entry was made for.
func sameArray(e *configEntry, c *cleanupEntry) bool {
	return e.kindName() == c.Kind && e.ArrayURL == c.ArrayURL
}

// withArrayAdmin runs fn under an admin session at e's array, on a client
// used for this alone, and logs out on every path.
func (b *backend) withArrayAdmin(ctx context.Context, e *configEntry, token string, fn func(purearray.Admin) error) error {
	arr, err := b.dialArrayOnce(e)
	if err != nil {
		return err
	}
	defer closeIdle(arr)
	return purearray.WithAdmin(ctx, arr, token, fn)
}

// drainNow tries config's due entries at once, bounded, outside any lock:
// for a request that wants its clients gone now. Whatever fails stays on the
// list for the loop.
func (b *backend) drainNow(ctx context.Context, s logical.Storage, config string) {
	b.drainBounded(ctx, s, config, false)
}

func (b *backend) drainBounded(ctx context.Context, s logical.Storage, config string, force bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), inlineCleanupTimeout)
	defer cancel()
	stop := context.AfterFunc(b.ctx, cancel) // an unmount ends it too
	defer stop()
	b.drain(ctx, s, config, force)
}

// pendingDeletions describes config's entries for reads; nil when none.
func (b *backend) pendingDeletions(ctx context.Context, s logical.Storage, config string) ([]map[string]interface{}, error) {
	entries, err := b.cleanupEntries(ctx, s)
	if err != nil {
		return nil, err
	}
	var out []map[string]interface{}
	for _, c := range entries {
		if c.Config != config {
			continue
		}
		due := "" // a registration of this process, under way
		if at := b.due(c, false); !at.Equal(neverDue) {
			due = formatTime(at)
		}
		d := map[string]interface{}{"api_client": c.Client, "reason": c.Reason, "due": due, "attempts": c.Attempts}
		if c.LastError != "" {
			d["last_error"] = c.LastError
		}
		out = append(out, d)
	}
	return out, nil
}

// pendingSummary says in one line which of config's clients still wait.
func pendingSummary(p []map[string]interface{}) string {
	var names []string
	for _, d := range p {
		s := fmt.Sprintf("%v (%v", d["api_client"], d["reason"])
		if e, ok := d["last_error"]; ok {
			s += ": " + fmt.Sprint(e)
		}
		names = append(names, s+")")
	}
	return strings.Join(names, ", ")
}

// vaultsFingerprints lists the keys of the clients named client that the
// list holds for config: a client of that name holding one of them is a
// leftover of Vault's own.
func (b *backend) vaultsFingerprints(ctx context.Context, s logical.Storage, config, client string) (map[string]bool, error) {
	entries, err := b.cleanupEntries(ctx, s)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, c := range entries {
		if c.Config == config && c.Client == client && c.KeyFingerprint != "" {
			out[c.KeyFingerprint] = true
		}
	}
	return out, nil
}
