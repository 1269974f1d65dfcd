package emulator

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// ApplicationIDPrefix starts every Pure1 application (API key) ID.
const ApplicationIDPrefix = "pure1:apikey:"

const (
	minRSABits = 2048 // Pure1 refuses weaker keys
	maxRSABits = 8192 // keeps verification cheap; no real client uses more
)

// ErrInvalidPublicKey is wrapped by Register's errors caused by the key itself,
// as opposed to internal failures.
var ErrInvalidPublicKey = errors.New("invalid public key")

// Application is a registered Pure1 API client, as Pure1's UI shows it after
// "Add API Registration".
type Application struct {
	ID                   string `json:"id"`
	Name                 string `json:"name"`
	MaxRole              string `json:"max_role"`
	PublicKeyFingerprint string `json:"public_key_fingerprint"` // lowercase hex SHA-256 of the SPKI DER
}

// internalError marks failures that are the emulator's fault rather than the
// caller's, so the admin API can answer 500 instead of 400.
type internalError struct{ error }

func (e internalError) Unwrap() error { return e.error }

type application struct {
	Application
	pub *rsa.PublicKey
}

// Register registers an application whose client JWTs are signed with the
// private half of publicKeyPEM. The PEM may be a "PUBLIC KEY" (SPKI) or
// "RSA PUBLIC KEY" (PKCS#1) block holding an RSA key of at least 2048 bits.
// maxRole defaults to "viewer".
func (s *Server) Register(publicKeyPEM string, maxRole string) (Application, error) {
	return s.register(publicKeyPEM, maxRole, "")
}

func (s *Server) register(publicKeyPEM, maxRole, name string) (Application, error) {
	pub, err := parseRSAPublicKey(publicKeyPEM)
	if err != nil {
		return Application{}, err
	}
	maxRole = strings.TrimSpace(maxRole)
	if maxRole == "" {
		maxRole = DefaultMaxRole
	}
	if strings.ContainsFunc(maxRole+name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		// These values end up in tokens and logs; control characters there
		// would only ever be a client bug.
		return Application{}, errors.New("max_role and name must not contain control characters")
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return Application{}, internalError{fmt.Errorf("emulator: encoding public key: %w", err)}
	}
	sum := sha256.Sum256(der)
	fp := hex.EncodeToString(sum[:])

	suffix, err := randomAlphanumeric(16)
	if err != nil {
		return Application{}, internalError{err}
	}
	app := &application{
		Application: Application{
			ID:                   ApplicationIDPrefix + suffix,
			Name:                 name,
			MaxRole:              maxRole,
			PublicKeyFingerprint: fp,
		},
		pub: pub,
	}
	if app.Name == "" {
		app.Name = "emulated-app-" + fp[:8]
	}

	s.appsMu.Lock()
	defer s.appsMu.Unlock()
	if _, dup := s.apps[app.ID]; dup {
		// 62^16 IDs make this practically impossible; refuse rather than overwrite.
		return Application{}, internalError{errors.New("emulator: application ID collision; retry the registration")}
	}
	s.apps[app.ID] = app
	s.appOrder = append(s.appOrder, app.ID)
	return app.Application, nil
}

// Applications lists registered applications in registration order.
func (s *Server) Applications() []Application {
	s.appsMu.RLock()
	defer s.appsMu.RUnlock()
	out := make([]Application, 0, len(s.appOrder))
	for _, id := range s.appOrder {
		out = append(out, s.apps[id].Application)
	}
	return out
}

// DeleteApplication unregisters id, reporting whether it existed. Client JWTs
// for it are rejected from then on; access tokens already issued stay valid
// until they expire, as bearer tokens do.
func (s *Server) DeleteApplication(id string) bool {
	s.appsMu.Lock()
	defer s.appsMu.Unlock()
	if _, ok := s.apps[id]; !ok {
		return false
	}
	delete(s.apps, id)
	for i, v := range s.appOrder {
		if v == id {
			s.appOrder = append(s.appOrder[:i:i], s.appOrder[i+1:]...)
			break
		}
	}
	return true
}

func (s *Server) lookupApp(id string) (*application, bool) {
	s.appsMu.RLock()
	defer s.appsMu.RUnlock()
	app, ok := s.apps[id]
	return app, ok
}

