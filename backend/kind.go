package backend

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// configKind is what differs between the kinds of config: a Pure1
// application (kind_pure1.go), a FlashArray's API client
// (kind_flasharray.go) or a FlashBlade's (kind_flashblade.go). Path handlers
// speak to a config through it and never ask which kind it is, as Vault's
// database engine speaks to every database through one interface: adding a
// kind is one file implementing this, and its test.
type configKind interface {
	kindWords
	// Name is the kind as config writes and reads spell it.
	Name() string
	// writeConfig applies a write to config/<name> of this kind: what it
	// accepts, proves and stores.
	writeConfig(ctx context.Context, b *backend, req *logical.Request, d *framework.FieldData, name string) (*logical.Response, error)
	// open completes the cached form of a stored config: what signs its
	// JWTs (nil until it can) and the identity its credentials depend on.
	open(c *config) error
	// target is where an exchange of c's for user sub goes, and what signs
	// its JWT.
	target(b *backend, c *config, sub string) (upstream, error)
	// describe is what a read of the config shows.
	describe(c *config) map[string]interface{}
	// rotate handles a write to config/<name>/rotate.
	rotate(ctx context.Context, b *backend, req *logical.Request, r *rotateWrite, e *configEntry) (*logical.Response, error)
	// release lists what a deleted config leaves for the delete list (API
	// clients Vault made on an array); nil for none.
	release(name string, e *configEntry, now time.Time) []*cleanupEntry
	// checkUser says what is wrong with a role's username on this kind.
	checkUser(configName, username string) string
}

// kindWords is how a kind is spoken of in answers: each kind says what its
// upstream is, what to write when it cannot sign yet, and what to check when
// its upstream refuses or fails.
type kindWords interface {
	// lacks names what a config must have written before it can sign.
	lacks() string
	// notReady explains what config c lacks before it can sign.
	notReady(c *config, mount string) string
	// endpoint names where c's exchanges go: the field and its value.
	endpoint(c *config) (field, url string)
	// exchangeRefused explains an exchange the upstream refused (the
	// operator's to fix); exchangeFailed one it could not answer.
	exchangeRefused(c *config, err error) string
	exchangeFailed(c *config, err error) string
	// checkAdvice says what to check after a failed config check.
	checkAdvice(c *config, err error) string
	// pendingNextStep says how to finish a rotation whose pending key was
	// just stored.
	pendingNextStep(e *configEntry, activeFingerprint, mount, name string) string
}

// kinds are every kind of config, by name.
var kinds = map[string]configKind{}

func registerKind(k configKind) { kinds[k.Name()] = k }

// kindNames lists the kinds for help texts and errors, Pure1 first.
func kindNames() []string {
	out := []string{kindPure1}
	for _, n := range slices.Sorted(maps.Keys(kinds)) {
		if n != kindPure1 {
			out = append(out, n)
		}
	}
	return out
}

// kindNamed returns the kind called name, or an error naming the kinds.
func kindNamed(name string) (configKind, error) {
	if k, ok := kinds[name]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("kind %q is not supported: use %s", printable(name), strings.Join(kindNames(), ", "))
}

// kind is the kind of a stored entry: Pure1 for entries stored before kinds
// existed (Kind ""). An entry of a kind this build does not know is refused
// when it is read (readConfigEntry), so this never fails on stored data.
func (e *configEntry) kind() configKind {
	if k, ok := kinds[e.kindName()]; ok {
		return k
	}
	return pure1Kind{}
}

// kindName is the kind as shown: pure1 for entries stored before kinds.
func (e *configEntry) kindName() string {
	if e.Kind == "" {
		return kindPure1
	}
	return e.Kind
}

// hasClient reports whether the entry names what its JWTs are signed for:
// a Pure1 app_id or an array's API client (a config has one or the other).
func (e *configEntry) hasClient() bool { return e.AppID != "" || e.ClientID != "" }
