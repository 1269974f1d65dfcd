package pure1

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// AppIDPrefix starts every Pure1 application ID.
const AppIDPrefix = "pure1:apikey:"

// ValidateAppID checks the shape of a Pure1 application ID, so that a typo is
// caught when it is written rather than as a 401 from Pure1 later.
func ValidateAppID(id string) error {
	rest, ok := strings.CutPrefix(id, AppIDPrefix)
	if !ok || rest == "" || len(id) > 256 {
		return fmt.Errorf("app_id must look like %sXXXXXXXXXXXXXXXX (as shown in Pure1 > Administration > API Registration)", AppIDPrefix)
	}
	for _, r := range rest {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("app_id has an unexpected character %q after %q: copy the ID from Pure1 > Administration > API Registration", r, AppIDPrefix)
		}
	}
	return nil
}

// Signer signs the JWTs Pure1 takes for one application: header
// {"alg":"RS256","typ":"JWT"} and claims iss, iat, exp in integer seconds,
// nothing else.
//
// RSA PKCS#1 v1.5 signatures are deterministic, so the JWT for the same key,
// claims and second is the same bytes. Signer keeps the last JWT per lifetime
// and hands it out again within the same second instead of paying for another
// RSA operation: the caller gets exactly what a fresh signature would give.
type Signer struct {
	appID string
	key   *Key

	mu   sync.Mutex
	last map[int64]signedJWT // by lifetime in seconds
}

type signedJWT struct {
	iat, exp int64
	token    string
}

// NewSigner returns a Signer for the application appID and its key.
func NewSigner(appID string, key *Key) (*Signer, error) {
	if key == nil {
		return nil, errors.New("no private key")
	}
	if err := ValidateAppID(appID); err != nil {
		return nil, err
	}
	return &Signer{appID: appID, key: key, last: make(map[int64]signedJWT, 2)}, nil
}

// AppID is the application ID the Signer puts in iss.
func (s *Signer) AppID() string { return s.appID }

// Key is the key the Signer signs with.
func (s *Signer) Key() *Key { return s.key }

// Sign returns a JWT issued at now (truncated to the second) that expires
// lifetime later, and that expiry.
func (s *Signer) Sign(now time.Time, lifetime time.Duration) (string, time.Time, error) {
	life := int64(lifetime / time.Second)
	if life <= 0 {
		return "", time.Time{}, fmt.Errorf("JWT lifetime must be at least one second, not %s", lifetime)
	}
	iat := now.Unix()
	exp := iat + life
	expiresAt := time.Unix(exp, 0).UTC()

	s.mu.Lock()
	if c, ok := s.last[life]; ok && c.iat == iat {
		s.mu.Unlock()
		return c.token, expiresAt, nil
	}
	s.mu.Unlock()

	// Signing happens outside the lock so concurrent readers of other
	// seconds or lifetimes are not serialised behind one RSA operation.
	token, err := SignJWT(s.appID, s.key, iat, exp)
	if err != nil {
		return "", time.Time{}, err
	}
	s.mu.Lock()
	if c, ok := s.last[life]; !ok || c.iat <= iat {
		s.last[life] = signedJWT{iat: iat, exp: exp, token: token}
	}
	s.mu.Unlock()
	return token, expiresAt, nil
}

// SignJWT signs a Pure1 client JWT with no caching: iss=appID, iat and exp in
// Unix seconds.
func SignJWT(appID string, key *Key, iat, exp int64) (string, error) {
	claims := jwt.RegisteredClaims{
		Issuer:    appID,
		IssuedAt:  &jwt.NumericDate{Time: time.Unix(iat, 0)},
		ExpiresAt: &jwt.NumericDate{Time: time.Unix(exp, 0)},
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(key.priv)
	if err != nil {
		return "", fmt.Errorf("signing the Pure1 JWT: %w", err)
	}
	return token, nil
}

// SignJWTWithKeyID signs claims with key (RS256) under a header that names
// the key with kid. Pure1 identifies the key by iss alone; a FlashArray or
// FlashBlade API client needs the kid the array assigned (backend/purearray),
// so the one RSA signing path serves both.
func SignJWTWithKeyID(key *Key, kid string, claims jwt.Claims) (string, error) {
	if key == nil {
		return "", errors.New("no private key")
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = kid
	token, err := t.SignedString(key.priv)
	if err != nil {
		return "", fmt.Errorf("signing the JWT: %w", err)
	}
	return token, nil
}
