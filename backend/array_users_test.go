package backend

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// apiTokenEnv is a managed FlashArray config that allows storage_admin, and
// an api_token role on it.
func apiTokenEnv(t *testing.T) (*testEnv, *fakeArray) {
	t.Helper()
	env, fa := newArrayEnv(t, envOptions{})
	env.mustWrite("config/fa", managedArrayConfig(map[string]interface{}{fieldAllowedArrayRoles: "readonly,storage_admin"}))
	env.mustWrite("roles/ansible", map[string]interface{}{fieldConfig: "fa", fieldCredentialType: credentialAPIToken,
		fieldArrayRole: "storage_admin", fieldTTL: "1h"})
	return env, fa
}

func (e *testEnv) revoke(t *testing.T, resp *logical.Response) error {
	t.Helper()
	_, err := e.b.HandleRequest(e.ctx, &logical.Request{Operation: logical.RevokeOperation, Storage: e.storage, Secret: resp.Secret})
	return err
}

// A lease's user: made with the role's array role and a token outliving the
// lease, named with the role's prefix; revoking the lease deletes it. Two
// array calls make it, one deletes it, and the session is kept.
func TestAPITokenLeaseLifecycle(t *testing.T) {
	env, fa := apiTokenEnv(t)
	if got := env.mustRead("roles/ansible").Data[fieldUsernamePrefix]; got != "vault-pure1-ansible-" {
		t.Errorf("username_prefix = %v", got)
	}
	resp := env.mustRead("creds/ansible")
	user := dataString(t, resp, fieldUsername)
	tok := dataString(t, resp, fieldAPIToken)
	if !strings.HasPrefix(user, "vault-pure1-ansible-") || len(user) != len("vault-pure1-ansible-")+userSuffixLen {
		t.Errorf("username %q", user)
	}
	if got, ok := fa.validToken(tok); !ok || got != user {
		t.Fatalf("the token %q is not %s's live token on the array", tok, user)
	}
	fa.mu.Lock()
	role := fa.users[user].role
	fa.mu.Unlock()
	if role != "storage_admin" {
		t.Errorf("the user's role is %q", role)
	}
	expires, err := time.Parse(time.RFC3339, dataString(t, resp, fieldExpiresAt))
	if err != nil {
		t.Fatal(err)
	}
	if lease := resp.Secret.TTL; lease != time.Hour || env.clock.Now().Add(lease).After(expires.Add(-leaseSafetyMargin)) {
		t.Errorf("lease %s ends %s, token expires %s: the lease must end first", lease, env.clock.Now().Add(lease), expires)
	}
	if resp.Secret.Renewable {
		t.Error("an API token lease is renewable")
	}
	if got := dataString(t, resp, fieldArrayURL); got != testArrayURL {
		t.Errorf("array_url %q", got)
	}
	if err := env.revoke(t, resp); err != nil {
		t.Fatal(err)
	}
	if _, ok := fa.validToken(tok); ok || len(fa.userNames("vault-")) != 0 {
		t.Errorf("after revoke: token valid %v, users %v", ok, fa.userNames("vault-"))
	}
	fa.mu.Lock()
	calls := map[string]int{}
	for k, v := range fa.calls {
		calls[k] = v
	}
	fa.mu.Unlock()
	if calls["user-create"]+calls["token-create"]+calls["user-delete"] != 3 {
		t.Errorf("array calls for one lease: %v, want user-create, token-create, user-delete", calls)
	}
	if keys, _ := env.inmem.List(env.ctx, arrayUserStoragePrefix); len(keys) != 0 {
		t.Errorf("records after revoke: %v", keys)
	}
}

