package pure1

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

func TestParseTokenResponse(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	inHour := now.Unix() + 3600
	access := makeAccessToken(t, jwt.MapClaims{"org": "4242", "max_role": "pure1:admin", "exp": now.Unix() + 50000})
	early := makeAccessToken(t, jwt.MapClaims{"org": 7, "exp": inHour})
	junkToken := "opaque-token-not-a-jwt"
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}

	for _, c := range []struct {
		name   string
		status int
		header http.Header
		body   string

		want    *AccessToken
		wantErr error     // sentinel
		wantAPI *APIError // for non-200
		wantIn  []string
	}{
		{
			name: "Pure1 success", status: 200, body: okBody(access, 35999),
			want: &AccessToken{Token: access, TokenType: "Bearer", IssuedTokenType: IssuedTokenTypeAccess, ExpiresIn: 35999 * time.Second,
				ExpiresAt: time.Date(2026, 1, 2, 13, 4, 4, 0, time.UTC), Org: "4242", MaxRole: "pure1:admin"},
		},
		{
			name: "token exp earlier than expires_in wins", status: 200, body: okBody(early, 35999),
			want: &AccessToken{Token: early, TokenType: "Bearer", IssuedTokenType: IssuedTokenTypeAccess, ExpiresIn: 35999 * time.Second,
				ExpiresAt: time.Unix(inHour, 0).UTC(), Org: "7"},
		},
		{
			name: "opaque token, lowercase bearer, fractional expires_in", status: 200,
			body: `{"access_token":"` + junkToken + `","token_type":"bearer","expires_in":90.5}`,
			want: &AccessToken{Token: junkToken, TokenType: "Bearer", ExpiresIn: 90500 * time.Millisecond, ExpiresAt: time.Date(2026, 1, 2, 3, 5, 36, 0, time.UTC)},
		},
		{
			name: "token_type omitted means Bearer", status: 200, body: `{"access_token":"x","expires_in":60}`,
			want: &AccessToken{Token: "x", TokenType: "Bearer", ExpiresIn: time.Minute, ExpiresAt: time.Date(2026, 1, 2, 3, 5, 5, 0, time.UTC)},
		},
		{
			name: "unknown fields ignored", status: 200, body: `{"access_token":"x","expires_in":60,"scope":"a b","refresh_token":"r"}`,
			want: &AccessToken{Token: "x", TokenType: "Bearer", ExpiresIn: time.Minute, ExpiresAt: time.Date(2026, 1, 2, 3, 5, 5, 0, time.UTC)},
		},

		// 200s that are not tokens.
		{name: "not JSON", status: 200, body: "<html>oops</html>", wantErr: ErrBadResponse, wantIn: []string{"not JSON", "<html>oops</html>"}},
		{name: "truncated JSON", status: 200, body: `{"access_token":"abc","expires_in":35`, wantErr: ErrBadResponse},
		{name: "empty", status: 200, body: "", wantErr: ErrBadResponse},
		{name: "null", status: 200, body: "null", wantErr: ErrBadResponse},
		{name: "array", status: 200, body: "[]", wantErr: ErrBadResponse},
		{name: "no access_token", status: 200, body: `{"token_type":"Bearer","expires_in":35999}`, wantErr: ErrBadResponse, wantIn: []string{"access_token"}},
		{name: "access_token not a string", status: 200, body: `{"access_token":5,"expires_in":35999}`, wantErr: ErrBadResponse},
		{name: "expires_in missing", status: 200, body: `{"access_token":"x"}`, wantErr: ErrBadResponse, wantIn: []string{"expires_in"}},
		{name: "expires_in zero", status: 200, body: `{"access_token":"x","expires_in":0}`, wantErr: ErrBadResponse},
		{name: "expires_in negative", status: 200, body: `{"access_token":"x","expires_in":-1}`, wantErr: ErrBadResponse},
		{name: "expires_in null", status: 200, body: `{"access_token":"x","expires_in":null}`, wantErr: ErrBadResponse},
		{name: "expires_in a string", status: 200, body: `{"access_token":"x","expires_in":"60"}`, wantErr: ErrBadResponse},
		{name: "expires_in 1e20 overflows a Duration", status: 200, body: `{"access_token":"x","expires_in":1e20}`, wantErr: ErrBadResponse},
		{name: "expires_in 1e10 (292 years < x < int64)", status: 200, body: `{"access_token":"x","expires_in":1e10}`, wantErr: ErrBadResponse},
		{name: "expires_in 1e9 (31 years) is still a lifetime", status: 200, body: `{"access_token":"x","expires_in":1e9}`,
			want: &AccessToken{Token: "x", TokenType: "Bearer", ExpiresIn: 1e9 * time.Second, ExpiresAt: now.Add(1e9 * time.Second).Truncate(time.Second)}},
		{name: "expires_in 1e300", status: 200, body: `{"access_token":"x","expires_in":1e300}`, wantErr: ErrBadResponse},
		{name: "expires_in below a nanosecond", status: 200, body: `{"access_token":"x","expires_in":1e-12}`, wantErr: ErrBadResponse},
		{name: "token_type MAC", status: 200, body: `{"access_token":"x","token_type":"MAC","expires_in":60}`, wantErr: ErrBadResponse, wantIn: []string{`"MAC"`}},
		{name: "token_type with control characters", status: 200, body: `{"access_token":"x","token_type":"a\u0000\nb","expires_in":60}`, wantErr: ErrBadResponse},

		// Pure1's errors.
		{
			name: "400 invalid_request", status: 400, body: `{"error":"invalid_request","error_description":"Missing subject_token"}`,
			wantErr: ErrRejected, wantAPI: &APIError{StatusCode: 400, Code: "invalid_request", Description: "Missing subject_token"},
			wantIn: []string{"HTTP 400 invalid_request: Missing subject_token"},
		},
		{
			name: "401 invalid_client", status: 401, body: `{"error":"invalid_client","error_description":"Invalid identity: JWT validation failed."}`,
			wantErr: ErrRejected, wantAPI: &APIError{StatusCode: 401, Code: "invalid_client", Description: "Invalid identity: JWT validation failed."},
		},
		{
			name: "401 with only error", status: 401, body: `{"error":"invalid_client"}`,
			wantErr: ErrRejected, wantAPI: &APIError{StatusCode: 401, Code: "invalid_client"},
		},
		{
			name: "404 HTML page", status: 404, body: "<html>\n  <h1>Not   Found</h1>\n</html>",
			wantErr: ErrRejected, wantAPI: &APIError{StatusCode: 404, Description: "<html> <h1>Not Found</h1> </html>"},
		},
		{
			name: "400 empty body", status: 400, body: "",
			wantErr: ErrRejected, wantAPI: &APIError{StatusCode: 400}, wantIn: []string{"HTTP 400"},
		},
		{
			name: "400 description with control characters", status: 400, body: `{"error":"x\u001b[31m","error_description":"line1\nline2\ttab"}`,
			wantErr: ErrRejected, wantAPI: &APIError{StatusCode: 400, Code: "x [31m", Description: "line1 line2 tab"},
		},
		{
			name: "302 is not followed as success", status: 302, body: "",
			wantErr: ErrRejected, wantAPI: &APIError{StatusCode: 302},
		},
		{
			name: "429 with rate-limit headers", status: 429,
			header:  hdr("X-RateLimit-Limit", "100", "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "30"),
			wantErr: ErrUnavailable,
			wantAPI: &APIError{StatusCode: 429, Description: "rate limit exceeded (X-RateLimit-Limit=100, X-RateLimit-Remaining=0, X-RateLimit-Reset=30)"},
		},
		{
			name: "429 with Retry-After seconds", status: 429, header: hdr("Retry-After", " 7 "),
			wantErr: ErrUnavailable, wantAPI: &APIError{StatusCode: 429, Description: "rate limit exceeded", RetryAfter: 7 * time.Second},
			wantIn: []string{"Retry-After 7s"},
		},
		{
			// now is 05.6 s past the minute: 36 s is 30.4 s away, which rounds to 30 s.
			name: "429 with Retry-After date", status: 429, header: hdr("Retry-After", now.Truncate(time.Second).Add(31*time.Second).Format(http.TimeFormat)),
			wantErr: ErrUnavailable, wantAPI: &APIError{StatusCode: 429, Description: "rate limit exceeded", RetryAfter: 30 * time.Second},
		},
		{
			name: "429 with JSON error keeps Pure1's words", status: 429, body: `{"error":"too_many_requests","error_description":"slow down"}`,
			wantErr: ErrUnavailable, wantAPI: &APIError{StatusCode: 429, Code: "too_many_requests", Description: "slow down"},
		},
		{
			name: "429 HTML body is not quoted", status: 429, body: "<html>busy</html>",
			wantErr: ErrUnavailable, wantAPI: &APIError{StatusCode: 429, Description: "rate limit exceeded"},
		},
		{
			name: "500 HTML body is not quoted", status: 500, body: "<html>stack trace</html>",
			wantErr: ErrUnavailable, wantAPI: &APIError{StatusCode: 500},
		},
		{
			name: "503 JSON error", status: 503, header: hdr("Retry-After", "2"), body: `{"error":"temporarily_unavailable"}`,
			wantErr: ErrUnavailable, wantAPI: &APIError{StatusCode: 503, Code: "temporarily_unavailable", RetryAfter: 2 * time.Second},
		},
		{
			name: "408", status: 408, body: "",
			wantErr: ErrUnavailable, wantAPI: &APIError{StatusCode: 408},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := c.header
			if h == nil {
				h = http.Header{}
			}
			tok, err := ParseTokenResponse(c.status, h, []byte(c.body), now, now)
			if c.want != nil {
				if err != nil {
					t.Fatalf("ParseTokenResponse: %v", err)
				}
				if *tok != *c.want {
					t.Errorf("got  %+v\nwant %+v", *tok, *c.want)
				}
				return
			}
			if err == nil || tok != nil {
				t.Fatalf("got %+v, %v; want an error", tok, err)
			}
			if !errors.Is(err, c.wantErr) {
				t.Errorf("error %q, want errors.Is %q", err, c.wantErr)
			}
			for _, s := range c.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if !utf8.ValidString(err.Error()) || strings.ContainsAny(err.Error(), "\x00\n\x1b") {
				t.Errorf("error is not clean printable text: %q", err)
			}
			var apiErr *APIError
			if got := errors.As(err, &apiErr); got != (c.wantAPI != nil) {
				t.Fatalf("errors.As(*APIError) = %v for %v", got, err)
			}
			if c.wantAPI != nil && *apiErr != *c.wantAPI {
				t.Errorf("APIError\n got  %+v\n want %+v", *apiErr, *c.wantAPI)
			}
		})
	}
}

