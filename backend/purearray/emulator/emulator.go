// Package emulator is a local stand-in for a FlashArray's REST 2 API, the
// mirror of backend/purearray as backend/pure1/emulator is of Pure1: enough
// of an array to register, use, rotate and delete API clients end to end.
//
//   - GET /api/api_version;
//   - POST /api/<2.x>/login with an api-token header, answering x-auth-token;
//   - /api/<2.x>/api-clients?names=: GET, POST (a new client is disabled; the
//     array assigns id and key_id), PATCH {"enabled": ...}, DELETE, under a
//     login session;
//   - POST /oauth2/1.0/token: the API client JWT exchange, verifying kid,
//     signature, aud, iss, sub (the user exists), exp and that the client is
//     enabled; access tokens are JWTs the emulator signs;
//   - GET /api/<2.x>/arrays with such an access token (or a session), so a
//     caller can prove a token works; a token of a deleted or disabled client
//     stops working.
//
// It serves TLS with a CA of its own (NewTLS), as arrays usually do. A
// Server is safe for concurrent use.
package emulator

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Paths served by Handler.
const (
	APIVersionPath = "/api/api_version"
	TokenPath      = "/oauth2/1.0/token"
	// APIVersion is the newest REST version the emulator offers; every 2.x
	// from 2.0 up is served alike.
	APIVersion = "2.30"
)

const (
	grantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	subjectTokenTypeJWT    = "urn:ietf:params:oauth:token-type:jwt"
	issuedTokenTypeAccess  = "urn:ietf:params:oauth:token-type:access_token"

	// DefaultAccessTokenTTL is a FlashArray API client's default.
	DefaultAccessTokenTTL = 24 * time.Hour
	maxBodyBytes          = 1 << 20
	// clockSkew is how far in the future a JWT's iat may be.
	clockSkew = 30 * time.Second
)

// MaxRoles are the roles an API client may be given.
var MaxRoles = []string{"readonly", "ops_admin", "storage_admin", "array_admin"}

// Options configure a Server. The zero value is usable.
type Options struct {
	// Users are the array's users (the sub a JWT may name); default pureuser.
	Users []string
	// APIToken is the API token of pureuser that logs in; default random.
	APIToken string
	// WrapToken answers the token endpoint as {"items":[...]}, as some
	// Purity versions do, instead of a plain OAuth answer.
	WrapToken bool
	Now       func() time.Time
	// Logger receives one line per request; nil logs nothing. Tokens, JWTs
	// and keys are never logged.
	Logger *log.Logger
}

// APIClient is an API client as the emulator holds it.
type APIClient struct {
	Name             string `json:"name"`
	ID               string `json:"id"`
	KeyID            string `json:"key_id"`
	Issuer           string `json:"issuer"`
	PublicKey        string `json:"public_key"`
	MaxRole          string `json:"max_role"`
	Enabled          bool   `json:"enabled"`
	AccessTokenTTLMS int64  `json:"access_token_ttl_in_ms"`

	pub *rsa.PublicKey
}

// Stats count what tests assert on.
type Stats struct {
	TokensIssued   int            `json:"tokens_issued"`
	TokensRefused  int            `json:"tokens_refused"`
	ArraysServed   int            `json:"arrays_served"`
	ArraysRefused  int            `json:"arrays_refused"`
	IssuedByClient map[string]int `json:"issued_by_client"`
}

// Server is one emulated array.
type Server struct {
	opts     Options
	users    map[string]bool
	apiToken string
	// signKey signs the access tokens (HS256: only the emulator verifies them).
	signKey []byte

	mu       sync.Mutex
	clients  map[string]*APIClient // by name
	sessions map[string]string     // x-auth-token -> user
	stats    Stats
}

