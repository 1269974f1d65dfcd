package emulator

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// doWithin is do with a client timeout.
func (a *testArray) doWithin(d time.Duration, method, path, body string, hdr ...string) (reply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.url+path, strings.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return reply{}, err
	}
	resp.Body.Close()
	return reply{status: resp.StatusCode, header: resp.Header}, nil
}

// Each fault mode at the steps where it matters: what the client sees, and
// whether the change was made.
func TestFaultModes(t *testing.T) {
	type state struct {
		clients, enabled, sessions int
	}
	for _, tc := range []struct {
		name  string
		kind  string
		fault Fault
		// setup runs before the fault is queued; act is the faulted call.
		setup func(a *testArray, sess string)
		act   func(a *testArray, sess string) (reply, error)
		// wantStatus 0: the client must get no answer (an error).
		wantStatus int
		wantMsg    string
		want       state
		quick      bool // the call must return well before the fault's delay
		slow       time.Duration
	}{
		{
			name: "error at create", kind: FlashArray,
			fault:      Fault{Step: StepCreate, Mode: ModeError, Status: 503, Message: "Array busy."},
			act:        createAct("vault-a"),
			wantStatus: 503, wantMsg: "Array busy.", want: state{sessions: 1},
		},
		{
			name: "drop at create", kind: FlashBlade,
			fault: Fault{Step: StepCreate, Mode: ModeDrop},
			act:   createAct("vault_a"),
			want:  state{sessions: 1},
		},
		{
			name: "applied, then dropped, at create", kind: FlashArray,
			fault: Fault{Step: StepCreate, Mode: ModeAppliedDrop},
			act:   createAct("vault-a"),
			want:  state{clients: 1, sessions: 1},
		},
		{
			name: "applied, then dropped, at create on a FlashBlade", kind: FlashBlade,
			fault: Fault{Step: StepCreate, Mode: ModeAppliedDrop},
			act:   createAct("vault_a"),
			want:  state{clients: 1, sessions: 1},
		},
		{
			name: "applied, then an error, at patch", kind: FlashArray,
			fault: Fault{Step: StepPatch, Mode: ModeAppliedError, Status: 500},
			setup: func(a *testArray, sess string) { a.create(sess, "vault-a", keyOne(), "readonly") },
			act: func(a *testArray, sess string) (reply, error) {
				return a.do("PATCH", a.ver()+"/api-clients?names=vault-a", `{"enabled":true}`, "x-auth-token", sess)
			},
			wantStatus: 500, wantMsg: "Injected fault: 500", want: state{clients: 1, enabled: 1, sessions: 1},
		},
		{
			name: "error at patch", kind: FlashBlade,
			fault: Fault{Step: StepPatch, Mode: ModeError, Status: 500},
			setup: func(a *testArray, sess string) { a.create(sess, "vault_a", keyOne(), "readonly") },
			act: func(a *testArray, sess string) (reply, error) {
				return a.do("PATCH", a.ver()+"/api-clients?names=vault_a", `{"enabled":true}`, "x-auth-token", sess)
			},
			wantStatus: 500, want: state{clients: 1, sessions: 1},
		},
		{
			name: "applied, then a hang, at delete", kind: FlashArray,
			fault: Fault{Step: StepDelete, Mode: ModeAppliedHang, Delay: Duration(10 * time.Second)},
			setup: func(a *testArray, sess string) { a.create(sess, "vault-a", keyOne(), "readonly") },
			act: func(a *testArray, sess string) (reply, error) {
				return a.doWithin(300*time.Millisecond, "DELETE", a.ver()+"/api-clients?names=vault-a", "", "x-auth-token", sess)
			},
			want: state{sessions: 1}, quick: true,
		},
		{
			name: "hang at delete", kind: FlashBlade,
			fault: Fault{Step: StepDelete, Mode: ModeHang, Delay: Duration(10 * time.Second)},
			setup: func(a *testArray, sess string) { a.create(sess, "vault_a", keyOne(), "readonly") },
			act: func(a *testArray, sess string) (reply, error) {
				return a.doWithin(300*time.Millisecond, "DELETE", a.ver()+"/api-clients?names=vault_a", "", "x-auth-token", sess)
			},
			want: state{clients: 1, sessions: 1}, quick: true,
		},
		{
			name: "hang at login", kind: FlashArray,
			fault: Fault{Step: StepLogin, Mode: ModeHang, Delay: Duration(10 * time.Second)},
			act: func(a *testArray, _ string) (reply, error) {
				return a.doWithin(300*time.Millisecond, "POST", a.loginPath(), "", "api-token", a.emu.APIToken())
			},
			want: state{sessions: 1}, quick: true,
		},
		{
			name: "a hang shorter than the client's patience ends in a drop", kind: FlashArray,
			fault: Fault{Step: StepGet, Mode: ModeHang, Delay: Duration(100 * time.Millisecond)},
			act: func(a *testArray, sess string) (reply, error) {
				return a.doWithin(5*time.Second, "GET", a.ver()+"/api-clients", "", "x-auth-token", sess)
			},
			want: state{sessions: 1}, quick: true, slow: 100 * time.Millisecond,
		},
		{
			name: "applied, then dropped, at login", kind: FlashBlade,
			fault: Fault{Step: StepLogin, Mode: ModeAppliedDrop},
			act: func(a *testArray, _ string) (reply, error) {
				return a.do("POST", a.loginPath(), "", "api-token", a.emu.APIToken())
			},
			want: state{sessions: 2}, // the client never learns the second session's token
		},
		{
			name: "applied, then dropped, at logout", kind: FlashArray,
			fault: Fault{Step: StepLogout, Mode: ModeAppliedDrop},
			act: func(a *testArray, sess string) (reply, error) {
				return a.do("POST", a.logoutPath(), "", "x-auth-token", sess)
			},
			want: state{sessions: 0},
		},
		{
			name: "delay at get", kind: FlashBlade,
			fault: Fault{Step: StepGet, Mode: ModeDelay, Delay: Duration(200 * time.Millisecond)},
			act: func(a *testArray, sess string) (reply, error) {
				return a.do("GET", a.ver()+"/api-clients", "", "x-auth-token", sess)
			},
			wantStatus: 200, want: state{sessions: 1}, slow: 200 * time.Millisecond,
		},
		{
			name: "429 at get", kind: FlashArray,
			fault: Fault{Step: StepGet, Mode: ModeError, Status: 429},
			act: func(a *testArray, sess string) (reply, error) {
				return a.do("GET", a.ver()+"/api-clients", "", "x-auth-token", sess)
			},
			wantStatus: 429, wantMsg: "Too Many Requests", want: state{sessions: 1},
		},
		{
			name: "error at token", kind: FlashBlade,
			fault: Fault{Step: StepToken, Mode: ModeError, Status: 500},
			act: func(a *testArray, _ string) (reply, error) {
				return a.do("POST", TokenPath, "grant_type=x", "Content-Type", "application/x-www-form-urlencoded")
			},
			wantStatus: 500, wantMsg: "Injected fault", want: state{sessions: 1},
		},
		{
			name: "drop at api_version", kind: FlashBlade,
			fault: Fault{Step: StepAPIVersion, Mode: ModeDrop},
			act: func(a *testArray, _ string) (reply, error) {
				return a.do("GET", APIVersionPath, "")
			},
			want: state{sessions: 1},
		},
		{
			name: "error at arrays", kind: FlashArray,
			fault: Fault{Step: StepArrays, Mode: ModeError, Status: 503},
			act: func(a *testArray, sess string) (reply, error) {
				return a.do("GET", a.ver()+"/arrays", "", "x-auth-token", sess)
			},
			wantStatus: 503, want: state{sessions: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newArray(t, tc.kind)
			sess := a.login()
			if tc.setup != nil {
				tc.setup(a, sess)
			}
			if err := a.emu.InjectFaults(tc.fault); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			r, err := tc.act(a, sess)
			took := time.Since(start)
			switch {
			case tc.wantStatus == 0 && err == nil:
				t.Errorf("got HTTP %d, want no answer", r.status)
			case tc.wantStatus != 0 && err != nil:
				t.Errorf("no answer (%v), want HTTP %d", err, tc.wantStatus)
			case tc.wantStatus != 0 && (r.status != tc.wantStatus || !strings.Contains(r.message(), tc.wantMsg)):
				t.Errorf("HTTP %d %s, want %d %q", r.status, r.raw, tc.wantStatus, tc.wantMsg)
			}
			if tc.fault.Status == 429 && (r.header.Get("X-RateLimit-Limit-minute") == "" || r.header.Get("X-RateLimit-Remaining-minute") == "" || r.body["message"] == nil) {
				t.Errorf("a 429 without the rate-limit headers or top-level message Pure's SDK reads: %v %s", r.header, r.raw)
			}
			if tc.quick && took > 3*time.Second {
				t.Errorf("took %s: the fault held the request after the client gave up", took)
			}
			if took < tc.slow {
				t.Errorf("took %s, want at least %s", took, tc.slow)
			}
			got := state{sessions: a.emu.OpenSessions()}
			for _, c := range a.emu.Clients() {
				got.clients++
				if c.Enabled {
					got.enabled++
				}
			}
			if got != tc.want {
				t.Errorf("after the fault: %+v, want %+v", got, tc.want)
			}
			if st := a.emu.Stats(); st.FaultsFired != 1 || len(a.emu.PendingFaults()) != 0 {
				t.Errorf("faults fired %d, pending %v; want 1 and none", st.FaultsFired, a.emu.PendingFaults())
			}
		})
	}
}

