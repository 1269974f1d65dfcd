package pure1

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const testAppID = "pure1:apikey:TestApp_0123-abcXYZ"

var (
	sharedKeysOnce sync.Once
	sharedKeys     map[string]*Key
	sharedKeysErr  error
)

// sharedKey is a parsed fixture shared by tests that only read it.
func sharedKey(t testing.TB, fixture string) *Key {
	t.Helper()
	sharedKeysOnce.Do(func() {
		sharedKeys = map[string]*Key{}
		for _, f := range []string{"rsa2048-pkcs1.pem", "rsa2048-pkcs8.pem", "rsa3072-pkcs8.pem"} {
			data, err := readFixtureErr(f)
			if err == nil {
				sharedKeys[f], err = ParsePrivateKey(data, nil)
			}
			if err != nil {
				sharedKeysErr = err
				return
			}
		}
	})
	if sharedKeysErr != nil {
		t.Fatalf("loading shared keys: %v", sharedKeysErr)
	}
	k, ok := sharedKeys[fixture]
	if !ok {
		t.Fatalf("no shared key %s", fixture)
	}
	return k
}

// jwtParts splits a compact JWS and decodes its segments, failing on padding
// or any alphabet other than base64url.
func jwtParts(t testing.TB, token string) (header, payload, sig []byte) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("JWT has %d segments: %q", len(parts), token)
	}
	dec := func(s string) []byte {
		b, err := base64.RawURLEncoding.Strict().DecodeString(s)
		if err != nil {
			t.Fatalf("segment %q is not unpadded base64url: %v", s, err)
		}
		return b
	}
	return dec(parts[0]), dec(parts[1]), dec(parts[2])
}

// assertPure1Claims checks the payload is exactly {iss, iat, exp} with
// integer seconds.
func assertPure1Claims(t testing.TB, payload []byte, appID string, iat, exp int64) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	var claims map[string]any
	if err := d.Decode(&claims); err != nil {
		t.Fatalf("claims are not a JSON object: %v: %s", err, payload)
	}
	keys := make([]string, 0, len(claims))
	for k := range claims {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if got := strings.Join(keys, ","); got != "exp,iat,iss" {
		t.Fatalf("claim names = %s, want exactly exp,iat,iss: %s", got, payload)
	}
	if claims["iss"] != appID {
		t.Errorf("iss = %#v, want %q", claims["iss"], appID)
	}
	for name, want := range map[string]int64{"iat": iat, "exp": exp} {
		n, ok := claims[name].(json.Number)
		if !ok {
			t.Errorf("%s = %#v, not a JSON number", name, claims[name])
			continue
		}
		if strings.ContainsAny(n.String(), ".eE+-") {
			t.Errorf("%s = %s, not an integer in plain notation", name, n)
		}
		if got, err := n.Int64(); err != nil || got != want {
			t.Errorf("%s = %s, want %d", name, n, want)
		}
	}
}

