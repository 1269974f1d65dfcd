package purearray

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
)

// Array is all the backend knows of one array's REST API, so tests can stand
// in for it. Exchange is pure1.Exchanger's: the same form, at TokenURL.
type Array interface {
	pure1.Exchanger
	// Admin logs in with an array API token and returns the calls that
	// manage API clients under that session. The caller must Logout, on
	// every path: Pure's SDK always does, and an array limits its sessions.
	Admin(ctx context.Context, apiToken string) (Admin, error)
}

// Admin manages an array's API clients under one login session.
type Admin interface {
	// CreateAPIClient creates a client, which the array leaves disabled.
	CreateAPIClient(ctx context.Context, c NewAPIClient) (*APIClient, error)
	// EnableAPIClient enables the client name and returns it as it now is.
	EnableAPIClient(ctx context.Context, name string) (*APIClient, error)
	// GetAPIClient returns the client name, or nil when there is none.
	GetAPIClient(ctx context.Context, name string) (*APIClient, error)
	// DeleteAPIClient deletes the client name; one that is already gone is
	// not an error.
	DeleteAPIClient(ctx context.Context, name string) error
	// Logout ends the session.
	Logout(ctx context.Context) error
	// Users are the local users the session manages (users.go).
	Users
}

// logoutTimeout bounds a logout, which runs even when the work it closes
// was cancelled.
const logoutTimeout = 3 * time.Second

// WithAdmin logs in with apiToken, runs fn under that session and logs out
// whatever fn returned: no path leaves a session open on the array. It
// returns fn's error: a logout the array fails changes nothing that fn did
// (the session ends with its idle timeout), so the Admin logs it instead.
func WithAdmin(ctx context.Context, arr Array, apiToken string, fn func(Admin) error) error {
	admin, err := arr.Admin(ctx, apiToken)
	if err != nil {
		return err
	}
	defer func() { // deferred: a panic in fn logs out too
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), logoutTimeout)
		defer cancel()
		_ = admin.Logout(lctx) // logged by the Admin
	}()
	return fn(admin)
}

// NewAPIClient is what POST /api/2.x/api-clients takes.
type NewAPIClient struct {
	Name           string
	Issuer         string
	PublicKeyPEM   string
	MaxRole        string
	AccessTokenTTL time.Duration
}

// APIClient is an API client as the array shows it.
type APIClient struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	KeyID   string `json:"key_id"`
	Issuer  string `json:"issuer"`
	Enabled bool   `json:"enabled"`
	// PublicKey is the client's PEM public key: what tells Vault's own
	// clients from others of the same name.
	PublicKey string `json:"public_key,omitempty"`
	// MaxRole is a string on a FlashArray and {"name": ...} on a FlashBlade.
	MaxRole          json.RawMessage `json:"max_role,omitempty"`
	AccessTokenTTLMS int64           `json:"access_token_ttl_in_ms,omitempty"`
}

// Role is the client's max_role in either form.
func (c *APIClient) Role() string {
	var s string
	if json.Unmarshal(c.MaxRole, &s) == nil {
		return s
	}
	var ref struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(c.MaxRole, &ref) == nil {
		return ref.Name
	}
	return ""
}

// HasKey reports whether the client holds the public key of fingerprint
// (pure1.Key.Fingerprint's form): whether Vault made it.
func (c *APIClient) HasKey(fingerprint string) bool {
	if c == nil || c.PublicKey == "" || fingerprint == "" {
		return false
	}
	fp, err := pure1.PublicKeyFingerprint([]byte(c.PublicKey))
	return err == nil && fp == fingerprint
}

// Errors callers branch on, beside pure1's ErrRejected and ErrUnavailable,
// which the array's answers are classified into as Pure1's are.
var (
	// ErrBadCA: ca_cert holds no usable certificate.
	ErrBadCA = errors.New("ca_cert holds no PEM certificate")
	// ErrNoAPIVersion: the array offers no REST 2 version with API clients.
	ErrNoAPIVersion = errors.New("the array offers no REST 2.x API version")
)