func createAct(name string) func(a *testArray, sess string) (reply, error) {
	return func(a *testArray, sess string) (reply, error) {
		return a.do("POST", a.ver()+"/api-clients?names="+name, createBodyFor(a, nil), "x-auth-token", sess)
	}
}

// Faults are taken by their own step only, in order, after "after" requests
// pass, "count" times; the wrong kind's login is not a login.
func TestFaultQueue(t *testing.T) {
	a := newArray(t, FlashArray)
	sess := a.login()
	if err := a.emu.InjectFaults(
		Fault{Step: StepLogin, Mode: ModeError, Status: 500},
		Fault{Step: StepGet, Mode: ModeError, Status: 502, Count: 2, After: 1},
		Fault{Step: StepGet, Mode: ModeError, Status: 504},
	); err != nil {
		t.Fatal(err)
	}
	if r := a.must("POST", "/api/login", "", "api-token", a.emu.APIToken()); r.status != 404 {
		t.Errorf("a FlashBlade login on a FlashArray: %d, want 404 (and the login fault kept)", r.status)
	}
	if r := a.must("DELETE", a.ver()+"/api-clients?names=x", "", "x-auth-token", sess); r.status != 400 {
		t.Errorf("a delete took a get fault: %d", r.status)
	}
	var got []int
	for i := 0; i < 5; i++ {
		got = append(got, a.must("GET", a.ver()+"/api-clients", "", "x-auth-token", sess).status)
	}
	if want := []int{200, 502, 502, 504, 200}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("GET statuses %v, want %v", got, want)
	}
	if p := a.emu.PendingFaults(); len(p) != 1 || p[0].Step != StepLogin {
		t.Errorf("pending %+v, want the login fault only", p)
	}
	if r := a.must("POST", a.loginPath(), "", "api-token", a.emu.APIToken()); r.status != 500 {
		t.Errorf("login: %d, want the injected 500", r.status)
	}
	if st := a.emu.Stats(); st.FaultsFired != 4 || st.OpenSessions != 1 {
		t.Errorf("stats %+v: want 4 faults fired, 1 session", st)
	}
	if err := a.emu.InjectFaults(Fault{Step: StepGet, Mode: ModeError, Status: 500, Count: 9}); err != nil {
		t.Fatal(err)
	}
	a.emu.ClearFaults()
	if r := a.must("GET", a.ver()+"/api-clients", "", "x-auth-token", sess); r.status != 200 || len(a.emu.PendingFaults()) != 0 {
		t.Errorf("after ClearFaults: %d, pending %v", r.status, a.emu.PendingFaults())
	}
}

