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

// Fields of a creds/<role> response.
const (
	fieldJWT         = "jwt"
	fieldAccessToken = "access_token"
	fieldTokenType   = "token_type"
	fieldExpiresAt   = "expires_at"
	fieldMaxRole     = "max_role"
	fieldOrg         = "org"
)

// leaseSafetyMargin is taken off every lease so that it ends before its
// credential: Vault starts the lease's clock when it registers the lease,
// after the plugin read its own clock, signed, maybe exchanged, and answered
// over gRPC. Vault Agent re-reads well before the lease ends anyway.
const leaseSafetyMargin = 5 * time.Second

// exchangeJWTLifetime is the lifetime of the JWT Vault signs only to trade it
// for an access token at once: short, so a leaked one is worth little.
const exchangeJWTLifetime = 60 * time.Second

const (
	credsHelpSynopsis    = "Issue a Pure1 credential for a role, as a lease."
	credsHelpDescription = `
Reading creds/<role> signs a JWT with the role's config key. For a jwt role the
JWT is the credential (fields jwt, app_id, expires_at). For an access_token role
Vault exchanges it with Pure1 and returns access_token, token_type, expires_at,
app_id, and the token's max_role and org when it carries them.

The lease is not renewable and ends no later than the credential: read again
for a new one (Vault Agent does so before the lease ends). Revoking the lease
does not revoke the credential: Pure1 has no revocation endpoint, so a JWT or
access token stays valid until it expires. Keep TTLs short where that matters.
`
)

func pathCreds(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: "creds/" + framework.GenericNameRegex("name"),
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "pure1",
			OperationVerb:   "generate",
			OperationSuffix: "credentials",
		},
		Fields: map[string]*framework.FieldSchema{
			"name": {
				Type:        framework.TypeString,
				Description: "Name of the role.",
				Required:    true,
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathCredsRead,
				Summary:  "Issue a Pure1 JWT or access token as a lease.",
				Responses: map[int][]framework.Response{
					200: {{
						Description: "OK",
						Fields: map[string]*framework.FieldSchema{
							fieldJWT:         {Type: framework.TypeString, Description: "jwt roles: the signed JWT.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
							fieldAccessToken: {Type: framework.TypeString, Description: "access_token roles: the Pure1 access token.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
							fieldTokenType:   {Type: framework.TypeString, Description: "access_token roles: Bearer."},
							fieldExpiresAt:   {Type: framework.TypeTime, Description: "When the credential expires (RFC 3339)."},
							fieldAppID:       {Type: framework.TypeString, Description: "The Pure1 application ID."},
							fieldMaxRole:     {Type: framework.TypeString, Description: "access_token roles: the token's max_role, when present."},
							fieldOrg:         {Type: framework.TypeString, Description: "access_token roles: the token's org, when present."},
							fieldAPIToken:    {Type: framework.TypeString, Description: "api_token roles: the API token of the array user made for this lease.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
							fieldUsername:    {Type: framework.TypeString, Description: "api_token roles: the array user made for this lease; deleted when it ends."},
							fieldArrayURL:    {Type: framework.TypeString, Description: "api_token roles: the array."},
							fieldArrayRole:   {Type: framework.TypeString, Description: "api_token roles: the user's array role."},
						},
					}},
				},
			},
		},
		HelpSynopsis:    credsHelpSynopsis,
		HelpDescription: strings.TrimSpace(credsHelpDescription),
	}}
}

func (b *backend) pathCredsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (resp *logical.Response, err error) {
	roleName := d.Get("name").(string)
	role, err := b.getRole(ctx, req.Storage, roleName)
	if err != nil {
		return nil, err
	}
	if role == nil {
		return logical.ErrorResponse("role %q does not exist: create it with vault write %sroles/%s config=<config name>, or list roles with vault list %sroles",
			roleName, req.MountPoint, roleName, req.MountPoint), nil
	}
	defer func() {
		b.metrics.observeCredential(metricsPathCreds, roleName, role.Config, role.CredentialType, readOutcome(resp, err))
	}()
	cfg, err := b.getConfig(ctx, req.Storage, role.Config)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return logical.ErrorResponse("config %q of role %q does not exist: create it, or point the role at another config", role.Config, roleName), nil
	}
	if !cfg.ready() && role.CredentialType != credentialAPIToken {
		return logical.ErrorResponse(cfg.kind.notReady(cfg, req.MountPoint)), nil
	}
	switch role.CredentialType {
	case credentialJWT:
		resp, err = b.issueJWT(roleName, role, cfg)
	case credentialAPIToken:
		resp, err = b.issueAPIToken(ctx, req, roleName, role, cfg)
	default:
		resp, err = b.issueAccessToken(ctx, req, roleName, role, cfg)
	}
	if resp != nil && !resp.IsError() {
		for _, w := range []string{cfg.keyAgeWarning(b.now(), req.MountPoint), b.rotations.warning(cfg.name)} {
			if w != "" {
				resp.AddWarning(w)
			}
		}
	}
	return resp, err
}

