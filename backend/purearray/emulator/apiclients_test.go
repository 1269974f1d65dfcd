package emulator

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// createBodyFor is a valid create body for the kind, with overrides (see
// jsonWith).
func createBodyFor(a *testArray, over map[string]any) string {
	return jsonWith(map[string]any{
		"issuer": "iss", "public_key": publicPEM(keyOne()), "access_token_ttl_in_ms": 3600000,
		"max_role": json.RawMessage(a.role("readonly")),
	}, over)
}

// Every refusal of POST api-clients, on each kind: status, message, and
// nothing created.
func TestCreateRefusals(t *testing.T) {
	small := publicPEM(mustKey(1024))
	for _, kind := range kindsUnderTest {
		t.Run(kind, func(t *testing.T) {
			a := newArray(t, kind)
			sess := a.login()
			otherForm := json.RawMessage(`{"name":"readonly"}`)
			otherFormMsg := "max_role is a string on a FlashArray"
			if kind == FlashBlade {
				otherForm, otherFormMsg = json.RawMessage(`"readonly"`), "max_role is a reference on a FlashBlade"
			}
			longName := strings.Repeat("a", map[string]int{FlashArray: 64, FlashBlade: 57}[kind])
			otherSeparator := map[string]string{FlashArray: "vault_x", FlashBlade: "vault-x"}[kind]
			type tc struct {
				name   string
				client string // names=
				body   string
				hdr    []string
				want   int
				msg    string
			}
			cases := []tc{
				{"no names", "", createBodyFor(a, nil), nil, 400, "names parameter is required"},
				{"two names", "a1,a2", createBodyFor(a, nil), nil, 400, "one API client per request"},
				{"the other kind's separator", otherSeparator, createBodyFor(a, nil), nil, 400, "Invalid API client name"},
				{"too long", longName, createBodyFor(a, nil), nil, 400, "Invalid API client name"},
				{"leading separator", "-x", createBodyFor(a, nil), nil, 400, "Invalid API client name"},
				{"dot", "a.b", createBodyFor(a, nil), nil, 400, "Invalid API client name"},
				{"no content type", "c1", createBodyFor(a, nil), []string{"Content-Type", ""}, 415, "send the body as application/json"},
				{"form content type", "c1", createBodyFor(a, nil), []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "application/json"},
				{"empty body", "c1", "", []string{"Content-Type", "application/json"}, 400, "body is empty"},
				{"not JSON", "c1", "{", nil, 400, "Invalid body"},
				{"unknown field", "c1", createBodyFor(a, map[string]any{"enabled": true}), nil, 400, `unknown field "enabled"`},
				{"trailing data", "c1", createBodyFor(a, nil) + "{}", nil, 400, "data after"},
				{"the other kind's max_role", "c1", createBodyFor(a, map[string]any{"max_role": otherForm}), nil, 400, otherFormMsg},
				{"no max_role", "c1", createBodyFor(a, map[string]any{"max_role": nil}), nil, 400, "max_role is required"},
				{"unknown role", "c1", createBodyFor(a, map[string]any{"max_role": json.RawMessage(a.role("root"))}), nil, 400, "not a role"},
				{"no public_key", "c1", createBodyFor(a, map[string]any{"public_key": nil}), nil, 400, "public_key is required"},
				{"junk public_key", "c1", createBodyFor(a, map[string]any{"public_key": "junk"}), nil, 400, "Invalid public_key"},
				{"1024-bit key", "c1", createBodyFor(a, map[string]any{"public_key": small}), nil, 400, "at least 2048 bits"},
				{"ttl too short", "c1", createBodyFor(a, map[string]any{"access_token_ttl_in_ms": 999}), nil, 400, "between 1000 and 86400000"},
				{"ttl too long", "c1", createBodyFor(a, map[string]any{"access_token_ttl_in_ms": 86400001}), nil, 400, "between 1000 and 86400000"},
				{"ttl as a string", "c1", createBodyFor(a, map[string]any{"access_token_ttl_in_ms": "1h"}), nil, 400, "access_token_ttl_in_ms"},
				{"issuer a number", "c1", createBodyFor(a, map[string]any{"issuer": 7}), nil, 400, "issuer"},
				{"unknown query", "c1&limit=1", createBodyFor(a, nil), nil, 400, "Unknown query parameter limit"},
				{"no session", "c1", createBodyFor(a, nil), []string{"x-auth-token", ""}, 401, "Authentication required"},
				{"stale session", "c1", createBodyFor(a, nil), []string{"x-auth-token", "stale"}, 401, "log in again"},
			}
			if kind == FlashArray {
				cases = append(cases, tc{"no issuer", "c1", createBodyFor(a, map[string]any{"issuer": nil}), nil, 400, "issuer is required"})
			} else {
				cases = append(cases,
					tc{"reference with no name", "c1", createBodyFor(a, map[string]any{"max_role": json.RawMessage(`{"id":"x"}`)}), nil, 400, "names no role"},
					tc{"reference to another resource", "c1", createBodyFor(a, map[string]any{"max_role": json.RawMessage(`{"name":"readonly","resource_type":"users"}`)}), nil, 400, "not to a role"},
					tc{"reference with an unknown field", "c1", createBodyFor(a, map[string]any{"max_role": json.RawMessage(`{"name":"readonly","role":"x"}`)}), nil, 400, "unknown field"})
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					path := a.ver() + "/api-clients"
					if c.client != "" {
						path += "?names=" + c.client
					}
					hdr := append([]string{"x-auth-token", sess}, c.hdr...)
					r := a.must("POST", path, c.body, hdr...)
					if r.status != c.want || !strings.Contains(r.message(), c.msg) {
						t.Errorf("%d %s, want %d %q", r.status, r.raw, c.want, c.msg)
					}
				})
			}
			if got := a.emu.Clients(); len(got) != 0 {
				t.Fatalf("refused creates left clients: %v", got)
			}

			// What is accepted: the limits themselves, and (FB) no issuer.
			okName := a.clientName("vault-ok")
			a.create(sess, okName, keyOne(), "readonly")
			if r := a.must("POST", a.ver()+"/api-clients?names="+okName, createBodyFor(a, nil), "x-auth-token", sess); r.status != 400 || r.message() != "Name already in use." {
				t.Errorf("a second client named %s: %d %s", okName, r.status, r.raw)
			}
			for _, tcOK := range []struct{ name, body string }{
				{strings.Repeat("b", len(longName)-1), createBodyFor(a, map[string]any{"access_token_ttl_in_ms": 1000})},
				{"c9", createBodyFor(a, map[string]any{"access_token_ttl_in_ms": 86400000, "issuer": ""})},
				{"d0", createBodyFor(a, map[string]any{"access_token_ttl_in_ms": nil})},
			} {
				if kind == FlashArray && tcOK.name == "c9" {
					continue // an empty issuer is refused above as no issuer
				}
				r := a.must("POST", a.ver()+"/api-clients?names="+tcOK.name, tcOK.body, "x-auth-token", sess, "Content-Type", "application/json; charset=utf-8")
				if r.status != 200 {
					t.Errorf("create %s: %d %s", tcOK.name, r.status, r.raw)
					continue
				}
				c := r.items()[0]
				switch tcOK.name {
				case "c9":
					if c["issuer"] != "c9" {
						t.Errorf("a FlashBlade client with no issuer has issuer %v, want its name", c["issuer"])
					}
				case "d0":
					if c["access_token_ttl_in_ms"] != float64(86400000) {
						t.Errorf("default ttl %v, want 86400000", c["access_token_ttl_in_ms"])
					}
				}
			}
		})
	}
}

