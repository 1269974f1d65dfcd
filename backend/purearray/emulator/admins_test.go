package emulator

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// ---- helpers ------------------------------------------------------------------

// adminBody is a valid AdminPost for the kind with overrides (see
// jsonWith).
func adminBody(role string, over map[string]any) string {
	return jsonWith(map[string]any{"password": "s3cret-Pw", "role": map[string]string{"name": role}}, over)
}

// sel is the query that names user in api-tokens: names= on a FlashArray,
// admin_names= on a FlashBlade.
func (a *testArray) sel(users ...string) string {
	key := "names"
	if a.emu.Kind() == FlashBlade {
		key = "admin_names"
	}
	return key + "=" + url.QueryEscape(strings.Join(users, ","))
}

func (a *testArray) tokensPath(query string) string {
	return a.ver() + "/admins/api-tokens?" + query
}

// addUser creates a user with role as the session sess.
func (a *testArray) addUser(sess, name, role string) map[string]any {
	a.t.Helper()
	r := a.must("POST", a.ver()+"/admins?names="+name, adminBody(role, nil), "x-auth-token", sess)
	if r.status != 200 || len(r.items()) != 1 {
		a.t.Fatalf("POST admins %s: %d %s", name, r.status, r.raw)
	}
	return r.items()[0]
}

// newToken creates user's token with timeout (ms; <0 sends none) and
// returns the AdminApiToken item.
func (a *testArray) newToken(sess, user string, timeout int64) map[string]any {
	a.t.Helper()
	q := a.sel(user)
	if timeout >= 0 {
		q += fmt.Sprintf("&timeout=%d", timeout)
	}
	r := a.must("POST", a.tokensPath(q), "", "x-auth-token", sess)
	if r.status != 200 || len(r.items()) != 1 {
		a.t.Fatalf("POST admins/api-tokens %s: %d %s", user, r.status, r.raw)
	}
	return r.items()[0]
}

// secretOf is the token of an AdminApiToken item.
func secretOf(item map[string]any) string {
	tok, _ := item["api_token"].(map[string]any)
	s, _ := tok["token"].(string)
	return s
}

// loginAs opens a session with an API token and returns its x-auth-token.
func (a *testArray) loginAs(apiToken string) string {
	a.t.Helper()
	r := a.must("POST", a.loginPath(), "", "api-token", apiToken)
	tok := r.header.Get("x-auth-token")
	if r.status != 200 || tok == "" {
		a.t.Fatalf("login: %d %s", r.status, r.raw)
	}
	return tok
}

func (a *testArray) user(name string) (User, bool) {
	for _, u := range a.emu.Users() {
		if u.Name == name {
			return u, true
		}
	}
	return User{}, false
}

// sshEd25519 is an OpenSSH public key line.
func sshEd25519(t *testing.T) string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var blob []byte
	for _, part := range [][]byte{[]byte("ssh-ed25519"), pub} {
		blob = binary.BigEndian.AppendUint32(blob, uint32(len(part)))
		blob = append(blob, part...)
	}
	return "ssh-ed25519 " + base64.StdEncoding.EncodeToString(blob) + " vault@test"
}

// ---- the life of a user ---------------------------------------------------------

