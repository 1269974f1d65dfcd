package backend

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray"
)

// fingerprintText is a short digest of s for reads and identities, so that
// neither shows or stores a second copy of it; "" for "".
func fingerprintText(s string) string {
	if s == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// arrayFor returns the client of e's array, reaching it through e's CA. One
// client per address and CA keeps connections alive across exchanges; a CA
// written anew gets a client of its own, so a wrong ca_cert never lingers in a
// transport.
func (b *backend) arrayFor(e *configEntry) (purearray.Array, error) {
	key := e.ArrayURL + "\x00" + fingerprintText(e.CACert)
	b.arraysLock.Lock()
	defer b.arraysLock.Unlock()
	if a, ok := b.arrays[key]; ok {
		return a, nil
	}
	a, err := b.dialArray(purearray.Options{ArrayURL: e.ArrayURL, CACert: []byte(e.CACert), Hosts: b.hosts})
	if err != nil {
		return nil, err
	}
	b.arrays[key] = a
	return a, nil
}

// closeArrays drops every array client's idle connections (Clean).
func (b *backend) closeArrays() {
	b.arraysLock.Lock()
	defer b.arraysLock.Unlock()
	for k, a := range b.arrays {
		if c, ok := a.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
		delete(b.arrays, k)
	}
}

// upstream is where one exchange goes and what signs its JWT: Pure1's token
// endpoint and an application's Signer, or an array's and an API client's
// Signer for one user.
type upstream struct {
	ex       pure1.Exchanger
	tokenURL string
	clientID string // app_id or client_id, for logs
	upstream string // Pure1 or array, for logs
	idKey    string // app_id or client_id
	sign     func(now time.Time, life time.Duration) (string, time.Time, error)
}

func (b *backend) pure1Upstream(tokenURL string, s *pure1.Signer) upstream {
	return upstream{ex: b.exchanger, tokenURL: tokenURL, clientID: s.AppID(), upstream: "Pure1", idKey: "app_id", sign: s.Sign}
}

func (b *backend) arrayUpstream(arr purearray.Array, e *configEntry, s *purearray.Signer, sub string) upstream {
	return upstream{ex: arr, tokenURL: purearray.TokenURL(e.ArrayURL), clientID: s.Identity().ClientID,
		upstream: "array", idKey: "client_id",
		sign: func(now time.Time, life time.Duration) (string, time.Time, error) { return s.Sign(now, life, sub) }}
}

// ready reports whether the config can sign: Pure1 with an app_id, an array
// with its API client.
func (c *config) ready() bool { return c.signer != nil || c.arraySigner != nil }

// clientID is what credentials carry as app_id: the Pure1 application, or the
// array's API client id.
func (c *config) clientID() string {
	switch {
	case c.signer != nil:
		return c.signer.AppID()
	case c.arraySigner != nil:
		return c.arraySigner.Identity().ClientID
	}
	return ""
}

// sign signs a JWT of the config for user sub (arrays; Pure1 has none).
func (c *config) sign(now time.Time, life time.Duration, sub string) (string, time.Time, error) {
	if c.arraySigner != nil {
		return c.arraySigner.Sign(now, life, sub)
	}
	return c.signer.Sign(now, life)
}
