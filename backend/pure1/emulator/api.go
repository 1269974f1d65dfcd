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
	Message string `json:"message"`
}

type arrayItem struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Model   string `json:"model"`
	OS      string `json:"os"`
	Version string `json:"version"`
	AsOf    int64  `json:"as_of"` // milliseconds since the epoch, as Pure1 reports it
}

type arrayList struct {
	ContinuationToken *string     `json:"continuation_token"` // always null: one page
	TotalItemCount    int         `json:"total_item_count"`
	Items             []arrayItem `json:"items"`
}

// handleArrays serves GET /api/1.latest/arrays, the cheapest Pure1 call that
// proves an access token is accepted.
func (s *Server) handleArrays(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet) {
		return
	}
	s.stats.apiRequests.Add(1)
	claims, err := s.verifyAccessToken(r.Header.Get("Authorization"))
	if err != nil {
		infoFrom(r.Context()).addNote("unauthorized: " + err.Error())
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, apiErrors{Errors: []apiErrorItem{{Message: "Invalid or expired access token."}}})
		return
	}
	if sub, _ := claims["sub"].(string); sub != "" {
		infoFrom(r.Context()).appID = sub
	}
	writeJSON(w, http.StatusOK, arrayList{
		TotalItemCount: 1,
		Items: []arrayItem{{
			ID:      s.arrayID,
			Name:    "emulated-array-01",
			Model:   "FA-X70R3",
			OS:      "Purity//FA",
			Version: "6.5.4",
			AsOf:    s.now().UnixMilli(),
		}},
	})
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
