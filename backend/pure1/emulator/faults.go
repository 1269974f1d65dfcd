package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault kinds. Each makes one token request misbehave the way Pure1, or the
// network and load balancers in front of it, has been seen to.
const (
	// FaultStatus answers with Fault.Status: an OAuth-style JSON error for
	// 4xx (with X-RateLimit-* headers for 429), a load balancer's HTML for 5xx.
	FaultStatus = "status"
	// FaultReset closes the TCP connection with SO_LINGER 0, so the client sees
	// "connection reset by peer" and no response.
	FaultReset = "reset"
	// FaultDelay sleeps Fault.Delay (or until the client gives up), then
	// handles the request normally.
	FaultDelay = "delay"
	// FaultSlowBody sends 200 and half of a valid token response, stalls for
	// Fault.Delay, then sends the rest: exercises body read timeouts.
	FaultSlowBody = "slow_body"
	// FaultNonJSON answers 200 with an HTML page, as a captive portal or
	// misrouted proxy would.
	FaultNonJSON = "non_json"
	// FaultTruncatedJSON answers 200 with a complete HTTP response whose JSON
	// body is cut in half.
	FaultTruncatedJSON = "truncated_json"
	// FaultNoAccessToken answers 200 with a token response lacking access_token.
	FaultNoAccessToken = "no_access_token"
	// FaultNoExpiresIn answers 200 with a token response lacking expires_in.
	FaultNoExpiresIn = "no_expires_in"
	// FaultZeroExpiresIn answers 200 with a token response whose expires_in is 0.
	FaultZeroExpiresIn = "zero_expires_in"
)

var faultKinds = []string{
	FaultStatus, FaultReset, FaultDelay, FaultSlowBody, FaultNonJSON,
	FaultTruncatedJSON, FaultNoAccessToken, FaultNoExpiresIn, FaultZeroExpiresIn,
}

// faultSubject is the sub claim of access tokens minted by faults that return
// a token response. Faults run before the request is read, so the real
// application is unknown; the token is still valid at the resource API.
const faultSubject = ApplicationIDPrefix + "faultinjected000"

// nominalFaultRateLimit is reported in X-RateLimit-Limit by an injected 429
// when the Server has no RateLimit of its own, so clients parsing the header
// always find a plausible number.
const nominalFaultRateLimit = 10

// Fault makes token requests misbehave. Faults are queued FIFO; each token
// request consumes one application of the head fault, before the request is
// validated or even read.
type Fault struct {
	Kind       string   `json:"kind"`                  // one of the Fault* constants
	Status     int      `json:"status,omitempty"`      // for kind "status": 400-599
	RetryAfter string   `json:"retry_after,omitempty"` // raw Retry-After header value (kind "status")
	Delay      Duration `json:"delay,omitempty"`       // for "delay" and "slow_body"
	Count      int      `json:"count,omitempty"`       // number of requests affected; default 1
}

// Validate reports whether f can be served, with a message saying how to fix it.
func (f Fault) Validate() error {
	known := false
	for _, k := range faultKinds {
		if f.Kind == k {
			known = true
			break
		}
	}
	switch {
	case !known:
		return fmt.Errorf("unknown fault kind %q; use one of %s", f.Kind, strings.Join(faultKinds, ", "))
	case f.Kind == FaultStatus && (f.Status < 400 || f.Status > 599):
		return fmt.Errorf("fault kind %q needs \"status\" between 400 and 599, got %d", f.Kind, f.Status)
	case f.Kind != FaultStatus && f.Status != 0:
		return fmt.Errorf("\"status\" only applies to fault kind %q, not %q", FaultStatus, f.Kind)
	case f.Kind == FaultDelay && f.Delay <= 0:
		return fmt.Errorf("fault kind %q needs a positive \"delay\" such as \"2s\"", f.Kind)
	case f.Delay < 0:
		return fmt.Errorf("\"delay\" must not be negative, got %v", f.Delay)
	case f.Count < 0:
		return fmt.Errorf("\"count\" must not be negative, got %d (0 means 1)", f.Count)
	case strings.ContainsAny(f.RetryAfter, "\r\n"):
		return errors.New("\"retry_after\" must be a single header line")
	}
	return nil
}

