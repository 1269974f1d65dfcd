package backend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
)

const staticRoleStoragePrefix = "static-roles/"

// Fields of static-roles/<name> and of its reads.
const (
	fieldRotationPeriod = "rotation_period"
	fieldLastRefreshed  = "last_refreshed"
	fieldNextRefresh    = "next_refresh"
	fieldFailingSince   = "failing_since"
	fieldLastError      = "last_error"
)

const (
	defaultStaticRotationPeriod = time.Hour
	minStaticRotationPeriod     = 10 * time.Second
	// maxStaticRotationPeriod leaves a tenth of Pure1's 10-hour token to the
	// readers of the token that is about to be replaced.
	maxStaticRotationPeriod = 9 * time.Hour
)

const (
	staticRolesHelpSynopsis    = "Manage static roles: one Pure1 access token per role, shared by all readers and kept fresh by Vault."
	staticRolesHelpDescription = `
A static role keeps one Pure1 access token that every reader of
static-creds/<name> shares, without a lease. Vault exchanges a new token every
rotation_period (default 1h), in the background on the active node, also when
nobody reads it, and at once when the config's key, app_id or token_url
changes. Every node serves the stored token without asking Pure1.

Use it for a fleet (CI jobs, Agents on many hosts) that needs the same Pure1
access: one exchange per period instead of one lease, and often one exchange,
per reader. Use creds/<role> when each reader must get a credential of its own,
audited as its own lease.

  vault write pure1/static-roles/fleet config=prod rotation_period=1h
  vault read  pure1/static-creds/fleet
  vault write -f pure1/static-roles/fleet/refresh     (refresh now)

Reading a static role shows how its refreshing stands, never the token.
Deleting it deletes its token from Vault (the token stays valid at Pure1 until
it expires: Pure1 has no revocation).
`
	staticRefreshHelpSynopsis = "Refresh a static role's access token now."
)

func pathStaticRoles(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: strings.TrimSuffix(staticRoleStoragePrefix, "/") + "/" + framework.GenericNameRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "pure1",
				OperationSuffix: "static-role",
			},
			Fields: map[string]*framework.FieldSchema{
				"name": {
					Type:        framework.TypeString,
					Description: "Name of the static role; static-creds/<name> serves its token.",
					Required:    true,
				},
				fieldConfig: {
					Type:        framework.TypeString,
					Description: "Name of the config (Pure1 application) whose key is exchanged for the token. Required.",
				},
				fieldUsername: {
					Type: framework.TypeString,
					Description: "Array configs: the array user whose rights the token carries (the JWT's sub); required for access tokens. " +
						"With credential_type=api_token: an existing user whose API token Vault replaces in place (holders of the old one lose it); " +
						"without it Vault alternates a pair of users of its own.",
				},
				fieldCredentialType: {
					Type:          framework.TypeString,
					AllowedValues: []interface{}{credentialAccessToken, credentialAPIToken},
					Description:   "access_token (default): an access token exchanged with the config's key. api_token (arrays): an array user's API token, rotated every rotation_period.",
				},
				fieldArrayRole: {
					Type:        framework.TypeString,
					Description: "credential_type=api_token with Vault's pair of users: their array role, one of the config's allowed_array_roles.",
				},
				fieldRotationPeriod: {
					Type:        framework.TypeDurationSecond,
					Default:     int(defaultStaticRotationPeriod / time.Second),
					Description: fmt.Sprintf("How often Vault exchanges a new access token, between %s and %s (Pure1's tokens live about 10h).", minStaticRotationPeriod, maxStaticRotationPeriod),
				},
			},
			ExistenceCheck: b.pathStaticRoleExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: &framework.PathOperation{
					Callback:                    b.pathStaticRoleWrite,
					Summary:                     "Create a static role.",
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses:                   staticRoleResponses,
				},
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathStaticRoleWrite,
					Summary:                     "Update a static role; unset fields keep their values.",
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses:                   staticRoleResponses,
				},
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathStaticRoleRead,
					Summary:   "Read a static role and how its refreshing stands.",
					Responses: staticRoleResponses,
				},
				logical.DeleteOperation: &framework.PathOperation{
					Callback:                    b.pathStaticRoleDelete,
					Summary:                     "Delete a static role and its stored token.",
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
			},
			HelpSynopsis:    staticRolesHelpSynopsis,
			HelpDescription: strings.TrimSpace(staticRolesHelpDescription),
		},
		{
			Pattern: strings.TrimSuffix(staticRoleStoragePrefix, "/") + "/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "pure1",
				OperationSuffix: "static-roles",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathStaticRoleList,
					Summary:  "List static role names.",
				},
			},
			HelpSynopsis:    "List static roles.",
			HelpDescription: "List static roles.",
		},
		{
			Pattern: strings.TrimSuffix(staticRoleStoragePrefix, "/") + "/" + framework.GenericNameRegex("name") + "/refresh$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "pure1",
				OperationVerb:   "refresh",
				OperationSuffix: "static-role",
			},
			Fields: map[string]*framework.FieldSchema{
				"name": {Type: framework.TypeString, Description: "Name of the static role.", Required: true},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathStaticRoleRefresh,
					Summary:                     "Exchange a new access token for the static role now.",
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses:                   staticRoleResponses,
				},
			},
			HelpSynopsis: staticRefreshHelpSynopsis,
			HelpDescription: "Writing static-roles/<name>/refresh exchanges a new token at once, stores it for every reader " +
				"and resets the schedule. The response says when the new token expires, never the token itself.",
		},
	}
}

