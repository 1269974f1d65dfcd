package backend

// Shared helpers of the backend's unit tests: a backend set up the way Vault
// sets one up (Setup with a BackendConfig, InmemStorage), requests sent through
// HandleRequest with Vault's create/update existence check, an injectable
// clock, key fixtures made in-test, an in-process Pure1 emulator, and a strict
// JWT checker.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/helper/errutil"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/youmark/pkcs8"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1/emulator"
)

// TestMain fails the package if any test leaves a goroutine behind: coalesced
// exchanges, HTTP connections and load-test workers must all have ended. (A
// small stand-in for go.uber.org/goleak, which is not a dependency.)
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaks := leakedGoroutines(5 * time.Second); leaks != "" {
			fmt.Fprintf(os.Stderr, "FAIL: goroutines left running after the tests:\n%s\n", leaks)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines waits up to grace for goroutines started by this package's
// code, the emulator or an HTTP client or server to end, and returns the
// stacks of those still running.
func leakedGoroutines(grace time.Duration) string {
	markers := []string{
		"vault-plugin-secrets-pure1/backend.",
		"net/http.(*persistConn)",
		"net/http.(*conn).serve",
		"net/http/httptest.",
	}
	deadline := time.Now().Add(grace)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaks []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "leakedGoroutines") {
				continue // this one
			}
			for _, m := range markers {
				if strings.Contains(g, m) {
					leaks = append(leaks, g)
					break
				}
			}
		}
		if len(leaks) == 0 || time.Now().After(deadline) {
			return strings.Join(leaks, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---- clock -----------------------------------------------------------------

// testEpoch is a whole second, so JWT iat equals the clock and leases come out
// in whole seconds unless a test adds a fraction on purpose.
var testEpoch = time.Date(2031, 3, 14, 15, 9, 26, 0, time.UTC)

// fakeClock is the injected clock, shared by the backend, the HTTP exchanger
// and the emulator so that all three agree on "now".
type fakeClock struct{ ns atomic.Int64 }

func newClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *fakeClock) Set(t time.Time)     { c.ns.Store(t.UnixNano()) }

// ---- log capture -------------------------------------------------------------

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// ---- storage that fails on demand --------------------------------------------

var errInjected = errors.New("injected storage failure")

// flakyStorage wraps a storage and fails the operations switched on.
type flakyStorage struct {
	logical.Storage
	failGet, failPut, failList, failDelete atomic.Bool
}

func (f *flakyStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if f.failGet.Load() {
		return nil, fmt.Errorf("get %s: %w", key, errInjected)
	}
	return f.Storage.Get(ctx, key)
}

func (f *flakyStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if f.failPut.Load() {
		return fmt.Errorf("put %s: %w", e.Key, errInjected)
	}
	return f.Storage.Put(ctx, e)
}

func (f *flakyStorage) List(ctx context.Context, prefix string) ([]string, error) {
	if f.failList.Load() {
		return nil, fmt.Errorf("list %s: %w", prefix, errInjected)
	}
	return f.Storage.List(ctx, prefix)
}

func (f *flakyStorage) Delete(ctx context.Context, key string) error {
	if f.failDelete.Load() {
		return fmt.Errorf("delete %s: %w", key, errInjected)
	}
	return f.Storage.Delete(ctx, key)
}

func (f *flakyStorage) clear() {
	f.failGet.Store(false)
	f.failPut.Store(false)
	f.failList.Store(false)
	f.failDelete.Store(false)
}

// ---- the backend under test --------------------------------------------------

type envOptions struct {
	exchanger    pure1.Exchanger
	maxLeaseTTL  time.Duration // mount max lease TTL; default 768h like Vault's
	defaultLease time.Duration // mount default lease TTL; default 768h
	clock        *fakeClock
	replication  consts.ReplicationState // the node's replication state; default none (a primary that may write)
	hosts        pure1.HostPolicy        // token_url hosts allowed besides Pure1 (and loopback, below)
	// noLoopback leaves out the loopback opt-in every other test env gets
	// (PURE1_ALLOWED_TOKEN_HOSTS=loopback), for the tests of its refusal.
	noLoopback bool
}

// loopbackHosts is the policy of exchangers the tests build themselves to
// reach their emulators on loopback, as PURE1_ALLOWED_TOKEN_HOSTS=loopback.
var loopbackHosts = pure1.HostPolicy{}.WithLoopback()

// allowExample is the policy of tests that write a token_url on a made-up
// host, as a registrar would allow it.
func allowExample(t testing.TB) pure1.HostPolicy {
	t.Helper()
	p, err := pure1.NewHostPolicy("pure1.example.com")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type testEnv struct {
	t       testing.TB
	ctx     context.Context
	b       *backend
	inmem   *logical.InmemStorage
	storage *flakyStorage // what requests carry; wraps inmem
	clock   *fakeClock
	logs    *syncBuffer
}

// newTestEnv builds a backend as Vault does: newBackend, then Setup with a
// BackendConfig whose system view carries the mount's lease TTLs and whose
// logger writes everything down to Trace into env.logs.
func newTestEnv(t testing.TB, opts envOptions) *testEnv {
	t.Helper()
	return newTestEnvWith(t, opts, nil)
}

// newTestEnvWith is newTestEnv with the backend's Options changed by set
// (an array dialer, say) before the backend is built.
func newTestEnvWith(t testing.TB, opts envOptions, set func(*Options)) *testEnv {
	t.Helper()
	if opts.clock == nil {
		opts.clock = newClock(testEpoch)
	}
	if opts.maxLeaseTTL == 0 {
		opts.maxLeaseTTL = 768 * time.Hour
	}
	if opts.defaultLease == 0 {
		opts.defaultLease = opts.maxLeaseTTL
	}
	logs := &syncBuffer{}
	conf := logical.TestBackendConfig()
	conf.Logger = hclog.New(&hclog.LoggerOptions{Name: "pure1-test", Level: hclog.Trace, Output: logs})
	conf.System = logical.StaticSystemView{
		DefaultLeaseTTLVal:  opts.defaultLease,
		MaxLeaseTTLVal:      opts.maxLeaseTTL,
		ReplicationStateVal: opts.replication,
	}
	inmem := &logical.InmemStorage{}
	conf.StorageView = inmem

	hosts := opts.hosts
	if !opts.noLoopback {
		// The tests' endpoints are httptest servers and emulators on
		// loopback, which a registrar allows with the word loopback.
		hosts = hosts.WithLoopback()
	}
	bo := Options{Exchanger: opts.exchanger, Now: opts.clock.Now, Hosts: hosts}
	if set != nil {
		set(&bo)
	}
	b := newBackend(bo)
	ctx := context.Background()
	if err := b.Setup(ctx, conf); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	return &testEnv{
		t: t, ctx: ctx, b: b, inmem: inmem,
		storage: &flakyStorage{Storage: inmem},
		clock:   opts.clock,
		logs:    logs,
	}
}

// request sends one request through HandleRequest exactly as Vault's router
// does: a write first asks the existence check, and becomes a create when the
// path has one and the entry does not exist.
func (e *testEnv) request(op logical.Operation, path string, data map[string]interface{}) (*logical.Response, error) {
	req := &logical.Request{
		Operation:  op,
		Path:       path,
		Data:       data,
		Storage:    e.storage,
		MountPoint: "pure1/",
	}
	if op == logical.UpdateOperation || op == logical.CreateOperation {
		req.Operation = logical.UpdateOperation
		found, exists, err := e.b.HandleExistenceCheck(e.ctx, req)
		var userErr errutil.UserError
		if errors.As(err, &userErr) {
			// Vault answers a field that fails validation in the existence
			// check as an invalid request (400) carrying the message.
			return logical.ErrorResponse(err.Error()), logical.ErrInvalidRequest
		}
		if err != nil {
			return nil, err
		}
		if found && !exists {
			req.Operation = logical.CreateOperation
		}
	}
	return e.b.HandleRequest(e.ctx, req)
}

func (e *testEnv) write(path string, data map[string]interface{}) (*logical.Response, error) {
	return e.request(logical.UpdateOperation, path, data)
}

func (e *testEnv) read(path string) (*logical.Response, error) {
	return e.request(logical.ReadOperation, path, nil)
}

func (e *testEnv) list(path string) (*logical.Response, error) {
	return e.request(logical.ListOperation, path, nil)
}

func (e *testEnv) delete(path string) (*logical.Response, error) {
	return e.request(logical.DeleteOperation, path, nil)
}

// mustOK fails the test unless the request succeeded without an error response.
func mustOK(t testing.TB, what string, resp *logical.Response, err error) *logical.Response {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: unexpected error: %v", what, err)
	}
	if resp != nil && resp.IsError() {
		t.Fatalf("%s: unexpected error response: %v", what, resp.Error())
	}
	return resp
}

func (e *testEnv) mustWrite(path string, data map[string]interface{}) *logical.Response {
	e.t.Helper()
	resp, err := e.write(path, data)
	return mustOK(e.t, "write "+path, resp, err)
}

func (e *testEnv) mustRead(path string) *logical.Response {
	e.t.Helper()
	resp, err := e.read(path)
	mustOK(e.t, "read "+path, resp, err)
	if resp == nil {
		e.t.Fatalf("read %s: no response", path)
	}
	return resp
}

func (e *testEnv) mustDelete(path string) {
	e.t.Helper()
	resp, err := e.delete(path)
	mustOK(e.t, "delete "+path, resp, err)
}

// errorText is what a client would see of a failed request, or "" when it
// succeeded: the error response's message and the returned error.
func errorText(resp *logical.Response, err error) string {
	var parts []string
	if resp != nil && resp.IsError() {
		parts = append(parts, resp.Error().Error())
	}
	if err != nil {
		parts = append(parts, err.Error())
	}
	return strings.Join(parts, ": ")
}

// httpStatus is the status Vault's HTTP layer would answer a client with.
func httpStatus(resp *logical.Response, err error) int {
	code, err := logical.RespondErrorCommon(&logical.Request{Operation: logical.ReadOperation}, resp, err)
	if code == 0 {
		return http.StatusOK
	}
	if err != nil {
		logical.AdjustErrorStatusCode(&code, err) // as logical.RespondError does
	}
	return code
}

// snapshot is every key and value in the in-memory storage.
func (e *testEnv) snapshot() map[string][]byte {
	e.t.Helper()
	keys, err := logical.CollectKeys(e.ctx, e.inmem)
	if err != nil {
		e.t.Fatalf("collecting storage keys: %v", err)
	}
	out := make(map[string][]byte, len(keys))
	for _, k := range keys {
		ent, err := e.inmem.Get(e.ctx, k)
		if err != nil || ent == nil {
			e.t.Fatalf("reading storage key %s: %v", k, err)
		}
		out[k] = append([]byte(nil), ent.Value...)
		if ent.SealWrap {
			out[k] = append(out[k], "\x00sealwrap"...)
		}
	}
	return out
}

func diffSnapshots(a, b map[string][]byte) string {
	var diffs []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			diffs = append(diffs, "removed "+k)
		} else if !bytes.Equal(v, w) {
			diffs = append(diffs, "changed "+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			diffs = append(diffs, "added "+k)
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "; ")
}

// putRaw writes a JSON value straight into storage, behind the backend's back.
func (e *testEnv) putRaw(key string, v interface{}) {
	e.t.Helper()
	ent, err := logical.StorageEntryJSON(key, v)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.inmem.Put(e.ctx, ent); err != nil {
		e.t.Fatal(err)
	}
}

// ---- key fixtures --------------------------------------------------------------

const testPassword = "correct horse battery staple"

// keyFixture is one RSA key and every PEM form a user may bring it in.
type keyFixture struct {
	priv        *rsa.PrivateKey
	pkcs1       string
	pkcs8       string
	legacyAES   string // Proc-Type: 4,ENCRYPTED, AES-256-CBC
	legacyDES3  string // Proc-Type: 4,ENCRYPTED, DES-EDE3-CBC
	encPKCS8    string // ENCRYPTED PRIVATE KEY, PBES2 (youmark/pkcs8 defaults: PBKDF2-SHA256, AES-256-CBC)
	encPKCS8AES string // ENCRYPTED PRIVATE KEY, PBES2 with AES-128-CBC
	publicPEM   string // SubjectPublicKeyInfo, as the config read shows it
	fingerprint string // hex SHA-256 of the SPKI DER
}

func newKeyFixture(priv *rsa.PrivateKey) *keyFixture {
	der1 := x509.MarshalPKCS1PrivateKey(priv)
	der8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		panic(err)
	}
	legacy := func(c x509.PEMCipher) string {
		//nolint:staticcheck // the legacy form is what OpenSSL 1.1 wrote; users still hold such keys
		blk, err := x509.EncryptPEMBlock(rand.Reader, "RSA PRIVATE KEY", der1, []byte(testPassword), c)
		if err != nil {
			panic(err)
		}
		return string(pem.EncodeToMemory(blk))
	}
	enc8 := func(opts *pkcs8.Opts) string {
		der, err := pkcs8.MarshalPrivateKey(priv, []byte(testPassword), opts)
		if err != nil {
			panic(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}))
	}
	spki, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(spki)
	return &keyFixture{
		priv:       priv,
		pkcs1:      string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der1})),
		pkcs8:      string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der8})),
		legacyAES:  legacy(x509.PEMCipherAES256),
		legacyDES3: legacy(x509.PEMCipher3DES),
		encPKCS8:   enc8(nil),
		encPKCS8AES: enc8(&pkcs8.Opts{
			Cipher:  pkcs8.AES128CBC,
			KDFOpts: pkcs8.PBKDF2Opts{SaltSize: 16, IterationCount: 2048, HMACHash: crypto.SHA256},
		}),
		publicPEM:   string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})),
		fingerprint: hex.EncodeToString(sum[:]),
	}
}

