package backend

import (
	"cmp"
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

// Fields of a static-creds/<name> response beyond those of creds/.
const fieldStaticTTL = "ttl"

const (
	staticCredsHelpSynopsis    = "Read a static role's shared Pure1 access token, without a lease."
	staticCredsHelpDescription = `
Reading static-creds/<name> returns the access token that Vault keeps fresh for
the static role: access_token, token_type, expires_at, app_id, org, max_role,
last_refreshed, rotation_period, and ttl, the seconds until this token is
replaced (never past its expiry).

There is no lease: every reader gets the same token, and reading leaves nothing
behind in Vault. Vault Agent templates treat a response with rotation_period
and ttl as a rotating secret and read it again ttl+1 seconds later, right after
the refresh, as they do for database static roles.

When refreshing fails, the current token is served while it is valid, with a
warning that says since when and why; an expired token is never served.
`
)

func pathStaticCreds(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: "static-creds/" + framework.GenericNameRegex("name"),
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "pure1",
			OperationVerb:   "read",
			OperationSuffix: "static-credentials",
		},
		Fields: map[string]*framework.FieldSchema{
			"name": {Type: framework.TypeString, Description: "Name of the static role.", Required: true},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathStaticCredsRead,
				Summary:  "Read the static role's shared access token (no lease).",
				Responses: map[int][]framework.Response{
					200: {{
						Description: "OK",
						Fields: map[string]*framework.FieldSchema{
							fieldAccessToken:    {Type: framework.TypeString, Description: "The Pure1 access token.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
							fieldTokenType:      {Type: framework.TypeString, Description: "Bearer."},
							fieldExpiresAt:      {Type: framework.TypeTime, Description: "When the token expires (RFC 3339)."},
							fieldAppID:          {Type: framework.TypeString, Description: "The Pure1 application ID."},
							fieldOrg:            {Type: framework.TypeString, Description: "The token's org, when present."},
							fieldMaxRole:        {Type: framework.TypeString, Description: "The token's max_role, when present."},
							fieldLastRefreshed:  {Type: framework.TypeTime, Description: "When Vault exchanged this token (RFC 3339)."},
							fieldRotationPeriod: {Type: framework.TypeDurationSecond, Description: "Seconds between refreshes."},
							fieldStaticTTL:      {Type: framework.TypeDurationSecond, Description: "Seconds until this token is replaced; read again after it."},
						},
					}},
				},
			},
		},
		HelpSynopsis:    staticCredsHelpSynopsis,
		HelpDescription: strings.TrimSpace(staticCredsHelpDescription),
	}}
}