// leaseCap is the longest lease a role may get: its max_ttl, else the mount's.
func (b *backend) leaseCap(role *roleEntry) time.Duration {
	limit := b.System().MaxLeaseTTL()
	if role.MaxTTL > 0 && (limit <= 0 || role.MaxTTL < limit) {
		limit = role.MaxTTL
	}
	return limit
}

func (b *backend) issueJWT(roleName string, role *roleEntry, cfg *config) (*logical.Response, error) {
	life := role.TTL
	if life <= 0 {
		life = defaultJWTTTL
	}
	if limit := b.leaseCap(role); limit > 0 && life > limit {
		life = limit
	}
	// The lease is the JWT's life less the safety margin; a life too short
	// for that is stretched so the lease still lasts a second and ends first.
	if life < leaseSafetyMargin+2*time.Second {
		life = leaseSafetyMargin + 2*time.Second
	}
	now := b.now()
	token, expiresAt, err := cfg.signer(now, life, role.Username)
	if err != nil {
		return nil, err
	}
	resp := b.Secret(secretCredentialType).Response(map[string]interface{}{
		fieldJWT:       token,
		fieldAppID:     cfg.clientID,
		fieldExpiresAt: expiresAt.Format(time.RFC3339),
	}, map[string]interface{}{
		"role":              roleName,
		fieldCredentialType: credentialJWT,
	})
	// The JWT's exp is whole seconds after iat (now truncated), so the lease
	// measured from now ends no later than the JWT, by the margin at least.
	setLease(resp, expiresAt.Sub(now)-leaseSafetyMargin)
	return resp, nil
}

func (b *backend) issueAccessToken(ctx context.Context, req *logical.Request, roleName string, role *roleEntry, cfg *config) (*logical.Response, error) {
	var (
		tok    *pure1.AccessToken
		margin time.Duration
	)
	if role.ReuseAccessToken {
		tok = b.tokens.get(roleName, role.Username, cfg, b.now(), role.ReuseMargin)
		margin = role.ReuseMargin
		if tok != nil {
			b.metrics.observeReusedToken(roleName)
		}
	}
	if tok == nil {
		var err error
		if tok, err = b.exchange(ctx, roleName, role.Username, cfg); err != nil {
			return exchangeErrorResponse(err, cfg)
		}
		shareable := tok.ExpiresAt.Sub(b.now())-role.ReuseMargin >= minReuseLease
		switch {
		case !role.ReuseAccessToken:
		case !shareable:
			// A token too short-lived to share under the margin is handed to
			// this reader alone, for its whole life.
			margin = 0
		case b.isCurrentConfig(ctx, req.Storage, cfg) && b.isCurrentRole(ctx, req.Storage, roleName, role):
			// An exchange that raced a config or role rewrite is not kept:
			// its token belongs to the old key, application or user.
			b.tokens.put(roleName, role.Username, cfg, tok)
		}
	}

	now := b.now()
	ttl := tok.ExpiresAt.Sub(now) - margin - leaseSafetyMargin
	if role.TTL > 0 && role.TTL < ttl {
		ttl = role.TTL
	}
	if limit := b.leaseCap(role); limit > 0 && ttl > limit {
		ttl = limit
	}
	if ttl < time.Second {
		return nil, fmt.Errorf("Pure1 issued an access token that expires at %s, too soon to lease: check the clock of this Vault node", tok.ExpiresAt.Format(time.RFC3339))
	}
	data := map[string]interface{}{
		fieldAccessToken: tok.Token,
		fieldTokenType:   tok.TokenType,
		fieldExpiresAt:   tok.ExpiresAt.Format(time.RFC3339),
		fieldAppID:       cfg.clientID,
	}
	if tok.MaxRole != "" {
		data[fieldMaxRole] = tok.MaxRole
	}
	if tok.Org != "" {
		data[fieldOrg] = tok.Org
	}
	resp := b.Secret(secretCredentialType).Response(data, map[string]interface{}{
		"role":              roleName,
		fieldCredentialType: credentialAccessToken,
	})
	setLease(resp, ttl)
	return resp, nil
}

