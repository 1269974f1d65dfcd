package backend

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const roleStoragePrefix = "roles/"

// Fields of roles/<name>.
const (
	fieldConfig           = "config"
	fieldCredentialType   = "credential_type"
	fieldTTL              = "ttl"
	fieldMaxTTL           = "max_ttl"
	fieldReuseAccessToken = "reuse_access_token"
	fieldReuseMargin      = "reuse_margin"
	fieldArrayRole        = "array_role"
	fieldUsernamePrefix   = "username_prefix"
)

// Credential types a role issues.
const (
	credentialAccessToken = "access_token"
	credentialJWT         = "jwt"
	// credentialAPIToken: an array user made for the lease, and its API
	// token (array_users.go).
	credentialAPIToken = "api_token"
)

const (
	// defaultJWTTTL is the lifetime of a jwt role's JWT when ttl is unset.
	defaultJWTTTL = time.Hour
	// defaultReuseMargin is how long before its end a shared access token
	// stops being handed out, so no lease outlives the token.
	defaultReuseMargin = 10 * time.Minute
	// maxReuseMargin keeps the margin below Pure1's ~10 h token lifetime.
	maxReuseMargin = 5 * time.Hour
)

const (
	rolesHelpSynopsis    = "Manage roles: which Pure1 config to use, what credential to issue, and for how long."
	rolesHelpDescription = `
A role names a config and the kind of credential creds/<role> returns:

  credential_type=access_token (default)  Vault signs a short-lived JWT and
      exchanges it with Pure1; the lease carries the Pure1 access token.
  credential_type=jwt  the signed JWT itself, for tools that take a Pure1 JWT
      (such as Pure's vSphere plugin). Its lifetime is the role's ttl (1h if unset).
  credential_type=api_token  (FlashArray and FlashBlade configs) a local array
      user made for the lease, with array_role and a random password nobody
      sees, and its API token, whose timeout covers the lease: what Pure's
      Ansible collections, PowerShell SDK and Python SDK take. Revoking the
      lease (or its end) deletes the user at the array, and its token with it.

ttl and max_ttl bound the lease; an access_token lease also never outlives the
token (unset ttl: the token's own lifetime). reuse_access_token=true lets reads
share a still-valid access token until reuse_margin before it expires, so a
fleet of readers costs Pure1 one exchange per token lifetime.
`
	rolesListHelpSynopsis = "List role names."
)

func pathRoles(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: strings.TrimSuffix(roleStoragePrefix, "/") + "/" + framework.GenericNameRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "pure1",
				OperationSuffix: "role",
			},
			Fields: map[string]*framework.FieldSchema{
				"name": {
					Type:        framework.TypeString,
					Description: "Name of the role; creds/<name> issues its credentials.",
					Required:    true,
				},
				fieldConfig: {
					Type:        framework.TypeString,
					Description: "Name of the config (Pure1 application) whose key signs. Required.",
				},
				fieldCredentialType: {
					Type:          framework.TypeString,
					Default:       credentialAccessToken,
					AllowedValues: []interface{}{credentialAccessToken, credentialJWT, credentialAPIToken},
					Description:   "access_token: exchange the JWT and return the access token. jwt: return the signed JWT. api_token (arrays): a user made for the lease and its API token.",
				},
				fieldArrayRole: {
					Type:        framework.TypeString,
					Description: "api_token roles: the array role of the users Vault makes (readonly, ops_admin, storage_admin, array_admin); one of the config's allowed_array_roles.",
				},
				fieldUsernamePrefix: {
					Type:        framework.TypeString,
					Description: "api_token roles: how the names of the users Vault makes start (default vault-<mount>-<role>-); tidy deletes users with it that no lease names.",
				},
				fieldTTL: {
					Type:        framework.TypeDurationSecond,
					Description: "Lease TTL. Unset: 1h for jwt roles, the access token's own lifetime for access_token roles.",
				},
				fieldMaxTTL: {
					Type:        framework.TypeDurationSecond,
					Description: "Upper bound of the lease TTL. Unset: the mount's max lease TTL.",
				},
				fieldReuseAccessToken: {
					Type:        framework.TypeBool,
					Description: "access_token roles: hand out a still-valid access token to later reads instead of exchanging again.",
				},
				fieldReuseMargin: {
					Type:        framework.TypeDurationSecond,
					Default:     int(defaultReuseMargin / time.Second),
					Description: "With reuse_access_token: stop sharing a token this long before it expires; its leases end by then.",
				},
				fieldUsername: {
					Type:        framework.TypeString,
					Description: "Array configs only, and required there: the array user whose rights the token carries (the JWT's sub), intersected with the API client's max_role.",
				},
			},
			ExistenceCheck: b.pathRoleExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: &framework.PathOperation{
					Callback:                    b.pathRoleWrite,
					Summary:                     "Create a role.",
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses:                   roleResponses,
				},
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathRoleWrite,
					Summary:                     "Update a role; unset fields keep their values.",
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses:                   roleResponses,
				},
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathRoleRead,
					Summary:   "Read a role.",
					Responses: roleResponses,
				},
				logical.DeleteOperation: &framework.PathOperation{
					Callback:                    b.pathRoleDelete,
					Summary:                     "Delete a role. Leases already issued run to their end.",
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
			},
			HelpSynopsis:    rolesHelpSynopsis,
			HelpDescription: strings.TrimSpace(rolesHelpDescription),
		},
		{
			Pattern: strings.TrimSuffix(roleStoragePrefix, "/") + "/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "pure1",
				OperationSuffix: "roles",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathRoleList,
					Summary:  "List role names.",
				},
			},
			HelpSynopsis:    rolesListHelpSynopsis,
			HelpDescription: rolesListHelpSynopsis,
		},
	}
}

