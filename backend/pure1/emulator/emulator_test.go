package emulator

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ---- fixtures ----------------------------------------------------------------

// RSA key generation is slow under -race, so the test binary shares two keys.
var (
	clientKey = sync.OnceValue(func() *rsa.PrivateKey { return mustKey(2048) })
	otherKey  = sync.OnceValue(func() *rsa.PrivateKey { return mustKey(2048) })
)

func mustKey(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func spkiPEM(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// testClock is a settable clock so expiry can be tested without sleeping.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock { return &testClock{t: time.Unix(1_800_000_000, 0)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	s      *Server
	ts     *httptest.Server
	app    Application
	clock  *testClock
	client *http.Client
}

// newFixture starts an emulator on a fixed clock with one registered app.
func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	clock := newClock()
	if opts.Now == nil {
		opts.Now = clock.Now
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	app, err := s.Register(spkiPEM(t, &clientKey().PublicKey), "")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	// No keep-alives: each request gets its own connection, so a reset fault
	// cannot poison a later request and the transport never retries.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	return &fixture{s: s, ts: ts, app: app, clock: clock, client: client}
}

// clientJWT signs a well-formed client JWT with jwt/v5, as the plugin would.
func (f *fixture) clientJWT(t *testing.T) string {
	t.Helper()
	now := f.clock.Now()
	return signJWT(t, clientKey(), jwt.MapClaims{"iss": f.app.ID, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()})
}

func signJWT(t *testing.T, key *rsa.PrivateKey, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawJWT builds a JWT from literal JSON so tests can send what jwt/v5 never
// would: floats, odd headers, extra fields.
func rawJWT(t *testing.T, key *rsa.PrivateKey, header, claims string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims))
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + enc.EncodeToString(sig)
}

// truncateSig keeps the JWT well-formed but cuts its signature to 100 bytes.
func truncateSig(t *testing.T, tok string) string {
	t.Helper()
	i := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil {
		t.Fatal(err)
	}
	return tok[:i+1] + base64.RawURLEncoding.EncodeToString(sig[:100])
}

func exchangeForm(token string) url.Values {
	return url.Values{
		"grant_type":         {GrantTypeTokenExchange},
		"subject_token_type": {SubjectTokenTypeJWT},
		"subject_token":      {token},
	}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (f *fixture) post(t *testing.T, contentType, body string) (reply, error) {
	t.Helper()
	return doPost(context.Background(), f.client, f.ts.URL+TokenPath, contentType, body)
}

func doPost(ctx context.Context, c *http.Client, u, contentType, body string) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}, err
}

// exchange performs a token exchange and fails the test on transport errors.
func (f *fixture) exchange(t *testing.T, token string) reply {
	t.Helper()
	r, err := f.post(t, "application/x-www-form-urlencoded", exchangeForm(token).Encode())
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	return r
}

func (f *fixture) getArrays(t *testing.T, authorization string) reply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.ts.URL+ArraysPath, nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decoding %q: %v", b, err)
	}
	return v
}

func wantStatus(t *testing.T, r reply, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status = %d, want %d; body %s", r.status, want, r.body)
	}
}

// ---- token exchange ------------------------------------------------------------

func TestExchangeIssuesUsableAccessToken(t *testing.T) {
	f := newFixture(t, Options{})
	r := f.exchange(t, f.clientJWT(t))
	wantStatus(t, r, http.StatusOK)
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}

	// Exact key set: Pure1 sends these four fields and nothing else.
	var fields map[string]any
	if err := json.Unmarshal(r.body, &fields); err != nil {
		t.Fatal(err)
	}
	if len(fields) != 4 || fields["issued_token_type"] != IssuedTokenTypeAccess || fields["token_type"] != "Bearer" || fields["expires_in"] != float64(35999) {
		t.Fatalf("unexpected token response %s", r.body)
	}
	access, _ := fields["access_token"].(string)

	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(access, claims, func(*jwt.Token) (any, error) { return &f.s.key.PublicKey, nil },
		jwt.WithTimeFunc(f.clock.Now), jwt.WithValidMethods([]string{"RS256"}))
	if err != nil || !tok.Valid {
		t.Fatalf("access token does not verify with the emulator key: %v", err)
	}
	now := f.clock.Now().Unix()
	checks := map[string]any{
		"org": DefaultOrg, "max_role": "viewer", "sub": f.app.ID, "iss": f.ts.URL,
		"iat": float64(now), "exp": float64(now + 35999),
	}
	for k, want := range checks {
		if claims[k] != want {
			t.Errorf("access token claim %s = %v, want %v", k, claims[k], want)
		}
	}

	// The token works at the resource API...
	a := f.getArrays(t, "Bearer "+access)
	wantStatus(t, a, http.StatusOK)
	list := decode[map[string]any](t, a.body)
	if list["continuation_token"] != nil || list["total_item_count"] != float64(1) {
		t.Errorf("unexpected array list %s", a.body)
	}
	items, _ := list["items"].([]any)
	if len(items) != 1 {
		t.Fatalf("items = %v", list["items"])
	}
	item := items[0].(map[string]any)
	if item["name"] != "emulated-array-01" || item["model"] != "FA-X70R3" || item["os"] != "Purity//FA" ||
		item["version"] != "6.5.4" || item["_as_of"] != float64(f.clock.Now().UnixMilli()) || item["fqdn"] != "emulated-array-01.emulated.test" || item["id"] == "" {
		t.Errorf("unexpected array item %v", item)
	}

	// ...but not forged, missing, or expired.
	forged := signJWT(t, otherKey(), claims)
	for name, auth := range map[string]string{
		"missing": "", "not bearer": "Basic " + access, "forged": "Bearer " + forged,
		"tampered": "Bearer " + access[:len(access)-4] + "AAAA",
	} {
		a := f.getArrays(t, auth)
		if a.status != http.StatusUnauthorized || !strings.Contains(string(a.body), `"Invalid or expired access token."`) {
			t.Errorf("%s: status %d body %s, want 401 invalid token", name, a.status, a.body)
		}
	}
	f.clock.Advance(35999 * time.Second)
	if a := f.getArrays(t, "Bearer "+access); a.status != http.StatusUnauthorized {
		t.Errorf("expired access token: status %d, want 401", a.status)
	}

	st := f.s.Stats()
	if st.TokenRequests != 1 || st.TokensIssued != 1 || st.Rejected != 0 || st.APIRequests != 6 {
		t.Errorf("stats = %+v", st)
	}
}

