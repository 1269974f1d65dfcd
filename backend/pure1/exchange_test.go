package pure1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Every test closes its servers and idle client connections, so nothing
	// may be left running when the package's tests end.
	goleak.VerifyTestMain(m)
}

// testCtx bounds one Exchange, so that a broken retry loop fails the test
// instead of hanging it.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fastRetry keeps retry tests in milliseconds.
var fastRetry = RetryPolicy{
	MaxAttempts:     3,
	InitialInterval: 2 * time.Millisecond,
	MaxInterval:     10 * time.Millisecond,
	MaxRetryAfter:   2 * time.Second,
	MaxElapsed:      10 * time.Second,
}

// accessTokenSecret signs the access tokens the fake Pure1 issues; clients
// never verify them, they only read org, max_role and exp.
var accessTokenSecret = []byte("fake-pure1-access-token-secret")

func makeAccessToken(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(accessTokenSecret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// fakePure1 is an httptest token endpoint that checks every request the way
// Pure1 does (method, content type, exactly the three form fields, a JWT
// signed by the application's key) before answering with respond.
type fakePure1 struct {
	t       *testing.T
	srv     *httptest.Server
	pub     any
	appID   string
	hits    atomic.Int32
	respond func(w http.ResponseWriter, r *http.Request, hit int32)
	// done is closed when the test ends, releasing blocked handlers.
	done chan struct{}

	mu       sync.Mutex
	problems []string
	subjects []string
}

func newFakePure1(t *testing.T, respond func(w http.ResponseWriter, r *http.Request, hit int32)) *fakePure1 {
	t.Helper()
	f := &fakePure1{
		t:       t,
		pub:     sharedKey(t, "rsa2048-pkcs1.pem").PublicKey(),
		appID:   testAppID,
		respond: respond,
		done:    make(chan struct{}),
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		close(f.done)
		f.srv.CloseClientConnections()
		f.srv.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, p := range f.problems {
			t.Errorf("fake Pure1 saw a bad request: %s", p)
		}
	})
	return f
}

func (f *fakePure1) URL() string { return f.srv.URL + "/oauth2/1.0/token" }

func (f *fakePure1) problem(format string, args ...any) {
	f.mu.Lock()
	f.problems = append(f.problems, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

func (f *fakePure1) serve(w http.ResponseWriter, r *http.Request) {
	hit := f.hits.Add(1)
	if r.Method != http.MethodPost {
		f.problem("method %s", r.Method)
	}
	if r.URL.Path != "/oauth2/1.0/token" || r.URL.RawQuery != "" {
		f.problem("path %s?%s", r.URL.Path, r.URL.RawQuery)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		f.problem("Content-Type %q", ct)
	}
	if a := r.Header.Get("Accept"); a != "application/json" {
		f.problem("Accept %q", a)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.problem("reading body: %v", err)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		f.problem("body is not form-urlencoded: %v", err)
	}
	var names []string
	for k, v := range form {
		names = append(names, k)
		if len(v) != 1 {
			f.problem("field %s sent %d times", k, len(v))
		}
	}
	sort.Strings(names)
	if got := strings.Join(names, ","); got != "grant_type,subject_token,subject_token_type" {
		f.problem("form fields %s", got)
	}
	if g := form.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:token-exchange" {
		f.problem("grant_type %q", g)
	}
	if g := form.Get("subject_token_type"); g != "urn:ietf:params:oauth:token-type:jwt" {
		f.problem("subject_token_type %q", g)
	}
	subject := form.Get("subject_token")
	f.mu.Lock()
	f.subjects = append(f.subjects, subject)
	f.mu.Unlock()
	var claims jwt.RegisteredClaims
	_, err = jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(f.appID), jwt.WithExpirationRequired()).
		ParseWithClaims(subject, &claims, func(*jwt.Token) (any, error) { return f.pub, nil })
	if err != nil {
		f.problem("subject_token does not verify: %v", err)
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"invalid_client","error_description":"Invalid identity: JWT validation failed."}`)
		return
	}
	f.respond(w, r, hit)
}

// clientJWT is a valid subject token for the fake.
func clientJWT(t testing.TB) string {
	t.Helper()
	now := time.Now().Unix()
	tok, err := SignJWT(testAppID, sharedKey(t, "rsa2048-pkcs1.pem"), now, now+300)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// newTestExchanger builds an exchanger on the real pooled transport whose idle
// connections are closed when the test ends.
func newTestExchanger(t *testing.T, opts HTTPExchangerOptions) *HTTPExchanger {
	t.Helper()
	if opts.Retry.MaxAttempts == 0 {
		opts.Retry = fastRetry
	}
	if opts.AttemptTimeout == 0 {
		opts.AttemptTimeout = 5 * time.Second
	}
	// The endpoints here are httptest servers on loopback, which a plugin
	// reaches only when its registrar allows it; the tests of that refusal
	// call NewHTTPExchanger themselves.
	opts.Hosts = opts.Hosts.WithLoopback()
	e := NewHTTPExchanger(opts)
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func okBody(accessToken string, expiresIn any) string {
	return fmt.Sprintf(`{"access_token":%q,"issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":%v}`, accessToken, expiresIn)
}

func TestExchangeSuccess(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 4, 5, 6, 7, 800_000_000, time.UTC)
	for _, c := range []struct {
		name          string
		claims        jwt.MapClaims
		wantOrg       string
		wantRole      string
		wantExpiresAt time.Time
	}{
		{
			name:          "org and role, exp after expires_in",
			claims:        jwt.MapClaims{"org": "1234", "max_role": "pure1:admin", "exp": now.Unix() + 40000},
			wantOrg:       "1234",
			wantRole:      "pure1:admin",
			wantExpiresAt: now.Add(35999 * time.Second).Truncate(time.Second),
		},
		{
			name:          "numeric org, exp before expires_in wins",
			claims:        jwt.MapClaims{"org": 98765, "max_role": "pure1:viewer", "exp": now.Unix() + 600},
			wantOrg:       "98765",
			wantRole:      "pure1:viewer",
			wantExpiresAt: time.Unix(now.Unix()+600, 0).UTC(),
		},
		{
			name:          "no claims Pure1 documents",
			claims:        jwt.MapClaims{"sub": "someone"},
			wantExpiresAt: now.Add(35999 * time.Second).Truncate(time.Second),
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			access := makeAccessToken(t, c.claims)
			f := newFakePure1(t, func(w http.ResponseWriter, _ *http.Request, _ int32) {
				writeJSON(w, http.StatusOK, okBody(access, 35999))
			})
			ex := newTestExchanger(t, HTTPExchangerOptions{Now: func() time.Time { return now }})
			subject := clientJWT(t)
			tok, err := ex.Exchange(testCtx(t), f.URL(), subject)
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if f.hits.Load() != 1 {
				t.Errorf("server hit %d times", f.hits.Load())
			}
			if f.subjects[0] != subject {
				t.Error("subject_token arrived altered")
			}
			want := AccessToken{
				Token:           access,
				TokenType:       "Bearer",
				IssuedTokenType: "urn:ietf:params:oauth:token-type:access_token",
				ExpiresIn:       35999 * time.Second,
				ExpiresAt:       c.wantExpiresAt,
				Org:             c.wantOrg,
				MaxRole:         c.wantRole,
			}
			if *tok != want {
				t.Errorf("got  %+v\nwant %+v", *tok, want)
			}
		})
	}
}

// exchangeCase is one scripted conversation with the fake token endpoint.
type exchangeCase struct {
	name     string
	respond  func(w http.ResponseWriter, r *http.Request, hit int32)
	retry    RetryPolicy // zero: fastRetry
	attempt  time.Duration
	wantErr  error
	wantHits int32
	wantIn   []string // substrings of the error
	wantCode int      // APIError status, when one is expected
	minTime  time.Duration
	maxTime  time.Duration
}

func runExchangeCases(t *testing.T, cases []exchangeCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFakePure1(t, c.respond)
			ex := newTestExchanger(t, HTTPExchangerOptions{Retry: c.retry, AttemptTimeout: c.attempt})
			start := time.Now()
			tok, err := ex.Exchange(testCtx(t), f.URL(), clientJWT(t))
			took := time.Since(start)

			if c.wantErr == nil {
				if err != nil {
					t.Fatalf("Exchange: %v", err)
				}
				if tok == nil || tok.Token == "" {
					t.Fatalf("no token: %+v", tok)
				}
			} else {
				if err == nil {
					t.Fatalf("Exchange succeeded, want %v", c.wantErr)
				}
				if tok != nil {
					t.Errorf("token %+v returned with error", tok)
				}
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("error %q, want errors.Is %q", err, c.wantErr)
				}
				for _, other := range []error{ErrRejected, ErrUnavailable, ErrBadResponse} {
					if other != c.wantErr && errors.Is(err, other) {
						t.Errorf("error %q is also %q", err, other)
					}
				}
			}
			if got := f.hits.Load(); got != c.wantHits {
				t.Errorf("server hit %d times, want %d (error: %v)", got, c.wantHits, err)
			}
			for _, s := range c.wantIn {
				if err == nil || !strings.Contains(err.Error(), s) {
					t.Errorf("error %v does not contain %q", err, s)
				}
			}
			if c.wantCode != 0 {
				var apiErr *APIError
				if !errors.As(err, &apiErr) || apiErr.StatusCode != c.wantCode {
					t.Errorf("error %v: want an *APIError with status %d", err, c.wantCode)
				}
			}
			if c.minTime > 0 && took < c.minTime {
				t.Errorf("took %v, want at least %v", took, c.minTime)
			}
			maxTime := c.maxTime
			if maxTime == 0 {
				maxTime = 3 * time.Second
			}
			if took > maxTime {
				t.Errorf("took %v, want at most %v", took, maxTime)
			}
		})
	}
}

// statusOnce answers status (with body and headers) for the first n hits,
// then a good token.
func statusThenOK(t testing.TB, n int32, status int, body string, header map[string]string) func(http.ResponseWriter, *http.Request, int32) {
	access := makeAccessToken(t, jwt.MapClaims{"org": "1"})
	return func(w http.ResponseWriter, _ *http.Request, hit int32) {
		if hit > n {
			writeJSON(w, http.StatusOK, okBody(access, 35999))
			return
		}
		for k, v := range header {
			w.Header().Set(k, v)
		}
		writeJSON(w, status, body)
	}
}

const forever = 1 << 30

func TestExchangeHTTPErrors(t *testing.T) {
	t.Parallel()
	rateHeaders := map[string]string{"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1"}
	withRetryAfter := func(v string) map[string]string {
		h := map[string]string{"Retry-After": v}
		for k, x := range rateHeaders {
			h[k] = x
		}
		return h
	}
	cases := []exchangeCase{
		{
			name:     "400 invalid_request is not retried",
			respond:  statusThenOK(t, forever, 400, `{"error":"invalid_request","error_description":"subject_token_type is not supported"}`, nil),
			wantErr:  ErrRejected,
			wantHits: 1,
			wantIn:   []string{"HTTP 400", "invalid_request", "subject_token_type is not supported"},
			wantCode: 400,
		},
		{
			name:     "401 invalid_client is not retried",
			respond:  statusThenOK(t, forever, 401, `{"error":"invalid_client","error_description":"Invalid identity: JWT validation failed."}`, nil),
			wantErr:  ErrRejected,
			wantHits: 1,
			wantIn:   []string{"HTTP 401", "invalid_client", "Invalid identity: JWT validation failed."},
			wantCode: 401,
		},
		{
			name:     "403 with an HTML body is not retried",
			respond:  statusThenOK(t, forever, 403, "<html><body>Forbidden</body></html>", nil),
			wantErr:  ErrRejected,
			wantHits: 1,
			wantIn:   []string{"HTTP 403", "Forbidden"},
			wantCode: 403,
		},
		{
			name:     "429 without Retry-After is retried with backoff",
			respond:  statusThenOK(t, forever, 429, "", rateHeaders),
			wantErr:  ErrUnavailable,
			wantHits: 3,
			wantIn:   []string{"HTTP 429", "X-RateLimit-Limit=100", "X-RateLimit-Remaining=0", "3 attempt(s)"},
			wantCode: 429,
			maxTime:  400 * time.Millisecond, // backoff is 2 ms, then 4 ms (±50%)
		},
		{
			name:     "429 then success",
			respond:  statusThenOK(t, 2, 429, "", rateHeaders),
			wantHits: 3,
			maxTime:  time.Second,
		},
		{
			name:     "429 Retry-After 1 is honoured",
			respond:  statusThenOK(t, 1, 429, "", withRetryAfter("1")),
			wantHits: 2,
			minTime:  time.Second,
			maxTime:  1800 * time.Millisecond,
		},
		{
			name:     "429 Retry-After 1 on every attempt",
			respond:  statusThenOK(t, forever, 429, "", withRetryAfter("1")),
			retry:    RetryPolicy{MaxAttempts: 2, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, MaxRetryAfter: 2 * time.Second, MaxElapsed: 10 * time.Second},
			wantErr:  ErrUnavailable,
			wantHits: 2,
			wantIn:   []string{"HTTP 429", "Retry-After 1s"},
			wantCode: 429,
			minTime:  time.Second,
			maxTime:  1800 * time.Millisecond,
		},
		{
			// 3 s is over fastRetry's 2 s cap but well inside the context's
			// deadline: only MaxRetryAfter can end this at once.
			name:     "429 Retry-After beyond MaxRetryAfter stops at once",
			respond:  statusThenOK(t, forever, 429, "", withRetryAfter("3")),
			wantErr:  ErrUnavailable,
			wantHits: 1,
			wantIn:   []string{"HTTP 429", "Retry-After 3s"},
			wantCode: 429,
			maxTime:  500 * time.Millisecond,
		},
		{
			name:     "429 Retry-After that overflows a Duration stops at once",
			respond:  statusThenOK(t, forever, 429, "", withRetryAfter("18446744074")),
			wantErr:  ErrUnavailable,
			wantHits: 1,
			wantCode: 429,
			maxTime:  500 * time.Millisecond,
		},
		{
			name:     "429 Retry-After past MaxElapsed stops at once",
			respond:  statusThenOK(t, forever, 429, "", withRetryAfter("2")),
			retry:    RetryPolicy{MaxAttempts: 3, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, MaxRetryAfter: 5 * time.Second, MaxElapsed: time.Second},
			wantErr:  ErrUnavailable,
			wantHits: 1,
			wantCode: 429,
			maxTime:  500 * time.Millisecond,
		},
		{
			name:     "408 is retried",
			respond:  statusThenOK(t, forever, 408, "", nil),
			wantErr:  ErrUnavailable,
			wantHits: 3,
			wantCode: 408,
		},
		{
			name:     "503 then success",
			respond:  statusThenOK(t, 1, 503, "", nil),
			wantHits: 2,
		},
		{
			name:     "MaxAttempts 1 does not retry",
			respond:  statusThenOK(t, forever, 503, "", nil),
			retry:    RetryPolicy{MaxAttempts: 1, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, MaxRetryAfter: time.Second, MaxElapsed: time.Second},
			wantErr:  ErrUnavailable,
			wantHits: 1,
			wantCode: 503,
		},
		{
			name: "200 with a 2 MiB body is not read to the end",
			respond: func(w http.ResponseWriter, _ *http.Request, _ int32) {
				writeJSON(w, 200, `{"x":"`+strings.Repeat("a", 2<<20)+`"}`)
			},
			wantErr:  ErrBadResponse,
			wantHits: 1,
			wantIn:   []string{"larger than"},
		},
	}
	for _, status := range []int{500, 502, 503, 504} {
		cases = append(cases, exchangeCase{
			name:     fmt.Sprintf("%d is retried, then unavailable", status),
			respond:  statusThenOK(t, forever, status, "<html>upstream sad</html>", nil),
			wantErr:  ErrUnavailable,
			wantHits: 3,
			wantIn:   []string{fmt.Sprintf("HTTP %d", status), "3 attempt(s)"},
			wantCode: status,
			maxTime:  400 * time.Millisecond,
		})
	}
	runExchangeCases(t, cases)
}

func TestExchangeBadResponses(t *testing.T) {
	t.Parallel()
	access := makeAccessToken(t, jwt.MapClaims{"org": "1"})
	var cases []exchangeCase
	for _, c := range []struct{ name, body string }{
		{"non-JSON", "<html>hello</html>"},
		{"truncated JSON", `{"access_token":"` + access + `","expires_in":359`},
		{"empty body", ""},
		{"JSON null", "null"},
		{"JSON array", `[1,2,3]`},
		{"no access_token", `{"issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":35999}`},
		{"empty access_token", okBody("", 35999)},
		{"expires_in missing", `{"access_token":"` + access + `","token_type":"Bearer"}`},
		{"expires_in zero", okBody(access, 0)},
		{"expires_in negative", okBody(access, -5)},
		{"expires_in a string", okBody(access, `"35999"`)},
		{"expires_in overflowing a Duration", okBody(access, "1e20")},
		{"token_type not Bearer", `{"access_token":"` + access + `","token_type":"MAC","expires_in":35999}`},
	} {
		body := c.body
		cases = append(cases, exchangeCase{
			name:     c.name + " is not retried",
			respond:  func(w http.ResponseWriter, _ *http.Request, _ int32) { writeJSON(w, http.StatusOK, body) },
			wantErr:  ErrBadResponse,
			wantHits: 1,
		})
	}
	runExchangeCases(t, cases)
}

func TestExchangeNetworkErrors(t *testing.T) {
	t.Parallel()
	hijackClose := func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST, not FIN
		}
		conn.Close()
	}
	// Handlers that hang until the client gives up and hangs up (the fake's
	// cleanup also closes every connection).
	block := func(_ http.ResponseWriter, r *http.Request, _ int32) { <-r.Context().Done() }
	slowBody := func(w http.ResponseWriter, r *http.Request, _ int32) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"access_token":"`)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}
	access := makeAccessToken(t, jwt.MapClaims{"org": "1"})
	twoTries := RetryPolicy{MaxAttempts: 2, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, MaxRetryAfter: time.Second, MaxElapsed: 10 * time.Second}

	runExchangeCases(t, []exchangeCase{
		{
			name:     "connection reset is retried, then unavailable",
			respond:  func(w http.ResponseWriter, r *http.Request, _ int32) { hijackClose(w, r) },
			wantErr:  ErrUnavailable,
			wantHits: 3,
			wantIn:   []string{"3 attempt(s)"},
		},
		{
			name: "connection reset then success",
			respond: func(w http.ResponseWriter, r *http.Request, hit int32) {
				if hit == 1 {
					hijackClose(w, r)
					return
				}
				writeJSON(w, http.StatusOK, okBody(access, 35999))
			},
			wantHits: 2,
		},
		{
			name:     "per-attempt timeout before headers",
			respond:  block,
			retry:    twoTries,
			attempt:  150 * time.Millisecond,
			wantErr:  ErrUnavailable,
			wantHits: 2,
			wantIn:   []string{"timed out", "2 attempt(s)"},
			minTime:  300 * time.Millisecond,
			maxTime:  1500 * time.Millisecond,
		},
		{
			name:     "per-attempt timeout in a slow body",
			respond:  slowBody,
			retry:    twoTries,
			attempt:  150 * time.Millisecond,
			wantErr:  ErrUnavailable,
			wantHits: 2,
			wantIn:   []string{"reading the response", "2 attempt(s)"},
			minTime:  300 * time.Millisecond,
			maxTime:  1500 * time.Millisecond,
		},
	})
}