// Every refusal of PATCH api-clients, and what each kind may change.
func TestPatchRefusals(t *testing.T) {
	for _, kind := range kindsUnderTest {
		t.Run(kind, func(t *testing.T) {
			a := newArray(t, kind)
			sess := a.login()
			name := a.clientName("vault-p")
			a.create(sess, name, keyOne(), "readonly")
			q := "?names=" + name
			maxRoleCase := struct {
				body string
				want int
				msg  string
			}{`{"max_role":{"name":"ops_admin"}}`, 400, `unknown field "max_role"`}
			if kind == FlashBlade {
				maxRoleCase.body, maxRoleCase.msg = `{"max_role":"ops_admin"}`, "max_role is a reference"
			}
			for _, tc := range []struct {
				name, query, body string
				hdr               []string
				want              int
				msg               string
			}{
				{"no selector", "", `{"enabled":true}`, nil, 400, "ids or names parameter is required"},
				{"names and ids", q + "&ids=x", `{"enabled":true}`, nil, 400, "cannot be set together"},
				{"empty names", "?names=", `{"enabled":true}`, nil, 400, "given empty"},
				{"unknown client", "?names=" + name + ",nope", `{"enabled":true}`, nil, 400, "does not exist"},
				{"wrong content type", q, `{"enabled":true}`, []string{"Content-Type", "text/plain"}, 415, "application/json"},
				{"unknown field", q, `{"enabled":true,"name":"x"}`, nil, 400, `unknown field "name"`},
				{"enabled a string", q, `{"enabled":"yes"}`, nil, 400, "enabled must be true or false"},
				{"enabled null", q, `{"enabled":null}`, nil, 400, "enabled must be true or false"},
				{"nothing to change", q, `{}`, nil, 400, "Nothing to change"},
				{"the other kind's max_role", q, maxRoleCase.body, nil, maxRoleCase.want, maxRoleCase.msg},
				{"repeated names", q + "&names=" + name, `{"enabled":true}`, nil, 400, "given 2 times"},
			} {
				r := a.must("PATCH", a.ver()+"/api-clients"+tc.query, tc.body, append([]string{"x-auth-token", sess}, tc.hdr...)...)
				if r.status != tc.want || !strings.Contains(r.message(), tc.msg) {
					t.Errorf("%s: %d %s, want %d %q", tc.name, r.status, r.raw, tc.want, tc.msg)
				}
			}
			if c := a.emu.Clients()[0]; c.Enabled || c.MaxRole != "readonly" {
				t.Fatalf("a refused PATCH changed the client: %+v", c)
			}
			id := a.emu.Clients()[0].ID
			r := a.must("PATCH", a.ver()+"/api-clients?ids="+id, `{"enabled":true}`, "x-auth-token", sess)
			if r.status != 200 || r.items()[0]["enabled"] != true || !a.emu.Clients()[0].Enabled {
				t.Fatalf("enable by id: %d %s", r.status, r.raw)
			}
			if kind == FlashBlade {
				r := a.must("PATCH", a.ver()+"/api-clients"+q, `{"max_role":{"name":"ops_admin"}}`, "x-auth-token", sess)
				if r.status != 200 || a.emu.Clients()[0].MaxRole != "ops_admin" || !strings.Contains(r.raw, `"max_role":{"name":"ops_admin"}`) {
					t.Errorf("FlashBlade max_role change: %d %s", r.status, r.raw)
				}
			}
		})
	}
}

