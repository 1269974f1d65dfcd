package backend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
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
	fieldPreviousClientDeleteAt  = "previous_api_client_delete_at"
	fieldPendingDeletions        = "pending_deletions"
	fieldRotationFailures        = "scheduled_rotation_failures"
	fieldAllowedArrayRoles       = "allowed_array_roles"
)

// Array API client roles, as FlashArray and FlashBlade name them.
var arrayMaxRoles = []string{"readonly", "ops_admin", "storage_admin", "array_admin"}

const (
	defaultArrayMaxRole = "readonly"
	maxCACertBytes      = 64 << 10
	maxArrayFieldBytes  = 256
	maxAPITokenBytes    = 1024
	// An array takes access_token_ttl_in_ms from 1 s, but a token that
	// short is useless here: a lease ends 5 s before its token, a shared
	// token is handed out only while a minute of it is left, and a static
	// token is refreshed at most every 10 s. Below minutes every read would
	// exchange (and a static one write storage), so minutes it is.
	minAccessTokenTTL = 5 * time.Minute
	maxAccessTokenTTL = 24 * time.Hour
	// defaultArrayTokenTTL is an array's access token lifetime when the
	// client asks for none (Pure's API client models: 86400000 ms).
	defaultArrayTokenTTL = 24 * time.Hour
	// maxClientNameBytes leaves room for the suffix a rotation adds.
	maxClientNameBytes = purearray.MaxBaseName
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

func (e *configEntry) arrayIdentity() purearray.Identity {
	return purearray.Identity{ClientID: e.ClientID, KeyID: e.KeyID, Issuer: e.Issuer}
}

// arrayKind is what FlashArray and FlashBlade configs share: an API client
// of one array, registered by an operator or by Vault itself (managed), and
// exchanged at the array for a user. Each kind is a type of its own
// (kind_flasharray.go, kind_flashblade.go) over its wire in purearray.
type arrayKind struct {
	wire *purearray.Kind
}

func (k arrayKind) Name() string { return k.wire.Name }

// open: an array credential depends on the key, the client, the array and
// the CA it is reached through; it can sign once the client is known.
func (k arrayKind) open(c *config) error {
	e := &c.entry
	c.identity = strings.Join([]string{c.key.Fingerprint(), e.Kind, e.ClientID, e.KeyID, e.Issuer, e.ArrayURL, fingerprintText(e.CACert)}, "\x00")
	token := ""
	if e.Managed != nil {
		token = e.Managed.AdminAPIToken
	}
	sum := sha256.Sum256([]byte(e.Kind + "\x00" + e.ArrayURL + "\x00" + e.CACert + "\x00" + token))
	c.adminDigest = hex.EncodeToString(sum[:16])
	if e.ClientID == "" {
		return nil
	}
	s, err := purearray.NewSigner(e.arrayIdentity(), c.key)
	if err != nil {
		return fmt.Errorf("config %q: %w", c.name, err)
	}
	c.clientID = s.Identity().ClientID
	c.signer = s.Sign
	return nil
}

func (k arrayKind) target(b *backend, c *config, sub string) (upstream, error) {
	arr, err := b.arrayFor(c.name, &c.entry)
	if err != nil {
		return upstream{}, fmt.Errorf("%w: config %q: %w", pure1.ErrRejected, c.name, err)
	}
	return arrayUpstream(arr, &c.entry, c.clientID, c.signer, sub), nil
}

// arrayUpstream is the exchange of an API client's JWTs for user sub at e's
// array.
func arrayUpstream(arr purearray.Array, e *configEntry, clientID string, sign func(time.Time, time.Duration, string) (string, time.Time, error), sub string) upstream {
	return upstream{ex: arr, tokenURL: purearray.TokenURL(e.ArrayURL), clientID: clientID, upstream: "array", idKey: "client_id",
		sign: func(now time.Time, life time.Duration, _ string) (string, time.Time, error) {
			return sign(now, life, sub)
		}}
}

func (k arrayKind) checkUser(configName, username string) string {
	if username == "" {
		return fmt.Sprintf("username is required: config %q is a %s, whose tokens carry the rights of an array user (the JWT's sub), e.g. username=pureuser", configName, k.wire.Product)
	}
	return ""
}

func (k arrayKind) notReady(c *config, mount string) string {
	return fmt.Sprintf("config %q has no API client yet: write its client_id, key_id and issuer, or admin_api_token for Vault to register one "+
		"(vault path-help %sconfig/%s)", c.name, mount, c.name)
}

func (k arrayKind) lacks() string { return "API client" }

func (k arrayKind) endpoint(c *config) (string, string) { return fieldArrayURL, c.entry.ArrayURL }

func (k arrayKind) exchangeRefused(c *config, err error) string {
	return fmt.Sprintf("the %s at %s rejected the token exchange for API client %q: %s. Check that the client is enabled and "+
		"holds the public key with fingerprint %s, that the role's username exists on the array, and that this node's clock is right",
		k.wire.Product, c.entry.ArrayURL, c.clientID, sentence(err), c.key.Fingerprint())
}

func (k arrayKind) exchangeFailed(c *config, err error) string {
	return fmt.Sprintf("the token exchange for API client %q at the %s at %s failed: %s", c.clientID, k.wire.Product, c.entry.ArrayURL, sentence(err))
}

func (k arrayKind) checkAdvice(c *config, err error) string {
	switch {
	case errors.Is(err, pure1.ErrRejected):
		return fmt.Sprintf("the %s refused the exchange: check on the array (pureapiclient list, or Settings > Access > API Clients) that API client %q is enabled "+
			"and holds the public key whose fingerprint is %s, that user %q exists, and that this Vault node's clock is right",
			k.wire.Product, c.clientID, c.key.Fingerprint(), c.entry.Username)
	case errors.Is(err, pure1.ErrBadResponse):
		return fmt.Sprintf("the answer was not an array's token response: check that array_url %s is the %s's management address", c.entry.ArrayURL, k.wire.Product)
	}
	return fmt.Sprintf("the %s could not be reached or kept failing: check this Vault node's network and DNS towards %s, ca_cert, and the array's status; "+
		"credentials of access_token roles on this config fail the same way meanwhile", k.wire.Product, c.entry.ArrayURL)
}

func (k arrayKind) pendingNextStep(e *configEntry, activeFP, mount, name string) string {
	return fmt.Sprintf("credentials are still issued with the active key (fingerprint %s) and API client %q. Next: create an API client with public_key "+
		"on the array and enable it, then: vault write %sconfig/%s/rotate client_id=<its id> key_id=<its key_id>",
		activeFP, e.ClientID, mount, name)
}

// release: the clients Vault made for a deleted config go to the delete
// list, due at once; an operator's client is the operator's.
func (k arrayKind) release(name string, e *configEntry, now time.Time) []*cleanupEntry {
	m := e.Managed
	if m == nil {
		return nil
	}
	var out []*cleanupEntry
	if e.ClientID != "" {
		out = append(out, newCleanup(name, e, m.Name, e.ClientID, keyFingerprintOf(e.PrivateKey), cleanupConfigDeleted, now, now))
	}
	if p := e.Previous; p != nil && p.ClientName != "" && !p.Deleted {
		out = append(out, newCleanup(name, e, p.ClientName, p.AppID, p.Fingerprint, cleanupConfigDeleted, now, now))
	}
	return out
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
			Description: "Arrays: https://<array management address>. Its host must be allowed by the plugin's registrar: -env PURE1_ALLOWED_TOKEN_HOSTS=host (the word loopback for an address on the Vault host).",
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
			Description: fmt.Sprintf("Arrays, managed registration: name of the API client Vault creates (default vault-<config name> on a FlashArray, vault_<config name> on a FlashBlade, at most %d characters); rotations add -<unix time> (_<unix time> on a FlashBlade).", maxClientNameBytes),
		},
		fieldMaxRole: {
			Type:        framework.TypeString,
			Description: "Arrays, managed registration: the API client's max_role: readonly (default), ops_admin, storage_admin or array_admin. A token's rights are this intersected with its user's role.",
		},
		fieldAccessTokenTTL: {
			Type:        framework.TypeDurationSecond,
			Description: "Arrays, managed registration: lifetime of the access tokens the array issues, 5m to 24h; unset takes the array's default (1 day).",
		},
		fieldAllowedArrayRoles: {
			Type: framework.TypeCommaStringSlice,
			Description: "Arrays: the array roles that roles of credential_type=api_token on this config may give the users Vault makes " +
				"(readonly, ops_admin, storage_admin, array_admin). Default readonly only.",
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
	fieldPreviousClientDeleteAt:  {Type: framework.TypeTime, Description: "Arrays, after a managed rotation: when the retired client is deleted at the array, once the longest credential it issued has expired."},
	fieldPendingDeletions:        {Type: framework.TypeSlice, Description: "Arrays: API clients Vault made that wait on the delete list (name, reason, due, attempts, last error)."},
	fieldRotationFailures:        {Type: framework.TypeInt, Description: "Arrays, managed, with rotation_period: scheduled rotations that failed in a row on this node."},
	fieldRotationPeriod:          {Type: framework.TypeDurationSecond, Description: "Arrays, managed: the scheduled rotation's period; 0 if off."},
	fieldAllowedArrayRoles:       {Type: framework.TypeCommaStringSlice, Description: "Arrays: the array roles api_token roles may give the users Vault makes."},
	fieldNextRotation:            {Type: framework.TypeTime, Description: "Arrays, managed, with rotation_period: when the next scheduled rotation is due."},
}

func (k arrayKind) describe(c *config) map[string]interface{} {
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
		fieldAllowedArrayRoles:       e.allowedArrayRoles(),
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
		d[fieldPreviousClientDeleteAt] = formatTime(p.RetireAt)
	}
	return d
}

