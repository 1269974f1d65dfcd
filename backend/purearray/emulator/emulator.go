// Package emulator is a local stand-in for a FlashArray's or a FlashBlade's
// REST 2 API, the mirror of backend/purearray as backend/pure1/emulator is of
// Pure1. Each kind answers only its own wire, as Pure's own Python SDK
// (py-pure-client 1.90.0: FlashArray REST 2.30, FlashBlade REST 2.17) speaks
// it, and refuses what an array would refuse, so a client that passes here
// has been held to Pure's code and not to the emulator's good will.
//
// Both kinds:
//   - GET /api/api_version, no auth;
//   - /api/<2.x>/api-clients?names=|ids=: GET (all without names), POST (a
//     new client is disabled; the array assigns id and key_id), PATCH,
//     DELETE, under a login session (x-auth-token) or an array_admin access
//     token;
//   - POST /oauth2/1.0/token: the API client JWT exchange (form-encoded),
//     verifying kid, signature, aud, iss, sub (a user of the array), exp and
//     that the client is enabled;
//   - GET /api/<2.x>/arrays with a session or an access token;
//   - /api/<2.x>/admins (GET, POST, DELETE) and /api/<2.x>/admins/api-tokens
//     (GET, POST, DELETE): local users and their API tokens, which log in
//     with the user's role (admins.go).
//
// Where they differ (see kind.go): the api_version key ("version" on a
// FlashArray, "versions" on a FlashBlade), the login and logout paths
// (versioned on a FlashArray, /api/login and /api/logout on a FlashBlade),
// max_role (a string on a FlashArray, {"name": role} on a FlashBlade), API
// client names, the arrays item, and how admins and their tokens are named
// (ids and admin_names/admin_ids on a FlashBlade only).
//
// JSON bodies need Content-Type: application/json (else 415), unknown fields
// and unknown query parameters are refused with 400, errors come in the REST
// 2 shape {"errors":[{"message":..,"context":..}]}.
//
// A loopback admin API under /emulator/ (admin.go) shows stats and clients
// and injects faults at each step (faults.go). It serves TLS with a CA of its
// own (NewTLS), as arrays usually do. A Server is safe for concurrent use.
package emulator

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Paths served by Handler.
const (
	APIVersionPath = "/api/api_version"
	TokenPath      = "/oauth2/1.0/token"
	// FlashBladeLoginPath and FlashBladeLogoutPath are unversioned: Pure's
	// FlashBlade client posts there. A FlashArray logs in at
	// /api/<ver>/login and out at /api/<ver>/logout.
	FlashBladeLoginPath  = "/api/login"
	FlashBladeLogoutPath = "/api/logout"
	// APIVersion is the newest REST version a FlashArray offers, kept for
	// callers that predate kinds; see Server.APIVersion.
	APIVersion = FlashArrayAPIVersion
)

const (
	grantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	subjectTokenTypeJWT    = "urn:ietf:params:oauth:token-type:jwt"
	issuedTokenTypeAccess  = "urn:ietf:params:oauth:token-type:access_token"

	// DefaultAccessTokenTTL is an API client's default and its maximum.
	DefaultAccessTokenTTL = 24 * time.Hour
	// minAccessTokenTTL is the shortest access_token_ttl_in_ms an array
	// takes (Pure's Ansible collections: 1 second to 1 day).
	minAccessTokenTTL = time.Second
	maxBodyBytes      = 1 << 20
	// clockSkew is how far in the future a JWT's iat may be.
	clockSkew = 30 * time.Second
	// adminUser is the array's built-in administrator, whose API token
	// New makes.
	adminUser = "pureuser"
	// roleArrayAdmin may manage API clients.
	roleArrayAdmin = "array_admin"
)

// MaxRoles are the roles an API client may be given, on both kinds.
var MaxRoles = []string{"readonly", "ops_admin", "storage_admin", roleArrayAdmin}

// Options configure a Server. The zero value is a FlashArray.
type Options struct {
	// Kind is FlashArray ("flasharray", the default) or FlashBlade
	// ("flashblade").
	Kind string
	// Users are the local users the array starts with, besides the
	// built-in pureuser (which may be listed too): names a JWT's sub may
	// give, with role array_admin and no API token.
	Users []string
	// APIToken is the API token of pureuser that logs in; default random
	// (a FlashBlade's starts with "T-", as its tokens do). It never expires.
	APIToken string
	// MaxUsers is how many local users, pureuser included, the array holds
	// before POST admins is refused; 0 means DefaultMaxUsers.
	MaxUsers int
	// WrapToken answers the token endpoint as {"items":[...]}, as some
	// Purity versions do, instead of a plain OAuth answer.
	WrapToken bool
	Now       func() time.Time
	// Logger receives one line per request; nil logs nothing. Tokens, JWTs
	// and keys are never logged.
	Logger *log.Logger
}