// Every invalid fault is refused with the fix, and none of a batch is
// queued when one is invalid.
func TestFaultValidation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault Fault
		msg   string
	}{
		{"unknown step", Fault{Step: "rotate", Mode: ModeDrop}, "not a step"},
		{"unknown mode", Fault{Step: StepCreate, Mode: "reset"}, "not a fault mode"},
		{"error without status", Fault{Step: StepCreate, Mode: ModeError}, "needs \"status\""},
		{"status 302", Fault{Step: StepCreate, Mode: ModeAppliedError, Status: 302}, "between 400 and 599"},
		{"status on a drop", Fault{Step: StepCreate, Mode: ModeDrop, Status: 500}, "\"status\" only applies"},
		{"message on a hang", Fault{Step: StepCreate, Mode: ModeHang, Delay: Duration(time.Second), Message: "x"}, "\"message\" only applies"},
		{"hang without delay", Fault{Step: StepCreate, Mode: ModeHang}, "positive \"delay\""},
		{"applied hang without delay", Fault{Step: StepCreate, Mode: ModeAppliedHang}, "positive \"delay\""},
		{"delay on a drop", Fault{Step: StepCreate, Mode: ModeAppliedDrop, Delay: Duration(time.Second)}, "\"delay\" only applies"},
		{"negative count", Fault{Step: StepCreate, Mode: ModeDrop, Count: -1}, "\"count\""},
		{"negative after", Fault{Step: StepCreate, Mode: ModeDrop, After: -1}, "\"after\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := New(Options{})
			err := s.InjectFaults(Fault{Step: StepGet, Mode: ModeDrop}, tc.fault)
			if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), "fault 1") {
				t.Errorf("err = %v, want fault 1 refused with %q", err, tc.msg)
			}
			if p := s.PendingFaults(); len(p) != 0 {
				t.Errorf("queued %v from a refused batch", p)
			}
		})
	}
}

