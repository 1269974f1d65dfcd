package purearray

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
)

// stepAdmin is an array's API clients behind Admin, in memory: it records
// the calls, fails the ones it is told to, and notes the context each
// delete ran under.
type stepAdmin struct {
	Users   // not used by Register
	clients map[string]*APIClient
	// fail fails an op (create, recreate: the second create, enable, read,
	// delete); applied: a failed create still made the client, as when
	// the array's answer is lost.
	fail    map[string]error
	applied bool
	// noIDs: "enable" answers without id and key_id, "both" create too.
	noIDs string
	// disabled: enable answers the client still disabled.
	disabled bool
	// cancelAt cancels the registration's context during that op.
	cancelAt string
	cancel   context.CancelFunc

	calls   []string
	creates int
	// deletes is the context of each delete: cancelled, and its deadline.
	deletes []deleteCtx
}

type deleteCtx struct {
	err      error
	deadline time.Duration // 0: none
}

func (a *stepAdmin) step(ctx context.Context, op, name string) {
	a.calls = append(a.calls, op+" "+name)
	if a.cancelAt == op {
		a.cancel()
	}
}

func (a *stepAdmin) CreateAPIClient(ctx context.Context, c NewAPIClient) (*APIClient, error) {
	a.step(ctx, "create", c.Name)
	a.creates++
	op := "create"
	if a.creates > 1 {
		op = "recreate"
	}
	if err := a.fail[op]; err != nil {
		if a.applied {
			a.put(c)
		}
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if a.clients[c.Name] != nil {
		return nil, errors.New("HTTP 400: the name is in use")
	}
	got := a.put(c)
	if a.noIDs == "both" {
		return &APIClient{Name: c.Name, Issuer: c.Issuer}, nil
	}
	cp := *got
	return &cp, nil
}

func (a *stepAdmin) put(c NewAPIClient) *APIClient {
	got := &APIClient{Name: c.Name, ID: "id", KeyID: "kid", Issuer: c.Issuer, PublicKey: c.PublicKeyPEM}
	a.clients[c.Name] = got
	return got
}

func (a *stepAdmin) EnableAPIClient(ctx context.Context, name string) (*APIClient, error) {
	a.step(ctx, "enable", name)
	if err := a.fail["enable"]; err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	c := a.clients[name]
	if c == nil {
		return nil, errors.New("HTTP 400: no such client")
	}
	c.Enabled = !a.disabled
	cp := *c
	if a.noIDs != "" {
		cp.ID, cp.KeyID = "", ""
	}
	return &cp, nil
}

func (a *stepAdmin) GetAPIClient(ctx context.Context, name string) (*APIClient, error) {
	a.step(ctx, "read", name)
	if err := a.fail["read"]; err != nil {
		return nil, err
	}
	c := a.clients[name]
	if c == nil {
		return nil, nil
	}
	cp := *c
	return &cp, nil
}

func (a *stepAdmin) DeleteAPIClient(ctx context.Context, name string) error {
	a.step(ctx, "delete", name)
	d := deleteCtx{err: ctx.Err()}
	if dl, ok := ctx.Deadline(); ok {
		d.deadline = time.Until(dl)
	}
	a.deletes = append(a.deletes, d)
	if err := a.fail["delete"]; err != nil {
		return err
	}
	delete(a.clients, name)
	return nil
}

func (a *stepAdmin) Logout(ctx context.Context) error {
	a.step(ctx, "logout", "")
	return nil
}

// Every way a registration goes, with the calls it makes in order: a
// failed create deletes nothing of anyone's; a create whose answer was lost
// is adopted when the client holds our key; a leftover of Vault's holding
// the name is deleted and the name taken again; a stranger's is never
// touched; every failure after the client exists deletes it, unless the
// request is gone, when no call is made at all.
func TestRegisterSteps(t *testing.T) {
	boom := errors.New("boom")
	lost := errors.New("EOF: the answer was lost")
	delErr := errors.New("delete refused")
	ours := fixedKey(t)
	leftover := fixtureKey(t, "rsa2048-pkcs1.pem")
	stranger := fixtureKey(t, "rsa3072-pkcs8.pem")
	isLeftover := func(c *APIClient) bool { return c.HasKey(leftover.Fingerprint()) }

	for _, tc := range []struct {
		name      string
		on        *pure1.Key // the key of a client already named c
		a         stepAdmin
		noLeft    bool // Registration.Leftover is nil
		verifyErr error
		wantCalls []string
		// wantStep "" is success; wantErr is errors.Is of the error,
		// wantSays in its text.
		wantStep Step
		wantErr  error
		wantSays string
		cleanup  error // errors.Is of RegisterError.Cleanup; nil: none
		// left is the key of the client named c on the array at the end.
		left *pure1.Key
	}{
		{name: "ok", wantCalls: []string{"create c", "enable c"}, left: ours},
		{name: "ids from the create only", a: stepAdmin{noIDs: "enable"}, wantCalls: []string{"create c", "enable c"}, left: ours},

		{name: "create refused, name free", a: stepAdmin{fail: map[string]error{"create": boom}},
			wantCalls: []string{"create c", "read c"}, wantStep: StepCreate, wantErr: boom},
		{name: "create refused, lookup fails", a: stepAdmin{fail: map[string]error{"create": boom, "read": delErr}},
			wantCalls: []string{"create c", "read c"}, wantStep: StepCreate, wantErr: boom},
		{name: "create answer lost, applied: adopted", a: stepAdmin{fail: map[string]error{"create": lost}, applied: true},
			wantCalls: []string{"create c", "read c", "enable c"}, left: ours},
		{name: "adopted, then enable fails", a: stepAdmin{fail: map[string]error{"create": lost, "enable": boom}, applied: true},
			wantCalls: []string{"create c", "read c", "enable c", "delete c"}, wantStep: StepEnable, wantErr: boom},

		{name: "leftover of Vault's: deleted, created again", on: leftover,
			wantCalls: []string{"create c", "read c", "delete c", "create c", "enable c"}, left: ours},
		{name: "leftover, its delete fails", on: leftover, a: stepAdmin{fail: map[string]error{"delete": delErr}},
			wantCalls: []string{"create c", "read c", "delete c"}, wantStep: StepCreate, wantErr: delErr, wantSays: "a client Vault made earlier holds the name", left: leftover},
		{name: "leftover, the second create fails", on: leftover, a: stepAdmin{fail: map[string]error{"recreate": boom}},
			wantCalls: []string{"create c", "read c", "delete c", "create c"}, wantStep: StepCreate, wantErr: boom},

		{name: "stranger's name", on: stranger,
			wantCalls: []string{"create c", "read c"}, wantStep: StepCreate, wantErr: ErrNameTaken, wantSays: "choose another api_client_name", left: stranger},
		{name: "stranger's name, no leftover rule", on: stranger, noLeft: true,
			wantCalls: []string{"create c", "read c"}, wantStep: StepCreate, wantErr: ErrNameTaken, left: stranger},
		{name: "a client showing no key", on: &pure1.Key{},
			wantCalls: []string{"create c", "read c"}, wantStep: StepCreate, wantErr: ErrNameTaken, left: &pure1.Key{}},

		{name: "enable fails", a: stepAdmin{fail: map[string]error{"enable": boom}},
			wantCalls: []string{"create c", "enable c", "delete c"}, wantStep: StepEnable, wantErr: boom},
		{name: "enable leaves it disabled", a: stepAdmin{disabled: true},
			wantCalls: []string{"create c", "enable c", "delete c"}, wantStep: StepEnable, wantSays: "still shows the client disabled"},
		{name: "no ids", a: stepAdmin{noIDs: "both"},
			wantCalls: []string{"create c", "enable c", "delete c"}, wantStep: StepEnable, wantSays: "did not return the client's id and key_id"},
		{name: "verify fails", verifyErr: boom,
			wantCalls: []string{"create c", "enable c", "delete c"}, wantStep: StepVerify, wantErr: boom},
		{name: "verify fails, cleanup fails", verifyErr: boom, a: stepAdmin{fail: map[string]error{"delete": delErr}},
			wantCalls: []string{"create c", "enable c", "delete c"}, wantStep: StepVerify, wantErr: boom, cleanup: delErr, wantSays: "delete it on the array", left: ours},

		{name: "cancelled during create", a: stepAdmin{cancelAt: "create"},
			wantCalls: []string{"create c"}, wantStep: StepCreate, wantErr: context.Canceled},
		{name: "cancelled during a create that fails", a: stepAdmin{cancelAt: "create", fail: map[string]error{"create": lost}, applied: true},
			wantCalls: []string{"create c"}, wantStep: StepCreate, wantErr: lost, left: ours},
		{name: "cancelled during enable", a: stepAdmin{cancelAt: "enable"},
			wantCalls: []string{"create c", "enable c"}, wantStep: StepEnable, wantErr: context.Canceled, cleanup: context.Canceled, left: ours},
		{name: "cancelled during verify", verifyErr: context.Canceled, a: stepAdmin{cancelAt: "verify"},
			wantCalls: []string{"create c", "enable c"}, wantStep: StepVerify, wantErr: context.Canceled, cleanup: context.Canceled, left: ours},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.a
			a.clients = map[string]*APIClient{}
			if tc.on != nil {
				pem := ""
				if tc.on.Fingerprint() != "" {
					pem = tc.on.PublicKeyPEM()
				}
				a.clients["c"] = &APIClient{Name: "c", ID: "their-id", KeyID: "their-kid", Issuer: "them", PublicKey: pem, Enabled: true}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			a.cancel = cancel
			var verified Identity
			r := Registration{
				Client:         NewAPIClient{Name: "c", Issuer: "iss", PublicKeyPEM: ours.PublicKeyPEM(), MaxRole: "readonly"},
				KeyFingerprint: ours.Fingerprint(),
				Leftover:       isLeftover,
				Verify: func(_ context.Context, id Identity) error {
					a.calls = append(a.calls, "verify")
					verified = id
					if a.cancelAt == "verify" {
						cancel()
					}
					return tc.verifyErr
				},
			}
			if tc.noLeft {
				r.Leftover = nil
			}
			c, err := Register(ctx, &a, r)
			calls := a.calls[:0:0]
			for _, c := range a.calls {
				if c != "verify" {
					calls = append(calls, c)
				}
			}
			if !reflect.DeepEqual(calls, tc.wantCalls) {
				t.Errorf("calls %q, want %q", calls, tc.wantCalls)
			}
			// A cleanup runs on a fresh context bounded by cleanupTimeout;
			// a leftover's delete on the request's.
			for i, d := range a.deletes {
				if d.err != nil {
					t.Errorf("delete %d ran on a cancelled context", i)
				}
				if tc.wantStep != "" && tc.wantStep != StepCreate && (d.deadline <= 0 || d.deadline > cleanupTimeout) {
					t.Errorf("cleanup delete had deadline %s, want within %s", d.deadline, cleanupTimeout)
				}
			}
			switch got := a.clients["c"]; {
			case tc.left == nil && got != nil:
				t.Errorf("client left on the array: %+v", got)
			case tc.left != nil && got == nil:
				t.Errorf("no client left on the array, want one")
			case tc.left != nil && tc.left.Fingerprint() != "" && !got.HasKey(tc.left.Fingerprint()):
				t.Errorf("the client left on the array holds another key")
			}

			if tc.wantStep == "" {
				if err != nil {
					t.Fatalf("Register: %v", err)
				}
				if c.ID != "id" || c.KeyID != "kid" || c.Issuer != "iss" || !c.Enabled || verified != (Identity{ClientID: "id", KeyID: "kid", Issuer: "iss"}) {
					t.Errorf("Register = %+v (verified %+v)", c, verified)
				}
				return
			}
			var re *RegisterError
			if !errors.As(err, &re) || re.Step != tc.wantStep || re.Name != "c" || c != nil {
				t.Fatalf("Register = %+v, %v; want a RegisterError at %s", c, err, tc.wantStep)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, `API client "c": `+string(tc.wantStep)+" failed: ") || !strings.Contains(msg, tc.wantSays) {
				t.Errorf("message %q, want it to name the step and say %q", msg, tc.wantSays)
			}
			if tc.cleanup == nil && re.Cleanup != nil || tc.cleanup != nil && !errors.Is(re.Cleanup, tc.cleanup) {
				t.Errorf("Cleanup = %v, want %v", re.Cleanup, tc.cleanup)
			}
		})
	}
}

