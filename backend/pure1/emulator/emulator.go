// Package emulator is a local, in-process stand-in for the Pure Storage Pure1
// REST API. Pure1 cannot be reached from development or CI environments, so the
// plugin's token exchange is exercised against this emulator instead.
//
// The emulator reproduces the parts of Pure1 the plugin depends on:
//
//   - POST /oauth2/1.0/token: the RFC 8693 token exchange, validating the
//     client's RS256 JWT as strictly as Pure1 does and answering with Pure1's
//     status codes and error bodies;
//   - GET /api/<version>/arrays for 1.0 … 1.5 and 1.latest: the arrays
//     collection, with Pure1's filter, sort, ids, names, fqdns, limit, offset
//     and continuation_token, as Pure's Python SDK calls it. It accepts only
//     access tokens this emulator issued, so callers can prove a token works;
//   - rate limiting per organisation (429 with X-RateLimit-* headers).
//
// On top of that it offers an admin API under /emulator/ (not part of Pure1)
// to register applications, inject faults into the token endpoint and read
// counters, so tests can drive failure modes Pure1 only shows in production.
//
// A Server is safe for concurrent use.
package emulator

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Routes served by Handler. They are exported so clients and scripts do not
// hard-code them in several places.
const (
	TokenPath        = "/oauth2/1.0/token"
	ArraysPath       = "/api/1.latest/arrays" // ArraysPathFor gives the other versions
	ApplicationsPath = "/emulator/applications"
	FaultsPath       = "/emulator/faults"
	StatsPath        = "/emulator/stats"
	StatsResetPath   = "/emulator/stats/reset"
	HealthPath       = "/emulator/health"
)

// Wire constants of Pure1's token exchange.
const (
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	SubjectTokenTypeJWT    = "urn:ietf:params:oauth:token-type:jwt"
	IssuedTokenTypeAccess  = "urn:ietf:params:oauth:token-type:access_token"
)

const (
	// DefaultOrg is the org claim placed in access tokens when Options.Org is empty.
	DefaultOrg = "emulated-org"
	// DefaultTokenLifetime is Pure1's access token lifetime (expires_in 35999).
	DefaultTokenLifetime = 35999 * time.Second
	// DefaultMaxRole is the role given to applications registered without one.
	DefaultMaxRole = "viewer"

	// maxBodyBytes caps every request body; Pure1 requests are tiny, and an
	// unbounded body would let a buggy client exhaust the emulator's memory.
	maxBodyBytes = 1 << 20
)

// Options configures a Server. The zero value is usable.
type Options struct {
	Org           string           // org claim; default "emulated-org"
	TokenLifetime time.Duration    // default 35999s; must be at least 1s
	Now           func() time.Time // default time.Now; lets tests control the clock
	// Logger receives one line per request (method, path, status, app id,
	// duration). nil disables logging. JWTs, tokens and keys are never logged.
	Logger *log.Logger
	// RateLimit is the number of token requests per second allowed per org.
	// 0 means unlimited; 429 then comes only from injected faults.
	RateLimit int
	// Arrays is how many arrays the resource API lists; default 1. More make
	// paging, filters and sorts visible.
	Arrays int
}

// Stats are the emulator's counters, for tests that assert how a client
// behaved (how many exchanges, how much concurrency).
type Stats struct {
	TokenRequests int64 `json:"token_requests"` // every POST to the token endpoint
	TokensIssued  int64 `json:"tokens_issued"`  // successful, validated exchanges
	Rejected      int64 `json:"rejected"`       // 400/401 validation answers (not injected faults)
	RateLimited   int64 `json:"rate_limited"`   // 429 answers from the RateLimit option
	FaultsServed  int64 `json:"faults_served"`  // token requests that consumed an injected fault
	InFlight      int64 `json:"in_flight"`      // token requests being handled right now
	MaxInFlight   int64 `json:"max_in_flight"`  // high-water mark of InFlight
	APIRequests   int64 `json:"api_requests"`   // requests to the resource API
}

// counters holds Stats as atomics so hot paths never take a lock.
type counters struct {
	tokenRequests, tokensIssued, rejected, rateLimited atomic.Int64
	faultsServed, inFlight, maxInFlight, apiRequests   atomic.Int64
}

// Server is a Pure1 emulator. Create it with New and serve Handler().
type Server struct {
	org      string
	lifetime time.Duration
	now      func() time.Time
	logger   *log.Logger
	limit    int

	// key signs the access tokens; it is generated per Server so that tokens
	// from one emulator run are never accepted by another.
	key    *rsa.PrivateKey
	arrays []Array // fixed at New; read without a lock

	appsMu   sync.RWMutex
	apps     map[string]*application
	appOrder []string // registration order, so listings are stable

	faultsMu sync.Mutex
	faults   []Fault // FIFO; the head's Count is decremented as it is served

	rateMu  sync.Mutex
	windows map[string]rateWindow // per org

	stats counters
}