func TestExchangeHonoursOrgAndLifetime(t *testing.T) {
	f := newFixture(t, Options{Org: "acme", TokenLifetime: time.Hour})
	app, err := f.s.Register(spkiPEM(t, &otherKey().PublicKey), "admin")
	if err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now()
	r := f.exchange(t, signJWT(t, otherKey(), jwt.MapClaims{"iss": app.ID, "iat": now.Unix(), "exp": now.Unix() + 60}))
	wantStatus(t, r, http.StatusOK)
	resp := decode[tokenResponse](t, r.body)
	if resp.ExpiresIn == nil || *resp.ExpiresIn != 3600 {
		t.Fatalf("expires_in = %v, want 3600", resp.ExpiresIn)
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(resp.AccessToken, claims); err != nil {
		t.Fatal(err)
	}
	if claims["org"] != "acme" || claims["max_role"] != "admin" || claims["exp"] != float64(now.Unix()+3600) {
		t.Errorf("claims = %v", claims)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{{TokenLifetime: time.Millisecond}, {RateLimit: -1}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded, want error", o)
		}
	}
}

func TestTokenRejections(t *testing.T) {
	f := newFixture(t, Options{})
	key := clientKey()
	now := f.clock.Now().Unix()
	iss := f.app.ID
	claimsJSON := func(iat, exp string) string {
		return fmt.Sprintf(`{"iss":%q,"iat":%s,"exp":%s}`, iss, iat, exp)
	}
	goodHeader := `{"alg":"RS256","typ":"JWT"}`
	good := fmt.Sprint(now)
	later := fmt.Sprint(now + 300)
	form := func(tok string) string { return exchangeForm(tok).Encode() }
	const ctForm = "application/x-www-form-urlencoded"

	// HS256 "signed" with the public key PEM: the classic algorithm
	// confusion attack, which must fail on the header alone.
	hsInput := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(claimsJSON(good, later)))
	mac := hmac.New(sha256.New, []byte(spkiPEM(t, &key.PublicKey)))
	mac.Write([]byte(hsInput))
	hs256 := hsInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(claimsJSON(good, later))) + "."

	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
		desc        string // substring of error_description; 401s always carry invalidIdentity
	}{
		{"wrong content type", "application/json", `{"grant_type":"x"}`, 400, "Content-Type"},
		{"no content type", "", form(f.clientJWT(t)), 400, "Content-Type"},
		{"wrong grant_type", ctForm, url.Values{"grant_type": {"client_credentials"}, "subject_token_type": {SubjectTokenTypeJWT}, "subject_token": {f.clientJWT(t)}}.Encode(), 400, "grant_type"},
		{"wrong subject_token_type", ctForm, url.Values{"grant_type": {GrantTypeTokenExchange}, "subject_token_type": {"urn:ietf:params:oauth:token-type:id_token"}, "subject_token": {f.clientJWT(t)}}.Encode(), 400, "subject_token_type"},
		{"missing subject_token", ctForm, url.Values{"grant_type": {GrantTypeTokenExchange}, "subject_token_type": {SubjectTokenTypeJWT}}.Encode(), 400, "subject_token"},
		{"duplicate subject_token", ctForm, form(f.clientJWT(t)) + "&subject_token=x", 400, "once"},
		{"not a JWT", ctForm, form("not-a-jwt"), 400, "3 dot-separated parts"},
		{"padded base64", ctForm, form(f.clientJWT(t) + "=="), 400, "not a valid JWT"},
		{"payload not JSON", ctForm, form(strings.Join([]string{base64.RawURLEncoding.EncodeToString([]byte(goodHeader)), "bm90anNvbg", "c2ln"}, ".")), 400, "payload"},
		{"extra claim", ctForm, form(signJWT(t, key, jwt.MapClaims{"iss": iss, "iat": now, "exp": now + 300, "sub": "me"})), 400, `"sub"`},
		{"extra claims named sorted", ctForm, form(rawJWT(t, key, goodHeader, fmt.Sprintf(`{"iss":%q,"iat":%d,"exp":%d,"jti":"1","aud":"x"}`, iss, now, now+300))), 400, `"aud", "jti"`},
		{"bad signature", ctForm, form(signJWT(t, otherKey(), jwt.MapClaims{"iss": iss, "iat": now, "exp": now + 300})), 401, ""},
		{"truncated signature", ctForm, form(truncateSig(t, rawJWT(t, key, goodHeader, claimsJSON(good, later)))), 401, ""},
		{"unknown iss", ctForm, form(signJWT(t, key, jwt.MapClaims{"iss": "pure1:apikey:AAAAAAAAAAAAAAAA", "iat": now, "exp": now + 300})), 401, ""},
		{"iss not a string", ctForm, form(rawJWT(t, key, goodHeader, fmt.Sprintf(`{"iss":1,"iat":%d,"exp":%d}`, now, now+300))), 401, ""},
		{"expired", ctForm, form(signJWT(t, key, jwt.MapClaims{"iss": iss, "iat": now - 600, "exp": now - 1})), 401, ""},
		{"exp equals now", ctForm, form(signJWT(t, key, jwt.MapClaims{"iss": iss, "iat": now - 600, "exp": now})), 401, ""},
		{"iat far in future", ctForm, form(signJWT(t, key, jwt.MapClaims{"iss": iss, "iat": now + 120, "exp": now + 600})), 401, ""},
		{"exp not after iat", ctForm, form(signJWT(t, key, jwt.MapClaims{"iss": iss, "iat": now + 10, "exp": now + 10})), 401, ""},
		{"missing exp", ctForm, form(signJWT(t, key, jwt.MapClaims{"iss": iss, "iat": now})), 401, ""},
		{"missing iat", ctForm, form(signJWT(t, key, jwt.MapClaims{"iss": iss, "exp": now + 300})), 401, ""},
		{"millisecond timestamps", ctForm, form(signJWT(t, key, jwt.MapClaims{"iss": iss, "iat": now * 1000, "exp": (now + 300) * 1000})), 401, ""},
		{"millisecond exp only", ctForm, form(signJWT(t, key, jwt.MapClaims{"iss": iss, "iat": now, "exp": (now + 300) * 1000})), 401, ""},
		{"float exp exponent", ctForm, form(rawJWT(t, key, goodHeader, claimsJSON(good, "1.8000003e9"))), 401, ""},
		{"float exp fraction", ctForm, form(rawJWT(t, key, goodHeader, claimsJSON(good, later+".5"))), 401, ""},
		{"string exp", ctForm, form(rawJWT(t, key, goodHeader, claimsJSON(good, `"`+later+`"`))), 401, ""},
		{"negative iat", ctForm, form(rawJWT(t, key, goodHeader, claimsJSON("-1", later))), 401, ""},
		{"alg HS256", ctForm, form(hs256), 401, ""},
		{"alg none", ctForm, form(none), 401, ""},
		{"alg RS512", ctForm, form(rawJWT(t, key, `{"alg":"RS512","typ":"JWT"}`, claimsJSON(good, later))), 401, ""},
		{"typ missing", ctForm, form(rawJWT(t, key, `{"alg":"RS256"}`, claimsJSON(good, later))), 401, ""},
		{"typ lowercase", ctForm, form(rawJWT(t, key, `{"alg":"RS256","typ":"jwt"}`, claimsJSON(good, later))), 401, ""},
		{"extra header field", ctForm, form(rawJWT(t, key, `{"alg":"RS256","typ":"JWT","kid":"k1"}`, claimsJSON(good, later))), 401, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := f.post(t, tc.contentType, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			wantStatus(t, r, tc.status)
			e := decode[oauthError](t, r.body)
			switch tc.status {
			case 400:
				if e.Error != "invalid_request" || !strings.Contains(e.ErrorDescription, tc.desc) {
					t.Errorf("body = %s, want invalid_request mentioning %q", r.body, tc.desc)
				}
			case 401:
				if e.Error != "invalid_client" || e.ErrorDescription != invalidIdentity {
					t.Errorf("body = %s, want Pure1's invalid_client", r.body)
				}
			}
		})
	}
	st := f.s.Stats()
	if st.Rejected != int64(len(tests)) || st.TokensIssued != 0 || st.TokenRequests != int64(len(tests)) {
		t.Errorf("stats = %+v, want %d rejected and none issued", st, len(tests))
	}
}