// 200 leases over 8 readers and their revokes: no user left, at most three
// array calls per lease, one login for all of them.
func TestAPITokenBurst(t *testing.T) {
	env, fa := apiTokenEnv(t)
	loginsBefore := func() int { fa.mu.Lock(); defer fa.mu.Unlock(); return fa.logins }()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				resp, err := env.read("creds/ansible")
				if err != nil || resp.IsError() {
					errs <- fmt.Errorf("read: %v %v", resp, err)
					continue
				}
				if err := env.revoke(t, resp); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	fa.mu.Lock()
	calls := fa.calls["user-create"] + fa.calls["token-create"] + fa.calls["user-delete"]
	logins := fa.logins - loginsBefore
	fa.mu.Unlock()
	if left := fa.userNames("vault-"); len(left) != 0 {
		t.Errorf("%d users left: %v", len(left), left)
	}
	if calls > 3*200 || logins > 1 {
		t.Errorf("%d array calls for 200 leases (want at most 600), %d logins (want 1)", calls, logins)
	}
}

// A revoke the array cannot take now is an error (Vault's lease manager
// retries it); the retry, once the array is back, deletes the user.
func TestAPITokenRevokeRetried(t *testing.T) {
	env, fa := apiTokenEnv(t)
	resp := env.mustRead("creds/ansible")
	user := dataString(t, resp, fieldUsername)
	fa.setFail("user-delete", errFakeDropped)
	if err := env.revoke(t, resp); err == nil {
		t.Fatal("a revoke the array did not take returned no error: Vault would not retry it")
	}
	if got := fa.userNames(user); len(got) != 1 {
		t.Fatalf("the user went although the delete failed: %v", got)
	}
	fa.setFail("user-delete", nil)
	if err := env.revoke(t, resp); err != nil {
		t.Fatal(err)
	}
	if got := fa.userNames(user); len(got) != 0 {
		t.Errorf("users after the retried revoke: %v", got)
	}
	if v := counterValue(t, env, "pure1_array_user_revoke_failures_total", "fa"); v != 1 {
		t.Errorf("pure1_array_user_revoke_failures_total = %v", v)
	}
}

// A lease whose token cannot be made deletes the user it made; one whose
// user cannot be deleted either leaves a record tidy acts on.
func TestAPITokenHalfMade(t *testing.T) {
	env, fa := apiTokenEnv(t)
	fa.setFail("token-create", errFakeStep)
	if resp, err := env.read("creds/ansible"); err == nil && !resp.IsError() {
		t.Fatal("a lease without a token was issued")
	}
	if left := fa.userNames("vault-"); len(left) != 0 {
		t.Errorf("users after a failed issue: %v", left)
	}
	fa.setFail("user-delete", errFakeDropped)
	env.read("creds/ansible")
	if left := fa.userNames("vault-"); len(left) != 1 {
		t.Fatalf("users when the undo failed too: %v", left)
	}
	fa.setFail("token-create", nil)
	fa.setFail("user-delete", nil)
	resp := env.mustWrite("config/fa/tidy", nil)
	if resp.Data[fieldUsersDeleted] != 1 {
		t.Errorf("tidy deleted %v users", resp.Data[fieldUsersDeleted])
	}
	if left := fa.userNames("vault-"); len(left) != 0 {
		t.Errorf("users after tidy: %v", left)
	}
}

// tidy deletes users no live lease names: a recorded user past its token's
// expiry (a revoke that never came), a user with a Vault prefix and no
// record; it keeps live leases' users and users not Vault's.
func TestAPITokenTidy(t *testing.T) {
	env, fa := apiTokenEnv(t)
	env.mustRead("creds/ansible")
	env.clock.Add(2 * time.Hour)
	stale := dataString(t, env.mustRead("creds/ansible"), fieldUsername)
	env.clock.Add(50 * time.Minute)
	fa.mu.Lock()
	fa.users["vault-pure1-ansible-orphan0000"] = &fakeUser{role: "readonly"}
	fa.users["someone-else"] = &fakeUser{role: "readonly"}
	fa.mu.Unlock()
	env.clock.Add(20 * time.Minute) // the second lease's token has expired too, past the grace: the first's long ago
	resp := env.mustWrite("config/fa/tidy", nil)
	if resp.Data[fieldUsersDeleted] != 3 {
		t.Errorf("tidy deleted %v, want the two expired leases' users and the orphan", resp.Data[fieldUsersDeleted])
	}
	if got := fa.userNames(""); fmt.Sprint(got) != "[ops pureuser someone-else]" {
		t.Errorf("users after tidy: %v (stale %s)", got, stale)
	}
	fresh := dataString(t, env.mustRead("creds/ansible"), fieldUsername)
	env.mustWrite("config/fa/tidy", nil)
	if got := fa.userNames(fresh); len(got) != 1 {
		t.Errorf("tidy deleted a live lease's user")
	}
}