// APIClient is an API client as the emulator holds it. MaxRole is the role's
// name on both kinds; the wire shows it in the kind's form.
type APIClient struct {
	Name             string    `json:"name"`
	ID               string    `json:"id"`
	KeyID            string    `json:"key_id"`
	Issuer           string    `json:"issuer"`
	PublicKey        string    `json:"public_key"`
	MaxRole          string    `json:"max_role"`
	Enabled          bool      `json:"enabled"`
	AccessTokenTTLMS int64     `json:"access_token_ttl_in_ms"`
	Created          time.Time `json:"created"`

	pub *rsa.PublicKey
}

// Stats count what tests assert on.
type Stats struct {
	Kind           string         `json:"kind"`
	TokensIssued   int            `json:"tokens_issued"`
	TokensRefused  int            `json:"tokens_refused"`
	ArraysServed   int            `json:"arrays_served"`
	ArraysRefused  int            `json:"arrays_refused"`
	IssuedByClient map[string]int `json:"issued_by_client"`
	// OpenSessions are logins not yet logged out; a client that always
	// logs out leaves 0.
	OpenSessions   int `json:"open_sessions"`
	SessionsOpened int `json:"sessions_opened"`
	Logouts        int `json:"logouts"`
	// Clients is the number of API clients on the array.
	Clients     int `json:"clients"`
	FaultsFired int `json:"faults_fired"`
	// Users is the number of local users, pureuser included; the others
	// count what admins and admins/api-tokens changed.
	Users            int `json:"users"`
	UsersCreated     int `json:"users_created"`
	UsersDeleted     int `json:"users_deleted"`
	APITokensCreated int `json:"api_tokens_created"`
	// APITokensDeleted counts tokens deleted, by DELETE admins/api-tokens
	// or with their user.
	APITokensDeleted int `json:"api_tokens_deleted"`
	// LoginsByUser counts logins by whose API token logged in;
	// ExpiredTokenLogins the logins refused because the token had expired.
	LoginsByUser       map[string]int `json:"logins_by_user"`
	ExpiredTokenLogins int            `json:"expired_token_logins"`
	// SessionsEndedByUserDelete are sessions that ended because their user
	// was deleted, not logged out.
	SessionsEndedByUserDelete int `json:"sessions_ended_by_user_delete"`
	// Requests and Refused count requests by step (see Steps; "other" for
	// any other path), Refused those answered 4xx by the array itself (not
	// by an injected fault).
	Requests map[string]int `json:"requests"`
	Refused  map[string]int `json:"refused"`
}

// session is one login.
type session struct {
	user string
}

// Server is one emulated array.
type Server struct {
	opts Options
	kind *kind
	// signKey signs the access tokens (HS256: only the emulator verifies them).
	signKey []byte
	arrayID string

	mu       sync.Mutex
	clients  map[string]*APIClient // by name
	sessions map[string]session    // x-auth-token -> session
	users    map[string]*localUser // by name
	tokens   map[string]string     // API token -> user name
	stats    Stats

	faultsMu sync.Mutex
	faults   []Fault
}

// New builds a Server.
func New(opts Options) (*Server, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Kind == "" {
		opts.Kind = FlashArray
	}
	k := kinds[opts.Kind]
	if k == nil {
		return nil, fmt.Errorf("kind %q is not an array kind: use %s or %s", opts.Kind, FlashArray, FlashBlade)
	}
	if len(opts.Users) == 0 {
		opts.Users = []string{adminUser}
	}
	if opts.MaxUsers == 0 {
		opts.MaxUsers = DefaultMaxUsers
	}
	s := &Server{
		opts:     opts,
		kind:     k,
		signKey:  []byte(randomHex(32)),
		arrayID:  formatUUID(randomHex(16)),
		clients:  map[string]*APIClient{},
		sessions: map[string]session{},
		users:    map[string]*localUser{},
		tokens:   map[string]string{},
		stats: Stats{IssuedByClient: map[string]int{}, Requests: map[string]int{}, Refused: map[string]int{},
			LoginsByUser: map[string]int{}},
	}
	named := 0
	pure := s.addUser(adminUser, roleArrayAdmin, true)
	for _, u := range opts.Users {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		named++
		if s.users[u] != nil {
			continue
		}
		if !localUserName.MatchString(u) {
			return nil, fmt.Errorf("user %q: a %s local user name has %s", u, k.product, localUserNameRule)
		}
		s.addUser(u, roleArrayAdmin, false)
	}
	if named == 0 {
		return nil, fmt.Errorf("users %q names no user: give at least one, e.g. %s", strings.Join(opts.Users, ","), adminUser)
	}
	if opts.MaxUsers < len(s.users) {
		return nil, fmt.Errorf("max users %d is fewer than the %d users the array starts with: give at least %d", opts.MaxUsers, len(s.users), len(s.users))
	}
	tok := opts.APIToken
	if tok == "" {
		tok = k.tokenPrefix + formatUUID(randomHex(16))
	}
	s.setToken(pure, tok, s.opts.Now(), 0)
	return s, nil
}

