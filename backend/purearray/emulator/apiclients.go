package emulator

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// ---- request checks shared by the api-clients handlers ----------------------

// unimplementedParams are query parameters arrays take that the emulator
// does not implement: refused, so that a client relying on them learns it
// here and not from a wrong answer.
var unimplementedParams = map[string]bool{"filter": true, "sort": true}

// query checks r's query parameters against allowed; on failure it has
// answered 400.
func (s *Server) query(w http.ResponseWriter, r *http.Request, allowed ...string) (url.Values, bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeErrors(w, http.StatusBadRequest, "", "Malformed query string: "+err.Error()+".")
		return nil, false
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ok := slices.Contains(allowed, k)
		switch {
		case ok && len(q[k]) > 1:
			writeErrors(w, http.StatusBadRequest, k, fmt.Sprintf("Query parameter %s is given %d times: give it once, comma-separated.", k, len(q[k])))
			return nil, false
		case ok:
		case unimplementedParams[k]:
			writeErrors(w, http.StatusBadRequest, k, fmt.Sprintf("Query parameter %s is not implemented by the emulator.", k))
			return nil, false
		default:
			takes := "no query parameters"
			if len(allowed) > 0 {
				takes = strings.Join(allowed, ", ")
			}
			writeErrors(w, http.StatusBadRequest, k, fmt.Sprintf("Unknown query parameter %s: %s %s takes %s.", k, r.Method, r.URL.Path, takes))
			return nil, false
		}
	}
	return q, true
}

// csv splits a comma-separated list, dropping empty entries.
func csv(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// selector is what a request names API clients or users by: names, or ids
// when byID; no values when it names none.
type selector struct {
	byID   bool
	values []string
}

// selectors reads names= and ids=; they cannot be set together. required
// refuses a request with neither.
func selectors(w http.ResponseWriter, q url.Values, required bool) (selector, bool) {
	names, ids := csv(q.Get("names")), csv(q.Get("ids"))
	switch {
	case q.Has("names") && q.Has("ids"):
		writeErrors(w, http.StatusBadRequest, "names", "The ids and names parameters cannot be set together.")
		return selector{}, false
	case q.Has("names") && len(names) == 0, q.Has("ids") && len(ids) == 0:
		writeErrors(w, http.StatusBadRequest, "names", "names or ids is given empty.")
		return selector{}, false
	case len(ids) > 0:
		return selector{byID: true, values: ids}, true
	case len(names) > 0:
		return selector{values: names}, true
	case required:
		writeErrors(w, http.StatusBadRequest, "names", "The ids or names parameter is required.")
		return selector{}, false
	}
	return selector{}, true
}

// pick finds the clients sel names; s.mu is held. Every name or id must
// match a client (as arrays answer: an error for each one that does not).
func (s *Server) pick(sel selector) ([]*APIClient, []apiError) {
	var out []*APIClient
	var missing []apiError
	for _, v := range sel.values {
		var c *APIClient
		if sel.byID {
			for _, x := range s.clients {
				if x.ID == v {
					c = x
				}
			}
		} else {
			c = s.clients[v]
		}
		if c == nil {
			missing = append(missing, apiError{Context: v, Message: "API client does not exist."})
			continue
		}
		out = append(out, c)
	}
	return out, missing
}

// decodeBody reads a JSON object body into dst, refusing another media type
// (415), unknown fields, trailing data and type mismatches (400).
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, dst any) bool {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		got := ct
		if got == "" {
			got = "none"
		}
		writeErrors(w, http.StatusUnsupportedMediaType, "Content-Type", fmt.Sprintf("Content-Type %s is not supported: send the body as application/json.", got))
		return false
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeErrors(w, http.StatusRequestEntityTooLarge, "", fmt.Sprintf("The body exceeds %d bytes.", maxBodyBytes))
			return false
		}
		writeErrors(w, http.StatusBadRequest, "", "Reading the body: "+err.Error()+".")
		return false
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		writeErrors(w, http.StatusBadRequest, "", "The body is empty: send a JSON object.")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		writeErrors(w, http.StatusBadRequest, jsonErrorField(err), "Invalid body: "+strings.TrimPrefix(err.Error(), "json: ")+".")
		return false
	}
	if dec.More() {
		writeErrors(w, http.StatusBadRequest, "", "Invalid body: data after the JSON object.")
		return false
	}
	return true
}

// jsonErrorField names the field a decoding error is about, for context.
func jsonErrorField(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return strings.Trim(f, `"`)
	}
	return ""
}

// ---- the handlers ---------------------------------------------------------------

