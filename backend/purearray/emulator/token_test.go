package emulator

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// The token endpoint checks everything an array checks, on both kinds, and
// takes only a form-encoded token exchange.
func TestTokenChecks(t *testing.T) {
	for _, kind := range kindsUnderTest {
		t.Run(kind, func(t *testing.T) {
			a := newArray(t, kind)
			sess := a.login()
			c := a.create(sess, "c", keyOne(), "readonly")
			a.enable(sess, "c")
			id, kid := c["id"].(string), c["key_id"].(string)
			now := a.clk.Now()
			for _, tc := range []struct {
				name, jwt string
				want      int
				msg       string // "" accepted
			}{
				{"good", jwtFor(t, kid, id, "iss", "pureuser", keyOne(), now), 200, ""},
				{"unknown kid", jwtFor(t, "nope", id, "iss", "pureuser", keyOne(), now), 401, "no API client has this kid"},
				{"wrong aud", jwtFor(t, kid, "other", "iss", "pureuser", keyOne(), now), 401, "aud"},
				{"wrong iss", jwtFor(t, kid, id, "other", "pureuser", keyOne(), now), 401, "iss"},
				{"unknown user", jwtFor(t, kid, id, "iss", "mallory", keyOne(), now), 401, "sub names no user"},
				{"other key", jwtFor(t, kid, id, "iss", "pureuser", keyTwo(), now), 401, "signature"},
				{"expired", jwtFor(t, kid, id, "iss", "pureuser", keyOne(), now.Add(-2*time.Hour)), 401, "expired"},
				{"issued in the future", jwtFor(t, kid, id, "iss", "pureuser", keyOne(), now.Add(5*time.Minute)), 401, "used before issued"},
				{"not a JWT", "junk", 401, "JWT validation failed"},
			} {
				r := a.exchange(tc.jwt)
				if r.status != tc.want || (tc.msg != "" && !strings.Contains(r.message(), tc.msg)) {
					t.Errorf("%s: %d %s, want %d %q", tc.name, r.status, r.raw, tc.want, tc.msg)
				}
			}
			good := jwtFor(t, kid, id, "iss", "pureuser", keyOne(), now)
			form := url.Values{"grant_type": {grantTypeTokenExchange}, "subject_token_type": {subjectTokenTypeJWT}, "subject_token": {good}}
			for _, tc := range []struct {
				name, method, body, ct string
				want                   int
				msg                    string
			}{
				{"JSON body", "POST", `{"grant_type":"` + grantTypeTokenExchange + `"}`, "application/json", 400, "application/x-www-form-urlencoded"},
				{"no content type", "POST", form.Encode(), "", 400, "application/x-www-form-urlencoded"},
				{"other grant", "POST", url.Values{"grant_type": {"client_credentials"}, "subject_token_type": {subjectTokenTypeJWT}, "subject_token": {good}}.Encode(), "application/x-www-form-urlencoded", 400, "grant_type"},
				{"no subject_token", "POST", url.Values{"grant_type": {grantTypeTokenExchange}, "subject_token_type": {subjectTokenTypeJWT}}.Encode(), "application/x-www-form-urlencoded", 400, "subject_token"},
				{"GET", "GET", "", "", 405, "use POST"},
			} {
				r := a.must(tc.method, TokenPath, tc.body, "Content-Type", tc.ct)
				if r.status != tc.want || !strings.Contains(r.message(), tc.msg) || r.body["error"] == nil {
					t.Errorf("%s: %d %s, want %d %q in an OAuth error", tc.name, r.status, r.raw, tc.want, tc.msg)
				}
			}
			if st := a.emu.Stats(); st.TokensIssued != 1 || st.TokensRefused != 12 {
				t.Errorf("tokens issued %d, refused %d; want 1 and 12", st.TokensIssued, st.TokensRefused)
			}

			// A token dies with its client's enablement, and with its own ttl.
			access := a.exchange(good).body["access_token"].(string)
			arrays := func() int {
				return a.must("GET", a.ver()+"/arrays", "", "Authorization", "Bearer "+access).status
			}
			if got := arrays(); got != 200 {
				t.Fatalf("arrays with a fresh token: %d", got)
			}
			a.must("PATCH", a.ver()+"/api-clients?names=c", `{"enabled":false}`, "x-auth-token", sess)
			if got := arrays(); got != 401 {
				t.Errorf("arrays with the token of a disabled client: %d, want 401", got)
			}
			a.enable(sess, "c")
			if got := arrays(); got != 200 {
				t.Errorf("arrays after re-enabling: %d", got)
			}
			a.clk.Add(time.Hour + time.Second)
			if r := a.must("GET", a.ver()+"/arrays", "", "Authorization", "Bearer "+access); r.status != 401 || !strings.Contains(r.message(), "expired") {
				t.Errorf("arrays with an expired token: %d %s", r.status, r.raw)
			}
		})
	}
}