// expires_in counts from when the request was sent: Pure1 issued the token
// after that, so a slow answer cannot make the token look longer-lived than
// it is. The token's own exp, when earlier, still wins.
func TestParseTokenResponseMeasuresFromSend(t *testing.T) {
	t.Parallel()
	sent := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	received := sent.Add(40 * time.Second) // a slow proxy, retries inside Pure1
	for _, c := range []struct {
		name   string
		claims jwt.MapClaims // nil: an opaque token, no exp
		want   time.Time
	}{
		{"opaque token", nil, sent.Add(36000 * time.Second)},
		{"no exp claim", jwt.MapClaims{"org": "1"}, sent.Add(36000 * time.Second)},
		{"exp before sent+expires_in", jwt.MapClaims{"exp": sent.Unix() + 600}, sent.Add(600 * time.Second)},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			access := "opaque-access-token"
			if c.claims != nil {
				access = makeAccessToken(t, c.claims)
			}
			body := fmt.Sprintf(`{"access_token":%q,"token_type":"Bearer","expires_in":36000}`, access)
			tok, err := ParseTokenResponse(200, http.Header{}, []byte(body), sent, received)
			if err != nil {
				t.Fatalf("ParseTokenResponse: %v", err)
			}
			if !tok.ExpiresAt.Equal(c.want) {
				t.Errorf("ExpiresAt %s, want %s (sent %s, received %s)", tok.ExpiresAt, c.want, sent, received)
			}
		})
	}
}

