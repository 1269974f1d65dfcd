package emulator

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// page is an arrays answer, decoded as Pure's SDK decodes it.
type page struct {
	ContinuationToken *string          `json:"continuation_token"`
	TotalItemCount    int              `json:"total_item_count"`
	Items             []map[string]any `json:"items"`
	Errors            []apiErrorItem   `json:"errors"`
}

func (p page) names() []string {
	var out []string
	for _, it := range p.Items {
		out = append(out, it["name"].(string))
	}
	return out
}

// arraysFixture is an emulator with n arrays and an access token for it.
func arraysFixture(t *testing.T, n int) (*fixture, string) {
	t.Helper()
	f := newFixture(t, Options{Arrays: n})
	r := f.exchange(t, f.clientJWT(t))
	wantStatus(t, r, http.StatusOK)
	return f, decode[tokenResponse](t, r.body).AccessToken
}

// list GETs path?query with the token and decodes the answer.
func (f *fixture) list(t *testing.T, token, path, query string) (int, page, http.Header) {
	t.Helper()
	u := f.ts.URL + path
	if query != "" {
		u += "?" + query
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("X-Request-ID", "req-42")
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var p page
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("GET %s: %d, body %q is not JSON: %v", u, resp.StatusCode, body, err)
	}
	return resp.StatusCode, p, resp.Header
}

func names(ns ...int) []string {
	var out []string
	for _, n := range ns {
		out = append(out, "emulated-array-0"+string(rune('0'+n)))
	}
	return out
}

func TestArraysEveryAPIVersion(t *testing.T) {
	f, tok := arraysFixture(t, 1)
	for _, v := range APIVersions {
		status, p, h := f.list(t, tok, ArraysPathFor(v), "")
		if status != 200 || p.TotalItemCount != 1 || len(p.Items) != 1 || p.ContinuationToken != nil {
			t.Fatalf("%s: %d %+v", v, status, p)
		}
		it := p.Items[0]
		if it["name"] != "emulated-array-01" || it["id"] != f.s.Arrays()[0].ID || it["_as_of"] != float64(f.clock.Now().UnixMilli()) {
			t.Errorf("%s: item %v", v, it)
		}
		// fqdn came with API 1.1: the 1.0 model has no such field.
		if _, has := it["fqdn"]; has != (v != "1.0") {
			t.Errorf("%s: fqdn present = %v", v, has)
		}
		if h.Get("X-Request-ID") != "req-42" {
			t.Errorf("%s: X-Request-ID not echoed: %q", v, h.Get("X-Request-ID"))
		}
		if status, _, _ := f.list(t, "", ArraysPathFor(v), ""); status != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d, want 401", v, status)
		}
	}
	for _, v := range []string{"2.0", "1.6", "latest", "1.latest.x"} {
		status, p, _ := f.list(t, tok, ArraysPathFor(v), "")
		if status != http.StatusNotFound || len(p.Errors) != 1 || !strings.Contains(p.Errors[0].Message, "1.0, 1.1") {
			t.Errorf("version %s: %d %+v, want 404 naming the served versions", v, status, p)
		}
	}
}

// TestArraysPaging follows continuation tokens as the SDK does (quoted) and
// as curl users do (bare), and pages by offset as the SDK does after a sort.
func TestArraysPaging(t *testing.T) {
	f, tok := arraysFixture(t, 5)
	all := names(1, 2, 3, 4, 5)
	for _, quote := range []bool{true, false} {
		var got []string
		query := "limit=2"
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatalf("quote=%v: more pages than items", quote)
			}
			status, p, _ := f.list(t, tok, ArraysPathFor("1.5"), query)
			if status != 200 || p.TotalItemCount != 5 || len(p.Items) > 2 {
				t.Fatalf("quote=%v %s: %d %+v", quote, query, status, p)
			}
			got = append(got, p.names()...)
			if p.ContinuationToken == nil {
				break
			}
			ct := *p.ContinuationToken
			if quote {
				ct = "'" + ct + "'"
			}
			// The SDK sends offset again beside the token; the token wins.
			query = "limit=2&offset=1&continuation_token=" + url.QueryEscape(ct)
		}
		if !slices.Equal(got, all) {
			t.Errorf("quote=%v: pages gave %v, want %v", quote, got, all)
		}
	}

	for _, c := range []struct {
		query   string
		want    []string
		hasNext bool
	}{
		{"", all, false},
		{"limit=0", nil, false},          // counts only
		{"limit=5000", all, false},       // more than a page: served as a page
		{"offset=3", names(4, 5), false}, // offset paging
		{"offset=9", nil, false},         // past the end: empty, not an error
		{"offset=1&limit=2", names(2, 3), true},
		{"sort=name-&limit=2", names(5, 4), false}, // a sort gives no token
		{"sort=name-&limit=2&offset=2", names(3, 2), false},
	} {
		status, p, _ := f.list(t, tok, ArraysPathFor("1.latest"), c.query)
		if status != 200 || p.TotalItemCount != 5 || !slices.Equal(p.names(), c.want) || (p.ContinuationToken != nil) != c.hasNext {
			t.Errorf("%q: %d total %d names %v token %v; want names %v, token %v", c.query, status, p.TotalItemCount, p.names(), p.ContinuationToken, c.want, c.hasNext)
		}
	}

	// PureStorage.Pure1 (PowerShell) pages with "?&continuation_token='T'"
	// when it has no filter: the empty parameter is ignored.
	_, first, _ := f.list(t, tok, ArraysPathFor("1.5"), "limit=1")
	if status, p, _ := f.list(t, tok, ArraysPathFor("1.latest"), "&continuation_token="+url.QueryEscape("'"+*first.ContinuationToken+"'")); status != 200 || !slices.Equal(p.names(), names(2, 3, 4, 5)) {
		t.Errorf("PowerShell-style page: %d %v", status, p.names())
	}

	// A token belongs to its query: another filter must not reuse it.
	ct := url.QueryEscape(*first.ContinuationToken)
	for query, want := range map[string]string{
		"filter=" + url.QueryEscape("os='Purity//FA'") + "&continuation_token=" + ct: "another query",
		"continuation_token=bm9wZQ":    "not one this API issued",
		"continuation_token=%27%21%27": "not one this API issued",
	} {
		status, p, _ := f.list(t, tok, ArraysPathFor("1.5"), query)
		if status != 400 || len(p.Errors) != 1 || p.Errors[0].Context != "continuation_token" || !strings.Contains(p.Errors[0].Message, want) {
			t.Errorf("%s: %d %+v, want 400 %q", query, status, p, want)
		}
	}
}

