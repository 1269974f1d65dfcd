// Package purearray is the wire of a FlashArray's or FlashBlade's REST 2 API
// that the secrets engine needs: the API client JWT, the token exchange at
// the array, and the administration of API clients. It is a sibling of
// backend/pure1 and uses that package's keys, host policy, exchange retries
// and token parsing; only what differs on an array lives here.
package purearray

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
)

// Kinds of array a config can name.
const (
	KindFlashArray = "flasharray"
	KindFlashBlade = "flashblade"
)

// TokenPath is where an array exchanges an API client's JWT (the same RFC
// 8693 form as Pure1's).
const TokenPath = "/oauth2/1.0/token"

// TokenURL is the token endpoint of the array at arrayURL.
func TokenURL(arrayURL string) string {
	return strings.TrimRight(arrayURL, "/") + TokenPath
}

// Identity is what an array knows an API client by.
type Identity struct {
	ClientID string // the array's id of the client: the JWT's aud
	KeyID    string // the array's key_id: the JWT header's kid
	Issuer   string // the client's issuer: the JWT's iss
}

// Validate names the first empty field.
func (id Identity) Validate() error {
	switch {
	case id.ClientID == "":
		return errors.New("client_id is empty: give the id the array shows for the API client")
	case id.KeyID == "":
		return errors.New("key_id is empty: give the key_id the array shows for the API client")
	case id.Issuer == "":
		return errors.New("issuer is empty: give the issuer the API client was created with")
	}
	return nil
}

// Signer signs the JWTs an array takes from one API client. Unlike Pure1's,
// the JWT names a user (sub), whose rights, intersected with the client's
// max_role, the access token carries: one Signer serves every role of a
// config, each with its own user.
type Signer struct {
	id  Identity
	key *pure1.Key
}

// NewSigner returns a Signer for the API client id with key.
func NewSigner(id Identity, key *pure1.Key) (*Signer, error) {
	if key == nil {
		return nil, errors.New("no private key")
	}
	if err := id.Validate(); err != nil {
		return nil, err
	}
	return &Signer{id: id, key: key}, nil
}

// Identity is the API client the Signer signs for.
func (s *Signer) Identity() Identity { return s.id }

// Sign returns a JWT for user sub issued at now (truncated to the second)
// that expires lifetime later, and that expiry.
func (s *Signer) Sign(now time.Time, lifetime time.Duration, sub string) (string, time.Time, error) {
	life := int64(lifetime / time.Second)
	if life <= 0 {
		return "", time.Time{}, fmt.Errorf("JWT lifetime must be at least one second, not %s", lifetime)
	}
	if sub == "" {
		return "", time.Time{}, errors.New("no array user to sign for: set username on the role")
	}
	iat := now.Unix()
	token, err := SignJWT(s.id, s.key, sub, iat, iat+life)
	if err != nil {
		return "", time.Time{}, err
	}
	return token, time.Unix(iat+life, 0).UTC(), nil
}

// SignJWT signs an array API client JWT with no caching: header alg RS256,
// typ JWT, kid; claims iss, aud, sub, iat and exp in Unix seconds.
func SignJWT(id Identity, key *pure1.Key, sub string, iat, exp int64) (string, error) {
	// A map, so that aud is one string as Pure's own clients send it (the
	// library's ClaimStrings would make it a list) and the claims encode in
	// one fixed (sorted) order.
	claims := jwt.MapClaims{
		"iss": id.Issuer,
		"aud": id.ClientID,
		"sub": sub,
		"iat": iat,
		"exp": exp,
	}
	return pure1.SignJWTWithKeyID(key, id.KeyID, claims)
}