func (b *backend) pathStaticCredsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (resp *logical.Response, err error) {
	name := d.Get("name").(string)
	role, err := b.getStaticRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if role == nil {
		return logical.ErrorResponse("static role %q does not exist: create it with vault write %sstatic-roles/%s config=<config name>, or list them with vault list %sstatic-roles",
			name, req.MountPoint, name, req.MountPoint), nil
	}
	defer func() {
		b.metrics.observeCredential(metricsPathStaticCreds, name, role.Config, cmp.Or(role.CredentialType, credentialAccessToken), readOutcome(resp, err))
	}()
	cfg, err := b.getConfig(ctx, req.Storage, role.Config)
	if err != nil {
		return nil, err
	}
	t, err := b.getStaticToken(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	var refreshErr error
	if staticReadDue(t, role, cfg, b.now()) {
		switch {
		case b.mayWrite():
			// The background refresher normally gets here first; this covers
			// the first read of a new role and a read right at the due time.
			// Concurrent readers share one exchange.
			if nt, err := b.refreshStatic(ctx, req.Storage, name); err == nil {
				t = nt
			} else {
				refreshErr = err
				if errors.Is(err, errStaticRoleGone) {
					return staticRefreshErrorResponse(name, err)
				}
				if cur, err := b.getStaticToken(ctx, req.Storage, name); err == nil && cur != nil {
					t = cur // with the failure just recorded
				}
			}
		case !t.usable(b.now()):
			// Only the node that may write can exchange and store; Vault
			// forwards a read-only error from a performance standby there.
			return nil, logical.ErrReadOnly
		}
	}

	now := b.now()
	if !t.usable(now) {
		return staticUnusableResponse(name, t, refreshErr)
	}
	resp = &logical.Response{Data: staticCredsData(role, t, now)}
	if role.CredentialType == credentialAPIToken {
		if cfg != nil {
			resp.Data[fieldArrayURL] = cfg.entry.ArrayURL
		}
		if role.Username != "" {
			resp.AddWarning(fmt.Sprintf("this is user %q's only API token: Vault replaces it in place every %s, and whoever holds the previous one loses it then", role.Username, role.RotationPeriod))
		}
	}
	if t.Failures > 0 {
		resp.AddWarning(fmt.Sprintf("refreshing this token has failed since %s (%d tries; last error: %s): serving the current token until it expires at %s",
			t.FailingSince.Format(time.RFC3339), t.Failures, t.LastError, t.ExpiresAt.Format(time.RFC3339)))
	}
	if t.Clamped != "" {
		resp.AddWarning(t.Clamped)
	}
	return resp, nil
}

// staticCredsData is what a reader gets. ttl is how long until the token is
// replaced: until the next refresh, or, when that is overdue (refreshing
// fails), until the next try; never past the token's expiry.
func staticCredsData(role *staticRoleEntry, t *staticToken, now time.Time) map[string]interface{} {
	ttl := t.nextRefresh(role).Sub(now)
	if ttl <= 0 {
		ttl = staticRetryMin
	}
	if left := t.ExpiresAt.Sub(now) - leaseSafetyMargin; ttl > left {
		ttl = left
	}
	data := map[string]interface{}{
		fieldAccessToken:    t.AccessToken,
		fieldTokenType:      t.TokenType,
		fieldExpiresAt:      t.ExpiresAt.Format(time.RFC3339),
		fieldAppID:          t.AppID,
		fieldLastRefreshed:  t.LastRefreshed.Format(time.RFC3339),
		fieldRotationPeriod: int64(role.RotationPeriod / time.Second),
		// Whole seconds, rounded down: Agent reads again at ttl+1 s, which
		// is then never before the refresh.
		fieldStaticTTL: max(int64(ttl/time.Second), 0),
	}
	if role.CredentialType == credentialAPIToken {
		// An array user's API token, under the names its consumers use.
		delete(data, fieldAccessToken)
		delete(data, fieldTokenType)
		delete(data, fieldAppID)
		data[fieldAPIToken] = t.AccessToken
		data[fieldUsername] = t.Username
	}
	if t.Org != "" {
		data[fieldOrg] = t.Org
	}
	if t.MaxRole != "" {
		data[fieldMaxRole] = t.MaxRole
	}
	return data
}

// staticUnusableResponse explains why there is no token to serve: an expired
// one is never handed out.
func staticUnusableResponse(name string, t *staticToken, refreshErr error) (*logical.Response, error) {
	if refreshErr != nil && !isPure1Failure(refreshErr) && !errors.Is(refreshErr, errStaticConfig) {
		return nil, refreshErr // storage, or a reader that stopped waiting: not Pure1's
	}
	reason := "no refresh has succeeded yet"
	if t != nil && t.Failures > 0 {
		reason = fmt.Sprintf("refreshing has failed since %s (%d tries): %s", t.FailingSince.Format(time.RFC3339), t.Failures, t.LastError)
	} else if refreshErr != nil {
		reason = refreshErr.Error()
	}
	state := "has no token"
	if t != nil && t.AccessToken != "" {
		state = "has no valid token: the last one expired at " + t.ExpiresAt.Format(time.RFC3339)
	}
	if refreshErr != nil && errors.Is(refreshErr, errStaticConfig) {
		return logical.ErrorResponse("static role %q %s; %s", name, state, reason), nil
	}
	return nil, logical.CodedError(http.StatusBadGateway, fmt.Sprintf("static role %q %s; %s. Check the config with vault read <mount>config/<name>, then retry with vault write -f <mount>static-roles/%s/refresh",
		name, state, reason, name))
}

// isPure1Failure reports whether err is Pure1's answer (or its absence), as
// opposed to a failure of Vault's own storage or of the request.
func isPure1Failure(err error) bool {
	return errors.Is(err, pure1.ErrRejected) || errors.Is(err, pure1.ErrUnavailable) || errors.Is(err, pure1.ErrBadResponse)
}
