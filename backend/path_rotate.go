package backend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
)

// Fields of config/<name>/rotate, beside the key fields it shares with
// config/<name>.
const (
	fieldVerify         = "verify"
	fieldRetirePrevious = "retire_previous"
	// Read-only, in responses.
	fieldCreatedAt         = "created_at"
	fieldActiveFingerprint = "active_public_key_fingerprint"
	fieldActiveAppID       = "active_app_id"
	fieldVerified          = "verified"
)

const (
	rotateHelpSynopsis    = "Replace a config's key without an outage: a pending key, registered in Pure1, then proven and promoted."
	rotateHelpDescription = `
A rotation has three steps, and credentials keep being issued with the active
key and app_id throughout:

1. vault write pure1/config/NAME/rotate generate_key=true [key_bits=3072]
   (or private_key=@new.pem [private_key_password=...])
   stores a pending key beside the active one and shows its public key.
2. Register that public key in Pure1 (Administration > API Registration >
   Register Application); Pure1 shows a new application ID.
3. vault write pure1/config/NAME/rotate app_id=pure1:apikey:...
   signs a JWT with the pending key and exchanges it at the config's token_url.
   Only if Pure1 accepts it does the pending key become the active one, with the
   new app_id, at once; the key it replaces is kept as "previous" (public key,
   fingerprint, app_id) so that you know which Pure1 application to delete once
   the credentials it issued have expired. If Pure1 refuses, nothing changes and
   the error says why. verify=false promotes without the exchange, for a Vault
   that cannot reach Pure1 while rotating.

Read shows the pending key (public key, fingerprint, when it was made); delete
drops it. bootstrap/rotate-key.sh walks through all of it.

Array configs: step 3 takes the new API client's client_id and key_id instead
of app_id. With managed registration (admin_api_token) there are no steps:
vault write -f pure1/config/NAME/rotate makes a new key and API client, enables
and verifies it and switches to it; any failure before the switch leaves the
working client in place. The old client stays enabled until the longest
credential it issued has expired (previous_api_client_delete_at), then Vault
deletes it at the array. For a key that leaked, vault write pure1/config/NAME/rotate
retire_previous=now rotates and cuts every earlier client off at once: their
leases and static tokens stop working.
`
)

func pathRotate(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: configStoragePrefix + framework.GenericNameRegex("name") + "/rotate",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "pure1",
			OperationSuffix: "config-key-rotation",
		},
		Fields: map[string]*framework.FieldSchema{
			"name": {
				Type:        framework.TypeString,
				Description: "Name of the config whose key is rotated.",
				Required:    true,
			},
			fieldGenerateKey: {
				Type:        framework.TypeBool,
				Description: "Step 1: generate the pending key pair inside Vault. The response shows the public key to register in Pure1.",
			},
			fieldKeyBits: {
				Type:        framework.TypeInt,
				Default:     pure1.DefaultKeyBits,
				Description: "Size of a generated pending key: 2048, 3072 or 4096. Only with generate_key=true.",
			},
			fieldPrivateKey: {
				Type:        framework.TypeString,
				Description: "Step 1, instead of generate_key: the pending key as PEM (PKCS#1 or PKCS#8, plain or encrypted). Never returned.",
				DisplayAttrs: &framework.DisplayAttributes{
					Sensitive: true,
					EditType:  "file",
				},
			},
			fieldPrivateKeyPassword: {
				Type:         framework.TypeString,
				Description:  "Password of an encrypted private_key. Used once to decrypt it; never stored.",
				DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
			},
			fieldAppID: {
				Type:        framework.TypeString,
				Description: "Step 3: the application ID Pure1 showed for the pending key's public key. Vault proves the pair with a token exchange, then promotes the pending key.",
			},
			fieldClientID: {
				Type:        framework.TypeString,
				Description: "Arrays, API client registered by an operator, step 3: the id of the new API client created with the pending key's public key (with key_id).",
			},
			fieldKeyID: {
				Type:        framework.TypeString,
				Description: "Arrays, step 3: the new API client's key_id.",
			},
			fieldIssuer: {
				Type:        framework.TypeString,
				Description: "Arrays, step 3: the new API client's issuer, when it differs from the active one's.",
			},
			fieldRetirePrevious: {
				Type: framework.TypeString,
				Description: "Arrays, managed registration: now rotates and cuts every earlier API client of the config off at once, instead of when the " +
					"credentials each issued expire (for a key that leaked). Their leases and static tokens stop working.",
				AllowedValues: []interface{}{"now"},
			},
			fieldVerify: {
				Type:        framework.TypeBool,
				Default:     true,
				Description: "With app_id: prove the pending key and app_id with a live token exchange before promoting (default). false promotes without it, with a warning.",
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback:                    b.pathRotateWrite,
				Summary:                     "Store a pending key (generate_key or private_key), or verify and promote it (app_id).",
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
				Responses:                   rotateResponses,
			},
			logical.ReadOperation: &framework.PathOperation{
				Callback:  b.pathRotateRead,
				Summary:   "Show the pending key of a rotation in progress, and the active and previous keys.",
				Responses: rotateResponses,
			},
			logical.DeleteOperation: &framework.PathOperation{
				Callback:                    b.pathRotateDelete,
				Summary:                     "Abandon a rotation: drop the pending key. The active key is untouched.",
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
			},
		},
		HelpSynopsis:    rotateHelpSynopsis,
		HelpDescription: strings.TrimSpace(rotateHelpDescription),
	}}
}