func generateRSA(bits int) *rsa.PrivateKey {
	priv, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return priv
}

// RSA key generation is the slowest thing here (seconds under -race), so each
// fixture is made once per test binary, when first used.
var (
	keyA = sync.OnceValue(func() *keyFixture { return newKeyFixture(generateRSA(2048)) })
	keyB = sync.OnceValue(func() *keyFixture { return newKeyFixture(generateRSA(2048)) })
	keyC = sync.OnceValue(func() *keyFixture { return newKeyFixture(generateRSA(2048)) })

	rsa1024PEM = sync.OnceValue(func() string {
		der := x509.MarshalPKCS1PrivateKey(generateRSA(1024))
		return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der}))
	})
	ecPKCS8PEM = sync.OnceValue(func() string {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			panic(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	})
	ecSEC1PEM = sync.OnceValue(func() string {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			panic(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	})
	ed25519PEM = sync.OnceValue(func() string {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			panic(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	})
)

// selfSignedCertPEM is a certificate for k's public half: a bundle may carry
// one beside the key.
func selfSignedCertPEM(k *keyFixture) string {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "pure1-test"},
		NotBefore:    testEpoch.Add(-time.Hour),
		NotAfter:     testEpoch.Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.priv.PublicKey, k.priv)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// pemBodyLines are the base64 lines of a PEM: what must never leak.
func pemBodyLines(p string) []string {
	var out []string
	for _, l := range strings.Split(p, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "-----") || strings.Contains(l, ":") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// ---- the Pure1 emulator ----------------------------------------------------------

type testEmulator struct {
	emu      *emulator.Server
	srv      *httptest.Server
	tokenURL string
	// exchanger is an HTTPExchanger on the same clock with fast retries.
	exchanger *pure1.HTTPExchanger
}

const (
	testOrg     = "acme-storage"
	testMaxRole = "storage_admin"
)

// testRetry keeps failure tests fast: two attempts, millisecond backoff.
var testRetry = pure1.RetryPolicy{
	MaxAttempts:     2,
	InitialInterval: time.Millisecond,
	MaxInterval:     5 * time.Millisecond,
	MaxRetryAfter:   10 * time.Millisecond,
	MaxElapsed:      10 * time.Second,
}

// newTestEmulator starts the emulator's handler on a loopback httptest server,
// closed when the test ends.
func newTestEmulator(t testing.TB, clock *fakeClock, lifetime time.Duration) *testEmulator {
	t.Helper()
	emu, err := emulator.New(emulator.Options{Org: testOrg, TokenLifetime: lifetime, Now: clock.Now})
	if err != nil {
		t.Fatalf("emulator.New: %v", err)
	}
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(srv.Close)
	return &testEmulator{
		emu:      emu,
		srv:      srv,
		tokenURL: srv.URL + emulator.TokenPath,
		exchanger: pure1.NewHTTPExchanger(pure1.HTTPExchangerOptions{
			Client: srv.Client(),
			Now:    clock.Now,
			Retry:  testRetry,
			Hosts:  loopbackHosts,
		}),
	}
}

// register registers k's public key and returns the application ID.
func (te *testEmulator) register(t testing.TB, publicPEM string) string {
	t.Helper()
	app, err := te.emu.Register(publicPEM, testMaxRole)
	if err != nil {
		t.Fatalf("emulator Register: %v", err)
	}
	return app.ID
}

// newEmulatorEnv is a backend whose exchanger talks to a fresh emulator.
func newEmulatorEnv(t testing.TB, lifetime time.Duration, opts envOptions) (*testEnv, *testEmulator) {
	t.Helper()
	if opts.clock == nil {
		// The emulator refuses JWTs far from its own "now"; they share this.
		opts.clock = newClock(testEpoch)
	}
	te := newTestEmulator(t, opts.clock, lifetime)
	opts.exchanger = te.exchanger
	return newTestEnv(t, opts), te
}

// ---- JWT checks ---------------------------------------------------------------------

type jwtClaims struct {
	Iss      string
	Iat, Exp int64
}

// checkJWT verifies a Pure1 client JWT as strictly as Pure1: the header is
// exactly {"alg":"RS256","typ":"JWT"}, the claims exactly iss, iat and exp with
// integer seconds, and the RS256 signature verifies with pub.
func checkJWT(token string, pub *rsa.PublicKey) (jwtClaims, error) {
	var c jwtClaims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, fmt.Errorf("JWT has %d parts", len(parts))
	}
	header, err := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	if err != nil {
		return c, fmt.Errorf("header: %v", err)
	}
	if string(header) != `{"alg":"RS256","typ":"JWT"}` {
		return c, fmt.Errorf("header is %s", header)
	}
	payload, err := base64.RawURLEncoding.Strict().DecodeString(parts[1])
	if err != nil {
		return c, fmt.Errorf("payload: %v", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil {
		return c, fmt.Errorf("payload: %v", err)
	}
	names := make([]string, 0, len(raw))
	for k := range raw {
		names = append(names, k)
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "exp,iat,iss" {
		return c, fmt.Errorf("claims are %v, want exactly iss, iat, exp", names)
	}
	if err := json.Unmarshal(raw["iss"], &c.Iss); err != nil {
		return c, fmt.Errorf("iss: %v", err)
	}
	for _, f := range []struct {
		name string
		dst  *int64
	}{{"iat", &c.Iat}, {"exp", &c.Exp}} {
		s := string(raw[f.name])
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return c, fmt.Errorf("%s is %s, not integer seconds", f.name, s)
		}
		*f.dst = v
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil {
		return c, fmt.Errorf("signature: %v", err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		return c, fmt.Errorf("signature does not verify: %v", err)
	}
	return c, nil
}

// decodeJWTPart decodes part i (0 header, 1 payload) of a JWT into v, without
// verifying anything.
func decodeJWTPart(token string, i int, v interface{}) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return fmt.Errorf("not a JWT: %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// accessTokenSub reads the sub claim of an emulator access token.
func accessTokenSub(t testing.TB, tok string) string {
	t.Helper()
	var c struct {
		Sub string `json:"sub"`
	}
	if err := decodeJWTPart(tok, 1, &c); err != nil {
		t.Fatalf("access token: %v", err)
	}
	return c.Sub
}

// ---- common set-ups ---------------------------------------------------------------

const (
	appID1 = "pure1:apikey:AAAAAAAAAAAAAAA1"
	appID2 = "pure1:apikey:BBBBBBBBBBBBBBB2"
	appID3 = "pure1:apikey:CCCCCCCCCCCCCCC3"
)

// writeConfig imports k under config/name with appID ("" for none).
func (e *testEnv) writeConfig(name string, k *keyFixture, appID string) *logical.Response {
	e.t.Helper()
	data := map[string]interface{}{"private_key": k.pkcs8}
	if appID != "" {
		data["app_id"] = appID
	}
	return e.mustWrite("config/"+name, data)
}

// creds reads creds/role and fails the test on any error.
func (e *testEnv) creds(role string) *logical.Response {
	e.t.Helper()
	resp, err := e.read("creds/" + role)
	mustOK(e.t, "read creds/"+role, resp, err)
	if resp == nil || resp.Secret == nil {
		e.t.Fatalf("read creds/%s: no lease in %#v", role, resp)
	}
	return resp
}

func dataString(t testing.TB, resp *logical.Response, field string) string {
	t.Helper()
	v, ok := resp.Data[field]
	if !ok {
		t.Fatalf("response has no %q: %v", field, resp.Data)
	}
	s, ok := v.(string)
	if !ok {
		t.Fatalf("%q is %T, not a string", field, v)
	}
	return s
}

func parseExpiresAt(t testing.TB, resp *logical.Response) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339, dataString(t, resp, "expires_at"))
	if err != nil {
		t.Fatalf("expires_at: %v", err)
	}
	return at
}

// TestFactory builds the backend the way the plugin's main does.
func TestFactory(t *testing.T) {
	conf := logical.TestBackendConfig()
	conf.StorageView = &logical.InmemStorage{}
	b, err := Factory(context.Background(), conf)
	if err != nil {
		t.Fatalf("Factory: %v", err)
	}
	if b.Type() != logical.TypeLogical {
		t.Errorf("backend type %v, want logical", b.Type())
	}
	resp, err := b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.ListOperation, Path: "config/", Storage: conf.StorageView,
	})
	mustOK(t, "list config/", resp, err)
	if bb, ok := b.(*backend); !ok || bb.exchanger == nil {
		t.Errorf("Factory left the backend without a Pure1 exchanger")
	}
}
