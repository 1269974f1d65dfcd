package pure1

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cenkalti/backoff/v5"
	"github.com/hashicorp/go-hclog"
)

// Wire constants of Pure1's OAuth 2.0 token exchange (RFC 8693).
const (
	DefaultTokenURL       = "https://api.pure1.purestorage.com/oauth2/1.0/token"
	GrantTypeExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
	SubjectTokenTypeJWT   = "urn:ietf:params:oauth:token-type:jwt"
	IssuedTokenTypeAccess = "urn:ietf:params:oauth:token-type:access_token"
)

// Exchanger trades a signed Pure1 JWT for an access token. It is all the
// backend knows of Pure1's HTTP API, so tests can stand in for it.
type Exchanger interface {
	Exchange(ctx context.Context, tokenURL, subjectJWT string) (*AccessToken, error)
}

// Errors callers branch on. Every error Exchange returns wraps one of them.
// Their texts name the token endpoint, not Pure1: an array's endpoint speaks
// the same wire through this exchanger, and callers say whose it is.
var (
	// ErrRejected: Pure1 refused the JWT or the request (400, 401, other
	// 4xx). Retrying will not help; the app ID or the key must be fixed.
	ErrRejected = errors.New("the token endpoint rejected the request")
	// ErrUnavailable: Pure1 could not be reached or kept failing (429, 5xx,
	// network errors, timeouts) after the retries.
	ErrUnavailable = errors.New("the token endpoint is unavailable")
	// ErrBadResponse: Pure1 answered 200 with a body that is not a usable
	// token response.
	ErrBadResponse = errors.New("the token endpoint returned an unusable token response")
)

// APIError is a non-200 answer from the token endpoint.
type APIError struct {
	StatusCode  int
	Code        string        // OAuth "error", e.g. invalid_client
	Description string        // OAuth "error_description"
	RetryAfter  time.Duration // from Retry-After, when given
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d", e.StatusCode)
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	if e.Description != "" {
		fmt.Fprintf(&b, ": %s", e.Description)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (Retry-After %s)", e.RetryAfter)
	}
	return b.String()
}

// Is classifies the status for errors.Is(err, ErrRejected/ErrUnavailable).
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrRejected:
		return !e.transient()
	case ErrUnavailable:
		return e.transient()
	}
	return false
}

// transient says whether the same request may succeed later. 501 (the
// endpoint does not implement the method) and 505 (the HTTP version) are
// answers about the request itself, not about load: retrying cannot help.
func (e *APIError) transient() bool {
	switch e.StatusCode {
	case http.StatusNotImplemented, http.StatusHTTPVersionNotSupported:
		return false
	}
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode == http.StatusRequestTimeout || e.StatusCode >= 500
}

// RetryPolicy bounds the retries of transient failures. Every wait also ends
// when the request's context does.
type RetryPolicy struct {
	MaxAttempts     uint          // including the first; 1 disables retries
	InitialInterval time.Duration // first backoff, then doubled, with ±50% jitter
	MaxInterval     time.Duration // cap on one backoff
	MaxRetryAfter   time.Duration // a longer Retry-After ends the retries at once
	MaxElapsed      time.Duration // cap on all attempts and waits together
}

// DefaultRetryPolicy keeps a Vault request well inside Vault's own request
// timeout while riding out a load balancer blip.
var DefaultRetryPolicy = RetryPolicy{
	MaxAttempts:     4,
	InitialInterval: 200 * time.Millisecond,
	MaxInterval:     3 * time.Second,
	MaxRetryAfter:   10 * time.Second,
	MaxElapsed:      45 * time.Second,
}

// HTTPExchangerOptions configure NewHTTPExchanger. Zero values take defaults.
type HTTPExchangerOptions struct {
	// AttemptTimeout bounds one HTTP attempt, body included. Default 15s.
	AttemptTimeout time.Duration
	Retry          RetryPolicy
	Logger         hclog.Logger
	// Client replaces the pooled client (for tests and the CLI); its Timeout
	// is kept. The exchanger uses a copy that never follows a redirect. Its
	// transport does its own dialing: build it on Hosts.Transport() so that
	// names resolving to loopback are refused where they are dialed.
	Client *http.Client
	Now    func() time.Time
	// Hosts says which token URLs may receive a JWT; the zero value allows
	// Pure1 and loopback only. Exchange checks it before every request, so
	// a stored token_url whose host is no longer allowed gets nothing.
	Hosts HostPolicy
	// URLField names the setting that holds the URL, in messages; default
	// token_url. TLSHint replaces the advice given when the endpoint's
	// certificate is signed by an authority not trusted (an array's own CA
	// is the config's ca_cert, not the system's trust store).
	URLField string
	TLSHint  string
}

// HTTPExchanger is the Exchanger that talks to Pure1 over HTTP. It is safe for
// concurrent use and keeps connections alive between exchanges.
type HTTPExchanger struct {
	client *http.Client
	hosts  HostPolicy
	field  string
	hint   string
	retry  RetryPolicy
	logger hclog.Logger
	now    func() time.Time
}