var rotateResponses = map[int][]framework.Response{
	200: {{
		Description: "OK",
		Fields: map[string]*framework.FieldSchema{
			fieldPublicKey:            {Type: framework.TypeString, Description: "Step 1 and read: the pending key's PEM public key, to register in Pure1. After promotion: the new active key's."},
			fieldPublicKeyFingerprint: {Type: framework.TypeString, Description: "Hex SHA-256 of that public key's DER."},
			fieldKeyBits:              {Type: framework.TypeInt, Description: "RSA key size."},
			fieldKeySource:            {Type: framework.TypeString, Description: "generated, or the format the key was imported in."},
			fieldCreatedAt:            {Type: framework.TypeTime, Description: "When the pending key was made (RFC 3339)."},
			fieldActiveFingerprint:    {Type: framework.TypeString, Description: "Fingerprint of the key that signs credentials now."},
			fieldActiveAppID:          {Type: framework.TypeString, Description: "Application ID credentials carry now."},
			fieldAppID:                {Type: framework.TypeString, Description: "After promotion: the new application ID."},
			fieldVerified:             {Type: framework.TypeBool, Description: "After promotion: whether Pure1 accepted the new key before it was promoted."},
			fieldOrg:                  {Type: framework.TypeString, Description: "After a verified promotion: the org of the token Pure1 issued."},
			fieldMaxRole:              {Type: framework.TypeString, Description: "After a verified promotion: the max_role of the token Pure1 issued."},
			fieldPreviousFingerprint:  {Type: framework.TypeString, Description: "Fingerprint of the key the last promotion retired."},
			fieldPreviousAppID:        {Type: framework.TypeString, Description: "Application ID of the retired key: delete it in Pure1 once its tokens have expired."},
			fieldPreviousRetiredAt:    {Type: framework.TypeTime, Description: "When the retired key stopped signing."},
		},
	}},
}

// rotateWrite is one validated write to config/<name>/rotate.
type rotateWrite struct {
	name      string
	keys      keyInput
	appID     string
	hasAppID  bool
	verify    bool
	hasVerify bool
	hasRetire bool
}

// arrayRotateFields name an array's new API client; refused on Pure1.
var arrayRotateFields = []string{fieldClientID, fieldKeyID, fieldIssuer}

