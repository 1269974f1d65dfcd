package backend

// A Pure1 application: an app_id and the key whose public half is
// registered for it in Pure1. Pure1 has no users and no API to manage
// applications, so a rotation needs a person in the middle (register the
// new public key in Pure1) and nothing is left for Vault to delete.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
)

const kindPure1 = "pure1"

func init() { registerKind(pure1Kind{}) }

// pure1Kind is a Pure1 application config.
type pure1Kind struct{}

func (pure1Kind) Name() string { return kindPure1 }

// pure1OnlyFields are refused on other kinds' configs.
var pure1OnlyFields = []string{fieldAppID, fieldTokenURL}

func (pure1Kind) writeConfig(ctx context.Context, b *backend, req *logical.Request, d *framework.FieldData, name string) (*logical.Response, error) {
	if bad := presentFields(req, arrayOnlyFields); len(bad) > 0 {
		return logical.ErrorResponse("%s applies only to kind=flasharray or kind=flashblade configs; config %q is a Pure1 application (kind=pure1)",
			strings.Join(bad, ", "), name), nil
	}
	w, err := readConfigWrite(d, b.hosts)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	maxKeyAge, hasMaxKeyAge, err := readMaxKeyAge(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}

	// Before the write lock: decrypting a key file or generating a key takes
	// up to seconds, and every config and role write waits on that lock.
	nk, err := b.loadKey(ctx, w.keyInput)
	if err != nil {
		return nil, err
	}
	if nk.refusal != "" {
		return logical.ErrorResponse(nk.refusal), nil
	}
	key, warnings := nk.key, nk.warnings

	b.writeLock.Lock()
	defer b.writeLock.Unlock()

	old, err := readConfigEntry(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if old != nil && old.kindName() != kindPure1 {
		return logical.ErrorResponse("config %q was created as a %s while this write ran: nothing was stored", name, old.Kind), nil
	}
	if old == nil && key == nil {
		return logical.ErrorResponse("config %q has no key yet: supply private_key=@private.pem (with private_key_password if it is encrypted) "+
			"for a key registered in Pure1, or generate_key=true to create the key pair inside Vault", name), nil
	}

	entry := configEntry{TokenURL: pure1.DefaultTokenURL}
	if old != nil {
		entry = *old
	}
	if key != nil {
		// The same key pair is the same public key: its PKCS#8 bytes also
		// carry the private exponent and prime order, which another tool
		// may have written differently.
		sameKey := old != nil && b.storedKeyFingerprint(name, old) == key.Fingerprint()
		if old != nil && !sameKey && old.AppID != "" {
			users, err := b.rolesUsingConfig(ctx, req.Storage, name)
			if err != nil {
				return nil, err
			}
			if len(users) > 0 {
				return logical.ErrorResponse(newKeyRefusal(req.MountPoint, name, old.AppID, users)), nil
			}
		}
		entry.PrivateKey = string(key.MarshalPKCS8PEM())
		entry.KeySource = nk.source
		if !sameKey {
			entry.KeyCreatedAt = b.now().UTC()
		}
		if old != nil && !sameKey && !w.hasAppID && old.AppID != "" {
			// Pure1 binds one application ID to one public key.
			entry.AppID = ""
			warnings = append(warnings, fmt.Sprintf("the key changed, so app_id %q was cleared: register the new public key in Pure1 and write its app_id", old.AppID))
		}
		if entry.Pending != nil && entry.Pending.Fingerprint == key.Fingerprint() {
			entry.Pending = nil
			warnings = append(warnings, "this key was the pending key of a rotation, which it ends")
		}
	}
	if w.hasAppID {
		entry.AppID = w.appID
	}
	if w.hasTokenURL {
		entry.TokenURL = w.tokenURL
	}
	if hasMaxKeyAge {
		entry.MaxKeyAge = maxKeyAge
	}

	c, err := newConfig(name, &entry, key)
	if err != nil {
		return nil, err
	}
	if err := b.putConfig(ctx, req.Storage, name, &entry); err != nil {
		return nil, err
	}

	if entry.AppID == "" {
		warnings = append(warnings, fmt.Sprintf(
			"no app_id yet: register public_key in Pure1 (Administration > API Registration > Register Application), "+
				"then: vault write %sconfig/%s app_id=<the application ID Pure1 shows>", req.MountPoint, name))
	}
	if w := c.keyAgeWarning(b.now(), req.MountPoint); w != "" {
		warnings = append(warnings, w)
	}
	resp := &logical.Response{Data: c.responseData()}
	for _, warn := range warnings {
		resp.AddWarning(warn)
	}
	return resp, nil
}

// open: a Pure1 credential depends on the key, the application and the
// endpoint; there is nothing to sign with until app_id is written.
func (pure1Kind) open(c *config) error {
	c.identity = c.key.Fingerprint() + "\x00" + c.entry.AppID + "\x00" + c.entry.TokenURL
	if c.entry.AppID == "" {
		return nil
	}
	s, err := pure1.NewSigner(c.entry.AppID, c.key)
	if err != nil {
		return fmt.Errorf("config %q: %w", c.name, err)
	}
	c.clientID = s.AppID()
	c.signer = func(now time.Time, life time.Duration, _ string) (string, time.Time, error) { return s.Sign(now, life) }
	return nil
}

func (pure1Kind) target(b *backend, c *config, _ string) (upstream, error) {
	return upstream{ex: b.exchanger, tokenURL: c.entry.TokenURL, clientID: c.clientID, upstream: "Pure1", idKey: "app_id", sign: c.signer}, nil
}

func (pure1Kind) describe(c *config) map[string]interface{} {
	d := map[string]interface{}{
		fieldKind:                 kindPure1,
		fieldAppID:                c.entry.AppID,
		fieldPublicKey:            c.key.PublicKeyPEM(),
		fieldPublicKeyFingerprint: c.key.Fingerprint(),
		fieldKeyBits:              c.key.Bits(),
		fieldKeySource:            c.entry.KeySource,
		fieldTokenURL:             c.entry.TokenURL,
		fieldKeyCreatedAt:         formatTime(c.entry.KeyCreatedAt),
		fieldMaxKeyAge:            int64(c.entry.MaxKeyAge / time.Second),
	}
	if p := c.entry.Pending; p != nil {
		d[fieldPendingFingerprint] = p.Fingerprint
		d[fieldPendingCreatedAt] = formatTime(p.CreatedAt)
	}
	if p := c.entry.Previous; p != nil {
		d[fieldPreviousFingerprint] = p.Fingerprint
		d[fieldPreviousAppID] = p.AppID
		d[fieldPreviousRetiredAt] = formatTime(p.RetiredAt)
	}
	return d
}

// rotate: a pending key, registered in Pure1 by a person, then proven and
// promoted with its app_id.
func (pure1Kind) rotate(ctx context.Context, b *backend, req *logical.Request, r *rotateWrite, e *configEntry) (*logical.Response, error) {
	name := r.name
	if bad := presentFields(req, arrayRotateFields); len(bad) > 0 {
		return logical.ErrorResponse("%s applies to array configs; config %q is a Pure1 application: promote with app_id", strings.Join(bad, ", "), name), nil
	}
	if r.hasRetire {
		return logical.ErrorResponse("retire_previous applies to array API clients Vault registered; Pure1 has no API to delete an application: " +
			"delete the previous application in Pure1 (Administration > API Registration) once its tokens have expired"), nil
	}
	bringsKey := r.keys.hasKey || r.keys.generate
	switch {
	case bringsKey && r.hasAppID:
		return logical.ErrorResponse("the pending key and its app_id are two writes: first store the key (generate_key=true or private_key), " +
			"register its public key in Pure1, then write the app_id Pure1 shows, which proves and promotes the key"), nil
	case bringsKey && r.hasVerify:
		return logical.ErrorResponse("verify applies to the promotion, with app_id: vault write %sconfig/%s/rotate app_id=... verify=false", req.MountPoint, name), nil
	case bringsKey:
		return b.rotateStorePending(ctx, req, name, r.keys)
	case r.hasAppID:
		if err := checkLength(fieldAppID, r.appID, maxAppIDBytes); err != nil {
			return logical.ErrorResponse(err.Error()), nil
		}
		if err := pure1.ValidateAppID(r.appID); err != nil {
			return logical.ErrorResponse(err.Error()), nil
		}
		return b.rotatePromote(ctx, req, name, e, pure1Promotion(r.appID), r.verify)
	}
	return logical.ErrorResponse("nothing to do: start a rotation with vault write %sconfig/%s/rotate generate_key=true (or private_key=@new.pem), "+
		"and after registering its public key in Pure1, finish it with vault write %sconfig/%s/rotate app_id=<the new application ID>",
		req.MountPoint, name, req.MountPoint, name), nil
}

// pure1Promotion promotes a pending key under a new Pure1 application.
type pure1Promotion string

func (p pure1Promotion) id() string { return string(p) }

func (p pure1Promotion) refusal(e *configEntry) string {
	if string(p) == e.AppID {
		return fmt.Sprintf("app_id %q is the active key's application: the pending key (fingerprint %s) needs the application Pure1 "+
			"created when its own public key was registered", p, e.Pending.Fingerprint)
	}
	return ""
}

func (p pure1Promotion) target(b *backend, _ string, e *configEntry, pending *pure1.Key) (upstream, error) {
	s, err := pure1.NewSigner(string(p), pending)
	if err != nil {
		return upstream{}, err
	}
	return upstream{ex: b.exchanger, tokenURL: e.TokenURL, clientID: s.AppID(), upstream: "Pure1", idKey: "app_id",
		sign: func(now time.Time, life time.Duration, _ string) (string, time.Time, error) { return s.Sign(now, life) }}, nil
}

func (p pure1Promotion) apply(next *configEntry) {
	if next.Previous != nil {
		next.Previous.AppID = next.AppID
	}
	next.AppID = string(p)
}

func (p pure1Promotion) promotedWarning(prev *previousKey) string {
	if prev == nil || prev.AppID == "" {
		return ""
	}
	return fmt.Sprintf("credentials are now issued with app_id %q. Those issued under the previous app_id %q stay valid at Pure1 "+
		"until they expire (access tokens live about 10 hours); after that, delete application %q in Pure1 (Administration > API Registration)",
		p, prev.AppID, prev.AppID)
}

func (pure1Kind) release(string, *configEntry, time.Time) []*cleanupEntry { return nil }

func (pure1Kind) checkUser(configName, username string) string {
	if username != "" {
		return fmt.Sprintf("username applies only to roles on a flasharray or flashblade config; config %q is a Pure1 application: remove username", configName)
	}
	return ""
}

func (pure1Kind) notReady(c *config, mount string) string {
	return fmt.Sprintf("config %q has no app_id: register the public key in Pure1 (Administration > API Registration) "+
		"and write app_id: vault write %sconfig/%s app_id=pure1:apikey:...", c.name, mount, c.name)
}

func (pure1Kind) lacks() string { return "app_id" }

func (pure1Kind) endpoint(c *config) (string, string) { return fieldTokenURL, c.entry.TokenURL }

func (pure1Kind) exchangeRefused(c *config, err error) string {
	return fmt.Sprintf("Pure1 rejected the token exchange for app_id %q: %s. Check that app_id is the application whose "+
		"registered public key has fingerprint %s (vault read the config to compare), and that this node's clock is right",
		c.clientID, sentence(err), c.key.Fingerprint())
}

func (pure1Kind) exchangeFailed(c *config, err error) string {
	return fmt.Sprintf("Pure1 token exchange for app_id %q failed: %s", c.clientID, sentence(err))
}

func (pure1Kind) checkAdvice(c *config, err error) string {
	switch {
	case errors.Is(err, pure1.ErrRejected):
		return fmt.Sprintf("Pure1 refused the key: check in Pure1 (Administration > API Registration) that application %q exists and was registered "+
			"with the public key whose fingerprint is %s (vault read the config to compare), and that this Vault node's clock is right",
			c.clientID, c.key.Fingerprint())
	case errors.Is(err, pure1.ErrBadResponse):
		return fmt.Sprintf("the answer was not a Pure1 token response: check that token_url %s is Pure1's token endpoint", c.entry.TokenURL)
	}
	return fmt.Sprintf("Pure1 could not be reached or kept failing: check this Vault node's network, DNS and proxy towards %s, and Pure1's status; "+
		"credentials of access_token roles fail the same way meanwhile", c.entry.TokenURL)
}

func (pure1Kind) pendingNextStep(e *configEntry, activeFP, mount, name string) string {
	return fmt.Sprintf("credentials are still issued with the active key (fingerprint %s) and app_id %q. Next: register public_key in Pure1 "+
		"(Administration > API Registration > Register Application), then: vault write %sconfig/%s/rotate app_id=<the application ID Pure1 shows>",
		activeFP, e.AppID, mount, name)
}
