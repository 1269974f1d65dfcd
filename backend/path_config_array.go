package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray"
)

// Fields of config/<name> for a FlashArray or FlashBlade.
const (
	fieldKind           = "kind"
	fieldArrayURL       = "array_url"
	fieldCACert         = "ca_cert"
	fieldClientID       = "client_id"
	fieldKeyID          = "key_id"
	fieldIssuer         = "issuer"
	fieldUsername       = "username"
	fieldAdminAPIToken  = "admin_api_token"
	fieldAPIClientName  = "api_client_name"
	fieldAccessTokenTTL = "access_token_ttl"
	// Read-only, in responses.
	fieldManaged                 = "managed"
	fieldPreviousClientID        = "previous_client_id"
	fieldPreviousAPIClientName   = "previous_api_client_name"
	fieldPreviousClientDeleted   = "previous_api_client_deleted"
	fieldCACertFingerprint       = "ca_cert_fingerprint"
	fieldAdminAPITokenConfigured = "admin_api_token_configured"
	fieldNextRotation            = "next_rotation"
)

// Config kinds.
const (
	kindPure1 = "pure1"
)

// flashBladeClientName is what a FlashBlade takes as an API client name:
// letters, digits and '_', at most 56 characters (as Pure's FlashBlade
// Ansible collection checks it). No '-' or '.', which a FlashArray takes.
var flashBladeClientName = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_]{0,54}[a-zA-Z0-9])?$`)

// clientNameSeparator joins a managed client's base name and the time of a
// rotation: a character both the array and the name rules accept.
func clientNameSeparator(kind string) string {
	if kind == purearray.KindFlashBlade {
		return "_"
	}
	return "-"
}

// Array API client roles, as FlashArray and FlashBlade name them.
var arrayMaxRoles = []string{"readonly", "ops_admin", "storage_admin", "array_admin"}

const (
	defaultArrayMaxRole = "readonly"
	maxCACertBytes      = 64 << 10
	maxArrayFieldBytes  = 256
	maxAPITokenBytes    = 1024
	// An array takes access_token_ttl_in_ms between 1 s and 1 day.
	minAccessTokenTTL = time.Second
	maxAccessTokenTTL = 24 * time.Hour
	// maxClientNameBytes leaves room for the suffix a rotation adds.
	maxClientNameBytes = 40
)

// managedClient is the API client Vault registered itself, with the array
// credential it did so with. Stored seal-wrapped under config/; the token is
// never returned or logged.
type managedClient struct {
	AdminAPIToken string `json:"admin_api_token"`
	// BaseName is what the operator asked for; Name is the client that is
	// active now (BaseName, or BaseName-<unix time> after a rotation).
	BaseName       string        `json:"base_name"`
	Name           string        `json:"name"`
	MaxRole        string        `json:"max_role"`
	AccessTokenTTL time.Duration `json:"access_token_ttl,omitempty"`
}

func (e *configEntry) isArray() bool { return e.Kind != "" && e.Kind != kindPure1 }

// kindName is the kind as shown: pure1 for entries stored before kinds.
func (e *configEntry) kindName() string {
	if e.Kind == "" {
		return kindPure1
	}
	return e.Kind
}

func (e *configEntry) arrayIdentity() purearray.Identity {
	return purearray.Identity{ClientID: e.ClientID, KeyID: e.KeyID, Issuer: e.Issuer}
}

// newArrayConfig finishes newConfig for an array: its identity names what an
// access token depends on (key, client, array and the CA it is reached with).
func newArrayConfig(c *config) (*config, error) {
	e := &c.entry
	c.identity = strings.Join([]string{c.key.Fingerprint(), e.Kind, e.ClientID, e.KeyID, e.Issuer, e.ArrayURL, fingerprintText(e.CACert)}, "\x00")
	if e.ClientID != "" {
		s, err := purearray.NewSigner(e.arrayIdentity(), c.key)
		if err != nil {
			return nil, fmt.Errorf("config %q: %w", c.name, err)
		}
		c.arraySigner = s
	}
	return c, nil
}

func arrayConfigFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		fieldKind: {
			Type:          framework.TypeString,
			Default:       kindPure1,
			AllowedValues: []interface{}{kindPure1, purearray.KindFlashArray, purearray.KindFlashBlade},
			Description:   "pure1 (default): a Pure1 application. flasharray or flashblade: an API client of one array, at array_url. Fixed once the config exists.",
		},
		fieldArrayURL: {
			Type:        framework.TypeString,
			Description: "Arrays: https://<array management address>. Its host must be allowed like token_url's (loopback, or PURE1_ALLOWED_TOKEN_HOSTS set by the plugin's registrar).",
		},
		fieldCACert: {
			Type:         framework.TypeString,
			Description:  "Arrays: PEM of the CA that signed the array's certificate (ca_cert=@array-ca.pem); empty trusts the system's roots. There is no option to skip verification.",
			DisplayAttrs: &framework.DisplayAttributes{EditType: "file"},
		},
		fieldClientID: {
			Type:        framework.TypeString,
			Description: "Arrays, API client registered by an operator: the client's id (the JWT's aud).",
		},
		fieldKeyID: {
			Type:        framework.TypeString,
			Description: "Arrays, API client registered by an operator: the client's key_id (the JWT's kid).",
		},
		fieldIssuer: {
			Type:        framework.TypeString,
			Description: "Arrays: the API client's issuer (the JWT's iss). With managed registration it defaults to api_client_name.",
		},
		fieldUsername: {
			Type:        framework.TypeString,
			Description: "Arrays: the array user that Vault's own verification exchanges (registration, rotation, check) sign for. Roles name their own user.",
		},
		fieldAdminAPIToken: {
			Type:         framework.TypeString,
			Description:  "Arrays, managed registration: an array API token of a user who may manage API clients. Vault creates, enables, rotates and deletes its own API client with it. Write-only, stored seal-wrapped, never returned. From the CLI: admin_api_token=- (stdin) or @file.",
			DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
		},
		fieldAPIClientName: {
			Type:        framework.TypeString,
			Description: fmt.Sprintf("Arrays, managed registration: name of the API client Vault creates (default vault-<config name>, at most %d characters); rotations add -<unix time>.", maxClientNameBytes),
		},
		fieldMaxRole: {
			Type:        framework.TypeString,
			Description: "Arrays, managed registration: the API client's max_role: readonly (default), ops_admin, storage_admin or array_admin. A token's rights are this intersected with its user's role.",
		},
		fieldAccessTokenTTL: {
			Type:        framework.TypeDurationSecond,
			Description: "Arrays, managed registration: lifetime of the access tokens the array issues, 1s to 24h; unset takes the array's default (1 day).",
		},
		fieldRotationPeriod: {
			Type: framework.TypeDurationSecond,
			Description: fmt.Sprintf("Arrays, managed registration: rotate the API client on this schedule (at least %s), counted from when the active key was made; "+
				"Vault does it in the background as config/NAME/rotate would. 0 (default) turns it off.", minConfigRotationPeriod),
		},
	}
}

var arrayConfigResponseFields = map[string]*framework.FieldSchema{
	fieldKind:                    {Type: framework.TypeString, Description: "pure1, flasharray or flashblade."},
	fieldArrayURL:                {Type: framework.TypeString, Description: "Arrays: the array's address."},
	fieldCACertFingerprint:       {Type: framework.TypeString, Description: "Arrays: SHA-256 of ca_cert as written, or empty (system roots)."},
	fieldClientID:                {Type: framework.TypeString, Description: "Arrays: the active API client's id."},
	fieldKeyID:                   {Type: framework.TypeString, Description: "Arrays: the active API client's key_id."},
	fieldIssuer:                  {Type: framework.TypeString, Description: "Arrays: the API client's issuer."},
	fieldUsername:                {Type: framework.TypeString, Description: "Arrays: the user of Vault's verification exchanges."},
	fieldManaged:                 {Type: framework.TypeBool, Description: "Arrays: whether Vault registered (and rotates) the API client itself."},
	fieldAdminAPITokenConfigured: {Type: framework.TypeBool, Description: "Arrays: whether an admin_api_token is stored (never shown)."},
	fieldAPIClientName:           {Type: framework.TypeString, Description: "Arrays, managed: the active API client's name."},
	fieldAccessTokenTTL:          {Type: framework.TypeDurationSecond, Description: "Arrays, managed: the access token lifetime asked of the array; 0 is its default."},
	fieldPreviousClientID:        {Type: framework.TypeString, Description: "Arrays, after a rotation: the retired API client's id."},
	fieldPreviousAPIClientName:   {Type: framework.TypeString, Description: "Arrays, after a rotation: the retired API client's name."},
	fieldPreviousClientDeleted:   {Type: framework.TypeBool, Description: "Arrays, after a managed rotation: whether Vault deleted the retired client at the array."},
	fieldRotationPeriod:          {Type: framework.TypeDurationSecond, Description: "Arrays, managed: the scheduled rotation's period; 0 if off."},
	fieldNextRotation:            {Type: framework.TypeTime, Description: "Arrays, managed, with rotation_period: when the next scheduled rotation is due."},
}

func (c *config) arrayResponseData() map[string]interface{} {
	e := &c.entry
	d := map[string]interface{}{
		fieldKind:                    e.kindName(),
		fieldArrayURL:                e.ArrayURL,
		fieldCACertFingerprint:       fingerprintText(e.CACert),
		fieldClientID:                e.ClientID,
		fieldKeyID:                   e.KeyID,
		fieldIssuer:                  e.Issuer,
		fieldUsername:                e.Username,
		fieldManaged:                 e.Managed != nil,
		fieldAdminAPITokenConfigured: e.Managed != nil && e.Managed.AdminAPIToken != "",
		fieldPublicKey:               c.key.PublicKeyPEM(),
		fieldPublicKeyFingerprint:    c.key.Fingerprint(),
		fieldKeyBits:                 c.key.Bits(),
		fieldKeySource:               e.KeySource,
		fieldKeyCreatedAt:            formatTime(e.KeyCreatedAt),
		fieldMaxKeyAge:               int64(e.MaxKeyAge / time.Second),
	}
	if m := e.Managed; m != nil {
		d[fieldAPIClientName] = m.Name
		d[fieldMaxRole] = m.MaxRole
		d[fieldAccessTokenTTL] = int64(m.AccessTokenTTL / time.Second)
		d[fieldRotationPeriod] = int64(e.RotationPeriod / time.Second)
		d[fieldNextRotation] = formatTime(e.nextRotation())
	}
	if p := e.Pending; p != nil {
		d[fieldPendingFingerprint] = p.Fingerprint
		d[fieldPendingCreatedAt] = formatTime(p.CreatedAt)
	}
	if p := e.Previous; p != nil {
		d[fieldPreviousFingerprint] = p.Fingerprint
		d[fieldPreviousClientID] = p.AppID
		d[fieldPreviousAPIClientName] = p.ClientName
		d[fieldPreviousClientDeleted] = p.Deleted
		d[fieldPreviousRetiredAt] = formatTime(p.RetiredAt)
	}
	return d
}

// arrayOnlyFields are refused on a Pure1 config, pure1OnlyFields on an
// array's: a field that would be silently ignored is a mistake to point out.
var (
	arrayOnlyFields = []string{fieldArrayURL, fieldCACert, fieldClientID, fieldKeyID, fieldIssuer, fieldUsername,
		fieldAdminAPIToken, fieldAPIClientName, fieldMaxRole, fieldAccessTokenTTL, fieldRotationPeriod}
	pure1OnlyFields = []string{fieldAppID, fieldTokenURL}
)

// presentFields lists which of fields the request carries.
func presentFields(req *logical.Request, fields []string) []string {
	var out []string
	for _, f := range fields {
		if _, ok := req.Data[f]; ok {
			out = append(out, f)
		}
	}
	return out
}

// arrayWrite is one validated write to an array config, before it is applied.
type arrayWrite struct {
	keyInput
	kind                                      string
	arrayURL, caCert, clientID, keyID, issuer string
	username, adminToken, clientName, maxRole string
	accessTokenTTL                            time.Duration
	hasArrayURL, hasCACert, hasClientID       bool
	hasKeyID, hasIssuer, hasUsername          bool
	hasAdminToken, hasClientName, hasMaxRole  bool
	hasAccessTokenTTL                         bool
	rotationPeriod                            time.Duration
	hasRotationPeriod                         bool
}

// readArrayWrite collects and checks the fields of an array config write that
// can be checked without storage.
func readArrayWrite(d *framework.FieldData, kind string, hosts pure1.HostPolicy) (*arrayWrite, error) {
	ki, err := readKeyInput(d)
	if err != nil {
		return nil, err
	}
	w := &arrayWrite{keyInput: ki, kind: kind}
	str := func(field string, max int, dst *string, has *bool) error {
		v, ok := d.GetOk(field)
		if !ok {
			return nil
		}
		*has = true
		*dst = strings.TrimSpace(v.(string))
		if err := checkLength(field, *dst, max); err != nil {
			return err
		}
		if strings.ContainsFunc(*dst, func(r rune) bool { return r < 0x20 || r == 0x7f }) && field != fieldCACert {
			return fmt.Errorf("%s contains control characters: copy the value again", field)
		}
		return nil
	}
	for _, f := range []struct {
		name string
		max  int
		dst  *string
		has  *bool
	}{
		{fieldArrayURL, maxTokenURLBytes, &w.arrayURL, &w.hasArrayURL},
		{fieldCACert, maxCACertBytes, &w.caCert, &w.hasCACert},
		{fieldClientID, maxArrayFieldBytes, &w.clientID, &w.hasClientID},
		{fieldKeyID, maxArrayFieldBytes, &w.keyID, &w.hasKeyID},
		{fieldIssuer, maxArrayFieldBytes, &w.issuer, &w.hasIssuer},
		{fieldUsername, maxArrayFieldBytes, &w.username, &w.hasUsername},
		{fieldAdminAPIToken, maxAPITokenBytes, &w.adminToken, &w.hasAdminToken},
		{fieldAPIClientName, maxClientNameBytes, &w.clientName, &w.hasClientName},
		{fieldMaxRole, maxArrayFieldBytes, &w.maxRole, &w.hasMaxRole},
	} {
		if err := str(f.name, f.max, f.dst, f.has); err != nil {
			return nil, err
		}
	}
	if w.hasArrayURL {
		if err := checkArrayURL(w.arrayURL, hosts); err != nil {
			return nil, err
		}
	}
	if w.hasCACert && w.caCert != "" {
		if _, err := purearray.ParseCACert([]byte(w.caCert)); err != nil {
			return nil, err
		}
	}
	if w.hasUsername && w.username == "" {
		return nil, errors.New("username is empty: give the array user that Vault's verification exchanges sign for")
	}
	if w.hasAdminToken && w.adminToken == "" {
		return nil, errors.New("admin_api_token is empty: give an array API token (pureadmin create --api-token) of a user who may manage API clients")
	}
	if w.hasClientName && (w.clientName == "" || !nameRegex.MatchString(w.clientName)) {
		return nil, fmt.Errorf("api_client_name %q is not a valid API client name: letters, digits, '-', '_' and '.', starting and ending with a letter or digit", printable(w.clientName))
	}
	if w.hasMaxRole && !contains(arrayMaxRoles, w.maxRole) {
		return nil, fmt.Errorf("max_role %q is not an array role: use one of %s", printable(w.maxRole), strings.Join(arrayMaxRoles, ", "))
	}
	if v, ok := d.GetOk(fieldAccessTokenTTL); ok {
		w.hasAccessTokenTTL = true
		w.accessTokenTTL = time.Duration(v.(int)) * time.Second
		if w.accessTokenTTL != 0 && (w.accessTokenTTL < minAccessTokenTTL || w.accessTokenTTL > maxAccessTokenTTL) {
			return nil, fmt.Errorf("access_token_ttl %s is out of range: an array takes %s to %s (0 for its default)", w.accessTokenTTL, minAccessTokenTTL, maxAccessTokenTTL)
		}
	}
	if v, ok := d.GetOk(fieldRotationPeriod); ok {
		w.hasRotationPeriod = true
		w.rotationPeriod = time.Duration(v.(int)) * time.Second
		if w.rotationPeriod < 0 {
			return nil, errors.New("rotation_period must not be negative")
		}
		if w.rotationPeriod != 0 && w.rotationPeriod < minConfigRotationPeriod {
			return nil, fmt.Errorf("rotation_period %s is too short: give at least %s (or 0 to turn scheduled rotation off)", w.rotationPeriod, minConfigRotationPeriod)
		}
	}
	managedFields := anyTrue(w.hasAdminToken, w.hasClientName, w.hasMaxRole, w.hasAccessTokenTTL)
	if (w.hasClientID || w.hasKeyID) && managedFields {
		return nil, errors.New("client_id/key_id name an API client an operator registered; admin_api_token, api_client_name, max_role and access_token_ttl ask Vault to register its own: use one or the other")
	}
	return w, nil
}

func anyTrue(has ...bool) bool {
	for _, h := range has {
		if h {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// checkArrayURL refuses an array address that is not https or whose host the
// registrar has not allowed: the JWTs and the admin token go there.
func checkArrayURL(raw string, hosts pure1.HostPolicy) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return errors.New("array_url must be an absolute URL such as https://array.example.com")
	}
	if u.Scheme != "https" {
		return fmt.Errorf("array_url must use https, not %q: arrays serve their REST API over TLS (give ca_cert for an array's own CA)", printable(u.Scheme))
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("array_url is the array's address only, such as https://array.example.com: no path or query")
	}
	return hosts.Check(fieldArrayURL, raw)
}

// pathArrayConfigWrite is config/<name> for kind flasharray or flashblade.
// With admin_api_token (managed registration) Vault registers its own API
// client: the array calls run before the write lock is taken, and the result
// is stored only if the config did not change meanwhile; otherwise the new
// client is deleted again.
func (b *backend) pathArrayConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData, name, kind string) (*logical.Response, error) {
	if bad := presentFields(req, pure1OnlyFields); len(bad) > 0 {
		return logical.ErrorResponse("%s applies to kind=pure1 configs only: an array's API client is named by client_id, key_id and issuer (or registered by Vault with admin_api_token)",
			strings.Join(bad, ", ")), nil
	}
	w, err := readArrayWrite(d, kind, b.hosts)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	maxKeyAge, hasMaxKeyAge, err := readMaxKeyAge(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	old, err := readConfigEntry(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	entry, refusal := mergeArrayWrite(name, old, w)
	if refusal != "" {
		return logical.ErrorResponse(refusal), nil
	}
	register := entry.Managed != nil && entry.ClientID == ""
	if old != nil && old.ClientID != "" && (w.hasKey || w.generate) {
		return logical.ErrorResponse("config %q already has API client %q: a new key needs a new API client; replace it without an outage with vault write %sconfig/%s/rotate",
			name, old.ClientID, req.MountPoint, name), nil
	}
	if register && !w.hasKey {
		w.generate = true // a managed client's key is made inside Vault unless one is brought
	}
	nk, err := b.loadKey(ctx, w.keyInput)
	if err != nil {
		return nil, err
	}
	if nk.refusal != "" {
		return logical.ErrorResponse(nk.refusal), nil
	}
	key, warnings := nk.key, nk.warnings
	if old == nil && key == nil {
		return logical.ErrorResponse("config %q has no key yet: supply private_key=@private.pem (the key whose public half the API client was created with), "+
			"generate_key=true, or admin_api_token for Vault to register its own client", name), nil
	}
	if key != nil {
		entry.PrivateKey = string(key.MarshalPKCS8PEM())
		entry.KeySource = nk.source
		entry.KeyCreatedAt = b.now().UTC()
	}
	if hasMaxKeyAge {
		entry.MaxKeyAge = maxKeyAge
	}
	if key == nil {
		if key = b.storedKey(name, old); key == nil {
			return nil, fmt.Errorf("the stored key of config %q is unreadable", name)
		}
	}

	var registered *purearray.APIClient
	if register {
		if registered, err = b.registerManaged(ctx, name, &entry, key, entry.Managed.BaseName); err != nil {
			return registerFailure(err, name)
		}
		entry.ClientID, entry.KeyID = registered.ID, registered.KeyID
		entry.Managed.Name = registered.Name
	}

	c, err := newConfig(name, &entry, key)
	if err != nil {
		b.undoRegistration(&entry, registered)
		return nil, err
	}
	if !register {
		// A working config stays working: a new ca_cert or admin token is
		// proven against the array before it replaces the old one.
		if refusal := b.verifyArrayChange(ctx, c, old); refusal != "" {
			return logical.ErrorResponse(refusal), nil
		}
	}
	b.writeLock.Lock()
	defer b.writeLock.Unlock()
	cur, err := readConfigEntry(ctx, req.Storage, name)
	if err != nil {
		b.undoRegistration(&entry, registered)
		return nil, err
	}
	if !sameEntry(cur, old) {
		b.undoRegistration(&entry, registered)
		return logical.ErrorResponse("config %q changed while this write ran; nothing was stored (and no API client kept): read it and write again", name), nil
	}
	if err := b.putConfig(ctx, req.Storage, name, &entry); err != nil {
		b.undoRegistration(&entry, registered)
		return nil, err
	}
	if registered != nil {
		b.Logger().Info("array API client registered", "config", name, "api_client", registered.Name, "client_id", registered.ID)
	}
	if entry.ClientID == "" {
		warnings = append(warnings, fmt.Sprintf("no API client yet: create one on the array with this public_key (pureapiclient create --issuer ... --public-key, then pureapiclient enable), "+
			"then: vault write %sconfig/%s client_id=<id> key_id=<key_id> issuer=<issuer>; or let Vault do it: vault write %sconfig/%s admin_api_token=-",
			req.MountPoint, name, req.MountPoint, name))
	}
	resp := &logical.Response{Data: c.responseData()}
	for _, warn := range warnings {
		resp.AddWarning(warn)
	}
	return resp, nil
}

// sameEntry reports whether storage still holds what a write started from.
func sameEntry(a, b *configEntry) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// mergeArrayWrite applies w to old (nil: a new config) and returns the entry
// to store, or why the write is refused.
func mergeArrayWrite(name string, old *configEntry, w *arrayWrite) (configEntry, string) {
	var e configEntry
	if old != nil {
		e = *old
		if e.Managed != nil {
			m := *e.Managed
			e.Managed = &m
		}
	} else {
		e.Kind = w.kind
	}
	if w.hasArrayURL {
		if old != nil && old.ClientID != "" && old.ArrayURL != w.arrayURL {
			return e, fmt.Sprintf("array_url of config %q cannot change while it has API client %q, which lives on %s: delete the config (and the client) and create it again",
				name, old.ClientID, old.ArrayURL)
		}
		e.ArrayURL = w.arrayURL
	}
	if w.hasCACert {
		e.CACert = w.caCert
	}
	if w.hasUsername {
		e.Username = w.username
	}
	if e.ArrayURL == "" {
		return e, "array_url is required for a " + w.kind + " config: the array's address, such as https://array.example.com"
	}
	if e.Username == "" {
		return e, "username is required for a " + w.kind + " config: the array user (e.g. pureuser) that Vault's own verification exchanges sign for"
	}
	managed := w.hasAdminToken || w.hasClientName || w.hasMaxRole || w.hasAccessTokenTTL
	if w.hasRotationPeriod {
		if e.Managed == nil && !managed {
			return e, "rotation_period needs managed registration (admin_api_token): without it each rotation needs a person to create the new API client (config/" + name + "/rotate)"
		}
		e.RotationPeriod = w.rotationPeriod
	}
	switch {
	case managed && old != nil && old.Managed == nil && old.ClientID != "":
		return e, fmt.Sprintf("config %q uses API client %q that an operator registered: managed registration (admin_api_token) is for a new config; create another config for it", name, old.ClientID)
	case managed && e.Managed == nil && !w.hasAdminToken:
		return e, "managed registration needs admin_api_token: an array API token of a user who may manage API clients"
	case managed:
		if e.Managed == nil {
			e.Managed = &managedClient{BaseName: "vault-" + name, MaxRole: defaultArrayMaxRole}
		}
		m := e.Managed
		if w.hasAdminToken {
			m.AdminAPIToken = w.adminToken
		}
		registered := e.ClientID != ""
		if registered && (w.hasClientName || w.hasMaxRole || w.hasAccessTokenTTL) {
			return e, fmt.Sprintf("api_client_name, max_role and access_token_ttl are fixed once API client %q exists: change them on the array, or create a new config", m.Name)
		}
		if w.hasClientName {
			m.BaseName = w.clientName
		}
		if len(m.BaseName) > maxClientNameBytes {
			return e, fmt.Sprintf("api_client_name %q is longer than %d characters: give a shorter api_client_name", m.BaseName, maxClientNameBytes)
		}
		if e.Kind == purearray.KindFlashBlade && !flashBladeClientName.MatchString(m.BaseName) {
			return e, fmt.Sprintf("api_client_name %q is not a FlashBlade API client name: use letters, digits and '_' only (no '-' or '.')", printable(m.BaseName))
		}
		if w.hasMaxRole {
			m.MaxRole = w.maxRole
		}
		if w.hasAccessTokenTTL {
			m.AccessTokenTTL = w.accessTokenTTL
		}
		if w.hasIssuer && !registered {
			e.Issuer = w.issuer
		}
		if e.Issuer == "" {
			e.Issuer = m.BaseName
		}
	default:
		if w.hasClientID {
			e.ClientID = w.clientID
		}
		if w.hasKeyID {
			e.KeyID = w.keyID
		}
		if w.hasIssuer {
			e.Issuer = w.issuer
		}
		if e.Managed == nil && (e.ClientID != "" || e.KeyID != "") {
			if err := e.arrayIdentity().Validate(); err != nil {
				return e, err.Error() + " (client_id, key_id and issuer go together)"
			}
		}
	}
	return e, ""
}

// verifyArrayChange proves what a write changes on a config that has an API
// client already: a new ca_cert by an exchange as the config's username at
// the array (so a wrong CA cannot break every read), a new admin_api_token by
// a login (so the next rotation does not find it wrong). It returns why the
// write is refused, or "" when there was nothing to prove or it held.
func (b *backend) verifyArrayChange(ctx context.Context, c *config, old *configEntry) string {
	e := &c.entry
	if old == nil || old.ClientID == "" {
		return ""
	}
	if e.CACert != old.CACert {
		if _, err := b.exchangeWith(ctx, c, e.Username, "new ca_cert of config "+c.name); err != nil {
			return fmt.Sprintf("config %q: with the new ca_cert the array at %s did not accept API client %q, so nothing was stored: %s. "+
				"Check that ca_cert is the CA that signed the array's certificate", c.name, e.ArrayURL, e.ClientID, sentence(err))
		}
	}
	if e.Managed != nil && old.Managed != nil && e.Managed.AdminAPIToken != old.Managed.AdminAPIToken {
		arr, err := b.arrayFor(e)
		if err == nil {
			_, err = arr.Admin(ctx, e.Managed.AdminAPIToken)
		}
		if err != nil {
			return fmt.Sprintf("config %q: the array at %s did not accept the new admin_api_token, so nothing was stored: %s",
				c.name, e.ArrayURL, sentence(err))
		}
	}
	return ""
}