func (b *backend) pathRotateWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if err := rejectUnknownFields(req, d); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	ki, err := readKeyInput(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	r := &rotateWrite{name: d.Get("name").(string), keys: ki, verify: d.Get(fieldVerify).(bool)}
	if v, ok := d.GetOk(fieldAppID); ok {
		r.appID, r.hasAppID = strings.TrimSpace(v.(string)), true
	}
	_, r.hasVerify = d.GetOk(fieldVerify)
	if v, ok := d.GetOk(fieldRetirePrevious); ok {
		if v.(string) != "now" {
			return logical.ErrorResponse("retire_previous takes only now: the previous API client is otherwise retired when its credentials expire"), nil
		}
		r.hasRetire = true
	}
	e, err := readConfigEntry(ctx, req.Storage, r.name)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return configMissing(req.MountPoint, r.name), nil
	}
	return e.kind().rotate(ctx, b, req, r, e)
}

func configMissing(mount, name string) *logical.Response {
	return logical.ErrorResponse("config %q does not exist: there is no key to rotate; create it with vault write %sconfig/%s generate_key=true", name, mount, name)
}

// rotateStorePending stores the pending key a write brings. The caller has
// found the config already, so that a typo in the name costs no key work.
func (b *backend) rotateStorePending(ctx context.Context, req *logical.Request, name string, ki keyInput) (*logical.Response, error) {
	nk, err := b.loadKey(ctx, ki)
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
	if old == nil {
		return configMissing(req.MountPoint, name), nil
	}
	activeFP := b.storedKeyFingerprint(name, old)
	if activeFP == key.Fingerprint() {
		return logical.ErrorResponse("private_key is the active key of config %q (fingerprint %s): a rotation needs a new key pair; "+
			"use generate_key=true, or create one with openssl genrsa -aes256 -out new.pem 2048", name, key.Fingerprint()), nil
	}
	if p := old.Pending; p != nil && p.Fingerprint != key.Fingerprint() {
		warnings = append(warnings, fmt.Sprintf("the earlier pending key (fingerprint %s, made %s) was replaced: if you registered it in Pure1, delete that application",
			p.Fingerprint, formatTime(p.CreatedAt)))
	}
	entry := *old
	entry.Pending = &pendingKey{
		PrivateKey:  string(key.MarshalPKCS8PEM()),
		PublicKey:   key.PublicKeyPEM(),
		Fingerprint: key.Fingerprint(),
		KeyBits:     key.Bits(),
		KeySource:   nk.source,
		CreatedAt:   b.now().UTC(),
	}
	// The active identity is unchanged, so nothing issued is affected; the
	// cached config is dropped all the same so that reads show the pending
	// key, and because every config write goes through dropConfig.
	if err := b.putConfig(ctx, req.Storage, name, &entry); err != nil {
		return nil, err
	}

	warnings = append(warnings, old.kind().pendingNextStep(old, activeFP, req.MountPoint, name))
	resp := &logical.Response{Data: rotateData(&entry)}
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	return resp, nil
}

// promotion is the client a pending key is promoted under: a Pure1
// application (kind_pure1.go), or an array's API client (kind_array.go).
type promotion interface {
	// id is the new app_id or client_id, as messages name it.
	id() string
	// refusal says why the promotion cannot be, or "".
	refusal(e *configEntry) string
	// target is the exchange that proves the pending key under it.
	target(b *backend, config string, e *configEntry, pending *pure1.Key) (upstream, error)
	// apply names the new client in the entry being promoted.
	apply(next *configEntry)
	// promotedWarning tells what to do with the previous client.
	promotedWarning(prev *previousKey) string
}