// Options configure New.
type Options struct {
	// Kind is the array's dialect; nil is a FlashArray.
	Kind     *Kind
	ArrayURL string
	// CACert is the PEM of the CA that signed the array's certificate; empty
	// trusts the system's roots. There is no way to skip verification.
	CACert []byte
	Hosts  pure1.HostPolicy
	Logger hclog.Logger
	// AttemptTimeout bounds one HTTP attempt; default 15s.
	AttemptTimeout time.Duration
	// Retry of the token exchange; zero takes pure1's default.
	Retry pure1.RetryPolicy
}

// HTTPArray is the Array that talks to an array over HTTPS. The exchange is
// pure1's HTTPExchanger (retries, host policy, refused redirects) on a
// client that trusts the array's CA.
type HTTPArray struct {
	*pure1.HTTPExchanger
	logger hclog.Logger
	kind   *Kind
	base   string
	client *http.Client
}

// caHint is the advice when the array's certificate does not verify.
const caHint = "check ca_cert: it must be the PEM of the CA that signed the array's certificate (or omit it when a CA in the system's trust store signed it)"

// ParseCACert returns a pool of the certificates in pemData.
func ParseCACert(pemData []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := pemData; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: it holds a %q block; give only CERTIFICATE blocks", ErrBadCA, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: a certificate does not parse: %v", ErrBadCA, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: give the CA's certificate as PEM (-----BEGIN CERTIFICATE-----), e.g. ca_cert=@array-ca.pem", ErrBadCA)
	}
	return pool, nil
}

// New builds the client of the array at opts.ArrayURL.
func New(opts Options) (*HTTPArray, error) {
	// Checked once, here: the policy is fixed at plugin start, and every
	// call of the client goes to this array_url.
	if err := opts.Hosts.Check("array_url", opts.ArrayURL); err != nil {
		return nil, err
	}
	// The policy's transport refuses, where it dials, an array_url whose
	// name resolves to loopback unless the registrar allowed loopback.
	t := opts.Hosts.Transport()
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if len(opts.CACert) > 0 {
		pool, err := ParseCACert(opts.CACert)
		if err != nil {
			return nil, err
		}
		t.TLSClientConfig.RootCAs = pool
	}
	timeout := opts.AttemptTimeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	client := &http.Client{Transport: t, Timeout: timeout,
		// A redirect would re-send the API token or a Bearer token elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	ex := pure1.NewHTTPExchanger(pure1.HTTPExchangerOptions{
		Client: client, Hosts: opts.Hosts, Logger: logger, Retry: opts.Retry,
		URLField: "array_url", TLSHint: caHint,
	})
	kind := opts.Kind
	if kind == nil {
		kind = FlashArray
	}
	return &HTTPArray{HTTPExchanger: ex, logger: logger, kind: kind, base: strings.TrimRight(opts.ArrayURL, "/"), client: client}, nil
}

// HTTPClient is the client that trusts the array's CA and refuses
// redirects: for callers that use an access token on the array's API.
func (a *HTTPArray) HTTPClient() *http.Client { return a.client }

// maxBody caps what is read of an administrative answer.
const maxBody = 1 << 20

// CallError is a failed call to an array's REST API: which call, where, and
// the array's answer or the network error. It is classified as pure1's
// errors are (errors.Is ErrRejected for 4xx and certificate failures,
// ErrUnavailable for 5xx, 429 and the network), so callers branch alike,
// but it names the array's call, never a token endpoint.
type CallError struct {
	Call   string // login, logout, API version, create API client "x", ...
	Method string
	URL    string // without the query
	Err    error
	class  error // pure1.ErrRejected, ErrUnavailable or ErrBadResponse
}

func (e *CallError) Error() string {
	return fmt.Sprintf("the array's %s (%s %s) failed: %v", e.Call, e.Method, e.URL, e.Err)
}

func (e *CallError) Unwrap() error { return e.Err }

// Is lets errors.Is classify the call like an exchange.
func (e *CallError) Is(target error) bool { return e.class != nil && target == e.class }

// StatusCode is the array's HTTP status, or 0 when it did not answer.
func (e *CallError) StatusCode() int {
	var api *pure1.APIError
	if errors.As(e.Err, &api) {
		return api.StatusCode
	}
	return 0
}

