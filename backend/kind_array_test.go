package backend

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray"
)

// A managed FlashArray config: Vault creates, enables and verifies its own
// API client, stores its id and key_id, and never shows the admin token.
func TestArrayManagedRegistration(t *testing.T) {
	env, fa := newArrayEnv(t, envOptions{})
	resp := env.mustWrite("config/fa", managedArrayConfig(map[string]interface{}{
		fieldMaxRole: "storage_admin", fieldAccessTokenTTL: "1h",
	}))
	if got := fa.clientNames(); !reflect.DeepEqual(got, []string{"vault-fa"}) {
		t.Fatalf("clients on the array = %v, want [vault-fa] (enabled)", got)
	}
	d := resp.Data
	for k, want := range map[string]interface{}{
		fieldKind: "flasharray", fieldManaged: true, fieldAPIClientName: "vault-fa", fieldClientID: "client-1",
		fieldKeyID: "key-1", fieldIssuer: "vault-fa", fieldUsername: "pureuser", fieldMaxRole: "storage_admin",
		fieldAccessTokenTTL: int64(3600), fieldAdminAPITokenConfigured: true, fieldArrayURL: testArrayURL,
	} {
		if !reflect.DeepEqual(d[k], want) {
			t.Errorf("%s = %#v, want %#v", k, d[k], want)
		}
	}
	if _, ok := d[fieldAdminAPIToken]; ok {
		t.Error("the response carries admin_api_token")
	}
	read := env.mustRead("config/fa")
	for _, r := range []*logical.Response{resp, read} {
		if strings.Contains(respText(r), fakeAdminToken) {
			t.Errorf("a config response shows the admin token: %v", r.Data)
		}
	}
	if strings.Contains(env.logs.String(), fakeAdminToken) {
		t.Error("the log shows the admin token")
	}
	// Exactly one exchange so far: the verification of the new client.
	if fa.exchanges != 1 {
		t.Errorf("%d exchanges during registration, want 1 (the verification)", fa.exchanges)
	}

	env.mustWrite("roles/ops", map[string]interface{}{fieldConfig: "fa", fieldUsername: "ops"})
	creds := env.mustRead("creds/ops")
	if got := dataString(t, creds, fieldAccessToken); got != "array-token/vault-fa/ops/2" {
		t.Errorf("access_token = %q, want the array's token for user ops", got)
	}
	if got := dataString(t, creds, fieldAppID); got != "client-1" {
		t.Errorf("app_id = %q, want the API client's id", got)
	}
	if creds.Secret.TTL != time.Hour-leaseSafetyMargin {
		t.Errorf("lease %s, want the token's hour less the safety margin", creds.Secret.TTL)
	}

	env.mustWrite("static-roles/fleet", map[string]interface{}{fieldConfig: "fa", fieldUsername: "pureuser", fieldRotationPeriod: "30m"})
	st := env.mustRead("static-creds/fleet")
	if got := dataString(t, st, fieldAccessToken); !strings.HasPrefix(got, "array-token/vault-fa/pureuser/") {
		t.Errorf("static access_token = %q, want one for pureuser", got)
	}

	// Deleting the config (once no role uses it) deletes the client Vault made.
	env.mustDelete("roles/ops")
	env.mustDelete("static-roles/fleet")
	env.mustDelete("config/fa")
	if got := fa.clientNames(); len(got) != 0 {
		t.Errorf("clients left on the array after the config was deleted: %v", got)
	}
}

// respText is everything a response carries, for leak checks.
func respText(r *logical.Response) string {
	if r == nil {
		return ""
	}
	return fmt.Sprint(r.Data, r.Warnings)
}

// A registration that fails at any step stores nothing and leaves no client
// on the array.
func TestArrayRegistrationFailures(t *testing.T) {
	for _, step := range []string{"login", "create", "enable", "verify-new"} {
		t.Run(step, func(t *testing.T) {
			env, fa := newArrayEnv(t, envOptions{})
			fa.setFail(step, errFakeStep)
			before := env.snapshot()
			resp, err := env.write("config/fa", managedArrayConfig(nil))
			if resp == nil || !resp.IsError() {
				t.Fatalf("the write succeeded or failed without a refusal: resp=%v err=%v", resp, err)
			}
			if msg := errorText(resp, err); !strings.Contains(msg, "Nothing was stored") {
				t.Errorf("the refusal does not say nothing was stored: %s", msg)
			}
			if diff := diffSnapshots(before, env.snapshot()); diff != "" {
				t.Errorf("a failed registration changed storage:\n%s", diff)
			}
			if got := fa.clientNames(); len(got) != 0 {
				t.Errorf("clients left on the array: %v", got)
			}
		})
	}
}

