package purearray

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Step names a step of a registration, for errors and tests.
type Step string

const (
	StepCreate Step = "create"
	StepEnable Step = "enable"
	StepVerify Step = "verify"
)

// RegisterError is a registration that failed at Step. Cleanup says what
// became of the half-made client: deleted, or why it could not be.
type RegisterError struct {
	Step    Step
	Name    string
	Err     error
	Cleanup error // nil: the new client was deleted (or never created)
}

func (e *RegisterError) Error() string {
	s := fmt.Sprintf("API client %q: %s failed: %v", e.Name, e.Step, e.Err)
	if errors.Is(e.Cleanup, context.Canceled) || errors.Is(e.Cleanup, context.DeadlineExceeded) {
		return s + "; the half-made client was left to Vault's delete list, which removes it"
	}
	if e.Cleanup != nil {
		s += fmt.Sprintf("; deleting the half-made client also failed (%v): delete it on the array (pureapiclient delete, or Settings > Access > API Clients)", e.Cleanup)
	}
	return s
}

func (e *RegisterError) Unwrap() error { return e.Err }

// cleanupTimeout bounds deleting a half-made client, which runs even when the
// request that started the registration has ended.
const cleanupTimeout = 15 * time.Second

// Registration is one API client to register and how to tell Vault's own
// clients from others of the same name.
type Registration struct {
	Client NewAPIClient
	// KeyFingerprint is the fingerprint of Client.PublicKeyPEM: a client of
	// this name holding it was made by this very registration (a create
	// that the array applied although its answer was lost) and is adopted.
	KeyFingerprint string
	// Leftover reports whether an existing client of this name, holding
	// another key, is one Vault made and forgot (a crash between create and
	// store): it is deleted and the name taken again. Nil: none is.
	Leftover func(*APIClient) bool
	// Verify proves the enabled client with an exchange signed by the new
	// key.
	Verify func(context.Context, Identity) error
}

// ErrNameTaken: the name belongs to an API client Vault did not make.
var ErrNameTaken = errors.New("the API client name is taken by a client Vault did not make")

// Register creates the API client, enables it, reads back its id and key_id,
// and proves them with Verify. Any failure after the client exists deletes
// it, so the array is left as it was: the working client, if any, is never
// touched here. A create whose answer was lost is looked up by name, and a
// client found there is adopted only when it holds r's key.
func Register(ctx context.Context, admin Admin, r Registration) (*APIClient, error) {
	c := r.Client
	created, err := create(ctx, admin, r)
	if err != nil {
		// Nothing of ours exists: a name taken by another client must not
		// be deleted on the way out.
		return nil, &RegisterError{Step: StepCreate, Name: c.Name, Err: err}
	}
	fail := func(step Step, err error) (*APIClient, error) {
		if ctx.Err() != nil {
			// Cancelled (a client gone, an unmount): no call may hold the
			// caller up now; its journal deletes the client later.
			return nil, &RegisterError{Step: step, Name: c.Name, Err: err, Cleanup: ctx.Err()}
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		return nil, &RegisterError{Step: step, Name: c.Name, Err: err, Cleanup: admin.DeleteAPIClient(cctx, c.Name)}
	}
	enabled, err := admin.EnableAPIClient(ctx, c.Name)
	if err != nil {
		return fail(StepEnable, err)
	}
	if !enabled.Enabled {
		return fail(StepEnable, errors.New("the array still shows the client disabled"))
	}
	id := Identity{ClientID: enabled.ID, KeyID: enabled.KeyID, Issuer: c.Issuer}
	if id.ClientID == "" {
		id.ClientID = created.ID
	}
	if id.KeyID == "" {
		id.KeyID = created.KeyID
	}
	if err := id.Validate(); err != nil {
		return fail(StepEnable, fmt.Errorf("the array did not return the client's id and key_id: %w", err))
	}
	if err := r.Verify(ctx, id); err != nil {
		return fail(StepVerify, err)
	}
	enabled.ID, enabled.KeyID, enabled.Issuer = id.ClientID, id.KeyID, id.Issuer
	return enabled, nil
}

// create creates r's client. When the create fails it looks the name up: a
// client there with r's key is the create applied (its answer lost on the
// way back) and is returned; one with a key Vault made and forgot is deleted
// and the create tried once more; anyone else's is ErrNameTaken.
func create(ctx context.Context, admin Admin, r Registration) (*APIClient, error) {
	created, err := admin.CreateAPIClient(ctx, r.Client)
	if err == nil {
		return created, nil
	}
	if ctx.Err() != nil {
		// The lookup cannot run now; what the create left is the caller's
		// journal's to find.
		return nil, err
	}
	found, gerr := admin.GetAPIClient(ctx, r.Client.Name)
	switch {
	case gerr != nil || found == nil:
		return nil, err
	case found.HasKey(r.KeyFingerprint):
		return found, nil
	case r.Leftover != nil && r.Leftover(found):
		if derr := admin.DeleteAPIClient(ctx, r.Client.Name); derr != nil {
			return nil, fmt.Errorf("a client Vault made earlier holds the name %q and could not be deleted: %w", r.Client.Name, derr)
		}
		return admin.CreateAPIClient(ctx, r.Client)
	}
	return nil, fmt.Errorf("%w: %q exists on the array with another public key (%v): delete it there or choose another api_client_name", ErrNameTaken, r.Client.Name, err)
}
