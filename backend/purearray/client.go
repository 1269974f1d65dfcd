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

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-hclog"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
)

// Array is all the backend knows of one array's REST API, so tests can stand
// in for it. Exchange is pure1.Exchanger's: the same form, at TokenURL.
type Array interface {
	pure1.Exchanger
	// Admin logs in with an array API token and returns the calls that
	// manage API clients under that session.
	Admin(ctx context.Context, apiToken string) (Admin, error)
}

// Admin manages an array's API clients.
type Admin interface {
	// CreateAPIClient creates a client, which the array leaves disabled.
	CreateAPIClient(ctx context.Context, c NewAPIClient) (*APIClient, error)
	// EnableAPIClient enables the client name and returns it as it now is.
	EnableAPIClient(ctx context.Context, name string) (*APIClient, error)
	// GetAPIClient returns the client name, or nil when there is none.
	GetAPIClient(ctx context.Context, name string) (*APIClient, error)
	DeleteAPIClient(ctx context.Context, name string) error
}

// NewAPIClient is what POST /api/2.x/api-clients takes.
type NewAPIClient struct {
	Name           string
	Issuer         string
	PublicKeyPEM   string
	MaxRole        string
	AccessTokenTTL time.Duration
	// MaxRoleAsReference sends max_role as {"name": MaxRole}, as a
	// FlashBlade takes it; a FlashArray takes the plain string. (Pure's
	// Ansible collections: ReferenceWritable(name=role) for FlashBlade, the
	// role string for FlashArray.)
	MaxRoleAsReference bool
}

// APIClient is an API client as the array shows it.
type APIClient struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	KeyID   string `json:"key_id"`
	Issuer  string `json:"issuer"`
	Enabled bool   `json:"enabled"`
	// MaxRole is a string on older REST versions and {"name": ...} on newer.
	MaxRole          json.RawMessage `json:"max_role,omitempty"`
	AccessTokenTTLMS int64           `json:"access_token_ttl_in_ms,omitempty"`
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
	base   string
	client *http.Client
	hosts  pure1.HostPolicy
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
	if err := opts.Hosts.Check("array_url", opts.ArrayURL); err != nil {
		return nil, err
	}
	t := cleanhttp.DefaultPooledTransport()
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
	return &HTTPArray{HTTPExchanger: ex, base: strings.TrimRight(opts.ArrayURL, "/"), client: client, hosts: opts.Hosts}, nil
}

// HTTPClient is the client that trusts the array's CA and refuses
// redirects: for callers that use an access token on the array's API.
func (a *HTTPArray) HTTPClient() *http.Client { return a.client }

// maxBody caps what is read of an administrative answer.
const maxBody = 1 << 20

// do sends one request and returns the body of a 2xx answer. Non-2xx answers
// are *pure1.APIError, classified as pure1's are (4xx rejected, 5xx and 429
// unavailable); certificate failures are ErrRejected with the fix.
func (a *HTTPArray) do(ctx context.Context, method, path string, header http.Header, body any) ([]byte, http.Header, error) {
	u := a.base + path
	// The policy is read at plugin start: a stored array_url must still pass.
	if err := a.hosts.Check("array_url", u); err != nil {
		return nil, nil, fmt.Errorf("%w: no request was sent: %w", pure1.ErrRejected, err)
	}
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: building the request for array_url: %v", pure1.ErrRejected, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	where := method + " " + safePath(a.base, path)
	resp, err := a.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if why := pure1.PermanentNetError(err, "array_url", caHint); why != "" {
			return nil, nil, fmt.Errorf("%w: %s: %v (%s)", pure1.ErrRejected, where, err, why)
		}
		return nil, nil, fmt.Errorf("%w: %s: %v", pure1.ErrUnavailable, where, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: reading the answer to %s: %v", pure1.ErrUnavailable, where, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, nil, fmt.Errorf("%s: %w", where, arrayError(resp.StatusCode, raw))
	}
	return raw, resp.Header, nil
}

// safePath is the URL without its query (which may name clients): enough to
// say which call failed.
func safePath(base, path string) string {
	p, _, _ := strings.Cut(path, "?")
	return base + p
}

