package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestLeaseNeverOutlivesCredential reads credentials many times through a
// real Vault and compares each lease's expire_time, as Vault registered it
// (sys/leases/lookup), with the credential's own end: the JWT's exp, the
// access token's expires_at (and its exp claim). Vault starts a lease's clock
// when it registers it, after the plugin read its own clock: without the
// plugin's safety margin, expire_time lands after the credential's end on
// nearly every read.
func TestLeaseNeverOutlivesCredential(t *testing.T) {
	requireE2E(t)
	e := StartEmulator(t)
	v := StartVaultDev(t)
	Bootstrap(t, v, e)
	v.MustCLI(t, "write", Mount+"/roles/short-jwt", "config=main", "credential_type=jwt", "ttl=20s")
	v.MustCLI(t, "write", Mount+"/roles/shared", "config=main", "reuse_access_token=true")

	const reads = 50
	worst := map[string]time.Duration{} // smallest gap between lease end and credential end
	for _, role := range []string{"readonly", "readonly-jwt", "short-jwt", "shared"} {
		for i := 0; i < reads; i++ {
			status, body := v.HTTP(t, "GET", Mount+"/creds/"+role, nil)
			if status != 200 {
				t.Fatalf("read %d of creds/%s: HTTP %d %v", i, role, status, body)
			}
			leaseID := jstr(t, body, "lease_id")
			end := credentialEnd(t, role, body)

			status, look := v.HTTP(t, "PUT", "sys/leases/lookup", map[string]any{"lease_id": leaseID})
			if status != 200 {
				t.Fatalf("sys/leases/lookup %s: HTTP %d %v", leaseID, status, look)
			}
			expire, err := time.Parse(time.RFC3339Nano, jstr(t, look, "data", "expire_time"))
			if err != nil {
				t.Fatalf("lease %s: expire_time: %v", leaseID, err)
			}
			gap := end.Sub(expire)
			if gap < 0 {
				t.Errorf("read %d of creds/%s: the lease expires at %s, %s after the credential (%s)",
					i, role, expire.Format(time.RFC3339Nano), -gap, end.Format(time.RFC3339))
			}
			if w, ok := worst[role]; !ok || gap < w {
				worst[role] = gap
			}
		}
	}
	for role, gap := range worst {
		t.Logf("creds/%s: over %d reads the lease ended at least %s before the credential", role, reads, gap)
	}
}

// credentialEnd is when the credential in a creds response stops working:
// the JWT's exp, or the access token's expires_at and exp, whichever is
// first. It also checks that expires_at agrees with the credential.
func credentialEnd(t *testing.T, role string, body map[string]any) time.Time {
	t.Helper()
	expiresAt, err := time.Parse(time.RFC3339, jstr(t, body, "data", "expires_at"))
	if err != nil {
		t.Fatalf("creds/%s: expires_at: %v", role, err)
	}
	token, _ := jget(body, "data", "jwt").(string)
	if token == "" {
		token = jstr(t, body, "data", "access_token")
	}
	exp, err := jwtExp(token)
	if err != nil {
		t.Fatalf("creds/%s: %v", role, err)
	}
	if !exp.Equal(expiresAt) {
		t.Errorf("creds/%s: expires_at %s is not the credential's exp %s", role, expiresAt, exp)
	}
	if exp.Before(expiresAt) {
		return exp
	}
	return expiresAt
}

// jwtExp reads the exp claim of a JWT without verifying it.
func jwtExp(token string) (time.Time, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, fmt.Errorf("not a JWT: %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, fmt.Errorf("JWT payload: %v", err)
	}
	var c struct {
		Exp *int64 `json:"exp"`
	}
	if err := json.Unmarshal(raw, &c); err != nil || c.Exp == nil {
		return time.Time{}, fmt.Errorf("JWT payload has no integer exp: %v", err)
	}
	return time.Unix(*c.Exp, 0).UTC(), nil
}