// A managed rotation makes a new client, verifies it, switches to it and
// deletes the old one; credentials then come from the new client.
func TestArrayManagedRotation(t *testing.T) {
	env, fa := newArrayEnv(t, envOptions{})
	env.mustWrite("config/fa", managedArrayConfig(nil))
	env.mustWrite("roles/r", map[string]interface{}{fieldConfig: "fa", fieldUsername: "pureuser", fieldReuseAccessToken: true})
	before := dataString(t, env.mustRead("creds/r"), fieldAccessToken)

	env.clock.Add(time.Minute)
	resp := env.mustWrite("config/fa/rotate", map[string]interface{}{})
	newName := "vault-fa-" + strconv.FormatInt(env.clock.Now().Unix(), 10)
	// The old client issued the token readers hold: it stays until that
	// (and every credential it issued) has expired.
	if got := fa.clientNames(); !reflect.DeepEqual(got, []string{"vault-fa", newName}) {
		t.Fatalf("clients after the rotation = %v, want the old one still beside %s", got, newName)
	}
	for k, want := range map[string]interface{}{
		fieldAPIClientName: newName, fieldClientID: "client-2", fieldKeyID: "key-2", fieldVerified: true,
		fieldPreviousClientID: "client-1", fieldPreviousAPIClientName: "vault-fa", fieldPreviousClientDeleted: false,
		fieldPreviousClientDeleteAt: formatTime(env.clock.Now().Add(defaultArrayTokenTTL + time.Minute)),
	} {
		if !reflect.DeepEqual(resp.Data[k], want) {
			t.Errorf("%s = %#v, want %#v", k, resp.Data[k], want)
		}
	}
	after := dataString(t, env.mustRead("creds/r"), fieldAccessToken)
	if after == before || !strings.Contains(after, newName) {
		t.Errorf("creds after the rotation = %q, want a token of %s (the shared token of the old client must not be reused)", after, newName)
	}
	env.drain(t, defaultArrayTokenTTL+time.Minute)
	if got := fa.clientNames(); !reflect.DeepEqual(got, []string{newName}) {
		t.Fatalf("clients once the old client's tokens expired = %v, want only %s", got, newName)
	}
	if got := env.mustRead("config/fa").Data[fieldPreviousClientDeleted]; got != true {
		t.Errorf("the stored config says previous_api_client_deleted=%v", got)
	}
}

// A rotation that fails at any step before the promotion leaves the working
// client active and on the array, and deletes the half-made one; credentials
// keep coming. A failure to delete the old client after the promotion is
// reported, and the old client stays recorded as not deleted.
func TestArrayManagedRotationFailures(t *testing.T) {
	for _, step := range []string{"login", "create", "enable", "verify-new"} {
		t.Run(step, func(t *testing.T) {
			env, fa := newArrayEnv(t, envOptions{})
			env.mustWrite("config/fa", managedArrayConfig(nil))
			env.mustWrite("roles/r", map[string]interface{}{fieldConfig: "fa", fieldUsername: "pureuser"})
			before := env.snapshot()
			env.clock.Add(time.Minute)
			fa.setFail(step, errFakeStep)
			resp, err := env.write("config/fa/rotate", map[string]interface{}{})
			if resp == nil || !resp.IsError() {
				t.Fatalf("the rotation did not fail with a refusal: resp=%v err=%v", resp, err)
			}
			if msg := errorText(resp, err); !strings.Contains(msg, `the active API client "vault-fa" still issues credentials`) {
				t.Errorf("the refusal does not say the active client still works: %s", msg)
			}
			fa.setFail(step, nil)
			if diff := diffSnapshots(before, env.snapshot()); diff != "" {
				t.Errorf("a failed rotation changed storage:\n%s", diff)
			}
			if got := fa.clientNames(); !reflect.DeepEqual(got, []string{"vault-fa"}) {
				t.Errorf("clients after the failed rotation = %v, want only the working vault-fa", got)
			}
			if got := dataString(t, env.mustRead("creds/r"), fieldAccessToken); !strings.Contains(got, "/vault-fa/") {
				t.Errorf("creds after the failed rotation = %q, want the working client's", got)
			}
		})
	}
	t.Run("delete old", func(t *testing.T) {
		env, fa := newArrayEnv(t, envOptions{})
		env.mustWrite("config/fa", managedArrayConfig(nil))
		env.clock.Add(time.Minute)
		fa.setFail("delete", errFakeStep)
		resp := env.mustWrite("config/fa/rotate", map[string]interface{}{fieldRetirePrevious: "now"})
		if !strings.Contains(strings.Join(resp.Warnings, " "), `the array did not take every delete yet (vault-fa (retired: `) {
			t.Errorf("no warning about the old client: %v", resp.Warnings)
		}
		if got := env.mustRead("config/fa").Data[fieldPreviousClientDeleted]; got != false {
			t.Errorf("previous_api_client_deleted = %v, want false", got)
		}
		if got := len(fa.clientNames()); got != 2 {
			t.Errorf("%d clients on the array, want 2 (the new one active, the old one left to delete)", got)
		}
	})
}

