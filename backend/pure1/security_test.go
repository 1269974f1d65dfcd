package pure1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// A token endpoint that redirects must not get the JWT re-sent elsewhere:
// the JWT is a bearer credential. The 3xx is returned as a refusal, whoever
// built the HTTP client: the exchanger's own pooled one, or a caller's (the
// pure1-token CLI passes its own), whose redirect rule follows by default.
func TestExchangeDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	for _, status := range []int{301, 302, 303, 307, 308} {
		for _, client := range []string{"own", "caller's"} {
			t.Run(fmt.Sprintf("%d %s client", status, client), func(t *testing.T) {
				t.Parallel()
				var elsewhere atomic.Int64
				other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					elsewhere.Add(1)
					writeJSON(w, http.StatusOK, okBody("stolen", 36000))
				}))
				defer other.Close()
				redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, other.URL+"/steal", status)
				}))
				defer redirector.Close()

				opts := HTTPExchangerOptions{AttemptTimeout: 5 * time.Second}
				var callers *http.Client
				if client == "caller's" {
					callers = &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
					defer callers.CloseIdleConnections()
					opts.Client = callers
				}
				ex := newTestExchanger(t, opts)
				_, err := ex.Exchange(testCtx(t), redirector.URL+"/oauth2/1.0/token", "header.payload.signature")
				if !errors.Is(err, ErrRejected) {
					t.Fatalf("Exchange against a redirecting endpoint: %v, want ErrRejected", err)
				}
				if n := elsewhere.Load(); n != 0 {
					t.Fatalf("the redirect target got %d request(s): the JWT left for another address", n)
				}
				if callers != nil && callers.CheckRedirect != nil {
					t.Error("the caller's client was changed: the exchanger must work on a copy")
				}
			})
		}
	}
}

// An https endpoint that redirects to plain http (a downgrade the host
// policy refuses for a configured URL) sends nothing there either.
func TestExchangeRefusesHTTPSDowngradeRedirect(t *testing.T) {
	t.Parallel()
	for _, status := range []int{307, 308} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			var plain atomic.Int64
			other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				plain.Add(1)
				writeJSON(w, http.StatusOK, okBody("stolen", 36000))
			}))
			defer other.Close()
			secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+"/oauth2/1.0/token", status)
			}))
			defer secure.Close()
			// The server's own client trusts its certificate, and follows
			// redirects unless the exchanger stops it.
			client := secure.Client()
			defer client.CloseIdleConnections()
			ex := newTestExchanger(t, HTTPExchangerOptions{Client: client})
			_, err := ex.Exchange(testCtx(t), secure.URL+"/oauth2/1.0/token", "header.payload.signature")
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("Exchange: %v, want ErrRejected", err)
			}
			if n := plain.Load(); n != 0 {
				t.Fatalf("the plain-http target got %d request(s)", n)
			}
		})
	}
}

