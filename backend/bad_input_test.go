package backend

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// badInputMountMax is the mount max lease TTL of the bad-input backend.
const badInputMountMax = 24 * time.Hour

// newBadInputEnv is a mount with a good config and roles, some of which the
// bad requests try to overwrite:
//
//	config/good   key A, app_id appID1
//	config/noapp  key B, no app_id
//	roles/jwt     jwt role on good
//	roles/at      access_token role on good
//	roles/noapp   jwt role on noapp
func newBadInputEnv(t *testing.T) *testEnv {
	e := newTestEnv(t, envOptions{maxLeaseTTL: badInputMountMax})
	e.writeConfig("good", keyA(), appID1)
	e.writeConfig("noapp", keyB(), "")
	e.mustWrite("roles/jwt", map[string]interface{}{"config": "good", "credential_type": "jwt", "ttl": "30m", "max_ttl": "2h"})
	e.mustWrite("roles/at", map[string]interface{}{"config": "good", "reuse_access_token": true})
	e.mustWrite("roles/noapp", map[string]interface{}{"config": "noapp", "credential_type": "jwt"})
	return e
}

// TestBadInput: every request here is refused with a message naming the field
// at fault, as a 4xx, without changing a byte of storage, and what it tried to
// overwrite still reads the same.
func TestBadInput(t *testing.T) {
	a := keyA()
	pemLines := strings.Split(strings.TrimSpace(a.pkcs1), "\n")
	truncatedPEM := strings.Join(pemLines[:len(pemLines)/2], "\n") + "\n"
	// Header and footer intact, half of the base64 body gone: the DER is cut.
	truncatedDER := strings.Join(append(append([]string{pemLines[0]}, pemLines[1:len(pemLines)/2]...), pemLines[len(pemLines)-1]), "\n") + "\n"
	oversizedKey := a.pkcs8 + strings.Repeat("A", 64<<10)

	cases := []struct {
		name string
		op   logical.Operation // default: write (create/update by existence check)
		path string
		data map[string]interface{}
		want []string // substrings of the message; the first names the field
	}{
		// ---- config: the private key ----
		{name: "garbage PEM", path: "config/good",
			data: map[string]interface{}{"private_key": "hello, I am not a key"}, want: []string{"private_key", "PEM"}},
		{name: "truncated PEM (cut off mid-body)", path: "config/good",
			data: map[string]interface{}{"private_key": truncatedPEM}, want: []string{"private_key"}},
		{name: "truncated DER (body lines missing)", path: "config/good",
			data: map[string]interface{}{"private_key": truncatedDER}, want: []string{"private_key", "corrupt or truncated"}},
		{name: "public key as private_key", path: "config/good",
			data: map[string]interface{}{"private_key": a.publicPEM}, want: []string{"private_key", "public key"}},
		{name: "certificate as private_key", path: "config/new",
			data: map[string]interface{}{"private_key": selfSignedCertPEM(a)}, want: []string{"private_key", "public key or certificate"}},
		{name: "EC key (PKCS#8)", path: "config/good",
			data: map[string]interface{}{"private_key": ecPKCS8PEM()}, want: []string{"private_key", "RSA"}},
		{name: "EC key (SEC1)", path: "config/new",
			data: map[string]interface{}{"private_key": ecSEC1PEM()}, want: []string{"private_key", "EC"}},
		{name: "Ed25519 key", path: "config/good",
			data: map[string]interface{}{"private_key": ed25519PEM()}, want: []string{"private_key", "Ed25519"}},
		{name: "RSA 1024", path: "config/good",
			data: map[string]interface{}{"private_key": rsa1024PEM()}, want: []string{"private_key", "2048"}},
		{name: "legacy encrypted key without password", path: "config/good",
			data: map[string]interface{}{"private_key": a.legacyAES}, want: []string{"private_key_password"}},
		{name: "encrypted PKCS#8 without password", path: "config/new",
			data: map[string]interface{}{"private_key": a.encPKCS8}, want: []string{"private_key_password"}},
		{name: "legacy encrypted key, wrong password", path: "config/good",
			data: map[string]interface{}{"private_key": a.legacyAES, "private_key_password": "wrong"}, want: []string{"private_key_password", "does not decrypt"}},
		{name: "encrypted PKCS#8, wrong password", path: "config/good",
			data: map[string]interface{}{"private_key": a.encPKCS8, "private_key_password": "wrong"}, want: []string{"private_key_password", "does not decrypt"}},
		{name: "empty private_key", path: "config/good",
			data: map[string]interface{}{"private_key": "  \n"}, want: []string{"private_key", "empty"}},
		{name: "oversized private_key", path: "config/good",
			data: map[string]interface{}{"private_key": oversizedKey}, want: []string{"private_key", "bytes"}},
		{name: "neither private_key nor generate_key", path: "config/new",
			data: map[string]interface{}{"app_id": appID2}, want: []string{"private_key", "generate_key"}},
		{name: "private_key and generate_key", path: "config/good",
			data: map[string]interface{}{"private_key": a.pkcs8, "generate_key": true}, want: []string{"private_key and generate_key"}},
		{name: "private_key_password without private_key", path: "config/good",
			data: map[string]interface{}{"private_key_password": testPassword}, want: []string{"private_key_password"}},

		// ---- config: key generation ----
		{name: "key_bits 1024", path: "config/good",
			data: map[string]interface{}{"generate_key": true, "key_bits": 1024}, want: []string{"key_bits", "2048, 3072 or 4096"}},
		{name: "key_bits 5000", path: "config/new",
			data: map[string]interface{}{"generate_key": true, "key_bits": 5000}, want: []string{"key_bits", "5000"}},
		{name: "key_bits abc", path: "config/good",
			data: map[string]interface{}{"generate_key": true, "key_bits": "abc"}, want: []string{"key_bits"}},
		{name: "key_bits without generate_key", path: "config/good",
			data: map[string]interface{}{"key_bits": 4096}, want: []string{"key_bits", "generate_key"}},
		{name: "generate_key not a bool", path: "config/good",
			data: map[string]interface{}{"generate_key": "perhaps"}, want: []string{"generate_key"}},

		// ---- config: token_url ----
		{name: "ftp token_url", path: "config/good",
			data: map[string]interface{}{"token_url": "ftp://api.pure1.purestorage.com/token"}, want: []string{"token_url", "ftp"}},
		{name: "http token_url to a non-loopback host", path: "config/good",
			data: map[string]interface{}{"token_url": "http://api.pure1.purestorage.com/oauth2/1.0/token"}, want: []string{"token_url", "https"}},
		{name: "http token_url to a private address", path: "config/good",
			data: map[string]interface{}{"token_url": "http://10.0.0.8/oauth2/1.0/token"}, want: []string{"token_url", "loopback"}},
		{name: "unparseable token_url", path: "config/good",
			data: map[string]interface{}{"token_url": "https://[::1"}, want: []string{"token_url", "absolute URL"}},
		{name: "relative token_url", path: "config/good",
			data: map[string]interface{}{"token_url": "/oauth2/1.0/token"}, want: []string{"token_url", "absolute URL"}},
		{name: "token_url with user:pass", path: "config/good",
			data: map[string]interface{}{"token_url": "https://user:secret@api.pure1.purestorage.com/oauth2/1.0/token"}, want: []string{"token_url", "user name or password"}},

		// ---- config: app_id and others ----
		{name: "app_id without the prefix", path: "config/good",
			data: map[string]interface{}{"app_id": "apikey:1234"}, want: []string{"app_id", "pure1:apikey:"}},
		{name: "app_id with a bad character", path: "config/good",
			data: map[string]interface{}{"app_id": "pure1:apikey:abc/def"}, want: []string{"app_id", "character"}},
		{name: "app_id prefix only", path: "config/good",
			data: map[string]interface{}{"app_id": "pure1:apikey:"}, want: []string{"app_id"}},
		{name: "oversized app_id", path: "config/good",
			data: map[string]interface{}{"app_id": "pure1:apikey:" + strings.Repeat("x", 300)}, want: []string{"app_id", "bytes"}},
		{name: "unknown config field", path: "config/good",
			data: map[string]interface{}{"privat_key": a.pkcs8}, want: []string{"privat_key", "unknown field"}},
		{name: "good key with a bad app_id in the same write", path: "config/good",
			data: map[string]interface{}{"private_key": keyC().pkcs8, "app_id": "nope"}, want: []string{"app_id"}},

		// ---- roles ----
		{name: "role without config", path: "roles/new",
			data: map[string]interface{}{"credential_type": "jwt"}, want: []string{"config is required"}},
		{name: "role on an unknown config", path: "roles/new",
			data: map[string]interface{}{"config": "missing"}, want: []string{`config "missing" does not exist`}},
		{name: "rewrite a role onto an unknown config", path: "roles/jwt",
			data: map[string]interface{}{"config": "missing"}, want: []string{`config "missing" does not exist`}},
		{name: "role config with a bad name", path: "roles/new",
			data: map[string]interface{}{"config": "../etc"}, want: []string{"config", "not a valid config name"}},
		{name: "bad credential_type", path: "roles/jwt",
			data: map[string]interface{}{"credential_type": "password"}, want: []string{"credential_type"}},
		{name: "negative ttl", path: "roles/jwt",
			data: map[string]interface{}{"ttl": "-5m"}, want: []string{"ttl", "negative"}},
		{name: "negative max_ttl", path: "roles/at",
			data: map[string]interface{}{"max_ttl": -60}, want: []string{"max_ttl", "negative"}},
		{name: "ttl not a duration", path: "roles/jwt",
			data: map[string]interface{}{"ttl": "soon"}, want: []string{"ttl"}},
		{name: "ttl over max_ttl", path: "roles/jwt",
			data: map[string]interface{}{"ttl": "3h"}, want: []string{"ttl", "max_ttl"}},
		{name: "ttl over the mount max", path: "roles/at",
			data: map[string]interface{}{"ttl": "48h"}, want: []string{"ttl", "max lease TTL"}},
		{name: "max_ttl over the mount max", path: "roles/new",
			data: map[string]interface{}{"config": "good", "max_ttl": "25h"}, want: []string{"max_ttl", "max lease TTL"}},
		{name: "reuse_access_token on a jwt role", path: "roles/jwt",
			data: map[string]interface{}{"reuse_access_token": true}, want: []string{"reuse_access_token", "access_token"}},
		{name: "jwt type on a reuse role", path: "roles/at",
			data: map[string]interface{}{"credential_type": "jwt"}, want: []string{"reuse_access_token"}},
		{name: "reuse_margin too long", path: "roles/at",
			data: map[string]interface{}{"reuse_margin": "6h"}, want: []string{"reuse_margin"}},
		{name: "unknown role field", path: "roles/at",
			data: map[string]interface{}{"tll": "1h"}, want: []string{"tll", "unknown field"}},

		// ---- creds ----
		{name: "creds for an unknown role", op: logical.ReadOperation, path: "creds/nope",
			want: []string{`role "nope" does not exist`}},
		{name: "creds for a config without app_id", op: logical.ReadOperation, path: "creds/noapp",
			want: []string{"app_id", `config "noapp"`}},
	}
	if len(cases) < 25 {
		t.Fatalf("only %d bad-input cases", len(cases))
	}
	t.Logf("%d bad-input cases", len(cases))

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newBadInputEnv(t)
			before := e.snapshot()
			// What the request might overwrite, as read through the backend.
			readBack := func() (interface{}, interface{}) {
				g, _ := e.read("config/good")
				j, _ := e.read("roles/jwt")
				return responseJSON(t, g), responseJSON(t, j)
			}
			cfgBefore, roleBefore := readBack()

			op := tc.op
			if op == "" {
				op = logical.UpdateOperation
			}
			var resp *logical.Response
			var err error
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("panic: %v", p)
					}
				}()
				resp, err = e.request(op, tc.path, tc.data)
			}()

			msg := errorText(resp, err)
			if msg == "" {
				t.Fatalf("accepted; response %#v", resp)
			}
			if st := httpStatus(resp, err); st < 400 || st > 499 {
				t.Errorf("status %d, want 4xx", st)
			}
			if resp != nil && resp.Secret != nil {
				t.Errorf("a lease came with the error")
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
			if d := diffSnapshots(before, e.snapshot()); d != "" {
				t.Errorf("storage changed: %s", d)
			}
			cfgAfter, roleAfter := readBack()
			if !reflect.DeepEqual(cfgBefore, cfgAfter) || !reflect.DeepEqual(roleBefore, roleAfter) {
				t.Errorf("config/good or roles/jwt reads differently after the refused request")
			}
			// The mount still works.
			e.creds("jwt")
		})
	}
}

// responseJSON is a response as a client would receive it.
func responseJSON(t testing.TB, resp *logical.Response) string {
	t.Helper()
	b, err := json.Marshal(resp)
	if err != nil {
		t.Fatalf("marshalling a response: %v", err)
	}
	return string(b)
}