// do sends one request and returns the body of a 2xx answer. Anything else
// is a *CallError naming call.
func (a *HTTPArray) do(ctx context.Context, call, method, path string, header http.Header, body any) ([]byte, http.Header, error) {
	u := a.base + path
	fail := func(class, err error) ([]byte, http.Header, error) {
		return nil, nil, &CallError{Call: call, Method: method, URL: safePath(a.base, path), Err: err, class: class}
	}
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return fail(pure1.ErrRejected, err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fail(pure1.ErrRejected, fmt.Errorf("building the request for array_url: %v", err))
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if why := pure1.PermanentNetError(err, "array_url", caHint); why != "" {
			return fail(pure1.ErrRejected, fmt.Errorf("%v (%s)", err, why))
		}
		return fail(pure1.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fail(pure1.ErrUnavailable, fmt.Errorf("reading the answer: %v", err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		apiErr := arrayError(resp.StatusCode, raw)
		class := pure1.ErrRejected
		if errors.Is(apiErr, pure1.ErrUnavailable) {
			class = pure1.ErrUnavailable
		}
		return fail(class, apiErr)
	}
	return raw, resp.Header, nil
}

// badAnswer is a 2xx answer the engine cannot use.
func (a *HTTPArray) badAnswer(call, method, path, why string) error {
	return &CallError{Call: call, Method: method, URL: safePath(a.base, path), Err: errors.New(why), class: pure1.ErrBadResponse}
}

// safePath is the URL without its query (which may name clients): enough to
// say which call failed.
func safePath(base, path string) string {
	p, _, _ := strings.Cut(path, "?")
	return base + p
}

// arrayError reads the REST 2 error shape {"errors":[{"message","context"}]},
// or OAuth's {error, error_description}.
func arrayError(status int, body []byte) *pure1.APIError {
	var r struct {
		Errors []struct {
			Message string `json:"message"`
			Context string `json:"context"`
		} `json:"errors"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	e := &pure1.APIError{StatusCode: status}
	if json.Unmarshal(body, &r) == nil {
		var msgs []string
		for _, m := range r.Errors {
			s := m.Message
			if m.Context != "" {
				s = m.Context + ": " + s
			}
			msgs = append(msgs, s)
		}
		e.Code = r.Error
		e.Description = strings.Join(msgs, "; ")
		if e.Description == "" {
			e.Description = r.Description
		}
	}
	if len(e.Description) > 300 {
		e.Description = e.Description[:300] + "..."
	}
	return e
}

// APIVersion returns the newest REST 2.x version the array offers. A
// FlashArray lists them under "version", a FlashBlade under "versions".
func (a *HTTPArray) APIVersion(ctx context.Context) (string, error) {
	const call = "API version"
	raw, _, err := a.do(ctx, call, http.MethodGet, "/api/api_version", nil, nil)
	if err != nil {
		return "", err
	}
	var r map[string]json.RawMessage
	var versions []string
	if json.Unmarshal(raw, &r) != nil || json.Unmarshal(r[a.kind.versionsKey], &versions) != nil || len(versions) == 0 {
		return "", a.badAnswer(call, http.MethodGet, "/api/api_version",
			fmt.Sprintf("the answer has no %q list, as a %s's has: is array_url a %s? (kind=%s)", a.kind.versionsKey, a.kind.Product, a.kind.Product, a.kind.Name))
	}
	return newest2x(versions)
}

// newest2x picks the highest 2.x (2.1 at least: API clients over REST).
func newest2x(versions []string) (string, error) {
	best, bestMinor := "", -1
	for _, v := range versions {
		minorText, ok := strings.CutPrefix(v, "2.")
		if !ok {
			continue
		}
		minor, err := strconv.Atoi(minorText)
		if err != nil || minor < 1 {
			continue
		}
		if minor > bestMinor {
			best, bestMinor = v, minor
		}
	}
	if best == "" {
		return "", fmt.Errorf("%w (it lists %s): API clients over REST need Purity with REST 2.1 or later", ErrNoAPIVersion, strings.Join(versions, ", "))
	}
	return best, nil
}

// Admin logs in with apiToken (header api-token; a FlashArray at
// /api/<ver>/login, a FlashBlade at /api/login) and returns the session's
// x-auth-token bound to the admin calls. The caller must Logout.
func (a *HTTPArray) Admin(ctx context.Context, apiToken string) (Admin, error) {
	ver, err := a.APIVersion(ctx)
	if err != nil {
		return nil, err
	}
	path := a.kind.sessionPath(ver, "login")
	_, h, err := a.do(ctx, "login with admin_api_token", http.MethodPost, path, http.Header{"Api-Token": {apiToken}}, nil)
	if err != nil {
		return nil, err
	}
	session := h.Get("X-Auth-Token")
	if session == "" {
		return nil, a.badAnswer("login with admin_api_token", http.MethodPost, path, "the answer carries no x-auth-token header")
	}
	return &httpAdmin{a: a, ver: ver, session: session}, nil
}

type httpAdmin struct {
	a       *HTTPArray
	ver     string
	session string
}

func (s *httpAdmin) header() http.Header { return http.Header{"X-Auth-Token": {s.session}} }

// Logout ends the session (POST /api/<ver>/logout, or /api/logout on a
// FlashBlade).
func (s *httpAdmin) Logout(ctx context.Context) error {
	_, _, err := s.a.do(ctx, "logout", http.MethodPost, s.a.kind.sessionPath(s.ver, "logout"), s.header(), nil)
	if err != nil {
		s.a.logger.Warn("logging out of the array failed; the session ends with the array's idle timeout", "error", err)
	}
	return err
}

// call sends one api-clients request and picks name out of the answer's
// items. A GET lists every client and answers nil when name is not among
// them: it never asks by name, as an array answers a name it does not know
// with an error (400) that cannot be told from any other refusal, and a
// delete list that took a refusal for "gone" would forget a client that
// still exists. A create or enable names the client and must answer it.
func (s *httpAdmin) call(ctx context.Context, call, method, name string, body any) (*APIClient, error) {
	path := "/api/" + s.ver + "/api-clients"
	if method != http.MethodGet {
		path += "?names=" + url.QueryEscape(name)
	}
	raw, _, err := s.a.do(ctx, call, method, path, s.header(), body)
	if err != nil || method == http.MethodDelete {
		return nil, err
	}
	var r struct {
		Items []APIClient `json:"items"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, s.a.badAnswer(call, method, path, "the answer is not JSON")
	}
	for i := range r.Items {
		if r.Items[i].Name == name {
			return &r.Items[i], nil
		}
	}
	if method == http.MethodGet {
		return nil, nil
	}
	return nil, s.a.badAnswer(call, method, path, "the answer holds no such client")
}

func (s *httpAdmin) CreateAPIClient(ctx context.Context, c NewAPIClient) (*APIClient, error) {
	body := map[string]any{
		"issuer":     c.Issuer,
		"public_key": c.PublicKeyPEM,
		"max_role":   s.a.kind.maxRoleValue(c.MaxRole),
	}
	if c.AccessTokenTTL > 0 {
		body["access_token_ttl_in_ms"] = c.AccessTokenTTL.Milliseconds()
	}
	return s.call(ctx, fmt.Sprintf("create API client %q", c.Name), http.MethodPost, c.Name, body)
}

func (s *httpAdmin) EnableAPIClient(ctx context.Context, name string) (*APIClient, error) {
	return s.call(ctx, fmt.Sprintf("enable API client %q", name), http.MethodPatch, name, map[string]any{"enabled": true})
}

// GetAPIClient lists the array's API clients and picks name out (call says
// why it never asks by name).
func (s *httpAdmin) GetAPIClient(ctx context.Context, name string) (*APIClient, error) {
	return s.call(ctx, fmt.Sprintf("read API client %q", name), http.MethodGet, name, nil)
}

func (s *httpAdmin) DeleteAPIClient(ctx context.Context, name string) error {
	_, err := s.call(ctx, fmt.Sprintf("delete API client %q", name), http.MethodDelete, name, nil)
	if err == nil {
		return nil
	}
	// Gone already, or the array refuses the request: the list says which.
	if got, gerr := s.GetAPIClient(ctx, name); gerr == nil && got == nil {
		return nil
	}
	return err
}