var staticRoleResponses = map[int][]framework.Response{
	200: {{
		Description: "OK",
		Fields: map[string]*framework.FieldSchema{
			fieldConfig:         {Type: framework.TypeString, Description: "The config whose key is exchanged."},
			fieldRotationPeriod: {Type: framework.TypeDurationSecond, Description: "Seconds between refreshes."},
			fieldAppID:          {Type: framework.TypeString, Description: "Application of the stored token."},
			fieldLastRefreshed:  {Type: framework.TypeTime, Description: "When the stored token was exchanged (RFC 3339)."},
			fieldNextRefresh:    {Type: framework.TypeTime, Description: "When the next refresh (or retry) is due (RFC 3339)."},
			fieldExpiresAt:      {Type: framework.TypeTime, Description: "When the stored token expires (RFC 3339)."},
			fieldFailingSince:   {Type: framework.TypeTime, Description: "Since when refreshing fails, when it does."},
			fieldLastError:      {Type: framework.TypeString, Description: "Why the last refresh failed, when it did."},
			fieldUsername:       {Type: framework.TypeString, Description: "Array configs: the user the token carries the rights of."},
			fieldCredentialType: {Type: framework.TypeString, Description: "api_token roles only: api_token."},
			fieldArrayRole:      {Type: framework.TypeString, Description: "api_token roles with Vault's pair: the users' array role."},
			fieldPairUsers:      {Type: framework.TypeCommaStringSlice, Description: "api_token roles with Vault's pair: the two users Vault alternates."},
			fieldCurrentUser:    {Type: framework.TypeString, Description: "api_token roles: the user whose token static-creds serves now."},
		},
	}},
}

// staticRoleEntry is what is stored at static-roles/<name>.
type staticRoleEntry struct {
	layoutVersion

	Config         string        `json:"config"`
	RotationPeriod time.Duration `json:"rotation_period"`
	// Username is the array user of a static role on an array config.
	Username string `json:"username,omitempty"`
	// CredentialType is "" (an access token) or api_token: an array user's
	// API token, from a pair of users Vault alternates (PairPrefix), or
	// replaced in place on the operator's user (Username).
	CredentialType string `json:"credential_type,omitempty"`
	ArrayRole      string `json:"array_role,omitempty"`
	PairPrefix     string `json:"pair_prefix,omitempty"`
}

// sameToken reports whether a token made for r suits o too: the same
// config, credential type and user (or array role of Vault's pair).
func (r *staticRoleEntry) sameToken(o *staticRoleEntry) bool {
	return r.Config == o.Config && r.Username == o.Username && r.CredentialType == o.CredentialType && r.ArrayRole == o.ArrayRole
}

func readStaticRoleEntry(ctx context.Context, s logical.Storage, name string) (*staticRoleEntry, error) {
	return readEntry[staticRoleEntry](ctx, s, staticRoleStoragePrefix+name, fmt.Sprintf("static role %q", name))
}

func (b *backend) getStaticRole(ctx context.Context, s logical.Storage, name string) (*staticRoleEntry, error) {
	return cachedLoad(b, b.staticRoles, name, func() (*staticRoleEntry, error) { return readStaticRoleEntry(ctx, s, name) })
}

func (b *backend) pathStaticRoleExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	r, err := readStaticRoleEntry(ctx, req.Storage, d.Get("name").(string))
	return r != nil, err
}