// GET api-clients: all or by names/ids, in the kind's list shape; every
// refusal.
func TestGetClients(t *testing.T) {
	for _, kind := range kindsUnderTest {
		t.Run(kind, func(t *testing.T) {
			a := newArray(t, kind)
			sess := a.login()
			var names []string
			for _, n := range []string{"c3", "c1", "c2"} {
				a.create(sess, n, keyOne(), "readonly")
				names = append(names, n)
			}
			get := func(query string) reply {
				return a.must("GET", a.ver()+"/api-clients"+query, "", "x-auth-token", sess)
			}
			listed := func(r reply) string {
				var out []string
				for _, it := range r.items() {
					out = append(out, it["name"].(string))
				}
				return strings.Join(out, ",")
			}
			if r := get(""); r.status != 200 || listed(r) != "c1,c2,c3" {
				t.Errorf("all: %d %s", r.status, r.raw)
			}
			if r := get("?names=c3,c1"); listed(r) != "c1,c3" {
				t.Errorf("names=c3,c1: %s", r.raw)
			}
			id := a.emu.Clients()[1].ID
			if r := get("?ids=" + id); listed(r) != "c2" {
				t.Errorf("ids: %s", r.raw)
			}
			r := get("?limit=2")
			if listed(r) != "c1,c2" {
				t.Errorf("limit=2: %s", r.raw)
			}
			if kind == FlashArray {
				if r.body["more_items_remaining"] != true || r.body["total_item_count"] != nil {
					t.Errorf("FlashArray page: %s, want more_items_remaining and no total_item_count unless asked", r.raw)
				}
				r2 := get("?offset=2&total_item_count=true")
				if listed(r2) != "c3" || r2.body["more_items_remaining"] != false || r2.body["total_item_count"] != float64(3) {
					t.Errorf("FlashArray offset=2&total_item_count=true: %s", r2.raw)
				}
			} else if r.body["total_item_count"] != float64(3) {
				t.Errorf("FlashBlade page: %s, want total_item_count 3", r.raw)
			}
			for _, tc := range []struct {
				name, query string
				want        int
				msg         string
			}{
				{"missing names", "?names=c1,x,y", 400, "does not exist"},
				{"names and ids", "?names=c1&ids=" + id, 400, "cannot be set together"},
				{"filter", "?filter=name='c1'", 400, "not implemented by the emulator"},
				{"sort", "?sort=name", 400, "not implemented by the emulator"},
				{"unknown parameter", "?name=c1", 400, "Unknown query parameter name"},
				{"negative limit", "?limit=-1", 400, "non-negative integer"},
				{"bad offset", "?offset=x", 400, "non-negative integer"},
				{"continuation_token", "?continuation_token=abc", 400, "Invalid continuation_token"},
			} {
				r := get(tc.query)
				if r.status != tc.want || !strings.Contains(r.message(), tc.msg) {
					t.Errorf("%s: %d %s, want %d %q", tc.name, r.status, r.raw, tc.want, tc.msg)
				}
			}
			// Every missing name is reported, each in its context.
			if r := get("?names=c1,x,y"); len(r.body["errors"].([]any)) != 2 || !strings.Contains(r.raw, `"context":"x"`) || !strings.Contains(r.raw, `"context":"y"`) {
				t.Errorf("missing names: %s, want one error for x and one for y", r.raw)
			}
			countParam := get("?total_item_count=true")
			if kind == FlashBlade && (countParam.status != 400 || !strings.Contains(countParam.message(), "Unknown query parameter")) {
				t.Errorf("total_item_count on a FlashBlade: %d %s", countParam.status, countParam.raw)
			}
			if r := a.must("GET", a.ver()+"/api-clients", ""); r.status != 401 {
				t.Errorf("no session: %d", r.status)
			}
			_ = names
		})
	}
}