// Kind is the array's kind: "flasharray" or "flashblade".
func (s *Server) Kind() string { return s.kind.name }

// APIVersion is the newest REST version this array offers (2.30 on a
// FlashArray, 2.17 on a FlashBlade).
func (s *Server) APIVersion() string { return s.kind.newest }

// APIToken is pureuser's API token, which the login endpoint takes: the
// one New made, or the one a POST admins/api-tokens made since ("" while
// pureuser has none).
func (s *Server) APIToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.users[adminUser].token; t != nil {
		return t.secret
	}
	return ""
}

// Clients lists the API clients, by name.
func (s *Server) Clients() []APIClient {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]APIClient, 0, len(s.clients))
	for _, c := range s.clients {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Kind = s.kind.name
	st.IssuedByClient = copyCounts(s.stats.IssuedByClient)
	st.Requests = copyCounts(s.stats.Requests)
	st.Refused = copyCounts(s.stats.Refused)
	st.LoginsByUser = copyCounts(s.stats.LoginsByUser)
	st.OpenSessions = len(s.sessions)
	st.Clients = len(s.clients)
	st.Users = len(s.users)
	return st
}

// OpenSessions is the number of logins not logged out.
func (s *Server) OpenSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func copyCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Handler serves the emulated REST API and the /emulator/ admin API.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.opts.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		r.Body = http.MaxBytesReader(rec, r.Body, maxBodyBytes)
		// Arrays echo the caller's X-Request-ID (Pure's SDK sends one and
		// keeps it for the next page); one is made up when none came.
		reqID := r.Header.Get("X-Request-ID")
		if reqID == "" {
			reqID = formatUUID(randomHex(16))
		}
		rec.Header().Set("X-Request-ID", reqID)
		step := s.serve(rec, r)
		if s.opts.Logger != nil {
			note := ""
			if rec.fault != "" {
				note = " fault " + rec.fault
			}
			s.opts.Logger.Printf("%s %s [%s] -> %d%s (%s)", r.Method, r.URL.Path, step, rec.status, note, s.opts.Now().Sub(start).Round(time.Microsecond))
		}
	})
}

// serve routes r, applying a fault queued for its step, and reports the
// step for the log.
func (s *Server) serve(w *statusRecorder, r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, adminPrefix) {
		s.admin(w, r)
		return "admin"
	}
	step, h := s.route(r)
	s.mu.Lock()
	s.stats.Requests[step]++
	s.mu.Unlock()
	if f, ok := s.nextFault(step); ok {
		w.fault = f.Mode
		s.mu.Lock()
		s.stats.FaultsFired++
		s.mu.Unlock()
		s.serveFault(w, r, step, f, h)
		return step
	}
	h(w, r)
	if w.status >= 400 && w.status < 500 {
		s.mu.Lock()
		s.stats.Refused[step]++
		s.mu.Unlock()
	}
	return step
}