// staticRoleStatus is the response of a static role read: the role and how
// its refreshing stands, without the token.
func staticRoleStatus(r *staticRoleEntry, t *staticToken) map[string]interface{} {
	data := map[string]interface{}{
		fieldConfig:         r.Config,
		fieldRotationPeriod: int64(r.RotationPeriod / time.Second),
	}
	if r.Username != "" {
		data[fieldUsername] = r.Username
	}
	if r.CredentialType == credentialAPIToken {
		data[fieldCredentialType] = credentialAPIToken
		data[fieldArrayRole] = r.ArrayRole
		if r.PairPrefix != "" {
			data[fieldPairUsers] = r.pairUsers()
		}
		if t != nil && t.Username != "" {
			data[fieldCurrentUser] = t.Username
		}
	}
	if t == nil {
		return data
	}
	if t.AccessToken != "" {
		if r.CredentialType != credentialAPIToken { // an array user's token has no client
			data[fieldAppID] = t.AppID
		}
		data[fieldLastRefreshed] = t.LastRefreshed.Format(time.RFC3339)
		data[fieldExpiresAt] = t.ExpiresAt.Format(time.RFC3339)
	}
	data[fieldNextRefresh] = t.NextRefresh.Format(time.RFC3339)
	if t.Failures > 0 {
		data[fieldFailingSince] = t.FailingSince.Format(time.RFC3339)
		data[fieldLastError] = t.LastError
	}
	return data
}

func (b *backend) pathStaticRoleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	r, err := b.getStaticRole(ctx, req.Storage, name)
	if err != nil || r == nil {
		return nil, err
	}
	t, err := b.getStaticToken(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	resp := &logical.Response{Data: staticRoleStatus(r, t)}
	if t != nil && t.Clamped != "" {
		resp.AddWarning(t.Clamped)
	}
	return resp, nil
}

func (b *backend) pathStaticRoleList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	names, err := req.Storage.List(ctx, staticRoleStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing static roles: %w", err)
	}
	return logical.ListResponse(names), nil
}

func (b *backend) pathStaticRoleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	b.writeLock.Lock()
	defer b.writeLock.Unlock()
	var warnings []string
	if old, err := readStaticRoleEntry(ctx, req.Storage, name); err != nil {
		return nil, err
	} else if old != nil && old.CredentialType == credentialAPIToken {
		warnings = b.releaseStaticUsers(ctx, req.Storage, name, old)
	}
	// The token first: a role left without a token is refreshed again, a
	// token left without a role would be a live credential nobody manages.
	if err := req.Storage.Delete(ctx, staticTokenStoragePrefix+name); err != nil {
		return nil, fmt.Errorf("deleting the token of static role %q: %w", name, err)
	}
	if err := req.Storage.Delete(ctx, staticRoleStoragePrefix+name); err != nil {
		return nil, fmt.Errorf("deleting static role %q: %w", name, err)
	}
	b.dropStatic(name)
	b.metrics.forgetRole(name)
	if len(warnings) == 0 {
		return nil, nil
	}
	resp := &logical.Response{}
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	return resp, nil
}

