package e2e

import (
	"strings"
	"testing"

	arrayemu "github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray/emulator"
)

// sdkArrayResult is what testdata/sdk_array_emulator.py prints.
type sdkArrayResult struct {
	Kind     string         `json:"kind"`
	Sessions map[string]int `json:"sessions"`
	Created  struct {
		Name    string `json:"name"`
		Enabled bool   `json:"enabled"`
		ID      string `json:"id"`
		KeyID   string `json:"key_id"`
	} `json:"created"`
	Duplicate sdkError `json:"duplicate"`
	Listed    struct {
		Name             string `json:"name"`
		Enabled          bool   `json:"enabled"`
		Issuer           string `json:"issuer"`
		MaxRole          string `json:"max_role"`
		MaxRoleType      string `json:"max_role_type"`
		TTLMS            int64  `json:"ttl_ms"`
		ID               string `json:"id"`
		KeyID            string `json:"key_id"`
		PublicKeyMatches bool   `json:"public_key_matches"`
	} `json:"listed"`
	Missing       sdkError `json:"missing"`
	ArraysSession []struct {
		Name, OS, Version string
	} `json:"arrays_session"`
	ArraysOAuth    []string `json:"arrays_oauth"`
	ArraysIDToken  []string `json:"arrays_id_token"`
	ReadonlyDelete sdkError `json:"readonly_delete"`
	AfterDelete    sdkError `json:"after_delete"`
	OAuthAfter     struct {
		Status int    `json:"status"`
		Error  string `json:"error"`
	} `json:"oauth_after_delete"`
	ClientsLeft []string `json:"clients_left"`
	WrongKind   struct {
		Login   string `json:"login"`
		Client  string `json:"client"`
		Model   string `json:"model"`
		MaxRole struct {
			Status int `json:"status"`
			Body   struct {
				Errors []sdkError `json:"errors"`
			} `json:"body"`
		} `json:"max_role"`
	} `json:"wrong_kind"`
}

type sdkError struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
	Context string `json:"context"`
}

