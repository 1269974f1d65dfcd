package backend

import (
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// TestSecretsNeverLeak drives every path, successes and failures, with keys in
// every form and their password, and searches every response (as JSON, so
// data, warnings, errors and lease internals are all covered) and the
// backend's Trace-level log for the private key's PEM body lines and the
// password.
func TestSecretsNeverLeak(t *testing.T) {
	e, te := newEmulatorEnv(t, 0, envOptions{})
	a, b := keyA(), keyB()

	var responses []string
	record := func(resp *logical.Response, err error) {
		responses = append(responses, responseJSON(t, resp))
		if err != nil {
			responses = append(responses, err.Error())
		}
	}
	do := func(op logical.Operation, path string, data map[string]interface{}) (*logical.Response, error) {
		resp, err := e.request(op, path, data)
		record(resp, err)
		return resp, err
	}
	w := func(path string, data map[string]interface{}) { do(logical.UpdateOperation, path, data) }
	r := func(path string) { do(logical.ReadOperation, path, nil) }

	idA := te.register(t, a.publicPEM)
	// Imports in every format, with and without the password, right and wrong.
	for _, f := range []struct{ pem, pw string }{
		{a.pkcs1, ""}, {a.pkcs8, ""}, {a.pkcs8, testPassword},
		{a.legacyAES, testPassword}, {a.legacyDES3, testPassword},
		{a.encPKCS8, testPassword}, {a.encPKCS8AES, testPassword},
		{a.legacyAES, ""}, {a.encPKCS8, ""},
		{a.legacyAES, testPassword + "x"}, {a.encPKCS8, "x" + testPassword},
		{b.pkcs1, testPassword},
	} {
		data := map[string]interface{}{"private_key": f.pem, "app_id": idA, "token_url": te.tokenURL}
		if f.pw != "" {
			data["private_key_password"] = f.pw
		}
		w("config/a", data)
		r("config/a")
	}
	w("config/a", map[string]interface{}{"private_key": a.encPKCS8, "private_key_password": testPassword, "app_id": idA})
	// The key in the wrong field, a typo'd field name, both key sources.
	w("config/x", map[string]interface{}{"app_id": a.pkcs8})
	w("config/x", map[string]interface{}{"privat_key": a.pkcs8, "private_key_passwd": testPassword})
	w("config/x", map[string]interface{}{"private_key": a.pkcs8, "generate_key": true, "private_key_password": testPassword})
	w("config/x", map[string]interface{}{"private_key_password": testPassword})
	w("config/x", map[string]interface{}{"private_key": a.pkcs8 + strings.Repeat("B", 70<<10)})
	// A generated key: its private half is in storage only.
	w("config/gen", map[string]interface{}{"generate_key": true, "app_id": appID2})
	r("config/gen")
	do(logical.ListOperation, "config/", nil)

	w("roles/jwt", map[string]interface{}{"config": "a", "credential_type": "jwt"})
	w("roles/at", map[string]interface{}{"config": "a", "reuse_access_token": true})
	w("roles/gen", map[string]interface{}{"config": "gen", "credential_type": "jwt"})
	r("roles/jwt")
	jwtResp, _ := do(logical.ReadOperation, "creds/jwt", nil)
	r("creds/gen")
	resp, _ := do(logical.ReadOperation, "creds/at", nil)
	if resp == nil || resp.Secret == nil || jwtResp == nil || jwtResp.Secret == nil {
		t.Fatalf("credential reads failed: %v, %v", resp, jwtResp)
	}
	// Credentials are secrets too, for the metrics (below).
	issued := []string{resp.Data["access_token"].(string), jwtResp.Data["jwt"].(string)}
	// Renew and revoke go to the log at Debug.
	rn, err := e.b.HandleRequest(e.ctx, &logical.Request{Operation: logical.RenewOperation, Storage: e.storage, Secret: resp.Secret})
	record(rn, err)
	rv, err := e.b.HandleRequest(e.ctx, &logical.Request{Operation: logical.RevokeOperation, Storage: e.storage, Secret: resp.Secret})
	record(rv, err)
	// Pure1 refusing the JWT, and Pure1 unreachable: both logged at Warn.
	w("config/a", map[string]interface{}{"app_id": appID3})
	r("creds/at")
	w("config/a", map[string]interface{}{"app_id": idA, "token_url": "http://127.0.0.1:1/oauth2/1.0/token"})
	r("creds/at")
	// Rotations: pending keys brought and generated, read, a promotion Pure1
	// refuses (logged at Warn) and one it accepts, a check, an abandoned one.
	w("config/a", map[string]interface{}{"token_url": te.tokenURL})
	w("config/a/rotate", map[string]interface{}{"private_key": b.encPKCS8, "private_key_password": testPassword + "x"})
	w("config/a/rotate", map[string]interface{}{"private_key": b.encPKCS8, "private_key_password": testPassword})
	r("config/a/rotate")
	r("config/a")
	w("config/a/rotate", map[string]interface{}{"app_id": appID3})
	w("config/a/rotate", map[string]interface{}{"app_id": te.register(t, b.publicPEM)})
	r("config/a/check")
	w("config/a/rotate", map[string]interface{}{"generate_key": true})
	r("config/a/rotate")
	pendingGen := e.storedConfig("a").Pending.PrivateKey
	do(logical.DeleteOperation, "config/a/rotate", nil)
	do(logical.HelpOperation, "config/a/rotate", nil)
	do(logical.HelpOperation, "config/a/check", nil)
	// Refused deletes and help text.
	do(logical.DeleteOperation, "config/a", nil)
	do(logical.HelpOperation, "config/a", nil)
	// The metrics after all of the above, in both formats; the Prometheus
	// text as Prometheus gets it, not base64 inside JSON.
	r("metrics")
	metricsJSON := responses[len(responses)-1]
	metrics, err := e.request(logical.ReadOperation, "metrics", map[string]interface{}{"format": "prometheus"})
	if body, ok := metrics.Data[logical.HTTPRawBody].([]byte); err != nil || !ok {
		t.Fatalf("metrics?format=prometheus: %v, %v", err, metrics)
	} else {
		responses = append(responses, string(body))
		exposition := string(body)
		// Credentials, and the app IDs and token URL (not secret, but no
		// business of a metrics label), appear nowhere in the metrics.
		for _, s := range append(issued, idA, te.tokenURL, "127.0.0.1") {
			if strings.Contains(exposition, s) || strings.Contains(metricsJSON, s) {
				t.Errorf("the metrics contain %.20q...", s)
			}
		}
	}

	genKey := e.storedConfig("gen").PrivateKey
	secrets := []string{testPassword}
	for _, p := range []string{a.pkcs1, a.pkcs8, a.legacyAES, a.legacyDES3, a.encPKCS8, a.encPKCS8AES, b.pkcs1, b.pkcs8, genKey, pendingGen} {
		for _, l := range pemBodyLines(p) {
			if len(l) >= 16 { // a short last line could match by chance
				secrets = append(secrets, l)
			}
		}
	}
	if len(secrets) < 100 {
		t.Fatalf("only %d secret lines to look for", len(secrets))
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "Pure1 token exchange failed") || !strings.Contains(logs, "rotation: Pure1 did not accept") {
		t.Errorf("the log lacks the exchange failures; is the Trace logger wired? log:\n%s", logs)
	}
	for _, s := range secrets {
		for i, r := range responses {
			if strings.Contains(r, s) {
				t.Errorf("response %d contains secret material %.12q...: %.300s", i, s, r)
			}
		}
		if strings.Contains(logs, s) {
			t.Errorf("the log contains secret material %.12q...", s)
		}
	}
	// Nor in storage, for the password.
	for k, v := range e.snapshot() {
		if strings.Contains(string(v), testPassword) {
			t.Errorf("the password is stored under %s", k)
		}
	}
}