func TestHostPolicyCheck(t *testing.T) {
	t.Parallel()
	extra, err := NewHostPolicy(" Pure1.Example.com , 10.0.0.5:8443,[2001:db8::1]")
	if err != nil {
		t.Fatal(err)
	}
	loop, err := NewHostPolicy("pure1.example.com, LOOPBACK")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		policy  HostPolicy
		url     string
		ok      bool
		wantIn  string
		notHost bool // the error is about the host (ErrHostNotAllowed)
	}{
		{HostPolicy{}, DefaultTokenURL, true, "", false},
		{HostPolicy{}, "https://API.PURE1.purestorage.com:443/oauth2/1.0/token", true, "", false},
		// Loopback only with the registrar's word for it.
		{HostPolicy{}, "http://127.0.0.1:8080/oauth2/1.0/token", false, "PURE1_ALLOWED_TOKEN_HOSTS=loopback", true},
		{HostPolicy{}, "https://localhost/x", false, "PURE1_ALLOWED_TOKEN_HOSTS=loopback", true},
		{HostPolicy{}, "https://LocalHost./x", false, "PURE1_ALLOWED_TOKEN_HOSTS=loopback", true},
		{HostPolicy{}, "https://vault.localhost/x", false, "PURE1_ALLOWED_TOKEN_HOSTS=loopback", true},
		{HostPolicy{}, "http://[::1]:9/x", false, "PURE1_ALLOWED_TOKEN_HOSTS=loopback", true},
		{HostPolicy{}, "https://127.1.2.3:8200/x", false, "PURE1_ALLOWED_TOKEN_HOSTS=loopback", true},
		{HostPolicy{}, "https://[::ffff:127.0.0.1]/x", false, "PURE1_ALLOWED_TOKEN_HOSTS=loopback", true},
		{HostPolicy{}, "https://0.0.0.0:8200/x", false, "PURE1_ALLOWED_TOKEN_HOSTS=loopback", true},
		{HostPolicy{}, "https://[::1%25lo]:8200/x", false, "PURE1_ALLOWED_TOKEN_HOSTS=loopback", true},
		{extra, "https://localhost:8443/x", false, "PURE1_ALLOWED_TOKEN_HOSTS=loopback", true},
		{loop, "http://127.0.0.1:8080/oauth2/1.0/token", true, "", false},
		{loop, "https://localhost/x", true, "", false},
		{loop, "http://[::1]:9/x", true, "", false},
		{loop, "http://localhost.:9/x", true, "", false},
		{loop, "http://pure1.example.com/x", false, "must use https", false},
		{loop, "https://pure1.example.com/x", true, "", false},
		{loop, "https://other.example.com/t", false, "PURE1_ALLOWED_TOKEN_HOSTS=other.example.com", true},
		{HostPolicy{}, "https://attacker.example/oauth2/1.0/token", false, "vault plugin register -env PURE1_ALLOWED_TOKEN_HOSTS=attacker.example", true},
		{HostPolicy{}, "https://api.pure1.purestorage.com.attacker.example/x", false, "may not receive a signed JWT", true},
		{HostPolicy{}, "http://api.pure1.purestorage.com/x", false, "must use https", false},
		{HostPolicy{}, "https://:443/x", false, "names no host", false},
		{HostPolicy{}, "https://user:pw@api.pure1.purestorage.com/x", false, "user name or password", false},
		{HostPolicy{}, "ftp://api.pure1.purestorage.com/x", false, "must use https", false},
		{HostPolicy{}, "/oauth2/1.0/token", false, "absolute URL", false},
		{extra, "https://pure1.example.com/oauth2/1.0/token", true, "", false},
		{extra, "https://pure1.example.com:9443/oauth2/1.0/token", true, "", false},
		{extra, "https://10.0.0.5:8443/t", true, "", false},
		{extra, "https://10.0.0.5/t", false, "PURE1_ALLOWED_TOKEN_HOSTS", true},
		{extra, "https://[2001:db8::1]/t", true, "", false},
		{extra, "http://pure1.example.com/t", false, "must use https", false},
		{extra, "https://other.example.com/t", false, "PURE1_ALLOWED_TOKEN_HOSTS", true},
	} {
		err := c.policy.Check("token_url", c.url)
		if (err == nil) != c.ok {
			t.Errorf("%s (extra %v): %v, want ok=%v", c.url, c.policy.AllowedHosts(), err, c.ok)
			continue
		}
		if err == nil {
			continue
		}
		if !strings.Contains(err.Error(), c.wantIn) || !strings.Contains(err.Error(), "token_url") {
			t.Errorf("%s: error %q should name token_url and contain %q", c.url, err, c.wantIn)
		}
		if errors.Is(err, ErrHostNotAllowed) != c.notHost {
			t.Errorf("%s: errors.Is(ErrHostNotAllowed) = %v", c.url, !c.notHost)
		}
	}
}