var roleResponses = map[int][]framework.Response{
	200: {{
		Description: "OK",
		Fields: map[string]*framework.FieldSchema{
			fieldConfig:           {Type: framework.TypeString},
			fieldCredentialType:   {Type: framework.TypeString},
			fieldTTL:              {Type: framework.TypeDurationSecond},
			fieldMaxTTL:           {Type: framework.TypeDurationSecond},
			fieldReuseAccessToken: {Type: framework.TypeBool},
			fieldReuseMargin:      {Type: framework.TypeDurationSecond},
			fieldUsername:         {Type: framework.TypeString},
			fieldArrayRole:        {Type: framework.TypeString},
			fieldUsernamePrefix:   {Type: framework.TypeString},
		},
	}},
}

// roleEntry is what is stored at roles/<name>.
type roleEntry struct {
	layoutVersion

	Config           string        `json:"config"`
	CredentialType   string        `json:"credential_type"`
	TTL              time.Duration `json:"ttl"`
	MaxTTL           time.Duration `json:"max_ttl"`
	ReuseAccessToken bool          `json:"reuse_access_token"`
	ReuseMargin      time.Duration `json:"reuse_margin"`
	// Username is the array user (the JWT's sub) of a role on a FlashArray
	// or FlashBlade config; empty for Pure1 and for api_token roles.
	Username string `json:"username,omitempty"`
	// ArrayRole and UsernamePrefix are an api_token role's: the role and
	// the name prefix of the users it makes.
	ArrayRole      string `json:"array_role,omitempty"`
	UsernamePrefix string `json:"username_prefix,omitempty"`
}

func (r *roleEntry) responseData() map[string]interface{} {
	d := map[string]interface{}{
		fieldConfig:           r.Config,
		fieldCredentialType:   r.CredentialType,
		fieldTTL:              int64(r.TTL / time.Second),
		fieldMaxTTL:           int64(r.MaxTTL / time.Second),
		fieldReuseAccessToken: r.ReuseAccessToken,
		fieldReuseMargin:      int64(r.ReuseMargin / time.Second),
	}
	if r.Username != "" {
		d[fieldUsername] = r.Username
	}
	if r.CredentialType == credentialAPIToken {
		d[fieldArrayRole] = r.ArrayRole
		d[fieldUsernamePrefix] = r.UsernamePrefix
	}
	return d
}

func readRoleEntry(ctx context.Context, s logical.Storage, name string) (*roleEntry, error) {
	return readEntry[roleEntry](ctx, s, roleStoragePrefix+name, fmt.Sprintf("role %q", name))
}

// getRole returns the role from the cache or storage; nil if there is none.
func (b *backend) getRole(ctx context.Context, s logical.Storage, name string) (*roleEntry, error) {
	return cachedLoad(b, b.roles, name, func() (*roleEntry, error) { return readRoleEntry(ctx, s, name) })
}

func (b *backend) pathRoleExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	r, err := readRoleEntry(ctx, req.Storage, d.Get("name").(string))
	return r != nil, err
}

func (b *backend) pathRoleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	r, err := b.getRole(ctx, req.Storage, d.Get("name").(string))
	if err != nil || r == nil {
		return nil, err
	}
	return &logical.Response{Data: r.responseData()}, nil
}

func (b *backend) pathRoleList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	names, err := req.Storage.List(ctx, roleStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing roles: %w", err)
	}
	return logical.ListResponse(names), nil
}

func (b *backend) pathRoleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	old, err := b.deleteRole(ctx, req.Storage, name)
	if err != nil || old == nil || old.CredentialType != credentialAPIToken {
		return nil, err
	}
	// Outside the write lock: the users of its leases go with the role (their
	// leases' revokes then find them gone); what the array does not take
	// now, tidy deletes by their records.
	if msg := b.deleteRoleUsers(ctx, req.Storage, name, old); msg != "" {
		resp := &logical.Response{}
		resp.AddWarning(msg)
		return resp, nil
	}
	return nil, nil
}

