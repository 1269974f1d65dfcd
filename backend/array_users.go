package backend

// Array users that live exactly as long as their Vault lease: a creds read
// of a credential_type=api_token role makes a local user on the array (the
// role's array_role, a random password nobody sees) and gives it an API token
// whose timeout covers the lease, which is what Pure's Ansible collections,
// PowerShell SDK and Python SDK take. Revoking the lease deletes the user,
// and its token with it. Every user Vault makes is recorded in storage before
// it is made, so that tidy (config/NAME/tidy, and the background loop) can
// delete any user with a Vault prefix that no live lease names.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray"
)

// arrayUserStoragePrefix records the users Vault made and the lease each
// belongs to: <config>:<user>.
const arrayUserStoragePrefix = "array-users/"

const (
	fieldAPIToken = "api_token"

	secretArrayUserType = "pure1_array_user"

	// userSuffixLen is the random part of a user name: 10 characters of
	// [a-z0-9], 51 bits, so that concurrent leases never collide.
	userSuffixLen = 10
	// passwordLen: a password nobody types or sees.
	passwordLen = 32
	// maxUserCreates bounds the users being made at once per config: a
	// burst of readers must not exhaust the array's sessions or user limit.
	maxUserCreates = 8
	// minAPITokenLease is the shortest lease of an api_token role.
	minAPITokenLease = time.Minute
	// userTidyGrace is how long past its token's expiry a recorded user may
	// still wait for its lease's revoke before tidy deletes it itself.
	userTidyGrace = 5 * time.Minute
	// userTidyInterval is how often the background loop tidies a config
	// that has api_token roles.
	userTidyInterval = time.Hour
)