func TestArraysSelectAndSort(t *testing.T) {
	f, tok := arraysFixture(t, 5)
	// arrays 1 and 4 are FA-X70R3, 2 and 5 FB-S200 (Purity//FB), 3 FA-C60R4.
	id3 := f.s.Arrays()[2].ID
	for _, c := range []struct{ param, value string }{
		{"filter", "name='emulated-array-02'"},
		{"filter", "os='Purity//FB'"},
		{"filter", "os!='Purity//FB'"},
		{"filter", "contains(name, 'array-0') and model='FA-C60R4'"},
		{"filter", "not(os='Purity//FA')"},
		{"filter", "model='FA-X70R3' or model='FB-S200' and name='emulated-array-05'"}, // and first
		{"filter", "(model='FA-X70R3' or model='FB-S200') and name='emulated-array-05'"},
		{"filter", "os = ('Purity//FB','x')"},
		{"filter", "version>='6.5' and version<'6.7'"},
		{"filter", "fqdn"},
		{"filter", "name='it\\'s'"},
		{"names", "'emulated-array-03','emulated-array-01'"},
		{"names", "emulated-array-03"},
		{"ids", "'" + id3 + "'"},
		{"fqdns", "'emulated-array-04.emulated.test'"},
		{"sort", "model,name-"},
	} {
		want := map[string][]string{
			"name='emulated-array-02'":                       names(2),
			"os='Purity//FB'":                                names(2, 5),
			"os!='Purity//FB'":                               names(1, 3, 4),
			"contains(name, 'array-0') and model='FA-C60R4'": names(3),
			"not(os='Purity//FA')":                           names(2, 5),
			"model='FA-X70R3' or model='FB-S200' and name='emulated-array-05'":   names(1, 4, 5),
			"(model='FA-X70R3' or model='FB-S200') and name='emulated-array-05'": names(5),
			"os = ('Purity//FB','x')":                 names(2, 5),
			"version>='6.5' and version<'6.7'":        names(1, 4),
			"fqdn":                                    names(1, 2, 3, 4, 5),
			"name='it\\'s'":                           nil,
			"'emulated-array-03','emulated-array-01'": names(1, 3),
			"emulated-array-03":                       names(3),
			"'" + id3 + "'":                           names(3),
			"'emulated-array-04.emulated.test'":       names(4),
			"model,name-":                             names(3, 4, 1, 5, 2),
		}[c.value]
		status, p, _ := f.list(t, tok, ArraysPathFor("1.5"), c.param+"="+url.QueryEscape(c.value))
		if status != 200 || !slices.Equal(p.names(), want) || p.TotalItemCount != len(want) {
			t.Errorf("%s=%s: %d %v (total %d), want %v", c.param, c.value, status, p.names(), p.TotalItemCount, want)
		}
	}
}

func TestArraysBadQueries(t *testing.T) {
	f, tok := arraysFixture(t, 2)
	for _, c := range []struct{ query, context, msg string }{
		{"limt=2", "limt", "Unknown parameter"},
		{"limit=1&limit=2", "limit", "given 2 times"},
		{"limit=-1", "limit", "integer >= 0"},
		{"limit=two", "limit", "integer >= 0"},
		{"offset=-3", "offset", "integer >= 0"},
		{"sort=size", "sort", `Cannot sort by "size"`},
		{"filter=" + url.QueryEscape("size='1'"), "filter", `unknown field "size"`},
		{"filter=" + url.QueryEscape("name=emulated-array-01"), "filter", "quote the value"},
		{"filter=" + url.QueryEscape("name='x"), "filter", "unterminated quote"},
		{"filter=" + url.QueryEscape("name='x' and"), "filter", "expected a field name"},
		{"filter=" + url.QueryEscape("not(name='x'"), "filter", `expected ')'`},
		{"filter=" + url.QueryEscape("name>('a','b')"), "filter", "needs = or !="},
		{"filter=" + url.QueryEscape("name='a' name='b'"), "filter", "unexpected"},
		{"names=" + url.QueryEscape("'emulated-array-01','nope'"), "nope", `No array matches name "nope"`},
		{"ids=" + url.QueryEscape("'x'"), "x", `No array matches id "x"`},
		{"names=" + url.QueryEscape("'a',,'b'"), "names", "empty value"},
	} {
		status, p, _ := f.list(t, tok, ArraysPathFor("1.5"), c.query)
		if status != 400 || len(p.Errors) != 1 || p.Errors[0].Context != c.context || !strings.Contains(p.Errors[0].Message, c.msg) {
			t.Errorf("%s: %d %+v, want 400 context %q message containing %q", c.query, status, p.Errors, c.context, c.msg)
		}
	}
	if _, err := New(Options{Arrays: -1}); err == nil {
		t.Error("New with -1 arrays succeeded")
	}
}
