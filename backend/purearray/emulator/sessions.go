package emulator

import (
	"fmt"
	"net/http"
	"strings"
)

// Headers of the session wire (pypureclient/keywords.py).
const (
	headerAPIToken  = "api-token"
	headerAuthToken = "x-auth-token"
)

func (s *Server) sessionHandler(step string) http.HandlerFunc {
	if step == StepLogout {
		return s.logout
	}
	return s.login
}

// login is POST login with the api-token header of any user: a new session,
// acting as that user with its role, whose token comes back in the
// x-auth-token response header. A token that has expired, been deleted or
// whose user was deleted is refused (401). Pure's SDK reads only the
// header; the body is the kind's login model (FA UsernameResponse
// {"items":[{"username"}]}, FB Login {"username"}).
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodPost) {
		return
	}
	tok := r.Header.Get(headerAPIToken)
	if tok == "" {
		writeErrors(w, http.StatusBadRequest, headerAPIToken, "Missing api-token header: log in with the API token of an array user.")
		return
	}
	now := s.opts.Now()
	s.mu.Lock()
	var u *localUser
	if name, ok := s.tokens[tok]; ok {
		u = s.users[name]
	}
	if u == nil || u.token == nil {
		s.mu.Unlock()
		writeErrors(w, http.StatusUnauthorized, headerAPIToken, "Invalid api-token.")
		return
	}
	if u.token.expired(now) {
		s.stats.ExpiredTokenLogins++
		s.mu.Unlock()
		writeErrors(w, http.StatusUnauthorized, headerAPIToken, "The api-token has expired: its user needs a new one (POST admins/api-tokens).")
		return
	}
	sessionToken := randomHex(24)
	s.sessions[sessionToken] = session{user: u.name}
	s.stats.SessionsOpened++
	s.stats.LoginsByUser[u.name]++
	user := u.name
	s.mu.Unlock()
	w.Header().Set(headerAuthToken, sessionToken)
	if s.kind.versionedLogin {
		writeJSON(w, http.StatusOK, map[string]any{"items": []any{map[string]string{"username": user}}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"username": user})
}

// logout ends the session named by x-auth-token. A logout of a session that
// is not open is refused (401), so a client that logs out twice, or with a
// token it never got, is seen.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodPost) {
		return
	}
	tok := r.Header.Get(headerAuthToken)
	if tok == "" {
		writeErrors(w, http.StatusBadRequest, headerAuthToken, "Missing x-auth-token header: log out with the session token login gave.")
		return
	}
	s.mu.Lock()
	_, ok := s.sessions[tok]
	if ok {
		delete(s.sessions, tok)
		s.stats.Logouts++
	}
	s.mu.Unlock()
	if !ok {
		writeErrors(w, http.StatusUnauthorized, headerAuthToken, "No open session has this x-auth-token.")
		return
	}
	w.WriteHeader(http.StatusOK)
}

// principal is who a request acts as: a session's user with the user's
// role, or an access token's sub with its client's max_role.
type principal struct {
	user    string
	role    string
	session bool
}

// describe says who p is, for a refusal.
func (p principal) describe() string {
	if p.session {
		return fmt.Sprintf("this session's user %s has role %s", p.user, p.role)
	}
	return "this access token has " + p.role
}

// mayManage refuses (403) a principal that is not an array_admin, the one
// role that may change API clients or users, or another user's token; what
// is the refused act and context the field the refusal names.
func (p principal) mayManage(w http.ResponseWriter, context, what string) bool {
	if p.role != roleArrayAdmin {
		writeErrors(w, http.StatusForbidden, context, fmt.Sprintf("Forbidden: %s needs the %s role; %s.", what, roleArrayAdmin, p.describe()))
		return false
	}
	return true
}

// authenticate finds the session (x-auth-token) or the access token
// (Authorization: Bearer) of r; on failure it has answered 401.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (principal, bool) {
	if tok := r.Header.Get(headerAuthToken); tok != "" {
		// The role is the user's now, not at login; a deleted user's
		// sessions are gone (deleteAdmins).
		s.mu.Lock()
		sess, ok := s.sessions[tok]
		var role string
		if u := s.users[sess.user]; ok && u != nil {
			role = u.role
		} else {
			ok = false
		}
		s.mu.Unlock()
		if !ok {
			writeErrors(w, http.StatusUnauthorized, headerAuthToken, "Invalid or expired x-auth-token: log in again.")
			return principal{}, false
		}
		return principal{user: sess.user, role: role, session: true}, true
	}
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, bearer, _ := strings.Cut(auth, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			writeErrors(w, http.StatusUnauthorized, "Authorization", "Use Authorization: Bearer <access token>.")
			return principal{}, false
		}
		claims, err := s.validAccessToken(strings.TrimSpace(bearer))
		if err != nil {
			writeErrors(w, http.StatusUnauthorized, "Authorization", "Invalid access token: "+err.Error()+".")
			return principal{}, false
		}
		return principal{user: claims.sub, role: claims.maxRole}, true
	}
	login := "POST /api/" + s.kind.newest + "/login"
	if !s.kind.versionedLogin {
		login = "POST " + FlashBladeLoginPath
	}
	writeErrors(w, http.StatusUnauthorized, "", fmt.Sprintf("Authentication required: send x-auth-token (%s with an api-token header) or Authorization: Bearer <access token>.", login))
	return principal{}, false
}
