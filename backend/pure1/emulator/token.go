package emulator

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// invalidIdentity is Pure1's error_description for every 401, whatever the
	// actual cause, so clients cannot probe which check failed. The emulator
	// logs the real reason instead.
	invalidIdentity = "Invalid identity: JWT validation failed."

	// maxIatSkew is how far in the future Pure1 tolerates iat.
	maxIatSkew = 60 * time.Second
	// maxExpAhead catches exp given in milliseconds: such values lie centuries
	// ahead, while no sane client asks for a JWT valid for ten years.
	maxExpAhead = 10 * 365 * 24 * time.Hour
)

// allowedClaims are the only claims Pure1 accepts in a client JWT.
var allowedClaims = map[string]bool{"iss": true, "iat": true, "exp": true}

// oauthError is the RFC 6749 error body Pure1's token endpoint returns.
type oauthError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// tokenResponse is Pure1's successful token exchange answer. The optional
// fields exist so faults can drop or zero them.
type tokenResponse struct {
	AccessToken     string `json:"access_token,omitempty"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       *int64 `json:"expires_in,omitempty"`
}

func (s *Server) tokenResponse(accessToken string) tokenResponse {
	exp := int64(s.lifetime / time.Second)
	return tokenResponse{
		AccessToken:     accessToken,
		IssuedTokenType: IssuedTokenTypeAccess,
		TokenType:       "Bearer",
		ExpiresIn:       &exp,
	}
}

// rejection is a validation failure: status and public description for the
// client, reason for the log only.
type rejection struct {
	status int
	desc   string
	reason string
}

func (r *rejection) Error() string { return r.reason }

// badRequest is a 400 invalid_request: the request itself is malformed, and
// Pure1 says what is wrong.
func badRequest(format string, a ...any) *rejection {
	d := fmt.Sprintf(format, a...)
	return &rejection{status: http.StatusBadRequest, desc: d, reason: d}
}

// badIdentity is a 401 invalid_client with Pure1's fixed, uninformative
// description; reason goes to the log.
func badIdentity(format string, a ...any) *rejection {
	return &rejection{status: http.StatusUnauthorized, desc: invalidIdentity, reason: fmt.Sprintf(format, a...)}
}

func noStore(w http.ResponseWriter) {
	// RFC 6749 §5.1: token endpoint responses must not be cached.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, oauthError{Error: "invalid_request", ErrorDescription: fmt.Sprintf("Method %s not allowed; use POST.", r.Method)})
		return
	}
	s.stats.tokenRequests.Add(1)
	s.enterFlight()
	defer s.leaveFlight()

	ri := infoFrom(r.Context())
	if f, ok := s.nextFault(); ok {
		s.stats.faultsServed.Add(1)
		ri.addNote("fault=" + f.Kind)
		if s.serveFault(w, r, f) {
			return
		}
	}

	app, rej := s.exchange(w, r)
	if app != nil {
		ri.appID = app.ID
	}
	if rej != nil {
		s.stats.rejected.Add(1)
		ri.addNote("rejected: " + rej.reason)
		noStore(w)
		code := "invalid_request"
		if rej.status == http.StatusUnauthorized {
			code = "invalid_client"
		}
		writeJSON(w, rej.status, oauthError{Error: code, ErrorDescription: rej.desc})
	}
}

// exchange validates the token request and, if it is acceptable, writes the
// response itself. It returns the application once identified (for the log)
// and a rejection for the caller to write.
func (s *Server) exchange(w http.ResponseWriter, r *http.Request) (*application, *rejection) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, badRequest("Content-Type must be application/x-www-form-urlencoded.")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	if err := r.ParseForm(); err != nil {
		if errorsAsMaxBytes(err) {
			return nil, badRequest("Request body exceeds %d bytes.", maxBodyBytes)
		}
		return nil, badRequest("Malformed form body.")
	}
	form := r.PostForm
	for _, f := range []struct{ name, want string }{
		{"grant_type", GrantTypeTokenExchange},
		{"subject_token_type", SubjectTokenTypeJWT},
		{"subject_token", ""},
	} {
		vals := form[f.name]
		switch {
		case len(vals) == 0 || vals[0] == "":
			return nil, badRequest("Missing required parameter: %s.", f.name)
		case len(vals) > 1:
			return nil, badRequest("Parameter %s must be given once.", f.name)
		case f.want != "" && vals[0] != f.want:
			return nil, badRequest("Unsupported %s; expected %s.", f.name, f.want)
		}
	}

	tok, rej := parseClientJWT(form.Get("subject_token"))
	if rej != nil {
		return nil, rej
	}
	var iss string
	if err := json.Unmarshal(tok.claims["iss"], &iss); err != nil || iss == "" {
		return nil, badIdentity("iss missing or not a string")
	}
	app, ok := s.lookupApp(iss)
	if !ok {
		return nil, badIdentity("unknown iss (no such application)")
	}

	// The rate limit is per org, so it applies once the caller's org is known.
	if ok, remaining, reset := s.takeRateToken(s.org); !ok {
		s.stats.rateLimited.Add(1)
		setRateLimitHeaders(w.Header(), s.limit, 0, reset)
		w.Header().Set("Retry-After", reset)
		noStore(w)
		writeJSON(w, http.StatusTooManyRequests, oauthError{Error: "rate_limit_exceeded", ErrorDescription: "Rate limit exceeded. Retry later."})
		infoFrom(r.Context()).addNote("rate limited")
		return app, nil
	} else if s.limit > 0 {
		setRateLimitHeaders(w.Header(), s.limit, remaining, reset)
	}

	digest := sha256.Sum256([]byte(tok.signingInput))
	if err := rsa.VerifyPKCS1v15(app.pub, crypto.SHA256, digest[:], tok.signature); err != nil {
		return app, badIdentity("signature does not verify with the registered public key")
	}
	iat, err := integerClaim(tok.claims, "iat")
	if err != nil {
		return app, badIdentity("%v", err)
	}
	exp, err := integerClaim(tok.claims, "exp")
	if err != nil {
		return app, badIdentity("%v", err)
	}
	now := s.now()
	switch {
	case exp <= iat:
		return app, badIdentity("exp %d is not after iat %d", exp, iat)
	case iat > now.Add(maxIatSkew).Unix():
		return app, badIdentity("iat %d is more than %v in the future", iat, maxIatSkew)
	case exp <= now.Unix():
		return app, badIdentity("expired: exp %d is not after now %d", exp, now.Unix())
	case exp > now.Add(maxExpAhead).Unix():
		return app, badIdentity("exp %d is more than 10 years ahead (milliseconds instead of seconds?)", exp)
	}

	access, err := s.mintAccessToken(r, app.ID, app.MaxRole)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return app, nil
	}
	s.stats.tokensIssued.Add(1)
	noStore(w)
	writeJSON(w, http.StatusOK, s.tokenResponse(access))
	return app, nil
}

// clientJWT is a structurally valid client JWT whose signature is not yet checked.
type clientJWT struct {
	signingInput string
	signature    []byte
	claims       map[string]json.RawMessage
}

// parseClientJWT checks the compact serialisation, the header and the claim
// names. Structural problems are 400s (the client sent garbage); a wrong
// header is a 401, as Pure1 treats it as a failed identity check.
func parseClientJWT(raw string) (*clientJWT, *rejection) {
	// Go's base64 decoder skips CR and LF even in strict mode; JWTs have none.
	if i := strings.IndexFunc(raw, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}); i >= 0 {
		return nil, badRequest("subject_token is not a valid JWT: unexpected character at offset %d.", i)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, badRequest("subject_token is not a valid JWT: expected 3 dot-separated parts, got %d.", len(parts))
	}
	var dec [3][]byte
	for i, p := range parts {
		b, err := base64.RawURLEncoding.Strict().DecodeString(p)
		// An empty signature is structurally fine (alg "none" tokens have
		// one); it is the header check that rejects those, with a 401.
		if err != nil || (len(b) == 0 && i < 2) {
			return nil, badRequest("subject_token is not a valid JWT: part %d is not unpadded base64url.", i+1)
		}
		dec[i] = b
	}

	var header map[string]json.RawMessage
	if err := json.Unmarshal(dec[0], &header); err != nil {
		return nil, badRequest("subject_token is not a valid JWT: header is not a JSON object.")
	}
	if len(header) != 2 || !jsonStringIs(header["alg"], "RS256") || !jsonStringIs(header["typ"], "JWT") {
		return nil, badIdentity("header must be exactly {\"alg\":\"RS256\",\"typ\":\"JWT\"}, got %d field(s) alg=%s typ=%s",
			len(header), clip(header["alg"]), clip(header["typ"]))
	}

	var claims map[string]json.RawMessage
	if err := json.Unmarshal(dec[1], &claims); err != nil {
		return nil, badRequest("subject_token is not a valid JWT: payload is not a JSON object.")
	}
	extra := make([]string, 0)
	for name := range claims {
		if !allowedClaims[name] {
			extra = append(extra, strconv.Quote(name))
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return nil, badRequest("Unsupported JWT claim(s) %s; only iss, iat and exp are allowed.", strings.Join(extra, ", "))
	}
	return &clientJWT{
		signingInput: parts[0] + "." + parts[1],
		signature:    dec[2],
		claims:       claims,
	}, nil
}

func jsonStringIs(raw json.RawMessage, want string) bool {
	var s string
	return raw != nil && json.Unmarshal(raw, &s) == nil && s == want
}

// clip shortens attacker-controlled values before they reach the log.
func clip(raw json.RawMessage) string {
	s := string(raw)
	if s == "" {
		return "<absent>"
	}
	if len(s) > 20 {
		s = s[:20] + "..."
	}
	return strconv.Quote(s)
}

// integerClaim reads a NumericDate as Pure1 wants it: a JSON integer of
// seconds. Floats (1.7e9, 1700000000.5) and strings are refused because
// clients that send them are likely to break against the real service.
func integerClaim(claims map[string]json.RawMessage, name string) (int64, error) {
	raw, ok := claims[name]
	if !ok {
		return 0, fmt.Errorf("%s missing", name)
	}
	s := string(bytes.TrimSpace(raw))
	if s == "" || len(s) > 18 || strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, fmt.Errorf("%s is not an integer number of seconds: %s", name, clip(raw))
	}
	return strconv.ParseInt(s, 10, 64)
}

// issuerURL is the emulator's own base URL as the client addressed it.
func issuerURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// mintAccessToken issues an access token: an RS256 JWT signed with the
// emulator's key so the resource API can verify it statelessly, as Pure1's can.
func (s *Server) mintAccessToken(r *http.Request, subject, maxRole string) (string, error) {
	now := s.now()
	jti, err := randomUUID()
	if err != nil {
		return "", err
	}
	claims := jwt.MapClaims{
		"iss":      issuerURL(r),
		"sub":      subject,
		"org":      s.org,
		"max_role": maxRole,
		"iat":      now.Unix(),
		"exp":      now.Add(s.lifetime).Unix(),
		// jti makes every token unique, so a client cannot pass tests by
		// accidentally reusing a token minted in the same second.
		"jti": jti,
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("emulator: signing access token: %w", err)
	}
	return tok, nil
}

// ---- rate limiting -----------------------------------------------------------

// rateWindow counts an org's token requests in one wall-clock second.
type rateWindow struct {
	second int64
	used   int
}

// takeRateToken consumes one request from org's current one-second window.
// reset is the number of seconds, as a header value, until the window ends.
func (s *Server) takeRateToken(org string) (ok bool, remaining int, reset string) {
	if s.limit <= 0 {
		return true, 0, ""
	}
	now := s.now()
	sec := now.Unix()
	untilNext := time.Unix(sec+1, 0).Sub(now).Seconds()
	reset = strconv.Itoa(max(1, int(math.Ceil(untilNext))))

	s.rateMu.Lock()
	defer s.rateMu.Unlock()
	win := s.windows[org]
	if win.second != sec {
		win = rateWindow{second: sec}
	}
	if win.used >= s.limit {
		return false, 0, reset
	}
	win.used++
	s.windows[org] = win
	return true, s.limit - win.used, reset
}

func setRateLimitHeaders(h http.Header, limit, remaining int, reset string) {
	h.Set("X-RateLimit-Limit", strconv.Itoa(limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Reset", reset)
}