func TestTokenAcceptedEdgeCases(t *testing.T) {
	f := newFixture(t, Options{})
	key := clientKey()
	now := f.clock.Now().Unix()
	for name, tok := range map[string]string{
		"iat within 60s skew":     signJWT(t, key, jwt.MapClaims{"iss": f.app.ID, "iat": now + 55, "exp": now + 300}),
		"exp just under 10 years": signJWT(t, key, jwt.MapClaims{"iss": f.app.ID, "iat": now, "exp": now + 9*365*24*3600}),
		"claims reordered":        rawJWT(t, key, `{"typ":"JWT","alg":"RS256"}`, fmt.Sprintf(`{"exp":%d,"iss":%q,"iat":%d}`, now+60, f.app.ID, now)),
	} {
		if r := f.exchange(t, tok); r.status != http.StatusOK {
			t.Errorf("%s: status %d body %s, want 200", name, r.status, r.body)
		}
	}
	// Charset parameters are legal on the form content type.
	r, err := f.post(t, "application/x-www-form-urlencoded; charset=utf-8", exchangeForm(f.clientJWT(t)).Encode())
	if err != nil || r.status != http.StatusOK {
		t.Errorf("content type with charset: %v %d %s", err, r.status, r.body)
	}
}

func TestTokenEndpointMethodAndBodyLimit(t *testing.T) {
	f := newFixture(t, Options{})
	resp, err := f.client.Get(f.ts.URL + TokenPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET token endpoint: %d Allow=%q, want 405 Allow=POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if n := f.s.Stats().TokenRequests; n != 0 {
		t.Errorf("GET counted as token request: %d", n)
	}
	big := "subject_token=" + strings.Repeat("a", maxBodyBytes+10)
	r, err := f.post(t, "application/x-www-form-urlencoded", big)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, http.StatusBadRequest)
	if !strings.Contains(string(r.body), "exceeds") {
		t.Errorf("oversized body: %s", r.body)
	}
}