// rotatePromote proves the pending key of e, config name as the write found
// it, under p with a live exchange (unless verify is false) and only then
// makes it the active key.
func (b *backend) rotatePromote(ctx context.Context, req *logical.Request, name string, e *configEntry, p promotion, verify bool) (*logical.Response, error) {
	appID := p.id()
	if e.Pending == nil {
		return logical.ErrorResponse("config %q has no pending key to promote: start with vault write %sconfig/%s/rotate generate_key=true "+
			"(or private_key=@new.pem); to change only the application ID of the active key, write app_id to %sconfig/%s",
			name, req.MountPoint, name, req.MountPoint, name), nil
	}
	if msg := p.refusal(e); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	// Outside the write lock: the exchange may take seconds (retries).
	pending, err := keyWork(ctx, func() (*pure1.Key, error) { return b.parseKey([]byte(e.Pending.PrivateKey), nil) })
	if isContextErr(err) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("the stored pending key of config %q is unreadable (%w): drop it with vault delete %sconfig/%s/rotate and start again",
			name, err, req.MountPoint, name)
	}
	up, err := p.target(b, name, e, pending)
	if err != nil {
		return logical.ErrorResponse("config %q: %v", name, err), nil
	}

	var (
		warnings []string
		tok      *pure1.AccessToken
	)
	if verify {
		tok, err = b.exchangeSigned(ctx, name, up, "rotation of config "+name)
		if err != nil {
			if isContextErr(err) && !errors.Is(err, pure1.ErrUnavailable) {
				return nil, err
			}
			b.Logger().Warn("rotation: Pure1 did not accept the pending key", "config", name, "app_id", appID,
				"pending_fingerprint", e.Pending.Fingerprint, "error", err)
			return verifyFailure(err, req.MountPoint, name, appID, e)
		}
	} else {
		warnings = append(warnings, fmt.Sprintf("promoted without verification (verify=false): if Pure1 does not know the key %s under app_id %q, "+
			"every read of this config's roles fails until it does. Check it now: vault read %sconfig/%s/check",
			e.Pending.Fingerprint, appID, req.MountPoint, name))
	}

	b.writeLock.Lock()
	defer b.writeLock.Unlock()
	// What was verified must still be what is promoted: another write may
	// have replaced the pending key or the endpoint meanwhile.
	cur, err := readConfigEntry(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	switch {
	case cur == nil:
		return logical.ErrorResponse("config %q was deleted during the rotation", name), nil
	case cur.Pending == nil || cur.Pending.Fingerprint != pending.Fingerprint():
		return logical.ErrorResponse("the pending key of config %q changed while it was being verified: nothing was promoted; "+
			"read %sconfig/%s/rotate and promote the key shown there", name, req.MountPoint, name), nil
	case verify && (cur.TokenURL != e.TokenURL || cur.ArrayURL != e.ArrayURL || cur.CACert != e.CACert || cur.Username != e.Username):
		return logical.ErrorResponse("where config %q exchanges (token_url, array_url, ca_cert or username) changed while the pending key was being verified: "+
			"nothing was promoted; promote it again", name), nil
	}

	now := b.now().UTC()
	next := *cur
	if old := b.storedKey(name, cur); old != nil {
		next.Previous = &previousKey{
			PublicKey:    old.PublicKeyPEM(),
			Fingerprint:  old.Fingerprint(),
			KeyCreatedAt: cur.KeyCreatedAt,
			RetiredAt:    now,
		}
	}
	next.PrivateKey = cur.Pending.PrivateKey
	next.KeySource = cur.Pending.KeySource
	next.KeyCreatedAt = cur.Pending.CreatedAt
	p.apply(&next)
	next.Pending = nil
	c, err := newConfig(name, &next, pending)
	if err != nil {
		return nil, err
	}
	// The identity (key, app_id) changed: dropping the config makes every
	// cache keyed by identity (shared tokens, exchanges in flight, checks)
	// move to the new key with the next read, on this node; other nodes do
	// the same from Invalidate. Static tokens (issue 11) refresh on the same
	// signal.
	if err := b.putConfig(ctx, req.Storage, name, &next); err != nil {
		return nil, err
	}
	b.Logger().Info("rotation: key promoted", "config", name, "app_id", appID, "fingerprint", pending.Fingerprint(),
		"previous_app_id", cur.AppID, "verified", verify)

	data := c.responseData()
	data[fieldVerified] = verify
	if tok != nil {
		if tok.Org != "" {
			data[fieldOrg] = tok.Org
		}
		if tok.MaxRole != "" {
			data[fieldMaxRole] = tok.MaxRole
		}
	}
	if w := p.promotedWarning(next.Previous); w != "" {
		warnings = append(warnings, w)
	}
	resp := &logical.Response{Data: data}
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	return resp, nil
}

