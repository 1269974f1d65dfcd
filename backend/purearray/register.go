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
	if e.Cleanup != nil {
		s += fmt.Sprintf("; deleting the half-made client also failed (%v): delete it on the array (pureapiclient delete, or Settings > Access > API Clients)", e.Cleanup)
	}
	return s
}

func (e *RegisterError) Unwrap() error { return e.Err }

// cleanupTimeout bounds deleting a half-made client, which runs even when the
// request that started the registration has ended.
const cleanupTimeout = 15 * time.Second

// Register creates the API client c, enables it, reads back its id and
// key_id, and proves them with verify (an exchange signed with the new key).
// Any failure deletes the client it created, so the array is left as it was:
// the working client, if any, is never touched here.
func Register(ctx context.Context, admin Admin, c NewAPIClient, verify func(context.Context, Identity) error) (*APIClient, error) {
	created, err := admin.CreateAPIClient(ctx, c)
	if err != nil {
		// Nothing of ours exists: a name taken by another client must not
		// be deleted on the way out.
		return nil, &RegisterError{Step: StepCreate, Name: c.Name, Err: err}
	}
	fail := func(step Step, err error) (*APIClient, error) {
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
	if err := verify(ctx, id); err != nil {
		return fail(StepVerify, err)
	}
	enabled.ID, enabled.KeyID, enabled.Issuer = id.ClientID, id.KeyID, id.Issuer
	return enabled, nil
}