// ---- faults -----------------------------------------------------------------------

func TestFaults(t *testing.T) {
	t.Run("status 503 is a load balancer page with Retry-After", func(t *testing.T) {
		f := newFixture(t, Options{})
		f.s.InjectFaults(Fault{Kind: FaultStatus, Status: 503, RetryAfter: "7"})
		r := f.exchange(t, f.clientJWT(t))
		wantStatus(t, r, 503)
		if ct := r.header.Get("Content-Type"); ct != "text/html" {
			t.Errorf("Content-Type = %q", ct)
		}
		if r.header.Get("Retry-After") != "7" || !strings.Contains(string(r.body), "503 Service Unavailable") {
			t.Errorf("headers %v body %s", r.header, r.body)
		}
		// Consumed: the next request is handled normally.
		wantStatus(t, f.exchange(t, f.clientJWT(t)), 200)
	})

	t.Run("status 429 carries rate limit headers", func(t *testing.T) {
		f := newFixture(t, Options{})
		f.s.InjectFaults(Fault{Kind: FaultStatus, Status: 429, RetryAfter: "3"})
		r := f.exchange(t, f.clientJWT(t))
		wantStatus(t, r, 429)
		for h, want := range map[string]string{"Retry-After": "3", "X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "3"} {
			if got := r.header.Get(h); got != want {
				t.Errorf("%s = %q, want %q", h, got, want)
			}
		}
		if e := decode[oauthError](t, r.body); e.Error != "rate_limit_exceeded" {
			t.Errorf("body %s", r.body)
		}
	})

	t.Run("status 401 mimics Pure1 and has no Retry-After unless asked", func(t *testing.T) {
		f := newFixture(t, Options{})
		f.s.InjectFaults(Fault{Kind: FaultStatus, Status: 401})
		r := f.exchange(t, f.clientJWT(t))
		wantStatus(t, r, 401)
		if e := decode[oauthError](t, r.body); e.Error != "invalid_client" || e.ErrorDescription != invalidIdentity {
			t.Errorf("body %s", r.body)
		}
		if _, ok := r.header["Retry-After"]; ok {
			t.Error("unexpected Retry-After")
		}
		if st := f.s.Stats(); st.Rejected != 0 || st.FaultsServed != 1 {
			t.Errorf("injected 401 must count as fault, not rejection: %+v", st)
		}
	})

	t.Run("faults precede validation", func(t *testing.T) {
		f := newFixture(t, Options{})
		f.s.InjectFaults(Fault{Kind: FaultStatus, Status: 502})
		r, err := f.post(t, "text/plain", "garbage")
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, r, 502)
	})

	t.Run("reset is a connection error", func(t *testing.T) {
		f := newFixture(t, Options{})
		f.s.InjectFaults(Fault{Kind: FaultReset})
		_, err := f.post(t, "application/x-www-form-urlencoded", exchangeForm(f.clientJWT(t)).Encode())
		if err == nil {
			t.Fatal("request succeeded, want connection reset")
		}
		if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("error = %v, want connection reset", err)
		}
		if st := f.s.Stats(); st.FaultsServed != 1 || st.TokensIssued != 0 {
			t.Errorf("stats %+v", st)
		}
		wantStatus(t, f.exchange(t, f.clientJWT(t)), 200)
	})

	t.Run("delay honours client timeout", func(t *testing.T) {
		f := newFixture(t, Options{})
		f.s.InjectFaults(Fault{Kind: FaultDelay, Delay: Duration(5 * time.Second)})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := doPost(ctx, f.client, f.ts.URL+TokenPath, "application/x-www-form-urlencoded", exchangeForm(f.clientJWT(t)).Encode())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error = %v, want deadline exceeded", err)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("client waited %v", el)
		}
		// The handler must notice the cancellation rather than sleep 5s.
		waitFor(t, 2*time.Second, func() bool { return f.s.Stats().InFlight == 0 })
		if st := f.s.Stats(); st.TokensIssued != 0 {
			t.Errorf("token issued to a client that gave up: %+v", st)
		}
	})

	t.Run("delay then normal handling", func(t *testing.T) {
		f := newFixture(t, Options{})
		f.s.InjectFaults(Fault{Kind: FaultDelay, Delay: Duration(150 * time.Millisecond)})
		start := time.Now()
		r := f.exchange(t, f.clientJWT(t))
		wantStatus(t, r, 200)
		if el := time.Since(start); el < 150*time.Millisecond {
			t.Errorf("answered after %v, want >= 150ms", el)
		}
		if st := f.s.Stats(); st.TokensIssued != 1 || st.FaultsServed != 1 {
			t.Errorf("stats %+v", st)
		}
	})

	t.Run("count is consumed in FIFO order", func(t *testing.T) {
		f := newFixture(t, Options{})
		f.s.InjectFaults(Fault{Kind: FaultStatus, Status: 500, Count: 3}, Fault{Kind: FaultNonJSON})
		if p := f.s.PendingFaults(); len(p) != 2 || p[0].Count != 3 || p[1].Count != 1 {
			t.Fatalf("pending = %+v", p)
		}
		var got []int
		for range 5 {
			got = append(got, f.exchange(t, f.clientJWT(t)).status)
		}
		if fmt.Sprint(got) != "[500 500 500 200 200]" {
			t.Errorf("statuses = %v", got)
		}
		st := f.s.Stats()
		if st.FaultsServed != 4 || st.TokensIssued != 1 || len(f.s.PendingFaults()) != 0 {
			t.Errorf("stats %+v pending %v", st, f.s.PendingFaults())
		}
	})

	t.Run("clear", func(t *testing.T) {
		f := newFixture(t, Options{})
		f.s.InjectFaults(Fault{Kind: FaultStatus, Status: 500, Count: 10})
		f.s.ClearFaults()
		wantStatus(t, f.exchange(t, f.clientJWT(t)), 200)
	})

	t.Run("slow body", func(t *testing.T) {
		f := newFixture(t, Options{})
		const stall = 400 * time.Millisecond
		f.s.InjectFaults(Fault{Kind: FaultSlowBody, Delay: Duration(stall)})
		req, _ := http.NewRequest(http.MethodPost, f.ts.URL+TokenPath, strings.NewReader("x"))
		start := time.Now()
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		headersAfter := time.Since(start)
		body, err := io.ReadAll(resp.Body)
		bodyAfter := time.Since(start)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("status %d err %v", resp.StatusCode, err)
		}
		if headersAfter >= stall || bodyAfter < stall {
			t.Errorf("headers after %v, body after %v; want headers before and body after the %v stall", headersAfter, bodyAfter, stall)
		}
		tr := decode[tokenResponse](t, body)
		if a := f.getArrays(t, "Bearer "+tr.AccessToken); a.status != 200 {
			t.Errorf("slow_body token rejected by API: %d", a.status)
		}
	})

	t.Run("slow body honours client timeout", func(t *testing.T) {
		f := newFixture(t, Options{})
		f.s.InjectFaults(Fault{Kind: FaultSlowBody, Delay: Duration(5 * time.Second)})
		c := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
		_, err := doPost(context.Background(), c, f.ts.URL+TokenPath, "x", "")
		if err == nil {
			t.Fatal("want a timeout reading the body")
		}
		waitFor(t, 2*time.Second, func() bool { return f.s.Stats().InFlight == 0 })
	})

	payloadFaults := []struct {
		kind  string
		check func(t *testing.T, r reply)
	}{
		{FaultNonJSON, func(t *testing.T, r reply) {
			if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || json.Valid(r.body) {
				t.Errorf("want HTML, got %q %s", r.header.Get("Content-Type"), r.body)
			}
		}},
		{FaultTruncatedJSON, func(t *testing.T, r reply) {
			var v map[string]any
			err := json.Unmarshal(r.body, &v)
			if err == nil || !strings.HasPrefix(string(r.body), `{"access_token":"`) || r.header.Get("Content-Type") != "application/json" {
				t.Errorf("want truncated JSON, got err=%v body %s", err, r.body)
			}
		}},
		{FaultNoAccessToken, func(t *testing.T, r reply) {
			v := decode[map[string]any](t, r.body)
			if _, ok := v["access_token"]; ok || v["expires_in"] != float64(35999) {
				t.Errorf("body %s", r.body)
			}
		}},
		{FaultNoExpiresIn, func(t *testing.T, r reply) {
			v := decode[map[string]any](t, r.body)
			if _, ok := v["expires_in"]; ok || v["access_token"] == "" || v["access_token"] == nil {
				t.Errorf("body %s", r.body)
			}
		}},
		{FaultZeroExpiresIn, func(t *testing.T, r reply) {
			v := decode[map[string]any](t, r.body)
			if e, ok := v["expires_in"]; !ok || e != float64(0) || v["access_token"] == nil {
				t.Errorf("body %s", r.body)
			}
		}},
	}
	for _, pf := range payloadFaults {
		t.Run(pf.kind, func(t *testing.T) {
			f := newFixture(t, Options{})
			f.s.InjectFaults(Fault{Kind: pf.kind})
			r := f.exchange(t, f.clientJWT(t))
			wantStatus(t, r, 200)
			pf.check(t, r)
			if st := f.s.Stats(); st.FaultsServed != 1 || st.TokensIssued != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}

	t.Run("unknown kind injected directly is a 500", func(t *testing.T) {
		f := newFixture(t, Options{})
		f.s.InjectFaults(Fault{Kind: "explode"})
		r := f.exchange(t, f.clientJWT(t))
		wantStatus(t, r, 500)
		if !strings.Contains(string(r.body), "explode") {
			t.Errorf("body %s", r.body)
		}
	})
}

func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFaultValidateAndDurationJSON(t *testing.T) {
	bad := []Fault{
		{Kind: "nope"},
		{Kind: FaultStatus},
		{Kind: FaultStatus, Status: 200},
		{Kind: FaultStatus, Status: 600},
		{Kind: FaultReset, Status: 500},
		{Kind: FaultDelay},
		{Kind: FaultSlowBody, Delay: -1},
		{Kind: FaultReset, Count: -1},
		{Kind: FaultStatus, Status: 503, RetryAfter: "1\r\nX-Evil: 1"},
	}
	for _, f := range bad {
		if err := f.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want error", f)
		}
	}
	if err := (Fault{Kind: FaultStatus, Status: 429, RetryAfter: "2", Count: 2}).Validate(); err != nil {
		t.Errorf("valid fault rejected: %v", err)
	}

	b, err := json.Marshal(Fault{Kind: FaultDelay, Delay: Duration(1500 * time.Millisecond)})
	if err != nil || string(b) != `{"kind":"delay","delay":"1.5s"}` {
		t.Errorf("marshal = %s, %v", b, err)
	}
	var f Fault
	if err := json.Unmarshal([]byte(`{"kind":"delay","delay":"2s","count":3}`), &f); err != nil || f.Delay != Duration(2*time.Second) || f.Count != 3 {
		t.Errorf("unmarshal = %+v, %v", f, err)
	}
	if err := json.Unmarshal([]byte(`{"kind":"delay","delay":2}`), &f); err == nil || !strings.Contains(err.Error(), `"2s"`) {
		t.Errorf("numeric delay: err = %v, want a hint to use a string", err)
	}
}