// parseRSAPublicKey accepts exactly what Pure1's registration accepts and
// explains any other input in terms of the openssl command that fixes it.
func parseRSAPublicKey(p string) (*rsa.PublicKey, error) {
	block, _ := pem.Decode([]byte(strings.TrimSpace(p)))
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block found; expected \"-----BEGIN PUBLIC KEY-----\" (create one with: openssl rsa -in private.pem -pubout)", ErrInvalidPublicKey)
	}
	var pub any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("%w: got a %s; register only the public key (openssl rsa -in private.pem -pubout)", ErrInvalidPublicKey, block.Type)
	default:
		return nil, fmt.Errorf("%w: unsupported PEM block %q; expected \"PUBLIC KEY\" or \"RSA PUBLIC KEY\"", ErrInvalidPublicKey, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: parsing %s: %v", ErrInvalidPublicKey, block.Type, err)
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: key type %T is not supported; Pure1 accepts only RSA keys (openssl genrsa -out private.pem 2048)", ErrInvalidPublicKey, pub)
	}
	if bits := rsaPub.N.BitLen(); bits < minRSABits || bits > maxRSABits {
		return nil, fmt.Errorf("%w: RSA key is %d bits; use %d to %d bits (openssl genrsa -out private.pem 2048)", ErrInvalidPublicKey, bits, minRSABits, maxRSABits)
	}
	return rsaPub, nil
}

const alphanumerics = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randomAlphanumeric returns n uniformly distributed alphanumerics, using
// rejection sampling so that no character is more likely than another.
func randomAlphanumeric(n int) (string, error) {
	const limit = 256 - 256%len(alphanumerics) // 248: largest multiple of 62 <= 256
	out := make([]byte, 0, n)
	buf := make([]byte, n*2)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("emulator: reading random bytes: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphanumerics[int(b)%len(alphanumerics)])
			}
		}
	}
	return string(out), nil
}

// ---- admin API: /emulator/applications -------------------------------------

type registerRequest struct {
	PublicKey string `json:"public_key"`
	MaxRole   string `json:"max_role"`
	Name      string `json:"name"`
}

type applicationList struct {
	Items []Application `json:"items"`
}

func (s *Server) handleApplications(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	if r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, applicationList{Items: s.Applications()})
		return
	}
	var req registerRequest
	if err := decodeJSONBody(w, r, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, adminError{Error: err.Error()})
		return
	}
	if strings.TrimSpace(req.PublicKey) == "" {
		writeJSON(w, http.StatusBadRequest, adminError{Error: `"public_key" is required: send the PEM of an RSA public key of at least 2048 bits`})
		return
	}
	app, err := s.register(req.PublicKey, req.MaxRole, req.Name)
	if err != nil {
		status := http.StatusBadRequest
		var ie internalError
		if errors.As(err, &ie) {
			status = http.StatusInternalServerError
		}
		infoFrom(r.Context()).addNote("rejected: " + err.Error())
		writeJSON(w, status, adminError{Error: err.Error()})
		return
	}
	infoFrom(r.Context()).appID = app.ID
	writeJSON(w, http.StatusCreated, app)
}

func (s *Server) handleApplication(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodDelete) {
		return
	}
	id := r.PathValue("id")
	infoFrom(r.Context()).appID = id
	if r.Method == http.MethodGet {
		if app, ok := s.lookupApp(id); ok {
			writeJSON(w, http.StatusOK, app.Application)
			return
		}
	} else if s.DeleteApplication(id) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusNotFound, adminError{Error: fmt.Sprintf("no application %q; list them with GET %s", id, ApplicationsPath)})
}

// decodeJSONBody decodes exactly one JSON value, rejecting unknown fields so
// that typos in test set-ups fail loudly instead of being ignored.
func decodeJSONBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errorsAsMaxBytes(err) {
			return fmt.Errorf("request body exceeds %d bytes", maxBodyBytes)
		}
		return fmt.Errorf("invalid JSON body: %v", err)
	}
	if dec.More() {
		return errors.New("invalid JSON body: trailing data after the JSON value")
	}
	return nil
}