// A user's life on each kind, as the engine will live it: created with a
// role, given a token with a timeout, the token logs in with the user's
// role (arrays yes, admin calls no for a readonly user), listed masked,
// deleted with its token: the token, its sessions and the user's OAuth
// tokens stop working, the user is gone from every list.
func TestAdminLifecycle(t *testing.T) {
	for _, kind := range kindsUnderTest {
		t.Run(kind, func(t *testing.T) {
			a := newArray(t, kind)
			fb := kind == FlashBlade
			sess := a.login()
			key := ""
			if fb {
				key = sshEd25519(t)
			}
			over := map[string]any{}
			if fb {
				over["public_key"] = key
			}
			r := a.must("POST", a.ver()+"/admins?names=vault-ro-1", adminBody("readonly", over), "x-auth-token", sess)
			if r.status != 200 || len(r.items()) != 1 {
				t.Fatalf("POST admins: %d %s", r.status, r.raw)
			}
			created := r.items()[0]
			role, _ := created["role"].(map[string]any)
			id, hasID := created["id"].(string)
			if created["name"] != "vault-ro-1" || role["name"] != "readonly" || created["is_local"] != true || created["locked"] != false ||
				created["api_token"] != nil || hasID != fb || (fb && created["public_key"] != key) || strings.Contains(r.raw, "s3cret") {
				t.Errorf("created: %s; want the Admin model of a %s (id only on a FlashBlade), no password", r.raw, kind)
			}

			// The token: shown once, expiring timeout ms after its creation.
			before := a.clk.Now().UnixMilli()
			item := a.newToken(sess, "vault-ro-1", 3600000)
			secret := secretOf(item)
			tok := item["api_token"].(map[string]any)
			if fb {
				ref, _ := item["admin"].(map[string]any)
				if ref["name"] != "vault-ro-1" || ref["id"] != id || ref["resource_type"] != "admins" || item["name"] != nil {
					t.Errorf("a FlashBlade's AdminApiToken names its admin as a reference: %v", item)
				}
			} else if item["name"] != "vault-ro-1" || item["admin"] != nil {
				t.Errorf("a FlashArray's AdminApiToken has name: %v", item)
			}
			if created, expires := int64(tok["created_at"].(float64)), int64(tok["expires_at"].(float64)); created != before || expires != before+3600000 {
				t.Errorf("created_at %d, expires_at %d; want %d and 1h later", created, expires, before)
			}
			if prefix := map[bool]string{true: "T-", false: ""}[fb]; !strings.HasPrefix(secret, prefix) || len(secret) != len(prefix)+36 || secret == a.emu.APIToken() {
				t.Errorf("token %q: want a new %s-prefixed UUID", secret, prefix)
			}

			// Listed masked, to anyone; its own user sees it with expose.
			r = a.must("GET", a.tokensPath(""), "", "x-auth-token", sess)
			if its := r.items(); r.status != 200 || len(its) != 2 || secretOf(its[0]) != maskedToken || secretOf(its[1]) != maskedToken || strings.Contains(r.raw, secret) {
				t.Errorf("GET api-tokens: %s; want pureuser's and vault-ro-1's, masked", r.raw)
			}
			r = a.must("GET", a.tokensPath("expose_api_token=true"), "", "x-auth-token", sess)
			if its := r.items(); len(its) != 2 || secretOf(its[0]) != a.emu.APIToken() || secretOf(its[1]) != maskedToken {
				t.Errorf("GET api-tokens?expose_api_token=true as pureuser: %s; want pureuser's own shown only", r.raw)
			}
			r = a.must("GET", a.ver()+"/admins?names=vault-ro-1", "", "x-auth-token", sess)
			if its := r.items(); r.status != 200 || len(its) != 1 || secretOf(its[0]) != maskedToken {
				t.Errorf("GET admins?names=: %s; want the user with its token masked", r.raw)
			}

			// The token logs in as its user, with its role.
			r = a.must("POST", a.loginPath(), "", "api-token", secret)
			ro := r.header.Get("x-auth-token")
			if r.status != 200 || ro == "" || !strings.Contains(r.raw, `"username":"vault-ro-1"`) {
				t.Fatalf("login with the user's token: %d %s", r.status, r.raw)
			}
			if r := a.must("GET", a.ver()+"/arrays", "", "x-auth-token", ro); r.status != 200 {
				t.Errorf("a readonly session's GET arrays: %d %s", r.status, r.raw)
			}
			if r := a.must("GET", a.ver()+"/admins", "", "x-auth-token", ro); r.status != 200 || len(r.items()) != 3 || strings.Contains(r.raw, "locked") {
				t.Errorf("a readonly session's GET admins: %d %s; want 3 users, locked not shown", r.status, r.raw)
			}
			for _, tc := range []struct{ method, path, body, msg string }{
				{"POST", a.ver() + "/admins?names=x", adminBody("readonly", nil), "creating users needs the array_admin role; this session's user vault-ro-1 has role readonly"},
				{"DELETE", a.ver() + "/admins?names=ops", "", "deleting users needs the array_admin role"},
				{"POST", a.tokensPath(a.sel("ops")), "", "creating the API token of another user needs the array_admin role"},
				{"DELETE", a.tokensPath(a.sel(adminUser)), "", "deleting the API token of another user needs the array_admin role"},
				{"POST", a.ver() + "/api-clients?names=" + a.clientName("c-1"), createBodyFor(a, nil), "managing API clients needs the array_admin role; this session's user vault-ro-1 has role readonly"},
			} {
				r := a.must(tc.method, tc.path, tc.body, "x-auth-token", ro)
				if r.status != 403 || !strings.Contains(r.message(), tc.msg) || r.body["message"] == nil {
					t.Errorf("readonly %s %s: %d %s, want 403 %q", tc.method, tc.path, r.status, r.raw, tc.msg)
				}
			}
			// ...but manages its own token.
			if r := a.must("POST", a.tokensPath(a.sel("vault-ro-1")), "", "x-auth-token", ro); r.status != 400 || !strings.Contains(r.message(), "already has an API token") {
				t.Errorf("a second token of its own: %d %s, want 400", r.status, r.raw)
			}
			if r := a.must("GET", a.tokensPath("expose_api_token=true"), "", "x-auth-token", ro); len(r.items()) != 2 || !strings.Contains(r.raw, secret) || strings.Contains(r.raw, a.emu.APIToken()) {
				t.Errorf("expose as vault-ro-1: %s; want its own token only", r.raw)
			}

			// An API client whose JWTs name the user (sub) works while it lives.
			c := a.create(sess, a.clientName("vault-sub"), keyOne(), "readonly")
			a.enable(sess, a.clientName("vault-sub"))
			jwtSub := jwtFor(t, c["key_id"].(string), c["id"].(string), "iss", "vault-ro-1", keyOne(), a.clk.Now())
			ex := a.exchange(jwtSub)
			access, _ := ex.body["access_token"].(string)
			if ex.status != 200 || access == "" {
				t.Fatalf("exchange with sub vault-ro-1: %d %s", ex.status, ex.raw)
			}

			// Delete the user: everything of it stops.
			if st := a.emu.Stats(); st.Users != 3 || st.UsersCreated != 1 || st.APITokensCreated != 1 || st.LoginsByUser["vault-ro-1"] != 1 || st.LoginsByUser[adminUser] != 1 {
				t.Errorf("stats before the delete: %+v", st)
			}
			if r := a.must("DELETE", a.ver()+"/admins?names=vault-ro-1", "", "x-auth-token", sess); r.status != 200 || r.raw != "" {
				t.Fatalf("DELETE admins: %d %q, want 200 and no body", r.status, r.raw)
			}
			if r := a.must("POST", a.loginPath(), "", "api-token", secret); r.status != 401 || r.message() != "Invalid api-token." {
				t.Errorf("login with a deleted user's token: %d %s", r.status, r.raw)
			}
			if r := a.must("GET", a.ver()+"/arrays", "", "x-auth-token", ro); r.status != 401 {
				t.Errorf("the deleted user's session: %d, want 401", r.status)
			}
			if r := a.exchange(jwtSub); r.status != 401 || !strings.Contains(r.message(), "sub names no user") {
				t.Errorf("a JWT naming the deleted user: %d %s", r.status, r.raw)
			}
			if r := a.must("GET", a.ver()+"/arrays", "", "Authorization", "Bearer "+access); r.status != 401 || !strings.Contains(r.message(), "user is gone") {
				t.Errorf("the deleted user's access token: %d %s", r.status, r.raw)
			}
			if r := a.must("GET", a.ver()+"/admins?names=vault-ro-1", "", "x-auth-token", sess); r.status != 400 || r.message() != "User does not exist." {
				t.Errorf("GET admins of the deleted user: %d %s", r.status, r.raw)
			}
			if r := a.must("GET", a.ver()+"/admins", "", "x-auth-token", sess); strings.Contains(r.raw, "vault-ro-1") || len(r.items()) != 2 {
				t.Errorf("GET admins after the delete: %s", r.raw)
			}
			if r := a.must("GET", a.tokensPath(""), "", "x-auth-token", sess); len(r.items()) != 1 {
				t.Errorf("GET api-tokens after the delete: %s; want pureuser's only", r.raw)
			}
			if _, ok := a.user("vault-ro-1"); ok {
				t.Errorf("Users() still lists vault-ro-1: %+v", a.emu.Users())
			}
			st := a.emu.Stats()
			if st.Users != 2 || st.UsersDeleted != 1 || st.APITokensDeleted != 1 || st.OpenSessions != 1 || st.SessionsEndedByUserDelete != 1 {
				t.Errorf("stats after the delete: %+v", st)
			}
		})
	}
}

