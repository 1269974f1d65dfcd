package purearray

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// stepAdmin records the admin calls and fails the ones it is told to.
type stepAdmin struct {
	fail  map[string]error
	calls []string
	// noIDs: neither create nor enable answers with id and key_id.
	noIDs bool
}

func (a *stepAdmin) CreateAPIClient(_ context.Context, c NewAPIClient) (*APIClient, error) {
	a.calls = append(a.calls, "create "+c.Name)
	if err := a.fail["create"]; err != nil {
		return nil, err
	}
	if a.noIDs {
		return &APIClient{Name: c.Name, Issuer: c.Issuer}, nil
	}
	return &APIClient{Name: c.Name, ID: "id", KeyID: "kid", Issuer: c.Issuer}, nil
}

func (a *stepAdmin) EnableAPIClient(_ context.Context, name string) (*APIClient, error) {
	a.calls = append(a.calls, "enable "+name)
	if err := a.fail["enable"]; err != nil {
		return nil, err
	}
	if a.noIDs {
		return &APIClient{Name: name, Enabled: true}, nil
	}
	return &APIClient{Name: name, ID: "id", KeyID: "kid", Enabled: true}, nil
}

func (a *stepAdmin) GetAPIClient(context.Context, string) (*APIClient, error) { return nil, nil }

func (a *stepAdmin) DeleteAPIClient(_ context.Context, name string) error {
	a.calls = append(a.calls, "delete "+name)
	return a.fail["delete"]
}

// Every failure after the client exists deletes it; a failed create deletes
// nothing (the name may be another client's); a failed cleanup is reported.
func TestRegisterSteps(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name      string
		fail      map[string]error
		verifyErr error
		noIDs     bool
		wantStep  Step
		wantCalls []string
		cleanup   bool // the cleanup itself failed
	}{
		{name: "ok", wantCalls: []string{"create c", "enable c"}},
		{name: "create", fail: map[string]error{"create": boom}, wantStep: StepCreate, wantCalls: []string{"create c"}},
		{name: "enable", fail: map[string]error{"enable": boom}, wantStep: StepEnable, wantCalls: []string{"create c", "enable c", "delete c"}},
		{name: "no ids", noIDs: true, wantStep: StepEnable, wantCalls: []string{"create c", "enable c", "delete c"}},
		{name: "verify", verifyErr: boom, wantStep: StepVerify, wantCalls: []string{"create c", "enable c", "delete c"}},
		{name: "verify and cleanup", verifyErr: boom, fail: map[string]error{"delete": boom}, wantStep: StepVerify,
			wantCalls: []string{"create c", "enable c", "delete c"}, cleanup: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &stepAdmin{fail: tc.fail, noIDs: tc.noIDs}
			// A cancelled request still cleans up.
			ctx, cancel := context.WithCancel(context.Background())
			var verified Identity
			c, err := Register(ctx, a, NewAPIClient{Name: "c", Issuer: "iss"}, func(_ context.Context, id Identity) error {
				verified = id
				cancel()
				return tc.verifyErr
			})
			cancel()
			if !reflect.DeepEqual(a.calls, tc.wantCalls) {
				t.Errorf("calls %v, want %v", a.calls, tc.wantCalls)
			}
			if tc.wantStep == "" {
				if err != nil || c.ID != "id" || c.KeyID != "kid" || verified != (Identity{ClientID: "id", KeyID: "kid", Issuer: "iss"}) {
					t.Fatalf("Register = %+v, %v (verified %+v)", c, err, verified)
				}
				return
			}
			var re *RegisterError
			if !errors.As(err, &re) || re.Step != tc.wantStep {
				t.Fatalf("err = %v, want a RegisterError at %s", err, tc.wantStep)
			}
			if got := re.Cleanup != nil; got != tc.cleanup || got != strings.Contains(err.Error(), "delete it on the array") {
				t.Errorf("cleanup failed=%v, message %q", got, err)
			}
		})
	}
}
