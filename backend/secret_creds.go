package backend

import (
	"context"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const secretCredentialType = "pure1_credential"

// secretCredential is the lease type of creds/<role>. Pure1 has no token
// revocation endpoint, so revoking a lease ends the lease only: the credential
// stays valid until its own expiry, which the lease never outlives.
func secretCredential(b *backend) *framework.Secret {
	return &framework.Secret{
		Type: secretCredentialType,
		Fields: map[string]*framework.FieldSchema{
			fieldJWT:         {Type: framework.TypeString, Description: "The signed Pure1 JWT (jwt roles)."},
			fieldAccessToken: {Type: framework.TypeString, Description: "The Pure1 access token (access_token roles)."},
			fieldExpiresAt:   {Type: framework.TypeString, Description: "When the credential expires (RFC 3339)."},
		},
		Renew:  b.secretCredentialRenew,
		Revoke: b.secretCredentialRevoke,
	}
}

func (b *backend) secretCredentialRenew(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	return logical.ErrorResponse("Pure1 credentials cannot be extended: read creds/<role> again for a new one"), nil
}

func (b *backend) secretCredentialRevoke(_ context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.Logger().Debug("lease revoked; the Pure1 credential stays valid until it expires (Pure1 has no revocation)",
		"role", req.Secret.InternalData["role"])
	return nil, nil
}