func setLease(resp *logical.Response, ttl time.Duration) {
	resp.Secret.TTL = ttl
	resp.Secret.MaxTTL = ttl
	resp.Secret.Renewable = false
}

// exchange trades a fresh JWT for an access token, with at most one exchange
// in flight per role, user and key: concurrent readers share its answer, and
// a reader never joins an exchange made for another user of the role.
func (b *backend) exchange(ctx context.Context, roleName, username string, cfg *config) (*pure1.AccessToken, error) {
	return b.flights.do(ctx, flightKey(roleName, username, cfg.identity), func(ctx context.Context) (*pure1.AccessToken, error) {
		return b.exchangeWith(ctx, cfg, username, "role "+roleName)
	})
}

// exchangeWith signs a short-lived JWT with cfg's key and trades it where
// cfg's kind says, for user sub (which a Pure1 config ignores). who names
// the requester in the logs.
func (b *backend) exchangeWith(ctx context.Context, cfg *config, sub, who string) (*pure1.AccessToken, error) {
	up, err := cfg.kind.target(b, cfg, sub)
	if err != nil {
		return nil, err
	}
	return b.exchangeSigned(ctx, cfg.name, up, who)
}

// exchangeSigned is every exchange the engine makes: it signs with up's
// signer, trades the JWT at up's token endpoint and counts it in the metrics
// of config.
func (b *backend) exchangeSigned(ctx context.Context, config string, up upstream, who string) (*pure1.AccessToken, error) {
	jwt, _, err := up.sign(b.now(), exchangeJWTLifetime, "")
	if err != nil {
		return nil, err
	}
	start := time.Now()
	tok, err := up.ex.Exchange(pure1.WithAttemptObserver(ctx, b.metrics.exchangeAttemptObserver(config)), up.tokenURL, jwt)
	b.metrics.observeExchange(config, time.Since(start), err)
	if err != nil && b.ctx.Err() != nil {
		return nil, fmt.Errorf("%w: this mount is being unmounted or reloaded (%v)", pure1.ErrUnavailable, err)
	}
	if err != nil {
		b.Logger().Warn(up.upstream+" token exchange failed", "for", who, up.idKey, up.clientID, "error", err)
		return nil, err
	}
	b.Logger().Debug(up.upstream+" token exchanged", "for", who, up.idKey, up.clientID,
		"expires_at", tok.ExpiresAt.Format(time.RFC3339), "duration", time.Since(start))
	return tok, nil
}

// flightKey names the exchange of a role for a user under a config
// identity: readers of the role share it only while neither changed.
func flightKey(role, user, identity string) string { return role + "\x00" + user + "\x00" + identity }

// flightRole is the role of a flightKey.
func flightRole(key string) string {
	role, _, _ := strings.Cut(key, "\x00")
	return role
}

// readOutcome classifies a credential read's result for
// pure1_credentials_issued_total.
func readOutcome(resp *logical.Response, err error) string {
	switch {
	case err != nil:
		return outcomeFailed
	case resp == nil || resp.IsError():
		return outcomeRefused
	}
	return outcomeOK
}

// exchangeErrorResponse explains a failed exchange. Pure1's refusals are the
// operator's to fix (400); outages and bad answers are Pure1's (502), which
// tells clients such as Vault Agent that trying again later may work.
func exchangeErrorResponse(err error, cfg *config) (*logical.Response, error) {
	switch {
	case errors.Is(err, pure1.ErrHostNotAllowed):
		// The registrar's allowlist, not Pure1, refused: nothing was sent.
		return logical.ErrorResponse("config %q: %s", cfg.name, sentence(err)), nil
	case errors.Is(err, pure1.ErrRejected):
		return logical.ErrorResponse(cfg.kind.exchangeRefused(cfg, err)), nil
	case !errors.Is(err, pure1.ErrUnavailable) && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		// This reader stopped waiting; it says nothing about Pure1.
		return nil, err
	}
	return nil, logical.CodedError(http.StatusBadGateway, cfg.kind.exchangeFailed(cfg, err))
}

// sentence is err's text ready to be followed by ". More": Pure1's
// error_description usually ends with its own period ("JWT validation
// failed."), which would otherwise double. An ellipsis (text cut short) stays.
func sentence(err error) string {
	s := strings.TrimRight(err.Error(), " ")
	if strings.HasSuffix(s, ".") && !strings.HasSuffix(s, "..") {
		s = strings.TrimSuffix(s, ".")
	}
	return s
}