// DELETE api-clients is all or nothing and needs a selector.
func TestDeleteRefusals(t *testing.T) {
	for _, kind := range kindsUnderTest {
		t.Run(kind, func(t *testing.T) {
			a := newArray(t, kind)
			sess := a.login()
			a.create(sess, "k1", keyOne(), "readonly")
			a.create(sess, "k2", keyOne(), "readonly")
			for _, tc := range []struct {
				name, query string
				want        int
				msg         string
			}{
				{"no selector", "", 400, "ids or names parameter is required"},
				{"one missing", "?names=k1,k9", 400, "does not exist"},
				{"unknown parameter", "?names=k1&force=true", 400, "Unknown query parameter force"},
			} {
				r := a.must("DELETE", a.ver()+"/api-clients"+tc.query, "", "x-auth-token", sess)
				if r.status != tc.want || !strings.Contains(r.message(), tc.msg) {
					t.Errorf("%s: %d %s, want %d %q", tc.name, r.status, r.raw, tc.want, tc.msg)
				}
			}
			if n := len(a.emu.Clients()); n != 2 {
				t.Fatalf("refused deletes removed clients: %d left", n)
			}
			if r := a.must("DELETE", a.ver()+"/api-clients?names="+url.QueryEscape("k1,k2"), "", "x-auth-token", sess); r.status != 200 || len(a.emu.Clients()) != 0 {
				t.Errorf("delete both: %d %s", r.status, r.raw)
			}
			if r := a.must("PUT", a.ver()+"/api-clients?names=k1", "{}", "x-auth-token", sess); r.status != 405 {
				t.Errorf("PUT api-clients: %d", r.status)
			}
		})
	}
}