// An API client an operator registered: client_id, key_id and issuer with the
// key, creds from it, and a rotation with a pending key promoted under a new
// client_id/key_id only once the array accepts it.
func TestArrayOperatorRegistered(t *testing.T) {
	env, fa := newArrayEnv(t, envOptions{})
	c := fa.register("ops-client", "ops-issuer", keyA())
	env.mustWrite("config/fb", map[string]interface{}{
		fieldKind: purearray.KindFlashBlade, fieldArrayURL: testArrayURL, fieldUsername: "pureuser",
		fieldClientID: c.ID, fieldKeyID: c.KeyID, fieldIssuer: "ops-issuer", fieldPrivateKey: keyA().pkcs8,
	})
	env.mustWrite("roles/r", map[string]interface{}{fieldConfig: "fb", fieldUsername: "ops"})
	if got := dataString(t, env.mustRead("creds/r"), fieldAccessToken); !strings.Contains(got, "/ops-client/ops/") {
		t.Fatalf("creds = %q, want ops-client's token for ops", got)
	}
	// jwt roles sign for their user too.
	env.mustWrite("roles/j", map[string]interface{}{fieldConfig: "fb", fieldUsername: "ops", fieldCredentialType: credentialJWT})
	claims, err := checkJWTClaims(dataString(t, env.mustRead("creds/j"), fieldJWT))
	if err != nil || claims["sub"] != "ops" || claims["aud"] != c.ID || claims["iss"] != "ops-issuer" {
		t.Errorf("jwt role claims = %v (%v), want sub ops, aud %s, iss ops-issuer", claims, err, c.ID)
	}

	pending := env.mustWrite("config/fb/rotate", map[string]interface{}{fieldPrivateKey: keyB().pkcs8})
	if !strings.Contains(strings.Join(pending.Warnings, " "), "client_id=<its id> key_id=<its key_id>") {
		t.Errorf("the pending-key answer does not say how to finish: %v", pending.Warnings)
	}
	// The new client is not on the array yet: promotion is refused, nothing changes.
	before := env.snapshot()
	resp, err := env.write("config/fb/rotate", map[string]interface{}{fieldClientID: "client-9", fieldKeyID: "key-9"})
	if resp == nil || !resp.IsError() {
		t.Fatalf("promotion to an unknown client succeeded: %v %v", resp, err)
	}
	if diff := diffSnapshots(before, env.snapshot()); diff != "" {
		t.Errorf("a refused promotion changed storage:\n%s", diff)
	}
	nc := fa.register("ops-client-2", "ops-issuer", keyB())
	done := env.mustWrite("config/fb/rotate", map[string]interface{}{fieldClientID: nc.ID, fieldKeyID: nc.KeyID})
	if done.Data[fieldClientID] != nc.ID || done.Data[fieldPreviousClientID] != c.ID {
		t.Errorf("after promotion client_id=%v previous=%v, want %s and %s", done.Data[fieldClientID], done.Data[fieldPreviousClientID], nc.ID, c.ID)
	}
	if got := dataString(t, env.mustRead("creds/r"), fieldAccessToken); !strings.Contains(got, "/ops-client-2/") {
		t.Errorf("creds after promotion = %q, want the new client's", got)
	}
}

