package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// runClient runs the CLI like runWith, with its HTTP client replaced (to
// trust a test server's certificate). nil keeps the CLI's own client.
func runClient(t *testing.T, client *http.Client, vars map[string]string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{
		stdin:  strings.NewReader(""),
		stdout: &out,
		stderr: &errOut,
		lookupEnv: func(k string) (string, bool) {
			v, ok := vars[k]
			return v, ok
		},
		now:          time.Now,
		readPassword: func(string) ([]byte, bool, error) { return nil, false, nil },
		httpClient:   client,
	}
	code := c.run(args)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// stealer counts what reaches a server that must get nothing.
func stealer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"a.b.c","token_type":"Bearer","expires_in":36000}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// --exchange never follows a redirect, with the CLI's own client (which
// follows them by default) or any other: the redirect target receives
// nothing, so a token endpoint cannot forward a (maybe year-long) JWT.
func TestExchangeRefusesRedirects(t *testing.T) {
	t.Parallel()
	keyFile := writeFile(t, t.TempDir(), "k.pem", pkcs1PEM(rsaKey(t)))
	const appID = "pure1:apikey:AbCdEf0123456789"
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			target, got := stealer(t)
			redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/oauth2/1.0/token", status)
			}))
			t.Cleanup(redirector.Close)
			r := runClient(t, nil, nil, "--exchange", "--expire", "8760h", "--token-url", redirector.URL+"/oauth2/1.0/token", appID, keyFile)
			if r.code != exitRuntime || r.stdout != "" {
				t.Errorf("exit %d, stdout %q: want a failure and nothing printed", r.code, r.stdout)
			}
			if !strings.Contains(r.stderr, fmt.Sprintf("HTTP %d", status)) {
				t.Errorf("stderr %q should name the redirect", r.stderr)
			}
			if n := got.Load(); n != 0 {
				t.Errorf("the redirect target received %d request(s)", n)
			}
		})
	}
	t.Run("https to http", func(t *testing.T) {
		t.Parallel()
		target, got := stealer(t)
		secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/oauth2/1.0/token", http.StatusPermanentRedirect)
		}))
		t.Cleanup(secure.Close)
		client := secure.Client() // trusts the server, follows redirects by default
		t.Cleanup(client.CloseIdleConnections)
		r := runClient(t, client, nil, "--exchange", "--token-url", secure.URL+"/oauth2/1.0/token", appID, keyFile)
		if r.code != exitRuntime || !strings.Contains(r.stderr, "HTTP 308") {
			t.Errorf("exit %d, stderr %q: want a failure naming the 308", r.code, r.stderr)
		}
		if n := got.Load(); n != 0 {
			t.Errorf("the plain-http target received %d request(s)", n)
		}
	})
}

// --token-url may name Pure1 or loopback; another host only when the user
// lists it in $PURE1_ALLOWED_TOKEN_HOSTS, a deliberate second step that a
// copied command line does not carry.
func TestTokenURLHosts(t *testing.T) {
	t.Parallel()
	keyFile := writeFile(t, t.TempDir(), "k.pem", pkcs1PEM(rsaKey(t)))
	const appID = "pure1:apikey:AbCdEf0123456789"
	for _, c := range []struct {
		url    string
		vars   map[string]string
		code   int
		wantIn string
	}{
		{"https://attacker.example/oauth2/1.0/token", nil, exitUsage, "PURE1_ALLOWED_TOKEN_HOSTS=attacker.example"},
		{"https://:443/oauth2/1.0/token", nil, exitUsage, "names no host"},
		{"https://attacker.example/oauth2/1.0/token", map[string]string{"PURE1_ALLOWED_TOKEN_HOSTS": "https://bad/"}, exitUsage, "PURE1_ALLOWED_TOKEN_HOSTS"},
		// Allowed: it gets as far as the network (a name that cannot resolve).
		{"https://pure1.invalid/oauth2/1.0/token", map[string]string{"PURE1_ALLOWED_TOKEN_HOSTS": "pure1.invalid"}, exitRuntime, "token exchange failed"},
	} {
		r := runClient(t, nil, c.vars, "--exchange", "--token-url", c.url, appID, keyFile)
		if r.code != c.code || !strings.Contains(r.stderr, c.wantIn) {
			t.Errorf("%s %v: exit %d, stderr %q; want exit %d and %q", c.url, c.vars, r.code, r.stderr, c.code, c.wantIn)
		}
	}
}
