package purearray

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
)

// Each kind's name rule, as its array (Purity's object names on a
// FlashArray, Pure's FlashBlade Ansible collection) applies it.
func TestCheckClientName(t *testing.T) {
	for _, tc := range []struct {
		kind   *Kind
		accept []string
		refuse []string
	}{
		{FlashArray,
			[]string{"a", "7", "vault-my-conf", "a-b--c", "1abc", "A-Z", strings.Repeat("x", 63)},
			[]string{"", "-a", "a-", ".a", "a.", "_a", "a_", "vault-my.conf", "vault_my_conf", "a b", "a/b", "a:b", "ä", "vault\nx", strings.Repeat("x", 64)}},
		{FlashBlade,
			[]string{"a", "7", "vault_my_conf", "A_1", "a__b", strings.Repeat("x", 56)},
			[]string{"", "vault-my", "a.b", "_a", "a_", "a b", "a/b", "ä", "vault\nx", strings.Repeat("x", 57)}},
	} {
		t.Run(tc.kind.Name, func(t *testing.T) {
			for _, name := range tc.accept {
				if err := tc.kind.CheckClientName("api_client_name", name); err != nil {
					t.Errorf("%q refused: %v", name, err)
				}
			}
			for _, name := range tc.refuse {
				err := tc.kind.CheckClientName("api_client_name", name)
				if err == nil {
					t.Errorf("%q accepted", name)
					continue
				}
				// The message names the field, the kind and the rule, and
				// echoes the name printable and short.
				msg := err.Error()
				for _, want := range []string{"api_client_name ", tc.kind.Product + " API client name", tc.kind.nameRule} {
					if !strings.Contains(msg, want) {
						t.Errorf("%q: %q does not say %q", name, msg, want)
					}
				}
				if strings.ContainsAny(msg, "\n\r") || len(msg) > 400 {
					t.Errorf("%q: message not printable or too long: %q", name, msg)
				}
			}
		})
	}
	if err := FlashBlade.CheckClientName("f", strings.Repeat("y", 200)); err == nil || !strings.Contains(err.Error(), strings.Repeat("y", 80)+"...") {
		t.Errorf("a long name is not shortened in the message: %v", err)
	}
}

// The default managed name is valid on its kind: vault-<config> with '_'
// and '.' made '-' on a FlashArray, vault_<config> with '-' and '.' made '_'
// on a FlashBlade; cut to MaxBaseName, ending with a letter or digit.
func TestDefaultClientName(t *testing.T) {
	for _, tc := range []struct {
		config, flasharray, flashblade string
	}{
		{"my.conf", "vault-my-conf", "vault_my_conf"},
		{"my-conf", "vault-my-conf", "vault_my_conf"},
		{"a_b", "vault-a-b", "vault_a_b"},
		{"prod", "vault-prod", "vault_prod"},
		{"a-b.c", "vault-a-b-c", "vault_a_b_c"},
		{"x_", "vault-x", "vault_x"},
		{strings.Repeat("c", 50), "vault-" + strings.Repeat("c", 34), "vault_" + strings.Repeat("c", 34)},
		{strings.Repeat("c", 33) + "-d", "vault-" + strings.Repeat("c", 33), "vault_" + strings.Repeat("c", 33)},
	} {
		for _, k := range []struct {
			kind *Kind
			want string
		}{{FlashArray, tc.flasharray}, {FlashBlade, tc.flashblade}} {
			got := k.kind.DefaultClientName(tc.config)
			if got != k.want {
				t.Errorf("%s.DefaultClientName(%q) = %q, want %q", k.kind.Name, tc.config, got, k.want)
			}
			if err := k.kind.CheckClientName("api_client_name", got); err != nil {
				t.Errorf("%s's default name for %q is refused by its own rule: %v", k.kind.Name, tc.config, err)
			}
		}
	}
}

// A rotated client's name joins the base and the time as the kind allows,
// and stays valid for the longest base a config accepts (40 characters)
// with the second-rotation suffix.
func TestSuffixedName(t *testing.T) {
	if got := FlashArray.SuffixedName("vault-prod", "1700000000"); got != "vault-prod-1700000000" {
		t.Errorf("FlashArray: %q", got)
	}
	if got := FlashBlade.SuffixedName("vault_prod", "1700000000"); got != "vault_prod_1700000000" {
		t.Errorf("FlashBlade: %q", got)
	}
	for _, k := range Kinds {
		name := k.SuffixedName(k.SuffixedName(strings.Repeat("v", 40), "1700000000"), "2")
		if err := k.CheckClientName("api_client_name", name); err != nil {
			t.Errorf("%s: %v", k.Name, err)
		}
	}
}

func TestKindNamed(t *testing.T) {
	if KindNamed("flasharray") != FlashArray || KindNamed("flashblade") != FlashBlade {
		t.Error("KindNamed does not find the kinds")
	}
	for _, name := range []string{"", "pure1", "FlashArray", "flash_blade"} {
		if k := KindNamed(name); k != nil {
			t.Errorf("KindNamed(%q) = %s, want nil", name, k.Name)
		}
	}
	if len(Kinds) != 2 || Kinds[0] != FlashArray {
		t.Errorf("Kinds = %v, want FlashArray first", Kinds)
	}
}