// checkJWTClaims decodes a JWT's claims without verifying it.
func checkJWTClaims(token string) (map[string]interface{}, error) {
	var c map[string]interface{}
	err := decodeJWTPart(token, 1, &c)
	return c, err
}

// Bad input names the field and stores nothing.
func TestArrayConfigBadInput(t *testing.T) {
	cases := []struct {
		name  string
		path  string
		setup func(env *testEnv)
		data  map[string]interface{}
		want  string
	}{
		{name: "unknown kind", path: "config/x", data: map[string]interface{}{fieldKind: "flashcard"}, want: `kind "flashcard" is not supported`},
		{name: "http array_url", path: "config/x", data: managedArrayConfig(map[string]interface{}{fieldArrayURL: "http://127.0.0.1:8080"}), want: "array_url must use https"},
		{name: "array_url with a path", path: "config/x", data: managedArrayConfig(map[string]interface{}{fieldArrayURL: "https://127.0.0.1/api"}), want: "array_url is the array's address only"},
		{name: "host not allowed", path: "config/x", data: managedArrayConfig(map[string]interface{}{fieldArrayURL: "https://array.example.net"}), want: "PURE1_ALLOWED_TOKEN_HOSTS"},
		{name: "ca_cert not PEM", path: "config/x", data: managedArrayConfig(map[string]interface{}{fieldCACert: "not a cert"}), want: "ca_cert holds no PEM certificate"},
		{name: "ca_cert a key", path: "config/x", data: managedArrayConfig(map[string]interface{}{fieldCACert: keyA().pkcs8}), want: "ca_cert holds no PEM certificate"},
		{name: "max_role", path: "config/x", data: managedArrayConfig(map[string]interface{}{fieldMaxRole: "root"}), want: `max_role "root" is not an array role`},
		{name: "access_token_ttl", path: "config/x", data: managedArrayConfig(map[string]interface{}{fieldAccessTokenTTL: "48h"}), want: "access_token_ttl 48h0m0s is out of range"},
		{name: "no username", path: "config/x", data: map[string]interface{}{fieldKind: "flasharray", fieldArrayURL: testArrayURL, fieldAdminAPIToken: "t"}, want: "username is required"},
		{name: "no array_url", path: "config/x", data: map[string]interface{}{fieldKind: "flasharray", fieldUsername: "u", fieldAdminAPIToken: "t"}, want: "array_url is required"},
		{name: "app_id on an array", path: "config/x", data: managedArrayConfig(map[string]interface{}{fieldAppID: "pure1:apikey:abc"}), want: "app_id applies to kind=pure1"},
		{name: "array field on pure1", path: "config/x", data: map[string]interface{}{fieldGenerateKey: true, fieldArrayURL: testArrayURL}, want: "array_url applies only to kind=flasharray"},
		{name: "client_id and admin token", path: "config/x", data: managedArrayConfig(map[string]interface{}{fieldClientID: "c", fieldKeyID: "k"}), want: "use one or the other"},
		{name: "client_id without key_id", path: "config/x",
			data: map[string]interface{}{fieldKind: "flasharray", fieldArrayURL: testArrayURL, fieldUsername: "u", fieldClientID: "c", fieldIssuer: "i", fieldGenerateKey: true},
			want: "key_id is empty"},
		{name: "wrong admin token", path: "config/x", data: managedArrayConfig(map[string]interface{}{fieldAdminAPIToken: "wrong"}), want: "invalid api token"},
		{name: "api_client_name", path: "config/x", data: managedArrayConfig(map[string]interface{}{fieldAPIClientName: "bad name!"}), want: "api_client_name"},
		{name: "kind change", path: "config/p", setup: func(env *testEnv) { env.writeConfig("p", keyA(), "") },
			data: managedArrayConfig(nil), want: `config "p" is a pure1 config; its kind cannot change`},
		{name: "array role without username", path: "roles/r", setup: func(env *testEnv) { env.mustWrite("config/fa", managedArrayConfig(nil)) },
			data: map[string]interface{}{fieldConfig: "fa"}, want: "username is required"},
		{name: "pure1 role with username", path: "roles/r", setup: func(env *testEnv) { env.writeConfig("p", keyA(), "") },
			data: map[string]interface{}{fieldConfig: "p", fieldUsername: "ops"}, want: "username applies only to roles on a flasharray or flashblade config"},
		{name: "static array role without username", path: "static-roles/s", setup: func(env *testEnv) { env.mustWrite("config/fa", managedArrayConfig(nil)) },
			data: map[string]interface{}{fieldConfig: "fa"}, want: "username is required"},
		{name: "new key on a registered client", path: "config/fa", setup: func(env *testEnv) { env.mustWrite("config/fa", managedArrayConfig(nil)) },
			data: map[string]interface{}{fieldGenerateKey: true}, want: "rotate"},
		{name: "managed settings after registration", path: "config/fa", setup: func(env *testEnv) { env.mustWrite("config/fa", managedArrayConfig(nil)) },
			data: map[string]interface{}{fieldMaxRole: "array_admin"}, want: "fixed once API client"},
		{name: "array_url moves away from its client", path: "config/fa", setup: func(env *testEnv) { env.mustWrite("config/fa", managedArrayConfig(nil)) },
			data: map[string]interface{}{fieldArrayURL: "https://localhost:9443"}, want: "cannot change while it has API client"},
		{name: "rotation_period too short", path: "config/x", data: managedArrayConfig(map[string]interface{}{fieldRotationPeriod: "10m"}), want: "rotation_period 10m0s is too short"},
		{name: "rotation_period unmanaged", path: "config/x",
			data: map[string]interface{}{fieldKind: "flasharray", fieldArrayURL: testArrayURL, fieldUsername: "u", fieldGenerateKey: true, fieldRotationPeriod: "24h"},
			want: "rotation_period needs managed registration"},
		{name: "rotate with app_id", path: "config/fa/rotate", setup: func(env *testEnv) { env.mustWrite("config/fa", managedArrayConfig(nil)) },
			data: map[string]interface{}{fieldAppID: "pure1:apikey:abc"}, want: "app_id is a Pure1 application's"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := newArrayEnv(t, envOptions{})
			if tc.setup != nil {
				tc.setup(env)
			}
			before := env.snapshot()
			resp, err := env.write(tc.path, tc.data)
			msg := errorText(resp, err)
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q, want it to contain %q", msg, tc.want)
			}
			if diff := diffSnapshots(before, env.snapshot()); diff != "" {
				t.Errorf("a refused write changed storage:\n%s", diff)
			}
		})
	}
}

