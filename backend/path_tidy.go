package backend

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const fieldUsersDeleted = "users_deleted"

const (
	tidyHelpSynopsis    = "Delete now what config NAME left on its array: the API clients on the delete list that are due."
	tidyHelpDescription = `
Vault deletes the API clients it made and no longer needs (a rotated-out
client once its credentials have expired, a half-made client of a failed or
interrupted registration, the clients of a deleted config) from a list in
storage, in the background on the active node, retrying with growing backoff
while the array refuses. Writing config/NAME/tidy tries every due entry of
config NAME now, backoff or not: for when the array is back. It also works
for a config already deleted. A retired client is not due before
previous_api_client_delete_at; to cut it off sooner, rotate with
retire_previous=now.

The answer lists what is still waiting (pending_deletions), with each
entry's last error. Reads of the config show the same list.

It also deletes the array users that no live lease names: users of
credential_type=api_token roles whose lease was never revoked (the array was
down past Vault's retries), and users with a Vault prefix that Vault has no
record of. The background loop does the same every hour.
`
)

func pathTidy(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: configStoragePrefix + framework.GenericNameRegex("name") + "/tidy",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "pure1",
			OperationVerb:   "tidy",
			OperationSuffix: "config",
		},
		Fields: map[string]*framework.FieldSchema{
			"name": {
				Type:        framework.TypeString,
				Description: "Name of the config (existing or deleted) whose API clients to delete now.",
				Required:    true,
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback:                    b.pathTidyWrite,
				Summary:                     "Try every due entry of the config's delete list now, and show what still waits.",
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
				Responses: map[int][]framework.Response{
					200: {{
						Description: "OK",
						Fields: map[string]*framework.FieldSchema{
							fieldPendingDeletions: arrayConfigResponseFields[fieldPendingDeletions],
							fieldUsersDeleted:     {Type: framework.TypeInt, Description: "Array users with a Vault prefix that no live lease named, deleted now."},
						},
					}},
				},
			},
		},
		HelpSynopsis:    tidyHelpSynopsis,
		HelpDescription: strings.TrimSpace(tidyHelpDescription),
	}}
}

func (b *backend) pathTidyWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if err := rejectUnknownFields(req, d); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	name := d.Get("name").(string)
	if !b.mayWrite() {
		return nil, logical.ErrReadOnly
	}
	b.drainBounded(ctx, req.Storage, name, true)
	pending, err := b.pendingDeletions(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if pending == nil {
		pending = []map[string]interface{}{}
	}
	resp := &logical.Response{Data: map[string]interface{}{fieldPendingDeletions: pending}}
	// And the array users no live lease names (array_users.go).
	tctx, cancel := context.WithTimeout(ctx, inlineCleanupTimeout)
	defer cancel()
	n, uerr := b.tidyUsers(tctx, req.Storage, name)
	resp.Data[fieldUsersDeleted] = n
	if uerr != nil {
		resp.AddWarning(fmt.Sprintf("tidying the array users of config %q failed: %v; the background loop tries again", name, uerr))
	}
	if len(pending) > 0 {
		resp.AddWarning("some API clients are still on the delete list: " + pendingSummary(pending))
	}
	return resp, nil
}