func (b *backend) deleteRole(ctx context.Context, s logical.Storage, name string) (*roleEntry, error) {
	b.writeLock.Lock()
	defer b.writeLock.Unlock()
	old, err := readRoleEntry(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if err := s.Delete(ctx, roleStoragePrefix+name); err != nil {
		return nil, fmt.Errorf("deleting role %q: %w", name, err)
	}
	b.dropRole(name)
	b.metrics.forgetRole(name)
	return old, nil
}

func (b *backend) pathRoleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if err := rejectUnknownFields(req, d); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	name := d.Get("name").(string)

	b.writeLock.Lock()
	defer b.writeLock.Unlock()

	old, err := readRoleEntry(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	r := roleEntry{CredentialType: credentialAccessToken, ReuseMargin: defaultReuseMargin}
	if old != nil {
		r = *old
	}
	if v, ok := d.GetOk(fieldConfig); ok {
		r.Config = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk(fieldCredentialType); ok {
		r.CredentialType = v.(string)
	}
	if v, ok := d.GetOk(fieldTTL); ok {
		r.TTL = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk(fieldMaxTTL); ok {
		r.MaxTTL = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk(fieldReuseAccessToken); ok {
		r.ReuseAccessToken = v.(bool)
	}
	if v, ok := d.GetOk(fieldReuseMargin); ok {
		r.ReuseMargin = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk(fieldUsername); ok {
		r.Username = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk(fieldArrayRole); ok {
		r.ArrayRole = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk(fieldUsernamePrefix); ok {
		r.UsernamePrefix = strings.TrimSpace(v.(string))
	}
	if msg := b.validateRole(&r); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	cfg, err := readConfigEntry(ctx, req.Storage, r.Config)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return logical.ErrorResponse("config %q does not exist: create it first (vault write %sconfig/%s generate_key=true, or with private_key=@private.pem)",
			r.Config, req.MountPoint, r.Config), nil
	}
	if r.CredentialType == credentialAPIToken {
		if r.UsernamePrefix == "" {
			r.UsernamePrefix = defaultUserPrefix(cfg, req.MountPoint, name)
		}
		if msg := checkAPITokenRole(&r, cfg); msg != "" {
			return logical.ErrorResponse(msg), nil
		}
	} else if msg := checkRoleUsername(r.Username, r.Config, cfg); msg != "" {
		return logical.ErrorResponse(msg), nil
	}

	if err := putEntry(ctx, req.Storage, roleStoragePrefix+name, fmt.Sprintf("role %q", name), &r); err != nil {
		return nil, err
	}
	b.dropRole(name)

	resp := &logical.Response{Data: r.responseData()}
	if !cfg.hasClient() {
		resp.AddWarning(fmt.Sprintf("config %q has no %s yet: creds/%s will fail until it is written", r.Config, cfg.kind().lacks(), name))
	}
	return resp, nil
}

// checkRoleUsername says what is wrong with a role's username for its config
// (a role or a static role), or "". An array token carries the rights of a
// user, which the role must name; Pure1 has no users, and a username there
// would be silently ignored.
func checkRoleUsername(username, configName string, cfg *configEntry) string {
	if msg := cfg.kind().checkUser(configName, username); msg != "" {
		return msg
	}
	switch {
	case len(username) > maxArrayFieldBytes:
		return fmt.Sprintf("username is %d bytes, more than the %d allowed", len(username), maxArrayFieldBytes)
	case strings.ContainsFunc(username, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "username contains control characters: give the array user's name"
	}
	return ""
}

// validateRole returns what is wrong with r, naming the field and the fix, or
// "" when it is valid.
func (b *backend) validateRole(r *roleEntry) string {
	if r.Config == "" {
		return "config is required: the name of a config/<name> holding the Pure1 application key"
	}
	if !nameRegex.MatchString(r.Config) {
		return fmt.Sprintf("config %q is not a valid config name (letters, digits, '-', '_' and '.')", printable(r.Config))
	}
	switch r.CredentialType {
	case credentialAccessToken, credentialJWT, credentialAPIToken:
	default:
		return fmt.Sprintf("credential_type %q is not supported: use access_token, jwt or api_token", printable(r.CredentialType))
	}
	if r.CredentialType != credentialAPIToken && (r.ArrayRole != "" || r.UsernamePrefix != "") {
		return "array_role and username_prefix apply only to credential_type=api_token"
	}
	if r.TTL < 0 || r.MaxTTL < 0 {
		return "ttl and max_ttl must not be negative"
	}
	if r.MaxTTL > 0 && r.TTL > r.MaxTTL {
		return fmt.Sprintf("ttl (%s) must not be longer than max_ttl (%s)", r.TTL, r.MaxTTL)
	}
	if mountMax := b.liveMaxLeaseTTL(); mountMax > 0 {
		for _, f := range []struct {
			name string
			v    time.Duration
		}{{fieldTTL, r.TTL}, {fieldMaxTTL, r.MaxTTL}} {
			if f.v > mountMax {
				return fmt.Sprintf("%s (%s) is longer than this mount's max lease TTL (%s): lower it, or raise the mount's with vault secrets tune -max-lease-ttl",
					f.name, f.v, mountMax)
			}
		}
	}
	if r.ReuseAccessToken && r.CredentialType != credentialAccessToken {
		return "reuse_access_token applies only to credential_type=access_token"
	}
	if r.ReuseMargin < 0 || r.ReuseMargin > maxReuseMargin {
		return fmt.Sprintf("reuse_margin must be between 0 and %s", maxReuseMargin)
	}
	return ""
}
