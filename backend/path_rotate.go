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
	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray"
)

// Fields of config/<name>/rotate, beside the key fields it shares with
// config/<name>.
const (
	fieldVerify = "verify"
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
and verifies it, switches to it and deletes the old client at the array; any
failure before the switch leaves the working client in place.
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

func (b *backend) pathRotateWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if err := rejectUnknownFields(req, d); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	name := d.Get("name").(string)
	ki, err := readKeyInput(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	rawAppID, hasAppID := d.GetOk(fieldAppID)
	_, hasVerify := d.GetOk(fieldVerify)
	bringsKey := ki.hasKey || ki.generate
	e, err := readConfigEntry(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return configMissing(req.MountPoint, name), nil
	}
	arrayFields := presentFields(req, []string{fieldClientID, fieldKeyID, fieldIssuer})
	switch {
	case e.isArray() && hasAppID:
		return logical.ErrorResponse("app_id is a Pure1 application's; config %q is a %s: name the new API client with client_id and key_id", name, e.Kind), nil
	case !e.isArray() && len(arrayFields) > 0:
		return logical.ErrorResponse("%s applies to array configs; config %q is a Pure1 application: promote with app_id", strings.Join(arrayFields, ", "), name), nil
	case e.isArray() && e.Managed != nil && (len(arrayFields) > 0 || hasVerify):
		return logical.ErrorResponse("config %q has an API client Vault registered itself: a rotation makes, verifies and switches to the new client on its own; "+
			"write vault write -f %sconfig/%s/rotate (optionally with private_key=@new.pem or key_bits)", name, req.MountPoint, name), nil
	case e.isArray() && e.Managed != nil:
		return b.rotateManaged(ctx, req, name, ki)
	case e.isArray() && bringsKey && len(arrayFields) > 0:
		return logical.ErrorResponse("the pending key and its API client are two writes: first store the key (generate_key=true or private_key), " +
			"create an API client with its public key on the array, then write that client's client_id and key_id here"), nil
	case e.isArray() && len(arrayFields) > 0:
		id := purearray.Identity{ClientID: strings.TrimSpace(d.Get(fieldClientID).(string)), KeyID: strings.TrimSpace(d.Get(fieldKeyID).(string)), Issuer: e.Issuer}
		if v, ok := d.GetOk(fieldIssuer); ok {
			id.Issuer = strings.TrimSpace(v.(string))
		}
		if err := id.Validate(); err != nil {
			return logical.ErrorResponse(err.Error()), nil
		}
		for _, f := range []struct{ n, v string }{{fieldClientID, id.ClientID}, {fieldKeyID, id.KeyID}, {fieldIssuer, id.Issuer}} {
			if err := checkLength(f.n, f.v, maxArrayFieldBytes); err != nil {
				return logical.ErrorResponse(err.Error()), nil
			}
		}
		return b.rotatePromote(ctx, req, name, promotion{array: id}, d.Get(fieldVerify).(bool))
	}
	switch {
	case bringsKey && hasAppID:
		return logical.ErrorResponse("the pending key and its app_id are two writes: first store the key (generate_key=true or private_key), " +
			"register its public key in Pure1, then write the app_id Pure1 shows, which proves and promotes the key"), nil
	case bringsKey && hasVerify:
		return logical.ErrorResponse("verify applies to the promotion, with app_id: vault write %sconfig/%s/rotate app_id=... verify=false", req.MountPoint, name), nil
	case bringsKey:
		return b.rotateStorePending(ctx, req, name, ki)
	case hasAppID:
		appID := strings.TrimSpace(rawAppID.(string))
		if err := checkLength(fieldAppID, appID, maxAppIDBytes); err != nil {
			return logical.ErrorResponse(err.Error()), nil
		}
		if err := pure1.ValidateAppID(appID); err != nil {
			return logical.ErrorResponse(err.Error()), nil
		}
		return b.rotatePromote(ctx, req, name, promotion{appID: appID}, d.Get(fieldVerify).(bool))
	}
	return logical.ErrorResponse("nothing to do: start a rotation with vault write %sconfig/%s/rotate generate_key=true (or private_key=@new.pem), "+
		"and after registering its public key in Pure1, finish it with vault write %sconfig/%s/rotate app_id=<the new application ID>",
		req.MountPoint, name, req.MountPoint, name), nil
}

func configMissing(mount, name string) *logical.Response {
	return logical.ErrorResponse("config %q does not exist: there is no key to rotate; create it with vault write %sconfig/%s generate_key=true", name, mount, name)
}

func (b *backend) rotateStorePending(ctx context.Context, req *logical.Request, name string, ki keyInput) (*logical.Response, error) {
	// Checked before the key work too, so that a typo in the name costs no
	// key generation.
	if e, err := readConfigEntry(ctx, req.Storage, name); err != nil || e == nil {
		if err != nil {
			return nil, err
		}
		return configMissing(req.MountPoint, name), nil
	}
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

	if old.isArray() {
		warnings = append(warnings, fmt.Sprintf("credentials are still issued with the active key (fingerprint %s) and API client %q. Next: create an API client with public_key "+
			"on the array and enable it, then: vault write %sconfig/%s/rotate client_id=<its id> key_id=<its key_id>",
			activeFP, old.ClientID, req.MountPoint, name))
	} else {
		warnings = append(warnings, fmt.Sprintf("credentials are still issued with the active key (fingerprint %s) and app_id %q. Next: register public_key in Pure1 "+
			"(Administration > API Registration > Register Application), then: vault write %sconfig/%s/rotate app_id=<the application ID Pure1 shows>",
			activeFP, old.AppID, req.MountPoint, name))
	}
	resp := &logical.Response{Data: rotateData(&entry)}
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	return resp, nil
}

// promotion names the client a pending key is promoted under: a Pure1
// application, or an array's API client.
type promotion struct {
	appID string
	array purearray.Identity
}

// rotatePromote proves the pending key under p with a live exchange (unless
// verify is false) and only then makes it the active key.
func (b *backend) rotatePromote(ctx context.Context, req *logical.Request, name string, p promotion, verify bool) (*logical.Response, error) {
	appID := p.appID
	if appID == "" {
		appID = p.array.ClientID // what messages and logs call the application
	}
	e, err := readConfigEntry(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return configMissing(req.MountPoint, name), nil
	}
	if e.Pending == nil {
		return logical.ErrorResponse("config %q has no pending key to promote: start with vault write %sconfig/%s/rotate generate_key=true "+
			"(or private_key=@new.pem); to change only the application ID of the active key, write app_id to %sconfig/%s",
			name, req.MountPoint, name, req.MountPoint, name), nil
	}
	if e.isArray() && p.array.ClientID == e.ClientID {
		return logical.ErrorResponse("client_id %q is the active API client: the pending key (fingerprint %s) needs the new API client created with its own public key", appID, e.Pending.Fingerprint), nil
	}
	if !e.isArray() && appID == e.AppID {
		return logical.ErrorResponse("app_id %q is the active key's application: the pending key (fingerprint %s) needs the application Pure1 "+
			"created when its own public key was registered", appID, e.Pending.Fingerprint), nil
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
	var up upstream
	if e.isArray() {
		signer, err := purearray.NewSigner(p.array, pending)
		if err != nil {
			return logical.ErrorResponse(err.Error()), nil
		}
		arr, err := b.arrayFor(e)
		if err != nil {
			return logical.ErrorResponse("config %q: %v", name, err), nil
		}
		up = b.arrayUpstream(arr, e, signer, e.Username)
	} else {
		signer, err := pure1.NewSigner(appID, pending)
		if err != nil {
			return logical.ErrorResponse(err.Error()), nil
		}
		up = b.pure1Upstream(e.TokenURL, signer)
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
		return logical.ErrorResponse("token_url of config %q changed while the pending key was being verified: nothing was promoted; write app_id again", name), nil
	}

	now := b.now().UTC()
	next := *cur
	if old := b.storedKey(name, cur); old != nil {
		next.Previous = &previousKey{
			PublicKey:    old.PublicKeyPEM(),
			Fingerprint:  old.Fingerprint(),
			AppID:        cur.AppID,
			KeyCreatedAt: cur.KeyCreatedAt,
			RetiredAt:    now,
		}
		if cur.isArray() {
			next.Previous.AppID = cur.ClientID
		}
	}
	next.PrivateKey = cur.Pending.PrivateKey
	next.KeySource = cur.Pending.KeySource
	next.KeyCreatedAt = cur.Pending.CreatedAt
	if cur.isArray() {
		next.ClientID, next.KeyID, next.Issuer = p.array.ClientID, p.array.KeyID, p.array.Issuer
	} else {
		next.AppID = appID
	}
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
	if p := next.Previous; p != nil && p.AppID != "" && cur.isArray() {
		warnings = append(warnings, fmt.Sprintf("credentials are now issued with API client %q. Those issued under the previous client %q stay valid until they expire; "+
			"after that, delete that API client on the array", appID, p.AppID))
	} else if p != nil && p.AppID != "" {
		warnings = append(warnings, fmt.Sprintf("credentials are now issued with app_id %q. Those issued under the previous app_id %q stay valid at Pure1 "+
			"until they expire (access tokens live about 10 hours); after that, delete application %q in Pure1 (Administration > API Registration)",
			appID, p.AppID, p.AppID))
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
	d := map[string]interface{}{
		fieldActiveAppID: e.AppID,
	}
	if e.isArray() {
		d[fieldActiveAppID] = e.ClientID
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