func TestParseTokenResponseNilHeader(t *testing.T) {
	t.Parallel()
	if _, err := ParseTokenResponse(429, nil, nil, time.Now(), time.Now()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("nil header: %v", err)
	}
}

func TestAPIErrorClassification(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		status    int
		transient bool
	}{
		{301, false}, {400, false}, {401, false}, {403, false}, {404, false}, {405, false}, {409, false}, {422, false},
		{408, true}, {429, true}, {500, true}, {502, true}, {503, true}, {504, true}, {599, true},
		// About the request, not the load: a retry gets the same answer.
		{501, false}, {505, false},
	} {
		e := &APIError{StatusCode: c.status}
		if errors.Is(e, ErrUnavailable) != c.transient || errors.Is(e, ErrRejected) == c.transient {
			t.Errorf("HTTP %d: Is(ErrUnavailable)=%v Is(ErrRejected)=%v, want transient=%v",
				c.status, errors.Is(e, ErrUnavailable), errors.Is(e, ErrRejected), c.transient)
		}
		if errors.Is(e, ErrBadResponse) {
			t.Errorf("HTTP %d is ErrBadResponse", c.status)
		}
	}
	for _, c := range []struct {
		err  APIError
		want string
	}{
		{APIError{StatusCode: 400}, "HTTP 400"},
		{APIError{StatusCode: 401, Code: "invalid_client"}, "HTTP 401 invalid_client"},
		{APIError{StatusCode: 400, Description: "bad"}, "HTTP 400: bad"},
		{APIError{StatusCode: 429, Code: "c", Description: "d", RetryAfter: 3 * time.Second}, "HTTP 429 c: d (Retry-After 3s)"},
	} {
		if got := c.err.Error(); got != c.want {
			t.Errorf("Error() = %q, want %q", got, c.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"1", time.Second},
		{" 120 ", 2 * time.Minute},
		{"-5", 0},
		{"+5", 5 * time.Second},
		{"1.5", 0},
		{"soon", 0},
		{"9223372036", 9223372036 * time.Second},
		{"9223372037", maxDuration},              // first value whose Duration overflows
		{"18446744074", maxDuration},             // used to wrap to ~0.29s
		{"99999999999999999999999", maxDuration}, // beyond int64
		{"-99999999999999999999999", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Format(time.RFC850), 0},
		{"Fri, 31 Dec 9999 23:59:59 GMT", maxDuration},
	} {
		if got := parseRetryAfter(c.in, now); got != c.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestTrimForMessage(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, in, want string
	}{
		{"plain", "hello", "hello"},
		{"collapses whitespace", "  a \n\t b  ", "a b"},
		{"control characters", "a\x00b\x1bc\x7fd", "a b c d"},
		{"invalid UTF-8", "a\xffb", "a?b"},
		{"exactly 200", strings.Repeat("x", 200), strings.Repeat("x", 200)},
		{"201 cut", strings.Repeat("x", 201), strings.Repeat("x", 200) + "..."},
		{"multibyte across the cut", strings.Repeat("x", 199) + "é" + "tail", strings.Repeat("x", 199) + "..."},
		{"4-byte runes", strings.Repeat("😀", 60), strings.Repeat("😀", 50) + "..."},
	} {
		got := trimForMessage([]byte(c.in))
		if got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("%s: result is not UTF-8: %q", c.name, got)
		}
	}
}