func TestSignJWTWireFormat(t *testing.T) {
	t.Parallel()
	key := sharedKey(t, "rsa2048-pkcs1.pem")
	other := sharedKey(t, "rsa2048-pkcs8.pem")
	now := time.Now().Unix()

	for _, c := range []struct {
		name     string
		appID    string
		iat, exp int64
	}{
		{"now, five minutes", testAppID, now, now + 300},
		{"one second", testAppID, 1700000000, 1700000001},
		{"ten-digit boundary", "pure1:apikey:x", 999999999, 1000000000},
		{"far future (no exponent notation)", testAppID, 4102444800, 4102448400},
		{"year 2286 (11 digits)", testAppID, 9999999999, 10000003599},
		{"app id with every allowed character class", "pure1:apikey:aZ09-_", 1700000000, 1700003600},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			token, err := SignJWT(c.appID, key, c.iat, c.exp)
			if err != nil {
				t.Fatalf("SignJWT: %v", err)
			}
			header, payload, sig := jwtParts(t, token)
			if string(header) != `{"alg":"RS256","typ":"JWT"}` {
				t.Errorf("header = %s, want exactly {\"alg\":\"RS256\",\"typ\":\"JWT\"}", header)
			}
			assertPure1Claims(t, payload, c.appID, c.iat, c.exp)

			// crypto/rsa, independent of any JWT library.
			signed := token[:strings.LastIndexByte(token, '.')]
			digest := sha256.Sum256([]byte(signed))
			if err := rsa.VerifyPKCS1v15(key.PublicKey(), crypto.SHA256, digest[:], sig); err != nil {
				t.Errorf("crypto/rsa rejects the signature: %v", err)
			}
			if err := rsa.VerifyPKCS1v15(other.PublicKey(), crypto.SHA256, digest[:], sig); err == nil {
				t.Error("the signature verifies with an unrelated key")
			}
			if len(sig) != key.Bits()/8 {
				t.Errorf("signature is %d bytes, want %d", len(sig), key.Bits()/8)
			}

			// golang-jwt, as a Pure1-like verifier would use it.
			parser := jwt.NewParser(
				jwt.WithValidMethods([]string{"RS256"}),
				jwt.WithIssuer(c.appID),
				jwt.WithIssuedAt(),
				jwt.WithExpirationRequired(),
				jwt.WithStrictDecoding(),
				jwt.WithTimeFunc(func() time.Time { return time.Unix(c.iat, 0) }),
			)
			var claims jwt.RegisteredClaims
			parsed, err := parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return key.PublicKey(), nil })
			if err != nil || !parsed.Valid {
				t.Fatalf("jwt/v5 rejects the token: %v", err)
			}
			if claims.IssuedAt.Unix() != c.iat || claims.ExpiresAt.Unix() != c.exp {
				t.Errorf("jwt/v5 reads iat=%v exp=%v", claims.IssuedAt, claims.ExpiresAt)
			}
			if _, err := parser.ParseWithClaims(token, &jwt.RegisteredClaims{}, func(*jwt.Token) (any, error) { return other.PublicKey(), nil }); !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
				t.Errorf("jwt/v5 with an unrelated key: %v, want ErrTokenSignatureInvalid", err)
			}
			// A flipped payload byte must break the signature.
			tampered := []byte(token)
			tampered[len(strings.SplitN(token, ".", 2)[0])+3] ^= 1
			if _, err := parser.Parse(string(tampered), func(*jwt.Token) (any, error) { return key.PublicKey(), nil }); err == nil {
				t.Error("jwt/v5 accepts a tampered token")
			}

			// RS256 (PKCS#1 v1.5) is deterministic: same inputs, same bytes.
			again, err := SignJWT(c.appID, key, c.iat, c.exp)
			if err != nil || again != token {
				t.Errorf("SignJWT is not deterministic: %v", err)
			}
		})
	}
}

func TestNewSigner(t *testing.T) {
	t.Parallel()
	key := sharedKey(t, "rsa2048-pkcs1.pem")
	if _, err := NewSigner(testAppID, nil); err == nil {
		t.Error("NewSigner accepted a nil key")
	}
	if _, err := NewSigner("apikey:nope", key); err == nil {
		t.Error("NewSigner accepted a malformed app id")
	}
	s, err := NewSigner(testAppID, key)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	if s.AppID() != testAppID || s.Key() != key {
		t.Errorf("AppID %q / Key %p, want %q / %p", s.AppID(), s.Key(), testAppID, key)
	}
}

