package emulator

import (
	"errors"
	"mime"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// token is the API client JWT exchange, POST /oauth2/1.0/token, form
// encoded as Pure's SDK posts it (TokenManager._request_access_token), on
// both kinds. Errors are OAuth's {"error","error_description"}
// (Oauth210TokenPost400Response / 401Response).
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "invalid_request", "error_description": "use POST"})
		return
	}
	refuse := func(status int, code, why string) {
		s.mu.Lock()
		s.stats.TokensRefused++
		s.mu.Unlock()
		writeJSON(w, status, map[string]string{"error": code, "error_description": why})
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		refuse(http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		refuse(http.StatusBadRequest, "invalid_request", "the body is not a form")
		return
	}
	if r.PostForm.Get("grant_type") != grantTypeTokenExchange || r.PostForm.Get("subject_token_type") != subjectTokenTypeJWT {
		refuse(http.StatusBadRequest, "unsupported_grant_type", "grant_type must be token-exchange with a jwt subject_token_type")
		return
	}
	if r.PostForm.Get("subject_token") == "" {
		refuse(http.StatusBadRequest, "invalid_request", "subject_token (the API client's JWT) is required")
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
		refuse(http.StatusUnauthorized, "invalid_client", "JWT validation failed: "+err.Error())
		return
	}
	claims := tok.Claims.(jwt.MapClaims)
	aud, _ := claims["aud"].(string)
	iss, _ := claims["iss"].(string)
	sub, _ := claims["sub"].(string)
	switch {
	case aud != client.ID:
		refuse(http.StatusUnauthorized, "invalid_client", "aud is not the API client's id")
		return
	case iss != client.Issuer:
		refuse(http.StatusUnauthorized, "invalid_client", "iss is not the API client's issuer")
		return
	case !s.userExists(sub):
		refuse(http.StatusUnauthorized, "invalid_grant", "sub names no user of this array")
		return
	case !client.Enabled:
		refuse(http.StatusUnauthorized, "invalid_client", "the API client is disabled")
		return
	}
	ttl := time.Duration(client.AccessTokenTTLMS) * time.Millisecond
	access, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "emulated-" + s.kind.name, "sub": sub, "aud": client.ID, "api_client": client.Name,
		"max_role": client.MaxRole, "iat": now.Unix(), "exp": now.Add(ttl).Unix(), "jti": randomHex(8),
	}).SignedString(s.signKey)
	if err != nil {
		refuse(http.StatusInternalServerError, "server_error", "signing failed")
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
	w.Header().Set("Cache-Control", "no-store")
	if s.opts.WrapToken {
		writeJSON(w, http.StatusOK, map[string]any{"items": []any{answer}})
		return
	}
	writeJSON(w, http.StatusOK, answer)
}

// accessClaims are what the emulator reads back from its access tokens.
type accessClaims struct {
	sub, maxRole string
}

// validAccessToken accepts a live access token of an enabled client that
// still exists (the one it was issued to: same name and id).
func (s *Server) validAccessToken(raw string) (accessClaims, error) {
	tok, err := jwt.Parse(raw, func(*jwt.Token) (any, error) { return s.signKey, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(s.opts.Now), jwt.WithExpirationRequired())
	if errors.Is(err, jwt.ErrTokenExpired) {
		return accessClaims{}, errors.New("the access token has expired")
	}
	if err != nil {
		return accessClaims{}, errors.New("not an access token of this array")
	}
	m := tok.Claims.(jwt.MapClaims)
	name, _ := m["api_client"].(string)
	aud, _ := m["aud"].(string)
	sub, _ := m["sub"].(string)
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[name]
	if !ok || c.ID != aud || !c.Enabled {
		return accessClaims{}, errors.New("the token's API client is gone or disabled")
	}
	if s.users[sub] == nil {
		return accessClaims{}, errors.New("the token's user is gone")
	}
	return accessClaims{sub: sub, maxRole: c.MaxRole}, nil
}

// arrays is GET arrays, for a session or an access token: the kind's
// ArrayGetResponse with one item.
func (s *Server) arrays(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet) {
		return
	}
	if _, ok := s.query(w, r); !ok {
		return
	}
	_, ok := s.authenticate(w, r)
	s.mu.Lock()
	if ok {
		s.stats.ArraysServed++
	} else {
		s.stats.ArraysRefused++
	}
	s.mu.Unlock()
	if !ok {
		return
	}
	s.kind.writeList(w, []map[string]any{s.kind.arrayItem(s, s.opts.Now())}, 1, listQuery{})
}