// getClients is GET api-clients: all clients, or those names= or ids= give,
// sorted by name, in the kind's list shape.
func (s *Server) getClients(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.authenticate(w, r); !ok {
		return
	}
	allowed := []string{"names", "ids", "limit", "offset", "continuation_token"}
	if s.kind.name == FlashArray {
		allowed = append(allowed, "total_item_count")
	}
	q, ok := s.query(w, r, allowed...)
	if !ok {
		return
	}
	sel, ok := selectors(w, q, false)
	if !ok {
		return
	}
	// listParams is not used here: it takes total_item_count only as
	// "true" or "false", while api-clients has always taken any spelling
	// strconv.ParseBool does.
	if q.Has("continuation_token") {
		// This emulator never gives one out, so any is not one of its own.
		writeErrors(w, http.StatusBadRequest, "continuation_token", "Invalid continuation_token.")
		return
	}
	lq := listQuery{hasLimit: q.Has("limit")}
	if lq.offset, ok = intParam(w, q, "offset"); !ok {
		return
	}
	if lq.limit, ok = intParam(w, q, "limit"); !ok {
		return
	}
	if q.Has("total_item_count") {
		b, err := strconv.ParseBool(q.Get("total_item_count"))
		if err != nil {
			writeErrors(w, http.StatusBadRequest, "total_item_count", "total_item_count must be true or false.")
			return
		}
		lq.countWanted = b
	}

	s.mu.Lock()
	var picked []*APIClient
	if len(sel.values) == 0 {
		for _, c := range s.clients {
			picked = append(picked, c)
		}
	} else {
		var missing []apiError
		picked, missing = s.pick(sel)
		if len(missing) > 0 {
			s.mu.Unlock()
			writeErrorList(w, http.StatusBadRequest, missing)
			return
		}
	}
	sort.Slice(picked, func(i, j int) bool { return picked[i].Name < picked[j].Name })
	from, to := lq.page(len(picked))
	items := []map[string]any{}
	for _, c := range picked[from:to] {
		items = append(items, s.kind.wireClient(c))
	}
	s.mu.Unlock()
	s.kind.writeList(w, items, len(picked), lq)
}

// intParam reads a non-negative integer query parameter (0 when absent).
func intParam(w http.ResponseWriter, q url.Values, name string) (int, bool) {
	if !q.Has(name) {
		return 0, true
	}
	n, err := strconv.Atoi(q.Get(name))
	if err != nil || n < 0 {
		writeErrors(w, http.StatusBadRequest, name, name+" must be a non-negative integer.")
		return 0, false
	}
	return n, true
}

// createBody is POST api-clients' body: FA ApiClientPost and FB
// ApiClientsPost have the same four fields; max_role's form differs.
type createBody struct {
	AccessTokenTTLMS *int64          `json:"access_token_ttl_in_ms"`
	Issuer           *string         `json:"issuer"`
	MaxRole          json.RawMessage `json:"max_role"`
	PublicKey        *string         `json:"public_key"`
}

// oneName reads the one name a POST creates (its only query parameter);
// call is how the request should look and thing what it makes, for the
// errors. On failure it has answered 400.
func (s *Server) oneName(w http.ResponseWriter, r *http.Request, call, thing string) (string, bool) {
	q, ok := s.query(w, r, "names")
	if !ok {
		return "", false
	}
	names := csv(q.Get("names"))
	switch {
	case len(names) == 0:
		writeErrors(w, http.StatusBadRequest, "names", "The names parameter is required: POST "+call+".")
		return "", false
	case len(names) > 1:
		writeErrors(w, http.StatusBadRequest, "names", "Create one "+thing+" per request.")
		return "", false
	}
	return names[0], true
}

