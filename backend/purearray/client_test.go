package purearray

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
)

// tlsArray is an httptest TLS server standing in for an array, and the PEM
// of the certificate it presents (its own CA, as arrays' usually are).
func tlsArray(t *testing.T, h http.Handler) (*httptest.Server, []byte) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	// Handshakes refused on purpose would otherwise be logged as errors.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return srv, ca
}

var noRetry = pure1.RetryPolicy{MaxAttempts: 1}

func newTestArray(t *testing.T, url string, ca []byte) *HTTPArray {
	t.Helper()
	return newKindArray(t, nil, url, ca)
}

// newKindArray is the client of the array at url speaking kind's wire.
func newKindArray(t *testing.T, kind *Kind, url string, ca []byte) *HTTPArray {
	t.Helper()
	return newLoggingArray(t, kind, url, ca, nil)
}

// newLoggingArray is newKindArray logging to logger.
func newLoggingArray(t *testing.T, kind *Kind, url string, ca []byte, logger hclog.Logger) *HTTPArray {
	t.Helper()
	// httptest's servers are on loopback, which an operator must allow.
	a, err := New(Options{Kind: kind, ArrayURL: url, CACert: ca, Retry: noRetry, Hosts: pure1.HostPolicy{}.WithLoopback(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.CloseIdleConnections)
	return a
}

// The token endpoint answers plainly or {"items":[...]}; both give the token.
// Its OAuth errors are refusals.
func TestExchangeShapes(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		status     int
		wantErr    error
	}{
		{"plain", `{"access_token":"a.b.c","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","expires_in":3600}`, 200, nil},
		{"items", `{"items":[{"access_token":"a.b.c","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","expires_in":3600}]}`, 200, nil},
		{"two items", `{"items":[{"access_token":"a"},{"access_token":"b"}]}`, 200, pure1.ErrBadResponse},
		{"no token", `{"items":[]}`, 200, pure1.ErrBadResponse},
		{"oauth error", `{"error":"invalid_grant","error_description":"JWT validation failed"}`, 401, pure1.ErrRejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var form url.Values
			srv, ca := tlsArray(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != TokenPath || r.Method != http.MethodPost {
					http.NotFound(w, r)
					return
				}
				_ = r.ParseForm()
				form = r.PostForm
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			a := newTestArray(t, srv.URL, ca)
			tok, err := a.Exchange(context.Background(), TokenURL(srv.URL), "h.p.s")
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tok.Token != "a.b.c" || tok.ExpiresIn.Seconds() != 3600 {
				t.Errorf("token %q for %s, want a.b.c for 1h", tok.Token, tok.ExpiresIn)
			}
			if form.Get("grant_type") != pure1.GrantTypeExchange || form.Get("subject_token_type") != pure1.SubjectTokenTypeJWT || form.Get("subject_token") != "h.p.s" {
				t.Errorf("form sent = %v", form)
			}
		})
	}
}

// A certificate from a CA other than ca_cert is refused, not retried, and the
// message says to check ca_cert; an array_url whose host the registrar did
// not allow gets no request at all.
func TestArrayTLSAndHostPolicy(t *testing.T) {
	var hits int
	var mu sync.Mutex
	srv, _ := tlsArray(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
	}))
	otherCA := otherCAPEM(t) // httptest's servers all share one certificate
	a := newTestArray(t, srv.URL, otherCA)
	_, err := a.Exchange(context.Background(), TokenURL(srv.URL), "h.p.s")
	if err == nil || !strings.Contains(err.Error(), "check ca_cert") {
		t.Errorf("exchange with the wrong CA: %v, want advice to check ca_cert", err)
	}
	_, err = a.Admin(context.Background(), "token")
	if !errors.Is(err, pure1.ErrRejected) || !strings.Contains(err.Error(), "check ca_cert") {
		t.Errorf("admin with the wrong CA: %v, want a refusal naming ca_cert", err)
	}
	// No system root signs httptest's certificate either.
	b := newTestArray(t, srv.URL, nil)
	if _, err := b.Admin(context.Background(), "token"); !errors.Is(err, pure1.ErrRejected) {
		t.Errorf("admin with the system roots: %v, want a refusal", err)
	}

	if _, err := New(Options{ArrayURL: "https://array.example.net"}); !errors.Is(err, pure1.ErrHostNotAllowed) {
		t.Errorf("New for a host not allowed: %v, want ErrHostNotAllowed", err)
	}
	if _, err := New(Options{ArrayURL: srv.URL}); !errors.Is(err, pure1.ErrHostNotAllowed) {
		t.Errorf("New for loopback, not allowed: %v, want ErrHostNotAllowed", err)
	}
	if _, err := New(Options{ArrayURL: srv.URL, CACert: []byte("junk"), Hosts: pure1.HostPolicy{}.WithLoopback()}); !errors.Is(err, ErrBadCA) {
		t.Errorf("New with junk ca_cert: %v, want ErrBadCA", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 {
		t.Errorf("the array got %d requests over connections that did not verify", hits)
	}
}

func TestNewest2x(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"1.0", "2.0", "2.1", "2.17", "2.2"}, "2.17"},
		{[]string{"2.1"}, "2.1"},
		{[]string{"1.19", "2.0"}, ""},
		{nil, ""},
	} {
		got, err := newest2x(tc.in)
		if got != tc.want || (tc.want == "" && !errors.Is(err, ErrNoAPIVersion)) {
			t.Errorf("newest2x(%v) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// otherCAPEM is a CA certificate that signed nothing the tests serve.
func otherCAPEM(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "another CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// Each kind's whole admin conversation, as the array records it: version
// discovery, login with api-token at the kind's path, api-clients calls
// under x-auth-token with max_role in the kind's form, and the logout at
// the kind's path with that session. A client left without a kind speaks
// FlashArray.
func TestKindWire(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    arrayWire
		kind *Kind
	}{
		{"flasharray", flashArrayWire, FlashArray},
		{"flashblade", flashBladeWire, FlashBlade},
		{"no kind is a flasharray", flashArrayWire, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeArray(t, tc.w)
			a := f.client(t, tc.kind)
			key := fixedKey(t)
			name := tc.w.kind.DefaultClientName("my.conf")
			ctx := context.Background()
			var created, enabled, read *APIClient
			err := WithAdmin(ctx, a, adminToken, func(adm Admin) error {
				var err error
				if created, err = adm.CreateAPIClient(ctx, NewAPIClient{Name: name, Issuer: "vault-iss", PublicKeyPEM: key.PublicKeyPEM(), MaxRole: "readonly", AccessTokenTTL: time.Hour}); err != nil {
					return err
				}
				if enabled, err = adm.EnableAPIClient(ctx, name); err != nil {
					return err
				}
				if read, err = adm.GetAPIClient(ctx, name); err != nil {
					return err
				}
				if err = adm.DeleteAPIClient(ctx, name); err != nil {
					return err
				}
				if gone, err := adm.GetAPIClient(ctx, name); err != nil || gone != nil {
					return fmt.Errorf("read after delete = %+v, %v; want nil, nil", gone, err)
				}
				return adm.DeleteAPIClient(ctx, name) // gone already: not an error
			})
			if err != nil {
				t.Fatal(err)
			}
			if created.Enabled || created.ID != "id-"+name || created.KeyID != "kid-"+name {
				t.Errorf("created %+v, want disabled with id and key_id", created)
			}
			if !enabled.Enabled {
				t.Errorf("enabled %+v", enabled)
			}
			if read.Role() != "readonly" || !read.HasKey(key.Fingerprint()) || read.AccessTokenTTLMS != 3600000 || read.Issuer != "vault-iss" {
				t.Errorf("read %+v: role %q, has key %v", read, read.Role(), read.HasKey(key.Fingerprint()))
			}
			role := `"readonly"`
			if tc.w.roleRef {
				role = `{"name":"readonly"}`
			}
			clients := tc.w.clientsPath() + "?names=" + name
			list := tc.w.clientsPath() // a read lists every client: never by name
			want := []string{
				"GET /api/api_version",
				"POST " + tc.w.login + " api-token",
				"POST " + clients + ` session 1 {"access_token_ttl_in_ms":3600000,"issuer":"vault-iss","max_role":` + role + `,"public_key":"PEM"}`,
				"PATCH " + clients + ` session 1 {"enabled":true}`,
				"GET " + list + " session 1",
				"DELETE " + clients + " session 1",
				"GET " + list + " session 1",
				"DELETE " + clients + " session 1",
				"GET " + list + " session 1",
				"POST " + tc.w.logout + " session 1",
			}
			if got := f.recorded(); !reflect.DeepEqual(got, want) {
				t.Errorf("calls:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
			if n := f.openSessions(); n != 0 {
				t.Errorf("%d sessions left open", n)
			}
		})
	}
}

// A kind pointed at the other kind's array stops at version discovery with
// a message that names the list it looked for and the kind it speaks; it
// never logs in. An array without REST 2.1+ says so.
func TestKindMismatch(t *testing.T) {
	for _, tc := range []struct {
		array arrayWire
		kind  *Kind
		says  []string
	}{
		{flashArrayWire, FlashBlade, []string{`no "versions" list`, "is array_url a FlashBlade?", "kind=flashblade"}},
		{flashBladeWire, FlashArray, []string{`no "version" list`, "is array_url a FlashArray?", "kind=flasharray"}},
	} {
		t.Run(tc.kind.Name+" at a "+tc.array.kind.Name, func(t *testing.T) {
			f := newFakeArray(t, tc.array)
			called := false
			err := WithAdmin(context.Background(), f.client(t, tc.kind), adminToken, func(Admin) error { called = true; return nil })
			if !errors.Is(err, pure1.ErrBadResponse) || called {
				t.Fatalf("err = %v (fn called %v), want ErrBadResponse before fn", err, called)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not say %q", err, s)
				}
			}
			if got := f.recorded(); !reflect.DeepEqual(got, []string{"GET /api/api_version"}) {
				t.Errorf("calls %q, want the version discovery only", got)
			}
		})
	}
	for _, w := range wires {
		f := newFakeArray(t, w)
		f.fail("version", fault{status: 200, body: `{"` + w.versionsKey + `":["1.17","2.0"]}`})
		_, err := f.client(t, w.kind).Admin(context.Background(), adminToken)
		if !errors.Is(err, ErrNoAPIVersion) || !strings.Contains(err.Error(), "1.17, 2.0") {
			t.Errorf("%s without REST 2.1: %v", w.kind.Name, err)
		}
	}
}

// WithAdmin logs out whatever fn did, with the session it logged in with,
// and returns fn's error: a failed logout is logged (naming the call, never
// a token), not returned, since it undoes nothing fn did. No login: no fn
// and no logout.
func TestWithAdmin(t *testing.T) {
	boom := errors.New("boom")
	for _, w := range wires {
		for _, tc := range []struct {
			name     string
			token    string
			faults   map[string]fault
			fn       func(context.Context, context.CancelFunc, Admin) error
			wantErr  error  // errors.Is
			wantCall string // the CallError's call, when the error is one
			noFn     bool   // fn is never called, nor logout
		}{
			{name: "fn succeeds", fn: func(context.Context, context.CancelFunc, Admin) error { return nil }},
			{name: "fn fails", fn: func(context.Context, context.CancelFunc, Admin) error { return boom }, wantErr: boom},
			{name: "ctx cancelled during fn", fn: func(ctx context.Context, cancel context.CancelFunc, adm Admin) error {
				cancel()
				_, err := adm.GetAPIClient(ctx, "x")
				return err
			}, wantErr: context.Canceled, wantCall: `read API client "x"`},
			{name: "logout fails after fn succeeded", faults: map[string]fault{"logout": {status: 503, body: `{"errors":[{"message":"Busy."}]}`}},
				fn: func(context.Context, context.CancelFunc, Admin) error { return nil }},
			{name: "logout fails after fn failed", faults: map[string]fault{"logout": {status: 503, body: `{"errors":[{"message":"Busy."}]}`}},
				fn: func(context.Context, context.CancelFunc, Admin) error { return boom }, wantErr: boom},
			{name: "login refused", token: "wrong", wantErr: pure1.ErrRejected, wantCall: "login with admin_api_token", noFn: true},
			{name: "login without a session", faults: map[string]fault{"login": {status: 200, body: `{"items":[]}`}},
				wantErr: pure1.ErrBadResponse, wantCall: "login with admin_api_token", noFn: true},
		} {
			t.Run(w.kind.Name+"/"+tc.name, func(t *testing.T) {
				f := newFakeArray(t, w)
				for op, ft := range tc.faults {
					f.fail(op, ft)
				}
				token := adminToken
				if tc.token != "" {
					token = tc.token
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				called := false
				var log syncBuffer
				a := newLoggingArray(t, w.kind, f.srv.URL, f.ca, hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Trace}))
				err := WithAdmin(ctx, a, token, func(adm Admin) error {
					called = true
					return tc.fn(ctx, cancel, adm)
				})
				if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				var ce *CallError
				if tc.wantCall != "" && (!errors.As(err, &ce) || ce.Call != tc.wantCall) {
					t.Errorf("err = %v, want a CallError of %s", err, tc.wantCall)
				}
				if called == tc.noFn {
					t.Errorf("fn called = %v", called)
				}
				calls := f.recorded()
				last := calls[len(calls)-1]
				if tc.noFn {
					if strings.Contains(strings.Join(calls, "\n"), w.logout) {
						t.Errorf("a logout without a session: %q", calls)
					}
					return
				}
				if last != "POST "+w.logout+" session 1" {
					t.Errorf("last call %q, want the logout of session 1 (calls %q)", last, calls)
				}
				logged := log.String()
				if _, faulted := tc.faults["logout"]; faulted {
					want := "the array's logout (POST " + f.srv.URL + w.logout + ") failed: HTTP 503: Busy."
					if !strings.Contains(logged, "logging out of the array failed") || !strings.Contains(logged, want) {
						t.Errorf("log %q does not report the failed logout %q", logged, want)
					}
				} else if f.openSessions() != 0 {
					t.Errorf("%d sessions left open", f.openSessions())
				}
				if strings.Contains(logged, "SECRET") {
					t.Errorf("a token in the log: %q", logged)
				}
			})
		}
	}
}

// A logout that hangs after the request was cancelled still ends within
// its own few seconds: the session is closed on a fresh context, and the
// caller is not held up long by it.
func TestLogoutBounded(t *testing.T) {
	for _, w := range wires {
		t.Run(w.kind.Name, func(t *testing.T) {
			t.Parallel()
			f := newFakeArray(t, w)
			f.fail("logout", fault{hang: true})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			start := time.Now()
			err := WithAdmin(ctx, f.client(t, w.kind), adminToken, func(Admin) error { cancel(); return nil })
			took := time.Since(start)
			if err != nil {
				t.Errorf("err = %v: fn succeeded", err)
			}
			if took < logoutTimeout-500*time.Millisecond || took > logoutTimeout+5*time.Second {
				t.Errorf("WithAdmin took %s with a hanging logout, want about %s", took, logoutTimeout)
			}
		})
	}
}

// Every admin call's failure names the call, its method and URL (no query),
// and the array's own message; it is classified for callers (4xx refused,
// 5xx/429/network unavailable, an unusable 2xx a bad answer), and carries
// neither the API token nor the session token.
func TestCallErrors(t *testing.T) {
	type failure struct {
		name   string
		f      fault
		class  error
		status int    // CallError.StatusCode
		says   string // in the message
	}
	failures := []failure{
		{"refused", fault{status: 403, body: `{"errors":[{"context":"pureuser","message":"Permission denied."}]}`}, pure1.ErrRejected, 403, ": HTTP 403: pureuser: Permission denied."},
		{"session expired", fault{status: 401, body: `{"errors":[{"message":"Session expired."}]}`}, pure1.ErrRejected, 401, ": HTTP 401: Session expired."},
		{"server error", fault{status: 500, body: `{"errors":[{"message":"Internal error."}]}`}, pure1.ErrUnavailable, 500, ": HTTP 500: Internal error."},
		{"unavailable, not JSON", fault{status: 503, body: `<html>down</html>`}, pure1.ErrUnavailable, 503, ": HTTP 503"},
		{"throttled", fault{status: 429, body: `{"errors":[{"message":"Too many requests."}]}`}, pure1.ErrUnavailable, 429, ": HTTP 429: Too many requests."},
		{"long message, cut", fault{status: 403, body: `{"errors":[{"message":"` + strings.Repeat("m", 1000) + `"}]}`}, pure1.ErrRejected, 403, ": HTTP 403: " + strings.Repeat("m", 300) + "..."},
		{"dropped", fault{drop: true}, pure1.ErrUnavailable, 0, ""},
		{"answer not JSON", fault{status: 200, body: `<html>ok</html>`}, pure1.ErrBadResponse, 0, ""},
		{"answer without the client", fault{status: 200, body: `{"items":[]}`}, pure1.ErrBadResponse, 0, "holds no such client"},
	}
	// Which failures an op cannot have: a 2xx delete or logout has no body
	// to read, a read that finds no client is no error, a version answer
	// or a login is not a list of clients.
	skip := map[string]map[string]bool{
		"answer not JSON":           {"delete": true, "logout": true},
		"answer without the client": {"version": true, "login": true, "read": true, "delete": true, "logout": true},
	}
	for _, w := range wires {
		name := w.kind.DefaultClientName("c1")
		for _, op := range []struct{ op, call, method, path, badAnswer string }{
			{"version", "API version", "GET", "/api/api_version", `no "` + w.versionsKey + `" list`},
			{"login", "login with admin_api_token", "POST", w.login, "no x-auth-token header"},
			{"create", `create API client "` + name + `"`, "POST", w.clientsPath(), "not JSON"},
			{"enable", `enable API client "` + name + `"`, "PATCH", w.clientsPath(), "not JSON"},
			{"read", `read API client "` + name + `"`, "GET", w.clientsPath(), "not JSON"},
			{"delete", `delete API client "` + name + `"`, "DELETE", w.clientsPath(), ""},
			{"logout", "logout", "POST", w.logout, ""},
		} {
			for _, fl := range failures {
				if skip[fl.name][op.op] {
					continue
				}
				t.Run(w.kind.Name+"/"+op.op+"/"+fl.name, func(t *testing.T) {
					f := newFakeArray(t, w)
					f.fail(op.op, fl.f)
					ctx := context.Background()
					// Logout's own error, which WithAdmin only logs.
					err := withAdminLogout(ctx, f.client(t, w.kind), func(adm Admin) error {
						if _, err := adm.CreateAPIClient(ctx, NewAPIClient{Name: name, Issuer: "iss", PublicKeyPEM: "PEM", MaxRole: "readonly"}); err != nil {
							return err
						}
						if _, err := adm.EnableAPIClient(ctx, name); err != nil {
							return err
						}
						if _, err := adm.GetAPIClient(ctx, name); err != nil {
							return err
						}
						return adm.DeleteAPIClient(ctx, name)
					})
					var ce *CallError
					if !errors.As(err, &ce) {
						t.Fatalf("err = %v, want a CallError", err)
					}
					url := f.srv.URL + op.path
					prefix := fmt.Sprintf("the array's %s (%s %s) failed: ", op.call, op.method, url)
					msg := err.Error()
					if ce.Call != op.call || ce.Method != op.method || ce.URL != url || !strings.HasPrefix(msg, prefix) {
						t.Errorf("error %q\nwant it to start %q", msg, prefix)
					}
					says := fl.says
					if fl.name == "answer not JSON" {
						says = op.badAnswer
					}
					if !strings.Contains(msg, says) || strings.Contains(msg, strings.Repeat("m", 301)) {
						t.Errorf("error %q does not say %q", msg, says)
					}
					for _, class := range []error{pure1.ErrRejected, pure1.ErrUnavailable, pure1.ErrBadResponse} {
						if errors.Is(err, class) != (class == fl.class) {
							t.Errorf("errors.Is(%q, %v) = %v", msg, class, !(class == fl.class))
						}
					}
					if ce.StatusCode() != fl.status {
						t.Errorf("status %d, want %d", ce.StatusCode(), fl.status)
					}
					if strings.Contains(msg, "SECRET") || strings.Contains(msg, "names=") {
						t.Errorf("error %q carries a token or a query", msg)
					}
					if op.op != "logout" && op.op != "version" && op.op != "login" && f.openSessions() != 0 {
						t.Errorf("a failed %s left %d sessions open", op.op, f.openSessions())
					}
				})
			}
		}
	}
}

// DeleteAPIClient: a client already gone (whatever the delete answered, the
// list of clients holds none of that name) is deleted; a refused delete of a
// client still there, or one whose absence cannot be confirmed, is the
// delete's error. The absence is read from the list, never from a refusal
// of a read by name, which cannot be told from any other refusal.
func TestDeleteAPIClientGone(t *testing.T) {
	for _, w := range wires {
		name := w.kind.DefaultClientName("gone")
		clients := w.clientsPath() + "?names=" + name
		list := w.clientsPath()
		for _, tc := range []struct {
			name    string
			exists  bool
			faults  map[string]fault
			wantErr string // in the error; "" is success
			calls   []string
		}{
			{name: "gone: 400, the list lacks it", calls: []string{"DELETE", "LIST"}},
			{name: "gone: 404, the list lacks it", faults: map[string]fault{"delete": {status: 404, body: `{"errors":[{"message":"Not found."}]}`}}, calls: []string{"DELETE", "LIST"}},
			{name: "gone: 403, the list lacks it", faults: map[string]fault{"delete": {status: 403, body: `{"errors":[{"message":"Permission denied."}]}`}}, calls: []string{"DELETE", "LIST"}},
			{name: "present", exists: true, calls: []string{"DELETE"}},
			{name: "still there: 400", exists: true, faults: map[string]fault{"delete": {status: 400, body: `{"errors":[{"context":"` + name + `","message":"Cannot delete an enabled API client."}]}`}},
				wantErr: "HTTP 400: " + name + ": Cannot delete an enabled API client.", calls: []string{"DELETE", "LIST"}},
			{name: "still there: 403", exists: true, faults: map[string]fault{"delete": {status: 403, body: `{"errors":[{"message":"Permission denied."}]}`}},
				wantErr: "HTTP 403: Permission denied.", calls: []string{"DELETE", "LIST"}},
			{name: "400, the list fails", faults: map[string]fault{"delete": {status: 400, body: `{"errors":[{"message":"Bad request."}]}`}, "read": {status: 500}},
				wantErr: "HTTP 400: Bad request.", calls: []string{"DELETE", "LIST"}},
		} {
			t.Run(w.kind.Name+"/"+tc.name, func(t *testing.T) {
				f := newFakeArray(t, w)
				if tc.exists {
					f.seed(name, "", true)
				}
				for op, ft := range tc.faults {
					f.fail(op, ft)
				}
				ctx := context.Background()
				err := WithAdmin(ctx, f.client(t, w.kind), adminToken, func(adm Admin) error { return adm.DeleteAPIClient(ctx, name) })
				if tc.wantErr == "" && err != nil {
					t.Fatalf("err = %v, want the delete to succeed", err)
				}
				if tc.wantErr != "" {
					var ce *CallError
					if !errors.As(err, &ce) || ce.Call != `delete API client "`+name+`"` || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, pure1.ErrRejected) {
						t.Fatalf("err = %v, want the delete's refusal saying %q", err, tc.wantErr)
					}
				}
				var want []string
				for _, m := range tc.calls {
					if m == "LIST" {
						want = append(want, "GET "+list+" session 1")
						continue
					}
					want = append(want, m+" "+clients+" session 1")
				}
				got := f.recorded()
				if got = got[2 : len(got)-1]; !reflect.DeepEqual(got, want) { // between login and logout
					t.Errorf("calls %q, want %q", got, want)
				}
				if _, there := f.clientKey(name); there != (tc.exists && tc.wantErr != "") {
					t.Errorf("client on the array: %v", there)
				}
			})
		}
	}
}

// The strict fake holds each kind to its own wire: the other kind's login
// path and max_role form are refused. Without this, TestKindWire could pass
// against a lenient array.
func TestFakeArrayIsStrict(t *testing.T) {
	for _, tc := range []struct {
		w          arrayWire
		otherLogin string
		otherRole  any
	}{
		{flashArrayWire, "/api/login", map[string]string{"name": "readonly"}},
		{flashBladeWire, "/api/2.17/login", "readonly"},
	} {
		f := newFakeArray(t, tc.w)
		a := f.client(t, tc.w.kind)
		_, _, err := a.do(context.Background(), "login", http.MethodPost, tc.otherLogin, http.Header{"Api-Token": {adminToken}}, nil)
		var ce *CallError
		if !errors.As(err, &ce) || ce.StatusCode() != 404 {
			t.Errorf("%s: login at %s: %v, want 404", tc.w.kind.Name, tc.otherLogin, err)
		}
		adm, err := a.Admin(context.Background(), adminToken)
		if err != nil {
			t.Fatal(err)
		}
		h := adm.(*httpAdmin)
		_, _, err = a.do(context.Background(), "create", http.MethodPost, tc.w.clientsPath()+"?names=x", h.header(),
			map[string]any{"issuer": "i", "public_key": "p", "max_role": tc.otherRole})
		if !errors.As(err, &ce) || ce.StatusCode() != 400 || !strings.Contains(err.Error(), "max_role") {
			t.Errorf("%s: the other max_role form: %v, want 400", tc.w.kind.Name, err)
		}
		_, _, err = a.do(context.Background(), "create", http.MethodPost, tc.w.clientsPath()+"?names=x", h.header(),
			map[string]any{"issuer": "i", "public_key": "p", "max_role": tc.w.kind.maxRoleValue("readonly"), "name": "x"})
		if !errors.As(err, &ce) || ce.StatusCode() != 400 {
			t.Errorf("%s: an unknown field: %v, want 400", tc.w.kind.Name, err)
		}
		if err := adm.Logout(context.Background()); err != nil || f.openSessions() != 0 {
			t.Errorf("%s: logout %v, %d open", tc.w.kind.Name, err, f.openSessions())
		}
	}
}

// withAdminLogout is WithAdmin returning the logout's error when fn
// succeeded, so a test sees it.
func withAdminLogout(ctx context.Context, a Array, fn func(Admin) error) error {
	adm, err := a.Admin(ctx, adminToken)
	if err != nil {
		return err
	}
	err = fn(adm)
	if lerr := adm.Logout(ctx); err == nil {
		err = lerr
	}
	return err
}

// syncBuffer is a log destination safe for the HTTP client's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