// A FlashBlade names users by id too (ids=, admin_ids=); a FlashArray
// takes neither.
func TestAdminIDs(t *testing.T) {
	fb := newArray(t, FlashBlade)
	sess := fb.login()
	id := fb.addUser(sess, "vault-id", "ops_admin")["id"].(string)
	if r := fb.must("GET", fb.ver()+"/admins?ids="+id, "", "x-auth-token", sess); r.status != 200 || len(r.items()) != 1 || r.items()[0]["name"] != "vault-id" {
		t.Errorf("GET admins?ids=: %d %s", r.status, r.raw)
	}
	if r := fb.must("POST", fb.tokensPath("admin_ids="+id), "", "x-auth-token", sess); r.status != 200 || r.items()[0]["admin"].(map[string]any)["name"] != "vault-id" {
		t.Errorf("POST api-tokens?admin_ids=: %d %s", r.status, r.raw)
	}
	if r := fb.must("GET", fb.ver()+"/admins?ids="+id+"&names=vault-id", "", "x-auth-token", sess); r.status != 400 || !strings.Contains(r.message(), "cannot be set together") {
		t.Errorf("ids and names: %d %s", r.status, r.raw)
	}
	if r := fb.must("DELETE", fb.ver()+"/admins?ids="+id, "", "x-auth-token", sess); r.status != 200 {
		t.Errorf("DELETE admins?ids=: %d %s", r.status, r.raw)
	}
	if _, ok := fb.user("vault-id"); ok || fb.emu.Stats().APITokensDeleted != 1 {
		t.Errorf("after DELETE by id: users %+v, stats %+v", fb.emu.Users(), fb.emu.Stats())
	}

	fa := newArray(t, FlashArray)
	sess = fa.login()
	fa.addUser(sess, "vault-id", "ops_admin")
	for _, path := range []string{"/admins?ids=x", "/admins/api-tokens?admin_names=vault-id", "/admins/api-tokens?admin_ids=x"} {
		if r := fa.must("GET", fa.ver()+path, "", "x-auth-token", sess); r.status != 400 || !strings.Contains(r.message(), "Unknown query parameter") {
			t.Errorf("FlashArray GET %s: %d %s, want 400 unknown parameter", path, r.status, r.raw)
		}
	}
	if r := fa.must("GET", fa.ver()+"/admins?names=vault-id", "", "x-auth-token", sess); r.items()[0]["id"] != nil {
		t.Errorf("a FlashArray's Admin has no id: %s", r.raw)
	}
	fbSess := fb.login()
	if r := fb.must("GET", fb.tokensPath("names=pureuser"), "", "x-auth-token", fbSess); r.status != 400 || !strings.Contains(r.message(), "admin_names") {
		t.Errorf("FlashBlade api-tokens?names=: %d %s, want 400 naming admin_names", r.status, r.raw)
	}
}

// Token expiry: timeout in ms; 0 or none never expires; an expired token is
// refused at login (and counted), stays listed, and still blocks a new one
// until deleted; a session opened before the expiry lives on.
func TestAPITokenExpiry(t *testing.T) {
	for _, kind := range kindsUnderTest {
		t.Run(kind, func(t *testing.T) {
			a := newArray(t, kind)
			sess := a.login()
			for _, u := range []string{"short", "zero", "none"} {
				a.addUser(sess, u, "storage_admin")
			}
			short := secretOf(a.newToken(sess, "short", 1000))
			zero := a.newToken(sess, "zero", 0)
			none := a.newToken(sess, "none", -1)
			for _, it := range []map[string]any{zero, none} {
				if tok := it["api_token"].(map[string]any); tok["expires_at"] != nil {
					t.Errorf("a token without timeout: expires_at %v, want null", tok["expires_at"])
				}
			}
			early := a.loginAs(short)
			a.clk.Add(999 * time.Millisecond)
			a.loginAs(short)
			a.clk.Add(time.Millisecond)
			if r := a.must("POST", a.loginPath(), "", "api-token", short); r.status != 401 || !strings.Contains(r.message(), "has expired") {
				t.Errorf("login with an expired token: %d %s", r.status, r.raw)
			}
			if r := a.must("GET", a.ver()+"/arrays", "", "x-auth-token", early); r.status != 200 {
				t.Errorf("a session opened before the expiry: %d", r.status)
			}
			a.clk.Add(50 * 365 * 24 * time.Hour)
			a.loginAs(secretOf(zero))
			a.loginAs(secretOf(none))
			if u, _ := a.user("short"); !u.HasAPIToken || !u.APITokenExpired || u.APITokenExpiresAt != u.APITokenCreatedAt+1000 {
				t.Errorf("Users() of the expired token: %+v", u)
			}
			if u, _ := a.user("zero"); !u.HasAPIToken || u.APITokenExpired || u.APITokenExpiresAt != 0 {
				t.Errorf("Users() of a token that never expires: %+v", u)
			}
			if r := a.must("POST", a.tokensPath(a.sel("short")+"&timeout=1000"), "", "x-auth-token", sess); r.status != 400 || !strings.Contains(r.message(), "already has an API token") {
				t.Errorf("a new token over an expired one: %d %s, want 400", r.status, r.raw)
			}
			a.must("DELETE", a.tokensPath(a.sel("short")), "", "x-auth-token", sess)
			if fresh := secretOf(a.newToken(sess, "short", 60000)); fresh == short {
				t.Errorf("the new token is the old one")
			} else {
				a.loginAs(fresh)
			}
			if st := a.emu.Stats(); st.ExpiredTokenLogins != 1 || st.APITokensCreated != 4 || st.APITokensDeleted != 1 {
				t.Errorf("stats: %+v; want 1 expired login, 4 tokens created, 1 deleted", st)
			}
		})
	}
}