// listHook runs before every List of its storage: what another
// request does meanwhile.
type listHook struct {
	logical.Storage
	before func(prefix string)
}

func (h listHook) List(ctx context.Context, prefix string) ([]string, error) {
	h.before(prefix)
	return h.Storage.List(ctx, prefix)
}

// A lease made while tidy runs, after tidy read the records and before it
// listed the array's users, keeps its user.
func TestAPITokenTidyRacesALease(t *testing.T) {
	env, fa := apiTokenEnv(t)
	fresh := ""
	s := listHook{Storage: env.storage, before: func(prefix string) {
		if prefix == roleStoragePrefix && fresh == "" {
			fresh = dataString(t, env.mustRead("creds/ansible"), fieldUsername)
		}
	}}
	if _, err := env.b.tidyUsers(env.ctx, s, "fa"); err != nil {
		t.Fatal(err)
	}
	if fresh == "" {
		t.Fatal("tidy listed no roles: the lease was not made while it ran")
	}
	if got := fa.userNames(fresh); len(got) != 1 {
		t.Errorf("tidy deleted the user of a lease made while it ran")
	}
}

// The array's user limit is said as such, with what to do.
func TestAPITokenUserLimit(t *testing.T) {
	env, fa := apiTokenEnv(t)
	fa.mu.Lock()
	fa.maxUsers = len(fa.users)
	fa.mu.Unlock()
	resp, err := env.read("creds/ansible")
	if msg := errorText(resp, err); !strings.Contains(msg, "as many users as it takes") || !strings.Contains(msg, "vault lease revoke -prefix") {
		t.Errorf("at the user limit: %q", msg)
	}
}

// Deleting the role deletes its leases' users.
func TestAPITokenRoleDelete(t *testing.T) {
	env, fa := apiTokenEnv(t)
	for i := 0; i < 3; i++ {
		env.mustRead("creds/ansible")
	}
	env.mustDelete("roles/ansible")
	if left := fa.userNames("vault-"); len(left) != 0 {
		t.Errorf("users of a deleted role: %v", left)
	}
}

// Role writes: the fields an api_token role takes, and what it refuses.
func TestAPITokenRoleRefusals(t *testing.T) {
	env, _ := apiTokenEnv(t)
	env.mustWrite("config/p", map[string]interface{}{fieldGenerateKey: true})
	for _, tc := range []struct {
		data map[string]interface{}
		want string
	}{
		{map[string]interface{}{fieldConfig: "fa", fieldCredentialType: credentialAPIToken}, "array_role is required"},
		{map[string]interface{}{fieldConfig: "fa", fieldCredentialType: credentialAPIToken, fieldArrayRole: "array_admin"}, "not in config \"fa\"'s allowed_array_roles"},
		{map[string]interface{}{fieldConfig: "fa", fieldCredentialType: credentialAPIToken, fieldArrayRole: "root"}, "not an array role"},
		{map[string]interface{}{fieldConfig: "fa", fieldCredentialType: credentialAPIToken, fieldArrayRole: "readonly", fieldUsername: "ops"}, "username does not apply"},
		{map[string]interface{}{fieldConfig: "p", fieldCredentialType: credentialAPIToken, fieldArrayRole: "readonly"}, "needs a flasharray or flashblade config"},
		{map[string]interface{}{fieldConfig: "fa", fieldArrayRole: "readonly"}, "apply only to credential_type=api_token"},
		{map[string]interface{}{fieldConfig: "fa", fieldCredentialType: credentialAPIToken, fieldArrayRole: "readonly", fieldUsernamePrefix: strings.Repeat("x", 30)}, "too long"},
	} {
		before := env.snapshot()
		resp, err := env.write("roles/r", tc.data)
		if msg := errorText(resp, err); !strings.Contains(msg, tc.want) {
			t.Errorf("%v: %q, want %q", tc.data, msg, tc.want)
		}
		if d := diffSnapshots(before, env.snapshot()); d != "" {
			t.Errorf("%v: a refused write changed storage: %s", tc.data, d)
		}
	}
}