// TestSDKArrayEmulator holds the array emulator to Pure's own code: Pure's
// FlashArray REST 2.30 and FlashBlade REST 2.17 clients (py-pure-client
// 1.90.0), each against the emulator of its kind, log in with the API
// token, create an API client in the kind's max_role form, enable it, list
// it back (every field re-validated by the SDK's own models), list arrays
// with the session, with the SDK's own OAuth (client_id, key_id, issuer,
// username, private_key_file) and with a ready JWT as id_token, delete it,
// and log out: the emulator is left with no session open and no client.
// The other kind's wire (its login path, its client, its max_role form) is
// refused. Where the SDK and the emulator disagree, the SDK is right.
func TestSDKArrayEmulator(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	sdkDir := installArraysSDK(t)

	for _, tc := range []struct {
		kind, name, os, roleType string
		// wrongLogin is how the array answers the other kind's login path;
		// wrongClient what the other kind's client reads from api_version.
		wrongLogin, wrongClient, roleMsg string
	}{
		{arrayemu.FlashArray, "vault-sdk-fa", "Purity//FA", "str", "(404)", "Failed to retrieve 'versions'", "max_role is a string on a FlashArray"},
		{arrayemu.FlashBlade, "vault_sdk_fb", "Purity//FB", "FixedReference", "(400)", "Failed to retrieve 'version'", "max_role is a reference on a FlashBlade"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			e := StartArrayEmulatorKind(t, tc.kind, "-quiet")
			run := RunArraySDK(t, sdkDir, "testdata/sdk_array_emulator.py", e.SDKEnv()...)
			t.Logf("Pure's %s client: %s", tc.kind, run)
			var r sdkArrayResult
			run.JSON(t, &r)

			if r.Created.Name != tc.name || r.Created.Enabled || r.Created.ID == "" || r.Created.KeyID == "" {
				t.Errorf("created %+v: want %s, disabled, with id and key_id", r.Created, tc.name)
			}
			if r.Duplicate.Status != 400 || r.Duplicate.Message != "Name already in use." || r.Duplicate.Context != tc.name {
				t.Errorf("a second create of %s: %+v", tc.name, r.Duplicate)
			}
			l := r.Listed
			if l.Name != tc.name || !l.Enabled || l.Issuer != "vault_sdk_issuer" || l.MaxRole != "readonly" || l.MaxRoleType != tc.roleType ||
				l.TTLMS != 3600000 || l.ID != r.Created.ID || l.KeyID != r.Created.KeyID || !l.PublicKeyMatches {
				t.Errorf("listed by the SDK: %+v; want enabled, max_role readonly as a %s, the ids and key it was created with", l, tc.roleType)
			}
			if r.Missing.Status != 400 || !strings.Contains(r.Missing.Message, "does not exist") {
				t.Errorf("get_api_clients of an unknown name: %+v", r.Missing)
			}
			if len(r.ArraysSession) != 1 || r.ArraysSession[0].OS != tc.os {
				t.Errorf("get_arrays with the session: %+v, want one %s", r.ArraysSession, tc.os)
			}
			want := r.ArraysSession[0].Name
			if len(r.ArraysOAuth) != 1 || r.ArraysOAuth[0] != want || len(r.ArraysIDToken) != 1 || r.ArraysIDToken[0] != want {
				t.Errorf("get_arrays with the SDK's OAuth %v and with id_token %v, want [%s]", r.ArraysOAuth, r.ArraysIDToken, want)
			}
			if r.ReadonlyDelete.Status != 403 {
				t.Errorf("a readonly client's token deleting an API client: HTTP %d, want 403", r.ReadonlyDelete.Status)
			}
			if r.AfterDelete.Status != 400 || !strings.Contains(r.OAuthAfter.Error, "Could not retrieve a new access token") {
				t.Errorf("after the delete: get %+v, the OAuth client %+v; want gone and refused", r.AfterDelete, r.OAuthAfter)
			}
			if s := r.Sessions; s["after_login"] != 1 || s["after_close"] != 0 || s["before_exit"] != 1 {
				t.Errorf("open sessions seen by the script: %v; want 1 after login, 0 once closed, 1 for the client left to exit", s)
			}
			if len(r.ClientsLeft) != 0 {
				t.Errorf("clients left on the array: %v", r.ClientsLeft)
			}
			w := r.WrongKind
			if !strings.Contains(w.Login, "Failed to retrieve session token") || !strings.Contains(w.Login, tc.wrongLogin) {
				t.Errorf("the other kind's login path: %q, want refused %s", w.Login, tc.wrongLogin)
			}
			if !strings.Contains(w.Client, tc.wrongClient) {
				t.Errorf("the other kind's client: %q, want %q", w.Client, tc.wrongClient)
			}
			if w.Model != "ValidationError" {
				t.Errorf("the SDK's model took the other kind's max_role form: %q", w.Model)
			}
			if w.MaxRole.Status != 400 || len(w.MaxRole.Body.Errors) != 1 || w.MaxRole.Body.Errors[0].Context != "max_role" ||
				!strings.Contains(w.MaxRole.Body.Errors[0].Message, tc.roleMsg) {
				t.Errorf("the other kind's max_role sent raw: %+v, want 400 %q", w.MaxRole, tc.roleMsg)
			}

			// The script has exited: the SDK logged out what it left open.
			st := e.Stats(t)
			t.Logf("emulator stats: %+v", st)
			if st.OpenSessions != 0 || st.SessionsOpened != 2 || st.Logouts != 2 || st.Clients != 0 {
				t.Errorf("after the SDK's run: %d sessions open (%d opened, %d logged out), %d clients; want 0, 2, 2, 0",
					st.OpenSessions, st.SessionsOpened, st.Logouts, st.Clients)
			}
			if st.TokensIssued != 2 || st.IssuedByClient[tc.name] != 2 || st.Requests[arrayemu.StepLogin] != 2 {
				t.Errorf("tokens issued %d (%v), logins %d; want 2 tokens (OAuth, id_token), 2 logins", st.TokensIssued, st.IssuedByClient, st.Requests[arrayemu.StepLogin])
			}
		})
	}

	// Faults as Pure's SDK meets them: it retries a 503 and succeeds; a
	// create applied and then dropped raises in the SDK, yet the client
	// exists on the array.
	t.Run("faults", func(t *testing.T) {
		e := StartArrayEmulatorKind(t, arrayemu.FlashArray, "-quiet")
		e.Fault(t,
			arrayemu.Fault{Step: arrayemu.StepCreate, Mode: arrayemu.ModeError, Status: 503},
			arrayemu.Fault{Step: arrayemu.StepCreate, Mode: arrayemu.ModeAppliedDrop, After: 1},
		)
		run := RunArraySDKSnippet(t, sdkDir, sdkFaultSnippet, e.SDKEnv()...)
		var r struct {
			Retried int      `json:"retried"`
			Dropped string   `json:"dropped"`
			Listed  []string `json:"listed"`
		}
		run.JSON(t, &r)
		if r.Retried != 200 || !strings.Contains(r.Dropped, "Remote end closed connection without response") ||
			strings.Join(r.Listed, ",") != "dropped,retried" {
			t.Errorf("SDK under faults: %+v; want the 503 retried to 200, the dropped create raising, both clients on the array", r)
		}
		if st := e.Stats(t); st.FaultsFired != 2 || st.OpenSessions != 0 || len(e.PendingFaults(t)) != 0 {
			t.Errorf("faults fired %d, sessions open %d, pending %v", st.FaultsFired, st.OpenSessions, e.PendingFaults(t))
		}
	})
}

const sdkFaultSnippet = `
import json, os
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pypureclient import flasharray
from pypureclient.configuration import Configuration
from pypureclient.flasharray.FA_2_30 import models

cfg = Configuration(ssl_ca_cert=os.environ["ARRAY_CA_FILE"])
cfg.verify_ssl = True
c = flasharray.Client(os.environ["ARRAY_TARGET"], version=os.environ["ARRAY_VERSION"],
                      api_token=os.environ["ARRAY_API_TOKEN"], configuration=cfg, verify_ssl=True)
pub = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
body = models.ApiClientPost(issuer="iss", public_key=pub, max_role="readonly")
out = {"retried": c.post_api_clients(names=["retried"], api_clients=body).status_code}
try:
    out["dropped"] = str(c.post_api_clients(names=["dropped"], api_clients=body).status_code)
except Exception as e:
    out["dropped"] = "%s: %s" % (type(e).__name__, e)
out["listed"] = sorted(i.name for i in c.get_api_clients().items)
print(json.dumps(out))
`
