package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Steps: what a request does, as faults and stats name it.
const (
	StepAPIVersion = "api_version" // GET /api/api_version
	StepLogin      = "login"       // POST login
	StepLogout     = "logout"      // POST logout
	StepCreate     = "create"      // POST api-clients
	StepPatch      = "patch"       // PATCH api-clients (enable, disable)
	StepGet        = "get"         // GET api-clients
	StepDelete     = "delete"      // DELETE api-clients
	StepToken      = "token"       // POST /oauth2/1.0/token
	StepArrays     = "arrays"      // GET arrays
	// StepOther is any other path, the wrong kind's login among them; it
	// is counted but takes no faults.
	StepOther = "other"
)

// Steps are the steps a fault can be injected at.
var Steps = []string{StepAPIVersion, StepLogin, StepLogout, StepCreate, StepPatch, StepGet, StepDelete, StepToken, StepArrays,
	StepAdminsGet, StepAdminsPost, StepAdminsDelete, StepAPITokensPost, StepAPITokensGet, StepAPITokensDelete}

// Fault modes. "applied" modes run the request first, so its change is
// made (a client created, a session opened or closed), and only then fail:
// the ambiguous failures a client must not mistake for "nothing happened".
const (
	// ModeError answers Status with the array's error body (OAuth's on the
	// token step); nothing is applied.
	ModeError = "error"
	// ModeDelay holds the request for Delay, then serves it normally.
	ModeDelay = "delay"
	// ModeHang holds the request for Delay (or until the client gives up),
	// then closes the connection with no answer; nothing is applied. A
	// client with a shorter timeout sees its timeout.
	ModeHang = "hang"
	// ModeDrop closes the connection at once with no answer; nothing is
	// applied.
	ModeDrop = "drop"
	// ModeAppliedError applies the request, then answers Status as an error.
	ModeAppliedError = "applied_error"
	// ModeAppliedHang applies the request, then hangs as ModeHang does.
	ModeAppliedHang = "applied_hang"
	// ModeAppliedDrop applies the request, then closes the connection with
	// no answer.
	ModeAppliedDrop = "applied_drop"
)

// Modes lists the fault modes.
var Modes = []string{ModeError, ModeDelay, ModeHang, ModeDrop, ModeAppliedError, ModeAppliedHang, ModeAppliedDrop}

// Fault makes requests of one step misbehave. Faults are queued in order;
// a request takes the first queued fault of its step.
type Fault struct {
	Step string `json:"step"` // one of Steps
	Mode string `json:"mode"` // one of Modes
	// Status is the HTTP status of the error modes, 400-599.
	Status int `json:"status,omitempty"`
	// Message replaces the default error message of the error modes.
	Message string `json:"message,omitempty"`
	// Delay is how long delay and the hang modes hold the request.
	Delay Duration `json:"delay,omitempty"`
	// Count is how many requests the fault applies to; 0 means 1.
	Count int `json:"count,omitempty"`
	// After lets this many requests of the step through before the fault
	// applies (to fail the second create, not the first). Only requests
	// that reach this fault count: one taken by an earlier fault of the
	// same step does not.
	After int `json:"after,omitempty"`
}

// Validate reports whether f can be served, saying how to fix it.
func (f Fault) Validate() error {
	isError := f.Mode == ModeError || f.Mode == ModeAppliedError
	holds := f.Mode == ModeDelay || f.Mode == ModeHang || f.Mode == ModeAppliedHang
	switch {
	case !slices.Contains(Steps, f.Step):
		return fmt.Errorf("step %q is not a step: use one of %s", f.Step, strings.Join(Steps, ", "))
	case !slices.Contains(Modes, f.Mode):
		return fmt.Errorf("mode %q is not a fault mode: use one of %s", f.Mode, strings.Join(Modes, ", "))
	case isError && (f.Status < 400 || f.Status > 599):
		return fmt.Errorf("mode %s needs \"status\" between 400 and 599, got %d", f.Mode, f.Status)
	case !isError && f.Status != 0:
		return fmt.Errorf("\"status\" only applies to modes %s and %s, not %s", ModeError, ModeAppliedError, f.Mode)
	case !isError && f.Message != "":
		return fmt.Errorf("\"message\" only applies to modes %s and %s, not %s", ModeError, ModeAppliedError, f.Mode)
	case holds && f.Delay <= 0:
		return fmt.Errorf("mode %s needs a positive \"delay\" such as \"2s\"", f.Mode)
	case !holds && f.Delay != 0:
		return fmt.Errorf("\"delay\" only applies to modes %s, %s and %s, not %s", ModeDelay, ModeHang, ModeAppliedHang, f.Mode)
	case f.Count < 0:
		return fmt.Errorf("\"count\" must not be negative, got %d (0 means 1)", f.Count)
	case f.After < 0:
		return fmt.Errorf("\"after\" must not be negative, got %d", f.After)
	}
	return nil
}

// Duration is a time.Duration that JSON-encodes as a Go duration string
// such as "2s".
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON encodes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON takes only a duration string: a bare number would be
// ambiguous (seconds? nanoseconds?).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("delay must be a string such as \"2s\" or \"150ms\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("delay %q: %v; use a Go duration such as \"2s\"", s, err)
	}
	*d = Duration(v)
	return nil
}