// New builds a Server.
func New(opts Options) (*Server, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if len(opts.Users) == 0 {
		opts.Users = []string{"pureuser"}
	}
	s := &Server{
		opts:     opts,
		users:    map[string]bool{},
		apiToken: opts.APIToken,
		signKey:  []byte(randomHex(32)),
		clients:  map[string]*APIClient{},
		sessions: map[string]string{},
		stats:    Stats{IssuedByClient: map[string]int{}},
	}
	for _, u := range opts.Users {
		if u = strings.TrimSpace(u); u != "" {
			s.users[u] = true
		}
	}
	if s.apiToken == "" {
		s.apiToken = formatUUID(randomHex(16))
	}
	return s, nil
}

// APIToken is the token POST /api/2.x/login takes.
func (s *Server) APIToken() string { return s.apiToken }

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
	st.IssuedByClient = map[string]int{}
	for k, v := range s.stats.IssuedByClient {
		st.IssuedByClient[k] = v
	}
	return st
}

var versionedPath = regexp.MustCompile(`^/api/2\.([0-9]+)/(login|api-clients|arrays)$`)

// Handler serves the emulated REST API.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.opts.Now()
		rec := &statusRecorder{ResponseWriter: w, status: 200}
		r.Body = http.MaxBytesReader(rec, r.Body, maxBodyBytes)
		s.route(rec, r)
		if s.opts.Logger != nil {
			s.opts.Logger.Printf("%s %s -> %d (%s)", r.Method, r.URL.Path, rec.status, s.opts.Now().Sub(start).Round(time.Microsecond))
		}
	})
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == APIVersionPath && r.Method == http.MethodGet {
		versions := []string{"1.0", "1.19"}
		for i := 0; i <= 30; i++ {
			versions = append(versions, fmt.Sprintf("2.%d", i))
		}
		writeJSON(w, 200, map[string]any{"version": versions})
		return
	}
	if r.URL.Path == TokenPath {
		s.token(w, r)
		return
	}
	m := versionedPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		writeErrors(w, http.StatusNotFound, "", "no such endpoint")
		return
	}
	switch m[2] {
	case "login":
		s.login(w, r)
	case "api-clients":
		s.apiClients(w, r)
	case "arrays":
		s.arrays(w, r)
	}
}