// Configs stored before kinds existed load as Pure1 and issue as before.
func TestArrayOldEntriesAreStillPure1(t *testing.T) {
	var e configEntry
	if err := (&logical.StorageEntry{Value: []byte(`{"app_id":"pure1:apikey:abc","private_key":"x","key_source":"generated","token_url":"https://api.pure1.purestorage.com/oauth2/1.0/token"}`)}).DecodeJSON(&e); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.kind().(pure1Kind); !ok || e.kindName() != kindPure1 {
		t.Errorf("an old entry reads as kind %q", e.kindName())
	}
}

// A failed array exchange says which client, array and user to check.
func TestArrayExchangeRefusal(t *testing.T) {
	env, fa := newArrayEnv(t, envOptions{})
	env.mustWrite("config/fa", managedArrayConfig(nil))
	env.mustWrite("roles/r", map[string]interface{}{fieldConfig: "fa", fieldUsername: "nobody"})
	resp, err := env.read("creds/r")
	msg := errorText(resp, err)
	if !strings.Contains(msg, "rejected the token exchange for API client") || !strings.Contains(msg, "username exists on the array") {
		t.Errorf("refusal %q does not point at the client and the user", msg)
	}
	fa.setFail("exchange", &pure1.APIError{StatusCode: 503})
	env.mustWrite("roles/r", map[string]interface{}{fieldUsername: "ops"})
	resp, err = env.read("creds/r")
	if httpStatus(resp, err) != 502 {
		t.Errorf("an array outage gives status %d (%s), want 502", httpStatus(resp, err), errorText(resp, err))
	}
}

