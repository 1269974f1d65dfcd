package emulator

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// The arrays collection as Pure's SDK (py-pure-client, pypureclient.pure1)
// calls it: GET /api/<version>/arrays with Pure1's collection parameters, and
// the answer {continuation_token, total_item_count, items}.

// APIVersions are the resource API versions the emulator serves: those Pure's
// SDK 1.90 calls (its Pure1_1_0 … Pure1_1_5 clients) and "1.latest".
var APIVersions = []string{"1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.latest"}

// ArraysPathFor is the arrays collection of one API version.
func ArraysPathFor(version string) string { return "/api/" + version + "/arrays" }

const (
	// DefaultPageSize is Pure1's page size when a request has no limit; it is
	// also the largest page: a larger limit is served as this many, as Pure1 does.
	DefaultPageSize = 1000

	// arraysPattern routes every version; handleArrays checks the version.
	arraysPattern = "/api/{version}/arrays"
)

// arrayParams are the query parameters the arrays collection takes.
var arrayParams = []string{"continuation_token", "filter", "fqdns", "ids", "limit", "names", "offset", "sort"}

// Array is one appliance the emulated Pure1 reports.
type Array struct {
	ID      string
	Name    string
	FQDN    string
	Model   string
	OS      string
	Version string
}

// arrayItem is an array on the wire. fqdn appeared in API 1.1, so 1.0 omits it.
type arrayItem struct {
	AsOf    int64  `json:"_as_of"` // milliseconds since the epoch, as Pure1 reports it
	ID      string `json:"id"`
	Name    string `json:"name"`
	FQDN    string `json:"fqdn,omitempty"`
	Model   string `json:"model"`
	OS      string `json:"os"`
	Version string `json:"version"`
}

type arrayList struct {
	ContinuationToken *string     `json:"continuation_token"` // null on the last page and whenever sort is given
	TotalItemCount    int         `json:"total_item_count"`   // every match, whatever the page
	Items             []arrayItem `json:"items"`
}

// arrayModels gives emulated arrays of several kinds, so filters and sorts
// have something to tell apart. The first is the array the emulator always
// reported, unchanged.
var arrayModels = []struct{ model, os, version string }{
	{"FA-X70R3", "Purity//FA", "6.5.4"},
	{"FB-S200", "Purity//FB", "4.3.1"},
	{"FA-C60R4", "Purity//FA", "6.7.2"},
}

// newArrays makes n arrays named emulated-array-01, -02, ...; firstID is the
// first one's ID.
func newArrays(n int, firstID string) ([]Array, error) {
	out := make([]Array, n)
	for i := range out {
		id := firstID
		if i > 0 {
			var err error
			if id, err = randomUUID(); err != nil {
				return nil, err
			}
		}
		m := arrayModels[i%len(arrayModels)]
		name := fmt.Sprintf("emulated-array-%02d", i+1)
		out[i] = Array{ID: id, Name: name, FQDN: name + ".emulated.test", Model: m.model, OS: m.os, Version: m.version}
	}
	return out, nil
}

// Arrays returns the arrays the resource API lists, in their default order.
func (s *Server) Arrays() []Array { return slices.Clone(s.arrays) }

// apiError answers in the resource API's error shape.
func apiError(w http.ResponseWriter, status int, context, format string, a ...any) {
	writeJSON(w, status, apiErrors{Errors: []apiErrorItem{{Context: context, Message: fmt.Sprintf(format, a...)}}})
}

// handleArrays serves GET /api/<version>/arrays: the cheapest Pure1 call that
// proves an access token is accepted, and the one Pure's SDK examples start with.
func (s *Server) handleArrays(w http.ResponseWriter, r *http.Request) {
	version := r.PathValue("version")
	if !slices.Contains(APIVersions, version) {
		apiError(w, http.StatusNotFound, version, "API version %q is not served; use one of %s.", version, strings.Join(APIVersions, ", "))
		return
	}
	if !allowMethods(w, r, http.MethodGet) {
		return
	}
	s.stats.apiRequests.Add(1)
	claims, err := s.verifyAccessToken(r.Header.Get("Authorization"))
	if err != nil {
		infoFrom(r.Context()).addNote("unauthorized: " + err.Error())
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, apiErrors{Errors: []apiErrorItem{{Message: "Invalid or expired access token."}}})
		return
	}
	if sub, _ := claims["sub"].(string); sub != "" {
		infoFrom(r.Context()).appID = sub
	}
	if id := r.Header.Get("X-Request-ID"); id != "" {
		w.Header().Set("X-Request-ID", id) // Pure1 echoes it; the SDK reuses it across pages
	}

	q, qerr := parseCollectionQuery(r.URL.RawQuery)
	if qerr != nil {
		infoFrom(r.Context()).addNote("bad query: " + qerr.Message)
		writeJSON(w, http.StatusBadRequest, apiErrors{Errors: []apiErrorItem{*qerr}})
		return
	}
	page, qerr := s.listArrays(q)
	if qerr != nil {
		infoFrom(r.Context()).addNote("bad query: " + qerr.Message)
		writeJSON(w, http.StatusBadRequest, apiErrors{Errors: []apiErrorItem{*qerr}})
		return
	}
	asOf := s.now().UnixMilli()
	for i := range page.Items {
		page.Items[i].AsOf = asOf
		if version == "1.0" {
			page.Items[i].FQDN = ""
		}
	}
	writeJSON(w, http.StatusOK, page)
}