// writeErrors answers in the REST 2 error shape.
func writeErrors(w http.ResponseWriter, status int, context, msg string) {
	e := map[string]string{"message": msg}
	if context != "" {
		e["context"] = context
	}
	writeJSON(w, status, map[string]any{"errors": []any{e}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeErrors(w, http.StatusMethodNotAllowed, "", "use POST")
		return
	}
	if r.Header.Get("api-token") != s.apiToken {
		writeErrors(w, http.StatusUnauthorized, "", "invalid api token")
		return
	}
	session := randomHex(24)
	s.mu.Lock()
	s.sessions[session] = "pureuser"
	s.mu.Unlock()
	w.Header().Set("x-auth-token", session)
	writeJSON(w, 200, map[string]any{"items": []any{map[string]string{"username": "pureuser"}}})
}

// authorized reports whether r carries a session of this array.
func (s *Server) authorized(r *http.Request) bool {
	tok := r.Header.Get("x-auth-token")
	if tok == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.sessions[tok]
	return ok
}

func (s *Server) apiClients(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		writeErrors(w, http.StatusUnauthorized, "", "log in first: POST /api/2.x/login with an api-token header, then send x-auth-token")
		return
	}
	name := r.URL.Query().Get("names")
	if r.Method != http.MethodGet && name == "" {
		writeErrors(w, http.StatusBadRequest, "", "names is required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.Method {
	case http.MethodGet:
		var items []APIClient
		for _, c := range s.clients {
			if name == "" || c.Name == name {
				items = append(items, *c)
			}
		}
		if name != "" && len(items) == 0 {
			writeErrors(w, http.StatusBadRequest, name, "API client does not exist.")
			return
		}
		sort.Slice(items, func(i, j int) bool { return items[i].Name < items[j].Name })
		writeJSON(w, 200, map[string]any{"items": items})
	case http.MethodPost:
		s.createClient(w, r, name)
	case http.MethodPatch:
		c, ok := s.clients[name]
		if !ok {
			writeErrors(w, http.StatusBadRequest, name, "API client does not exist.")
			return
		}
		var body struct {
			Enabled *bool `json:"enabled"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Enabled == nil {
			writeErrors(w, http.StatusBadRequest, name, "give {\"enabled\": true|false}")
			return
		}
		c.Enabled = *body.Enabled
		writeJSON(w, 200, map[string]any{"items": []APIClient{*c}})
	case http.MethodDelete:
		if _, ok := s.clients[name]; !ok {
			writeErrors(w, http.StatusBadRequest, name, "API client does not exist.")
			return
		}
		delete(s.clients, name)
		writeJSON(w, 200, map[string]any{})
	default:
		writeErrors(w, http.StatusMethodNotAllowed, "", "use GET, POST, PATCH or DELETE")
	}
}

// createClient is POST api-clients; s.mu is held.
func (s *Server) createClient(w http.ResponseWriter, r *http.Request, name string) {
	var body struct {
		Issuer    string  `json:"issuer"`
		PublicKey string  `json:"public_key"`
		MaxRole   maxRole `json:"max_role"`
		TTLMS     *int64  `json:"access_token_ttl_in_ms"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeErrors(w, http.StatusBadRequest, name, "the body is not JSON")
		return
	}
	if _, ok := s.clients[name]; ok {
		writeErrors(w, http.StatusBadRequest, name, "Name already in use.")
		return
	}
	if body.Issuer == "" {
		writeErrors(w, http.StatusBadRequest, name, "issuer is required.")
		return
	}
	known := false
	for _, r := range MaxRoles {
		known = known || r == string(body.MaxRole)
	}
	if !known {
		writeErrors(w, http.StatusBadRequest, name, "max_role must be one of "+strings.Join(MaxRoles, ", ")+".")
		return
	}
	ttl := DefaultAccessTokenTTL.Milliseconds()
	if body.TTLMS != nil {
		ttl = *body.TTLMS
		if ttl < 1000 || ttl > DefaultAccessTokenTTL.Milliseconds() {
			writeErrors(w, http.StatusBadRequest, name, "access_token_ttl_in_ms must be between 1000 and 86400000.")
			return
		}
	}
	pub, err := parseRSAPublicKey(body.PublicKey)
	if err != nil {
		writeErrors(w, http.StatusBadRequest, name, "public_key: "+err.Error())
		return
	}
	c := &APIClient{
		Name: name, ID: formatUUID(randomHex(16)), KeyID: formatUUID(randomHex(16)), Issuer: body.Issuer,
		PublicKey: body.PublicKey, MaxRole: string(body.MaxRole), AccessTokenTTLMS: ttl, pub: pub,
	}
	s.clients[name] = c
	writeJSON(w, 200, map[string]any{"items": []APIClient{*c}})
}

func parseRSAPublicKey(p string) (*rsa.PublicKey, error) {
	blk, _ := pem.Decode([]byte(p))
	if blk == nil {
		return nil, errors.New("not PEM")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok || rk.N.BitLen() < 2048 {
		return nil, errors.New("an RSA key of at least 2048 bits is required")
	}
	return rk, nil
}

// token is the API client JWT exchange.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "invalid_request", "error_description": "use POST"})
		return
	}
	refuse := func(status int, code, why string) {
		s.mu.Lock()
		s.stats.TokensRefused++
		s.mu.Unlock()
		writeJSON(w, status, map[string]string{"error": code, "error_description": why})
	}
	if err := r.ParseForm(); err != nil {
		refuse(400, "invalid_request", "the body is not a form")
		return
	}
	if r.PostForm.Get("grant_type") != grantTypeTokenExchange || r.PostForm.Get("subject_token_type") != subjectTokenTypeJWT {
		refuse(400, "unsupported_grant_type", "grant_type must be token-exchange with a jwt subject_token_type")
		return
	}
	now := s.opts.Now()
	var client *APIClient
	tok, err := jwt.Parse(r.PostForm.Get("subject_token"), func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.clients {
			if c.KeyID == kid {
				cc := *c
				client = &cc
				return c.pub, nil
			}
		}
		return nil, errors.New("no API client has this kid")
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(clockSkew))
	if err != nil {
		refuse(401, "invalid_client", "JWT validation failed: "+err.Error())
		return
	}
	claims := tok.Claims.(jwt.MapClaims)
	aud, _ := claims["aud"].(string)
	iss, _ := claims["iss"].(string)
	sub, _ := claims["sub"].(string)
	switch {
	case aud != client.ID:
		refuse(401, "invalid_client", "aud is not the API client's id")
		return
	case iss != client.Issuer:
		refuse(401, "invalid_client", "iss is not the API client's issuer")
		return
	case !s.users[sub]:
		refuse(401, "invalid_grant", "sub names no user of this array")
		return
	case !client.Enabled:
		refuse(401, "invalid_client", "the API client is disabled")
		return
	}
	ttl := time.Duration(client.AccessTokenTTLMS) * time.Millisecond
	access, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "emulated-flasharray", "sub": sub, "aud": client.ID, "api_client": client.Name,
		"max_role": client.MaxRole, "iat": now.Unix(), "exp": now.Add(ttl).Unix(), "jti": randomHex(8),
	}).SignedString(s.signKey)
	if err != nil {
		refuse(500, "server_error", "signing failed")
		return
	}
	s.mu.Lock()
	s.stats.TokensIssued++
	s.stats.IssuedByClient[client.Name]++
	s.mu.Unlock()
	answer := map[string]any{
		"access_token": access, "issued_token_type": issuedTokenTypeAccess,
		"token_type": "Bearer", "expires_in": int64(ttl / time.Second),
	}
	if s.opts.WrapToken {
		writeJSON(w, 200, map[string]any{"items": []any{answer}})
		return
	}
	writeJSON(w, 200, answer)
}

