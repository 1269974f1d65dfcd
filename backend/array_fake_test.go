package backend

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray"
)

// fakeArray is a deterministic purearray.Array: API clients in a map, the
// token endpoint verifying what a real array verifies (kid, aud, iss, sub,
// signature, enabled), and failures injected per step.
type fakeArray struct {
	mu         sync.Mutex
	now        func() time.Time
	adminToken string
	clients    map[string]*fakeClient // by name
	nextID     int
	// fail makes the named step fail once set: login, logout, get, create,
	// enable, delete, exchange (every exchange), verify-new (an exchange by
	// a client that has not yet issued a token). create-applied,
	// enable-applied and delete-applied do the step, then fail with the
	// error: a change the array made whose answer was lost.
	fail      map[string]error
	exchanges int
	dialed    []purearray.Options
	created   []purearray.NewAPIClient // every create asked for, in order
	// createdKinds is the wire each create went out on (the dial's Kind).
	createdKinds []*purearray.Kind
	// sessions is the number of admin sessions open now; logins counts
	// every login.
	sessions, logins int
	// gate, when set, holds every exchange, delete and logout until it
	// receives (or closes), or their context ends.
	gate chan struct{}
	// users are the array's local users (issue 20's API-token roles), and
	// calls counts every admin call by kind (user-create, ...).
	users    map[string]*fakeUser
	calls    map[string]int
	maxUsers int
	// sessionGen moves when the array forgets its sessions (an idle
	// timeout, a restart): a session of an older generation gets 401.
	sessionGen int
}

type fakeUser struct {
	role    string
	token   string
	expires time.Time // zero: never
}

type fakeClient struct {
	purearray.APIClient
	pub    *rsa.PublicKey
	issued int
}

const fakeAdminToken = "fake-admin-api-token-0123456789"

func newFakeArray(now func() time.Time) *fakeArray {
	return &fakeArray{
		now:        now,
		adminToken: fakeAdminToken,
		clients:    map[string]*fakeClient{},
		fail:       map[string]error{},
		users:      map[string]*fakeUser{"pureuser": {role: "array_admin"}, "ops": {role: "ops_admin"}},
		calls:      map[string]int{},
	}
}

var errFakeStep = &pure1.APIError{StatusCode: http.StatusBadRequest, Description: "injected failure"}

func (f *fakeArray) dial(o purearray.Options) (purearray.Array, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dialed = append(f.dialed, o)
	return fakeConn{f, o.Kind}, nil
}

// fakeConn is one dial of the fake array, on the wire of its kind.
type fakeConn struct {
	*fakeArray
	kind *purearray.Kind
}

func (c fakeConn) Admin(ctx context.Context, apiToken string) (purearray.Admin, error) {
	a, err := c.fakeArray.Admin(ctx, apiToken)
	if err != nil {
		return nil, err
	}
	ad := a.(fakeAdmin)
	ad.kind = c.kind
	return ad, nil
}

func (f *fakeArray) failing(step string) error {
	if err, ok := f.fail[step]; ok {
		return fmt.Errorf("%s: %w", step, err)
	}
	return nil
}

