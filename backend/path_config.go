package backend

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

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
	// Read-only, in responses.
	fieldPublicKey            = "public_key"
	fieldPublicKeyFingerprint = "public_key_fingerprint"
	fieldKeySource            = "key_source"
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
`
	configListHelpSynopsis = "List the configured Pure1 applications."
)

func pathConfig(b *backend) []*framework.Path {
	return []*framework.Path{
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
					Description: "Pure1 token endpoint: https://api.pure1.purestorage.com/..., or a loopback address (a local emulator, http allowed). Another https host only when the plugin is registered with -env PURE1_ALLOWED_TOKEN_HOSTS=host.",
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
		},
	}},
}

// configEntry is what is stored at config/<name>, behind the barrier and seal
// wrap. PrivateKey is unencrypted PKCS#8 PEM.
type configEntry struct {
	AppID      string `json:"app_id"`
	PrivateKey string `json:"private_key"`
	KeySource  string `json:"key_source"`
	TokenURL   string `json:"token_url"`
}

// config is a configEntry with its key parsed once, as cached.
type config struct {
	name   string
	entry  configEntry
	key    *pure1.Key
	signer *pure1.Signer // nil until app_id is written
	// identity names what a Pure1 credential depends on: the key, the
	// application and the endpoint. A token cached or in flight under
	// another identity is never handed out for this config.
	identity string
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
	c := &config{
		name:     name,
		entry:    *e,
		key:      key,
		identity: key.Fingerprint() + "\x00" + e.AppID + "\x00" + e.TokenURL,
	}
	var err error
	if e.AppID != "" {
		if c.signer, err = pure1.NewSigner(e.AppID, key); err != nil {
			return nil, fmt.Errorf("config %q: %w", name, err)
		}
	}
	return c, nil
}

func (c *config) responseData() map[string]interface{} {
	return map[string]interface{}{
		fieldAppID:                c.entry.AppID,
		fieldPublicKey:            c.key.PublicKeyPEM(),
		fieldPublicKeyFingerprint: c.key.Fingerprint(),
		fieldKeyBits:              c.key.Bits(),
		fieldKeySource:            c.entry.KeySource,
		fieldTokenURL:             c.entry.TokenURL,
	}
}

func readConfigEntry(ctx context.Context, s logical.Storage, name string) (*configEntry, error) {
	raw, err := s.Get(ctx, configStoragePrefix+name)
	if err != nil {
		return nil, fmt.Errorf("reading config %q: %w", name, err)
	}
	if raw == nil {
		return nil, nil
	}
	var e configEntry
	if err := raw.DecodeJSON(&e); err != nil {
		return nil, fmt.Errorf("decoding config %q: %w", name, err)
	}
	return &e, nil
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
	return &logical.Response{Data: c.responseData()}, nil
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
	b.writeLock.Lock()
	defer b.writeLock.Unlock()

	users, err := b.rolesUsingConfig(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if len(users) > 0 {
		return logical.ErrorResponse("config %q is used by role(s) %s: delete those roles or point them at another config first",
			name, strings.Join(users, ", ")), nil
	}
	if err := req.Storage.Delete(ctx, configStoragePrefix+name); err != nil {
		return nil, fmt.Errorf("deleting config %q: %w", name, err)
	}
	b.dropConfig(name)
	return nil, nil
}

// configWrite is one validated write to config/<name>, before it is applied.
type configWrite struct {
	privateKey, password, appID, tokenURL string
	keyBits                               int
	generate                              bool
	// has*: the field was in the request, so an update changes it.
	hasKey, hasPassword, hasAppID, hasTokenURL, keyBitsSet bool
}

func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if err := rejectUnknownFields(req, d); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	name := d.Get("name").(string)
	w, err := readConfigWrite(d, b.hosts)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}

	b.writeLock.Lock()
	defer b.writeLock.Unlock()

	old, err := readConfigEntry(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if old == nil && !w.hasKey && !w.generate {
		return logical.ErrorResponse("config %q has no key yet: supply private_key=@private.pem (with private_key_password if it is encrypted) "+
			"for a key registered in Pure1, or generate_key=true to create the key pair inside Vault", name), nil
	}

	entry := configEntry{TokenURL: pure1.DefaultTokenURL}
	if old != nil {
		entry = *old
	}
	var warnings []string
	var key *pure1.Key
	switch {
	case w.hasKey:
		key, err = pure1.ParsePrivateKey([]byte(w.privateKey), []byte(w.password))
		if err != nil {
			return logical.ErrorResponse(privateKeyError(err)), nil
		}
		if w.hasPassword && !strings.Contains(key.Format, "encrypted") {
			warnings = append(warnings, "private_key is not encrypted; private_key_password was ignored")
		}
		entry.KeySource = "imported (" + key.Format + ")"
	case w.generate:
		bits := pure1.DefaultKeyBits
		if w.keyBitsSet {
			bits = w.keyBits
		}
		if key, err = pure1.GenerateKey(bits); err != nil {
			return logical.ErrorResponse(err.Error()), nil
		}
		entry.KeySource = "generated"
	}

	if key != nil {
		entry.PrivateKey = string(key.MarshalPKCS8PEM())
		// PKCS#8 encoding is deterministic: the same key pair stores the same.
		sameKey := old != nil && old.PrivateKey == entry.PrivateKey
		if old != nil && !sameKey && !w.hasAppID && old.AppID != "" {
			// Pure1 binds one application ID to one public key.
			entry.AppID = ""
			warnings = append(warnings, fmt.Sprintf("the key changed, so app_id %q was cleared: register the new public key in Pure1 and write its app_id", old.AppID))
		}
	}
	if w.hasAppID {
		entry.AppID = w.appID
	}
	if w.hasTokenURL {
		entry.TokenURL = w.tokenURL
	}

	c, err := newConfig(name, &entry, key)
	if err != nil {
		return nil, err
	}
	je, err := logical.StorageEntryJSON(configStoragePrefix+name, entry)
	if err != nil {
		return nil, fmt.Errorf("encoding config %q: %w", name, err)
	}
	if err := req.Storage.Put(ctx, je); err != nil {
		return nil, fmt.Errorf("storing config %q: %w", name, err)
	}
	b.dropConfig(name)

	if entry.AppID == "" {
		warnings = append(warnings, fmt.Sprintf(
			"no app_id yet: register public_key in Pure1 (Administration > API Registration > Register Application), "+
				"then: vault write %sconfig/%s app_id=<the application ID Pure1 shows>", req.MountPoint, name))
	}
	resp := &logical.Response{Data: c.responseData()}
	for _, warn := range warnings {
		resp.AddWarning(warn)
	}
	return resp, nil
}

// readConfigWrite collects and checks the fields of a config write that can
// be checked without storage.
func readConfigWrite(d *framework.FieldData, hosts pure1.HostPolicy) (*configWrite, error) {
	w := &configWrite{}
	var v interface{}
	if v, w.hasKey = d.GetOk(fieldPrivateKey); w.hasKey {
		w.privateKey = v.(string)
		if strings.TrimSpace(w.privateKey) == "" {
			return nil, errors.New("private_key is empty: pass the PEM file, e.g. private_key=@private.pem")
		}
		if err := checkLength(fieldPrivateKey, w.privateKey, maxPrivateKeyBytes); err != nil {
			return nil, err
		}
	}
	if v, w.hasPassword = d.GetOk(fieldPrivateKeyPassword); w.hasPassword {
		w.password = v.(string)
		if err := checkLength(fieldPrivateKeyPassword, w.password, maxPasswordBytes); err != nil {
			return nil, err
		}
		if !w.hasKey {
			return nil, errors.New("private_key_password is only used to decrypt a private_key written in the same request")
		}
	}
	w.generate = d.Get(fieldGenerateKey).(bool)
	if v, w.keyBitsSet = d.GetOk(fieldKeyBits); w.keyBitsSet {
		w.keyBits = v.(int)
		if !w.generate {
			return nil, errors.New("key_bits applies only with generate_key=true; an imported key keeps its own size")
		}
	}
	if w.generate && w.hasKey {
		return nil, errors.New("private_key and generate_key=true exclude each other: import a key, or let Vault generate one")
	}
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

// privateKeyError explains a key that was refused, naming the field to fix.
func privateKeyError(err error) string {
	switch {
	case errors.Is(err, pure1.ErrPasswordRequired):
		return "private_key is encrypted: supply private_key_password"
	case errors.Is(err, pure1.ErrWrongPassword):
		return "private_key_password does not decrypt private_key: check the password"
	}
	return "private_key: " + err.Error()
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

// rolesUsingConfig lists the roles that refer to config name, sorted.
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
	sort.Strings(users)
	return users, nil
}
