package emulator

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The tests speak the raw wire, not backend/purearray's client: the emulator
// is the specification the client is written against, held to Pure's SDK
// by backend/e2e's TestSDKArrayEmulator.

var (
	keyOne = sync.OnceValue(func() *rsa.PrivateKey { return mustKey(2048) })
	keyTwo = sync.OnceValue(func() *rsa.PrivateKey { return mustKey(2048) })
)

func mustKey(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func publicPEM(k *rsa.PrivateKey) string {
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// testArray is an emulator served over TLS and a client that trusts it.
type testArray struct {
	t    *testing.T
	emu  *Server
	url  string
	http *http.Client
	clk  *clock
}

func newArray(t *testing.T, kind string, mut ...func(*Options)) *testArray {
	t.Helper()
	clk := &clock{now: time.Now()}
	opts := Options{Kind: kind, Users: []string{"pureuser", "ops"}, Now: clk.Now}
	for _, m := range mut {
		m(&opts)
	}
	emu, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := NewTLS()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(emu.Handler())
	srv.TLS = tl.Config
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(tl.CAPEM)
	// No keep-alives: Go's transport replays an idempotent request whose
	// reused connection was dropped, which would hide a drop fault.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &testArray{t: t, emu: emu, url: srv.URL, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}, clk: clk}
}

// ver is the array's newest REST version, as a path prefix.
func (a *testArray) ver() string { return "/api/" + a.emu.APIVersion() }

// reply is one answer.
type reply struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

// message is the first error message of a REST 2 error body.
func (r reply) message() string {
	errs, _ := r.body["errors"].([]any)
	if len(errs) == 0 {
		if e, ok := r.body["error_description"].(string); ok {
			return e
		}
		return r.raw
	}
	m, _ := errs[0].(map[string]any)
	s, _ := m["message"].(string)
	return s
}

// context is the context of a REST 2 error body's one error; "" unless it
// has exactly one.
func (r reply) context() string {
	errs, _ := r.body["errors"].([]any)
	if len(errs) != 1 {
		return ""
	}
	m, _ := errs[0].(map[string]any)
	s, _ := m["context"].(string)
	return s
}

// jsonWith is fields as JSON with over applied: a nil value drops the
// field, any other replaces it (a json.RawMessage is sent as is).
func jsonWith(fields, over map[string]any) string {
	for k, v := range over {
		if v == nil {
			delete(fields, k)
			continue
		}
		fields[k] = v
	}
	b, err := json.Marshal(fields)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// items is the items list of a response.
func (r reply) items() []map[string]any {
	var out []map[string]any
	its, _ := r.body["items"].([]any)
	for _, it := range its {
		out = append(out, it.(map[string]any))
	}
	return out
}

// do sends one request; hdr alternates names and values. A JSON body gets
// Content-Type application/json unless hdr sets one ("" sends none).
func (a *testArray) do(method, path, body string, hdr ...string) (reply, error) {
	req, err := http.NewRequest(method, a.url+path, strings.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r, nil
}

func (a *testArray) must(method, path, body string, hdr ...string) reply {
	a.t.Helper()
	r, err := a.do(method, path, body, hdr...)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// loginPath is where the kind logs in; logoutPath where it logs out.
func (a *testArray) loginPath() string {
	if a.emu.Kind() == FlashBlade {
		return FlashBladeLoginPath
	}
	return a.ver() + "/login"
}

func (a *testArray) logoutPath() string {
	if a.emu.Kind() == FlashBlade {
		return FlashBladeLogoutPath
	}
	return a.ver() + "/logout"
}

// login opens a session and returns its x-auth-token.
func (a *testArray) login() string {
	a.t.Helper()
	r := a.must("POST", a.loginPath(), "", "api-token", a.emu.APIToken())
	tok := r.header.Get("x-auth-token")
	if r.status != 200 || tok == "" {
		a.t.Fatalf("login: %d %s", r.status, r.raw)
	}
	return tok
}

// role is max_role in the array's form.
func (a *testArray) role(name string) string {
	if a.emu.Kind() == FlashBlade {
		return `{"name":"` + name + `"}`
	}
	return `"` + name + `"`
}

// clientName is a valid name for the kind.
func (a *testArray) clientName(base string) string {
	if a.emu.Kind() == FlashBlade {
		return strings.ReplaceAll(base, "-", "_")
	}
	return base
}

// create makes an API client with key and max_role readonly.
func (a *testArray) create(session, name string, key *rsa.PrivateKey, role string) map[string]any {
	a.t.Helper()
	body, _ := json.Marshal(map[string]any{"issuer": "iss", "public_key": publicPEM(key), "access_token_ttl_in_ms": 3600000})
	body = append(body[:len(body)-1], []byte(`,"max_role":`+a.role(role)+`}`)...)
	r := a.must("POST", a.ver()+"/api-clients?names="+url.QueryEscape(name), string(body), "x-auth-token", session)
	if r.status != 200 || len(r.items()) != 1 {
		a.t.Fatalf("create %s: %d %s", name, r.status, r.raw)
	}
	return r.items()[0]
}

func (a *testArray) enable(session, name string) {
	a.t.Helper()
	r := a.must("PATCH", a.ver()+"/api-clients?names="+url.QueryEscape(name), `{"enabled":true}`, "x-auth-token", session)
	if r.status != 200 {
		a.t.Fatalf("enable %s: %d %s", name, r.status, r.raw)
	}
}

// jwtFor signs an API client JWT as Pure's SDK does.
func jwtFor(t *testing.T, kid, aud, iss, sub string, key *rsa.PrivateKey, iat time.Time) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": iss, "aud": aud, "sub": sub, "iat": iat.Unix(), "exp": iat.Add(time.Hour).Unix(),
	})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// exchange posts a JWT to the token endpoint, form-encoded.
func (a *testArray) exchange(subjectToken string) reply {
	a.t.Helper()
	form := url.Values{
		"grant_type": {grantTypeTokenExchange}, "subject_token_type": {subjectTokenTypeJWT}, "subject_token": {subjectToken},
	}
	return a.must("POST", TokenPath, form.Encode(), "Content-Type", "application/x-www-form-urlencoded")
}

var kindsUnderTest = []string{FlashArray, FlashBlade}

func TestNew(t *testing.T) {
	if _, err := New(Options{Kind: "flashstack"}); err == nil || !strings.Contains(err.Error(), "use flasharray or flashblade") {
		t.Errorf("unknown kind: %v", err)
	}
	if _, err := New(Options{Users: []string{" ", ""}}); err == nil || !strings.Contains(err.Error(), "users") {
		t.Errorf("no users: %v", err)
	}
	fa, _ := New(Options{})
	fb, _ := New(Options{Kind: FlashBlade})
	if fa.Kind() != FlashArray || fa.APIVersion() != "2.30" || strings.HasPrefix(fa.APIToken(), "T-") {
		t.Errorf("default: kind %s, version %s, token prefix %.2s", fa.Kind(), fa.APIVersion(), fa.APIToken())
	}
	if fb.Kind() != FlashBlade || fb.APIVersion() != "2.17" || !strings.HasPrefix(fb.APIToken(), "T-") {
		t.Errorf("flashblade: kind %s, version %s, token prefix %.2s", fb.Kind(), fb.APIVersion(), fb.APIToken())
	}
}

// GET /api/api_version: "version" on a FlashArray, "versions" on a
// FlashBlade, each with its newest version, and never the other key.
func TestAPIVersionPerKind(t *testing.T) {
	for _, tc := range []struct{ kind, key, other, newest string }{
		{FlashArray, "version", "versions", "2.30"},
		{FlashBlade, "versions", "version", "2.17"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			a := newArray(t, tc.kind)
			r := a.must("GET", APIVersionPath, "")
			list, _ := r.body[tc.key].([]any)
			if r.status != 200 || len(list) == 0 || list[len(list)-1] != tc.newest {
				t.Fatalf("%d %s: want %q ending in %s", r.status, r.raw, tc.key, tc.newest)
			}
			if _, ok := r.body[tc.other]; ok {
				t.Errorf("answer has %q too: %s", tc.other, r.raw)
			}
			if r := a.must("POST", APIVersionPath, ""); r.status != 405 {
				t.Errorf("POST api_version: %d", r.status)
			}
		})
	}
}

// Each kind logs in and out only where Pure's SDK does, and refuses the
// other kind's path; sessions are counted.
func TestSessionsPerKind(t *testing.T) {
	for _, kind := range kindsUnderTest {
		t.Run(kind, func(t *testing.T) {
			a := newArray(t, kind)
			tok := a.emu.APIToken()
			wrongLogin, wrongLogout, wrongStatus := "/api/login", "/api/logout", 404
			if kind == FlashBlade {
				wrongLogin, wrongLogout, wrongStatus = a.ver()+"/login", a.ver()+"/logout", 400
			}
			for _, tc := range []struct {
				name, method, path string
				hdr                []string
				want               int
				msg                string
			}{
				{"other kind's login", "POST", wrongLogin, []string{"api-token", tok}, wrongStatus, ""},
				{"other kind's logout", "POST", wrongLogout, []string{"x-auth-token", "x"}, wrongStatus, ""},
				{"GET login", "GET", a.loginPath(), []string{"api-token", tok}, 405, "Use POST"},
				{"no api-token", "POST", a.loginPath(), nil, 400, "Missing api-token"},
				{"wrong api-token", "POST", a.loginPath(), []string{"api-token", "nope"}, 401, "Invalid api-token"},
				{"unsupported version", "POST", "/api/2.99/login", []string{"api-token", tok}, 404, "not supported"},
				{"logout without a session", "POST", a.logoutPath(), nil, 400, "Missing x-auth-token"},
				{"logout of no session", "POST", a.logoutPath(), []string{"x-auth-token", "nope"}, 401, "No open session"},
			} {
				r := a.must(tc.method, tc.path, "", tc.hdr...)
				if r.status != tc.want || !strings.Contains(r.message(), tc.msg) || r.header.Get("x-auth-token") != "" {
					t.Errorf("%s: %d %s, want %d %q and no session", tc.name, r.status, r.raw, tc.want, tc.msg)
				}
			}
			if st := a.emu.Stats(); st.SessionsOpened != 0 || st.OpenSessions != 0 {
				t.Fatalf("refused logins opened sessions: %+v", st)
			}

			r := a.must("POST", a.loginPath(), "", "api-token", tok)
			s1 := r.header.Get("x-auth-token")
			want := `{"username":"pureuser"}`
			if kind == FlashArray {
				want = `{"items":[{"username":"pureuser"}]}`
			}
			if r.status != 200 || s1 == "" || strings.TrimSpace(r.raw) != want {
				t.Fatalf("login: %d %q (x-auth-token %t), want 200 %s", r.status, r.raw, s1 != "", want)
			}
			s2 := a.login()
			if st := a.emu.Stats(); st.OpenSessions != 2 || st.SessionsOpened != 2 {
				t.Fatalf("after two logins: %+v", st)
			}
			if r := a.must("GET", a.ver()+"/api-clients", "", "x-auth-token", s1); r.status != 200 {
				t.Fatalf("a session's GET api-clients: %d %s", r.status, r.raw)
			}
			if r := a.must("POST", a.logoutPath(), "", "x-auth-token", s1); r.status != 200 {
				t.Fatalf("logout: %d %s", r.status, r.raw)
			}
			if r := a.must("POST", a.logoutPath(), "", "x-auth-token", s1); r.status != 401 {
				t.Errorf("a second logout of the same session: %d, want 401", r.status)
			}
			if r := a.must("GET", a.ver()+"/api-clients", "", "x-auth-token", s1); r.status != 401 || !strings.Contains(r.message(), "log in again") {
				t.Errorf("a logged-out session's GET api-clients: %d %s, want 401", r.status, r.raw)
			}
			a.must("POST", a.logoutPath(), "", "x-auth-token", s2)
			st := a.emu.Stats()
			if st.OpenSessions != 0 || st.SessionsOpened != 2 || st.Logouts != 2 || a.emu.OpenSessions() != 0 {
				t.Errorf("after both logouts: %+v", st)
			}
			if st.Refused[StepLogin] != 3 || st.Refused[StepLogout] != 3 || st.Refused[StepOther] != 3 {
				t.Errorf("refusals by step %v: want 3 login, 3 logout, 3 other", st.Refused)
			}
		})
	}
}

// The life of an API client on each kind: created disabled, in the kind's
// max_role form (no tokens), enabled (tokens that work on arrays), deleted
// (its tokens stop working, it is gone from the list).
func TestAPIClientLifecycle(t *testing.T) {
	for _, kind := range kindsUnderTest {
		for _, wrap := range []bool{false, true} {
			t.Run(kind+map[bool]string{false: "/plain", true: "/items"}[wrap], func(t *testing.T) {
				a := newArray(t, kind, func(o *Options) { o.WrapToken = wrap })
				sess := a.login()
				name := a.clientName("vault-lifecycle")
				c := a.create(sess, name, keyOne(), "storage_admin")
				id, _ := c["id"].(string)
				kid, _ := c["key_id"].(string)
				if c["enabled"] != false || id == "" || kid == "" || c["issuer"] != "iss" || c["access_token_ttl_in_ms"] != float64(3600000) ||
					c["public_key"] != publicPEM(keyOne()) || c["name"] != name {
					t.Fatalf("new client %v: want disabled, with id, key_id and the fields given", c)
				}
				wantRole := any("storage_admin")
				if kind == FlashBlade {
					wantRole = map[string]any{"name": "storage_admin"}
				}
				if js, _ := json.Marshal(c["max_role"]); string(js) != string(must(json.Marshal(wantRole))) {
					t.Errorf("max_role %s, want %v", js, wantRole)
				}
				jwtOps := jwtFor(t, kid, id, "iss", "ops", keyOne(), a.clk.Now())
				if r := a.exchange(jwtOps); r.status != 401 || !strings.Contains(r.message(), "disabled") {
					t.Fatalf("exchange with a disabled client: %d %s", r.status, r.raw)
				}
				a.enable(sess, name)
				r := a.exchange(jwtOps)
				answer := r.body
				if wrap {
					its := r.items()
					if len(its) != 1 {
						t.Fatalf("wrapped token answer: %s", r.raw)
					}
					answer = its[0]
				}
				access, _ := answer["access_token"].(string)
				if r.status != 200 || access == "" || answer["expires_in"] != float64(3600) || answer["token_type"] != "Bearer" ||
					answer["issued_token_type"] != issuedTokenTypeAccess || r.header.Get("Cache-Control") != "no-store" {
					t.Fatalf("exchange: %d %s", r.status, r.raw)
				}
				for _, auth := range [][]string{{"Authorization", "Bearer " + access}, {"x-auth-token", sess}} {
					r := a.must("GET", a.ver()+"/arrays", "", auth...)
					its := r.items()
					if r.status != 200 || len(its) != 1 || its[0]["id"] == "" {
						t.Fatalf("arrays with %s: %d %s", auth[0], r.status, r.raw)
					}
					wantOS := map[string]string{FlashArray: "Purity//FA", FlashBlade: "Purity//FB"}[kind]
					if its[0]["os"] != wantOS {
						t.Errorf("arrays item os %v, want %s", its[0]["os"], wantOS)
					}
				}
				// A storage_admin token may read api-clients but not change them.
				if r := a.must("GET", a.ver()+"/api-clients", "", "Authorization", "Bearer "+access); r.status != 200 {
					t.Errorf("GET api-clients with a storage_admin token: %d %s", r.status, r.raw)
				}
				if r := a.must("DELETE", a.ver()+"/api-clients?names="+name, "", "Authorization", "Bearer "+access); r.status != 403 || !strings.Contains(r.message(), "array_admin") {
					t.Errorf("DELETE with a storage_admin token: %d %s, want 403", r.status, r.raw)
				}
				r = a.must("DELETE", a.ver()+"/api-clients?names="+name, "", "x-auth-token", sess)
				if r.status != 200 || r.raw != "" {
					t.Fatalf("delete: %d %q, want 200 and no body", r.status, r.raw)
				}
				if r := a.must("GET", a.ver()+"/arrays", "", "Authorization", "Bearer "+access); r.status != 401 {
					t.Errorf("arrays with the token of a deleted client: %d, want 401", r.status)
				}
				if r := a.must("GET", a.ver()+"/api-clients?names="+name, "", "x-auth-token", sess); r.status != 400 || !strings.Contains(r.message(), "does not exist") {
					t.Errorf("GET of the deleted client: %d %s", r.status, r.raw)
				}
				st := a.emu.Stats()
				if st.TokensIssued != 1 || st.TokensRefused != 1 || st.IssuedByClient[name] != 1 || st.ArraysServed != 2 || st.ArraysRefused != 1 || st.Clients != 0 {
					t.Errorf("stats %+v", st)
				}
			})
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// GET arrays answers a session or a live token, at a version the kind
// offers, with the fields of the kind's Array model.
func TestArrays(t *testing.T) {
	for _, kind := range kindsUnderTest {
		t.Run(kind, func(t *testing.T) {
			a := newArray(t, kind)
			sess := a.login()
			fields := map[string][]string{
				FlashArray: {"id", "name", "_as_of", "os", "version", "idle_timeout", "ntp_servers", "capacity", "parity", "scsi_timeout", "console_lock_enabled", "time_zone", "banner"},
				FlashBlade: {"id", "name", "_as_of", "os", "version", "idle_timeout", "ntp_servers", "product_type", "revision", "smb_mode", "time_zone", "banner"},
			}[kind]
			r := a.must("GET", a.ver()+"/arrays", "", "x-auth-token", sess)
			for _, f := range fields {
				if _, ok := r.items()[0][f]; !ok {
					t.Errorf("arrays item lacks %s: %s", f, r.raw)
				}
			}
			if _, ok := r.body["total_item_count"]; !ok || r.body["continuation_token"] != nil {
				t.Errorf("list shape: %s", r.raw)
			}
			if kind == FlashArray {
				if _, ok := r.body["more_items_remaining"]; !ok {
					t.Errorf("FlashArray list without more_items_remaining: %s", r.raw)
				}
			}
			other := map[string]string{FlashArray: "2.31", FlashBlade: "2.18"}[kind]
			for _, tc := range []struct {
				name, path string
				hdr        []string
				want       int
			}{
				{"no auth", a.ver() + "/arrays", nil, 401},
				{"junk token", a.ver() + "/arrays", []string{"Authorization", "Bearer x.y.z"}, 401},
				{"basic auth", a.ver() + "/arrays", []string{"Authorization", "Basic cHVyZXVzZXI6cHVyZXVzZXI="}, 401},
				{"newer version", "/api/" + other + "/arrays", []string{"x-auth-token", sess}, 404},
				{"REST 1", "/api/1.12/arrays", []string{"x-auth-token", sess}, 404},
				{"older version", "/api/2.2/arrays", []string{"x-auth-token", sess}, 200},
				{"unknown query", a.ver() + "/arrays?names=x", []string{"x-auth-token", sess}, 400},
				{"unknown resource", a.ver() + "/volumes", []string{"x-auth-token", sess}, 404},
			} {
				if r := a.must("GET", tc.path, "", tc.hdr...); r.status != tc.want {
					t.Errorf("%s: %d %s, want %d", tc.name, r.status, r.raw, tc.want)
				}
			}
			if r := a.must("POST", a.ver()+"/arrays", "{}", "x-auth-token", sess); r.status != 405 {
				t.Errorf("POST arrays: %d", r.status)
			}
		})
	}
}

// The admin API shows stats and clients and nothing else.
func TestAdminAPI(t *testing.T) {
	a := newArray(t, FlashBlade)
	sess := a.login()
	a.create(sess, "vault_admin", keyOne(), "readonly")
	r := a.must("GET", StatsPath, "")
	if r.status != 200 || r.body["kind"] != FlashBlade || r.body["open_sessions"] != float64(1) || r.body["clients"] != float64(1) ||
		r.body["sessions_opened"] != float64(1) || r.body["logouts"] != float64(0) || r.body["faults_fired"] != float64(0) {
		t.Errorf("stats: %d %s", r.status, r.raw)
	}
	if reqs, _ := r.body["requests"].(map[string]any); reqs[StepLogin] != float64(1) || reqs[StepCreate] != float64(1) {
		t.Errorf("requests by step: %v", r.body["requests"])
	}
	r = a.must("GET", ClientsPath, "")
	if its := r.items(); r.status != 200 || len(its) != 1 || its[0]["name"] != "vault_admin" || its[0]["max_role"] != "readonly" || its[0]["enabled"] != false {
		t.Errorf("clients: %d %s", r.status, r.raw)
	}
	if r := a.must("GET", "/emulator/nope", ""); r.status != 404 || !strings.Contains(r.raw, StatsPath) {
		t.Errorf("unknown admin path: %d %s", r.status, r.raw)
	}
	if r := a.must("POST", StatsPath, "{}"); r.status != 405 {
		t.Errorf("POST stats: %d", r.status)
	}
	if r := a.must("GET", StatsPath, ""); r.body["requests"].(map[string]any)["admin"] != nil {
		t.Errorf("admin requests are counted as array requests: %s", r.raw)
	}
}