// closedPortURL is a URL nothing listens on.
func closedPortURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/oauth2/1.0/token"
}

func TestExchangeConnectionRefused(t *testing.T) {
	t.Parallel()
	u := closedPortURL(t)
	ex := newTestExchanger(t, HTTPExchangerOptions{})
	start := time.Now()
	_, err := ex.Exchange(testCtx(t), u, clientJWT(t))
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrRejected) {
		t.Fatalf("error %v, want ErrUnavailable only", err)
	}
	if !strings.Contains(err.Error(), "3 attempt(s)") || !strings.Contains(err.Error(), "refused") {
		t.Errorf("error %q should say 3 attempts were refused", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v", took)
	}
}

// TestExchangeRedactsURL: whatever is in token_url besides scheme, host and
// path (credentials, query) stays out of errors.
func TestExchangeRedactsURL(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(closedPortURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("user", "s3cretPass")
	u.RawQuery = "apikey=s3cretQuery"
	ex := newTestExchanger(t, HTTPExchangerOptions{Retry: RetryPolicy{MaxAttempts: 1}})
	_, err = ex.Exchange(testCtx(t), u.String(), clientJWT(t))
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error leaks token_url secrets: %v", err)
	}
	// An unparsable URL is rejected without a request.
	_, err = ex.Exchange(testCtx(t), "http://[::1]:namedport/\x7f?x=s3cret", clientJWT(t))
	if !errors.Is(err, ErrRejected) || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("bad token_url: %v", err)
	}
}

