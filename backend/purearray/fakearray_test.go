package purearray

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
)

// The tokens the fake array hands out: distinctive, so a test can check
// that no error text carries one.
const (
	adminToken    = "api-token-SECRET-0c7e"
	sessionPrefix = "session-SECRET-"
)

// arrayWire is one kind's wire as Pure's SDK (py-pure-client 1.90.0, its
// FlashArray 2.30 and FlashBlade 2.17 clients) speaks it, written out here
// instead of read from Kind, so the tests hold kind.go to those facts.
type arrayWire struct {
	kind          *Kind
	versionsKey   string // GET /api/api_version's list
	ver           string // the newest version the array offers
	login, logout string
	roleRef       bool // max_role as {"name": role}, not a string
}

var (
	flashArrayWire = arrayWire{FlashArray, "version", "2.30", "/api/2.30/login", "/api/2.30/logout", false}
	flashBladeWire = arrayWire{FlashBlade, "versions", "2.17", "/api/login", "/api/logout", true}
	wires          = []arrayWire{flashArrayWire, flashBladeWire}
)

func (w arrayWire) clientsPath() string { return "/api/" + w.ver + "/api-clients" }

// fault is how the fake array answers a call it is told to fail.
type fault struct {
	status  int    // answer with this status and body, doing nothing
	body    string // the answer's body, for status
	drop    bool   // close the connection without an answer
	applied bool   // do the call, then close the connection unanswered
	hang    bool   // answer nothing until the client gives up
}

// fakeArray is a strict stand-in for one kind of array over TLS: it answers
// only its kind's wire (the other kind's login path is a 404, the other
// max_role form a 400, unknown fields and queries a 400, a body without
// Content-Type application/json a 400), keeps API clients and sessions,
// records every call in order, and fails the calls (by op: version, login,
// create, enable, read, delete, logout) it is told to.
type fakeArray struct {
	w   arrayWire
	srv *httptest.Server
	ca  []byte

	mu       sync.Mutex
	calls    []string
	clients  map[string]map[string]any
	open     map[string]bool // sessions logged in and not out
	sessions int
	faults   map[string]fault
}

func newFakeArray(t *testing.T, w arrayWire) *fakeArray {
	t.Helper()
	f := &fakeArray{w: w, clients: map[string]map[string]any{}, open: map[string]bool{}, faults: map[string]fault{}}
	f.srv, f.ca = tlsArray(t, f)
	return f
}

// client is an HTTPArray of kind talking to f.
func (f *fakeArray) client(t *testing.T, kind *Kind) *HTTPArray {
	t.Helper()
	return newKindArray(t, kind, f.srv.URL, f.ca)
}

func (f *fakeArray) fail(op string, ft fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[op] = ft
}

// seed puts a client on the array as someone else (or an earlier Vault)
// made it.
func (f *fakeArray) seed(name, publicKey string, enabled bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clients[name] = map[string]any{"name": name, "id": "id-" + name, "key_id": "kid-" + name, "issuer": "someone",
		"enabled": enabled, "public_key": publicKey, "max_role": f.role("readonly")}
}

func (f *fakeArray) role(r string) any {
	if f.w.roleRef {
		return map[string]any{"name": r, "id": "role-" + r}
	}
	return r
}

func (f *fakeArray) recorded() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeArray) openSessions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.open)
}

// clientKey is the public key of the client name on the array, and
// whether there is one.
func (f *fakeArray) clientKey(name string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.clients[name]
	if !ok {
		return "", false
	}
	s, _ := c["public_key"].(string)
	return s, true
}

func (f *fakeArray) clientNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for n := range f.clients {
		names = append(names, n)
	}
	return names
}

func (f *fakeArray) op(r *http.Request) string {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api/api_version":
		return "version"
	case r.Method == http.MethodPost && r.URL.Path == f.w.login:
		return "login"
	case r.Method == http.MethodPost && r.URL.Path == f.w.logout:
		return "logout"
	case r.URL.Path == f.w.clientsPath():
		return map[string]string{http.MethodPost: "create", http.MethodPatch: "enable", http.MethodGet: "read", http.MethodDelete: "delete"}[r.Method]
	}
	return ""
}

func (f *fakeArray) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	op := f.op(r)
	f.mu.Lock()
	f.calls = append(f.calls, describe(r, body))
	ft, faulted := f.faults[op]
	f.mu.Unlock()
	switch {
	case faulted && ft.drop:
		drop(w)
		return
	case faulted && ft.hang:
		<-r.Context().Done()
		return
	case faulted && ft.status != 0:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(ft.status)
		io.WriteString(w, ft.body)
		return
	}
	status, h, out := f.answer(op, r, body)
	if faulted && ft.applied {
		drop(w)
		return
	}
	for k, v := range h {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(out)
}

