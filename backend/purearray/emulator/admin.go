package emulator

import (
	"net/http"
)

// The admin API, for tests and make dev: no array has it, and it has no
// authentication, which is why the emulator listens on loopback only.
const (
	adminPrefix = "/emulator/"
	// StatsPath: GET, the counters (Stats).
	StatsPath = "/emulator/stats"
	// ClientsPath: GET, {"items": [APIClient...]} by name; max_role is the
	// role's name whatever the kind.
	ClientsPath = "/emulator/clients"
	// FaultsPath: GET the queue ({"items": [Fault...]}), POST a fault or an
	// array of them (204; 400 {"error"} when one is invalid, none queued),
	// DELETE to clear (204).
	FaultsPath = "/emulator/faults"
	// UsersPath: GET, {"items": [User...]} by name: each local user's role
	// and its API token's times, never a secret.
	UsersPath = "/emulator/users"
)

func (s *Server) admin(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case StatsPath:
		if allowMethods(w, r, http.MethodGet) {
			writeJSON(w, http.StatusOK, s.Stats())
		}
	case ClientsPath:
		if allowMethods(w, r, http.MethodGet) {
			writeJSON(w, http.StatusOK, map[string]any{"items": s.Clients()})
		}
	case UsersPath:
		if allowMethods(w, r, http.MethodGet) {
			writeJSON(w, http.StatusOK, map[string]any{"items": s.Users()})
		}
	case FaultsPath:
		s.handleFaults(w, r)
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no admin endpoint " + r.URL.Path + "; use " + StatsPath + ", " + ClientsPath + ", " + UsersPath + " or " + FaultsPath})
	}
}