func TestExchangeContext(t *testing.T) {
	t.Parallel()

	t.Run("cancelled during backoff", func(t *testing.T) {
		t.Parallel()
		firstHit := make(chan struct{}, 1)
		f := newFakePure1(t, func(w http.ResponseWriter, _ *http.Request, _ int32) {
			writeJSON(w, http.StatusServiceUnavailable, "")
			select {
			case firstHit <- struct{}{}:
			default:
			}
		})
		// Backoff far longer than the test: only the cancel can end the wait.
		ex := newTestExchanger(t, HTTPExchangerOptions{Retry: RetryPolicy{
			MaxAttempts: 5, InitialInterval: time.Minute, MaxInterval: time.Minute, MaxRetryAfter: time.Second, MaxElapsed: time.Hour,
		}})
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		res := make(chan error, 1)
		go func() {
			_, err := ex.Exchange(ctx, f.URL(), clientJWT(t))
			res <- err
		}()
		<-firstHit
		time.Sleep(20 * time.Millisecond) // let the exchanger enter its backoff
		cancelled := time.Now()
		cancel()
		var err error
		select {
		case err = <-res:
		case <-time.After(2 * time.Second):
			t.Fatal("Exchange did not return after its context was cancelled")
		}
		if took := time.Since(cancelled); took > 200*time.Millisecond {
			t.Errorf("Exchange returned %v after the cancel", took)
		}
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "HTTP 503") {
			t.Errorf("error %v, want ErrUnavailable naming the last failure", err)
		}
		hits := f.hits.Load()
		time.Sleep(50 * time.Millisecond)
		if hits != 1 || f.hits.Load() != hits {
			t.Errorf("server hits: %d at return, %d later; want 1", hits, f.hits.Load())
		}
	})

	t.Run("cancelled during an attempt", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		f := newFakePure1(t, func(w http.ResponseWriter, r *http.Request, _ int32) {
			cancel()
			<-r.Context().Done() // the client hangs up
		})
		ex := newTestExchanger(t, HTTPExchangerOptions{})
		_, err := ex.Exchange(ctx, f.URL(), clientJWT(t))
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("error %v, want ErrUnavailable", err)
		}
		if h := f.hits.Load(); h != 1 {
			t.Errorf("server hit %d times, want 1", h)
		}
	})

	t.Run("already cancelled", func(t *testing.T) {
		t.Parallel()
		f := newFakePure1(t, func(w http.ResponseWriter, _ *http.Request, _ int32) { writeJSON(w, 503, "") })
		ex := newTestExchanger(t, HTTPExchangerOptions{})
		ctx, cancel := context.WithCancel(testCtx(t))
		cancel()
		_, err := ex.Exchange(ctx, f.URL(), clientJWT(t))
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("error %v, want ErrUnavailable", err)
		}
		if h := f.hits.Load(); h != 0 {
			t.Errorf("server hit %d times, want 0", h)
		}
	})

	t.Run("deadline before Retry-After ends at once", func(t *testing.T) {
		t.Parallel()
		f := newFakePure1(t, statusThenOK(t, forever, 429, "", map[string]string{"Retry-After": "1"}))
		ex := newTestExchanger(t, HTTPExchangerOptions{})
		ctx, cancel := context.WithTimeout(testCtx(t), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := ex.Exchange(ctx, f.URL(), clientJWT(t))
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "HTTP 429") {
			t.Errorf("error %v, want ErrUnavailable with Pure1's 429", err)
		}
		if took := time.Since(start); took > 300*time.Millisecond {
			t.Errorf("took %v: waited although the deadline comes before Retry-After", took)
		}
		if h := f.hits.Load(); h != 1 {
			t.Errorf("server hit %d times, want 1", h)
		}
	})

	t.Run("deadline during backoff", func(t *testing.T) {
		t.Parallel()
		f := newFakePure1(t, statusThenOK(t, forever, 502, "", nil))
		ex := newTestExchanger(t, HTTPExchangerOptions{Retry: RetryPolicy{
			MaxAttempts: 5, InitialInterval: time.Minute, MaxInterval: time.Minute, MaxRetryAfter: time.Second, MaxElapsed: time.Hour,
		}})
		ctx, cancel := context.WithTimeout(testCtx(t), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := ex.Exchange(ctx, f.URL(), clientJWT(t))
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "HTTP 502") {
			t.Errorf("error %v, want ErrUnavailable with the last 502", err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("took %v", took)
		}
		if h := f.hits.Load(); h != 1 {
			t.Errorf("server hit %d times, want 1", h)
		}
	})
}