// Scheduled rotation: due rotation_period after the active key was made, run
// by the background loop's rotateDueConfigs (called here directly, on the
// test's clock); a failure keeps the working client and is retried later.
func TestArrayScheduledRotation(t *testing.T) {
	env, fa := newArrayEnv(t, envOptions{})
	resp := env.mustWrite("config/fa", managedArrayConfig(map[string]interface{}{fieldRotationPeriod: "24h"}))
	created := env.clock.Now()
	if got := resp.Data[fieldNextRotation]; got != formatTime(created.Add(24*time.Hour)) {
		t.Fatalf("next_rotation = %v, want a day after registration", got)
	}
	step := func() time.Time {
		t.Helper()
		return env.b.rotateDueConfigs(env.ctx, env.storage)
	}
	clients := func() string { return fmt.Sprint(fa.clientNames()) }

	env.clock.Add(23 * time.Hour)
	if next := step(); !next.Equal(created.Add(24*time.Hour)) || clients() != "[vault-fa]" {
		t.Fatalf("before it is due: next %v, clients %s", next, clients())
	}

	env.clock.Add(time.Hour)
	fa.setFail("create", errFakeStep)
	failedAt := env.clock.Now()
	if next := step(); !next.Equal(failedAt.Add(configRotationRetry)) || clients() != "[vault-fa]" {
		t.Fatalf("a failed rotation: next %v (want the retry), clients %s (want the working one only)", next, clients())
	}
	fa.setFail("create", nil)
	env.clock.Add(configRotationRetry / 2)
	step()
	if clients() != "[vault-fa]" {
		t.Fatalf("retried before the backoff ended: %s", clients())
	}

	env.clock.Add(configRotationRetry / 2)
	next := step()
	want := "[vault-fa vault-fa-" + strconv.FormatInt(env.clock.Now().Unix(), 10) + "]"
	if clients() != want {
		t.Fatalf("after the scheduled rotation: clients %s, want %s (the old one until its tokens expire)", clients(), want)
	}
	if !next.Equal(env.clock.Now().Add(24 * time.Hour)) {
		t.Errorf("next rotation %v, want a day after this one", next)
	}
	env.drain(t, defaultArrayTokenTTL+time.Minute)
	if got := env.mustRead("config/fa").Data[fieldPreviousClientDeleted]; got != true {
		t.Errorf("previous_api_client_deleted = %v", got)
	}
}

// Every array exchange goes through exchangeSigned and so counts under its
// config: the registration's verification, a leased read, and a refusal.
func TestArrayExchangesCountedByConfig(t *testing.T) {
	env, _ := newArrayEnv(t, envOptions{})
	env.mustWrite("config/fa", managedArrayConfig(nil))
	env.mustWrite("roles/ok", map[string]interface{}{fieldConfig: "fa", fieldUsername: "ops"})
	env.mustWrite("roles/bad", map[string]interface{}{fieldConfig: "fa", fieldUsername: "nobody"})
	env.mustRead("creds/ok")
	if resp, err := env.read("creds/bad"); resp == nil || !resp.IsError() {
		t.Fatalf("creds of an unknown user: %v %v", resp, err)
	}
	checkSeries(t, env.scrape(), map[series]float64{
		{"pure1_exchanges_total", "config=fa,outcome=ok"}:       2, // verification + creds/ok
		{"pure1_exchanges_total", "config=fa,outcome=rejected"}: 1,
	})
}

// config/NAME/check proves an array config with the config's own user; a
// static role that changes its user drops the token of the old one.
func TestArrayCheckAndStaticUser(t *testing.T) {
	env, _ := newArrayEnv(t, envOptions{})
	env.mustWrite("config/fa", managedArrayConfig(nil))
	chk := env.mustRead("config/fa/check")
	if chk.Data[fieldCheckOK] != true || chk.Data[fieldAppID] != "client-1" {
		t.Errorf("check = %v, want ok for client-1", chk.Data)
	}
	env.mustWrite("static-roles/s", map[string]interface{}{fieldConfig: "fa", fieldUsername: "pureuser"})
	if got := dataString(t, env.mustRead("static-creds/s"), fieldAccessToken); !strings.Contains(got, "/pureuser/") {
		t.Fatalf("static token %q, want pureuser's", got)
	}
	env.mustWrite("static-roles/s", map[string]interface{}{fieldUsername: "ops"})
	if got := dataString(t, env.mustRead("static-creds/s"), fieldAccessToken); !strings.Contains(got, "/ops/") {
		t.Errorf("static token after the user changed = %q, want one of ops, not the old user's", got)
	}
	// The user is the array's to check: one it does not know is refused there.
	env.mustWrite("config/fa", map[string]interface{}{fieldUsername: "ghost"})
	chk = env.mustRead("config/fa/check")
	if chk.Data[fieldCheckOK] != false {
		t.Errorf("check as an unknown user = %v, want not ok", chk.Data)
	}
}

