package emulator

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray"
)

var (
	keyOne = sync.OnceValue(func() *pure1.Key { return mustKey() })
	keyTwo = sync.OnceValue(func() *pure1.Key { return mustKey() })
)

func mustKey() *pure1.Key {
	k, err := pure1.GenerateKey(2048)
	if err != nil {
		panic(err)
	}
	return k
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// start serves an emulator over TLS with its own CA and returns a purearray
// client that trusts that CA.
func start(t *testing.T, opts Options) (*Server, *purearray.HTTPArray, string) {
	t.Helper()
	emu, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := NewTLS()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(emu.Handler())
	srv.TLS = tl.Config
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	arr, err := purearray.New(purearray.Options{ArrayURL: srv.URL, CACert: tl.CAPEM, Retry: pure1.RetryPolicy{MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(arr.CloseIdleConnections)
	return emu, arr, srv.URL
}

func sign(t *testing.T, id purearray.Identity, k *pure1.Key, sub string, now time.Time) string {
	t.Helper()
	s, err := purearray.NewSigner(id, k)
	if err != nil {
		t.Fatal(err)
	}
	jwt, _, err := s.Sign(now, time.Minute, sub)
	if err != nil {
		t.Fatal(err)
	}
	return jwt
}

// The life of an API client: created disabled (no tokens), enabled (tokens
// that work on /arrays), deleted (its tokens stop working).
func TestAPIClientLifecycle(t *testing.T) {
	for _, wrap := range []bool{false, true} {
		name := "plain"
		if wrap {
			name = "items"
		}
		t.Run(name, func(t *testing.T) {
			clk := &clock{now: time.Now()}
			emu, arr, url := start(t, Options{Users: []string{"pureuser", "ops"}, WrapToken: wrap, Now: clk.Now})
			ctx := context.Background()
			adm, err := arr.Admin(ctx, emu.APIToken())
			if err != nil {
				t.Fatal(err)
			}
			c, err := adm.CreateAPIClient(ctx, purearray.NewAPIClient{Name: "vault", Issuer: "vault-iss", PublicKeyPEM: keyOne().PublicKeyPEM(), MaxRole: "readonly", AccessTokenTTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if c.Enabled || c.ID == "" || c.KeyID == "" {
				t.Fatalf("new client %+v: want disabled, with id and key_id", c)
			}
			id := purearray.Identity{ClientID: c.ID, KeyID: c.KeyID, Issuer: "vault-iss"}
			tokenURL := purearray.TokenURL(url)
			if _, err := arr.Exchange(ctx, tokenURL, sign(t, id, keyOne(), "ops", clk.Now())); !errors.Is(err, pure1.ErrRejected) || !strings.Contains(err.Error(), "disabled") {
				t.Fatalf("exchange with a disabled client: %v", err)
			}
			if _, err := adm.EnableAPIClient(ctx, "vault"); err != nil {
				t.Fatal(err)
			}
			tok, err := arr.Exchange(ctx, tokenURL, sign(t, id, keyOne(), "ops", clk.Now()))
			if err != nil {
				t.Fatal(err)
			}
			if tok.ExpiresIn != time.Hour || tok.MaxRole != "readonly" {
				t.Errorf("token for %s with max_role %q, want 1h and readonly", tok.ExpiresIn, tok.MaxRole)
			}
			if got := arraysStatus(t, arr, url, tok.Token); got != 200 {
				t.Errorf("/arrays with the token: %d", got)
			}
			if got := arraysStatus(t, arr, url, "not-a-token"); got != 401 {
				t.Errorf("/arrays with junk: %d", got)
			}
			if err := adm.DeleteAPIClient(ctx, "vault"); err != nil {
				t.Fatal(err)
			}
			if got := arraysStatus(t, arr, url, tok.Token); got != 401 {
				t.Errorf("/arrays with the token of a deleted client: %d, want 401", got)
			}
			if got, err := adm.GetAPIClient(ctx, "vault"); got != nil || err != nil {
				t.Errorf("deleted client still listed: %+v %v", got, err)
			}
			if st := emu.Stats(); st.TokensIssued != 1 || st.TokensRefused != 1 {
				t.Errorf("stats %+v, want 1 issued, 1 refused", st)
			}
		})
	}
}

// arraysStatus is GET /api/2.30/arrays with bearer, over the client's TLS.
func arraysStatus(t *testing.T, arr *purearray.HTTPArray, url, bearer string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/api/"+APIVersion+"/arrays", nil)
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := arr.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The token endpoint checks everything an array checks.
func TestTokenChecks(t *testing.T) {
	clk := &clock{now: time.Now()}
	emu, arr, url := start(t, Options{Now: clk.Now})
	ctx := context.Background()
	adm, err := arr.Admin(ctx, emu.APIToken())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateAPIClient(ctx, purearray.NewAPIClient{Name: "c", Issuer: "iss", PublicKeyPEM: keyOne().PublicKeyPEM(), MaxRole: "readonly"}); err != nil {
		t.Fatal(err)
	}
	c, err := adm.EnableAPIClient(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	good := purearray.Identity{ClientID: c.ID, KeyID: c.KeyID, Issuer: "iss"}
	for _, tc := range []struct {
		name string
		id   purearray.Identity
		key  *pure1.Key
		sub  string
		at   time.Time
		want string // "" accepted
	}{
		{"good", good, keyOne(), "pureuser", clk.Now(), ""},
		{"unknown kid", purearray.Identity{ClientID: c.ID, KeyID: "nope", Issuer: "iss"}, keyOne(), "pureuser", clk.Now(), "no API client has this kid"},
		{"wrong aud", purearray.Identity{ClientID: "other", KeyID: c.KeyID, Issuer: "iss"}, keyOne(), "pureuser", clk.Now(), "aud"},
		{"wrong iss", purearray.Identity{ClientID: c.ID, KeyID: c.KeyID, Issuer: "other"}, keyOne(), "pureuser", clk.Now(), "iss"},
		{"unknown user", good, keyOne(), "mallory", clk.Now(), "sub names no user"},
		{"other key", good, keyTwo(), "pureuser", clk.Now(), "signature"},
		{"expired", good, keyOne(), "pureuser", clk.Now().Add(-2 * time.Hour), "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := arr.Exchange(ctx, purearray.TokenURL(url), sign(t, tc.id, tc.key, tc.sub, tc.at))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (!errors.Is(err, pure1.ErrRejected) || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("err = %v, want a refusal mentioning %q", err, tc.want)
			}
		})
	}
}

// The admin API refuses what an array refuses, in the REST 2 error shape.
func TestAdminRefusals(t *testing.T) {
	emu, arr, _ := start(t, Options{})
	ctx := context.Background()
	if _, err := arr.Admin(ctx, "wrong"); !errors.Is(err, pure1.ErrRejected) || !strings.Contains(err.Error(), "invalid api token") {
		t.Errorf("login with a wrong token: %v", err)
	}
	adm, err := arr.Admin(ctx, emu.APIToken())
	if err != nil {
		t.Fatal(err)
	}
	ok := purearray.NewAPIClient{Name: "c", Issuer: "iss", PublicKeyPEM: keyOne().PublicKeyPEM(), MaxRole: "readonly"}
	for _, tc := range []struct {
		name string
		mut  func(*purearray.NewAPIClient)
		want string
	}{
		{"role", func(c *purearray.NewAPIClient) { c.MaxRole = "root" }, "max_role must be one of"},
		{"ttl", func(c *purearray.NewAPIClient) { c.AccessTokenTTL = 48 * time.Hour }, "access_token_ttl_in_ms"},
		{"issuer", func(c *purearray.NewAPIClient) { c.Issuer = "" }, "issuer is required"},
		{"key", func(c *purearray.NewAPIClient) { c.PublicKeyPEM = "junk" }, "public_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mut(&c)
			if _, err := adm.CreateAPIClient(ctx, c); !errors.Is(err, pure1.ErrRejected) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := adm.CreateAPIClient(ctx, ok); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateAPIClient(ctx, ok); err == nil || !strings.Contains(err.Error(), "Name already in use") {
		t.Errorf("a second client of the same name: %v", err)
	}
	if len(emu.Clients()) != 1 {
		t.Errorf("clients %v, want 1", emu.Clients())
	}
}

// TestMaxRoleAsReference: the emulator takes max_role as a FlashBlade sends
// it, {"name": role}, as well as the FlashArray's string.
func TestMaxRoleAsReference(t *testing.T) {
	emu, arr, _ := start(t, Options{Users: []string{"pureuser"}})
	ctx := context.Background()
	adm, err := arr.Admin(ctx, emu.APIToken())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []purearray.NewAPIClient{
		{Name: "by_reference", Issuer: "iss", PublicKeyPEM: keyOne().PublicKeyPEM(), MaxRole: "storage_admin", MaxRoleAsReference: true},
		{Name: "bad_reference", Issuer: "iss", PublicKeyPEM: keyOne().PublicKeyPEM(), MaxRole: "root", MaxRoleAsReference: true},
	} {
		got, err := adm.CreateAPIClient(ctx, c)
		switch {
		case c.MaxRole == "root" && (err == nil || !strings.Contains(err.Error(), "max_role must be one of")):
			t.Errorf("%s: %v, want max_role refused", c.Name, err)
		case c.MaxRole != "root" && (err != nil || !strings.Contains(string(got.MaxRole), "storage_admin")):
			t.Errorf("%s: %+v %v", c.Name, got, err)
		}
	}
}