// route picks the handler of r and names its step.
func (s *Server) route(r *http.Request) (string, http.HandlerFunc) {
	p := r.URL.Path
	switch p {
	case APIVersionPath:
		return StepAPIVersion, s.apiVersion
	case TokenPath:
		return StepToken, s.token
	case FlashBladeLoginPath, FlashBladeLogoutPath:
		step := StepLogin
		if p == FlashBladeLogoutPath {
			step = StepLogout
		}
		if s.kind.versionedLogin {
			// A FlashArray has no unversioned login: to it this is a path
			// like any other it does not know.
			return StepOther, s.notFound
		}
		return step, s.sessionHandler(step)
	}
	ver, resource, ok := splitVersioned(p)
	if !ok {
		return StepOther, s.notFound
	}
	if !s.kind.offers(ver) || !strings.HasPrefix(ver, "2.") {
		return StepOther, func(w http.ResponseWriter, r *http.Request) {
			writeErrors(w, http.StatusNotFound, ver, fmt.Sprintf("REST version %s is not supported by this %s; GET %s lists the versions it offers (newest %s).", ver, s.kind.product, APIVersionPath, s.kind.newest))
		}
	}
	switch resource {
	case "login", "logout":
		step := StepLogin
		if resource == "logout" {
			step = StepLogout
		}
		if !s.kind.versionedLogin {
			return StepOther, func(w http.ResponseWriter, r *http.Request) {
				writeErrors(w, http.StatusBadRequest, p, fmt.Sprintf("A %s has no %s at a REST version: POST %s.", s.kind.product, resource, "/api/"+resource))
			}
		}
		return step, s.sessionHandler(step)
	case "api-clients":
		switch r.Method {
		case http.MethodGet:
			return StepGet, s.getClients
		case http.MethodPost:
			return StepCreate, s.createClient
		case http.MethodPatch:
			return StepPatch, s.patchClient
		case http.MethodDelete:
			return StepDelete, s.deleteClient
		}
		return StepOther, methodNotAllowed(http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete)
	case "arrays":
		return StepArrays, s.arrays
	case "admins":
		switch r.Method {
		case http.MethodGet:
			return StepAdminsGet, s.getAdmins
		case http.MethodPost:
			return StepAdminsPost, s.postAdmins
		case http.MethodDelete:
			return StepAdminsDelete, s.deleteAdmins
		}
		// PATCH admins (role, password, public key) exists on arrays but
		// is not played here.
		return StepOther, methodNotAllowed(http.MethodGet, http.MethodPost, http.MethodDelete)
	case "admins/api-tokens":
		switch r.Method {
		case http.MethodGet:
			return StepAPITokensGet, s.getAPITokens
		case http.MethodPost:
			return StepAPITokensPost, s.postAPITokens
		case http.MethodDelete:
			return StepAPITokensDelete, s.deleteAPITokens
		}
		return StepOther, methodNotAllowed(http.MethodGet, http.MethodPost, http.MethodDelete)
	}
	return StepOther, s.notFound
}

// splitVersioned splits /api/<ver>/<resource>.
func splitVersioned(p string) (ver, resource string, ok bool) {
	rest, found := strings.CutPrefix(p, "/api/")
	if !found {
		return "", "", false
	}
	ver, resource, found = strings.Cut(rest, "/")
	if !found || ver == "" || resource == "" {
		return "", "", false
	}
	return ver, resource, true
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	writeErrors(w, http.StatusNotFound, r.URL.Path, fmt.Sprintf("No such endpoint on a %s.", s.kind.product))
}

func methodNotAllowed(methods ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", strings.Join(methods, ", "))
		writeErrors(w, http.StatusMethodNotAllowed, r.Method, "Use "+strings.Join(methods, ", ")+".")
	}
}

// allowMethods answers 405 unless r uses one of methods.
func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	if slices.Contains(methods, r.Method) {
		return true
	}
	methodNotAllowed(methods...)(w, r)
	return false
}

func (s *Server) apiVersion(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{s.kind.versionsKey: s.kind.versions})
}

// apiError is one entry of the REST 2 error body.
type apiError struct {
	Context string `json:"context,omitempty"`
	Message string `json:"message"`
}

// writeErrors answers in the REST 2 error shape. A 403 or 429 also carries
// a top-level message: Pure's SDK reads those two as its API gateway writes
// them ({"message": ...}).
func writeErrors(w http.ResponseWriter, status int, context, msg string) {
	body := map[string]any{"errors": []apiError{{Context: context, Message: msg}}}
	if status == http.StatusForbidden || status == http.StatusTooManyRequests {
		body["message"] = msg
	}
	writeJSON(w, status, body)
}

func writeErrorList(w http.ResponseWriter, status int, errs []apiError) {
	writeJSON(w, status, map[string]any{"errors": errs})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only emulator-built values are marshalled, so this is a bug.
		http.Error(w, "emulator: encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// statusRecorder remembers the status for the log and the refusal count.
type statusRecorder struct {
	http.ResponseWriter
	status int
	fault  string
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (hijack, flush).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails: since Go 1.24 it crashes the program instead
	return hex.EncodeToString(b)
}

// formatUUID shapes 32 hex digits like the UUIDs arrays use for ids.
func formatUUID(h string) string {
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