// New creates a Server with a fresh RSA signing key.
func New(opts Options) (*Server, error) {
	if opts.Org == "" {
		opts.Org = DefaultOrg
	}
	if opts.TokenLifetime == 0 {
		opts.TokenLifetime = DefaultTokenLifetime
	}
	if opts.TokenLifetime < time.Second {
		return nil, fmt.Errorf("emulator: token lifetime %v is too short; use at least 1s (Pure1 uses %v)", opts.TokenLifetime, DefaultTokenLifetime)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RateLimit < 0 {
		return nil, fmt.Errorf("emulator: rate limit %d is negative; use 0 for unlimited", opts.RateLimit)
	}
	if opts.Arrays == 0 {
		opts.Arrays = 1
	}
	if opts.Arrays < 0 || opts.Arrays > 10000 {
		return nil, fmt.Errorf("emulator: %d arrays; use 1 to 10000", opts.Arrays)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("emulator: generating signing key: %w", err)
	}
	id, err := randomUUID()
	if err != nil {
		return nil, err
	}
	arrays, err := newArrays(opts.Arrays, id)
	if err != nil {
		return nil, err
	}
	return &Server{
		org:      opts.Org,
		lifetime: opts.TokenLifetime,
		now:      opts.Now,
		logger:   opts.Logger,
		limit:    opts.RateLimit,
		key:      key,
		arrays:   arrays,
		apps:     make(map[string]*application),
		windows:  make(map[string]rateWindow),
	}, nil
}

// Handler returns the HTTP handler serving Pure1's routes and the admin API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	// Patterns carry no method so that each handler can answer a wrong method
	// with a JSON 405 in its own API's error style, rather than the mux's text.
	mux.HandleFunc(TokenPath, s.handleToken)
	mux.HandleFunc(arraysPattern, s.handleArrays)
	mux.HandleFunc(ApplicationsPath, s.handleApplications)
	mux.HandleFunc(ApplicationsPath+"/{id}", s.handleApplication)
	mux.HandleFunc(FaultsPath, s.handleFaults)
	mux.HandleFunc(StatsPath, s.handleStats)
	mux.HandleFunc(StatsResetPath, s.handleStatsReset)
	mux.HandleFunc(HealthPath, s.handleHealth)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, adminError{Error: fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)})
	})
	return s.withLogging(mux)
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		TokenRequests: c.tokenRequests.Load(),
		TokensIssued:  c.tokensIssued.Load(),
		Rejected:      c.rejected.Load(),
		RateLimited:   c.rateLimited.Load(),
		FaultsServed:  c.faultsServed.Load(),
		InFlight:      c.inFlight.Load(),
		MaxInFlight:   c.maxInFlight.Load(),
		APIRequests:   c.apiRequests.Load(),
	}
}

// ResetStats zeroes the counters. InFlight is a live gauge, not a counter, so
// it is kept, and MaxInFlight restarts from it.
func (s *Server) ResetStats() {
	c := &s.stats
	c.tokenRequests.Store(0)
	c.tokensIssued.Store(0)
	c.rejected.Store(0)
	c.rateLimited.Store(0)
	c.faultsServed.Store(0)
	c.apiRequests.Store(0)
	c.maxInFlight.Store(c.inFlight.Load())
}

// enterFlight records a token request starting and raises the high-water mark.
func (s *Server) enterFlight() {
	n := s.stats.inFlight.Add(1)
	for {
		m := s.stats.maxInFlight.Load()
		if n <= m || s.stats.maxInFlight.CompareAndSwap(m, n) {
			return
		}
	}
}

func (s *Server) leaveFlight() { s.stats.inFlight.Add(-1) }

// ---- logging ---------------------------------------------------------------

// reqInfo carries what handlers learn about a request to the access log.
// Only non-secret facts go here: never tokens, JWTs or keys.
type reqInfo struct {
	appID string
	note  string // e.g. the fault served or why a request was rejected
}

func (ri *reqInfo) addNote(n string) {
	if ri.note != "" {
		ri.note += " "
	}
	ri.note += n
}

type reqInfoKey struct{}

// infoFrom returns the request's log record; it is never nil so handlers can
// write to it unconditionally.
func infoFrom(ctx context.Context) *reqInfo {
	if ri, ok := ctx.Value(reqInfoKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

// statusRecorder remembers the status code for the access log. Unwrap lets
// http.ResponseController reach the real writer for Flush and Hijack, which
// the slow_body and reset faults need.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) withLogging(next http.Handler) http.Handler {
	if s.logger == nil {
		// Still attach a reqInfo so handlers behave identically.
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, &reqInfo{})))
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := &reqInfo{}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, ri)))
		status := "-" // hijacked (reset fault) or client went away before a response
		if rec.status != 0 {
			status = fmt.Sprint(rec.status)
		}
		app := ri.appID
		if app == "" {
			app = "-"
		}
		line := fmt.Sprintf("%s %s %s app=%s %s", r.Method, r.URL.Path, status, app, time.Since(start).Round(time.Microsecond))
		if ri.note != "" {
			line += " " + ri.note
		}
		s.logger.Print(line)
	})
}

// ---- small helpers ---------------------------------------------------------

// adminError is the error body of the admin API and of unknown routes.
type adminError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only emulator-defined types are marshalled, so this is a bug.
		http.Error(w, "emulator: encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// allowMethods answers 405 unless r uses one of methods.
func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	allow := ""
	for i, m := range methods {
		if i > 0 {
			allow += ", "
		}
		allow += m
	}
	w.Header().Set("Allow", allow)
	writeJSON(w, http.StatusMethodNotAllowed, adminError{Error: fmt.Sprintf("method %s not allowed on %s; use %s", r.Method, r.URL.Path, allow)})
	return false
}

// sleepCtx sleeps for d or until ctx is done, reporting whether it slept fully.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func randomUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("emulator: reading random bytes: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

// errorsAsMaxBytes reports whether err comes from http.MaxBytesReader.
func errorsAsMaxBytes(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}