// The admin API's fault queue: add, list, refuse, clear.
func TestFaultsAdminAPI(t *testing.T) {
	a := newArray(t, FlashBlade)
	for _, tc := range []struct {
		name, method, body string
		want               int
		msg                string
		pending            int
	}{
		{"one fault", "POST", `{"step":"create","mode":"applied_drop"}`, 204, "", 1},
		{"a batch", "POST", `[{"step":"login","mode":"hang","delay":"2s"},{"step":"token","mode":"error","status":503,"count":3}]`, 204, "", 3},
		{"a batch with an invalid fault", "POST", `[{"step":"get","mode":"drop"},{"step":"get","mode":"hang"}]`, 400, "fault 1", 3},
		{"a number for a delay", "POST", `{"step":"get","mode":"delay","delay":5}`, 400, "delay must be a string", 3},
		{"an unknown field", "POST", `{"step":"get","mode":"drop","kind":"x"}`, 400, "unknown field", 3},
		{"an empty batch", "POST", `[]`, 400, "no faults given", 3},
		{"trailing data", "POST", `{"step":"get","mode":"drop"} {}`, 400, "data after", 3},
		{"PUT", "PUT", `{}`, 405, "", 3},
		{"clear", "DELETE", "", 204, "", 0},
	} {
		r := a.must(tc.method, FaultsPath, tc.body)
		if r.status != tc.want || !strings.Contains(r.raw, tc.msg) || len(a.emu.PendingFaults()) != tc.pending {
			t.Errorf("%s: %d %s, %d pending; want %d %q, %d pending", tc.name, r.status, r.raw, len(a.emu.PendingFaults()), tc.want, tc.msg, tc.pending)
		}
		if tc.name == "a batch" {
			r := a.must("GET", FaultsPath, "")
			if its := r.items(); len(its) != 3 || its[1]["delay"] != "2s" || its[2]["count"] != float64(3) {
				t.Errorf("GET faults: %s", r.raw)
			}
		}
	}
}