// Duration is a time.Duration that JSON-encodes as a Go duration string such
// as "2s", which is what people type into curl and test fixtures.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON encodes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON accepts only a duration string; a bare number would be
// ambiguous (seconds? nanoseconds?), so it is refused with a hint.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"2s\" or \"150ms\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %v; use a Go duration such as \"2s\"", s, err)
	}
	*d = Duration(v)
	return nil
}

// InjectFaults appends faults to the queue. A Count of 0 means 1. Faults are
// not validated here (the admin API validates them); a fault with an unknown
// kind is answered with a 500 when it is reached.
func (s *Server) InjectFaults(f ...Fault) {
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	for _, x := range f {
		if x.Count <= 0 {
			x.Count = 1
		}
		s.faults = append(s.faults, x)
	}
}

// ClearFaults empties the fault queue.
func (s *Server) ClearFaults() {
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	s.faults = nil
}

// PendingFaults returns the queue; Count is the number of applications left.
func (s *Server) PendingFaults() []Fault {
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	return append([]Fault{}, s.faults...)
}

// nextFault consumes one application of the head fault, if any.
func (s *Server) nextFault() (Fault, bool) {
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	if len(s.faults) == 0 {
		return Fault{}, false
	}
	f := s.faults[0]
	s.faults[0].Count--
	if s.faults[0].Count <= 0 {
		s.faults = s.faults[1:]
	}
	f.Count = 1
	return f, true
}

// serveFault applies f to a token request. It reports whether the request is
// finished; only a completed delay lets normal handling continue.
func (s *Server) serveFault(w http.ResponseWriter, r *http.Request, f Fault) (done bool) {
	ctx := r.Context()
	switch f.Kind {
	case FaultStatus:
		s.writeFaultStatus(w, f)
	case FaultReset:
		resetConnection(w)
	case FaultDelay:
		bufferBody(w, r)
		if !sleepCtx(ctx, time.Duration(f.Delay)) {
			return true // the client gave up; nobody is left to answer
		}
		return false
	case FaultSlowBody:
		bufferBody(w, r)
		body, err := s.faultTokenBody(r, f.Kind)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return true
		}
		half := len(body) / 2
		noStore(w)
		w.Header().Set("Content-Type", "application/json")
		// The full length is announced, so a client that stops reading early
		// sees a short body rather than a complete, smaller one.
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body[:half])
		_ = http.NewResponseController(w).Flush()
		if !sleepCtx(ctx, time.Duration(f.Delay)) {
			return true
		}
		_, _ = w.Write(body[half:])
	case FaultNonJSON:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "<!DOCTYPE html>\n<html><head><title>Pure1 Maintenance</title></head>"+
			"<body><h1>Pure1 is undergoing scheduled maintenance</h1><p>Please try again later.</p></body></html>\n")
	case FaultTruncatedJSON, FaultNoAccessToken, FaultNoExpiresIn, FaultZeroExpiresIn:
		body, err := s.faultTokenBody(r, f.Kind)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return true
		}
		if f.Kind == FaultTruncatedJSON {
			// Content-Length matches what is sent: the HTTP exchange is
			// well-formed, only the JSON is broken.
			body = body[:len(body)/2]
		}
		noStore(w)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	default:
		http.Error(w, fmt.Sprintf("emulator: unknown fault kind %q was injected; inject one of %s", f.Kind, strings.Join(faultKinds, ", ")), http.StatusInternalServerError)
	}
	return true
}