// Register over each kind's wire: the create whose answer the array lost
// is adopted, a leftover of Vault's is replaced, a stranger's client is
// left alone, a client that fails its proof is deleted; each in one session,
// logged out.
func TestRegisterOverTheWire(t *testing.T) {
	ours := fixedKey(t)
	leftover := fixtureKey(t, "rsa2048-pkcs1.pem")
	stranger := fixtureKey(t, "rsa3072-pkcs8.pem")
	for _, w := range wires {
		name := w.kind.DefaultClientName("wire")
		clients := w.clientsPath() + "?names=" + name
		create := "POST " + clients + " session 1"
		for _, tc := range []struct {
			name      string
			on        *pure1.Key
			createF   *fault
			verifyErr error
			want      []string // the calls between login and logout, without bodies
			fails     bool
			wantErr   error // errors.Is, when set
			left      *pure1.Key
		}{
			{name: "answer lost, applied", createF: &fault{applied: true},
				want: []string{create, "GET " + w.clientsPath() + " session 1", "PATCH " + clients + " session 1"}, left: ours},
			{name: "leftover of Vault's", on: leftover,
				want: []string{create, "GET " + w.clientsPath() + " session 1", "DELETE " + clients + " session 1", create, "PATCH " + clients + " session 1"}, left: ours},
			{name: "stranger's", on: stranger,
				want: []string{create, "GET " + w.clientsPath() + " session 1"}, fails: true, wantErr: ErrNameTaken, left: stranger},
			{name: "verify fails", verifyErr: errors.New("the token endpoint refused the JWT"),
				want: []string{create, "PATCH " + clients + " session 1", "DELETE " + clients + " session 1"}, fails: true},
		} {
			t.Run(w.kind.Name+"/"+tc.name, func(t *testing.T) {
				f := newFakeArray(t, w)
				if tc.on != nil {
					f.seed(name, tc.on.PublicKeyPEM(), true)
				}
				if tc.createF != nil {
					f.fail("create", *tc.createF)
				}
				ctx := context.Background()
				var got *APIClient
				err := WithAdmin(ctx, f.client(t, w.kind), adminToken, func(adm Admin) error {
					var err error
					got, err = Register(ctx, adm, Registration{
						Client:         NewAPIClient{Name: name, Issuer: "vault", PublicKeyPEM: ours.PublicKeyPEM(), MaxRole: "readonly"},
						KeyFingerprint: ours.Fingerprint(),
						Leftover:       func(c *APIClient) bool { return c.HasKey(leftover.Fingerprint()) },
						Verify: func(_ context.Context, id Identity) error {
							if id != (Identity{ClientID: "id-" + name, KeyID: "kid-" + name, Issuer: "vault"}) {
								t.Errorf("verified %+v", id)
							}
							return tc.verifyErr
						},
					})
					return err
				})
				switch {
				case !tc.fails && (err != nil || !got.Enabled || got.Role() != "readonly"):
					t.Errorf("Register = %+v, %v", got, err)
				case tc.fails && err == nil:
					t.Errorf("Register succeeded, want it to fail")
				case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
					t.Errorf("err = %v, want %v", err, tc.wantErr)
				}
				calls := f.recorded()
				for i, c := range calls {
					calls[i], _, _ = strings.Cut(c, " {") // without the body
				}
				if got := calls[2 : len(calls)-1]; !reflect.DeepEqual(got, tc.want) {
					t.Errorf("calls\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
				}
				if last := calls[len(calls)-1]; last != "POST "+w.logout+" session 1" || f.openSessions() != 0 {
					t.Errorf("last call %q, %d sessions open", last, f.openSessions())
				}
				key, there := f.clientKey(name)
				if names := f.clientNames(); len(names) > 1 {
					t.Errorf("clients on the array: %q", names)
				}
				switch {
				case tc.left == nil && there:
					t.Error("a client was left on the array")
				case tc.left != nil && !(&APIClient{PublicKey: key}).HasKey(tc.left.Fingerprint()):
					t.Errorf("the client on the array holds another key (present %v)", there)
				}
			})
		}
	}
}