// ---- refusals -----------------------------------------------------------------

// Every refusal of POST admins, on each kind: status, message, context,
// and no user made.
func TestAdminsPostRefusals(t *testing.T) {
	for _, kind := range kindsUnderTest {
		t.Run(kind, func(t *testing.T) {
			a := newArray(t, kind)
			fb := kind == FlashBlade
			sess := a.login()
			a.addUser(sess, "ro", "readonly")
			ro := a.loginAs(secretOf(a.newToken(sess, "ro", -1)))
			path := func(name string) string { return a.ver() + "/admins?names=" + name }
			type tc struct {
				name, path, body string
				hdr              []string
				want             int
				context, msg     string
			}
			cases := []tc{
				{"no credentials", path("x"), adminBody("readonly", nil), nil, 401, "", "Authentication required"},
				{"a readonly session", path("x"), adminBody("readonly", nil), []string{"x-auth-token", ro}, 403, "role", "needs the array_admin role"},
				{"no names", a.ver() + "/admins", adminBody("readonly", nil), nil, 400, "names", "names parameter is required"},
				{"two names", path("x,y"), adminBody("readonly", nil), nil, 400, "names", "one user per request"},
				{"an unknown parameter", path("x") + "&role=readonly", adminBody("readonly", nil), nil, 400, "role", "Unknown query parameter role"},
				{"upper case", path("Vault"), adminBody("readonly", nil), nil, 400, "Vault", "Invalid user name"},
				{"a leading dash", path("-vault"), adminBody("readonly", nil), nil, 400, "-vault", "Invalid user name"},
				{"a trailing dash", path("vault-"), adminBody("readonly", nil), nil, 400, "vault-", "Invalid user name"},
				{"an underscore", path("vault_x"), adminBody("readonly", nil), nil, 400, "vault_x", "1 to 32 lowercase letters, digits and '-'"},
				{"a dot", path("vault.x"), adminBody("readonly", nil), nil, 400, "vault.x", "Invalid user name"},
				{"33 characters", path(strings.Repeat("a", 33)), adminBody("readonly", nil), nil, 400, strings.Repeat("a", 33), "Invalid user name"},
				{"pureuser", path("pureuser"), adminBody("readonly", nil), nil, 400, "pureuser", "is reserved"},
				{"root", path("root"), adminBody("readonly", nil), nil, 400, "root", "is reserved"},
				{"a taken name", path("ops"), adminBody("readonly", nil), nil, 400, "ops", "Name already in use."},
				{"no content type", path("x"), adminBody("readonly", nil), []string{"Content-Type", ""}, 415, "Content-Type", "application/json"},
				{"an empty body", path("x"), "", []string{"Content-Type", "application/json"}, 400, "", "The body is empty"},
				{"not an object", path("x"), `["x"]`, nil, 400, "", "Invalid body"},
				{"trailing data", path("x"), adminBody("readonly", nil) + "{}", nil, 400, "", "data after"},
				{"an unknown field", path("x"), adminBody("readonly", map[string]any{"old_password": "x"}), nil, 400, "old_password", "unknown field \"old_password\""},
				{"no password", path("x"), adminBody("readonly", map[string]any{"password": nil}), nil, 400, "password", "password is required"},
				{"an empty password", path("x"), adminBody("readonly", map[string]any{"password": ""}), nil, 400, "password", "password is required"},
				{"a number for a password", path("x"), adminBody("readonly", map[string]any{"password": 7}), nil, 400, "password", "password is required"},
				{"no role", path("x"), adminBody("readonly", map[string]any{"role": nil}), nil, 400, "role", "role is required"},
				{"a null role", path("x"), adminBody("readonly", map[string]any{"role": json.RawMessage("null")}), nil, 400, "role", "role is required"},
				{"a string role", path("x"), adminBody("readonly", map[string]any{"role": "readonly"}), nil, 400, "role", "role is a reference on a"},
				{"a role naming none", path("x"), adminBody("readonly", map[string]any{"role": map[string]any{}}), nil, 400, "role", "role names no role"},
				{"an unknown role", path("x"), adminBody("superuser", nil), nil, 400, "role", "role \"superuser\" is not a role"},
				{"an unknown role field", path("x"), adminBody("readonly", map[string]any{"role": map[string]any{"name": "readonly", "level": 1}}), nil, 400, "role", "unknown field \"level\""},
			}
			if fb {
				cases = append(cases,
					tc{"a role of another type", path("x"), adminBody("readonly", map[string]any{"role": map[string]any{"name": "readonly", "resource_type": "admins"}}), nil, 400, "role", "resource_type roles"},
					tc{"a public key that is no key", path("x"), adminBody("readonly", map[string]any{"public_key": "nope"}), nil, 400, "public_key", "not an OpenSSH public key"},
					tc{"a DSA key", path("x"), adminBody("readonly", map[string]any{"public_key": "ssh-dss AAAAB3NzaC1kc3M="}), nil, 400, "public_key", "Ed25519"},
					tc{"a key whose blob lies", path("x"), adminBody("readonly", map[string]any{"public_key": "ssh-rsa " + strings.Fields(sshEd25519(t))[1]}), nil, 400, "public_key", "not a ssh-rsa key"},
					tc{"a number for a public key", path("x"), adminBody("readonly", map[string]any{"public_key": 1}), nil, 400, "public_key", "must be a string"},
					tc{"management_access_policies", path("x"), adminBody("readonly", map[string]any{"management_access_policies": []any{}}), nil, 400, "management_access_policies", "takes password, public_key, role"},
				)
			} else {
				cases = append(cases,
					tc{"a role with an id", path("x"), adminBody("readonly", map[string]any{"role": map[string]any{"name": "readonly", "id": "r"}}), nil, 400, "role", "role takes only name on a FlashArray"},
					tc{"a public key", path("x"), adminBody("readonly", map[string]any{"public_key": sshEd25519(t)}), nil, 400, "public_key", "takes password, role"},
					tc{"management_access_policies at 2.30", path("x"), adminBody("readonly", map[string]any{"management_access_policies": []any{map[string]string{"name": "p"}}}), nil, 400, "management_access_policies", "came with REST 2.36"},
				)
			}
			for _, c := range cases {
				hdr := append([]string{"x-auth-token", sess}, c.hdr...)
				if c.want == 401 {
					hdr = nil
				}
				r := a.must("POST", c.path, c.body, hdr...)
				if r.status != c.want || !strings.Contains(r.message(), c.msg) || (c.want != 401 && r.context() != c.context) {
					t.Errorf("%s: %d %s, want %d %q with context %q", c.name, r.status, r.raw, c.want, c.msg, c.context)
				}
			}
			if st := a.emu.Stats(); st.Users != 3 || st.UsersCreated != 1 || st.Refused[StepAdminsPost] != len(cases) {
				t.Errorf("after the refusals: %d users, %d created, %d refused; want 3, 1, %d", st.Users, st.UsersCreated, st.Refused[StepAdminsPost], len(cases))
			}
		})
	}
}

