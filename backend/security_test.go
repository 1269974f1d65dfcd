package backend

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
)

// TestTokenURLHostPolicy: a config writer may point token_url only at
// Pure1, loopback, or a host the plugin's registrar allowed.
func TestTokenURLHostPolicy(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		hosts  pure1.HostPolicy
		url    string
		ok     bool
		wantIn string
	}{
		{name: "Pure1", url: pure1.DefaultTokenURL, ok: true},
		{name: "loopback emulator", url: "http://127.0.0.1:8080/oauth2/1.0/token", ok: true},
		{name: "another https host", url: "https://attacker.example/oauth2/1.0/token",
			wantIn: "vault plugin register -env PURE1_ALLOWED_TOKEN_HOSTS=attacker.example"},
		{name: "a look-alike of Pure1's host", url: "https://api.pure1.purestorage.com.attacker.example/oauth2/1.0/token",
			wantIn: "PURE1_ALLOWED_TOKEN_HOSTS"},
		{name: "empty host", url: "https://:443/x", wantIn: "token_url names no host"},
		{name: "allowed by the registrar", hosts: allowExample(t), url: "https://pure1.example.com/oauth2/1.0/token", ok: true},
		{name: "allowed host over http", hosts: allowExample(t), url: "http://pure1.example.com/oauth2/1.0/token", wantIn: "token_url must use https"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, envOptions{hosts: c.hosts})
			resp, err := e.write("config/c", map[string]interface{}{"generate_key": true, "token_url": c.url})
			if c.ok {
				mustOK(t, "write", resp, err)
				return
			}
			if msg := errorText(resp, err); !strings.Contains(msg, c.wantIn) {
				t.Errorf("write token_url=%s: %q, want an error containing %q", c.url, msg, c.wantIn)
			}
			if raw, _ := e.inmem.Get(e.ctx, "config/c"); raw != nil {
				t.Errorf("a refused config was stored")
			}
		})
	}
}

// TestStoredTokenURLNoLongerAllowed: a config stored while its host was
// allowed (or written straight to storage) gets no JWT sent once the host is
// not allowed: the exchanger checks before it connects, and creds say how
// the operator allows the host.
func TestStoredTokenURLNoLongerAllowed(t *testing.T) {
	t.Parallel()
	var dials atomic.Int64
	dial := func(context.Context, string, string) (net.Conn, error) {
		dials.Add(1)
		return nil, errors.New("dialled")
	}
	client := &http.Client{Transport: &http.Transport{DialContext: dial, DialTLSContext: dial}}
	ex := pure1.NewHTTPExchanger(pure1.HTTPExchangerOptions{Client: client, Retry: testRetry})
	e := newTestEnv(t, envOptions{exchanger: ex})
	e.putRaw("config/c", configEntry{AppID: appID1, PrivateKey: keyA().pkcs8, KeySource: "generated",
		TokenURL: "https://pure1.example.com/oauth2/1.0/token"})
	e.mustWrite("roles/r", map[string]interface{}{"config": "c"})

	resp, err := e.read("creds/r")
	msg := errorText(resp, err)
	for _, want := range []string{`config "c"`, "pure1.example.com", "vault plugin register -env PURE1_ALLOWED_TOKEN_HOSTS=pure1.example.com", "no request was sent"} {
		if !strings.Contains(msg, want) {
			t.Errorf("creds: %q, want it to contain %q", msg, want)
		}
	}
	if resp != nil && resp.Secret != nil {
		t.Errorf("a lease was issued")
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("%d connection(s) attempted to a host that is not allowed", n)
	}
}

// fixedErrExchanger fails every exchange with err.
type fixedErrExchanger struct{ err error }

func (f fixedErrExchanger) Exchange(context.Context, string, string) (*pure1.AccessToken, error) {
	return nil, f.err
}

// TestExchangeErrorPunctuation: Pure1's error_description ends with a period
// of its own; the message built around it must not double it.
func TestExchangeErrorPunctuation(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		err  error
	}{
		{"rejected", &pure1.APIError{StatusCode: 401, Code: "invalid_client", Description: "Invalid identity: JWT validation failed."}},
		{"unavailable", &pure1.APIError{StatusCode: 503, Description: "Service is down for maintenance."}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, envOptions{exchanger: fixedErrExchanger{err: c.err}})
			e.writeConfig("c", keyA(), appID1)
			e.mustWrite("roles/r", map[string]interface{}{"config": "c"})
			resp, err := e.read("creds/r")
			msg := errorText(resp, err)
			if !strings.Contains(msg, "failed") {
				t.Fatalf("creds: %q, want Pure1's description", msg)
			}
			if strings.Contains(msg, "..") {
				t.Errorf("creds: %q has a doubled period", msg)
			}
		})
	}
	// An ellipsis (a description cut short) is kept.
	if got := sentence(errors.New("cut short...")); got != "cut short..." {
		t.Errorf("sentence kept %q", got)
	}
}