func (f *fakeArray) Exchange(ctx context.Context, tokenURL, subjectJWT string) (*pure1.AccessToken, error) {
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exchanges++
	if err := f.failing("exchange"); err != nil {
		return nil, err
	}
	if !strings.HasSuffix(tokenURL, purearray.TokenPath) {
		return nil, &pure1.APIError{StatusCode: 404, Description: "not the token endpoint: " + tokenURL}
	}
	reject := func(why string) error {
		return &pure1.APIError{StatusCode: http.StatusUnauthorized, Code: "invalid_client", Description: why}
	}
	var client *fakeClient
	tok, err := jwt.Parse(subjectJWT, func(t *jwt.Token) (interface{}, error) {
		kid, _ := t.Header["kid"].(string)
		for _, c := range f.clients {
			if c.KeyID == kid {
				client = c
				return c.pub, nil
			}
		}
		return nil, errors.New("unknown kid")
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(f.now), jwt.WithIssuedAt())
	if err != nil {
		return nil, reject("JWT does not verify: " + err.Error())
	}
	claims := tok.Claims.(jwt.MapClaims)
	aud, _ := claims["aud"].(string)
	iss, _ := claims["iss"].(string)
	sub, _ := claims["sub"].(string)
	switch {
	case aud != client.ID:
		return nil, reject("aud is not the client's id")
	case iss != client.Issuer:
		return nil, reject("iss is not the client's issuer")
	case f.users[sub] == nil:
		return nil, reject("no such user " + sub)
	case !client.Enabled:
		return nil, reject("API client is disabled")
	}
	if client.issued == 0 {
		if err := f.failing("verify-new"); err != nil {
			return nil, err
		}
	}
	client.issued++
	ttl := time.Duration(client.AccessTokenTTLMS) * time.Millisecond
	if ttl == 0 {
		ttl = 24 * time.Hour
	}
	return &pure1.AccessToken{
		Token:     fmt.Sprintf("array-token/%s/%s/%d", client.Name, sub, client.issued),
		TokenType: "Bearer",
		ExpiresIn: ttl,
		ExpiresAt: f.now().Add(ttl).Truncate(time.Second).UTC(),
	}, nil
}

func (f *fakeArray) Admin(_ context.Context, apiToken string) (purearray.Admin, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failing("login"); err != nil {
		return nil, err
	}
	if apiToken != f.adminToken {
		return nil, &pure1.APIError{StatusCode: http.StatusUnauthorized, Description: "invalid api token"}
	}
	f.sessions++
	f.logins++
	return fakeAdmin{f: f, gen: f.sessionGen}, nil
}

// wait holds a call while the gate is set, as a hanging array would.
func (f *fakeArray) wait(ctx context.Context) error {
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate == nil {
		return nil
	}
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a fakeAdmin) Logout(ctx context.Context) error {
	f := a.f
	if err := f.wait(ctx); err != nil {
		f.mu.Lock()
		defer f.mu.Unlock()
		return err // the session stays open at the array
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessions--
	return f.failing("logout")
}

// openSessions is the number of admin sessions not logged out.
func (f *fakeArray) openSessions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sessions
}

type fakeAdmin struct {
	f    *fakeArray
	kind *purearray.Kind
	gen  int // the sessionGen it logged in under
}

// expired answers a session the array forgot as an array does: 401. f.mu
// is held.
func (a fakeAdmin) expired(call string) error {
	if a.gen == a.f.sessionGen {
		return nil
	}
	return &purearray.CallError{Call: call, Method: "POST", URL: testArrayURL,
		Err: &pure1.APIError{StatusCode: http.StatusUnauthorized, Description: "Invalid or expired x-auth-token: log in again."}}
}

func (a fakeAdmin) CreateAPIClient(_ context.Context, c purearray.NewAPIClient) (*purearray.APIClient, error) {
	f := a.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failing("create"); err != nil {
		return nil, err
	}
	if _, ok := f.clients[c.Name]; ok {
		return nil, &pure1.APIError{StatusCode: 400, Description: "name already in use"}
	}
	blk, _ := pem.Decode([]byte(c.PublicKeyPEM))
	if blk == nil {
		return nil, &pure1.APIError{StatusCode: 400, Description: "public_key is not PEM"}
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, &pure1.APIError{StatusCode: 400, Description: "public_key: " + err.Error()}
	}
	f.nextID++
	f.created = append(f.created, c)
	f.createdKinds = append(f.createdKinds, a.kind)
	fc := &fakeClient{pub: pub.(*rsa.PublicKey), APIClient: purearray.APIClient{
		Name: c.Name, ID: fmt.Sprintf("client-%d", f.nextID), KeyID: fmt.Sprintf("key-%d", f.nextID),
		Issuer: c.Issuer, MaxRole: []byte(`"` + c.MaxRole + `"`), AccessTokenTTLMS: c.AccessTokenTTL.Milliseconds(),
		PublicKey: c.PublicKeyPEM,
	}}
	f.clients[c.Name] = fc
	if err := f.failing("create-applied"); err != nil {
		return nil, err
	}
	out := fc.APIClient
	return &out, nil
}

func (a fakeAdmin) EnableAPIClient(_ context.Context, name string) (*purearray.APIClient, error) {
	f := a.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failing("enable"); err != nil {
		return nil, err
	}
	c, ok := f.clients[name]
	if !ok {
		return nil, &pure1.APIError{StatusCode: 400, Description: "no such client"}
	}
	c.Enabled = true
	if err := f.failing("enable-applied"); err != nil {
		return nil, err
	}
	out := c.APIClient
	return &out, nil
}

func (a fakeAdmin) GetAPIClient(_ context.Context, name string) (*purearray.APIClient, error) {
	f := a.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failing("get"); err != nil {
		return nil, err
	}
	c, ok := f.clients[name]
	if !ok {
		return nil, nil
	}
	out := c.APIClient
	return &out, nil
}

func (a fakeAdmin) DeleteAPIClient(ctx context.Context, name string) error {
	f := a.f
	if err := f.wait(ctx); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failing("delete"); err != nil {
		return err
	}
	if _, ok := f.clients[name]; !ok {
		return nil // the HTTP client treats a client already gone as deleted
	}
	delete(f.clients, name)
	return f.failing("delete-applied")
}

// register adds a client an operator made, enabled, for key k.
func (f *fakeArray) register(name, issuer string, k *keyFixture) *purearray.APIClient {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	c := &fakeClient{pub: &k.priv.PublicKey, APIClient: purearray.APIClient{
		Name: name, ID: fmt.Sprintf("client-%d", f.nextID), KeyID: fmt.Sprintf("key-%d", f.nextID), Issuer: issuer, Enabled: true,
		PublicKey: k.publicPEM,
	}}
	f.clients[name] = c
	out := c.APIClient
	return &out
}

// clientNames lists the clients on the array, with (disabled) marked.
func (f *fakeArray) clientNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n, c := range f.clients {
		if !c.Enabled {
			n += " (disabled)"
		}
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (f *fakeArray) setFail(step string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.fail, step)
		return
	}
	f.fail[step] = err
}