// fingerprintText is a short digest of s for reads and identities, so that
// neither shows or stores a second copy of it; "" for "".
func fingerprintText(s string) string {
	if s == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// keyFingerprintOf is the fingerprint of a stored private key's public
// half; "" when it does not parse (then no client is matched by it).
func keyFingerprintOf(pemKey string) string {
	k, err := pure1.ParsePrivateKey([]byte(pemKey), nil)
	if err != nil {
		return ""
	}
	return k.Fingerprint()
}

// arrayOnlyFields are refused on a Pure1 config, pure1OnlyFields on an
// array's: a field that would be silently ignored is a mistake to point out.
var (
	arrayOnlyFields = []string{fieldArrayURL, fieldCACert, fieldClientID, fieldKeyID, fieldIssuer, fieldUsername,
		fieldAdminAPIToken, fieldAPIClientName, fieldMaxRole, fieldAccessTokenTTL, fieldRotationPeriod, fieldAllowedArrayRoles}
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
	kind                                      *purearray.Kind
	arrayURL, caCert, clientID, keyID, issuer string
	username, adminToken, clientName, maxRole string
	accessTokenTTL                            time.Duration
	hasArrayURL, hasCACert, hasClientID       bool
	hasKeyID, hasIssuer, hasUsername          bool
	hasAdminToken, hasClientName, hasMaxRole  bool
	hasAccessTokenTTL                         bool
	rotationPeriod                            time.Duration
	hasRotationPeriod                         bool
	allowedRoles                              []string
	hasAllowedRoles                           bool
}

// readArrayWrite collects and checks the fields of an array config write that
// can be checked without storage.
func readArrayWrite(d *framework.FieldData, kind *purearray.Kind, hosts pure1.HostPolicy) (*arrayWrite, error) {
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
	if w.hasClientName {
		if err := kind.CheckClientName(fieldAPIClientName, w.clientName); err != nil {
			return nil, err
		}
	}
	if w.hasMaxRole && !contains(arrayMaxRoles, w.maxRole) {
		return nil, fmt.Errorf("max_role %q is not an array role: use one of %s", printable(w.maxRole), strings.Join(arrayMaxRoles, ", "))
	}
	if v, ok := d.GetOk(fieldAccessTokenTTL); ok {
		w.hasAccessTokenTTL = true
		w.accessTokenTTL = time.Duration(v.(int)) * time.Second
		if w.accessTokenTTL != 0 && (w.accessTokenTTL < minAccessTokenTTL || w.accessTokenTTL > maxAccessTokenTTL) {
			return nil, fmt.Errorf("access_token_ttl %s is out of range: give %s to %s (0 for the array's default of a day); shorter tokens would be exchanged on nearly every read", w.accessTokenTTL, minAccessTokenTTL, maxAccessTokenTTL)
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
	if v, ok := d.GetOk(fieldAllowedArrayRoles); ok {
		w.hasAllowedRoles = true
		for _, r := range v.([]string) {
			r = strings.TrimSpace(r)
			if r == "" {
				continue
			}
			if !contains(arrayMaxRoles, r) {
				return nil, fmt.Errorf("allowed_array_roles: %q is not an array role: use %s", printable(r), strings.Join(arrayMaxRoles, ", "))
			}
			if !contains(w.allowedRoles, r) {
				w.allowedRoles = append(w.allowedRoles, r)
			}
		}
		if len(w.allowedRoles) == 0 {
			return nil, errors.New("allowed_array_roles is empty: give at least one array role, such as readonly")
		}
	}
	if (w.hasClientID || w.hasKeyID) && w.managed() {
		return nil, errors.New("client_id/key_id name an API client an operator registered; admin_api_token, api_client_name, max_role and access_token_ttl ask Vault to register its own: use one or the other")
	}
	return w, nil
}

// managed reports whether the write asks Vault to register its own client.
func (w *arrayWrite) managed() bool {
	return anyTrue(w.hasAdminToken, w.hasClientName, w.hasMaxRole, w.hasAccessTokenTTL)
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

// writeConfig is config/<name> for an array. With admin_api_token (managed
// registration) Vault registers its own API client: the array calls run
// before the write lock is taken, under a journal entry on the delete list,
// and the result is stored only if the config did not change meanwhile;
// otherwise the new client is deleted again.
func (k arrayKind) writeConfig(ctx context.Context, b *backend, req *logical.Request, d *framework.FieldData, name string) (*logical.Response, error) {
	if bad := presentFields(req, pure1OnlyFields); len(bad) > 0 {
		return logical.ErrorResponse("%s applies to kind=pure1 configs only: an array's API client is named by client_id, key_id and issuer (or registered by Vault with admin_api_token)",
			strings.Join(bad, ", ")), nil
	}
	w, err := readArrayWrite(d, k.wire, b.hosts)
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

	var reg *registration
	if register {
		if reg, err = b.registerManaged(ctx, req.Storage, name, &entry, key, entry.Managed.BaseName); err != nil {
			return registerFailure(err, name)
		}
		entry.ClientID, entry.KeyID = reg.client.ID, reg.client.KeyID
		entry.Managed.Name = reg.client.Name
	}

	c, err := newConfig(name, &entry, key)
	if err != nil {
		b.undoRegistration(ctx, req.Storage, name, reg)
		return nil, err
	}
	if !register {
		// A working config stays working: a new ca_cert or admin token is
		// proven against the array before it replaces the old one.
		if refusal := b.verifyArrayChange(ctx, c, old); refusal != "" {
			return logical.ErrorResponse(refusal), nil
		}
	}
	if err := b.storeIfUnchanged(ctx, req.Storage, name, old, &entry); err != nil {
		b.undoRegistration(ctx, req.Storage, name, reg)
		if errors.Is(err, errConfigChanged) {
			return logical.ErrorResponse("config %q changed while this write ran; nothing was stored (and no API client kept): read it and write again", name), nil
		}
		return nil, err
	}
	if reg != nil {
		b.registrationStored(ctx, req.Storage, reg)
		b.Logger().Info("array API client registered", "config", name, "api_client", reg.client.Name, "client_id", reg.client.ID)
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
		e.Kind = w.kind.Name
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
	if w.hasAllowedRoles {
		e.AllowedArrayRoles = w.allowedRoles
	}
	if e.ArrayURL == "" {
		return e, "array_url is required for a " + w.kind.Name + " config: the array's address, such as https://array.example.com"
	}
	if e.Username == "" {
		return e, "username is required for a " + w.kind.Name + " config: the array user (e.g. pureuser) that Vault's own verification exchanges sign for"
	}
	managed := w.managed()
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
			e.Managed = &managedClient{BaseName: w.kind.DefaultClientName(name), MaxRole: defaultArrayMaxRole}
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
		if err := w.kind.CheckClientName(fieldAPIClientName, m.BaseName); err != nil {
			return e, err.Error() + ": give api_client_name"
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
	case e.Managed != nil && anyTrue(w.hasClientID, w.hasKeyID, w.hasIssuer):
		// Vault proved the client it registered; an unproven client_id,
		// key_id or issuer would break every read, or (client_id="") make
		// Vault register anew and forget the live client.
		return e, fmt.Sprintf("config %q has an API client Vault registered (%q): client_id, key_id and issuer are Vault's to set; "+
			"to replace the client rotate it (vault write -f <mount>config/%s/rotate), or delete the config and create it again", name, e.Managed.Name, name)
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
// a login (so the next rotation does not find it wrong). Both use a client of
// their own, dropped after: a CA that fails is never kept. It returns why the
// write is refused, or "" when there was nothing to prove or it held.
func (b *backend) verifyArrayChange(ctx context.Context, c *config, old *configEntry) string {
	e := &c.entry
	if old == nil || old.ClientID == "" {
		return ""
	}
	caChanged := e.CACert != old.CACert
	tokenChanged := e.Managed != nil && old.Managed != nil && e.Managed.AdminAPIToken != old.Managed.AdminAPIToken
	if !caChanged && !tokenChanged {
		return ""
	}
	arr, err := b.dialArrayOnce(e)
	if err != nil {
		return fmt.Sprintf("config %q: %v", c.name, err)
	}
	defer closeIdle(arr)
	if caChanged {
		up := arrayUpstream(arr, e, c.clientID, c.signer, e.Username)
		if _, err := b.exchangeSigned(ctx, c.name, up, "new ca_cert of config "+c.name); err != nil {
			return fmt.Sprintf("config %q: with the new ca_cert the array at %s did not accept API client %q, so nothing was stored: %s. "+
				"Check that ca_cert is the CA that signed the array's certificate", c.name, e.ArrayURL, e.ClientID, sentence(err))
		}
	}
	if tokenChanged {
		if err := purearray.WithAdmin(ctx, arr, e.Managed.AdminAPIToken, func(purearray.Admin) error { return nil }); err != nil {
			return fmt.Sprintf("config %q: the array at %s did not accept the new admin_api_token, so nothing was stored: %s",
				c.name, e.ArrayURL, sentence(err))
		}
	}
	return ""
}

// arrayConn is the client of one config's array, as cached: dial names the
// address and CA it was built for.
type arrayConn struct {
	dial string
	arr  purearray.Array
}

// arrayFor returns the client of config name's array, reaching it through
// e's CA. One client per config keeps connections alive across exchanges;
// a config whose address or CA changed gets a new one and the old one's
// connections are closed, and a deleted config's goes with it (dropConfig),
// so the cache never outgrows the configs.
func (b *backend) arrayFor(name string, e *configEntry) (purearray.Array, error) {
	dial := e.Kind + "\x00" + e.ArrayURL + "\x00" + fingerprintText(e.CACert)
	b.arraysLock.Lock()
	defer b.arraysLock.Unlock()
	if c, ok := b.arrays[name]; ok {
		if c.dial == dial {
			return c.arr, nil
		}
		closeIdle(c.arr)
		delete(b.arrays, name)
	}
	a, err := b.dialArrayOnce(e)
	if err != nil {
		return nil, err
	}
	b.arrays[name] = arrayConn{dial: dial, arr: a}
	return a, nil
}

// dialArrayOnce builds a client of e's array that nothing caches: for a CA
// not yet stored, or a deleted config's clients on the delete list.
func (b *backend) dialArrayOnce(e *configEntry) (purearray.Array, error) {
	return b.dialArray(purearray.Options{Kind: purearray.KindNamed(e.kindName()), ArrayURL: e.ArrayURL, CACert: []byte(e.CACert), Hosts: b.hosts})
}

// dropArray forgets config name's array client (its config changed or went).
func (b *backend) dropArray(name string) {
	b.arraysLock.Lock()
	c, ok := b.arrays[name]
	delete(b.arrays, name)
	b.arraysLock.Unlock()
	if ok {
		closeIdle(c.arr)
	}
}

// closeArrays drops every array client's idle connections (Clean).
func (b *backend) closeArrays() {
	b.arraysLock.Lock()
	defer b.arraysLock.Unlock()
	for k, c := range b.arrays {
		closeIdle(c.arr)
		delete(b.arrays, k)
	}
}

func closeIdle(a any) {
	if c, ok := a.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// upstream is where one exchange goes and what signs its JWT: Pure1's token
// endpoint and an application's key, or an array's and an API client's key
// for one user.
type upstream struct {
	ex       pure1.Exchanger
	tokenURL string
	clientID string // app_id or client_id, for logs
	upstream string // Pure1 or array, for logs
	idKey    string // app_id or client_id
	sign     func(now time.Time, life time.Duration, sub string) (string, time.Time, error)
}

// rotate: a managed client rotates itself (and retire_previous=now cuts the
// previous one off); an operator's client goes through a pending key, a
// client the operator creates with it, and a promotion proven at the array.
func (k arrayKind) rotate(ctx context.Context, b *backend, req *logical.Request, r *rotateWrite, e *configEntry) (*logical.Response, error) {
	name := r.name
	arrayFields := presentFields(req, arrayRotateFields)
	bringsKey := r.keys.hasKey || r.keys.generate
	switch {
	case r.hasAppID:
		return logical.ErrorResponse("app_id is a Pure1 application's; config %q is a %s: name the new API client with client_id and key_id", name, e.Kind), nil
	case e.Managed != nil && (len(arrayFields) > 0 || r.hasVerify):
		return logical.ErrorResponse("config %q has an API client Vault registered itself: a rotation makes, verifies and switches to the new client on its own; "+
			"write vault write -f %sconfig/%s/rotate (optionally with private_key=@new.pem or key_bits)", name, req.MountPoint, name), nil
	case e.Managed != nil:
		return b.rotateManaged(ctx, req, name, r.keys, r.hasRetire)
	case r.hasRetire:
		return logical.ErrorResponse("retire_previous applies to API clients Vault registered (admin_api_token); config %q uses a client an operator created: "+
			"disable or delete the previous client on the array (pureapiclient delete)", name), nil
	case bringsKey && len(arrayFields) > 0:
		return logical.ErrorResponse("the pending key and its API client are two writes: first store the key (generate_key=true or private_key), " +
			"create an API client with its public key on the array, then write that client's client_id and key_id here"), nil
	case bringsKey && r.hasVerify:
		return logical.ErrorResponse("verify applies to the promotion, with client_id and key_id: vault write %sconfig/%s/rotate client_id=... key_id=... verify=false", req.MountPoint, name), nil
	case bringsKey:
		return b.rotateStorePending(ctx, req, name, r.keys)
	case len(arrayFields) > 0:
		id := purearray.Identity{ClientID: fieldString(req, fieldClientID), KeyID: fieldString(req, fieldKeyID), Issuer: e.Issuer}
		if _, ok := req.Data[fieldIssuer]; ok {
			id.Issuer = fieldString(req, fieldIssuer)
		}
		if err := id.Validate(); err != nil {
			return logical.ErrorResponse(err.Error()), nil
		}
		for _, f := range []struct{ n, v string }{{fieldClientID, id.ClientID}, {fieldKeyID, id.KeyID}, {fieldIssuer, id.Issuer}} {
			if err := checkLength(f.n, f.v, maxArrayFieldBytes); err != nil {
				return logical.ErrorResponse(err.Error()), nil
			}
		}
		return b.rotatePromote(ctx, req, name, e, arrayPromotion(id), r.verify)
	}
	return logical.ErrorResponse("nothing to do: start a rotation with vault write %sconfig/%s/rotate generate_key=true (or private_key=@new.pem), "+
		"create an API client with its public key on the array, then finish it with vault write %sconfig/%s/rotate client_id=<its id> key_id=<its key_id>",
		req.MountPoint, name, req.MountPoint, name), nil
}

// fieldString is a string field of the request as written, trimmed.
func fieldString(req *logical.Request, field string) string {
	s, _ := req.Data[field].(string)
	return strings.TrimSpace(s)
}

// arrayPromotion promotes a pending key under an API client an operator
// created on the array with its public key.
type arrayPromotion purearray.Identity

func (p arrayPromotion) id() string { return p.ClientID }

func (p arrayPromotion) refusal(e *configEntry) string {
	if p.ClientID == e.ClientID {
		return fmt.Sprintf("client_id %q is the active API client: the pending key (fingerprint %s) needs the new API client created with its own public key", p.ClientID, e.Pending.Fingerprint)
	}
	return ""
}

func (p arrayPromotion) target(b *backend, config string, e *configEntry, pending *pure1.Key) (upstream, error) {
	s, err := purearray.NewSigner(purearray.Identity(p), pending)
	if err != nil {
		return upstream{}, err
	}
	arr, err := b.arrayFor(config, e)
	if err != nil {
		return upstream{}, err
	}
	return arrayUpstream(arr, e, p.ClientID, s.Sign, e.Username), nil
}

func (p arrayPromotion) apply(next *configEntry) {
	if next.Previous != nil {
		next.Previous.AppID = next.ClientID
	}
	next.ClientID, next.KeyID, next.Issuer = p.ClientID, p.KeyID, p.Issuer
}

func (p arrayPromotion) promotedWarning(prev *previousKey) string {
	if prev == nil || prev.AppID == "" {
		return ""
	}
	return fmt.Sprintf("credentials are now issued with API client %q. Those issued under the previous client %q stay valid until they expire; "+
		"after that, delete that API client on the array", p.ClientID, prev.AppID)
}

// allowedArrayRoles are the array roles api_token roles on e may give;
// readonly alone unless the config says otherwise (and for entries stored
// before API-token roles existed).
func (e *configEntry) allowedArrayRoles() []string {
	if len(e.AllowedArrayRoles) == 0 {
		return []string{defaultArrayMaxRole}
	}
	return e.AllowedArrayRoles
}