// createClient is POST api-clients?names=<one name>: a new, disabled client.
func (s *Server) createClient(w http.ResponseWriter, r *http.Request) {
	p, ok := s.authenticate(w, r)
	if !ok || !p.mayManage(w, "max_role", "managing API clients") {
		return
	}
	name, ok := s.oneName(w, r, "api-clients?names=<name>", "API client")
	if !ok {
		return
	}
	if err := s.kind.checkName(name); err != nil {
		writeErrors(w, http.StatusBadRequest, name, err.Error())
		return
	}
	var body createBody
	if !s.decodeBody(w, r, &body) {
		return
	}
	if len(body.MaxRole) == 0 || string(body.MaxRole) == "null" {
		writeErrors(w, http.StatusBadRequest, "max_role", "max_role is required.")
		return
	}
	role, err := s.kind.parseMaxRole(body.MaxRole)
	if err != nil {
		writeErrors(w, http.StatusBadRequest, "max_role", err.Error())
		return
	}
	issuer := ""
	if body.Issuer != nil {
		issuer = *body.Issuer
	}
	if issuer == "" {
		if s.kind.issuerRequired {
			writeErrors(w, http.StatusBadRequest, "issuer", "issuer is required.")
			return
		}
		issuer = name // the FB model: "If not specified, defaults to the API client name."
	}
	if body.PublicKey == nil || *body.PublicKey == "" {
		writeErrors(w, http.StatusBadRequest, "public_key", "public_key is required: a PEM RSA public key with its BEGIN PUBLIC KEY and END PUBLIC KEY lines.")
		return
	}
	pub, err := parseRSAPublicKey(*body.PublicKey)
	if err != nil {
		writeErrors(w, http.StatusBadRequest, "public_key", "Invalid public_key: "+err.Error()+".")
		return
	}
	ttl := DefaultAccessTokenTTL.Milliseconds()
	if body.AccessTokenTTLMS != nil {
		ttl = *body.AccessTokenTTLMS
		if ttl < minAccessTokenTTL.Milliseconds() || ttl > DefaultAccessTokenTTL.Milliseconds() {
			writeErrors(w, http.StatusBadRequest, "access_token_ttl_in_ms", fmt.Sprintf("access_token_ttl_in_ms must be between %d and %d.", minAccessTokenTTL.Milliseconds(), DefaultAccessTokenTTL.Milliseconds()))
			return
		}
	}
	s.mu.Lock()
	if _, taken := s.clients[name]; taken {
		s.mu.Unlock()
		writeErrors(w, http.StatusBadRequest, name, "Name already in use.")
		return
	}
	c := &APIClient{
		Name: name, ID: formatUUID(randomHex(16)), KeyID: formatUUID(randomHex(16)), Issuer: issuer,
		PublicKey: *body.PublicKey, MaxRole: role, AccessTokenTTLMS: ttl, Created: s.opts.Now(), pub: pub,
	}
	s.clients[name] = c
	wire := s.kind.wireClient(c)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"items": []any{wire}})
}

// patchClient is PATCH api-clients?names=|ids=: enable or disable (and, on
// a FlashBlade, change max_role).
func (s *Server) patchClient(w http.ResponseWriter, r *http.Request) {
	p, ok := s.authenticate(w, r)
	if !ok || !p.mayManage(w, "max_role", "managing API clients") {
		return
	}
	q, ok := s.query(w, r, "names", "ids")
	if !ok {
		return
	}
	sel, ok := selectors(w, q, true)
	if !ok {
		return
	}
	var body map[string]json.RawMessage
	if !s.decodeBody(w, r, &body) {
		return
	}
	for field := range body {
		if !slices.Contains(s.kind.patchFields, field) {
			writeErrors(w, http.StatusBadRequest, field, fmt.Sprintf("Invalid body: unknown field %q: a %s's PATCH api-clients takes %s.", field, s.kind.product, strings.Join(s.kind.patchFields, ", ")))
			return
		}
	}
	var enabled *bool
	if raw, ok := body["enabled"]; ok {
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil || string(raw) == "null" {
			writeErrors(w, http.StatusBadRequest, "enabled", "enabled must be true or false.")
			return
		}
		enabled = &b
	}
	role := ""
	if raw, ok := body["max_role"]; ok {
		var err error
		if role, err = s.kind.parseMaxRole(raw); err != nil {
			writeErrors(w, http.StatusBadRequest, "max_role", err.Error())
			return
		}
	}
	if enabled == nil && role == "" {
		writeErrors(w, http.StatusBadRequest, "", "Nothing to change: give enabled (true or false).")
		return
	}
	s.mu.Lock()
	picked, missing := s.pick(sel)
	if len(missing) > 0 {
		s.mu.Unlock()
		writeErrorList(w, http.StatusBadRequest, missing)
		return
	}
	items := []any{}
	for _, c := range picked {
		if enabled != nil {
			c.Enabled = *enabled
		}
		if role != "" {
			c.MaxRole = role
		}
		items = append(items, s.kind.wireClient(c))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// deleteClient is DELETE api-clients?names=|ids=: all or none. Arrays answer
// 200 with no body (the SDK maps no response type for it).
func (s *Server) deleteClient(w http.ResponseWriter, r *http.Request) {
	p, ok := s.authenticate(w, r)
	if !ok || !p.mayManage(w, "max_role", "managing API clients") {
		return
	}
	q, ok := s.query(w, r, "names", "ids")
	if !ok {
		return
	}
	sel, ok := selectors(w, q, true)
	if !ok {
		return
	}
	s.mu.Lock()
	picked, missing := s.pick(sel)
	if len(missing) > 0 {
		s.mu.Unlock()
		writeErrorList(w, http.StatusBadRequest, missing)
		return
	}
	for _, c := range picked {
		delete(s.clients, c.Name)
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func parseRSAPublicKey(p string) (*rsa.PublicKey, error) {
	blk, _ := pem.Decode([]byte(p))
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("not a PEM block BEGIN PUBLIC KEY")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok || rk.N.BitLen() < 2048 {
		return nil, errors.New("an RSA key of at least 2048 bits is required")
	}
	return rk, nil
}
