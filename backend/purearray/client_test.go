package purearray

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

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
	a, err := New(Options{ArrayURL: url, CACert: ca, Retry: noRetry})
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
	if _, err := New(Options{ArrayURL: srv.URL, CACert: []byte("junk")}); !errors.Is(err, ErrBadCA) {
		t.Errorf("New with junk ca_cert: %v, want ErrBadCA", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 {
		t.Errorf("the array got %d requests over connections that did not verify", hits)
	}
}

// The admin calls: the newest REST 2 version, login with api-token, then
// x-auth-token on api-clients calls that name the client in ?names=.
func TestAdminWire(t *testing.T) {
	type call struct{ method, path, query, auth, body string }
	var (
		mu    sync.Mutex
		calls []call
	)
	srv, ca := tlsArray(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		calls = append(calls, call{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("x-auth-token"), string(body)})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/api/api_version":
			io.WriteString(w, `{"version":["1.19","2.0","2.9","2.30","2.4"]}`)
		case r.URL.Path == "/api/2.30/login":
			if r.Header.Get("api-token") != "admin-token" {
				w.WriteHeader(401)
				io.WriteString(w, `{"errors":[{"message":"invalid api token"}]}`)
				return
			}
			w.Header().Set("x-auth-token", "session-1")
			io.WriteString(w, `{"items":[{"username":"pureuser"}]}`)
		case r.URL.Path == "/api/2.30/api-clients" && r.Method == http.MethodDelete:
		case r.URL.Path == "/api/2.30/api-clients" && r.URL.Query().Get("names") == "taken":
			w.WriteHeader(400)
			io.WriteString(w, `{"errors":[{"context":"taken","message":"Name already in use."}]}`)
		case r.URL.Path == "/api/2.30/api-clients":
			enabled := r.Method == http.MethodPatch
			json.NewEncoder(w).Encode(map[string]any{"items": []any{map[string]any{
				"name": r.URL.Query().Get("names"), "id": "id-1", "key_id": "kid-1", "issuer": "iss", "enabled": enabled,
				"max_role": map[string]string{"name": "readonly"}}}})
		default:
			http.NotFound(w, r)
		}
	}))
	a := newTestArray(t, srv.URL, ca)
	ctx := context.Background()
	if _, err := a.Admin(ctx, "wrong"); !errors.Is(err, pure1.ErrRejected) || !strings.Contains(err.Error(), "invalid api token") {
		t.Errorf("login with a wrong token: %v", err)
	}
	adm, err := a.Admin(ctx, "admin-token")
	if err != nil {
		t.Fatal(err)
	}
	c, err := adm.CreateAPIClient(ctx, NewAPIClient{Name: "vault-fa", Issuer: "iss", PublicKeyPEM: "PEM", MaxRole: "readonly", AccessTokenTTL: 3600e9})
	if err != nil || c.ID != "id-1" || c.KeyID != "kid-1" || c.Enabled {
		t.Fatalf("create: %+v %v", c, err)
	}
	if c, err = adm.EnableAPIClient(ctx, "vault-fa"); err != nil || !c.Enabled {
		t.Fatalf("enable: %+v %v", c, err)
	}
	if err := adm.DeleteAPIClient(ctx, "vault-fa"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateAPIClient(ctx, NewAPIClient{Name: "vault_fb", Issuer: "iss", PublicKeyPEM: "PEM", MaxRole: "readonly", MaxRoleAsReference: true}); err != nil {
		t.Fatalf("create on a FlashBlade: %v", err)
	}
	if _, err := adm.CreateAPIClient(ctx, NewAPIClient{Name: "taken"}); !errors.Is(err, pure1.ErrRejected) || !strings.Contains(err.Error(), "taken: Name already in use.") {
		t.Errorf("create of a taken name: %v", err)
	}
	if got, err := adm.GetAPIClient(ctx, "taken"); got != nil || err != nil {
		t.Errorf("get of a missing client: %v %v, want nil, nil", got, err)
	}

	mu.Lock()
	defer mu.Unlock()
	want := []call{
		{"GET", "/api/api_version", "", "", ""},
		{"POST", "/api/2.30/login", "", "", ""},
		{"GET", "/api/api_version", "", "", ""},
		{"POST", "/api/2.30/login", "", "", ""},
		{"POST", "/api/2.30/api-clients", "names=vault-fa", "session-1", `{"access_token_ttl_in_ms":3600000,"issuer":"iss","max_role":"readonly","public_key":"PEM"}`},
		{"PATCH", "/api/2.30/api-clients", "names=vault-fa", "session-1", `{"enabled":true}`},
		{"DELETE", "/api/2.30/api-clients", "names=vault-fa", "session-1", ""},
		{"POST", "/api/2.30/api-clients", "names=vault_fb", "session-1", `{"issuer":"iss","max_role":{"name":"readonly"},"public_key":"PEM"}`},
		{"POST", "/api/2.30/api-clients", "names=taken", "session-1", `{"issuer":"","max_role":"","public_key":""}`},
		{"GET", "/api/2.30/api-clients", "names=taken", "session-1", ""},
	}
	if len(calls) != len(want) {
		t.Fatalf("calls:\n%v\nwant\n%v", calls, want)
	}
	for i := range want {
		got := calls[i]
		got.body = strings.TrimSpace(got.body)
		if got != want[i] {
			t.Errorf("call %d = %+v\nwant      %+v", i, got, want[i])
		}
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