// arrayUserEntry records one user Vault made on an array.
type arrayUserEntry struct {
	layoutVersion
	Config    string    `json:"config"`
	Username  string    `json:"username"`
	Role      string    `json:"role,omitempty"`        // the api_token role that made it
	Static    string    `json:"static_role,omitempty"` // or the static role whose pair it is
	ArrayRole string    `json:"array_role"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is its token's expiry: the user outlives no lease past it.
	// Zero for a static role's user, which lives as long as the role.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

func (u *arrayUserEntry) storageKey() string { return userRecordKey(u.Config, u.Username) }

func userRecordKey(config, user string) string { return arrayUserStoragePrefix + config + ":" + user }

func putUserRecord(ctx context.Context, s logical.Storage, u *arrayUserEntry) error {
	return putEntry(ctx, s, u.storageKey(), "array user record", u)
}

// leaveToTidy records u as due for tidy at once: a user Vault could not
// delete now.
func (b *backend) leaveToTidy(ctx context.Context, s logical.Storage, u arrayUserEntry) error {
	u.ExpiresAt = b.now().UTC().Add(-userTidyGrace)
	return putUserRecord(ctx, s, &u)
}

// defaultUserPrefix is vault-<mount>-<role>- in the kind's user names.
func defaultUserPrefix(cfg *configEntry, mount, role string) string {
	wire := purearray.KindNamed(cfg.kindName())
	if wire == nil {
		return ""
	}
	mount = strings.Trim(mount, "/")
	return wire.UserPrefix("vault-"+mount+"-"+role+"-", userSuffixLen)
}

// checkAPITokenRole says what is wrong with an api_token role on cfg.
func checkAPITokenRole(r *roleEntry, cfg *configEntry) string {
	wire := purearray.KindNamed(cfg.kindName())
	switch {
	case wire == nil:
		return fmt.Sprintf("credential_type=api_token needs a flasharray or flashblade config; config %q is a %s", r.Config, cfg.kindName())
	case r.Username != "":
		return "username does not apply to credential_type=api_token: Vault makes a user for each lease (array_role sets its rights)"
	case r.ArrayRole == "":
		return fmt.Sprintf("array_role is required for credential_type=api_token: one of the config's allowed_array_roles (%s)", strings.Join(cfg.allowedArrayRoles(), ", "))
	case !contains(arrayMaxRoles, r.ArrayRole):
		return fmt.Sprintf("array_role %q is not an array role: use one of %s", printable(r.ArrayRole), strings.Join(arrayMaxRoles, ", "))
	case !contains(cfg.allowedArrayRoles(), r.ArrayRole):
		return fmt.Sprintf("array_role %q is not in config %q's allowed_array_roles (%s): allow it there first (vault write <mount>config/%s allowed_array_roles=%s,...)",
			r.ArrayRole, r.Config, strings.Join(cfg.allowedArrayRoles(), ", "), r.Config, r.ArrayRole)
	case r.ReuseAccessToken:
		return "reuse_access_token does not apply to credential_type=api_token: every lease gets a user of its own"
	}
	if len(r.UsernamePrefix)+userSuffixLen > wire.MaxUserName() {
		return fmt.Sprintf("username_prefix %q is too long: a %s user name is at most %d characters, and Vault adds %d", printable(r.UsernamePrefix),
			wire.Product, wire.MaxUserName(), userSuffixLen)
	}
	if err := wire.CheckUserName(fieldUsernamePrefix, r.UsernamePrefix+strings.Repeat("x", userSuffixLen)); err != nil {
		return err.Error()
	}
	return ""
}

// randomString is n characters of alphabet from crypto/rand.
func randomString(n int, alphabet string) (string, error) {
	out := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range out {
		j, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", err
		}
		out[i] = alphabet[j.Int64()]
	}
	return string(out), nil
}

const (
	suffixAlphabet   = "abcdefghijklmnopqrstuvwxyz0123456789"
	passwordAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!%"
)

// issueAPIToken makes a user for one lease and gives it an API token that
// outlives the lease: two array calls under the config's kept admin session.
func (b *backend) issueAPIToken(ctx context.Context, req *logical.Request, roleName string, role *roleEntry, cfg *config) (*logical.Response, error) {
	if msg := checkAPITokenRole(role, &cfg.entry); msg != "" {
		return logical.ErrorResponse("role %q: %s", roleName, msg), nil
	}
	if cfg.entry.Managed == nil || cfg.entry.Managed.AdminAPIToken == "" {
		return logical.ErrorResponse("config %q has no admin_api_token: Vault needs one (of a user who may manage users) to make users for role %q; write it with vault write %sconfig/%s admin_api_token=-",
			cfg.name, roleName, req.MountPoint, cfg.name), nil
	}
	ttl := role.TTL
	if ttl <= 0 {
		ttl = b.System().DefaultLeaseTTL()
	}
	if limit := b.leaseCap(role); limit > 0 && ttl > limit {
		ttl = limit
	}
	if ttl < minAPITokenLease {
		ttl = minAPITokenLease
	}
	// The token outlives the lease by the safety margin: the lease ends,
	// and Vault revokes it, while the token still works.
	tokenLife := ttl + leaseSafetyMargin
	suffix, err := randomString(userSuffixLen, suffixAlphabet)
	if err != nil {
		return nil, err
	}
	password, err := randomString(passwordLen, passwordAlphabet)
	if err != nil {
		return nil, err
	}
	now := b.now().UTC()
	rec := &arrayUserEntry{Config: cfg.name, Username: role.UsernamePrefix + suffix, Role: roleName, ArrayRole: role.ArrayRole,
		CreatedAt: now, ExpiresAt: now.Add(tokenLife)}
	// Recorded first: a user that exists is always one tidy can find.
	if err := putUserRecord(ctx, req.Storage, rec); err != nil {
		return nil, err // logical.ErrReadOnly forwards the read to the active node
	}
	release, err := b.userSlot(ctx, cfg.name)
	if err != nil {
		return nil, err
	}
	defer release()
	var tok *purearray.APIToken
	created := false
	err = b.withSession(ctx, cfg, func(admin purearray.Admin) error {
		if !created {
			if err := admin.CreateUser(ctx, purearray.NewUser{Name: rec.Username, Password: password, Role: role.ArrayRole}); err != nil {
				return err
			}
			created = true
		}
		var err error
		tok, err = admin.CreateAPIToken(ctx, rec.Username, tokenLife)
		return err
	})
	if err != nil {
		b.metrics.observeUserIssue(cfg.name, err)
		b.undoUser(ctx, req.Storage, cfg, rec)
		return userIssueFailure(err, cfg, roleName)
	}
	b.metrics.observeUserIssue(cfg.name, nil)
	expiresAt := rec.ExpiresAt
	if !tok.ExpiresAt.IsZero() {
		expiresAt = tok.ExpiresAt
	}
	lease := expiresAt.Sub(b.now()) - leaseSafetyMargin
	if lease > ttl {
		lease = ttl
	}
	resp := b.Secret(secretArrayUserType).Response(map[string]interface{}{
		fieldAPIToken:  tok.Token,
		fieldUsername:  rec.Username,
		fieldArrayURL:  cfg.entry.ArrayURL,
		fieldArrayRole: rec.ArrayRole,
		fieldExpiresAt: expiresAt.Format(time.RFC3339),
	}, map[string]interface{}{
		"role":              roleName,
		fieldConfig:         cfg.name,
		fieldUsername:       rec.Username,
		fieldCredentialType: credentialAPIToken,
	})
	setLease(resp, lease)
	return resp, nil
}

// undoUser deletes a user made for a lease that then failed; what cannot be
// deleted now stays recorded, due for tidy at once.
func (b *backend) undoUser(ctx context.Context, s logical.Storage, cfg *config, rec *arrayUserEntry) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
	defer cancel()
	stop := context.AfterFunc(b.ctx, cancel)
	defer stop()
	// Deleted even when the create seemed to fail: one whose answer was
	// lost may have made the user.
	if err := b.withSession(ctx, cfg, func(admin purearray.Admin) error { return admin.DeleteUser(ctx, rec.Username) }); err != nil {
		if perr := b.leaveToTidy(ctx, s, *rec); perr != nil {
			b.Logger().Warn("recording a half-made array user failed; tidy finds it by its prefix", "config", cfg.name, "user", rec.Username, "error", perr)
		}
		b.Logger().Warn("a half-made array user could not be deleted; tidy deletes it", "config", cfg.name, "user", rec.Username, "error", err)
		return
	}
	if err := s.Delete(ctx, rec.storageKey()); err != nil {
		b.Logger().Warn("forgetting a deleted array user failed", "config", cfg.name, "user", rec.Username, "error", err)
	}
}

// userIssueFailure explains a user that could not be made: the array's
// refusal (the user limit named) as 400, an outage as 502.
func userIssueFailure(err error, cfg *config, role string) (*logical.Response, error) {
	var api *pure1.APIError
	if errors.As(err, &api) && api.StatusCode == http.StatusBadRequest && userLimit(api.Description) {
		return logical.ErrorResponse("the %s at %s has as many users as it takes (%s): revoke leases of role %q (vault lease revoke -prefix <mount>creds/%s), lower its ttl, or tidy the config",
			cfg.kind.Name(), cfg.entry.ArrayURL, sentence(api), role, role), nil
	}
	switch {
	case errors.Is(err, pure1.ErrRejected):
		return logical.ErrorResponse("the %s at %s refused to make a user for role %q: %s. Check that admin_api_token's user may manage users",
			cfg.kind.Name(), cfg.entry.ArrayURL, role, sentence(err)), nil
	case isContextErr(err) && !errors.Is(err, pure1.ErrUnavailable):
		return nil, err
	}
	return nil, logical.CodedError(http.StatusBadGateway, fmt.Sprintf("making a user for role %q at %s failed: %s; nothing was left on the array, try again",
		role, cfg.entry.ArrayURL, sentence(err)))
}

// userLimit reports whether an array's refusal says it holds as many local
// users as it takes. Pure's code fixes no wording; arrays say "limit" or
// "maximum".
func userLimit(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "limit") || strings.Contains(m, "maximum")
}

// secretArrayUser is the lease of an api_token role: revoking it deletes the
// user at the array.
func secretArrayUser(b *backend) *framework.Secret {
	return &framework.Secret{
		Type: secretArrayUserType,
		Fields: map[string]*framework.FieldSchema{
			fieldAPIToken:  {Type: framework.TypeString, Description: "The array user's API token."},
			fieldUsername:  {Type: framework.TypeString, Description: "The array user Vault made for this lease."},
			fieldArrayURL:  {Type: framework.TypeString, Description: "The array."},
			fieldExpiresAt: {Type: framework.TypeString, Description: "When the API token expires (RFC 3339); the lease ends before."},
		},
		Renew:  b.secretArrayUserRenew,
		Revoke: b.secretArrayUserRevoke,
	}
}

func (b *backend) secretArrayUserRenew(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	return logical.ErrorResponse("an array API token's lifetime is fixed when it is made: read creds/<role> again for a new one"), nil
}

// secretArrayUserRevoke deletes the lease's user. An error makes Vault's
// lease manager try again later: the user is gone once the array is back.
func (b *backend) secretArrayUserRevoke(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	config, _ := req.Secret.InternalData[fieldConfig].(string)
	user, _ := req.Secret.InternalData[fieldUsername].(string)
	if config == "" || user == "" {
		return nil, nil
	}
	cfg, err := b.getConfig(ctx, req.Storage, config)
	if err != nil {
		return nil, err
	}
	if cfg != nil && cfg.entry.Managed != nil {
		err := b.withSession(ctx, cfg, func(admin purearray.Admin) error { return admin.DeleteUser(ctx, user) })
		if err != nil {
			b.metrics.observeUserRevoke(config, err)
			b.Logger().Warn("revoking a lease: the array did not delete its user; Vault retries the revoke", "config", config, "user", user, "error", err)
			return nil, fmt.Errorf("deleting array user %q of config %q: %w", user, config, err)
		}
	}
	b.metrics.observeUserRevoke(config, nil)
	if err := req.Storage.Delete(ctx, userRecordKey(config, user)); err != nil {
		return nil, err
	}
	return nil, nil
}

// userSlot waits for one of the config's slots for making users.
func (b *backend) userSlot(ctx context.Context, config string) (func(), error) {
	b.userSlotsLock.Lock()
	ch, ok := b.userSlots[config]
	if !ok {
		ch = make(chan struct{}, maxUserCreates)
		b.userSlots[config] = ch
	}
	b.userSlotsLock.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.ctx.Done():
		return nil, fmt.Errorf("%w: this mount is being unmounted or reloaded", pure1.ErrUnavailable)
	}
}

// ---- kept admin sessions ------------------------------------------------------

// adminSessions keeps one logged-in admin session per config, reused by
// every user made and deleted: a lease costs the array no login.
type adminSessions struct {
	mu sync.Mutex
	m  map[string]*keptSession
}

type keptSession struct {
	mu    sync.Mutex
	key   string // the array, CA and admin token it was opened with
	arr   purearray.Array
	admin purearray.Admin
}

// withSession runs fn under config cfg's kept session, logging in when
// there is none (or the config's array or token changed) and once more when
// the array answers 401 (the session timed out at the array).
func (b *backend) withSession(ctx context.Context, cfg *config, fn func(purearray.Admin) error) error {
	e := &cfg.entry
	if e.Managed == nil || e.Managed.AdminAPIToken == "" {
		return fmt.Errorf("config %q has no admin_api_token", cfg.name)
	}
	// The session belongs to the array, its CA and the admin token: when
	// any changes, the next call logs in again (hashed once per config).
	key := cfg.adminDigest
	b.sessions.mu.Lock()
	if b.sessions.m == nil {
		b.sessions.m = map[string]*keptSession{}
	}
	ks, ok := b.sessions.m[cfg.name]
	if !ok {
		ks = &keptSession{}
		b.sessions.m[cfg.name] = ks
	}
	b.sessions.mu.Unlock()

	get := func(stale purearray.Admin) (purearray.Admin, error) {
		ks.mu.Lock()
		defer ks.mu.Unlock()
		if ks.admin != nil && ks.key == key && ks.admin != stale {
			return ks.admin, nil
		}
		ks.logout()
		arr, err := b.dialArrayOnce(e)
		if err != nil {
			return nil, err
		}
		admin, err := arr.Admin(ctx, e.Managed.AdminAPIToken)
		if err != nil {
			closeIdle(arr)
			return nil, err
		}
		b.metrics.observeAdminLogin(cfg.name)
		ks.key, ks.arr, ks.admin = key, arr, admin
		return admin, nil
	}
	admin, err := get(nil)
	if err != nil {
		return err
	}
	err = fn(admin)
	var ce *purearray.CallError
	if errors.As(err, &ce) && ce.StatusCode() == http.StatusUnauthorized {
		if admin, err = get(admin); err != nil {
			return err
		}
		err = fn(admin)
	}
	return err
}

// logout ends a kept session, bounded; ks.mu is held.
func (ks *keptSession) logout() {
	if ks.admin == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = ks.admin.Logout(ctx)
	closeIdle(ks.arr)
	ks.admin, ks.arr, ks.key = nil, nil, ""
}

// dropSession logs out config name's kept session (its config changed or
// went, or the mount ends).
func (b *backend) dropSession(name string) {
	b.sessions.mu.Lock()
	ks := b.sessions.m[name]
	delete(b.sessions.m, name)
	b.sessions.mu.Unlock()
	if ks != nil {
		ks.mu.Lock()
		ks.logout()
		ks.mu.Unlock()
	}
}

// closeSessions logs out every kept session, together (Clean).
func (b *backend) closeSessions() {
	b.sessions.mu.Lock()
	names := make([]string, 0, len(b.sessions.m))
	for n := range b.sessions.m {
		names = append(names, n)
	}
	b.sessions.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Add(1)
		go func(n string) { defer wg.Done(); b.dropSession(n) }(n)
	}
	wg.Wait()
}

// ---- tidy -----------------------------------------------------------------------

// userRecords lists config's recorded users.
func (b *backend) userRecords(ctx context.Context, s logical.Storage, config string) ([]*arrayUserEntry, error) {
	keys, err := s.List(ctx, arrayUserStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing array user records: %w", err)
	}
	var out []*arrayUserEntry
	for _, k := range keys {
		if !strings.HasPrefix(k, config+":") {
			continue
		}
		u, err := readEntry[arrayUserEntry](ctx, s, arrayUserStoragePrefix+k, "array user record "+k)
		if err != nil {
			return nil, err
		}
		if u != nil {
			out = append(out, u)
		}
	}
	return out, nil
}

// userPrefixes are the name prefixes of the users Vault makes on config:
// its api_token roles' and static roles'.
func (b *backend) userPrefixes(ctx context.Context, s logical.Storage, config string) ([]string, error) {
	roles, err := s.List(ctx, roleStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing roles: %w", err)
	}
	var out []string
	for _, r := range roles {
		e, err := b.getRole(ctx, s, r)
		if err != nil {
			return nil, err
		}
		if e != nil && e.Config == config && e.CredentialType == credentialAPIToken && e.UsernamePrefix != "" {
			out = append(out, e.UsernamePrefix)
		}
	}
	statics, err := s.List(ctx, staticRoleStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing static roles: %w", err)
	}
	for _, r := range statics {
		e, err := b.getStaticRole(ctx, s, r)
		if err != nil {
			return nil, err
		}
		if e != nil && e.Config == config && e.CredentialType == credentialAPIToken && e.PairPrefix != "" {
			out = append(out, e.PairPrefix)
		}
	}
	sort.Strings(out)
	return out, nil
}

// tidyUsers deletes config's users that no live lease names: recorded users
// whose token expired (a revoke that never came) and users with a Vault
// prefix that no record names (a crash between create and record: never, by
// the order of the writes, but also users of a deleted role). It returns
// how many it deleted and what failed.
func (b *backend) tidyUsers(ctx context.Context, s logical.Storage, config string) (int, error) {
	cfg, err := b.getConfig(ctx, s, config)
	if err != nil || cfg == nil || cfg.entry.Managed == nil || cfg.entry.Managed.AdminAPIToken == "" {
		return 0, err
	}
	records, err := b.userRecords(ctx, s, config)
	if err != nil {
		return 0, err
	}
	prefixes, err := b.userPrefixes(ctx, s, config)
	if err != nil {
		return 0, err
	}
	if len(records) == 0 && len(prefixes) == 0 {
		return 0, nil // no user of Vault's can be there: no session opened
	}
	now := b.now()
	live := map[string]bool{}
	expired := map[string]*arrayUserEntry{}
	for _, r := range records {
		if r.ExpiresAt.IsZero() || now.Before(r.ExpiresAt.Add(userTidyGrace)) {
			live[r.Username] = true
		} else {
			expired[r.Username] = r
		}
	}
	deleted := 0
	err = b.withSession(ctx, cfg, func(admin purearray.Admin) error {
		users, err := admin.ListUsers(ctx)
		if err != nil {
			return err
		}
		var errs []error
		for _, u := range users {
			if live[u.Name] || !(expired[u.Name] != nil || hasAnyPrefix(u.Name, prefixes)) {
				continue
			}
			if expired[u.Name] == nil {
				// A lease made since the records were read has one by
				// now: its record is written before its user is made.
				rec, err := readEntry[arrayUserEntry](ctx, s, userRecordKey(config, u.Name), "array user record "+u.Name)
				if err != nil {
					errs = append(errs, err)
				}
				if err != nil || rec != nil {
					continue
				}
			}
			if err := admin.DeleteUser(ctx, u.Name); err != nil {
				errs = append(errs, err)
				continue
			}
			deleted++
			b.Logger().Info("tidy: deleted an array user no lease names", "config", config, "user", u.Name)
		}
		return errors.Join(errs...)
	})
	if err == nil {
		for _, r := range expired {
			if derr := s.Delete(ctx, r.storageKey()); derr != nil {
				err = derr
			}
		}
	}
	if deleted > 0 {
		b.metrics.observeUsersTidied(config, deleted)
	}
	return deleted, err
}

func hasAnyPrefix(name string, prefixes []string) bool {
	for _, p := range prefixes {
		if p != "" && strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// tidyDueUsers tidies, on the node that may write, each config with users
// Vault makes once per userTidyInterval, and returns when next.
func (b *backend) tidyDueUsers(ctx context.Context, s logical.Storage) time.Time {
	if !b.mayWrite() {
		return time.Time{}
	}
	keys, err := s.List(ctx, arrayUserStoragePrefix)
	if err != nil || len(keys) == 0 {
		return time.Time{}
	}
	configs := map[string]bool{}
	for _, k := range keys {
		if c, _, ok := strings.Cut(k, ":"); ok {
			configs[c] = true
		}
	}
	now := b.now()
	var next time.Time
	for c := range configs {
		if ctx.Err() != nil {
			return time.Time{}
		}
		b.userTidyLock.Lock()
		due := b.userTidied[c].Add(userTidyInterval)
		b.userTidyLock.Unlock()
		if !now.Before(due) {
			if _, err := b.tidyUsers(ctx, s, c); err != nil && ctx.Err() == nil {
				b.Logger().Warn("tidying array users failed; tried again later", "config", c, "error", err)
			}
			b.userTidyLock.Lock()
			b.userTidied[c] = now
			b.userTidyLock.Unlock()
			due = now.Add(userTidyInterval)
		}
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	return next
}

// deleteRoleUsers deletes the users of a deleted api_token role's leases.
// It returns a warning when some are left for tidy.
func (b *backend) deleteRoleUsers(ctx context.Context, s logical.Storage, name string, role *roleEntry) string {
	cfg, err := b.getConfig(ctx, s, role.Config)
	if err != nil || cfg == nil || cfg.entry.Managed == nil {
		return ""
	}
	records, err := b.userRecords(ctx, s, role.Config)
	if err != nil {
		return err.Error()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), inlineCleanupTimeout)
	defer cancel()
	left := 0
	for _, r := range records {
		if r.Role != name {
			continue
		}
		err := b.withSession(ctx, cfg, func(admin purearray.Admin) error { return admin.DeleteUser(ctx, r.Username) })
		if err == nil {
			err = s.Delete(ctx, r.storageKey())
			b.metrics.observeUserRevoke(role.Config, nil)
		}
		if err != nil {
			left++
			_ = b.leaveToTidy(ctx, s, *r)
		}
	}
	if left > 0 {
		return fmt.Sprintf("%d array users of role %q could not be deleted now: tidy deletes them (vault write -f <mount>config/%s/tidy)", left, name, role.Config)
	}
	return ""
}