// At the user limit, a create is refused with 400 and the limit; a delete
// makes room.
func TestUserLimit(t *testing.T) {
	a := newArray(t, FlashArray, func(o *Options) { o.MaxUsers = 4 })
	sess := a.login()
	a.addUser(sess, "u1", "readonly")
	a.addUser(sess, "u2", "readonly")
	r := a.must("POST", a.ver()+"/admins?names=u3", adminBody("readonly", nil), "x-auth-token", sess)
	if r.status != 400 || !strings.Contains(r.message(), "limit of 4 local users") || r.context() != "u3" {
		t.Errorf("over the limit: %d %s", r.status, r.raw)
	}
	a.must("DELETE", a.ver()+"/admins?names=u1", "", "x-auth-token", sess)
	a.addUser(sess, "u3", "readonly")
	if st := a.emu.Stats(); st.Users != 4 {
		t.Errorf("users %d, want 4", st.Users)
	}
	for _, tc := range []struct {
		opts Options
		msg  string
	}{
		{Options{Users: []string{"pureuser", "ops", "x"}, MaxUsers: 2}, "fewer than the 3 users"},
		{Options{Users: []string{"Ops"}}, "local user name"},
	} {
		if _, err := New(tc.opts); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("New(%+v): %v, want %q", tc.opts, err, tc.msg)
		}
	}
}

// Every refusal of DELETE admins: all or none.
func TestAdminsDeleteRefusals(t *testing.T) {
	for _, kind := range kindsUnderTest {
		t.Run(kind, func(t *testing.T) {
			a := newArray(t, kind)
			sess := a.login()
			a.addUser(sess, "adm2", "array_admin")
			adm2 := a.loginAs(secretOf(a.newToken(sess, "adm2", -1)))
			a.addUser(sess, "ro", "readonly")
			ro := a.loginAs(secretOf(a.newToken(sess, "ro", -1)))
			for _, tc := range []struct {
				name, query, session string
				want                 int
				msg                  string
			}{
				{"no selector", "", sess, 400, "parameter is required"},
				{"an empty names", "names=", sess, 400, "given empty"},
				{"an unknown user, all or none", "names=ops,nobody2", sess, 400, "User does not exist."},
				{"the built-in user", "names=pureuser", sess, 400, "The built-in user pureuser cannot be deleted."},
				{"itself", "names=adm2", adm2, 400, "A user cannot delete itself"},
				{"a readonly session", "names=ops", ro, 403, "deleting users needs the array_admin role"},
				{"an unknown parameter", "names=ops&force=true", sess, 400, "Unknown query parameter force"},
			} {
				r := a.must("DELETE", a.ver()+"/admins?"+tc.query, "", "x-auth-token", tc.session)
				if r.status != tc.want || !strings.Contains(r.message(), tc.msg) {
					t.Errorf("%s: %d %s, want %d %q", tc.name, r.status, r.raw, tc.want, tc.msg)
				}
			}
			if st := a.emu.Stats(); st.Users != 4 || st.UsersDeleted != 0 {
				t.Errorf("refused deletes deleted: %+v", st)
			}
			if r := a.must("PATCH", a.ver()+"/admins?names=ops", `{"role":{"name":"readonly"}}`, "x-auth-token", sess); r.status != 405 {
				t.Errorf("PATCH admins: %d, want 405 (not played)", r.status)
			}
			// Another array_admin deletes adm2, whose session ends.
			if r := a.must("DELETE", a.ver()+"/admins?names=adm2,ro", "", "x-auth-token", sess); r.status != 200 {
				t.Fatalf("DELETE two users: %d %s", r.status, r.raw)
			}
			if r := a.must("GET", a.ver()+"/arrays", "", "x-auth-token", adm2); r.status != 401 {
				t.Errorf("a deleted user's session: %d", r.status)
			}
			if r := a.must("POST", a.logoutPath(), "", "x-auth-token", adm2); r.status != 401 {
				t.Errorf("logging out a deleted user's session: %d, want 401 (it is gone)", r.status)
			}
			if st := a.emu.Stats(); st.Users != 2 || st.UsersDeleted != 2 || st.APITokensDeleted != 2 || st.OpenSessions != 1 || st.SessionsEndedByUserDelete != 2 {
				t.Errorf("after deleting two users: %+v", st)
			}
		})
	}
}