func segment(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestDecodeAccessTokenClaims(t *testing.T) {
	t.Parallel()
	hdr := segment(`{"alg":"HS256"}`)
	tok := func(payload string) string { return hdr + "." + segment(payload) + ".sig" }
	for _, c := range []struct {
		name  string
		token string
		want  AccessTokenClaims
	}{
		{"all claims", tok(`{"org":"4242","max_role":"pure1:admin","exp":1767323045}`), AccessTokenClaims{Org: "4242", MaxRole: "pure1:admin", Expiry: time.Unix(1767323045, 0)}},
		{"numeric org", tok(`{"org":12345678901}`), AccessTokenClaims{Org: "12345678901"}},
		{"fractional exp truncates", tok(`{"exp":1767323045.9}`), AccessTokenClaims{Expiry: time.Unix(1767323045, 0)}},
		{"padded payload", hdr + "." + base64.URLEncoding.EncodeToString([]byte(`{"org":"p"}`)) + ".s", AccessTokenClaims{Org: "p"}},
		{"exp in milliseconds ignored", tok(`{"exp":1767323045000}`), AccessTokenClaims{}},
		{"exp negative ignored", tok(`{"exp":-1}`), AccessTokenClaims{}},
		{"exp string ignored", tok(`{"exp":"1767323045"}`), AccessTokenClaims{}},
		{"org bool ignored", tok(`{"org":true,"max_role":["a"]}`), AccessTokenClaims{}},
		{"payload an array", tok(`[1,2]`), AccessTokenClaims{}},
		{"payload null", tok(`null`), AccessTokenClaims{}},
		{"payload not JSON", tok(`{{{`), AccessTokenClaims{}},
		{"payload not base64", hdr + ".!!!.sig", AccessTokenClaims{}},
		{"payload standard base64 alphabet", hdr + "." + base64.RawStdEncoding.EncodeToString([]byte(`{"org":"??>>"}`)) + ".s", AccessTokenClaims{}},
		{"two segments", hdr + "." + segment(`{"org":"x"}`), AccessTokenClaims{}},
		{"four segments", tok(`{"org":"x"}`) + ".x", AccessTokenClaims{}},
		{"empty", "", AccessTokenClaims{}},
		{"dots", "..", AccessTokenClaims{}},
		{"opaque", "abcdef", AccessTokenClaims{}},
	} {
		if got := DecodeAccessTokenClaims(c.token); got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestDecodeAccessTokenClaimsJunk throws random and half-valid tokens at the
// decoder; it must never panic. FuzzDecodeAccessTokenClaims goes further.
func TestDecodeAccessTokenClaimsJunk(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := "ab.=-_{}\":,0123456789eE+ \x00\xff"
	pieces := []string{segment(`{"exp":`), segment(`{"org":`), segment(`1e400}`), ".", "=", segment(`{"exp":1e308}`), segment(`{"org":1e308}`)}
	for range 5000 {
		var b strings.Builder
		for range r.IntN(40) {
			if r.IntN(4) == 0 {
				b.WriteString(pieces[r.IntN(len(pieces))])
			} else {
				b.WriteByte(alphabet[r.IntN(len(alphabet))])
			}
		}
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("DecodeAccessTokenClaims(%q) panicked: %v", b.String(), p)
				}
			}()
			c := DecodeAccessTokenClaims(b.String())
			if !c.Expiry.IsZero() && (c.Expiry.Unix() <= 0 || c.Expiry.Unix() >= 1e11) {
				t.Fatalf("DecodeAccessTokenClaims(%q): expiry %v out of range", b.String(), c.Expiry)
			}
		}()
	}
}