// ---- stats, concurrency, rate limiting -----------------------------------------------

func TestStatsMaxInFlight(t *testing.T) {
	f := newFixture(t, Options{})
	const n = 4
	// Each request is held long enough that all n overlap even on a busy machine.
	f.s.InjectFaults(Fault{Kind: FaultDelay, Delay: Duration(time.Second), Count: n})
	body := exchangeForm(f.clientJWT(t)).Encode() // a client JWT may be exchanged repeatedly
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Go(func() {
			r, err := f.post(t, "application/x-www-form-urlencoded", body)
			if err != nil {
				t.Error(err)
				return
			}
			statuses[i] = r.status
		})
	}
	waitFor(t, 5*time.Second, func() bool { return f.s.Stats().InFlight == n })
	wg.Wait()
	// A handler's bookkeeping may finish just after its client has the response.
	waitFor(t, 2*time.Second, func() bool { return f.s.Stats().InFlight == 0 })
	for i, s := range statuses {
		if s != 200 {
			t.Errorf("request %d: status %d", i, s)
		}
	}
	want := Stats{TokenRequests: n, TokensIssued: n, FaultsServed: n, MaxInFlight: n}
	if st := f.s.Stats(); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}

	// The admin API reports the same numbers.
	resp, err := f.client.Get(f.ts.URL + StatsPath)
	if err != nil {
		t.Fatal(err)
	}
	statsBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := decode[Stats](t, statsBody); got != want {
		t.Errorf("GET %s = %s", StatsPath, statsBody)
	}

	resp, err = f.client.Post(f.ts.URL+StatsResetPath, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || f.s.Stats() != (Stats{}) {
		t.Errorf("reset: %d %+v", resp.StatusCode, f.s.Stats())
	}
}