// verifyFailure explains a promotion Pure1 refused or could not answer.
// Nothing was changed; the active key keeps issuing credentials.
func verifyFailure(err error, mount, name, appID string, e *configEntry) (*logical.Response, error) {
	fp := e.Pending.Fingerprint
	if errors.Is(err, pure1.ErrRejected) {
		return logical.ErrorResponse("Pure1 did not accept the pending key under app_id %q: %v. Nothing changed: the active key still issues credentials. "+
			"Check that %q is the application Pure1 created for the public key with fingerprint %s (vault read %sconfig/%s/rotate shows it; compare with "+
			"openssl pkey -pubin -in pub.pem -outform DER | sha256sum), and that this node's clock is right",
			appID, err, appID, fp, mount, name), nil
	}
	return nil, logical.CodedError(http.StatusBadGateway, fmt.Sprintf(
		"could not verify the pending key (fingerprint %s) under app_id %q at %s: %v. Nothing changed: the active key still issues credentials. "+
			"Try again when Pure1 answers, or promote without the exchange: vault write %sconfig/%s/rotate app_id=%s verify=false",
		fp, appID, e.TokenURL, err, mount, name, appID))
}

// storedKey is e's active key, from the cache when it holds the same entry;
// nil if the stored key is unreadable.
func (b *backend) storedKey(name string, e *configEntry) *pure1.Key {
	b.cacheLock.RLock()
	c := b.configs[name]
	b.cacheLock.RUnlock()
	if c != nil && c.entry.PrivateKey == e.PrivateKey {
		return c.key
	}
	k, err := b.parseKey([]byte(e.PrivateKey), nil)
	if err != nil {
		return nil
	}
	return k
}

func (b *backend) pathRotateRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	c, err := b.getConfig(ctx, req.Storage, name)
	if err != nil || c == nil {
		return nil, err
	}
	data := rotateData(&c.entry)
	data[fieldActiveFingerprint] = c.key.Fingerprint()
	resp := &logical.Response{Data: data}
	if c.entry.Pending == nil {
		resp.AddWarning(fmt.Sprintf("no rotation in progress: start one with vault write %sconfig/%s/rotate generate_key=true", req.MountPoint, name))
	}
	return resp, nil
}

// rotateData describes a rotation: the pending key (if any), the active
// application and the previous key (if any).
func rotateData(e *configEntry) map[string]interface{} {
	active := e.AppID
	if active == "" {
		active = e.ClientID // an array's: a config has one or the other
	}
	d := map[string]interface{}{
		fieldActiveAppID: active,
	}
	if p := e.Pending; p != nil {
		d[fieldPublicKey] = p.PublicKey
		d[fieldPublicKeyFingerprint] = p.Fingerprint
		d[fieldKeyBits] = p.KeyBits
		d[fieldKeySource] = p.KeySource
		d[fieldCreatedAt] = formatTime(p.CreatedAt)
	}
	if p := e.Previous; p != nil {
		d[fieldPreviousFingerprint] = p.Fingerprint
		d[fieldPreviousAppID] = p.AppID
		d[fieldPreviousRetiredAt] = formatTime(p.RetiredAt)
	}
	return d
}

func (b *backend) pathRotateDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	b.writeLock.Lock()
	defer b.writeLock.Unlock()
	e, err := readConfigEntry(ctx, req.Storage, name)
	if err != nil || e == nil || e.Pending == nil {
		return nil, err
	}
	dropped := e.Pending.Fingerprint
	e.Pending = nil
	if err := b.putConfig(ctx, req.Storage, name, e); err != nil {
		return nil, err
	}
	resp := &logical.Response{}
	resp.AddWarning(fmt.Sprintf("pending key %s dropped; if you registered it in Pure1, delete that application", dropped))
	return resp, nil
}