// TestExchangeConcurrent shares one exchanger between goroutines, as the
// backend does.
func TestExchangeConcurrent(t *testing.T) {
	t.Parallel()
	access := makeAccessToken(t, jwt.MapClaims{"org": "1"})
	f := newFakePure1(t, func(w http.ResponseWriter, _ *http.Request, hit int32) {
		if hit%3 == 0 {
			writeJSON(w, 503, "")
			return
		}
		writeJSON(w, http.StatusOK, okBody(access, 35999))
	})
	ex := newTestExchanger(t, HTTPExchangerOptions{Retry: RetryPolicy{MaxAttempts: 10, InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond, MaxRetryAfter: time.Second, MaxElapsed: 10 * time.Second}})
	subject := clientJWT(t)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := ex.Exchange(ctx, f.URL(), subject)
			if err == nil && tok.Token != access {
				err = errors.New("wrong token")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestNewHTTPExchangerDefaults(t *testing.T) {
	t.Parallel()
	e := NewHTTPExchanger(HTTPExchangerOptions{})
	defer e.client.CloseIdleConnections()
	if e.retry != DefaultRetryPolicy {
		t.Errorf("retry = %+v, want DefaultRetryPolicy", e.retry)
	}
	if e.client.Timeout != 15*time.Second {
		t.Errorf("client timeout %v, want 15s", e.client.Timeout)
	}
	if e.logger == nil || e.now == nil {
		t.Error("logger or clock not defaulted")
	}
	// A caller's client is copied, its Timeout kept, its redirect rule
	// replaced on the copy only.
	own := &http.Client{Timeout: time.Second}
	e2 := NewHTTPExchanger(HTTPExchangerOptions{Client: own, AttemptTimeout: time.Hour})
	if e2.client == own || e2.client.Timeout != time.Second || own.Timeout != time.Second {
		t.Errorf("caller's client used in place or its timeout changed: %v", e2.client.Timeout)
	}
	if own.CheckRedirect != nil || e2.client.CheckRedirect == nil || e.client.CheckRedirect == nil {
		t.Error("the exchanger's clients must refuse redirects, on a copy of the caller's")
	}
	var _ Exchanger = e
}