// Every refusal of the api-tokens endpoints, on each kind.
func TestAPITokensRefusals(t *testing.T) {
	for _, kind := range kindsUnderTest {
		t.Run(kind, func(t *testing.T) {
			a := newArray(t, kind)
			fb := kind == FlashBlade
			sess := a.login()
			a.addUser(sess, "ro", "readonly")
			ro := a.loginAs(secretOf(a.newToken(sess, "ro", -1)))
			a.addUser(sess, "bare", "readonly")
			selKey, wrongKey := "names", "admin_names"
			if fb {
				selKey, wrongKey = "admin_names", "names"
			}
			for _, tc := range []struct {
				name, method, query, session string
				want                         int
				msg                          string
			}{
				{"POST without a selector", "POST", "timeout=1000", sess, 400, "The " + selKey},
				{"POST with the other kind's selector", "POST", wrongKey + "=ro", sess, 400, "Unknown query parameter " + wrongKey},
				{"POST for an unknown user", "POST", a.sel("nobody2"), sess, 400, "User does not exist."},
				{"POST a second token", "POST", a.sel("ro"), sess, 400, "already has an API token"},
				{"POST, all or none", "POST", a.sel("bare", "ro"), sess, 400, "already has an API token"},
				{"a negative timeout", "POST", a.sel("bare") + "&timeout=-1", sess, 400, "timeout must be an integer"},
				{"a timeout in words", "POST", a.sel("bare") + "&timeout=1h", sess, 400, "timeout must be an integer"},
				{"a timeout past a century", "POST", a.sel("bare") + "&timeout=4000000000000", sess, 400, "timeout must be an integer"},
				{"timeout twice", "POST", a.sel("bare") + "&timeout=1&timeout=2", sess, 400, "given 2 times"},
				{"POST another user's as readonly", "POST", a.sel("bare"), ro, 403, "creating the API token of another user"},
				{"GET with a bad expose_api_token", "GET", "expose_api_token=yes", sess, 400, "expose_api_token must be true or false"},
				{"GET with a filter", "GET", "filter=name='ro'", sess, 400, "not implemented by the emulator"},
				{"GET with a continuation token", "GET", "continuation_token=x", sess, 400, "Invalid continuation_token"},
				{"GET a negative limit", "GET", "limit=-1", sess, 400, "limit must be a non-negative integer"},
				{"GET an unknown user", "GET", a.sel("nobody2"), sess, 400, "User does not exist."},
				{"DELETE without a selector", "DELETE", "", sess, 400, "The " + selKey},
				{"DELETE for an unknown user", "DELETE", a.sel("nobody2"), sess, 400, "User does not exist."},
				{"DELETE another user's as readonly", "DELETE", a.sel("bare"), ro, 403, "deleting the API token of another user"},
				{"DELETE with a timeout", "DELETE", a.sel("ro") + "&timeout=1", sess, 400, "Unknown query parameter timeout"},
			} {
				r := a.must(tc.method, a.tokensPath(tc.query), "", "x-auth-token", tc.session)
				if r.status != tc.want || !strings.Contains(r.message(), tc.msg) {
					t.Errorf("%s: %d %s, want %d %q", tc.name, r.status, r.raw, tc.want, tc.msg)
				}
			}
			if u, _ := a.user("bare"); u.HasAPIToken {
				t.Errorf("a refused POST made bare a token")
			}
			if u, _ := a.user("ro"); !u.HasAPIToken {
				t.Errorf("a refused DELETE took ro's token")
			}
			if r := a.must("PATCH", a.tokensPath(a.sel("ro")), "{}", "x-auth-token", sess); r.status != 405 {
				t.Errorf("PATCH api-tokens: %d, want 405", r.status)
			}
			// A user without a token: deleting "its token" is no error (Pure's
			// Ansible modules delete before they create), and it lists nothing.
			if r := a.must("DELETE", a.tokensPath(a.sel("bare")), "", "x-auth-token", sess); r.status != 200 {
				t.Errorf("DELETE the token of a user without one: %d %s, want 200", r.status, r.raw)
			}
			if r := a.must("GET", a.tokensPath(a.sel("bare")), "", "x-auth-token", sess); r.status != 200 || len(r.items()) != 0 {
				t.Errorf("GET the token of a user without one: %d %s, want no items", r.status, r.raw)
			}
			// Paging: offset and limit over the holders, by name.
			paging := "offset=1&limit=1"
			if !fb {
				paging += "&total_item_count=true" // a FlashBlade always counts, and takes no such parameter
			}
			r := a.must("GET", a.tokensPath(paging), "", "x-auth-token", sess)
			total, _ := r.body["total_item_count"].(float64)
			if its := r.items(); r.status != 200 || len(its) != 1 || total != 2 || (!fb && r.body["more_items_remaining"] != false) {
				t.Errorf("paging api-tokens: %d %s", r.status, r.raw)
			}
			if st := a.emu.Stats(); st.APITokensDeleted != 0 || st.APITokensCreated != 1 {
				t.Errorf("stats: %+v", st)
			}
		})
	}
}