func TestNewHostPolicy(t *testing.T) { // not parallel: it sets the environment
	for _, c := range []struct {
		in   string
		want []string
		bad  bool
	}{
		{"", []string{}, false},
		{" , ,", []string{}, false},
		{"a.example, B.example:8443", []string{"a.example", "b.example:8443"}, false},
		{"loopback", []string{"loopback"}, false},
		{"a.example, Loopback ,b.example", []string{"loopback", "a.example", "b.example"}, false},
		// Loopback addresses are allowed by the word alone, never listed.
		{"localhost", nil, true},
		{"127.0.0.1:8443", nil, true},
		{"[::1]", nil, true},
		{"0.0.0.0", nil, true},
		{"emulator.localhost", nil, true},
		{"loopback:8443", nil, true},
		{"https://a.example", nil, true},
		{"a.example/oauth2", nil, true},
		{"user@a.example", nil, true},
		{":443", nil, true},
		{"a.example:port", nil, true},
	} {
		p, err := NewHostPolicy(c.in)
		if c.bad {
			if err == nil || !strings.Contains(err.Error(), AllowedHostsEnv) {
				t.Errorf("%q: %v, want an error naming %s", c.in, err, AllowedHostsEnv)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if got := p.AllowedHosts(); strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%q: hosts %v, want %v", c.in, got, c.want)
		}
	}
	t.Run("from the environment", func(t *testing.T) {
		t.Setenv(AllowedHostsEnv, "pure1.example.com")
		p, err := HostPolicyFromEnv()
		if err != nil || p.Check("token_url", "https://pure1.example.com/t") != nil {
			t.Errorf("HostPolicyFromEnv: %v, %v", err, p.AllowedHosts())
		}
	})
}

// A stored token_url whose host is not allowed (any more) gets no request:
// the exchanger checks before it sends, not only where the URL is written.
func TestExchangeRefusesHostNotAllowed(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		hits.Add(1)
		return nil, errors.New("dialled")
	}
	client := &http.Client{Transport: &http.Transport{DialContext: dial, DialTLSContext: dial}}
	for _, u := range []string{
		"https://attacker.example/oauth2/1.0/token",
		"https://:443/oauth2/1.0/token",
		"http://pure1.example.com/oauth2/1.0/token",
	} {
		ex := newTestExchanger(t, HTTPExchangerOptions{Client: client, Hosts: mustHostPolicy(t, "pure1.example.com")})
		_, err := ex.Exchange(testCtx(t), u, "header.payload.signature")
		if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "no request was sent") {
			t.Errorf("%s: %v, want ErrRejected saying no request was sent", u, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d connection(s) attempted to hosts that are not allowed", n)
	}
}

func mustHostPolicy(t *testing.T, list string) HostPolicy {
	t.Helper()
	p, err := NewHostPolicy(list)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Failures that no retry can mend fail at once, naming the cause.
func TestExchangePermanentFailuresNotRetried(t *testing.T) {
	t.Parallel()
	t.Run("unknown certificate authority", func(t *testing.T) {
		t.Parallel()
		var conns atomic.Int64
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, okBody("x", 36000))
		}))
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
		srv.StartTLS()
		defer srv.Close()
		// The exchanger's own client trusts only the system's CAs.
		ex := newTestExchanger(t, HTTPExchangerOptions{})
		_, err := ex.Exchange(testCtx(t), srv.URL+"/oauth2/1.0/token", "header.payload.signature")
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "does not trust") || !strings.Contains(err.Error(), "1 attempt(s)") {
			t.Errorf("error %v: want one attempt, naming the untrusted certificate", err)
		}
		if n := conns.Load(); n != 1 {
			t.Errorf("%d TLS connection(s), want 1: a bad certificate was retried", n)
		}
	})
	t.Run("certificate for another host", func(t *testing.T) {
		t.Parallel()
		var conns atomic.Int64
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
		srv.StartTLS()
		defer srv.Close()
		client := srv.Client()
		defer client.CloseIdleConnections()
		// httptest's certificate names example.com and 127.0.0.1, not ::1
		// or localhost's other names: ask for a name it does not hold.
		tr := client.Transport.(*http.Transport).Clone()
		tr.TLSClientConfig.ServerName = "pure1.invalid"
		client = &http.Client{Transport: tr}
		defer tr.CloseIdleConnections()
		ex := newTestExchanger(t, HTTPExchangerOptions{Client: client})
		_, err := ex.Exchange(testCtx(t), srv.URL+"/oauth2/1.0/token", "header.payload.signature")
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "not valid for the host") || !strings.Contains(err.Error(), "1 attempt(s)") {
			t.Errorf("error %v: want one attempt, naming the host mismatch", err)
		}
		if n := conns.Load(); n != 1 {
			t.Errorf("%d TLS connection(s), want 1", n)
		}
	})
	t.Run("host name does not exist", func(t *testing.T) {
		t.Parallel()
		var dials atomic.Int64
		// A resolver's answer, without depending on this machine's DNS.
		tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: "pure1.invalid", IsNotFound: true}}
		}}
		ex := newTestExchanger(t, HTTPExchangerOptions{Client: &http.Client{Transport: tr}, Hosts: mustHostPolicy(t, "pure1.invalid")})
		_, err := ex.Exchange(testCtx(t), "https://pure1.invalid/oauth2/1.0/token", "header.payload.signature")
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "1 attempt(s)") {
			t.Errorf("error %v: want one attempt, saying the host does not exist", err)
		}
		if n := dials.Load(); n != 1 {
			t.Errorf("%d dial(s), want 1", n)
		}
	})
	t.Run("DNS timeout is retried", func(t *testing.T) {
		t.Parallel()
		var dials atomic.Int64
		tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "i/o timeout", Name: "pure1.invalid", IsTimeout: true}}
		}}
		ex := newTestExchanger(t, HTTPExchangerOptions{Client: &http.Client{Transport: tr}, Hosts: mustHostPolicy(t, "pure1.invalid")})
		_, err := ex.Exchange(testCtx(t), "https://pure1.invalid/oauth2/1.0/token", "header.payload.signature")
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("error %v", err)
		}
		if n := dials.Load(); n != int64(fastRetry.MaxAttempts) {
			t.Errorf("%d dial(s), want %d: a transient DNS failure is retried", n, fastRetry.MaxAttempts)
		}
	})
	for _, status := range []int{http.StatusNotImplemented, http.StatusHTTPVersionNotSupported} {
		t.Run(fmt.Sprint("HTTP ", status), func(t *testing.T) {
			t.Parallel()
			f := newFakePure1(t, func(w http.ResponseWriter, _ *http.Request, _ int32) {
				w.WriteHeader(status)
			})
			ex := newTestExchanger(t, HTTPExchangerOptions{})
			_, err := ex.Exchange(testCtx(t), f.URL(), clientJWT(t))
			if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), fmt.Sprint("HTTP ", status)) || !strings.Contains(err.Error(), "not retried") {
				t.Errorf("error %v: want ErrRejected naming HTTP %d", err, status)
			}
			if n := f.hits.Load(); n != 1 {
				t.Errorf("%d request(s), want 1", n)
			}
		})
	}
}