func (b *backend) pathStaticRoleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if err := rejectUnknownFields(req, d); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	name := d.Get("name").(string)

	b.writeLock.Lock()
	defer b.writeLock.Unlock()

	old, err := readStaticRoleEntry(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	r := staticRoleEntry{RotationPeriod: defaultStaticRotationPeriod}
	if old != nil {
		r = *old
	}
	if v, ok := d.GetOk(fieldConfig); ok {
		r.Config = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk(fieldRotationPeriod); ok {
		r.RotationPeriod = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk(fieldUsername); ok {
		r.Username = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk(fieldCredentialType); ok {
		r.CredentialType = v.(string)
		if r.CredentialType == credentialAccessToken {
			r.CredentialType = ""
		}
	}
	if v, ok := d.GetOk(fieldArrayRole); ok {
		r.ArrayRole = strings.TrimSpace(v.(string))
	}
	if msg := validateStaticRole(&r); msg != "" {
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
		if msg := b.checkStaticAPITokenRole(&r, cfg, req.MountPoint, name); msg != "" {
			return logical.ErrorResponse(msg), nil
		}
	} else if msg := checkRoleUsername(r.Username, r.Config, cfg); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	var warnings []string
	if old != nil && old.CredentialType == credentialAPIToken && (!old.sameToken(&r) || old.PairPrefix != r.PairPrefix) {
		warnings = append(warnings, b.releaseStaticUsers(ctx, req.Storage, name, old)...)
	}
	if old != nil && !old.sameToken(&r) {
		// The stored token belongs to the other config's application, or
		// carries another user's rights.
		if err := req.Storage.Delete(ctx, staticTokenStoragePrefix+name); err != nil {
			return nil, fmt.Errorf("deleting the token of static role %q: %w", name, err)
		}
	}
	if err := putEntry(ctx, req.Storage, staticRoleStoragePrefix+name, fmt.Sprintf("static role %q", name), &r); err != nil {
		return nil, err
	}
	b.dropStatic(name)
	// A new role gets its first token now rather than at the first read; a
	// changed period reschedules.
	b.wakeStaticRefresher()

	resp := &logical.Response{Data: staticRoleStatus(&r, nil)}
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	if r.CredentialType == credentialAPIToken && r.Username != "" {
		resp.AddWarning(fmt.Sprintf("Vault replaces the API token of user %q in place every rotation_period: whoever holds the previous token loses it at once. "+
			"Without username, Vault alternates a pair of users of its own so that a token stays valid a whole period after it is replaced", r.Username))
	}
	if r.CredentialType != credentialAPIToken && !cfg.hasClient() {
		resp.AddWarning(fmt.Sprintf("config %q has no %s yet: static-creds/%s will fail until it is written", r.Config, cfg.kind().lacks(), name))
	}
	return resp, nil
}

// validateStaticRole returns what is wrong with r, naming the field and the
// fix, or "" when it is valid.
func validateStaticRole(r *staticRoleEntry) string {
	if r.Config == "" {
		return "config is required: the name of a config/<name> holding the Pure1 application key"
	}
	if !nameRegex.MatchString(r.Config) {
		return fmt.Sprintf("config %q is not a valid config name (letters, digits, '-', '_' and '.')", printable(r.Config))
	}
	switch r.CredentialType {
	case "", credentialAPIToken:
	default:
		return fmt.Sprintf("credential_type %q is not supported on a static role: use access_token or api_token", printable(r.CredentialType))
	}
	if r.CredentialType == credentialAPIToken {
		if r.RotationPeriod < minStaticRotationPeriod || r.RotationPeriod > maxStaticAPITokenPeriod {
			return fmt.Sprintf("rotation_period %s is out of range for credential_type=api_token: use %s to %s", r.RotationPeriod, minStaticRotationPeriod, maxStaticAPITokenPeriod)
		}
		return ""
	}
	if r.ArrayRole != "" {
		return "array_role applies only to credential_type=api_token"
	}
	if r.RotationPeriod < minStaticRotationPeriod || r.RotationPeriod > maxStaticRotationPeriod {
		return fmt.Sprintf("rotation_period %s is out of range: use %s to %s, so that a token is replaced while it still has a useful life left (Pure1's tokens live about 10h)",
			r.RotationPeriod, minStaticRotationPeriod, maxStaticRotationPeriod)
	}
	return ""
}

func (b *backend) pathStaticRoleRefresh(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	r, err := b.getStaticRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return logical.ErrorResponse("static role %q does not exist: create it with vault write %sstatic-roles/%s config=<config name>",
			name, req.MountPoint, name), nil
	}
	if !b.mayWrite() {
		return nil, logical.ErrReadOnly // Vault forwards it to the node that may write
	}
	t, err := b.refreshStatic(ctx, req.Storage, name)
	if err != nil {
		return staticRefreshErrorResponse(name, err)
	}
	return &logical.Response{Data: staticRoleStatus(r, t)}, nil
}

// staticRefreshErrorResponse explains a refresh that failed: the operator's
// to fix (400) when Pure1 refused or the config is incomplete, Pure1's (502)
// when it could not be reached.
func staticRefreshErrorResponse(name string, err error) (*logical.Response, error) {
	if errors.Is(err, errStaticRoleGone) {
		return logical.ErrorResponse("static role %q was deleted or changed while it was refreshed: read it again", name), nil
	}
	switch {
	case errors.Is(err, errStaticConfig), errors.Is(err, pure1.ErrRejected):
		return logical.ErrorResponse("refreshing the token of static role %q failed: %v", name, err), nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil, err
	}
	return nil, logical.CodedError(http.StatusBadGateway, fmt.Sprintf("refreshing the token of static role %q failed: %v", name, err))
}