// InjectFaults validates faults and queues them all, or none. A Count of 0
// means 1.
func (s *Server) InjectFaults(faults ...Fault) error {
	for i, f := range faults {
		if err := f.Validate(); err != nil {
			return fmt.Errorf("fault %d: %w", i, err)
		}
	}
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	for _, f := range faults {
		if f.Count <= 0 {
			f.Count = 1
		}
		s.faults = append(s.faults, f)
	}
	return nil
}

// ClearFaults empties the queue.
func (s *Server) ClearFaults() {
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	s.faults = nil
}

// PendingFaults returns the queue; Count is what is left of each.
func (s *Server) PendingFaults() []Fault {
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	return append([]Fault{}, s.faults...)
}

// nextFault takes one application of the first fault queued for step, if
// its After has run out.
func (s *Server) nextFault(step string) (Fault, bool) {
	if step == StepOther {
		return Fault{}, false
	}
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	for i := range s.faults {
		f := &s.faults[i]
		if f.Step != step {
			continue
		}
		if f.After > 0 {
			f.After--
			return Fault{}, false
		}
		fired := *f
		f.Count--
		if f.Count <= 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		fired.Count = 1
		return fired, true
	}
	return Fault{}, false
}

// serveFault serves r, whose handler is h, the way f says.
func (s *Server) serveFault(w http.ResponseWriter, r *http.Request, step string, f Fault, h http.HandlerFunc) {
	ctx := r.Context()
	d := time.Duration(f.Delay)
	switch f.Mode {
	case ModeError:
		writeFaultError(w, step, f)
	case ModeDelay:
		bufferBody(r)
		if sleepCtx(ctx, d) {
			h(w, r)
		}
	case ModeHang:
		bufferBody(r)
		sleepCtx(ctx, d)
		dropConnection(w)
	case ModeDrop:
		dropConnection(w)
	case ModeAppliedError, ModeAppliedHang, ModeAppliedDrop:
		h(newDiscardWriter(), r) // the change is made; its answer is lost
		switch f.Mode {
		case ModeAppliedError:
			writeFaultError(w, step, f)
		case ModeAppliedHang:
			sleepCtx(ctx, d)
			dropConnection(w)
		default:
			dropConnection(w)
		}
	}
}

// writeFaultError answers an error fault: OAuth's shape on the token step,
// the REST 2 shape elsewhere; a 429 carries the rate-limit headers Pure's
// SDK reads before it retries.
func writeFaultError(w http.ResponseWriter, step string, f Fault) {
	msg := f.Message
	if msg == "" {
		msg = fmt.Sprintf("Injected fault: %d %s.", f.Status, http.StatusText(f.Status))
	}
	if f.Status == http.StatusTooManyRequests {
		h := w.Header()
		h.Set("X-RateLimit-Limit-second", "10")
		h.Set("X-RateLimit-Remaining-second", "0")
		h.Set("X-RateLimit-Limit-minute", "600")
		h.Set("X-RateLimit-Remaining-minute", "590")
	}
	if step == StepToken {
		code := "invalid_request"
		switch {
		case f.Status == http.StatusUnauthorized:
			code = "invalid_client"
		case f.Status >= 500:
			code = "server_error"
		}
		writeJSON(w, f.Status, map[string]string{"error": code, "error_description": msg})
		return
	}
	writeErrors(w, f.Status, "", msg)
}

// dropConnection closes the connection under w with no answer: the client
// sees the connection end (EOF), not a response.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2): aborting the handler makes the server
		// drop the stream without a response, the nearest thing.
		panic(http.ErrAbortHandler)
	}
	raw := conn
	if tc, ok := conn.(interface{ NetConn() net.Conn }); ok { // *tls.Conn: no close_notify either
		raw = tc.NetConn()
	}
	_ = raw.Close()
}

// bufferBody reads the request body into memory and puts it back: net/http
// notices a client hanging up (and cancels the request's context) only once
// the body has been read, so without this a hang would outlast a client
// that gave up long ago. Handler has capped the body already.
func bufferBody(r *http.Request) {
	b, err := io.ReadAll(r.Body)
	var rest io.Reader = bytes.NewReader(b)
	if err != nil {
		rest = io.MultiReader(rest, errReader{err})
	}
	r.Body = io.NopCloser(rest)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// sleepCtx sleeps d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// discardWriter takes an answer nobody will see.
type discardWriter struct{ h http.Header }

func newDiscardWriter() *discardWriter               { return &discardWriter{h: http.Header{}} }
func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// ---- admin API: /emulator/faults ------------------------------------------------

func (s *Server) handleFaults(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodPost, http.MethodDelete) {
		return
	}
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"items": s.PendingFaults()})
	case http.MethodDelete:
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPost:
		faults, err := decodeFaults(r)
		if err == nil {
			err = s.InjectFaults(faults...)
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// decodeFaults reads one fault object or an array of them.
func decodeFaults(r *http.Request) ([]Fault, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the body: %v", err)
	}
	body = bytes.TrimSpace(body)
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var faults []Fault
	if len(body) > 0 && body[0] == '[' {
		err = dec.Decode(&faults)
	} else {
		var f Fault
		err = dec.Decode(&f)
		faults = []Fault{f}
	}
	if err != nil {
		return nil, fmt.Errorf("invalid JSON body: %v; send a fault or an array of them, e.g. {\"step\":\"create\",\"mode\":\"applied_drop\"}", err)
	}
	if dec.More() {
		return nil, errors.New("invalid JSON body: data after the JSON value")
	}
	if len(faults) == 0 {
		return nil, errors.New("no faults given; send at least one, or DELETE to clear the queue")
	}
	return faults, nil
}
