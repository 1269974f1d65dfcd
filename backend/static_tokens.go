package backend

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
)

// staticTokenStoragePrefix holds the shared access token of each static role,
// with its refresh state. It is seal-wrapped like config/: a stored token is a
// live Pure1 credential for hours.
const staticTokenStoragePrefix = "static-tokens/"

const (
	// staticRetryMin and staticRetryMax bound the wait before the next try
	// after a failed refresh, doubling in between. The exchange itself has
	// already retried transient errors for up to a minute by then.
	staticRetryMin = 10 * time.Second
	staticRetryMax = 5 * time.Minute
	// A token is replaced with at least 1/staticMinUsefulShare of its life
	// left: a rotation_period too long for the tokens Pure1 issues is
	// shortened to that, as maxStaticRotationPeriod does for 10-hour tokens.
	staticMinUsefulShare = 10
)

// staticToken is what static-tokens/<role> holds: the token every reader of
// static-creds/<role> gets, and where its refreshing stands.
type staticToken struct {
	layoutVersion

	AccessToken string    `json:"access_token,omitzero"`
	TokenType   string    `json:"token_type,omitzero"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
	Org         string    `json:"org,omitzero"`
	MaxRole     string    `json:"max_role,omitzero"`
	AppID       string    `json:"app_id,omitzero"`
	// Username is the array user whose API token AccessToken is (static
	// api_token roles: the current one of the pair, or the role's user).
	Username string `json:"username,omitzero"`
	// Config and Identity say which config, as it was, issued the token: a
	// config that changed since (a new key, app_id or token_url) makes it due.
	Config        string    `json:"config"`
	Identity      string    `json:"identity,omitzero"`
	LastRefreshed time.Time `json:"last_refreshed,omitzero"`
	NextRefresh   time.Time `json:"next_refresh"`
	// Clamped explains a rotation_period shortened to fit the token's life.
	Clamped string `json:"clamped,omitzero"`
	// Failure state: since when refreshing fails, how often, and Pure1's
	// reason. Cleared by the next success.
	FailingSince time.Time `json:"failing_since,omitzero"`
	LastFailure  time.Time `json:"last_failure,omitzero"`
	Failures     int       `json:"failures,omitzero"`
	LastError    string    `json:"last_error,omitzero"`
	// FailedIdentity is the config state the last failed refresh used: a
	// config fixed since then is tried at once instead of after the backoff.
	FailedIdentity string `json:"failed_identity,omitzero"`
}

// usable reports whether the token may still be handed out at now.
func (t *staticToken) usable(now time.Time) bool {
	return t != nil && t.AccessToken != "" && t.ExpiresAt.Sub(now) > leaseSafetyMargin
}

// identityHash is what a static token records of its config's identity: a
// digest, so storage holds no copy of the URL or key material it names.
func identityHash(c *config) string {
	c.digestOnce.Do(func() {
		sum := sha256.Sum256([]byte(c.identity))
		c.digest = hex.EncodeToString(sum[:16])
	})
	return c.digest
}

func readStaticToken(ctx context.Context, s logical.Storage, name string) (*staticToken, error) {
	return readEntry[staticToken](ctx, s, staticTokenStoragePrefix+name, fmt.Sprintf("the token of static role %q", name))
}

// getStaticToken returns the stored token of a static role from the cache or
// storage; nil if there is none yet.
func (b *backend) getStaticToken(ctx context.Context, s logical.Storage, name string) (*staticToken, error) {
	return cachedLoad(b, b.staticTokens, name, func() (*staticToken, error) { return readStaticToken(ctx, s, name) })
}

// mayWrite reports whether this node may change storage, and so refresh
// static tokens: not a performance standby, not a DR secondary, and not a
// performance secondary unless the mount is local to it. (Plain standbys of
// an HA cluster run no mounts at all.)
func (b *backend) mayWrite() bool {
	st := b.System().ReplicationState()
	if st.HasState(consts.ReplicationPerformanceStandby | consts.ReplicationDRSecondary) {
		return false
	}
	return !st.HasState(consts.ReplicationPerformanceSecondary) || b.System().LocalMount()
}

// errStaticRoleGone ends a refresh whose static role was deleted or pointed
// at another config while the exchange ran: its token belongs to nobody.
var errStaticRoleGone = errors.New("the static role was deleted or changed during the refresh")

// errStaticConfig is a refresh that could not start: the role's config is
// missing or has no app_id yet.
var errStaticConfig = errors.New("the static role's config cannot issue tokens")

// refreshStatic exchanges a new token for the static role and stores it, or
// stores why it failed. Readers and the background refresher that arrive
// while one refresh runs share it: one exchange, however many wait.
func (b *backend) refreshStatic(ctx context.Context, s logical.Storage, name string) (*staticToken, error) {
	role, err := b.getStaticRole(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if role == nil {
		return nil, fmt.Errorf("static role %q: %w", name, errStaticRoleGone)
	}
	cfg, err := b.getConfig(ctx, s, role.Config)
	if err != nil {
		return nil, err
	}
	var cfgErr error
	switch {
	case cfg == nil:
		cfgErr = fmt.Errorf("%w: config %q does not exist", errStaticConfig, role.Config)
	case role.CredentialType == credentialAPIToken && (cfg.entry.Managed == nil || cfg.entry.Managed.AdminAPIToken == ""):
		cfgErr = fmt.Errorf("%w: config %q has no admin_api_token, which makes the role's users and their tokens", errStaticConfig, role.Config)
	case role.CredentialType != credentialAPIToken && !cfg.ready():
		cfgErr = fmt.Errorf("%w: %s", errStaticConfig, cfg.kind.notReady(cfg, ""))
	}
	if cfgErr != nil {
		_, err := b.storeStaticResult(ctx, s, name, role, cfg, nil, "", cfgErr)
		b.metrics.observeStaticRefresh(name, role.Config, cmp.Or(err, cfgErr))
		if err != nil {
			return nil, err
		}
		return nil, cfgErr
	}

	// The flight's role label is static-roles/<name>: no dynamic role's name
	// has a slash, so the two never share a flight or a series.
	_, err = b.flights.do(ctx, flightKey(staticRoleStoragePrefix+name, role.Username, cfg.identity), func(fctx context.Context) (*pure1.AccessToken, error) {
		var (
			tok  *pure1.AccessToken
			xerr error
			user = role.Username
		)
		if role.CredentialType == credentialAPIToken {
			tok, user, xerr = b.rotateStaticAPIToken(fctx, s, name, role, cfg)
		} else {
			tok, xerr = b.exchangeWith(fctx, cfg, role.Username, "static role "+name)
		}
		_, err := b.storeStaticResult(fctx, s, name, role, cfg, tok, user, xerr)
		b.metrics.observeStaticRefresh(name, role.Config, cmp.Or(xerr, err))
		if err != nil {
			return nil, err
		}
		return tok, xerr
	})
	if err != nil {
		return nil, err
	}
	return b.getStaticToken(ctx, s, name)
}

// storeStaticResult records the outcome of one refresh: the new token on
// success; on failure the current token is kept, with since when refreshing
// fails, Pure1's reason and when to try again.
func (b *backend) storeStaticResult(ctx context.Context, s logical.Storage, name string, role *staticRoleEntry, cfg *config, tok *pure1.AccessToken, user string, xerr error) (*staticToken, error) {
	b.writeLock.Lock()
	defer b.writeLock.Unlock()

	// The role may have been deleted, repointed or given another user while
	// Pure1 answered: the token would then belong to nobody.
	cur, err := readStaticRoleEntry(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if cur == nil || !cur.sameToken(role) {
		return nil, errStaticRoleGone
	}
	old, err := readStaticToken(ctx, s, name)
	if err != nil {
		return nil, err
	}
	now := b.now()
	var t staticToken
	if xerr == nil {
		t = staticToken{
			AccessToken:   tok.Token,
			TokenType:     tok.TokenType,
			ExpiresAt:     tok.ExpiresAt,
			Org:           tok.Org,
			MaxRole:       tok.MaxRole,
			AppID:         cfg.clientID,
			Username:      user,
			Config:        cur.Config,
			Identity:      staticIdentity(cur, cfg),
			LastRefreshed: now,
		}
		period := cur.RotationPeriod
		life := tok.ExpiresAt.Sub(now)
		if limit := life - life/staticMinUsefulShare; period > limit {
			t.Clamped = fmt.Sprintf("rotation_period %s is not shorter than the %s that Pure1's tokens live: refreshing every %s instead, so a token handed out keeps at least a tenth of its life; lower rotation_period to silence this",
				cur.RotationPeriod, life.Round(time.Second), limit.Round(time.Second))
			period = limit
		}
		t.NextRefresh = now.Add(period)
	} else {
		if old != nil && old.Config == cur.Config {
			t = *old
		} else {
			t = staticToken{Config: cur.Config}
		}
		if t.FailingSince.IsZero() {
			t.FailingSince = now
		}
		t.Failures++
		t.LastFailure = now
		t.LastError = xerr.Error()
		t.FailedIdentity = ""
		if cfg != nil {
			t.FailedIdentity = staticIdentity(cur, cfg)
		}
		t.NextRefresh = now.Add(doublingBackoff(staticRetryMin, staticRetryMax, t.Failures))
	}
	if err := putEntry(ctx, s, staticTokenStoragePrefix+name, fmt.Sprintf("the token of static role %q", name), &t); err != nil {
		return nil, err
	}
	b.cacheLock.Lock()
	b.staticTokens[name] = &t
	b.gen++
	b.cacheLock.Unlock()
	if xerr != nil {
		b.Logger().Warn("refreshing a static token failed", "static_role", name, "config", cur.Config,
			"failing_since", t.FailingSince.Format(time.RFC3339), "next_try", t.NextRefresh.Format(time.RFC3339), "error", xerr)
	} else {
		b.Logger().Debug("static token refreshed", "static_role", name, "config", cur.Config,
			"expires_at", t.ExpiresAt.Format(time.RFC3339), "next_refresh", t.NextRefresh.Format(time.RFC3339))
	}
	return &t, nil
}

// nextRefresh is when the token is due: as scheduled, or sooner when the
// role's rotation_period has been shortened since.
func (t *staticToken) nextRefresh(role *staticRoleEntry) time.Time {
	if t.Failures == 0 && !t.LastRefreshed.IsZero() {
		if byPeriod := t.LastRefreshed.Add(role.RotationPeriod); byPeriod.Before(t.NextRefresh) {
			return byPeriod
		}
	}
	return t.NextRefresh
}

// staticReadDue is staticDue for a reader: a reader who would otherwise be
// turned away (no valid token) may also try again, once staticRetryMin has
// passed since the last failure, without waiting for the refresher's longer
// backoff.
func staticReadDue(t *staticToken, role *staticRoleEntry, cfg *config, now time.Time) bool {
	return staticDue(t, role, cfg, now) || (!t.usable(now) && now.Sub(t.LastFailure) >= staticRetryMin)
}

// staticDue reports whether the role's token needs a refresh now: there is
// none, its refresh (or, after a failure, its next try) is due, or its config
// changed since it was issued or since the refresh that failed. The schedule
// is set so that a token is replaced before it expires.
func staticDue(t *staticToken, role *staticRoleEntry, cfg *config, now time.Time) bool {
	if t == nil || t.Config != role.Config || !now.Before(t.nextRefresh(role)) {
		return true
	}
	if cfg == nil {
		return false // the refresh would fail again; wait for the next try
	}
	seen := t.Identity
	if t.Failures > 0 {
		seen = t.FailedIdentity
	}
	return seen != staticIdentity(role, cfg)
}

// staticIdentity is what a static role's token depends on: an access
// token on the config's key and client; an array user's API token only on
// the array and the admin token that makes it.
func staticIdentity(role *staticRoleEntry, cfg *config) string {
	if role.CredentialType != credentialAPIToken {
		return identityHash(cfg)
	}
	return cfg.adminDigest
}