// TestLeaseEndsBeforeTheCredential: with the plugin's clock anywhere inside a
// second, each lease ends at least leaseSafetyMargin before its JWT's exp or
// its access token's expires_at: Vault registers the lease a little later
// than the plugin reads its clock.
func TestLeaseEndsBeforeTheCredential(t *testing.T) {
	t.Parallel()
	if leaseSafetyMargin < 2*time.Second {
		t.Fatalf("leaseSafetyMargin %s: at least 2 s", leaseSafetyMargin)
	}
	for _, frac := range []time.Duration{0, 1, 250 * time.Millisecond, 999 * time.Millisecond} {
		clock := newClock(testEpoch.Add(frac))
		e, te := newEmulatorEnv(t, time.Hour, envOptions{clock: clock})
		e.emulatorConfig(te, "c", keyA())
		e.mustWrite("roles/at", map[string]interface{}{"config": "c"})
		e.mustWrite("roles/shared", map[string]interface{}{"config": "c", "reuse_access_token": true})
		e.mustWrite("roles/j", map[string]interface{}{"config": "c", "credential_type": "jwt", "ttl": "10m"})
		e.mustWrite("roles/short", map[string]interface{}{"config": "c", "credential_type": "jwt", "ttl": "1"})
		for _, role := range []string{"at", "shared", "j", "short"} {
			resp := e.creds(role)
			end := parseExpiresAt(t, resp)
			if leaseEnd := clock.Now().Add(resp.Secret.TTL); leaseEnd.After(end.Add(-leaseSafetyMargin)) {
				t.Errorf("clock +%s, role %s: lease ends %s, less than %s before the credential's %s",
					frac, role, leaseEnd, leaseSafetyMargin, end)
			}
			if resp.Secret.TTL < time.Second {
				t.Errorf("role %s: lease %s", role, resp.Secret.TTL)
			}
		}
	}
}

// TestFactoryReadsAllowedHosts: the plugin's environment (vault plugin
// register -env) decides the hosts, for config writes and for the
// exchanger; a malformed list stops the mount with the reason. Not
// parallel: it replaces the process-wide reading of the environment.
func TestFactoryReadsAllowedHosts(t *testing.T) {
	saved := allowedHosts
	t.Cleanup(func() { allowedHosts = saved })
	conf := func() *logical.BackendConfig {
		c := logical.TestBackendConfig()
		c.System = logical.StaticSystemView{DefaultLeaseTTLVal: time.Hour, MaxLeaseTTLVal: time.Hour}
		c.StorageView = &logical.InmemStorage{}
		return c
	}

	allowedHosts = func() (pure1.HostPolicy, error) { return pure1.NewHostPolicy("https://pure1.example.com/") }
	if _, err := Factory(context.Background(), conf()); err == nil || !strings.Contains(err.Error(), pure1.AllowedHostsEnv) {
		t.Errorf("Factory with a malformed list: %v, want an error naming %s", err, pure1.AllowedHostsEnv)
	}

	allowedHosts = func() (pure1.HostPolicy, error) { return pure1.NewHostPolicy("pure1.example.com") }
	lb, err := Factory(context.Background(), conf())
	if err != nil {
		t.Fatal(err)
	}
	b := lb.(*backend)
	t.Cleanup(func() { b.Cleanup(context.Background()) })
	if got := b.hosts.AllowedHosts(); len(got) != 1 || got[0] != "pure1.example.com" {
		t.Errorf("backend hosts %v", got)
	}
	// The exchanger Setup built checks the same policy before it sends.
	_, err = b.exchanger.Exchange(context.Background(), "https://attacker.example/oauth2/1.0/token", "a.b.c")
	if !errors.Is(err, pure1.ErrHostNotAllowed) {
		t.Errorf("exchanger sent to a host not allowed: %v", err)
	}
	for _, c := range []struct {
		url string
		ok  bool
	}{{"https://pure1.example.com/oauth2/1.0/token", true}, {"https://attacker.example/oauth2/1.0/token", false}} {
		d := &framework.FieldData{Raw: map[string]interface{}{fieldTokenURL: c.url}, Schema: pathConfig(b)[0].Fields}
		if _, err := readConfigWrite(d, b.hosts); (err == nil) != c.ok {
			t.Errorf("token_url %s: %v, want ok=%v", c.url, err, c.ok)
		}
	}
}