// newArrayEnv is a backend whose arrays are one fakeArray, and whose key
// generation hands out the key fixtures in turn (A, B, C, A, ...): distinct
// keys for consecutive rotations without seconds of RSA work each.
func newArrayEnv(t testing.TB, opts envOptions) (*testEnv, *fakeArray) {
	t.Helper()
	if opts.clock == nil {
		opts.clock = newClock(testEpoch)
	}
	fa := newFakeArray(opts.clock.Now)
	// The arrays of these tests are on loopback, as the registrar allows
	// with PURE1_ALLOWED_TOKEN_HOSTS=loopback.
	env := newTestEnvWith(t, opts, func(o *Options) { o.DialArray = fa.dial; o.Hosts = o.Hosts.WithLoopback() })
	var mu sync.Mutex
	next := 0
	env.b.generateKey = func(int) (*pure1.Key, error) {
		mu.Lock()
		k := []*keyFixture{keyA(), keyB(), keyC()}[next%3]
		next++
		mu.Unlock()
		return pure1.ParsePrivateKey([]byte(k.pkcs8), nil)
	}
	return env, fa
}

const testArrayURL = "https://127.0.0.1:8443"

// managedArrayConfig is the write of a managed FlashArray config.
func managedArrayConfig(extra map[string]interface{}) map[string]interface{} {
	d := map[string]interface{}{
		fieldKind:          purearray.KindFlashArray,
		fieldArrayURL:      testArrayURL,
		fieldUsername:      "pureuser",
		fieldAdminAPIToken: fakeAdminToken,
	}
	for k, v := range extra {
		d[k] = v
	}
	return d
}

// ---- local users and API tokens ----------------------------------------------

func (a fakeAdmin) CreateUser(ctx context.Context, u purearray.NewUser) error {
	f := a.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["user-create"]++
	if err := a.expired("create user"); err != nil {
		return err
	}
	if err := f.failing("user-create"); err != nil {
		return err
	}
	if _, ok := f.users[u.Name]; ok {
		return &pure1.APIError{StatusCode: 400, Description: u.Name + ": Name already in use."}
	}
	if f.maxUsers > 0 && len(f.users) >= f.maxUsers {
		return &pure1.APIError{StatusCode: 400, Description: "Maximum number of local users reached."}
	}
	if u.Password == "" || u.Role == "" {
		return &pure1.APIError{StatusCode: 400, Description: "password and role are required"}
	}
	f.users[u.Name] = &fakeUser{role: u.Role}
	return f.failing("user-create-applied")
}

func (a fakeAdmin) CreateAPIToken(ctx context.Context, user string, timeout time.Duration) (*purearray.APIToken, error) {
	f := a.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["token-create"]++
	if err := f.failing("token-create"); err != nil {
		return nil, err
	}
	u, ok := f.users[user]
	if !ok {
		return nil, &pure1.APIError{StatusCode: 400, Description: user + ": User does not exist."}
	}
	if u.token != "" {
		return nil, &pure1.APIError{StatusCode: 400, Description: user + ": API token already exists."}
	}
	f.nextID++
	u.token = fmt.Sprintf("api-token/%s/%d", user, f.nextID)
	t := &purearray.APIToken{Token: u.token, CreatedAt: f.now().UTC()}
	if timeout > 0 {
		u.expires = f.now().Add(timeout).UTC()
		t.ExpiresAt = u.expires
	}
	return t, f.failing("token-create-applied")
}

func (a fakeAdmin) DeleteAPIToken(ctx context.Context, user string) error {
	f := a.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["token-delete"]++
	if err := f.failing("token-delete"); err != nil {
		return err
	}
	if u, ok := f.users[user]; ok {
		u.token, u.expires = "", time.Time{}
	}
	return nil
}

func (a fakeAdmin) DeleteUser(ctx context.Context, name string) error {
	f := a.f
	if err := f.wait(ctx); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["user-delete"]++
	if err := f.failing("user-delete"); err != nil {
		return err
	}
	delete(f.users, name)
	return f.failing("user-delete-applied")
}

func (a fakeAdmin) ListUsers(ctx context.Context) ([]purearray.User, error) {
	f := a.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["user-list"]++
	if err := f.failing("user-list"); err != nil {
		return nil, err
	}
	var out []purearray.User
	for n, u := range f.users {
		x := purearray.User{Name: n}
		x.Role.Name = u.role
		out = append(out, x)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// validToken reports whether tok is a live API token of a user.
func (f *fakeArray) validToken(tok string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for n, u := range f.users {
		if u.token != "" && u.token == tok && (u.expires.IsZero() || f.now().Before(u.expires)) {
			return n, true
		}
	}
	return "", false
}

// userNames lists the users whose name starts with prefix.
func (f *fakeArray) userNames(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.users {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}