func TestRateLimit(t *testing.T) {
	f := newFixture(t, Options{RateLimit: 2})
	var got []string
	for range 3 {
		r := f.exchange(t, f.clientJWT(t))
		got = append(got, fmt.Sprintf("%d/%s", r.status, r.header.Get("X-RateLimit-Remaining")))
		if r.status == 429 {
			if r.header.Get("X-RateLimit-Limit") != "2" || r.header.Get("X-RateLimit-Reset") != "1" || r.header.Get("Retry-After") != "1" {
				t.Errorf("429 headers %v", r.header)
			}
			if e := decode[oauthError](t, r.body); e.Error != "rate_limit_exceeded" {
				t.Errorf("429 body %s", r.body)
			}
		}
	}
	if fmt.Sprint(got) != "[200/1 200/0 429/0]" {
		t.Errorf("status/remaining = %v", got)
	}
	// A new one-second window admits requests again.
	f.clock.Advance(time.Second)
	wantStatus(t, f.exchange(t, f.clientJWT(t)), 200)
	if st := f.s.Stats(); st.RateLimited != 1 || st.TokensIssued != 3 || st.Rejected != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestUnlimitedByDefault(t *testing.T) {
	f := newFixture(t, Options{})
	for i := range 20 {
		r := f.exchange(t, f.clientJWT(t))
		if r.status != 200 || r.header.Get("X-RateLimit-Limit") != "" {
			t.Fatalf("request %d: %d %v", i, r.status, r.header)
		}
	}
}

// TestConcurrentUse drives every mutable part of the Server at once; its value
// is in running under -race.
func TestConcurrentUse(t *testing.T) {
	f := newFixture(t, Options{RateLimit: 1000})
	pubPEM := spkiPEM(t, &otherKey().PublicKey)
	body := exchangeForm(f.clientJWT(t)).Encode()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5 {
				f.s.InjectFaults(Fault{Kind: FaultNonJSON})
				app, err := f.s.Register(pubPEM, "viewer")
				if err != nil {
					t.Error(err)
					return
				}
				_ = f.s.Applications()
				if _, err := f.post(t, "application/x-www-form-urlencoded", body); err != nil {
					t.Error(err)
				}
				f.s.DeleteApplication(app.ID)
				_ = f.s.Stats()
				_ = f.s.PendingFaults()
			}
		})
	}
	wg.Wait()
	waitFor(t, 2*time.Second, func() bool { return f.s.Stats().InFlight == 0 })
	if st := f.s.Stats(); st.TokenRequests != 40 || st.FaultsServed+st.TokensIssued != 40 || st.InFlight != 0 {
		t.Errorf("stats %+v", st)
	}
}