// GET admins: lists, selectors and paging, per kind.
func TestGetAdmins(t *testing.T) {
	for _, kind := range kindsUnderTest {
		t.Run(kind, func(t *testing.T) {
			a := newArray(t, kind)
			sess := a.login()
			a.addUser(sess, "b-user", "ops_admin")
			a.addUser(sess, "a-user", "storage_admin")
			names := func(r reply) string {
				var out []string
				for _, it := range r.items() {
					out = append(out, it["name"].(string))
				}
				return strings.Join(out, ",")
			}
			r := a.must("GET", a.ver()+"/admins", "", "x-auth-token", sess)
			if r.status != 200 || names(r) != "a-user,b-user,ops,pureuser" {
				t.Errorf("GET admins: %s", r.raw)
			}
			if kind == FlashArray && (r.body["total_item_count"] != nil || r.body["more_items_remaining"] != false) {
				t.Errorf("FlashArray list fields: %s", r.raw)
			}
			if kind == FlashBlade && (r.body["total_item_count"] != float64(4) || r.body["more_items_remaining"] != nil) {
				t.Errorf("FlashBlade list fields: %s", r.raw)
			}
			if r := a.must("GET", a.ver()+"/admins?names=pureuser,a-user", "", "x-auth-token", sess); names(r) != "a-user,pureuser" {
				t.Errorf("GET admins?names=: %s", r.raw)
			}
			if r := a.must("GET", a.ver()+"/admins?offset=1&limit=2", "", "x-auth-token", sess); names(r) != "b-user,ops" {
				t.Errorf("GET admins?offset=1&limit=2: %s", r.raw)
			}
			if r := a.must("GET", a.ver()+"/admins?names=a-user,nobody2,nobody3", "", "x-auth-token", sess); r.status != 400 || len(r.body["errors"].([]any)) != 2 {
				t.Errorf("GET admins of two unknown users: %d %s, want an error each", r.status, r.raw)
			}
			if r := a.must("GET", a.ver()+"/admins?sort=name", "", "x-auth-token", sess); r.status != 400 {
				t.Errorf("GET admins?sort=: %d", r.status)
			}
			if r := a.must("GET", a.ver()+"/admins", ""); r.status != 401 {
				t.Errorf("GET admins without credentials: %d", r.status)
			}
			if r := a.must("GET", a.ver()+"/admins/cache", "", "x-auth-token", sess); r.status != 404 {
				t.Errorf("GET admins/cache: %d, want 404 (not played)", r.status)
			}
			r = a.must("GET", a.ver()+"/admins?names=pureuser&expose_api_token=true", "", "x-auth-token", sess)
			if secretOf(r.items()[0]) != a.emu.APIToken() {
				t.Errorf("pureuser's own token with expose_api_token: %s", r.raw)
			}
		})
	}
}

// pureuser's token is a token like any other: replaced through the API,
// the old one stops logging in and APIToken names the new one.
func TestPureuserToken(t *testing.T) {
	a := newArray(t, FlashBlade)
	sess := a.login()
	old := a.emu.APIToken()
	if r := a.must("DELETE", a.tokensPath(a.sel(adminUser)), "", "x-auth-token", sess); r.status != 200 || a.emu.APIToken() != "" {
		t.Fatalf("DELETE pureuser's token: %d %s, APIToken %q", r.status, r.raw, a.emu.APIToken())
	}
	fresh := secretOf(a.newToken(sess, adminUser, 0))
	if fresh != a.emu.APIToken() || !strings.HasPrefix(fresh, "T-") {
		t.Errorf("APIToken %q, want the new %q", a.emu.APIToken(), fresh)
	}
	if r := a.must("POST", a.loginPath(), "", "api-token", old); r.status != 401 {
		t.Errorf("the replaced token: %d", r.status)
	}
	a.loginAs(fresh)
}

// The admin API lists users without a secret.
func TestUsersAdminAPI(t *testing.T) {
	a := newArray(t, FlashArray)
	sess := a.login()
	a.addUser(sess, "vault-x", "ops_admin")
	secret := secretOf(a.newToken(sess, "vault-x", 60000))
	r := a.must("GET", UsersPath, "")
	if r.status != 200 || strings.Contains(r.raw, secret) || strings.Contains(r.raw, a.emu.APIToken()) || strings.Contains(r.raw, "s3cret") {
		t.Fatalf("GET %s: %d %s; want no secret", UsersPath, r.status, r.raw)
	}
	its := r.items()
	if len(its) != 3 || its[2]["name"] != "vault-x" || its[2]["role"] != "ops_admin" || its[2]["has_api_token"] != true || its[2]["builtin"] != false ||
		its[2]["api_token_expires_at"].(float64)-its[2]["api_token_created_at"].(float64) != 60000 || its[1]["name"] != adminUser || its[1]["builtin"] != true {
		t.Errorf("users: %s", r.raw)
	}
	if r := a.must("DELETE", UsersPath, ""); r.status != 405 {
		t.Errorf("DELETE %s: %d", UsersPath, r.status)
	}
	if r := a.must("GET", "/emulator/nope", ""); !strings.Contains(r.raw, UsersPath) {
		t.Errorf("the admin API's 404 does not name %s: %s", UsersPath, r.raw)
	}
}

// ---- faults -------------------------------------------------------------------

