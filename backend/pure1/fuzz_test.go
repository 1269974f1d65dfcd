package pure1

import (
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// keySentinels: every ParsePrivateKey error wraps one of them.
var keySentinels = []error{
	ErrNotPEM, ErrPublicKey, ErrNotRSA, ErrKeyTooSmall, ErrKeyTooLarge, ErrWeakExponent,
	ErrPasswordRequired, ErrWrongPassword, ErrUnsupportedKey,
}

var keyFormats = map[string]bool{
	"PKCS#1": true, "PKCS#8": true, "encrypted PKCS#8": true, "encrypted PEM (legacy)": true,
}

// fuzzCanaryPassword never occurs in an error message by chance.
const fuzzCanaryPassword = "zQ9#canary#Wx7"

func FuzzParsePrivateKey(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil {
		f.Fatal(err)
	}
	var seeds [][]byte
	for _, path := range files {
		if strings.HasSuffix(path, ".sh") || strings.HasSuffix(path, ".txt") {
			continue
		}
		if st, err := os.Stat(path); err != nil || st.IsDir() {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, data)
	}
	// Damaged encrypted keys that used to panic or exhaust memory.
	seeds = append(seeds,
		forgeEncryptedPKCS8(f, "rsa2048-enc-pkcs8.pem", func(info *fxEncryptedKeyInfo, _ *fxPBES2Params) {
			info.Data = info.Data[:len(info.Data)-5]
		}),
		forgeEncryptedPKCS8(f, "rsa2048-enc-pkcs8.pem", func(_ *fxEncryptedKeyInfo, params *fxPBES2Params) {
			params.Cipher.Parameters = asn1.RawValue{FullBytes: mustMarshal(f, make([]byte, 12))}
		}),
		append(readFixture(f, "rsa2048-cert.pem"), readFixture(f, "rsa2048-pkcs1.pem")...),
		[]byte("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"),
		[]byte{},
	)
	if _, err := os.Stat(filepath.Join("testdata", "rsa2048-enc-pkcs8-scrypt.pem")); err == nil {
		seeds = append(seeds, forgeEncryptedPKCS8(f, "rsa2048-enc-pkcs8-scrypt.pem", func(_ *fxEncryptedKeyInfo, params *fxPBES2Params) {
			editScrypt(f, params, func(p *fxScryptParams) { p.N = 1 << 30 })
		}))
	}
	for _, s := range seeds {
		f.Add(s, []byte{})
		f.Add(s, []byte(testPassword))
		f.Add(s, []byte(wrongPassword))
	}

	f.Fuzz(func(t *testing.T, data, password []byte) {
		key, err := ParsePrivateKey(data, password)
		if err != nil {
			if key != nil {
				t.Fatalf("key and error %v", err)
			}
			checkKeyError(t, err, data, password)
			return
		}
		if bits := key.Bits(); bits < MinKeyBits || bits > MaxKeyBits {
			t.Fatalf("accepted a %d-bit key", bits)
		}
		if !keyFormats[key.Format] {
			t.Fatalf("format %q", key.Format)
		}
		if strings.HasPrefix(key.Format, "encrypted") && len(password) == 0 {
			t.Fatalf("decrypted a %s key without a password", key.Format)
		}
		if len(key.Fingerprint()) != 64 || key.PublicKey().N.BitLen() != key.Bits() {
			t.Fatalf("fingerprint %q", key.Fingerprint())
		}
		if block, _ := pem.Decode([]byte(key.PublicKeyPEM())); block == nil || block.Type != "PUBLIC KEY" {
			t.Fatalf("PublicKeyPEM %q", key.PublicKeyPEM())
		}
	})
}

func checkKeyError(t *testing.T, err error, data, password []byte) {
	t.Helper()
	msg := err.Error()
	n := 0
	for _, s := range keySentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("error %q wraps %d of the key sentinels, want exactly 1", msg, n)
	}
	if !utf8.ValidString(msg) {
		t.Fatalf("error is not UTF-8: %q", msg)
	}
	if len(password) >= 4 && strings.Contains(msg, string(password)) {
		// Either an echo, or the password happens to be words of the message:
		// the same input with another password tells which.
		_, err2 := ParsePrivateKey(data, []byte(fuzzCanaryPassword))
		if err2 == nil || !strings.Contains(err2.Error(), string(password)) || strings.Contains(err2.Error(), fuzzCanaryPassword) {
			t.Fatalf("error echoes the password %q: %q", password, msg)
		}
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if base64Line.MatchString(line) && strings.Contains(msg, line) {
			t.Fatalf("error echoes input line %q: %q", line, msg)
		}
	}
}