// max_role in a create body: a string on a FlashArray, {"name": role} on a
// FlashBlade; Role reads back either, and whatever else a FlashBlade's
// reference carries.
func TestMaxRole(t *testing.T) {
	for _, tc := range []struct {
		kind *Kind
		want string
	}{{FlashArray, `"readonly"`}, {FlashBlade, `{"name":"readonly"}`}} {
		raw, err := json.Marshal(tc.kind.maxRoleValue("readonly"))
		if err != nil || string(raw) != tc.want {
			t.Errorf("%s max_role = %s %v, want %s", tc.kind.Name, raw, err, tc.want)
		}
		if got := (&APIClient{MaxRole: raw}).Role(); got != "readonly" {
			t.Errorf("%s: Role() of %s = %q", tc.kind.Name, raw, got)
		}
	}
	for _, tc := range []struct{ raw, want string }{
		{`"array_admin"`, "array_admin"},
		{`{"name":"storage_admin","id":"a1","resource_type":"roles"}`, "storage_admin"},
		{`{"id":"a1"}`, ""},
		{``, ""},
		{`null`, ""},
		{`7`, ""},
		{`["readonly"]`, ""},
	} {
		if got := (&APIClient{MaxRole: json.RawMessage(tc.raw)}).Role(); got != tc.want {
			t.Errorf("Role() of %s = %q, want %q", tc.raw, got, tc.want)
		}
	}
}

// testdataPEM reads one of pure1's key fixtures.
func testdataPEM(t testing.TB, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "pure1", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// fixtureKey is one of pure1's unencrypted RSA key fixtures.
func fixtureKey(t testing.TB, name string) *pure1.Key {
	t.Helper()
	k, err := pure1.ParsePrivateKey([]byte(testdataPEM(t, name)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// HasKey tells Vault's client by the fingerprint of its key, however the
// array wraps the PEM it echoes, and is false for anything it cannot read.
func TestHasKey(t *testing.T) {
	// rsa2048-public.pem is rsa2048-pkcs1.pem's public key; its
	// fingerprint is the one openssl computed into fingerprints.txt.
	const fixtureFP = "5a967309a7efbbcbb90c7d6378a4c8daff508e07759cdc74d59fc5680f221d86"
	pub := testdataPEM(t, "rsa2048-public.pem")
	gen, err := pure1.GenerateKey(2048)
	if err != nil {
		t.Fatal(err)
	}
	other := fixtureKey(t, "rsa2048-pkcs8.pem")
	body := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(pub), "-----BEGIN PUBLIC KEY-----\n"), "\n-----END PUBLIC KEY-----")
	for _, tc := range []struct {
		name      string
		publicKey string
		fp        string
		want      bool
	}{
		{"fixture", pub, fixtureFP, true},
		{"fixture, CRLF lines", strings.ReplaceAll(pub, "\n", "\r\n"), fixtureFP, true},
		{"fixture, no final newline", strings.TrimSpace(pub), fixtureFP, true},
		{"fixture, base64 on one line", "-----BEGIN PUBLIC KEY-----\n" + strings.ReplaceAll(body, "\n", "") + "\n-----END PUBLIC KEY-----\n", fixtureFP, true},
		{"generated key", gen.PublicKeyPEM(), gen.Fingerprint(), true},
		{"another key", other.PublicKeyPEM(), fixtureFP, false},
		{"fingerprint in upper case", pub, strings.ToUpper(fixtureFP), false},
		{"empty fingerprint", pub, "", false},
		{"no public key shown", "", fixtureFP, false},
		{"PKCS#1 RSA PUBLIC KEY", testdataPEM(t, "rsa2048-public-pkcs1.pem"), fixtureFP, false},
		{"certificate", testdataPEM(t, "rsa2048-cert.pem"), fixtureFP, false},
		{"private key", testdataPEM(t, "rsa2048-pkcs1.pem"), fixtureFP, false},
		{"garbage", "not a key", fixtureFP, false},
		{"garbage in a PUBLIC KEY block", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", fixtureFP, false},
	} {
		if got := (&APIClient{PublicKey: tc.publicKey}).HasKey(tc.fp); got != tc.want {
			t.Errorf("%s: HasKey = %v, want %v", tc.name, got, tc.want)
		}
	}
	var none *APIClient
	if none.HasKey(fixtureFP) {
		t.Error("a nil client has a key")
	}
	if gen.Fingerprint() == fixtureFP || other.Fingerprint() == fixtureFP {
		t.Fatal("fixtures are not distinct keys")
	}
}

// The session paths, per kind, as Pure's SDK calls them.
func TestSessionPaths(t *testing.T) {
	for _, tc := range []struct {
		kind          *Kind
		login, logout string
	}{
		{FlashArray, "/api/2.30/login", "/api/2.30/logout"},
		{FlashBlade, "/api/login", "/api/logout"},
	} {
		if got := tc.kind.sessionPath("2.30", "login"); got != tc.login {
			t.Errorf("%s login at %s, want %s", tc.kind.Name, got, tc.login)
		}
		if got := tc.kind.sessionPath("2.30", "logout"); got != tc.logout {
			t.Errorf("%s logout at %s, want %s", tc.kind.Name, got, tc.logout)
		}
	}
}
