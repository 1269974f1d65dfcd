package emulator

import (
	"errors"
	"net/http"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// apiErrors is the error body of Pure1's resource API.
type apiErrors struct {
	Errors []apiErrorItem `json:"errors"`
}

type apiErrorItem struct {
	Context string `json:"context,omitempty"` // the parameter or value at fault
	Message string `json:"message"`
}

// verifyAccessToken accepts only unexpired tokens signed by this Server.
// The returned error is a short reason for the log; it never contains the token.
func (s *Server) verifyAccessToken(authorization string) (jwt.MapClaims, error) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return nil, errors.New("missing Bearer token")
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(strings.TrimSpace(tok), claims,
		func(*jwt.Token) (any, error) { return &s.key.PublicKey, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}),
		jwt.WithTimeFunc(s.now),
		jwt.WithExpirationRequired(),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, errors.New("access token expired")
	case err != nil:
		return nil, errors.New("access token not issued by this emulator or malformed")
	}
	if org, _ := claims["org"].(string); org == "" {
		return nil, errors.New("access token has no org")
	}
	return claims, nil
}

// ---- admin API: stats and health --------------------------------------------

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	if allowMethods(w, r, http.MethodGet) {
		writeJSON(w, http.StatusOK, s.Stats())
	}
}

func (s *Server) handleStatsReset(w http.ResponseWriter, r *http.Request) {
	if allowMethods(w, r, http.MethodPost) {
		s.ResetStats()
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if allowMethods(w, r, http.MethodGet, http.MethodHead) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}