// collectionQuery is a parsed arrays request.
type collectionQuery struct {
	filter            filterExpr // nil: no filter
	ids, names, fqdns []string
	sort              []sortKey
	limit             int
	offset            int
	continuation      string // raw token, unquoted
	fingerprint       string // what a continuation token must have been issued for
}

type sortKey struct {
	field string
	desc  bool
}

func badParam(param, format string, a ...any) *apiErrorItem {
	return &apiErrorItem{Context: param, Message: fmt.Sprintf(format, a...)}
}

// parseCollectionQuery reads Pure1's collection parameters. Unknown and
// repeated parameters are refused: against the real API they would be a
// client bug that silently returns the wrong page.
func parseCollectionQuery(raw string) (*collectionQuery, *apiErrorItem) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, badParam("", "Malformed query string: %v.", err)
	}
	for name, v := range vals {
		if !slices.Contains(arrayParams, name) {
			return nil, badParam(name, "Unknown parameter %q; arrays take %s.", name, strings.Join(arrayParams, ", "))
		}
		if len(v) > 1 {
			return nil, badParam(name, "Parameter %s is given %d times; give it once (lists are comma-separated: ids='a','b').", name, len(v))
		}
	}
	q := &collectionQuery{limit: DefaultPageSize}
	if v, ok := vals["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 0 {
			return nil, badParam("limit", "limit must be an integer >= 0, got %q.", v[0])
		}
		q.limit = min(n, DefaultPageSize)
	}
	if v, ok := vals["offset"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 0 {
			return nil, badParam("offset", "offset must be an integer >= 0, got %q.", v[0])
		}
		q.offset = n
	}
	for _, l := range []struct {
		name string
		dst  *[]string
	}{{"ids", &q.ids}, {"names", &q.names}, {"fqdns", &q.fqdns}} {
		if v, ok := vals[l.name]; ok {
			list, err := parseStringList(v[0])
			if err != nil {
				return nil, badParam(l.name, "%s: %v; give quoted, comma-separated values: %s='a','b'.", l.name, err, l.name)
			}
			*l.dst = list
		}
	}
	if v, ok := vals["sort"]; ok {
		for _, f := range strings.Split(v[0], ",") {
			f = strings.TrimSpace(f)
			k := sortKey{field: strings.TrimSuffix(f, "-"), desc: strings.HasSuffix(f, "-")}
			if _, known := arrayFields[k.field]; !known {
				return nil, badParam("sort", "Cannot sort by %q; arrays sort by %s (append - for descending: name-).", k.field, fieldList())
			}
			q.sort = append(q.sort, k)
		}
	}
	if v, ok := vals["filter"]; ok && strings.TrimSpace(v[0]) != "" {
		f, err := parseFilter(v[0])
		if err != nil {
			return nil, badParam("filter", "Invalid filter: %v.", err)
		}
		q.filter = f
	}
	if v, ok := vals["continuation_token"]; ok {
		tok := v[0]
		if unq, err := parseStringList(tok); err == nil && len(unq) == 1 {
			tok = unq[0] // the SDK sends it quoted, curl users may not
		}
		q.continuation = tok
	}
	// A token is valid only for the query that produced it: the same filter,
	// lists and sort. limit may change from page to page.
	h := sha256.New()
	for _, name := range []string{"filter", "ids", "names", "fqdns", "sort"} {
		fmt.Fprintf(h, "%s=%q\n", name, vals.Get(name))
	}
	q.fingerprint = hex.EncodeToString(h.Sum(nil))[:16]
	return q, nil
}

