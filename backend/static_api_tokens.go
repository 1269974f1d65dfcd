package backend

// Static API-token roles: one array API token shared by every reader of
// static-creds/<name>, kept fresh without a gap. A Purity user holds one API
// token at a time, so replacing a user's token always breaks its holders.
// Vault therefore keeps a pair of users for the role (<prefix>a and
// <prefix>b) and alternates: at each rotation_period the idle user gets a
// fresh token, which lives two periods, and becomes current; the token
// readers already hold stays valid a whole period after it is replaced.
// With username=<an existing user>, Vault replaces that user's token in
// place instead, and says that holders of the old token lose it at once.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray"
)

const (
	fieldPairUsers   = "pair_users"
	fieldCurrentUser = "current_user"
	// maxStaticAPITokenPeriod: an API token may live long; a week between
	// rotations (two for a token) is as far as a shared secret should go.
	maxStaticAPITokenPeriod = 7 * 24 * time.Hour
	// staticTokenTypeAPI is the token_type a static api_token role shows.
	staticTokenTypeAPI = "api_token"
)

// pairUsers are the two users a static api_token role alternates.
func (r *staticRoleEntry) pairUsers() []string {
	if r.PairPrefix == "" {
		return nil
	}
	return []string{r.PairPrefix + "a", r.PairPrefix + "b"}
}

// checkStaticAPITokenRole says what is wrong with a static api_token role
// on cfg, filling in the pair's prefix.
func (b *backend) checkStaticAPITokenRole(r *staticRoleEntry, cfg *configEntry, mount, name string) string {
	wire := purearray.KindNamed(cfg.kindName())
	if wire == nil {
		return fmt.Sprintf("credential_type=api_token needs a flasharray or flashblade config; config %q is a %s", r.Config, cfg.kindName())
	}
	if r.Username != "" {
		if r.ArrayRole != "" {
			return "array_role applies to Vault's pair of users; with username the token carries that user's own role: remove array_role"
		}
		if err := wire.CheckUserName(fieldUsername, r.Username); err != nil {
			return err.Error()
		}
		r.PairPrefix = ""
		return ""
	}
	switch {
	case r.ArrayRole == "":
		return fmt.Sprintf("array_role is required for credential_type=api_token: one of the config's allowed_array_roles (%s), or name an existing user with username", strings.Join(cfg.allowedArrayRoles(), ", "))
	case !contains(cfg.allowedArrayRoles(), r.ArrayRole):
		return fmt.Sprintf("array_role %q is not in config %q's allowed_array_roles (%s): allow it there first", printable(r.ArrayRole), r.Config, strings.Join(cfg.allowedArrayRoles(), ", "))
	}
	if r.PairPrefix == "" {
		r.PairPrefix = wire.UserPrefix("vault-"+strings.Trim(mount, "/")+"-static-"+name+"-", 1)
	}
	return ""
}

// rotateStaticAPIToken gives the role's next user a fresh token: the idle
// one of the pair, or the role's own user in place. It returns the token as
// a static token stores it, and whose it is.
func (b *backend) rotateStaticAPIToken(ctx context.Context, s logical.Storage, name string, role *staticRoleEntry, cfg *config) (*pure1.AccessToken, string, error) {
	cur, err := b.getStaticToken(ctx, s, name)
	if err != nil {
		return nil, "", err
	}
	user := role.Username
	if users := role.pairUsers(); users != nil {
		user = users[0]
		if cur != nil && cur.Username == users[0] && cur.Config == role.Config {
			user = users[1]
		}
	}
	// Two periods: the token stays valid a whole period after the next
	// rotation replaces it, for whoever read it last.
	life := 2 * role.RotationPeriod
	var tok *purearray.APIToken
	err = b.withSession(ctx, cfg, func(admin purearray.Admin) error {
		if role.PairPrefix != "" {
			users, err := admin.ListUsers(ctx)
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(users, func(u purearray.User) bool { return u.Name == user }) {
				password, err := randomString(passwordLen, passwordAlphabet)
				if err != nil {
					return err
				}
				rec := &arrayUserEntry{Config: role.Config, Username: user, Static: name, ArrayRole: role.ArrayRole, CreatedAt: b.now().UTC()}
				if err := putUserRecord(ctx, s, rec); err != nil {
					return err
				}
				if err := admin.CreateUser(ctx, purearray.NewUser{Name: user, Password: password, Role: role.ArrayRole}); err != nil {
					return err
				}
				b.metrics.observeUserIssue(role.Config, nil)
			}
		}
		// One token per user: the old one goes first (Pure's Ansible
		// modules do the same).
		if err := admin.DeleteAPIToken(ctx, user); err != nil {
			return err
		}
		var err error
		tok, err = admin.CreateAPIToken(ctx, user, life)
		return err
	})
	if err != nil {
		return nil, user, err
	}
	expires := tok.ExpiresAt
	if expires.IsZero() {
		expires = b.now().Add(life).UTC()
	}
	return &pure1.AccessToken{Token: tok.Token, TokenType: staticTokenTypeAPI, ExpiresAt: expires, ExpiresIn: life}, user, nil
}

// releaseStaticUsers deletes what a static api_token role made on the array
// (its pair of users; an operator's user keeps existing, without Vault's
// token) when the role is deleted or changed. What the array does not take
// now, tidy deletes later; the warnings say so.
func (b *backend) releaseStaticUsers(ctx context.Context, s logical.Storage, name string, old *staticRoleEntry) []string {
	cfg, err := b.getConfig(ctx, s, old.Config)
	if err != nil || cfg == nil || cfg.entry.Managed == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), inlineCleanupTimeout)
	defer cancel()
	// The pair's records expire first: whatever the array does not take
	// now, tidy deletes by them once the role (and its prefix) is gone.
	for _, u := range old.pairUsers() {
		rec := arrayUserEntry{Config: old.Config, Username: u, Static: name, ArrayRole: old.ArrayRole, CreatedAt: b.now().UTC()}
		if err := b.leaveToTidy(ctx, s, rec); err != nil {
			return []string{fmt.Sprintf("recording the users of static role %q for deletion failed (%v): delete %s on the array", name, err, strings.Join(old.pairUsers(), ", "))}
		}
	}
	var warnings []string
	err = b.withSession(ctx, cfg, func(admin purearray.Admin) error {
		if old.Username != "" {
			return admin.DeleteAPIToken(ctx, old.Username)
		}
		for _, u := range old.pairUsers() {
			if err := admin.DeleteUser(ctx, u); err != nil {
				return err
			}
			if err := s.Delete(ctx, userRecordKey(old.Config, u)); err != nil {
				return err
			}
			b.metrics.observeUserRevoke(old.Config, nil)
		}
		return nil
	})
	if err != nil {
		warnings = append(warnings, fmt.Sprintf("the array users of static role %q could not all be deleted now (%v): tidy deletes them (vault write -f <mount>config/%s/tidy)",
			name, err, old.Config))
	}
	return warnings
}