// A static api_token role alternates its pair of users: each refresh gives
// the idle one a token that lives two periods, so the token a reader holds
// works a whole period after it is replaced.
func TestStaticAPITokenPair(t *testing.T) {
	env, fa := apiTokenEnv(t)
	env.mustWrite("static-roles/fleet", map[string]interface{}{fieldConfig: "fa", fieldCredentialType: credentialAPIToken,
		fieldArrayRole: "readonly", fieldRotationPeriod: "1h"})
	var held []string
	var users []string
	for i := 0; i < 4; i++ {
		resp := env.mustRead("static-creds/fleet")
		tok, user := dataString(t, resp, fieldAPIToken), dataString(t, resp, fieldUsername)
		held = append(held, tok)
		users = append(users, user)
		if _, ok := fa.validToken(tok); !ok {
			t.Fatalf("refresh %d: the token served does not work", i)
		}
		if i > 0 {
			if _, ok := fa.validToken(held[i-1]); !ok {
				t.Errorf("refresh %d: the token readers held before it stopped working at once", i)
			}
		}
		env.clock.Add(time.Hour)
	}
	want := []string{"vault-pure1-static-fleet-a", "vault-pure1-static-fleet-b", "vault-pure1-static-fleet-a", "vault-pure1-static-fleet-b"}
	if fmt.Sprint(users) != fmt.Sprint(want) {
		t.Errorf("users = %v, want %v", users, want)
	}
	env.mustDelete("static-roles/fleet")
	if left := fa.userNames("vault-pure1-static-"); len(left) != 0 {
		t.Errorf("the pair outlived its role: %v", left)
	}
}

// With username, the user's token is replaced in place, and reads say that
// holders of the old one lose it.
func TestStaticAPITokenInPlace(t *testing.T) {
	env, fa := apiTokenEnv(t)
	resp := env.mustWrite("static-roles/ops", map[string]interface{}{fieldConfig: "fa", fieldCredentialType: credentialAPIToken,
		fieldUsername: "ops", fieldRotationPeriod: "1h"})
	if !warningsContain(resp, "loses it at once") {
		t.Errorf("warnings %v", resp.Warnings)
	}
	first := env.mustRead("static-creds/ops")
	if !warningsContain(first, "loses it then") || dataString(t, first, fieldUsername) != "ops" {
		t.Errorf("read: %v %v", first.Data, first.Warnings)
	}
	env.clock.Add(time.Hour)
	second := env.mustRead("static-creds/ops")
	if _, ok := fa.validToken(dataString(t, first, fieldAPIToken)); ok {
		t.Error("the replaced token still works: in place, it cannot")
	}
	if _, ok := fa.validToken(dataString(t, second, fieldAPIToken)); !ok {
		t.Error("the new token does not work")
	}
}

// The kept session is logged in once and again only when the array forgot
// it (401), not per lease; Clean logs it out.
func TestAPITokenKeptSession(t *testing.T) {
	env, fa := apiTokenEnv(t)
	for i := 0; i < 5; i++ {
		env.mustRead("creds/ansible")
	}
	fa.mu.Lock()
	logins := fa.logins
	fa.sessionGen++ // the array's idle timeout ended the session
	fa.mu.Unlock()
	env.mustRead("creds/ansible")
	fa.mu.Lock()
	relogins := fa.logins - logins
	fa.mu.Unlock()
	if relogins != 1 {
		t.Errorf("%d logins after the array forgot the session, want 1 (and the read to work)", relogins)
	}
	open := fa.openSessions()
	env.b.clean(env.ctx)
	if got := fa.openSessions(); got != open-1 {
		t.Errorf("sessions open after Clean: %d, want %d (the kept one logged out)", got, open-1)
	}
}