// continuation tokens are opaque to clients; inside they are the position
// of the next item and the query's fingerprint.
func encodeContinuation(pos int, fingerprint string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("v1:%d:%s", pos, fingerprint)))
}

func decodeContinuation(tok, fingerprint string) (int, *apiErrorItem) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	parts := strings.Split(string(b), ":")
	if err != nil || len(parts) != 3 || parts[0] != "v1" {
		return 0, badParam("continuation_token", "continuation_token is not one this API issued; pass the continuation_token of the previous page unchanged.")
	}
	pos, err := strconv.Atoi(parts[1])
	if err != nil || pos < 0 {
		return 0, badParam("continuation_token", "continuation_token is not one this API issued; pass the continuation_token of the previous page unchanged.")
	}
	if parts[2] != fingerprint {
		return 0, badParam("continuation_token", "continuation_token was issued for another query (filter, ids, names, fqdns or sort differ); repeat the first query's parameters or start again without the token.")
	}
	return pos, nil
}

// listArrays selects, sorts and pages the arrays as Pure1 does.
func (s *Server) listArrays(q *collectionQuery) (arrayList, *apiErrorItem) {
	// Each listed id, name and fqdn must match an array, else Pure1 answers
	// an error naming it.
	for _, l := range []struct {
		param string
		want  []string
		get   func(Array) string
	}{
		{"ids", q.ids, func(a Array) string { return a.ID }},
		{"names", q.names, func(a Array) string { return a.Name }},
		{"fqdns", q.fqdns, func(a Array) string { return a.FQDN }},
	} {
		for _, v := range l.want {
			if !slices.ContainsFunc(s.arrays, func(a Array) bool { return l.get(a) == v }) {
				return arrayList{}, badParam(v, "No array matches %s %q.", strings.TrimSuffix(l.param, "s"), v)
			}
		}
	}
	in := func(list []string, v string) bool { return list == nil || slices.Contains(list, v) }
	var matched []Array
	for _, a := range s.arrays {
		if in(q.ids, a.ID) && in(q.names, a.Name) && in(q.fqdns, a.FQDN) && (q.filter == nil || q.filter.match(a)) {
			matched = append(matched, a)
		}
	}
	if len(q.sort) > 0 {
		slices.SortStableFunc(matched, func(x, y Array) int {
			for _, k := range q.sort {
				c := cmp.Compare(arrayFields[k.field](x), arrayFields[k.field](y))
				if k.desc {
					c = -c
				}
				if c != 0 {
					return c
				}
			}
			return 0
		})
	}

	start := q.offset
	if q.continuation != "" {
		pos, err := decodeContinuation(q.continuation, q.fingerprint)
		if err != nil {
			return arrayList{}, err
		}
		start = pos // the token holds the absolute position; the SDK may resend offset beside it
	}
	start = min(start, len(matched))
	end := min(start+q.limit, len(matched))
	out := arrayList{TotalItemCount: len(matched), Items: make([]arrayItem, 0, end-start)}
	for _, a := range matched[start:end] {
		out.Items = append(out.Items, arrayItem{ID: a.ID, Name: a.Name, FQDN: a.FQDN, Model: a.Model, OS: a.OS, Version: a.Version})
	}
	// With a sort Pure1 gives no continuation token (clients page with
	// offset), nor with limit=0, which only counts.
	if end < len(matched) && len(q.sort) == 0 && q.limit > 0 {
		tok := encodeContinuation(end, q.fingerprint)
		out.ContinuationToken = &tok
	}
	return out, nil
}

// parseStringList reads Pure1's list syntax: 'a','b\'c' (quotes required by
// Pure1 and sent by the SDK; bare values are taken as they are).
func parseStringList(s string) ([]string, error) {
	var out []string
	lx := &lexer{src: s}
	for {
		lx.skipSpace()
		if lx.eof() {
			return nil, fmt.Errorf("empty value")
		}
		if lx.peek() == '\'' {
			v, err := lx.quoted()
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		} else {
			start := lx.pos
			for !lx.eof() && lx.peek() != ',' {
				lx.pos++
			}
			v := strings.TrimSpace(s[start:lx.pos])
			if v == "" {
				return nil, fmt.Errorf("empty value")
			}
			out = append(out, v)
		}
		lx.skipSpace()
		if lx.eof() {
			return out, nil
		}
		if lx.peek() != ',' {
			return nil, fmt.Errorf("unexpected %q at offset %d", lx.peek(), lx.pos)
		}
		lx.pos++
	}
}