// maxResponseBytes caps what is read of a token response; real ones are ~1 KiB.
const maxResponseBytes = 1 << 20

// NewHTTPExchanger builds an Exchanger on the host policy's transport
// (go-cleanhttp's pooled one: proxy from HTTP(S)_PROXY/NO_PROXY, dial/TLS/idle
// timeouts, keep-alive; plus the loopback check where it dials).
func NewHTTPExchanger(opts HTTPExchangerOptions) *HTTPExchanger {
	var client *http.Client
	if opts.Client != nil {
		// A copy, so the caller's client keeps its own redirect rule.
		c := *opts.Client
		client = &c
	} else {
		// The policy's transport: a token_url whose name resolves to a
		// loopback address is refused where it is dialed.
		client = &http.Client{Transport: opts.Hosts.Transport()}
		t := opts.AttemptTimeout
		if t <= 0 {
			t = 15 * time.Second
		}
		client.Timeout = t
	}
	// A redirect would re-send the JWT, a bearer credential, to another
	// address (307/308 re-POST the body), past the host policy and maybe
	// down to plain http: answer with the 3xx instead, as a refusal. This
	// holds for every client, whoever built it.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	retry := opts.Retry
	if retry.MaxAttempts == 0 {
		retry = DefaultRetryPolicy
	}
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	field := opts.URLField
	if field == "" {
		field = "token_url"
	}
	return &HTTPExchanger{client: client, hosts: opts.Hosts, field: field, hint: opts.TLSHint, retry: retry, logger: logger, now: now}
}

// CloseIdleConnections drops the kept-alive connections to the token
// endpoint, so a mount that goes away leaves no sockets or reader goroutines
// behind. Exchanges in flight end with their contexts.
func (e *HTTPExchanger) CloseIdleConnections() { e.client.CloseIdleConnections() }

// Exchange posts the JWT to tokenURL and returns Pure1's access token.
// Transient failures are retried with capped, jittered exponential backoff;
// Retry-After is honoured up to the policy's cap. 4xx answers other than 429
// are returned at once.
func (e *HTTPExchanger) Exchange(ctx context.Context, tokenURL, subjectJWT string) (*AccessToken, error) {
	// Checked here as well as where token_url is written: the allowed hosts
	// are read at plugin start, and a config stored before they changed
	// must not get a JWT sent to a host that is no longer allowed.
	if err := e.hosts.Check(e.field, tokenURL); err != nil {
		return nil, fmt.Errorf("%w: no request was sent: %w", ErrRejected, err)
	}
	form := url.Values{
		"grant_type":         {GrantTypeExchange},
		"subject_token_type": {SubjectTokenTypeJWT},
		"subject_token":      {subjectJWT},
	}.Encode()

	b := &retryAfterBackOff{ExponentialBackOff: backoff.NewExponentialBackOff()}
	b.InitialInterval = e.retry.InitialInterval
	b.MaxInterval = e.retry.MaxInterval
	b.Multiplier = 2
	b.RandomizationFactor = 0.5

	attempts := 0
	var lastErr error
	op := func() (*AccessToken, error) {
		attempts++
		tok, err := e.attempt(ctx, tokenURL, form)
		if err == nil {
			return tok, nil
		}
		lastErr = err
		var apiErr *APIError
		switch {
		case ctx.Err() != nil, errors.Is(err, ErrBadResponse):
			return nil, backoff.Permanent(err)
		case errors.Is(err, errPermanentNet):
			return nil, backoff.Permanent(err)
		case errors.As(err, &apiErr) && !apiErr.transient():
			return nil, backoff.Permanent(err)
		case errors.As(err, &apiErr) && apiErr.RetryAfter > 0:
			if apiErr.RetryAfter > e.retry.MaxRetryAfter || !fitsDeadline(ctx, apiErr.RetryAfter) {
				// Coming back sooner than Pure1 asked would only be refused
				// again; give the caller Pure1's answer instead.
				return nil, backoff.Permanent(err)
			}
			b.next = apiErr.RetryAfter
		}
		return nil, err
	}
	tok, err := backoff.Retry(ctx, op,
		backoff.WithBackOff(b),
		backoff.WithMaxTries(e.retry.MaxAttempts),
		backoff.WithMaxElapsedTime(e.retry.MaxElapsed),
		backoff.WithNotify(func(err error, wait time.Duration) {
			e.logger.Debug("retrying Pure1 token exchange", "attempt", attempts, "wait", wait, "error", err)
		}),
	)
	switch {
	case err == nil:
		return tok, nil
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		if lastErr != nil && !errors.Is(lastErr, context.Canceled) && !errors.Is(lastErr, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: gave up after %d attempt(s) when the request ended (%w); last error: %w", ErrUnavailable, attempts, err, lastErr)
		}
		return nil, fmt.Errorf("%w: the request ended after %d attempt(s): %w", ErrUnavailable, attempts, err)
	case errors.Is(err, ErrRejected), errors.Is(err, ErrBadResponse), errors.Is(err, ErrUnavailable):
		return nil, fmt.Errorf("after %d attempt(s): %w", attempts, err)
	}
	return nil, fmt.Errorf("%w after %d attempt(s): %w", ErrUnavailable, attempts, err)
}

