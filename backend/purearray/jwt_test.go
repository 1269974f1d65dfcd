package purearray

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
)

// fixedKey is pure1's PKCS#8 test fixture: a fixed key makes the RS256
// signature (PKCS#1 v1.5, deterministic) and so the whole JWT fixed bytes.
func fixedKey(t testing.TB) *pure1.Key {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "pure1", "testdata", "rsa2048-pkcs8.pem"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := pure1.ParsePrivateKey(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The JWT an array takes: header alg, kid, typ; claims aud (one string, not
// a list), exp, iat, iss, sub, nothing else; signed RS256 with the key.
func TestSignJWTBytes(t *testing.T) {
	key := fixedKey(t)
	id := Identity{ClientID: "6207d123-d123-0b5c-5fa1-95fabc5c7123", KeyID: "a2b2f3c4-0000-1111-2222-333344445555", Issuer: "vault-fa"}
	iat := time.Date(2031, 3, 14, 15, 9, 26, 0, time.UTC).Unix()
	tok, err := SignJWT(id, key, "pureuser", iat, iat+60)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS compact serialisation: %q", tok)
	}
	for i, want := range []string{
		`{"alg":"RS256","kid":"a2b2f3c4-0000-1111-2222-333344445555","typ":"JWT"}`,
		`{"aud":"6207d123-d123-0b5c-5fa1-95fabc5c7123","exp":1931267426,"iat":1931267366,"iss":"vault-fa","sub":"pureuser"}`,
	} {
		got, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if string(got) != want {
			t.Errorf("part %d = %s\nwant      %s", i, got, want)
		}
	}
	// The signature verifies with the public key alone, by the standard
	// library rather than the JWT library that made it.
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode([]byte(key.PublicKeyPEM()))
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, sum[:], sig); err != nil {
		t.Errorf("signature does not verify: %v", err)
	}
	// Deterministic: the same inputs give the same bytes.
	again, _ := SignJWT(id, key, "pureuser", iat, iat+60)
	if again != tok {
		t.Error("signing twice gave different JWTs")
	}
}

func TestSignerRefuses(t *testing.T) {
	key := fixedKey(t)
	for _, tc := range []struct {
		name string
		id   Identity
		want string
	}{
		{"no client id", Identity{KeyID: "k", Issuer: "i"}, "client_id is empty"},
		{"no key id", Identity{ClientID: "c", Issuer: "i"}, "key_id is empty"},
		{"no issuer", Identity{ClientID: "c", KeyID: "k"}, "issuer is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewSigner(tc.id, key); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewSigner: %v, want %q", err, tc.want)
			}
		})
	}
	s, err := NewSigner(Identity{ClientID: "c", KeyID: "k", Issuer: "i"}, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Sign(time.Now(), time.Minute, ""); err == nil || !strings.Contains(err.Error(), "username") {
		t.Errorf("Sign without a user: %v, want a refusal naming username", err)
	}
	now := time.Unix(1931267366, 500)
	_, exp, err := s.Sign(now, time.Minute, "u")
	if err != nil || exp.Unix() != 1931267426 {
		t.Errorf("Sign: exp %v, %v; want iat (whole seconds) + 60", exp, err)
	}
}