// arrays answers only to a live access token of an enabled client that still
// exists, or to a session.
func (s *Server) arrays(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeErrors(w, http.StatusMethodNotAllowed, "", "use GET")
		return
	}
	ok := s.authorized(r)
	if bearer, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); found && !ok {
		ok = s.validAccessToken(bearer) == nil
	}
	s.mu.Lock()
	if ok {
		s.stats.ArraysServed++
	} else {
		s.stats.ArraysRefused++
	}
	s.mu.Unlock()
	if !ok {
		writeErrors(w, http.StatusUnauthorized, "", "a valid access token (Authorization: Bearer) or x-auth-token is required")
		return
	}
	writeJSON(w, 200, map[string]any{"items": []any{map[string]any{
		"name": "emulated-flasharray", "id": "0b5c5fa1-95fa-4bc5-c7d1-23a2b2f3c4d5", "os": "Purity//FA", "version": "6.5.0",
	}}})
}

func (s *Server) validAccessToken(raw string) error {
	tok, err := jwt.Parse(raw, func(*jwt.Token) (any, error) { return s.signKey, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(s.opts.Now), jwt.WithExpirationRequired())
	if err != nil {
		return err
	}
	name, _ := tok.Claims.(jwt.MapClaims)["api_client"].(string)
	aud, _ := tok.Claims.(jwt.MapClaims)["aud"].(string)
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[name]
	if !ok || c.ID != aud || !c.Enabled {
		return errors.New("the token's API client is gone or disabled")
	}
	return nil
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails: since Go 1.24 it crashes the program instead
	return hex.EncodeToString(b)
}

// formatUUID shapes 32 hex digits like the UUIDs arrays use for ids.
func formatUUID(h string) string {
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// maxRole is max_role as a FlashArray takes it (a string) or as a FlashBlade
// does (a reference, {"name": role}); the emulator accepts both.
type maxRole string

func (m *maxRole) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*m = maxRole(s)
		return nil
	}
	var ref struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		return fmt.Errorf("max_role is neither a role name nor {\"name\": role}: %w", err)
	}
	*m = maxRole(ref.Name)
	return nil
}
