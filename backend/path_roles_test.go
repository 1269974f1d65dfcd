package backend

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestRoleCRUD(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	e.writeConfig("c1", keyA(), appID1)
	e.writeConfig("c2", keyB(), appID2)

	if resp, err := e.read("roles/r"); resp != nil || err != nil {
		t.Fatalf("read of a missing role: %v, %v; want nil, nil", resp, err)
	}
	found, exists, err := e.b.HandleExistenceCheck(e.ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "roles/r", Storage: e.storage})
	if err != nil || !found || exists {
		t.Fatalf("existence check before create: %v %v %v", found, exists, err)
	}

	// Defaults.
	resp := e.mustWrite("roles/r", map[string]interface{}{"config": "c1"})
	want := map[string]interface{}{
		"config":             "c1",
		"credential_type":    "access_token",
		"ttl":                int64(0),
		"max_ttl":            int64(0),
		"reuse_access_token": false,
		"reuse_margin":       int64(600),
	}
	if !reflect.DeepEqual(resp.Data, want) {
		t.Errorf("create response\n got %v\nwant %v", resp.Data, want)
	}
	if got := e.mustRead("roles/r").Data; !reflect.DeepEqual(got, want) {
		t.Errorf("read\n got %v\nwant %v", got, want)
	}
	found, exists, err = e.b.HandleExistenceCheck(e.ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "roles/r", Storage: e.storage})
	if err != nil || !found || !exists {
		t.Fatalf("existence check after create: %v %v %v", found, exists, err)
	}

	// Every field set, as the CLI sends them (strings, durations).
	e.mustWrite("roles/r", map[string]interface{}{
		"ttl": "30m", "max_ttl": "2h", "reuse_access_token": "true", "reuse_margin": "5m",
	})
	want = map[string]interface{}{
		"config":             "c1",
		"credential_type":    "access_token",
		"ttl":                int64(1800),
		"max_ttl":            int64(7200),
		"reuse_access_token": true,
		"reuse_margin":       int64(300),
	}
	if got := e.mustRead("roles/r").Data; !reflect.DeepEqual(got, want) {
		t.Errorf("after update\n got %v\nwant %v", got, want)
	}

	// An update that sets one field keeps the others.
	e.mustWrite("roles/r", map[string]interface{}{"config": "c2"})
	want["config"] = "c2"
	if got := e.mustRead("roles/r").Data; !reflect.DeepEqual(got, want) {
		t.Errorf("after config-only update\n got %v\nwant %v", got, want)
	}
	// Switching to jwt needs reuse off in the same write.
	e.mustWrite("roles/r", map[string]interface{}{"credential_type": "jwt", "reuse_access_token": false, "ttl": 0})
	want["credential_type"], want["reuse_access_token"], want["ttl"] = "jwt", false, int64(0)
	if got := e.mustRead("roles/r").Data; !reflect.DeepEqual(got, want) {
		t.Errorf("after switch to jwt\n got %v\nwant %v", got, want)
	}

	e.mustWrite("roles/a-role", map[string]interface{}{"config": "c1", "credential_type": "jwt"})
	e.mustWrite("roles/z.role", map[string]interface{}{"config": "c1"})
	resp, err = e.list("roles/")
	mustOK(t, "list roles", resp, err)
	if got, want := resp.Data["keys"], []string{"a-role", "r", "z.role"}; !reflect.DeepEqual(got, want) {
		t.Errorf("list %v, want %v", got, want)
	}

	e.mustDelete("roles/r")
	if resp, err := e.read("roles/r"); resp != nil || err != nil {
		t.Errorf("read after delete: %v, %v", resp, err)
	}
	if msg := errorText(e.read("creds/r")); !strings.Contains(msg, `role "r" does not exist`) {
		t.Errorf("creds of a deleted role: %q", msg)
	}
	resp, _ = e.list("roles")
	if got, want := resp.Data["keys"], []string{"a-role", "z.role"}; !reflect.DeepEqual(got, want) {
		t.Errorf("list after delete %v, want %v", got, want)
	}
}