// retryAfterBackOff is exponential backoff that yields once to the wait the
// server asked for in Retry-After.
type retryAfterBackOff struct {
	*backoff.ExponentialBackOff
	next time.Duration
}

func (b *retryAfterBackOff) NextBackOff() time.Duration {
	if d := b.next; d > 0 {
		b.next = 0
		return d
	}
	return b.ExponentialBackOff.NextBackOff()
}

func fitsDeadline(ctx context.Context, wait time.Duration) bool {
	d, ok := ctx.Deadline()
	return !ok || time.Until(d) > wait
}

// attempt is one POST. Network errors come back unclassified (transient).
func (e *HTTPExchanger) attempt(ctx context.Context, tokenURL, form string) (tok *AccessToken, err error) {
	var resp *http.Response
	if observe := attemptObserverFrom(ctx); observe != nil {
		sent := e.now()
		defer func() { end := e.now(); observe(newAttempt(resp, end, end.Sub(sent), err)) }()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form))
	if err != nil {
		return nil, backoff.Permanent(fmt.Errorf("%w: building the request for token_url: %v", ErrRejected, redactURLError(err)))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	sent := e.now()
	resp, err = e.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrHostNotAllowed) {
			// The dialer refused the address the name resolved to.
			return nil, backoff.Permanent(fmt.Errorf("%w: POST %s: no request was sent: %w", ErrRejected, safeURL(tokenURL), redactURLError(err)))
		}
		if why := PermanentNetError(err, e.field, e.hint); why != "" {
			return nil, fmt.Errorf("%w: POST %s: %v (%w: %s)", ErrUnavailable, safeURL(tokenURL), describeNetErr(err), errPermanentNet, why)
		}
		return nil, fmt.Errorf("POST %s: %v", safeURL(tokenURL), describeNetErr(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the response from %s: %v", safeURL(tokenURL), describeNetErr(err))
	}
	if len(body) > maxResponseBytes {
		return nil, fmt.Errorf("%w: response larger than %d bytes", ErrBadResponse, maxResponseBytes)
	}
	received := e.now()
	e.logger.Trace("Pure1 token endpoint answered", "status", resp.StatusCode, "duration", received.Sub(sent))
	// expires_in counts from when Pure1 issued the token, which is after
	// the request was sent: measuring from then can only err short.
	return ParseTokenResponse(resp.StatusCode, resp.Header, body, sent, received)
}

// safeURL drops anything but scheme, host and path, in case someone put
// credentials or query parameters in token_url.
func safeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "token_url"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// errPermanentNet marks a network failure that no retry can mend.
var errPermanentNet = errors.New("not retried")

// PermanentNetError says why err will fail again however often it is tried,
// or "" when it may be transient: a certificate that does not verify, or a
// host name that does not exist. field names the URL's setting; tlsHint, when
// set, replaces the advice for an untrusted certificate authority.
func PermanentNetError(err error, field, tlsHint string) string {
	var (
		unknownCA   x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalidErr  x509.CertificateInvalidError
		verifyErr   *tls.CertificateVerificationError
		dnsErr      *net.DNSError
		certErrText = "the token endpoint's TLS certificate does not verify"
	)
	if field == "array_url" {
		certErrText = "the array's TLS certificate does not verify"
	}
	if tlsHint == "" {
		tlsHint = "check " + field + ", or add the CA to the system's trust store"
	}
	switch {
	case errors.Is(err, ErrHostNotAllowed):
		return "the address " + field + " resolved to is not allowed; no request was sent"
	case errors.As(err, &unknownCA):
		return certErrText + ": it is signed by an authority this host does not trust; " + tlsHint
	case errors.As(err, &hostErr):
		return certErrText + ": it is not valid for the host in " + field + "; check " + field
	case errors.As(err, &invalidErr), errors.As(err, &verifyErr):
		return certErrText + "; check " + field + ", " + tlsHint + ", and this host's clock"
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return "the host name in " + field + " does not exist (DNS: no such host); check " + field
	}
	return ""
}

func describeNetErr(err error) string {
	err = redactURLError(err)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out: " + err.Error()
	}
	return err.Error()
}

const maxDuration = time.Duration(math.MaxInt64)

// parseRetryAfter reads Retry-After as delta-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	// An out-of-range number saturates (ParseInt returns the limit with
	// ErrRange); multiplying it into a Duration must not wrap around to a
	// short wait, since a long one is what ends the retries.
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		switch {
		case secs < 0:
			return 0
		case secs > int64(maxDuration/time.Second):
			return maxDuration
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d.Round(time.Second)
		}
	}
	return 0
}

// trimForMessage keeps upstream text short and printable in our errors.
func trimForMessage(b []byte) string {
	s := string(bytes.ToValidUTF8(b, []byte("?")))
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut-- // never split a character: the message must stay UTF-8
		}
		s = s[:cut] + "..."
	}
	return s
}