// ---- registration and admin API --------------------------------------------------------

func TestRegister(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	pub := &clientKey().PublicKey
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	wantFP := hex.EncodeToString(sum[:])

	spki, err := s.Register(spkiPEM(t, pub), "")
	if err != nil {
		t.Fatal(err)
	}
	pkcs1, err := s.Register(string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(pub)})), "admin")
	if err != nil {
		t.Fatal(err)
	}
	idRE := regexp.MustCompile(`^pure1:apikey:[A-Za-z0-9]{16}$`)
	for _, app := range []Application{spki, pkcs1} {
		if !idRE.MatchString(app.ID) || app.PublicKeyFingerprint != wantFP || app.Name == "" {
			t.Errorf("application %+v; want ID like pure1:apikey:<16 alnum>, fingerprint %s", app, wantFP)
		}
	}
	if spki.ID == pkcs1.ID || spki.MaxRole != "viewer" || pkcs1.MaxRole != "admin" {
		t.Errorf("apps %+v %+v", spki, pkcs1)
	}

	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	weak := mustKey(1024)
	privDER, _ := x509.MarshalPKCS8PrivateKey(clientKey())
	for name, tc := range map[string]struct{ pem, mention string }{
		"EC key":      {spkiPEM(t, &ec.PublicKey), "only RSA"},
		"1024-bit":    {spkiPEM(t, &weak.PublicKey), "1024 bits"},
		"private key": {string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})), "public key"},
		"not PEM":     {"ssh-rsa AAAA", "no PEM block"},
		"certificate": {"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "unsupported PEM block"},
		"corrupt DER": {"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "parsing PUBLIC KEY"},
	} {
		_, err := s.Register(tc.pem, "")
		if !errors.Is(err, ErrInvalidPublicKey) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s: err = %v, want ErrInvalidPublicKey mentioning %q", name, err, tc.mention)
		}
	}
	if n := len(s.Applications()); n != 2 {
		t.Errorf("%d applications registered, want 2", n)
	}
}

