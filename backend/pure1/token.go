package pure1

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// AccessToken is what Pure1's token endpoint returns, with the claims of the
// access token itself that operators care about.
type AccessToken struct {
	Token           string
	TokenType       string // "Bearer"
	IssuedTokenType string
	ExpiresIn       time.Duration
	ExpiresAt       time.Time // issue time + expires_in, or the token's exp if earlier
	Org             string    // from the access token's payload, when present
	MaxRole         string    // from the access token's payload, when present
}

// tokenResponse is the JSON body of a token endpoint answer, success or error.
type tokenResponse struct {
	AccessToken      string   `json:"access_token"`
	IssuedTokenType  string   `json:"issued_token_type"`
	TokenType        string   `json:"token_type"`
	ExpiresIn        *float64 `json:"expires_in"`
	Error            string   `json:"error"`
	ErrorDescription string   `json:"error_description"`
}

// ParseTokenResponse interprets one answer of the token endpoint to a request
// sent at sent and answered at received. A token without its own exp expires
// expires_in after sent: Pure1 issued it no earlier, so a lease measured from
// there never outlives it, however slow the answer was. Retry-After dates
// count from received. A non-200 status is an *APIError; a 200 that is not a
// usable token is ErrBadResponse.
func ParseTokenResponse(status int, header http.Header, body []byte, sent, received time.Time) (*AccessToken, error) {
	if status != http.StatusOK {
		apiErr := &APIError{StatusCode: status, RetryAfter: parseRetryAfter(header.Get("Retry-After"), received)}
		var r tokenResponse
		// Quoted text ends up in errors, creds responses and logs: a token
		// endpoint that echoes the JWT (or mints a token into its error)
		// must not turn those into a place to read credentials from.
		if json.Unmarshal(body, &r) == nil && (r.Error != "" || r.ErrorDescription != "") {
			apiErr.Code = trimForMessage(redactTokens([]byte(r.Error)))
			apiErr.Description = trimForMessage(redactTokens([]byte(r.ErrorDescription)))
		} else if status != http.StatusTooManyRequests && status < 500 {
			apiErr.Description = trimForMessage(redactTokens(body))
		}
		if status == http.StatusTooManyRequests && apiErr.Description == "" {
			apiErr.Description = "rate limit exceeded" + rateLimitDetail(header)
		}
		switch {
		case apiErr.Description != "":
		case status == http.StatusNotImplemented:
			apiErr.Description = "the endpoint does not implement this request (not retried): check that token_url is Pure1's token endpoint"
		case status == http.StatusHTTPVersionNotSupported:
			apiErr.Description = "the endpoint does not support this HTTP version (not retried): check token_url and any proxy in between"
		}
		return nil, apiErr
	}
	var r tokenResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%w: the body is not JSON (%s)", ErrBadResponse, trimForMessage(body[:min(len(body), 40)]))
	}
	if r.AccessToken == "" {
		// FlashArray and FlashBlade answer either plainly or, like the rest
		// of their REST 2 API, as {"items":[{...}]}.
		var wrapped struct {
			Items []tokenResponse `json:"items"`
		}
		if json.Unmarshal(body, &wrapped) == nil && len(wrapped.Items) == 1 {
			r = wrapped.Items[0]
		}
	}
	if r.AccessToken == "" {
		return nil, fmt.Errorf("%w: no access_token in the answer", ErrBadResponse)
	}
	if r.ExpiresIn == nil || *r.ExpiresIn <= 0 {
		return nil, fmt.Errorf("%w: expires_in is missing or not positive, so the token's lifetime is unknown", ErrBadResponse)
	}
	// Converting a float beyond int64 to a Duration does not fail: it gives
	// a negative or arbitrary value, i.e. a token already expired.
	if *r.ExpiresIn >= float64(math.MaxInt64/int64(time.Second)) || *r.ExpiresIn < 1e-9 {
		return nil, fmt.Errorf("%w: expires_in %g is out of range", ErrBadResponse, *r.ExpiresIn)
	}
	if r.TokenType != "" && !strings.EqualFold(r.TokenType, "Bearer") {
		return nil, fmt.Errorf("%w: token_type %q, expected Bearer", ErrBadResponse, trimForMessage([]byte(r.TokenType)))
	}
	life := time.Duration(*r.ExpiresIn * float64(time.Second))
	tok := &AccessToken{
		Token:           r.AccessToken,
		TokenType:       "Bearer",
		IssuedTokenType: r.IssuedTokenType,
		ExpiresIn:       life,
		ExpiresAt:       sent.Add(life).Truncate(time.Second).UTC(),
	}
	claims := DecodeAccessTokenClaims(r.AccessToken)
	tok.Org, tok.MaxRole = claims.Org, claims.MaxRole
	if !claims.Expiry.IsZero() && claims.Expiry.Before(tok.ExpiresAt) {
		// Believe the token over expires_in: a lease must never outlive it.
		tok.ExpiresAt = claims.Expiry.UTC()
	}
	return tok, nil
}

// jwtLike matches a JWS compact serialisation: three base64url parts, the
// first two long enough to be a header and claims.
var jwtLike = regexp.MustCompile(`[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*`)

// redactTokens blanks out anything shaped like a JWT.
func redactTokens(b []byte) []byte {
	return jwtLike.ReplaceAll(b, []byte("[token redacted]"))
}

func rateLimitDetail(h http.Header) string {
	var parts []string
	for _, k := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
		if v := h.Get(k); v != "" {
			parts = append(parts, k+"="+trimForMessage([]byte(v)))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// AccessTokenClaims are the parts of a Pure1 access token's payload shown to
// operators.
type AccessTokenClaims struct {
	Org     string
	MaxRole string
	Expiry  time.Time
}

// DecodeAccessTokenClaims reads org, max_role and exp from an access token's
// payload without verifying it: Pure1 is the verifier, we only display. It
// never fails; what cannot be read is left empty.
func DecodeAccessTokenClaims(token string) AccessTokenClaims {
	var out AccessTokenClaims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return out
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return out
	}
	var c map[string]any
	if json.Unmarshal(raw, &c) != nil {
		return out
	}
	out.Org = claimString(c["org"])
	out.MaxRole = claimString(c["max_role"])
	if exp, ok := c["exp"].(float64); ok && exp > 0 && exp < 1e11 {
		out.Expiry = time.Unix(int64(exp), 0)
	}
	return out
}

// claimString renders a claim that Pure1 may send as a string or a number.
func claimString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case float64:
		return fmt.Sprintf("%.0f", t)
	case json.Number:
		return t.String()
	}
	return ""
}