// arrayError reads the REST 2 error shape {"errors":[{"message","context"}]},
// or OAuth's {error, error_description}.
func arrayError(status int, body []byte) error {
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

// APIVersion returns the newest REST 2.x version the array offers.
func (a *HTTPArray) APIVersion(ctx context.Context) (string, error) {
	raw, _, err := a.do(ctx, http.MethodGet, "/api/api_version", nil, nil)
	if err != nil {
		return "", err
	}
	var r struct {
		Version []string `json:"version"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return "", fmt.Errorf("%w: /api/api_version is not JSON", pure1.ErrBadResponse)
	}
	return newest2x(r.Version)
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

// Admin logs in with apiToken (POST /api/2.x/login, header api-token) and
// returns the session's x-auth-token bound to the admin calls.
func (a *HTTPArray) Admin(ctx context.Context, apiToken string) (Admin, error) {
	ver, err := a.APIVersion(ctx)
	if err != nil {
		return nil, err
	}
	_, h, err := a.do(ctx, http.MethodPost, "/api/"+ver+"/login", http.Header{"Api-Token": {apiToken}}, nil)
	if err != nil {
		return nil, fmt.Errorf("logging in with admin_api_token: %w", err)
	}
	session := h.Get("X-Auth-Token")
	if session == "" {
		return nil, fmt.Errorf("%w: the login answer carries no x-auth-token", pure1.ErrBadResponse)
	}
	return &httpAdmin{a: a, ver: ver, session: session}, nil
}

type httpAdmin struct {
	a       *HTTPArray
	ver     string
	session string
}

func (s *httpAdmin) call(ctx context.Context, method, name string, body any) (*APIClient, error) {
	path := "/api/" + s.ver + "/api-clients?names=" + url.QueryEscape(name)
	raw, _, err := s.a.do(ctx, method, path, http.Header{"X-Auth-Token": {s.session}}, body)
	if err != nil {
		return nil, err
	}
	if method == http.MethodDelete {
		return nil, nil
	}
	var r struct {
		Items []APIClient `json:"items"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("%w: the api-clients answer is not JSON", pure1.ErrBadResponse)
	}
	for i := range r.Items {
		if r.Items[i].Name == name {
			return &r.Items[i], nil
		}
	}
	return nil, nil
}

func (s *httpAdmin) CreateAPIClient(ctx context.Context, c NewAPIClient) (*APIClient, error) {
	body := map[string]any{
		"issuer":     c.Issuer,
		"public_key": c.PublicKeyPEM,
		"max_role":   c.MaxRole,
	}
	if c.MaxRoleAsReference {
		body["max_role"] = map[string]string{"name": c.MaxRole}
	}
	if c.AccessTokenTTL > 0 {
		body["access_token_ttl_in_ms"] = c.AccessTokenTTL.Milliseconds()
	}
	got, err := s.call(ctx, http.MethodPost, c.Name, body)
	if err != nil {
		return nil, fmt.Errorf("creating API client %q: %w", c.Name, err)
	}
	if got == nil {
		return nil, fmt.Errorf("%w: creating API client %q returned no such client", pure1.ErrBadResponse, c.Name)
	}
	return got, nil
}

func (s *httpAdmin) EnableAPIClient(ctx context.Context, name string) (*APIClient, error) {
	got, err := s.call(ctx, http.MethodPatch, name, map[string]any{"enabled": true})
	if err != nil {
		return nil, fmt.Errorf("enabling API client %q: %w", name, err)
	}
	if got == nil {
		return nil, fmt.Errorf("%w: enabling API client %q returned no such client", pure1.ErrBadResponse, name)
	}
	return got, nil
}

func (s *httpAdmin) GetAPIClient(ctx context.Context, name string) (*APIClient, error) {
	got, err := s.call(ctx, http.MethodGet, name, nil)
	var apiErr *pure1.APIError
	if errors.As(err, &apiErr) && (apiErr.StatusCode == http.StatusBadRequest || apiErr.StatusCode == http.StatusNotFound) {
		return nil, nil // arrays answer 400 for a name that does not exist
	}
	if err != nil {
		return nil, fmt.Errorf("reading API client %q: %w", name, err)
	}
	return got, nil
}

func (s *httpAdmin) DeleteAPIClient(ctx context.Context, name string) error {
	if _, err := s.call(ctx, http.MethodDelete, name, nil); err != nil {
		return fmt.Errorf("deleting API client %q: %w", name, err)
	}
	return nil
}