func FuzzParseTokenResponse(f *testing.F) {
	access := makeAccessToken(f, jwt.MapClaims{"org": "4242", "max_role": "pure1:admin", "exp": 1767323045})
	for _, s := range []struct {
		status      int
		body        string
		retryAfter  string
		rateLimited string
	}{
		{200, okBody(access, 35999), "", ""},
		{200, okBody(access, 90.5), "", ""},
		{200, okBody("opaque", 1), "", ""},
		{200, okBody(access, "1e20"), "", ""},
		{200, okBody(access, "1e-12"), "", ""},
		{200, okBody(access, "1e10"), "", ""},
		{200, okBody(access, 0), "", ""},
		{200, okBody("", 35999), "", ""},
		{200, `{"access_token":"x","token_type":"MAC","expires_in":60}`, "", ""},
		{200, `{"access_token":"x","expires_in":"60"}`, "", ""},
		{200, `{"access_token":"abc","expires_in":35`, "", ""},
		{200, "<html>" + strings.Repeat("é", 30) + "</html>", "", ""},
		{200, "null", "", ""},
		{200, "", "", ""},
		{400, `{"error":"invalid_request","error_description":"Missing subject_token"}`, "", ""},
		{401, `{"error":"invalid_client","error_description":"Invalid identity: JWT validation failed."}`, "", ""},
		{403, "<html>" + strings.Repeat("ü", 150) + "</html>", "", ""},
		{403, "<htm>" + strings.Repeat("ü", 150), "", ""}, // byte 200 is inside a character
		{429, "", "1", "0"},
		{429, "", "18446744074", ""},
		{429, "", "Fri, 31 Dec 9999 23:59:59 GMT", "0"},
		{429, `{"error":"slow_down"}`, "-1", "x\x00y"},
		{500, "<html>stack</html>", "", ""},
		{502, "", "2", ""},
		{503, `{"error":"temporarily_unavailable","error_description":"\u001b[31m"}`, "9223372037", ""},
		{504, "", "99999999999999999999", ""},
		{302, "", "", ""},
		{0, "", "", ""},
		{-1, "{}", "", ""},
		{999, "{}", "", ""},
	} {
		f.Add(s.status, []byte(s.body), s.retryAfter, s.rateLimited)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)

	f.Fuzz(func(t *testing.T, status int, body []byte, retryAfter, rateLimited string) {
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		h.Set("X-RateLimit-Remaining", rateLimited)
		tok, err := ParseTokenResponse(status, h, body, now, now)
		if err == nil {
			switch {
			case status != http.StatusOK:
				t.Fatalf("HTTP %d accepted", status)
			case tok == nil || tok.Token == "" || tok.TokenType != "Bearer":
				t.Fatalf("token %+v", tok)
			case tok.ExpiresIn <= 0:
				t.Fatalf("ExpiresIn %v", tok.ExpiresIn)
			case tok.ExpiresAt.After(now.Add(tok.ExpiresIn)):
				t.Fatalf("ExpiresAt %v after now+ExpiresIn %v", tok.ExpiresAt, now.Add(tok.ExpiresIn))
			case tok.ExpiresAt.Location() != time.UTC:
				t.Fatalf("ExpiresAt not UTC: %v", tok.ExpiresAt)
			}
			return
		}
		if tok != nil {
			t.Fatalf("token and error %v", err)
		}
		msg := err.Error()
		if !utf8.ValidString(msg) || strings.ContainsFunc(msg, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("error is not clean printable text: %q", msg)
		}
		var apiErr *APIError
		isAPI := errors.As(err, &apiErr)
		if status == http.StatusOK {
			if !errors.Is(err, ErrBadResponse) || isAPI || errors.Is(err, ErrRejected) || errors.Is(err, ErrUnavailable) {
				t.Fatalf("200 error %q is not just ErrBadResponse", msg)
			}
			return
		}
		if !isAPI || apiErr.StatusCode != status {
			t.Fatalf("HTTP %d: error %q is not its *APIError", status, msg)
		}
		if errors.Is(err, ErrRejected) == errors.Is(err, ErrUnavailable) || errors.Is(err, ErrBadResponse) {
			t.Fatalf("HTTP %d: error %q classified ambiguously", status, msg)
		}
		if apiErr.RetryAfter < 0 {
			t.Fatalf("negative RetryAfter %v from %q", apiErr.RetryAfter, retryAfter)
		}
		// A numeric Retry-After never shrinks (no wraparound).
		if n, err := strconv.ParseInt(strings.TrimSpace(retryAfter), 10, 64); err == nil && n > 0 {
			if want := time.Duration(min(n, 1<<30)) * time.Second; apiErr.RetryAfter < want {
				t.Fatalf("Retry-After %q read as %v, want at least %v", retryAfter, apiErr.RetryAfter, want)
			}
		}
	})
}

func FuzzDecodeAccessTokenClaims(f *testing.F) {
	for _, s := range []string{
		"", "..", "a.b.c", makeAccessToken(f, jwt.MapClaims{"org": "1", "max_role": "r", "exp": 1767323045}),
		"x." + segment(`{"exp":1e400}`) + ".y", "x." + segment(`{"org":1e308,"exp":-0}`) + ".y",
		"x." + segment(`{"exp":99999999999.9}`) + "==.y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		c := DecodeAccessTokenClaims(token)
		if !c.Expiry.IsZero() && (c.Expiry.Unix() < 0 || c.Expiry.Unix() >= 1e11) {
			t.Fatalf("expiry %v out of range", c.Expiry)
		}
		if c != (AccessTokenClaims{}) && strings.Count(token, ".") != 2 {
			t.Fatalf("claims %+v from a token without three segments", c)
		}
	})
}