func TestRoleWarnsWhenConfigHasNoAppID(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	e.writeConfig("noapp", keyA(), "")
	resp := e.mustWrite("roles/r", map[string]interface{}{"config": "noapp"})
	if !warningsContain(resp, `config "noapp" has no app_id yet`) {
		t.Errorf("warnings %q should say the config has no app_id", resp.Warnings)
	}
	e.mustWrite("config/noapp", map[string]interface{}{"app_id": appID1})
	if resp := e.mustWrite("roles/r", map[string]interface{}{"ttl": "1m"}); len(resp.Warnings) != 0 {
		t.Errorf("warnings once app_id is set: %q", resp.Warnings)
	}
}

// TestJWTLeaseTTL covers the lease rules of jwt roles: 1h by default, the
// role's ttl when set, never more than max_ttl or the mount's max lease TTL;
// the JWT lives that long, the lease leaseSafetyMargin less, and expires_at
// is the JWT's exp.
func TestJWTLeaseTTL(t *testing.T) {
	cases := []struct {
		name        string
		mountMax    time.Duration
		ttl, maxTTL string // "" = unset
		want        time.Duration
		wantLease   time.Duration // 0: want - leaseSafetyMargin
	}{
		{name: "default 1h", want: time.Hour},
		{name: "ttl honoured", ttl: "10m", want: 10 * time.Minute},
		{name: "ttl longer than the default", ttl: "3h", want: 3 * time.Hour},
		{name: "ttl equal to max_ttl", ttl: "45m", maxTTL: "45m", want: 45 * time.Minute},
		{name: "default capped by max_ttl", maxTTL: "20m", want: 20 * time.Minute},
		{name: "default capped by the mount max", mountMax: 15 * time.Minute, want: 15 * time.Minute},
		{name: "max_ttl below the mount max", mountMax: 2 * time.Hour, maxTTL: "90m", ttl: "", want: time.Hour},
		{name: "ttl at the mount max", mountMax: 2 * time.Hour, ttl: "2h", want: 2 * time.Hour},
		// Too short to leave a lease after the margin: the JWT is stretched
		// so that the lease lasts 2 s and still ends first.
		{name: "one second", ttl: "1", want: leaseSafetyMargin + 2*time.Second, wantLease: 2 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, envOptions{maxLeaseTTL: tc.mountMax})
			e.writeConfig("c", keyA(), appID1)
			data := map[string]interface{}{"config": "c", "credential_type": "jwt"}
			if tc.ttl != "" {
				data["ttl"] = tc.ttl
			}
			if tc.maxTTL != "" {
				data["max_ttl"] = tc.maxTTL
			}
			e.mustWrite("roles/j", data)

			resp := e.creds("j")
			s := resp.Secret
			lease := tc.wantLease
			if lease == 0 {
				lease = tc.want - leaseSafetyMargin
			}
			if s.TTL != lease || s.MaxTTL != lease || s.Renewable {
				t.Errorf("lease ttl=%s max_ttl=%s renewable=%v; want %s, %s, false", s.TTL, s.MaxTTL, s.Renewable, lease, lease)
			}
			c, err := checkJWT(dataString(t, resp, "jwt"), &keyA().priv.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			now := e.clock.Now()
			if c.Iss != appID1 || c.Iat != now.Unix() || time.Duration(c.Exp-c.Iat)*time.Second != tc.want {
				t.Errorf("claims %+v; want iss %s, iat %d, lifetime %s", c, appID1, now.Unix(), tc.want)
			}
			if at := parseExpiresAt(t, resp); at.Unix() != c.Exp {
				t.Errorf("expires_at %s is not the JWT's exp %d", at, c.Exp)
			}
			if dataString(t, resp, "app_id") != appID1 {
				t.Errorf("app_id %v", resp.Data["app_id"])
			}
			if len(resp.Data) != 3 {
				t.Errorf("jwt response carries %v, want exactly jwt, app_id, expires_at", resp.Data)
			}
		})
	}
}