// drop closes the connection with no answer: the client sees a network
// error, as when an array's answer is lost on the way.
func drop(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

// describe is a call as the tests expect it: method, path and query, which
// credential it carried (never its value), and the JSON body with the
// public key's PEM shown as "PEM".
func describe(r *http.Request, body []byte) string {
	s := r.Method + " " + r.URL.Path
	if r.URL.RawQuery != "" {
		s += "?" + r.URL.RawQuery
	}
	if tok := r.Header.Get("api-token"); tok != "" {
		if tok == adminToken {
			s += " api-token"
		} else {
			s += " api-token(wrong)"
		}
	}
	if tok := r.Header.Get("x-auth-token"); tok != "" {
		s += " session " + strings.TrimPrefix(tok, sessionPrefix)
	}
	if len(body) > 0 {
		var m map[string]any
		if json.Unmarshal(body, &m) == nil {
			if pk, ok := m["public_key"].(string); ok && strings.HasPrefix(pk, "-----BEGIN PUBLIC KEY-----\n") {
				m["public_key"] = "PEM"
			}
			body, _ = json.Marshal(m)
		}
		s += " " + string(body)
	}
	return s
}

// arrayErrors is the REST 2 error body.
func arrayErrors(context, message string) []byte {
	e := map[string]string{"message": message}
	if context != "" {
		e["context"] = context
	}
	raw, _ := json.Marshal(map[string]any{"errors": []any{e}})
	return raw
}

func items(v ...any) []byte {
	raw, _ := json.Marshal(map[string]any{"items": v})
	return raw
}

// strict decodes body into v, refusing unknown fields as an array does.
func strict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func (f *fakeArray) answer(op string, r *http.Request, body []byte) (int, http.Header, []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := http.Header{}
	switch op {
	case "":
		return http.StatusNotFound, h, arrayErrors("", "Not found.")
	case "version":
		raw, _ := json.Marshal(map[string]any{f.w.versionsKey: []string{"1.19", "2.0", "2.4", f.w.ver}})
		return http.StatusOK, h, raw
	case "login":
		if r.Header.Get("api-token") != adminToken || len(body) > 0 {
			return http.StatusUnauthorized, h, arrayErrors("", "Invalid credentials.")
		}
		f.sessions++
		tok := fmt.Sprintf("%s%d", sessionPrefix, f.sessions)
		f.open[tok] = true
		h.Set("x-auth-token", tok)
		return http.StatusOK, h, items(map[string]any{"username": "pureuser"})
	}
	tok := r.Header.Get("x-auth-token")
	if !f.open[tok] {
		return http.StatusUnauthorized, h, arrayErrors("", "Session is not valid.")
	}
	if op == "logout" {
		delete(f.open, tok)
		return http.StatusOK, h, []byte("{}")
	}
	if len(body) > 0 && r.Header.Get("Content-Type") != "application/json" {
		return http.StatusBadRequest, h, arrayErrors("", "Content-Type must be application/json.")
	}
	q := r.URL.Query()
	if op == "read" && len(q) == 0 {
		// A list of every client, sorted by name, as arrays answer it.
		names := make([]string, 0, len(f.clients))
		for n := range f.clients {
			names = append(names, n)
		}
		sort.Strings(names)
		list := make([]any, 0, len(names))
		for _, n := range names {
			list = append(list, f.clients[n])
		}
		raw, _ := json.Marshal(map[string]any{"items": list, "total_item_count": len(list)})
		return http.StatusOK, h, raw
	}
	if len(q) != 1 || len(q["names"]) != 1 {
		return http.StatusBadRequest, h, arrayErrors("", "Give exactly one names= and nothing else.")
	}
	name := q.Get("names")
	c := f.clients[name]
	if c == nil && op != "create" {
		return http.StatusBadRequest, h, arrayErrors(name, "Client does not exist.")
	}
	switch op {
	case "create":
		if c != nil {
			return http.StatusBadRequest, h, arrayErrors(name, "The specified resource name is already in use.")
		}
		var in struct {
			Issuer    string          `json:"issuer"`
			PublicKey string          `json:"public_key"`
			MaxRole   json.RawMessage `json:"max_role"`
			TTL       *int64          `json:"access_token_ttl_in_ms"`
		}
		if err := strict(body, &in); err != nil {
			return http.StatusBadRequest, h, arrayErrors(name, err.Error())
		}
		if err := f.checkRole(in.MaxRole); err != nil {
			return http.StatusBadRequest, h, arrayErrors("max_role", err.Error())
		}
		var role any
		_ = json.Unmarshal(in.MaxRole, &role)
		c = map[string]any{"name": name, "id": "id-" + name, "key_id": "kid-" + name, "issuer": in.Issuer,
			"public_key": in.PublicKey, "max_role": role, "enabled": false}
		if in.TTL != nil {
			c["access_token_ttl_in_ms"] = *in.TTL
		}
		f.clients[name] = c
	case "enable":
		var in struct {
			Enabled *bool `json:"enabled"`
		}
		if err := strict(body, &in); err != nil || in.Enabled == nil {
			return http.StatusBadRequest, h, arrayErrors(name, "Give enabled.")
		}
		c["enabled"] = *in.Enabled
	case "delete":
		delete(f.clients, name)
		return http.StatusOK, h, []byte("{}")
	}
	return http.StatusOK, h, items(c)
}

// checkRole refuses the other kind's max_role form.
func (f *fakeArray) checkRole(raw json.RawMessage) error {
	if f.w.roleRef {
		var ref struct {
			Name string `json:"name"`
		}
		if strict(raw, &ref) != nil || ref.Name == "" {
			return fmt.Errorf("max_role must be a reference {\"name\": role}, not %s", raw)
		}
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil || s == "" {
		return fmt.Errorf("max_role must be a role name, not %s", raw)
	}
	return nil
}