// Every fault mode at every admins step: what the client sees, and whether
// the change was made.
func TestAdminFaults(t *testing.T) {
	type step struct {
		step  string
		setup func(a *testArray, sess string)
		act   func(a *testArray, sess string, within time.Duration) (reply, error)
		// applied reports whether the call's change was made; nil for a GET.
		applied func(a *testArray) bool
	}
	do := func(method string, path func(a *testArray) string, body func(a *testArray) string) func(a *testArray, sess string, within time.Duration) (reply, error) {
		return func(a *testArray, sess string, within time.Duration) (reply, error) {
			b := ""
			if body != nil {
				b = body(a)
			}
			return a.doWithin(within, method, path(a), b, "x-auth-token", sess)
		}
	}
	has := func(name string) func(a *testArray) bool {
		return func(a *testArray) bool { _, ok := a.user(name); return ok }
	}
	hasToken := func(name string) func(a *testArray) bool {
		return func(a *testArray) bool { u, _ := a.user(name); return u.HasAPIToken }
	}
	steps := []step{
		{StepAdminsGet, nil, do("GET", func(a *testArray) string { return a.ver() + "/admins" }, nil), nil},
		{StepAdminsPost, nil, do("POST", func(a *testArray) string { return a.ver() + "/admins?names=vault-f" },
			func(*testArray) string { return adminBody("readonly", nil) }), has("vault-f")},
		{StepAdminsDelete, func(a *testArray, sess string) { a.addUser(sess, "vault-f", "readonly") },
			do("DELETE", func(a *testArray) string { return a.ver() + "/admins?names=vault-f" }, nil),
			func(a *testArray) bool { return !has("vault-f")(a) }},
		{StepAPITokensPost, func(a *testArray, sess string) { a.addUser(sess, "vault-f", "readonly") },
			do("POST", func(a *testArray) string { return a.tokensPath(a.sel("vault-f") + "&timeout=60000") }, nil), hasToken("vault-f")},
		{StepAPITokensGet, nil, do("GET", func(a *testArray) string { return a.tokensPath("") }, nil), nil},
		{StepAPITokensDelete, func(a *testArray, sess string) {
			a.addUser(sess, "vault-f", "readonly")
			a.newToken(sess, "vault-f", 0)
		},
			do("DELETE", func(a *testArray) string { return a.tokensPath(a.sel("vault-f")) }, nil),
			func(a *testArray) bool { return !hasToken("vault-f")(a) }},
	}
	modes := []struct {
		fault   Fault
		status  int // 0: no answer
		applied bool
		within  time.Duration
	}{
		{Fault{Mode: ModeError, Status: 503, Message: "Array busy."}, 503, false, 5 * time.Second},
		{Fault{Mode: ModeDelay, Delay: Duration(50 * time.Millisecond)}, 200, true, 5 * time.Second},
		{Fault{Mode: ModeHang, Delay: Duration(10 * time.Second)}, 0, false, 200 * time.Millisecond},
		{Fault{Mode: ModeDrop}, 0, false, 5 * time.Second},
		{Fault{Mode: ModeAppliedError, Status: 500}, 500, true, 5 * time.Second},
		{Fault{Mode: ModeAppliedHang, Delay: Duration(10 * time.Second)}, 0, true, 200 * time.Millisecond},
		{Fault{Mode: ModeAppliedDrop}, 0, true, 5 * time.Second},
	}
	for i, st := range steps {
		kind := kindsUnderTest[i%2]
		for _, m := range modes {
			t.Run(st.step+"/"+m.fault.Mode, func(t *testing.T) {
				t.Parallel()
				a := newArray(t, kind)
				sess := a.login()
				if st.setup != nil {
					st.setup(a, sess)
				}
				f := m.fault
				f.Step = st.step
				if err := a.emu.InjectFaults(f); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				r, err := st.act(a, sess, m.within)
				switch {
				case m.status == 0 && err == nil:
					t.Errorf("got HTTP %d, want no answer", r.status)
				case m.status != 0 && (err != nil || r.status != m.status):
					t.Errorf("HTTP %d (%v), want %d", r.status, err, m.status)
				}
				if took := time.Since(start); took > 3*time.Second {
					t.Errorf("took %s: the fault held the request after the client gave up", took)
				}
				if st.applied != nil && st.applied(a) != m.applied {
					t.Errorf("applied %t, want %t", st.applied(a), m.applied)
				}
				if s := a.emu.Stats(); s.FaultsFired != 1 || s.Requests[st.step] != 1 || len(a.emu.PendingFaults()) != 0 {
					t.Errorf("faults fired %d, %s requests %d, pending %v", s.FaultsFired, st.step, s.Requests[st.step], a.emu.PendingFaults())
				}
			})
		}
	}
}

// Users, tokens, logins and deletes from many goroutines at once keep the
// counts straight (run under -race).
func TestAdminsConcurrent(t *testing.T) {
	a := newArray(t, FlashBlade)
	sess := a.login()
	const workers, rounds = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				name := fmt.Sprintf("vault-%d-%d", w, i)
				steps := []struct {
					method, path, body string
					hdr                []string
				}{
					{"POST", a.ver() + "/admins?names=" + name, adminBody("readonly", nil), []string{"x-auth-token", sess}},
					{"POST", a.tokensPath(a.sel(name) + "&timeout=60000"), "", []string{"x-auth-token", sess}},
				}
				var secret string
				for _, s := range steps {
					r, err := a.do(s.method, s.path, s.body, s.hdr...)
					if err != nil || r.status != 200 {
						errs <- fmt.Errorf("%s %s: %d %v %s", s.method, s.path, r.status, err, r.raw)
						return
					}
					if its := r.items(); len(its) == 1 && its[0]["api_token"] != nil {
						secret = secretOf(its[0])
					}
				}
				r, err := a.do("POST", a.loginPath(), "", "api-token", secret)
				if err != nil || r.status != 200 {
					errs <- fmt.Errorf("login %s: %d %v", name, r.status, err)
					return
				}
				if r, err := a.do("DELETE", a.ver()+"/admins?names="+name, "", "x-auth-token", sess); err != nil || r.status != 200 {
					errs <- fmt.Errorf("delete %s: %d %v", name, r.status, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := a.emu.Stats()
	if st.Users != 2 || st.UsersCreated != workers*rounds || st.UsersDeleted != workers*rounds || st.APITokensCreated != workers*rounds ||
		st.OpenSessions != 1 || st.SessionsEndedByUserDelete != workers*rounds {
		t.Errorf("after %d users made and deleted: %+v", workers*rounds, st)
	}
}
