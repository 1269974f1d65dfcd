package backend

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
)

// Fields of a config/<name>/check response.
const (
	fieldCheckOK        = "ok"
	fieldTokenTTL       = "token_ttl"
	fieldRoundTripMS    = "round_trip_ms"
	fieldCheckedAt      = "checked_at"
	fieldCached         = "cached"
	fieldCheckError     = "error"
	fieldCheckAdvice    = "advice"
	checkFlightKeyStart = "\x00check\x00" // no role name starts with NUL: never shares a creds flight
)

// checkMaxAge is how long a check's result is answered again instead of
// exchanging anew: polling the path (monitoring, a person pressing enter)
// must not spend the organisation's Pure1 rate limit.
const checkMaxAge = time.Minute

const (
	checkHelpSynopsis    = "Check a config against Pure1 or its array: one live token exchange with its active key and client."
	checkHelpDescription = `
Reading config/<name>/check signs a JWT with the config's active key and
exchanges it at its token_url (an array config: at its array, for its
username), as a creds read of an access_token role would.
It answers ok=true with the token's org, max_role, lifetime (token_ttl, seconds)
and the exchange's round_trip_ms; or ok=false with Pure1's (or the array's)
error, the key's fingerprint and what to check. The token itself is not returned.

A result is answered again for a minute (cached=true, checked_at says when it
was made), so that polling cannot use up the organisation's Pure1 rate limit.
Any change to the config starts afresh.
`
)

func pathCheck(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: configStoragePrefix + framework.GenericNameRegex("name") + "/check",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "pure1",
			OperationVerb:   "check",
			OperationSuffix: "config",
		},
		Fields: map[string]*framework.FieldSchema{
			"name": {
				Type:        framework.TypeString,
				Description: "Name of the config to check.",
				Required:    true,
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathCheckRead,
				Summary:  "Exchange a JWT of the config's active key with Pure1 (or its array) and report the outcome (cached for a minute).",
				Responses: map[int][]framework.Response{
					200: {{
						Description: "OK",
						Fields: map[string]*framework.FieldSchema{
							fieldCheckOK:              {Type: framework.TypeBool, Description: "Whether Pure1 (or the array) issued an access token."},
							fieldKind:                 {Type: framework.TypeString, Description: "The config's kind: pure1, flasharray or flashblade."},
							fieldAppID:                {Type: framework.TypeString, Description: "The application ID (arrays: the API client id) checked."},
							fieldPublicKeyFingerprint: {Type: framework.TypeString, Description: "Fingerprint of the active key checked."},
							fieldTokenURL:             {Type: framework.TypeString, Description: "Pure1: where the exchange went."},
							fieldArrayURL:             {Type: framework.TypeString, Description: "Arrays: the array the exchange went to."},
							fieldOrg:                  {Type: framework.TypeString, Description: "ok: the token's org, when present."},
							fieldMaxRole:              {Type: framework.TypeString, Description: "ok: the token's max_role, when present."},
							fieldTokenTTL:             {Type: framework.TypeInt, Description: "ok: seconds the issued token was valid for."},
							fieldRoundTripMS:          {Type: framework.TypeInt, Description: "Milliseconds the exchange took, retries included."},
							fieldCheckError:           {Type: framework.TypeString, Description: "not ok: Pure1's (or the array's) answer, or the network error."},
							fieldCheckAdvice:          {Type: framework.TypeString, Description: "not ok: what to check."},
							fieldCheckedAt:            {Type: framework.TypeTime, Description: "When the exchange was made (RFC 3339)."},
							fieldCached:               {Type: framework.TypeBool, Description: "Whether this is the result of an earlier check, less than a minute old."},
						},
					}},
				},
			},
		},
		HelpSynopsis:    checkHelpSynopsis,
		HelpDescription: strings.TrimSpace(checkHelpDescription),
	}}
}

// checkCache keeps each config's last check result, by config name, valid
// only for the config identity it was made with.
type checkCache struct {
	mu sync.Mutex
	m  map[string]checkResult
}

type checkResult struct {
	identity string
	at       time.Time
	data     map[string]interface{}
}

func newCheckCache() *checkCache { return &checkCache{m: make(map[string]checkResult)} }

func (c *checkCache) get(name, identity string, now time.Time) (checkResult, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.m[name]
	if !ok || r.identity != identity || now.Sub(r.at) >= checkMaxAge || now.Before(r.at) {
		return checkResult{}, false
	}
	return r, true
}

func (c *checkCache) put(name string, r checkResult) {
	c.mu.Lock()
	c.m[name] = r
	c.mu.Unlock()
}

func (c *checkCache) drop(name string) {
	c.mu.Lock()
	delete(c.m, name)
	c.mu.Unlock()
}

func (b *backend) pathCheckRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	cfg, err := b.getConfig(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return logical.ErrorResponse("config %q does not exist: list configs with vault list %sconfig", name, req.MountPoint), nil
	}
	if !cfg.ready() {
		return logical.ErrorResponse(cfg.kind.notReady(cfg, req.MountPoint)), nil
	}
	if r, ok := b.checks.get(name, cfg.identity, b.now()); ok {
		return checkResponse(r.data, true), nil
	}

	checkedAt := b.now()
	start := time.Now()
	// Concurrent checks of one config share one exchange.
	tok, err := b.flights.do(ctx, checkFlightKeyStart+cfg.identity, func(ctx context.Context) (*pure1.AccessToken, error) {
		return b.exchangeWith(ctx, cfg, cfg.entry.Username, "check")
	})
	rtt := time.Since(start)
	if err != nil && isContextErr(err) && !errors.Is(err, pure1.ErrUnavailable) {
		// This reader gave up; it says nothing about Pure1, so nothing is kept.
		return nil, err
	}

	endpointField, endpoint := cfg.kind.endpoint(cfg)
	data := map[string]interface{}{
		fieldCheckOK:              err == nil,
		fieldKind:                 cfg.kind.Name(),
		fieldAppID:                cfg.clientID,
		fieldPublicKeyFingerprint: cfg.key.Fingerprint(),
		endpointField:             endpoint,
		fieldRoundTripMS:          rtt.Milliseconds(),
		fieldCheckedAt:            formatTime(checkedAt),
	}
	if err == nil {
		data[fieldTokenTTL] = int64(tok.ExpiresAt.Sub(checkedAt) / time.Second)
		if tok.Org != "" {
			data[fieldOrg] = tok.Org
		}
		if tok.MaxRole != "" {
			data[fieldMaxRole] = tok.MaxRole
		}
	} else {
		data[fieldCheckError] = err.Error()
		data[fieldCheckAdvice] = cfg.kind.checkAdvice(cfg, err)
		b.Logger().Warn("config check: no token was issued", "config", name, "kind", cfg.kind.Name(), "client", cfg.clientID, "error", err)
	}
	b.checks.put(name, checkResult{identity: cfg.identity, at: checkedAt, data: data})
	return checkResponse(data, false), nil
}

// checkResponse copies data, so that a cached result is never changed by the
// response built from it.
func checkResponse(data map[string]interface{}, cached bool) *logical.Response {
	d := maps.Clone(data)
	d[fieldCached] = cached
	resp := &logical.Response{Data: d}
	if d[fieldCheckOK] != true {
		resp.AddWarning(fmt.Sprintf("the %s did not issue a token: %v", d[fieldKind], d[fieldCheckAdvice]))
	}
	return resp
}