// The exchanger measures an access token's expires_in from when it sent the
// request, not from when the (slow) answer arrived.
func TestExchangeExpiryFromSendTime(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	var clock atomic.Int64 // seconds after start
	now := func() time.Time { return start.Add(time.Duration(clock.Load()) * time.Second) }
	access := makeAccessToken(t, jwt.MapClaims{"org": "1"}) // no exp
	f := newFakePure1(t, func(w http.ResponseWriter, _ *http.Request, _ int32) {
		clock.Add(45) // the answer takes 45 s to arrive
		writeJSON(w, http.StatusOK, okBody(access, 36000))
	})
	ex := newTestExchanger(t, HTTPExchangerOptions{Now: now})
	tok, err := ex.Exchange(testCtx(t), f.URL(), clientJWT(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := start.Add(36000 * time.Second); !tok.ExpiresAt.Equal(want) {
		t.Errorf("ExpiresAt %s, want %s: expires_in counts from the request's sending", tok.ExpiresAt, want)
	}
}

// An endpoint that echoes the JWT (or any token) in its error must not get
// it into errors, creds responses or logs: only the allowed hosts receive a
// JWT, and what they say back is quoted short and without tokens.
func TestExchangeErrorNeverQuotesTokens(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		body func(subject string) string
	}{
		{"JSON error_description", func(s string) string {
			return fmt.Sprintf(`{"error":"invalid_grant","error_description":"bad token %s."}`, s)
		}},
		{"JSON error code", func(s string) string { return fmt.Sprintf(`{"error":%q}`, s) }},
		{"plain text", func(s string) string { return "rejected: " + s }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var f *fakePure1
			f = newFakePure1(t, func(w http.ResponseWriter, r *http.Request, _ int32) {
				f.mu.Lock()
				subject := f.subjects[len(f.subjects)-1] // as the endpoint received it
				f.mu.Unlock()
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, c.body(subject))
			})
			subject := clientJWT(t)
			ex := newTestExchanger(t, HTTPExchangerOptions{})
			_, err := ex.Exchange(testCtx(t), f.URL(), subject)
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("error %v, want ErrRejected", err)
			}
			parts := strings.Split(subject, ".")
			for _, p := range parts[:2] {
				if strings.Contains(err.Error(), p[:20]) {
					t.Errorf("error quotes the JWT: %q", err)
				}
			}
			if !strings.Contains(err.Error(), "[token redacted]") {
				t.Errorf("error %q should show where a token was taken out", err)
			}
		})
	}
}