// bufferBody reads the request body into memory (capped) and puts it back.
// net/http only notices a client hanging up, and cancels the request context,
// once the body has been read to EOF; without this a delay would run its full
// length for a client that gave up long ago.
func bufferBody(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	var rest io.Reader = bytes.NewReader(b)
	if err != nil {
		// Replay the error after the data so that normal handling reports it
		// (e.g. "body too large") exactly as without the fault.
		rest = io.MultiReader(rest, errReader{err})
	}
	r.Body = io.NopCloser(rest)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// faultTokenBody builds the token response a fault of the given kind sends.
func (s *Server) faultTokenBody(r *http.Request, kind string) ([]byte, error) {
	tok, err := s.mintAccessToken(r, faultSubject, DefaultMaxRole)
	if err != nil {
		return nil, err
	}
	resp := s.tokenResponse(tok)
	switch kind {
	case FaultNoAccessToken:
		resp.AccessToken = ""
	case FaultNoExpiresIn:
		resp.ExpiresIn = nil
	case FaultZeroExpiresIn:
		zero := int64(0)
		resp.ExpiresIn = &zero
	}
	return json.Marshal(resp)
}

// writeFaultStatus answers like whichever component would produce the status:
// Pure1's OAuth server for 4xx, a load balancer for 5xx.
func (s *Server) writeFaultStatus(w http.ResponseWriter, f Fault) {
	h := w.Header()
	if f.RetryAfter != "" {
		h.Set("Retry-After", f.RetryAfter)
	}
	if f.Status >= 500 {
		h.Set("Content-Type", "text/html")
		w.WriteHeader(f.Status)
		text := fmt.Sprintf("%d %s", f.Status, http.StatusText(f.Status))
		_, _ = fmt.Fprintf(w, "<html>\r\n<head><title>%s</title></head>\r\n<body>\r\n<center><h1>%s</h1></center>\r\n</body>\r\n</html>\r\n", text, text)
		return
	}
	code, desc := "invalid_request", http.StatusText(f.Status)
	switch f.Status {
	case http.StatusUnauthorized:
		code, desc = "invalid_client", invalidIdentity
	case http.StatusForbidden:
		code, desc = "access_denied", "Access denied."
	case http.StatusTooManyRequests:
		code, desc = "rate_limit_exceeded", "Rate limit exceeded. Retry later."
		limit := s.limit
		if limit == 0 {
			limit = nominalFaultRateLimit
		}
		reset := "1"
		if n, err := strconv.Atoi(strings.TrimSpace(f.RetryAfter)); err == nil && n > 0 {
			reset = strconv.Itoa(n)
		}
		setRateLimitHeaders(h, limit, 0, reset)
	}
	noStore(w)
	writeJSON(w, f.Status, oauthError{Error: code, ErrorDescription: desc})
}

// resetConnection aborts the TCP connection with an RST instead of a FIN, the
// way a crashed proxy or an idle-timeout middlebox does.
func resetConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (e.g. HTTP/2): aborting the handler is the closest
		// equivalent; the server then drops the stream without a response.
		panic(http.ErrAbortHandler)
	}
	raw := conn
	if tc, ok := conn.(interface{ NetConn() net.Conn }); ok { // *tls.Conn
		raw = tc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0) // makes Close send RST
	}
	_ = conn.Close()
}

// ---- admin API: /emulator/faults -------------------------------------------

type faultList struct {
	Items []Fault `json:"items"`
}

func (s *Server) handleFaults(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodPost, http.MethodDelete) {
		return
	}
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, faultList{Items: s.PendingFaults()})
	case http.MethodDelete:
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPost:
		faults, err := decodeFaults(w, r)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, adminError{Error: err.Error()})
			return
		}
		s.InjectFaults(faults...)
		w.WriteHeader(http.StatusNoContent)
	}
}

// decodeFaults reads a JSON array of faults or a single fault object and
// validates all of them before any is queued, so a bad request changes nothing.
func decodeFaults(w http.ResponseWriter, r *http.Request) ([]Fault, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		if errorsAsMaxBytes(err) {
			return nil, fmt.Errorf("request body exceeds %d bytes", maxBodyBytes)
		}
		return nil, fmt.Errorf("reading body: %v", err)
	}
	body = bytes.TrimSpace(body)
	var faults []Fault
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if len(body) > 0 && body[0] == '[' {
		err = dec.Decode(&faults)
	} else {
		var f Fault
		err = dec.Decode(&f)
		faults = []Fault{f}
	}
	if err != nil {
		return nil, fmt.Errorf("invalid JSON body: %v; send a fault object or an array of them, e.g. [{\"kind\":\"status\",\"status\":503,\"count\":2}]", err)
	}
	if dec.More() {
		return nil, errors.New("invalid JSON body: trailing data after the JSON value")
	}
	if len(faults) == 0 {
		return nil, errors.New("no faults given; send at least one, or DELETE to clear the queue")
	}
	for i, f := range faults {
		if err := f.Validate(); err != nil {
			return nil, fmt.Errorf("fault %d: %v", i, err)
		}
	}
	return faults, nil
}