// TestJWTLeaseNeverOutlivesTheJWT: with a clock inside a second, iat is the
// second and exp whole seconds later, so the lease measured from now ends at
// least leaseSafetyMargin before exp, and at most a second more.
func TestJWTLeaseNeverOutlivesTheJWT(t *testing.T) {
	clock := newClock(testEpoch.Add(700 * time.Millisecond))
	e := newTestEnv(t, envOptions{clock: clock})
	e.writeConfig("c", keyA(), appID1)
	e.mustWrite("roles/j", map[string]interface{}{"config": "c", "credential_type": "jwt", "ttl": "5m"})
	resp := e.creds("j")
	c, err := checkJWT(dataString(t, resp, "jwt"), &keyA().priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	end := clock.Now().Add(resp.Secret.TTL)
	if end.After(time.Unix(c.Exp, 0).Add(-leaseSafetyMargin)) {
		t.Errorf("lease ends %s, less than %s before the JWT's exp %s", end, leaseSafetyMargin, time.Unix(c.Exp, 0).UTC())
	}
	if want := 5*time.Minute - leaseSafetyMargin; resp.Secret.TTL > want || resp.Secret.TTL < want-time.Second {
		t.Errorf("lease %s, want within a second under %s", resp.Secret.TTL, want)
	}
	if c.Iat != testEpoch.Unix() || c.Exp != testEpoch.Unix()+300 {
		t.Errorf("iat %d exp %d, want %d and +300", c.Iat, c.Exp, testEpoch.Unix())
	}
}

// TestJWTSameSecondAndNextSecond: two reads in one second return the same JWT
// (RS256 is deterministic, so that is what signing again would give); the next
// second brings a new one.
func TestJWTSameSecondAndNextSecond(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	e.writeConfig("c", keyA(), appID1)
	e.mustWrite("roles/j", map[string]interface{}{"config": "c", "credential_type": "jwt"})
	e.mustWrite("roles/k", map[string]interface{}{"config": "c", "credential_type": "jwt", "ttl": "2m"})
	j1 := dataString(t, e.creds("j"), "jwt")
	e.clock.Add(999 * time.Millisecond)
	j2 := dataString(t, e.creds("j"), "jwt")
	if j1 != j2 {
		t.Errorf("two reads in the same second gave different JWTs")
	}
	k1 := dataString(t, e.creds("k"), "jwt")
	if k1 == j1 {
		t.Errorf("roles with different ttls share a JWT")
	}
	e.clock.Add(time.Millisecond)
	j3 := dataString(t, e.creds("j"), "jwt")
	c, err := checkJWT(j3, &keyA().priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if j3 == j1 || c.Iat != testEpoch.Unix()+1 {
		t.Errorf("next second: same JWT=%v, iat %d", j3 == j1, c.Iat)
	}
}

func TestLeaseRenewAndRevoke(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	e.writeConfig("c", keyA(), appID1)
	e.mustWrite("roles/j", map[string]interface{}{"config": "c", "credential_type": "jwt"})
	resp := e.creds("j")
	if resp.Secret.InternalData["role"] != "j" {
		t.Errorf("internal data %v lacks the role", resp.Secret.InternalData)
	}
	before := e.snapshot()

	renew, err := e.b.HandleRequest(e.ctx, &logical.Request{
		Operation: logical.RenewOperation, Storage: e.storage, Secret: resp.Secret,
	})
	if msg := errorText(renew, err); !strings.Contains(msg, "cannot be extended") {
		t.Errorf("renew: %q, want a refusal", msg)
	}
	revoke, err := e.b.HandleRequest(e.ctx, &logical.Request{
		Operation: logical.RevokeOperation, Storage: e.storage, Secret: resp.Secret,
	})
	if err != nil || (revoke != nil && revoke.IsError()) {
		t.Errorf("revoke: %v %v", revoke, err)
	}
	if d := diffSnapshots(before, e.snapshot()); d != "" {
		t.Errorf("renew/revoke changed storage: %s", d)
	}
	// Revocation is a no-op: the role and config still issue.
	e.creds("j")
}