// TestArrayFlashBladeWire: a FlashBlade takes max_role as a reference and API
// client names of letters, digits and '_' only, as Pure's FlashBlade
// collection sends them; a FlashArray takes the role as a string and '-'.
func TestArrayFlashBladeWire(t *testing.T) {
	env, fa := newArrayEnv(t, envOptions{})
	before := env.snapshot()
	resp, err := env.write("config/fb", managedArrayConfig(map[string]interface{}{fieldKind: purearray.KindFlashBlade, fieldAPIClientName: "vault-fb"}))
	if msg := errorText(resp, err); !strings.Contains(msg, "not a FlashBlade API client name") {
		t.Errorf("a FlashBlade client name with '-': %q", msg)
	}
	if d := diffSnapshots(before, env.snapshot()); d != "" || len(fa.created) != 0 {
		t.Fatalf("a refused write changed storage (%s) or reached the array (%d creates)", d, len(fa.created))
	}
	env.mustWrite("config/fb", managedArrayConfig(map[string]interface{}{fieldKind: purearray.KindFlashBlade, fieldAPIClientName: "vault_fb"}))
	env.mustWrite("config/fa", managedArrayConfig(map[string]interface{}{fieldAPIClientName: "vault-fa"}))
	env.clock.Add(time.Minute)
	env.mustWrite("config/fb/rotate", map[string]interface{}{})
	env.mustWrite("config/fa/rotate", map[string]interface{}{})
	ts := strconv.FormatInt(env.clock.Now().Unix(), 10)
	want := []struct {
		name string
		ref  bool
	}{{"vault_fb", true}, {"vault-fa", false}, {"vault_fb_" + ts, true}, {"vault-fa-" + ts, false}}
	if len(fa.created) != len(want) {
		t.Fatalf("creates = %+v, want %d", fa.created, len(want))
	}
	for i, w := range want {
		// The wire decides max_role's form: FlashBlade's takes a reference.
		if c, k := fa.created[i], fa.createdKinds[i]; c.Name != w.name || (k == purearray.FlashBlade) != w.ref {
			t.Errorf("create %d: name %q on %v; want %q, FlashBlade %v", i, c.Name, k, w.name, w.ref)
		}
	}
}

// TestArrayChangesProvenFirst: on a config whose client works, a new ca_cert
// must let the client's exchange through and a new admin_api_token must log
// in, before either replaces what works; a refusal stores nothing.
func TestArrayChangesProvenFirst(t *testing.T) {
	env, fa := newArrayEnv(t, envOptions{})
	env.mustWrite("config/fa", managedArrayConfig(nil))
	ca := selfSignedCertPEM(keyC())

	fa.setFail("exchange", errors.New("x509: certificate signed by unknown authority"))
	before := env.snapshot()
	resp, err := env.write("config/fa", map[string]interface{}{fieldCACert: ca})
	if msg := errorText(resp, err); !strings.Contains(msg, "with the new ca_cert the array") || !strings.Contains(msg, "unknown authority") {
		t.Errorf("a ca_cert the array's certificate does not verify with: %q", msg)
	}
	resp, err = env.write("config/fa", map[string]interface{}{fieldAdminAPIToken: "not-the-token"})
	if msg := errorText(resp, err); !strings.Contains(msg, "did not accept the new admin_api_token") || strings.Contains(msg, "not-the-token") {
		t.Errorf("a wrong admin_api_token: %q (and never echoed)", msg)
	}
	if d := diffSnapshots(before, env.snapshot()); d != "" {
		t.Fatalf("refused writes changed storage: %s", d)
	}

	fa.setFail("exchange", nil)
	env.mustWrite("config/fa", map[string]interface{}{fieldCACert: ca})
	env.mustWrite("config/fa", map[string]interface{}{fieldAdminAPIToken: fakeAdminToken})
	if got := env.mustRead("config/fa").Data[fieldCACertFingerprint]; got == "" || got == nil {
		t.Errorf("the proven ca_cert was not stored: %v", got)
	}
}