func adminDo(t *testing.T, f *fixture, method, path, body string) reply {
	t.Helper()
	req, _ := http.NewRequest(method, f.ts.URL+path, strings.NewReader(body))
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func TestAdminApplicationsAPI(t *testing.T) {
	f := newFixture(t, Options{})
	body, _ := json.Marshal(map[string]string{"public_key": spkiPEM(t, &otherKey().PublicKey), "max_role": "storage_admin", "name": "ci"})
	r := adminDo(t, f, "POST", ApplicationsPath, string(body))
	wantStatus(t, r, http.StatusCreated)
	raw := decode[map[string]string](t, r.body)
	if len(raw) != 4 || raw["name"] != "ci" || raw["max_role"] != "storage_admin" || !strings.HasPrefix(raw["id"], ApplicationIDPrefix) || len(raw["public_key_fingerprint"]) != 64 {
		t.Fatalf("created %s", r.body)
	}
	id := raw["id"]

	list := decode[applicationList](t, adminDo(t, f, "GET", ApplicationsPath, "").body)
	if len(list.Items) != 2 || list.Items[1].ID != id {
		t.Errorf("list = %+v", list)
	}
	wantStatus(t, adminDo(t, f, "GET", ApplicationsPath+"/"+url.PathEscape(id), ""), 200)

	// Registered apps can exchange; deleted ones cannot.
	now := f.clock.Now().Unix()
	tok := signJWT(t, otherKey(), jwt.MapClaims{"iss": id, "iat": now, "exp": now + 60})
	wantStatus(t, f.exchange(t, tok), 200)
	wantStatus(t, adminDo(t, f, "DELETE", ApplicationsPath+"/"+id, ""), http.StatusNoContent)
	wantStatus(t, adminDo(t, f, "DELETE", ApplicationsPath+"/"+id, ""), http.StatusNotFound)
	wantStatus(t, f.exchange(t, tok), 401)

	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, tc := range map[string]struct{ body, mention string }{
		"EC key":        {fmt.Sprintf(`{"public_key":%q}`, spkiPEM(t, &ec.PublicKey)), "only RSA"},
		"no key":        {`{"max_role":"viewer"}`, "public_key"},
		"unknown field": {`{"public_key":"x","role":"viewer"}`, "unknown field"},
		"not JSON":      {`public_key=x`, "invalid JSON"},
	} {
		r := adminDo(t, f, "POST", ApplicationsPath, tc.body)
		if r.status != 400 || !strings.Contains(decode[adminError](t, r.body).Error, tc.mention) {
			t.Errorf("%s: %d %s, want 400 mentioning %q", name, r.status, r.body, tc.mention)
		}
	}
	if r := adminDo(t, f, "PUT", ApplicationsPath, ""); r.status != 405 || r.header.Get("Allow") != "GET, POST" {
		t.Errorf("PUT: %d %v", r.status, r.header)
	}
}

func TestAdminFaultsAndMiscAPI(t *testing.T) {
	f := newFixture(t, Options{})
	wantStatus(t, adminDo(t, f, "POST", FaultsPath, `[{"kind":"status","status":503,"count":2},{"kind":"delay","delay":"10ms"}]`), 204)
	wantStatus(t, adminDo(t, f, "POST", FaultsPath, `{"kind":"reset"}`), 204)
	list := decode[faultList](t, adminDo(t, f, "GET", FaultsPath, "").body)
	if len(list.Items) != 3 || list.Items[0].Count != 2 || list.Items[1].Delay != Duration(10*time.Millisecond) || list.Items[2].Kind != FaultReset {
		t.Errorf("faults = %+v", list.Items)
	}
	for name, tc := range map[string]struct{ body, mention string }{
		"unknown kind":     {`{"kind":"boom"}`, "unknown fault kind"},
		"status missing":   {`[{"kind":"reset"},{"kind":"status"}]`, "fault 1"},
		"numeric delay":    {`{"kind":"delay","delay":5}`, `"2s"`},
		"unknown field":    {`{"kind":"reset","cnt":2}`, "unknown field"},
		"empty array":      {`[]`, "no faults"},
		"trailing garbage": {`{"kind":"reset"} x`, "trailing"},
	} {
		r := adminDo(t, f, "POST", FaultsPath, tc.body)
		if r.status != 400 || !strings.Contains(decode[adminError](t, r.body).Error, tc.mention) {
			t.Errorf("%s: %d %s, want 400 mentioning %q", name, r.status, r.body, tc.mention)
		}
	}
	if n := len(f.s.PendingFaults()); n != 3 {
		t.Errorf("rejected requests changed the queue: %d faults", n)
	}
	wantStatus(t, adminDo(t, f, "DELETE", FaultsPath, ""), 204)
	if n := len(f.s.PendingFaults()); n != 0 {
		t.Errorf("%d faults left after DELETE", n)
	}

	h := adminDo(t, f, "GET", HealthPath, "")
	if h.status != 200 || decode[map[string]string](t, h.body)["status"] != "ok" {
		t.Errorf("health: %d %s", h.status, h.body)
	}
	nf := adminDo(t, f, "GET", "/api/1.latest/volumes", "")
	if nf.status != 404 || nf.header.Get("Content-Type") != "application/json" || !strings.Contains(decode[adminError](t, nf.body).Error, "/api/1.latest/volumes") {
		t.Errorf("unknown path: %d %s", nf.status, nf.body)
	}
}

func TestLogsNeverContainSecrets(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := log.New(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), "", 0)
	f := newFixture(t, Options{Logger: logger})
	clientTok := f.clientJWT(t)
	r := f.exchange(t, clientTok)
	wantStatus(t, r, 200)
	access := decode[tokenResponse](t, r.body).AccessToken
	wantStatus(t, f.getArrays(t, "Bearer "+access), 200)
	f.exchange(t, signJWT(t, otherKey(), jwt.MapClaims{"iss": f.app.ID, "iat": 1, "exp": 2}))

	// Lines are written after the response, so wait for the last one.
	read := func() string {
		mu.Lock()
		defer mu.Unlock()
		return buf.String()
	}
	waitFor(t, 2*time.Second, func() bool { return strings.Count(read(), "\n") == 3 })
	out := read()
	for _, want := range []string{
		"POST /oauth2/1.0/token 200 app=" + f.app.ID,
		"GET /api/1.latest/arrays 200 app=" + f.app.ID,
		"POST /oauth2/1.0/token 401 app=" + f.app.ID,
		"rejected: signature does not verify",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	// "eyJ" is the base64url of `{"`, the start of every JWT.
	if strings.Contains(out, "eyJ") || strings.Contains(out, access[40:80]) || strings.Contains(out, clientTok[40:80]) {
		t.Errorf("log contains token material:\n%s", out)
	}
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }
