package backend

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
)

const configStoragePrefix = "config/"

// Fields of config/<name>.
const (
	fieldAppID              = "app_id"
	fieldPrivateKey         = "private_key"
	fieldPrivateKeyPassword = "private_key_password"
	fieldGenerateKey        = "generate_key"
	fieldKeyBits            = "key_bits"
	fieldTokenURL           = "token_url"
	fieldMaxKeyAge          = "max_key_age"
	// Read-only, in responses.
	fieldPublicKey            = "public_key"
	fieldPublicKeyFingerprint = "public_key_fingerprint"
	fieldKeySource            = "key_source"
	fieldKeyCreatedAt         = "key_created_at"
	// Of a rotation in progress and of the key it replaced (path_rotate.go).
	fieldPendingFingerprint  = "pending_public_key_fingerprint"
	fieldPendingCreatedAt    = "pending_key_created_at"
	fieldPreviousFingerprint = "previous_public_key_fingerprint"
	fieldPreviousAppID       = "previous_app_id"
	fieldPreviousRetiredAt   = "previous_retired_at"
)

// Size limits: far above any real value, low enough that a mistaken upload
// (a whole keystore, a binary) is refused instead of stored.
const (
	maxPrivateKeyBytes = 64 << 10
	maxPasswordBytes   = 1024
	maxAppIDBytes      = 256
	maxTokenURLBytes   = 2048
)

const (
	configHelpSynopsis    = "Configure a Pure1 application: its ID and RSA private key."
	configHelpDescription = `
A config holds one Pure1 application (Pure1 > Administration > API Registration):
its application ID and the RSA private key whose public half is registered there.

Bring a key:   vault write pure1/config/NAME app_id=pure1:apikey:... \
                   private_key=@private.pem private_key_password=-
               (the password from stdin: on the command line, ps shows it)
Or let Vault make one, so it never exists outside Vault:
               vault write pure1/config/NAME generate_key=true
               (register the returned public_key in Pure1, then)
               vault write pure1/config/NAME app_id=pure1:apikey:...

The private key is accepted as PKCS#1 or PKCS#8 PEM, plain or encrypted (the
legacy "Proc-Type: 4,ENCRYPTED" PEM of OpenSSL 1.1's genrsa -aes256, and the
"ENCRYPTED PRIVATE KEY" PKCS#8 of OpenSSL 3's). The password decrypts it once and
is not stored. The key is never returned: reads show the public key and its
SHA-256 fingerprint. A write that sets only app_id or token_url keeps the key; a
new key clears app_id, because Pure1 gives every key pair its own application.
A config that a role uses cannot be deleted.

Once roles use a config that has an app_id, a new key is refused here: replace
it with config/NAME/rotate, which keeps the current key issuing credentials until
the new one is registered in Pure1 and proven by a token exchange. max_key_age
(e.g. 8760h) adds a warning to reads of the config and to every credential once
the active key is older, as a reminder to rotate.

A FlashArray or FlashBlade API client instead: kind=flasharray (or flashblade),
array_url=https://<array>, ca_cert=@array-ca.pem, username=<array user for
Vault's own verification exchanges>, and either
  admin_api_token=@token-file [api_client_name=...] [max_role=readonly]
      [access_token_ttl=1h] [rotation_period=720h]
  (Vault creates, enables, verifies, rotates and deletes its own API client;
  the token is write-only), or
  client_id=... key_id=... issuer=... with private_key or generate_key
  (a client an operator created on the array).
Roles on it name the array user: vault write pure1/roles/NAME config=fa username=ops.
The array's host must be allowed by the plugin's registrar, like
token_url's: vault plugin register -env PURE1_ALLOWED_TOKEN_HOSTS=host
(the word loopback for an address on the Vault host).
`
	configListHelpSynopsis = "List the configured Pure1 applications."
)

func pathConfig(b *backend) []*framework.Path {
	fields := map[string]*framework.FieldSchema{}
	for k, v := range arrayConfigFields() {
		fields[k] = v
	}
	paths := []*framework.Path{
		{
			Pattern: configStoragePrefix + framework.GenericNameRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "pure1",
				OperationSuffix: "config",
			},
			Fields: map[string]*framework.FieldSchema{
				"name": {
					Type:        framework.TypeString,
					Description: "Name of the config; roles refer to it.",
					Required:    true,
				},
				fieldAppID: {
					Type:        framework.TypeString,
					Description: "Pure1 application ID, like pure1:apikey:iRT5OwhslZVLWNGG, shown when the public key is registered in Pure1.",
				},
				fieldPrivateKey: {
					Type:        framework.TypeString,
					Description: "PEM RSA private key (PKCS#1 or PKCS#8, plain or encrypted), at least 2048 bits. From the CLI: private_key=@private.pem. Never returned.",
					DisplayAttrs: &framework.DisplayAttributes{
						Sensitive: true,
						EditType:  "file",
					},
				},
				fieldPrivateKeyPassword: {
					Type:         framework.TypeString,
					Description:  "Password of an encrypted private_key. Used once to decrypt it; never stored. From the CLI: private_key_password=- (stdin) or =@file, never the password itself, which ps shows.",
					DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
				},
				fieldGenerateKey: {
					Type:        framework.TypeBool,
					Description: "Generate a new RSA key pair inside Vault instead of importing one. The response shows the public key to register in Pure1.",
				},
				fieldKeyBits: {
					Type:        framework.TypeInt,
					Default:     pure1.DefaultKeyBits,
					Description: "Size of a generated key: 2048 (what Pure1 documents), 3072 or 4096. Only with generate_key=true.",
				},
				fieldTokenURL: {
					Type:        framework.TypeString,
					Default:     pure1.DefaultTokenURL,
					Description: "Pure1 token endpoint: https://api.pure1.purestorage.com/... Another https host only when the plugin is registered with -env PURE1_ALLOWED_TOKEN_HOSTS=host; a loopback address (a local emulator, http allowed) only with PURE1_ALLOWED_TOKEN_HOSTS=loopback.",
				},
				fieldMaxKeyAge: {
					Type:        framework.TypeDurationSecond,
					Description: "Warn on config reads and on every credential once the active key is older than this (e.g. 8760h); 0 turns the warning off. Rotate with config/NAME/rotate.",
				},
			},
			ExistenceCheck: b.pathConfigExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: &framework.PathOperation{
					Callback:                    b.pathConfigWrite,
					Summary:                     "Create a Pure1 application config, importing or generating its key.",
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses:                   configResponses,
				},
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathConfigWrite,
					Summary:                     "Update a Pure1 application config; unset fields keep their values.",
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses:                   configResponses,
				},
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathConfigRead,
					Summary:   "Read a Pure1 application config: its public key, never the private key.",
					Responses: configResponses,
				},
				logical.DeleteOperation: &framework.PathOperation{
					Callback:                    b.pathConfigDelete,
					Summary:                     "Delete a Pure1 application config that no role uses.",
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
			},
			HelpSynopsis:    configHelpSynopsis,
			HelpDescription: strings.TrimSpace(configHelpDescription),
		},
		{
			Pattern: strings.TrimSuffix(configStoragePrefix, "/") + "/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "pure1",
				OperationSuffix: "configs",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathConfigList,
					Summary:  "List config names.",
				},
			},
			HelpSynopsis:    configListHelpSynopsis,
			HelpDescription: configListHelpSynopsis,
		},
	}
	for k, v := range fields {
		paths[0].Fields[k] = v
	}
	return paths
}

var configResponses = map[int][]framework.Response{
	200: {{
		Description: "OK",
		Fields: map[string]*framework.FieldSchema{
			fieldAppID:                {Type: framework.TypeString, Description: "Pure1 application ID; empty until written."},
			fieldPublicKey:            {Type: framework.TypeString, Description: "PEM public key (SubjectPublicKeyInfo) to register in Pure1."},
			fieldPublicKeyFingerprint: {Type: framework.TypeString, Description: "Lowercase hex SHA-256 of the public key's DER."},
			fieldKeyBits:              {Type: framework.TypeInt, Description: "RSA key size."},
			fieldKeySource:            {Type: framework.TypeString, Description: "generated, or the format the key was imported in."},
			fieldTokenURL:             {Type: framework.TypeString, Description: "Pure1 token endpoint."},
			fieldKeyCreatedAt:         {Type: framework.TypeTime, Description: "When the active key was generated in or imported into Vault (RFC 3339); empty for a key stored before this was recorded."},
			fieldMaxKeyAge:            {Type: framework.TypeDurationSecond, Description: "Key age after which reads and credentials carry a warning; 0 if off."},
			fieldPendingFingerprint:   {Type: framework.TypeString, Description: "During a rotation: the pending key's fingerprint (see config/NAME/rotate)."},
			fieldPendingCreatedAt:     {Type: framework.TypeTime, Description: "During a rotation: when the pending key was made."},
			fieldPreviousFingerprint:  {Type: framework.TypeString, Description: "After a rotation: the fingerprint of the key it replaced."},
			fieldPreviousAppID:        {Type: framework.TypeString, Description: "After a rotation: the application ID of the key it replaced; delete that application in Pure1 once its tokens have expired."},
			fieldPreviousRetiredAt:    {Type: framework.TypeTime, Description: "After a rotation: when the previous key stopped signing."},
		},
	}},
}

// The array fields are documented in path_config_array.go; config and
// rotate responses carry them for array configs.
func init() {
	for k, v := range arrayConfigResponseFields {
		configResponses[200][0].Fields[k] = v
		if _, ok := rotateResponses[200][0].Fields[k]; !ok {
			rotateResponses[200][0].Fields[k] = v
		}
	}
}

// configEntry is what is stored at config/<name>, behind the barrier and seal
// wrap. PrivateKey is unencrypted PKCS#8 PEM. Entries stored before rotation
// existed have only the first four fields; the others decode as zero values,
// which mean "unknown" (KeyCreatedAt) or "none".
type configEntry struct {
	layoutVersion

	AppID      string `json:"app_id"`
	PrivateKey string `json:"private_key"`
	KeySource  string `json:"key_source"`
	TokenURL   string `json:"token_url"`

	KeyCreatedAt time.Time     `json:"key_created_at,omitzero"`
	MaxKeyAge    time.Duration `json:"max_key_age,omitempty"`
	// Pending is the key of a rotation in progress: stored, never used to
	// sign credentials until config/<name>/rotate promotes it.
	Pending *pendingKey `json:"pending,omitempty"`
	// Previous is what the last promotion retired, public parts only: it
	// tells the operator which Pure1 application to delete.
	Previous *previousKey `json:"previous,omitempty"`

	// Kind is "" (Pure1, as every entry stored before arrays existed) or
	// flasharray / flashblade; the fields below are an array's only
	// (path_config_array.go).
	Kind     string `json:"kind,omitempty"`
	ArrayURL string `json:"array_url,omitempty"`
	CACert   string `json:"ca_cert,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	KeyID    string `json:"key_id,omitempty"`
	Issuer   string `json:"issuer,omitempty"`
	// Username is the array user that verification exchanges sign for.
	Username string         `json:"username,omitempty"`
	Managed  *managedClient `json:"managed,omitempty"`
	// RotationPeriod schedules a managed array config's rotation, counted
	// from KeyCreatedAt (rotate_schedule.go); 0: none.
	RotationPeriod time.Duration `json:"rotation_period,omitempty"`
	// AllowedArrayRoles limits the array roles of the users api_token roles
	// make (array_users.go); empty: readonly only.
	AllowedArrayRoles []string `json:"allowed_array_roles,omitempty"`
}

// pendingKey carries its public half beside the private key so that reading a
// config never parses it: a damaged pending key must not break credentials.
type pendingKey struct {
	PrivateKey  string    `json:"private_key"`
	PublicKey   string    `json:"public_key"`
	Fingerprint string    `json:"public_key_fingerprint"`
	KeyBits     int       `json:"key_bits"`
	KeySource   string    `json:"key_source"`
	CreatedAt   time.Time `json:"created_at"`
}

type previousKey struct {
	PublicKey   string `json:"public_key"`
	Fingerprint string `json:"public_key_fingerprint"`
	AppID       string `json:"app_id"`
	// Of an array's API client: its name, and whether Vault deleted it.
	ClientName string `json:"client_name,omitempty"`
	Deleted    bool   `json:"deleted,omitempty"`
	// RetireAt is when the delete list removes a managed client: once the
	// longest credential it issued has expired. Zero for entries stored
	// before retirement existed, whose client was deleted at promotion.
	RetireAt     time.Time `json:"retire_at,omitzero"`
	KeyCreatedAt time.Time `json:"key_created_at,omitzero"`
	RetiredAt    time.Time `json:"retired_at"`
}

// config is a configEntry with its key parsed once, as cached.
type config struct {
	name  string
	entry configEntry
	kind  configKind
	key   *pure1.Key
	// signer signs a JWT for user sub (arrays; Pure1 has none); nil until
	// the config can sign (a Pure1 app_id, an array's API client).
	signer func(now time.Time, life time.Duration, sub string) (string, time.Time, error)
	// clientID is what credentials carry as app_id: the Pure1 application,
	// or the array's API client id.
	clientID string
	// identity names what a credential depends on: the key, the client and
	// the endpoint. A token cached or in flight under another identity is
	// never handed out for this config.
	identity string
	// digest is identity hashed, as static tokens record it; computed once,
	// on first use, since a static-creds read compares it.
	digestOnce sync.Once
	digest     string
	// adminDigest is what an array user's API token depends on: the array,
	// its CA and the admin token that makes it (staticIdentity). Arrays
	// only; hashed once here, since a static-creds read compares it.
	adminDigest string
}

// newConfig builds the cached form of e. key is e's key when the caller has
// it parsed already; nil parses the stored PEM.
func newConfig(name string, e *configEntry, key *pure1.Key) (*config, error) {
	if key == nil {
		var err error
		if key, err = pure1.ParsePrivateKey([]byte(e.PrivateKey), nil); err != nil {
			return nil, fmt.Errorf("stored key of config %q is unreadable: %w", name, err)
		}
	}
	c := &config{name: name, entry: *e, kind: e.kind(), key: key}
	if err := c.kind.open(c); err != nil {
		return nil, err
	}
	return c, nil
}

// ready reports whether the config can sign.
func (c *config) ready() bool { return c.signer != nil }

func (c *config) responseData() map[string]interface{} { return c.kind.describe(c) }

// formatTime is RFC 3339 in UTC, or "" for an unknown (zero) time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// keyAgeWarning is the reminder max_key_age asks for, or "" while the active
// key is younger (or its age is unknown: stored before ages were recorded).
func (c *config) keyAgeWarning(now time.Time, mount string) string {
	if c.entry.MaxKeyAge <= 0 || c.entry.KeyCreatedAt.IsZero() {
		return ""
	}
	age := now.Sub(c.entry.KeyCreatedAt)
	if age <= c.entry.MaxKeyAge {
		return ""
	}
	return fmt.Sprintf("the key of config %q was created %s ago (%s), longer than its max_key_age of %s: rotate it with "+
		"vault write %sconfig/%s/rotate generate_key=true (bootstrap/rotate-key.sh walks through it)",
		c.name, age.Truncate(time.Hour), formatTime(c.entry.KeyCreatedAt), c.entry.MaxKeyAge, mount, c.name)
}

func readConfigEntry(ctx context.Context, s logical.Storage, name string) (*configEntry, error) {
	return readEntry[configEntry](ctx, s, configStoragePrefix+name, fmt.Sprintf("config %q", name))
}

// getConfig returns the config, parsed, from the cache or storage; nil if
// there is none.
func (b *backend) getConfig(ctx context.Context, s logical.Storage, name string) (*config, error) {
	b.cacheLock.RLock()
	c, ok := b.configs[name]
	gen := b.gen
	b.cacheLock.RUnlock()
	if ok {
		return c, nil
	}
	e, err := readConfigEntry(ctx, s, name)
	if err != nil || e == nil {
		return nil, err
	}
	if c, err = newConfig(name, e, nil); err != nil {
		return nil, err
	}
	b.cacheLock.Lock()
	if cur, ok := b.configs[name]; ok {
		c = cur // another reader filled it first: share its Signer
	} else if b.gen == gen {
		b.configs[name] = c
	}
	b.cacheLock.Unlock()
	return c, nil
}

func (b *backend) pathConfigExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	e, err := readConfigEntry(ctx, req.Storage, d.Get("name").(string))
	return e != nil, err
}

func (b *backend) pathConfigRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	c, err := b.getConfig(ctx, req.Storage, d.Get("name").(string))
	if err != nil || c == nil {
		return nil, err
	}
	resp := &logical.Response{Data: c.responseData()}
	pending, err := b.pendingDeletions(ctx, req.Storage, c.name)
	if err != nil {
		return nil, err
	}
	if len(pending) > 0 {
		resp.Data[fieldPendingDeletions] = pending
	}
	if f := b.rotations.get(c.name); f.failures > 0 {
		resp.Data[fieldRotationFailures] = f.failures
	}
	for _, w := range []string{c.keyAgeWarning(b.now(), req.MountPoint), b.rotations.warning(c.name)} {
		if w != "" {
			resp.AddWarning(w)
		}
	}
	return resp, nil
}

func (b *backend) pathConfigList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	names, err := req.Storage.List(ctx, configStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing configs: %w", err)
	}
	return logical.ListResponse(names), nil
}

func (b *backend) pathConfigDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	released, refusal, err := b.deleteConfig(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if refusal != "" {
		return logical.ErrorResponse(refusal), nil
	}
	b.dropSession(name) // its logout outside the write lock
	if len(released) == 0 {
		return nil, nil
	}
	// Outside the write lock: the array may be slow or down, and whatever
	// it does not take now the loop retries.
	b.drainNow(ctx, req.Storage, name)
	left, err := b.pendingDeletions(ctx, req.Storage, name)
	if err != nil || len(left) == 0 {
		return nil, err
	}
	resp := &logical.Response{}
	resp.AddWarning(fmt.Sprintf("config %q was deleted; its API clients on the array could not all be deleted yet: %s. "+
		"Vault keeps retrying in the background (metric pure1_array_clients_pending_deletion)", name, pendingSummary(left)))
	return resp, nil
}

// deleteConfig deletes config name unless a role uses it, putting what it
// leaves on an array on the delete list in the same locked step: storage
// never forgets a client Vault made.
func (b *backend) deleteConfig(ctx context.Context, s logical.Storage, name string) ([]*cleanupEntry, string, error) {
	b.writeLock.Lock()
	defer b.writeLock.Unlock()
	users, err := b.rolesUsingConfig(ctx, s, name)
	if err != nil {
		return nil, "", err
	}
	if len(users) > 0 {
		return nil, fmt.Sprintf("config %q is used by role(s) %s: delete those roles or point them at another config first",
			name, strings.Join(users, ", ")), nil
	}
	old, err := readConfigEntry(ctx, s, name)
	if err != nil || old == nil {
		return nil, "", err
	}
	released := old.kind().release(name, old, b.now())
	if err := b.queueCleanup(ctx, s, released...); err != nil {
		return nil, "", fmt.Errorf("config %q was not deleted: %w", name, err)
	}
	if err := s.Delete(ctx, configStoragePrefix+name); err != nil {
		return nil, "", fmt.Errorf("deleting config %q: %w", name, err)
	}
	b.dropConfig(name)
	b.metrics.forgetConfig(name)
	return released, "", nil
}

// configWrite is one validated write to config/<name>, before it is applied.
type configWrite struct {
	keyInput
	appID, tokenURL string
	// has*: the field was in the request, so an update changes it.
	hasAppID, hasTokenURL bool
}

func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if err := rejectUnknownFields(req, d); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	name := d.Get("name").(string)
	kind, refusal, err := b.configKind(ctx, req, d, name)
	if err != nil {
		return nil, err
	}
	if refusal != "" {
		return logical.ErrorResponse(refusal), nil
	}
	return kind.writeConfig(ctx, b, req, d, name)
}

// newKeyRefusal explains why a new key is not written straight to a config
// that roles use, and gives the rotation that replaces it without an outage.
func newKeyRefusal(mount, name, appID string, roles []string) string {
	return fmt.Sprintf("config %q is in use (app_id %q, role(s) %s): a new key written here would break every read until Pure1 knows it. "+
		"Rotate instead, which keeps the current key working until the new one is proven: "+
		"vault write %sconfig/%s/rotate generate_key=true (or private_key=@new.pem), register the public key it shows in Pure1, then "+
		"vault write %sconfig/%s/rotate app_id=<the new application ID>",
		name, appID, strings.Join(roles, ", "), mount, name, mount, name)
}

// putConfig stores e at config/<name> and drops what is cached of the
// config: every cache keyed by its identity (shared tokens, exchanges in
// flight, checks) then follows the stored config with the next read, and
// static tokens refresh. Other nodes do the same from Invalidate. Every
// config write goes through here, so none can leave a stale cache behind.
func (b *backend) putConfig(ctx context.Context, s logical.Storage, name string, e *configEntry) error {
	if err := putEntry(ctx, s, configStoragePrefix+name, fmt.Sprintf("config %q", name), e); err != nil {
		return err
	}
	b.dropConfig(name)
	return nil
}

// storedKeyFingerprint is the fingerprint of e's active key, from the cache
// when it holds the same entry; "" when the stored key is unreadable, which
// no new key equals.
func (b *backend) storedKeyFingerprint(name string, e *configEntry) string {
	if k := b.storedKey(name, e); k != nil {
		return k.Fingerprint()
	}
	return ""
}

// readMaxKeyAge reads max_key_age, when the write has it.
func readMaxKeyAge(d *framework.FieldData) (time.Duration, bool, error) {
	v, ok := d.GetOk(fieldMaxKeyAge)
	if !ok {
		return 0, false, nil
	}
	secs := v.(int)
	if secs < 0 {
		return 0, false, errors.New("max_key_age must not be negative: give a duration such as 8760h, or 0 to turn the warning off")
	}
	return time.Duration(secs) * time.Second, true, nil
}

// readConfigWrite collects and checks the fields of a config write that can
// be checked without storage.
func readConfigWrite(d *framework.FieldData, hosts pure1.HostPolicy) (*configWrite, error) {
	ki, err := readKeyInput(d)
	if err != nil {
		return nil, err
	}
	w := &configWrite{keyInput: ki}
	var v interface{}
	if v, w.hasAppID = d.GetOk(fieldAppID); w.hasAppID {
		w.appID = strings.TrimSpace(v.(string))
		if err := checkLength(fieldAppID, w.appID, maxAppIDBytes); err != nil {
			return nil, err
		}
		if w.appID != "" {
			if err := pure1.ValidateAppID(w.appID); err != nil {
				return nil, err
			}
		}
	}
	if v, w.hasTokenURL = d.GetOk(fieldTokenURL); w.hasTokenURL {
		w.tokenURL = strings.TrimSpace(v.(string))
		if err := checkLength(fieldTokenURL, w.tokenURL, maxTokenURLBytes); err != nil {
			return nil, err
		}
		if w.tokenURL == "" {
			w.tokenURL = pure1.DefaultTokenURL
		}
		if err := hosts.Check(fieldTokenURL, w.tokenURL); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// printable shortens user input echoed back in an error. A PEM block (a key
// pasted into the wrong field) is not echoed at all: errors reach the CLI,
// clients' logs and, as response data, the audit log.
func printable(s string) string {
	if strings.Contains(s, "-----BEGIN") || strings.Contains(s, "PRIVATE KEY") {
		return "<PEM data, not shown>"
	}
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// rolesUsingConfig lists the roles that refer to config name, sorted; static
// roles as static-roles/<name>.
func (b *backend) rolesUsingConfig(ctx context.Context, s logical.Storage, name string) ([]string, error) {
	roles, err := s.List(ctx, roleStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing roles: %w", err)
	}
	var users []string
	for _, r := range roles {
		e, err := readRoleEntry(ctx, s, r)
		if err != nil {
			return nil, err
		}
		if e != nil && e.Config == name {
			users = append(users, r)
		}
	}
	statics, err := s.List(ctx, staticRoleStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing static roles: %w", err)
	}
	for _, r := range statics {
		e, err := readStaticRoleEntry(ctx, s, r)
		if err != nil {
			return nil, err
		}
		if e != nil && e.Config == name {
			users = append(users, staticRoleStoragePrefix+r)
		}
	}
	sort.Strings(users)
	return users, nil
}

// configKind is the kind a write to config/<name> is for: the stored one (a
// kind never changes: roles and stored tokens depend on it), else the
// requested one, else pure1.
func (b *backend) configKind(ctx context.Context, req *logical.Request, d *framework.FieldData, name string) (kind configKind, refusal string, err error) {
	old, err := readConfigEntry(ctx, req.Storage, name)
	if err != nil {
		return nil, "", err
	}
	v, asked := d.GetOk(fieldKind)
	want := kindPure1
	if asked {
		want = v.(string)
	}
	k, err := kindNamed(want)
	if err != nil {
		return nil, err.Error(), nil
	}
	if old == nil {
		return k, "", nil
	}
	if asked && want != old.kindName() {
		return nil, fmt.Sprintf("config %q is a %s config; its kind cannot change to %s: delete it (and its roles) and create it again, or use another name",
			name, old.kindName(), want), nil
	}
	return old.kind(), "", nil
}