func TestSignerSign(t *testing.T) {
	t.Parallel()
	key := sharedKey(t, "rsa2048-pkcs1.pem")
	s, err := NewSigner(testAppID, key)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Unix(1700000000, 0)

	fresh := func(iat int64, life time.Duration) string {
		t.Helper()
		tok, err := SignJWT(testAppID, key, iat, iat+int64(life/time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	// Steps run in order against one Signer: the cache is the point.
	steps := []struct {
		name      string
		now       time.Time
		life      time.Duration
		wantIat   int64
		wantLife  int64
		sameAsRef string // name of an earlier step whose token this must equal
		diffRef   string // name of an earlier step whose token this must differ from
		cached    bool   // must be served without signing
	}{
		{name: "first", now: base.Add(100 * time.Millisecond), life: 5 * time.Minute, wantIat: 1700000000, wantLife: 300},
		{name: "same second later", now: base.Add(999 * time.Millisecond), life: 5 * time.Minute, wantIat: 1700000000, wantLife: 300, sameAsRef: "first", cached: true},
		{name: "same second, other zone", now: base.Add(500 * time.Millisecond).In(time.FixedZone("X", 5*3600)), life: 5 * time.Minute, wantIat: 1700000000, wantLife: 300, sameAsRef: "first", cached: true},
		{name: "same second, other lifetime", now: base, life: time.Hour, wantIat: 1700000000, wantLife: 3600, diffRef: "first"},
		{name: "first lifetime again", now: base.Add(1 * time.Millisecond), life: 5 * time.Minute, wantIat: 1700000000, wantLife: 300, sameAsRef: "first", cached: true},
		{name: "fractional lifetime truncates", now: base, life: 300*time.Second + 999*time.Millisecond, wantIat: 1700000000, wantLife: 300, sameAsRef: "first", cached: true},
		{name: "next second", now: base.Add(time.Second), life: 5 * time.Minute, wantIat: 1700000001, wantLife: 300, diffRef: "first"},
		{name: "back one second", now: base, life: 5 * time.Minute, wantIat: 1700000000, wantLife: 300, sameAsRef: "first"},
		{name: "forward again", now: base.Add(1500 * time.Millisecond), life: 5 * time.Minute, wantIat: 1700000001, wantLife: 300, sameAsRef: "next second", cached: true},
		{name: "one-second lifetime", now: base, life: time.Second, wantIat: 1700000000, wantLife: 1},
	}
	got := map[string]string{}
	other := sharedKey(t, "rsa2048-pkcs8.pem")
	for _, st := range steps {
		if st.cached {
			// Swap the key under the Signer: only a reused JWT still carries
			// the right signature.
			s.key = other
		}
		tok, expiresAt, err := s.Sign(st.now, st.life)
		s.key = key
		if err != nil {
			t.Fatalf("%s: Sign: %v", st.name, err)
		}
		got[st.name] = tok
		if want := time.Unix(st.wantIat+st.wantLife, 0).UTC(); !expiresAt.Equal(want) || expiresAt.Location() != time.UTC {
			t.Errorf("%s: expiresAt = %v, want %v", st.name, expiresAt, want)
		}
		_, payload, _ := jwtParts(t, tok)
		assertPure1Claims(t, payload, testAppID, st.wantIat, st.wantIat+st.wantLife)
		// Reused or not, the bytes are what a fresh signature gives.
		if want := fresh(st.wantIat, time.Duration(st.wantLife)*time.Second); tok != want {
			if st.cached {
				t.Errorf("%s: the JWT was signed again, not reused", st.name)
			} else {
				t.Errorf("%s: Sign differs from a fresh SignJWT with the same claims", st.name)
			}
		}
		if st.sameAsRef != "" && tok != got[st.sameAsRef] {
			t.Errorf("%s: token differs from %q's", st.name, st.sameAsRef)
		}
		if st.diffRef != "" && tok == got[st.diffRef] {
			t.Errorf("%s: token equals %q's", st.name, st.diffRef)
		}
	}

	// Bad lifetimes.
	for _, life := range []time.Duration{0, -time.Second, 999 * time.Millisecond} {
		if tok, _, err := s.Sign(base, life); err == nil || tok != "" {
			t.Errorf("Sign(lifetime %v) = %q, %v; want an error", life, tok, err)
		}
	}
}

// TestSignerReusesSignature proves a same-second Sign does no RSA work: it
// allocates nothing, where a signature allocates dozens of objects.
func TestSignerReusesSignature(t *testing.T) {
	key := sharedKey(t, "rsa2048-pkcs1.pem")
	s, err := NewSigner(testAppID, key)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	first, _, err := s.Sign(now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var tok string
	reused := testing.AllocsPerRun(50, func() { tok, _, _ = s.Sign(now, time.Minute) })
	if tok != first {
		t.Fatal("same-second Sign returned a different token")
	}
	signing := testing.AllocsPerRun(5, func() { _, _ = SignJWT(testAppID, key, now.Unix(), now.Unix()+60) })
	if reused > 1 || signing < 10 {
		t.Errorf("same-second Sign allocates %.0f times, a fresh signature %.0f: the JWT is not being reused", reused, signing)
	}
}

func TestSignerConcurrent(t *testing.T) {
	t.Parallel()
	key := sharedKey(t, "rsa2048-pkcs1.pem")
	s, err := NewSigner(testAppID, key)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Unix(1700000000, 0)
	seconds := []int64{0, 1, 2}
	lives := []time.Duration{time.Minute, time.Hour}
	want := map[[2]int64]string{}
	for _, sec := range seconds {
		for _, life := range lives {
			iat := base.Unix() + sec
			tok, err := SignJWT(testAppID, key, iat, iat+int64(life/time.Second))
			if err != nil {
				t.Fatal(err)
			}
			want[[2]int64{sec, int64(life)}] = tok
		}
	}

	const goroutines, calls = 8, 40
	var wg sync.WaitGroup
	errs := make(chan string, goroutines*calls)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				sec := seconds[(g+i/8)%len(seconds)] // seconds advance and go back
				life := lives[(g+i)%len(lives)]
				now := base.Add(time.Duration(sec)*time.Second + time.Duration(i)*time.Millisecond)
				tok, exp, err := s.Sign(now, life)
				switch {
				case err != nil:
					errs <- err.Error()
				case tok != want[[2]int64{sec, int64(life)}]:
					errs <- "wrong token for second " + now.String() + " lifetime " + life.String()
				case exp.Unix() != base.Unix()+sec+int64(life/time.Second):
					errs <- "wrong expiry " + exp.String()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestValidateAppID(t *testing.T) {
	t.Parallel()
	long := AppIDPrefix + strings.Repeat("a", 256-len(AppIDPrefix))
	for _, c := range []struct {
		id string
		ok bool
	}{
		{"pure1:apikey:dssf2331sd", true},
		{"pure1:apikey:ABC-def_123", true},
		{"pure1:apikey:x", true},
		{long, true},
		{long + "a", false},
		{"", false},
		{"pure1:apikey:", false},
		{"pure1:apikey", false},
		{"pure1:apiKey:abc", false},
		{"PURE1:APIKEY:abc", false},
		{"apikey:abc", false},
		{" pure1:apikey:abc", false},
		{"pure1:apikey:abc ", false},
		{"pure1:apikey:ab c", false},
		{"pure1:apikey:abc\n", false},
		{"pure1:apikey:abc\x00", false},
		{"pure1:apikey:ab.c", false},
		{"pure1:apikey:ab:c", false},
		{"pure1:apikey:ab/c", false},
		{"pure1:apikey:abç", false},
		{"pure1:apikey:ab\u200bc", false},
		{"pure1:apikey:\xff", false},
	} {
		err := ValidateAppID(c.id)
		if (err == nil) != c.ok {
			t.Errorf("ValidateAppID(%q) = %v, want ok=%v", c.id, err, c.ok)
			continue
		}
		if err != nil {
			msg := err.Error()
			if !strings.Contains(msg, AppIDPrefix) {
				t.Errorf("ValidateAppID(%q): message %q does not show the expected form", c.id, msg)
			}
			if strings.ContainsAny(msg, "\x00\n\u200b") {
				t.Errorf("ValidateAppID(%q): message carries raw control characters: %q", c.id, msg)
			}
		}
	}
}

func BenchmarkSignJWT(b *testing.B) {
	key := sharedKey(b, "rsa2048-pkcs1.pem")
	iat := time.Now().Unix()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SignJWT(testAppID, key, iat, iat+300); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignerSameSecond(b *testing.B) {
	key := sharedKey(b, "rsa2048-pkcs1.pem")
	s, err := NewSigner(testAppID, key)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	if _, _, err := s.Sign(now, 5*time.Minute); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := s.Sign(now, 5*time.Minute); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
