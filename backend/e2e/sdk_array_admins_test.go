package e2e

import (
	"strings"
	"testing"

	arrayemu "github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray/emulator"
)

// sdkAdminsResult is what testdata/sdk_array_admins.py prints.
type sdkAdminsResult struct {
	Kind     string         `json:"kind"`
	Sessions map[string]int `json:"sessions"`
	Created  struct {
		Name          string `json:"name"`
		Role          string `json:"role"`
		RoleType      string `json:"role_type"`
		IsLocal       bool   `json:"is_local"`
		HasID         bool   `json:"has_id"`
		HasToken      bool   `json:"has_token"`
		PasswordShown bool   `json:"password_shown"`
	} `json:"created"`
	Refused struct {
		BadName     sdkError `json:"bad_name"`
		Reserved    sdkError `json:"reserved"`
		Taken       sdkError `json:"taken"`
		UnknownRole sdkError `json:"unknown_role"`
		RoleModel   string   `json:"role_model"`
		ExtraField  struct {
			Status int `json:"status"`
			Body   struct {
				Errors []sdkError `json:"errors"`
			} `json:"body"`
		} `json:"extra_field"`
	} `json:"refused"`
	Token struct {
		Owner          string `json:"owner"`
		ItemType       string `json:"item_type"`
		TTLMS          int64  `json:"ttl_ms"`
		CreatedNearNow bool   `json:"created_near_now"`
		Shape          string `json:"shape"`
	} `json:"token"`
	SecondToken  sdkError          `json:"second_token"`
	TokensListed map[string]string `json:"tokens_listed"`
	AdminListed  struct {
		Token string `json:"token"`
		// Locked is shown to an array_admin (pureuser here), null to others.
		Locked *bool `json:"locked"`
	} `json:"admin_listed"`
	User struct {
		Arrays       []string `json:"arrays"`
		Admins       []string `json:"admins"`
		PostAdmins   sdkError `json:"post_admins"`
		DeleteAdmins sdkError `json:"delete_admins"`
		OtherToken   sdkError `json:"other_token"`
		OwnExposed   []bool   `json:"own_exposed"`
	} `json:"user"`
	Expired     string `json:"expired"`
	AfterDelete struct {
		Login      string   `json:"login"`
		Admins     []string `json:"admins"`
		GetByName  sdkError `json:"get_by_name"`
		Tokens     []string `json:"tokens"`
		UserClient string   `json:"user_client"`
		AdminsLeft []string `json:"admins_left"`
	} `json:"after_delete"`
}

// TestSDKArrayAdmins holds the emulator's admins and API tokens to Pure's own
// code, as Vault's API-token roles will use them: Pure's FlashArray REST 2.30
// and FlashBlade REST 2.17 clients, logged in with the emulator's API token,
// create a readonly local user (post_admins, the kind's role reference) and
// a token with a timeout for it (post_admins_api_tokens: names= on a
// FlashArray, admin_names= on a FlashBlade); a new Client(target,
// api_token=<that token>) lists arrays with the user's rights and is refused
// admin calls (403); a second token, a bad name, a reserved name and the
// other version's fields are refused (400); a token past its timeout and the
// token of a deleted user no longer log in; get_admins no longer shows the
// user; no session is left open.
func TestSDKArrayAdmins(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	sdkDir := installArraysSDK(t)

	for _, tc := range []struct {
		kind, arrayName, roleType, tokenShape, extraMsg string
		hasID                                           bool
	}{
		{arrayemu.FlashArray, "emulated-flasharray", "AdminRole", "36", "came with REST 2.36", false},
		{arrayemu.FlashBlade, "emulated-flashblade", "FixedReference", "T-38", "takes password, public_key, role", true},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			e := StartArrayEmulatorKind(t, tc.kind, "-quiet")
			run := RunArraySDK(t, sdkDir, "testdata/sdk_array_admins.py", e.SDKEnv()...)
			t.Logf("Pure's %s client: %s", tc.kind, run)
			var r sdkAdminsResult
			run.JSON(t, &r)

			c := r.Created
			if c.Name != "vault-sdk-ro" || c.Role != "readonly" || c.RoleType != tc.roleType || !c.IsLocal || c.HasID != tc.hasID || c.HasToken || c.PasswordShown {
				t.Errorf("post_admins gave %+v; want vault-sdk-ro, readonly as a %s, local, id %t, no token, no password", c, tc.roleType, tc.hasID)
			}
			f := r.Refused
			for name, got := range map[string]struct {
				e       sdkError
				context string
				msg     string
			}{
				"a name with '_' and capitals":   {f.BadName, "Vault_SDK", "Invalid user name"},
				"pureuser":                       {f.Reserved, "pureuser", "is reserved"},
				"a taken name":                   {f.Taken, "vault-sdk-ro", "Name already in use."},
				"an unknown role":                {f.UnknownRole, "role", "is not a role"},
				"a second token":                 {r.SecondToken, "vault-sdk-ro", "already has an API token"},
				"get_admins of the deleted user": {r.AfterDelete.GetByName, "vault-sdk-ro", "User does not exist."},
			} {
				if got.e.Status != 400 || got.e.Context != got.context || !strings.Contains(got.e.Message, got.msg) {
					t.Errorf("%s: %+v, want 400 %q with context %q", name, got.e, got.msg, got.context)
				}
			}
			if f.RoleModel != "ValidationError" {
				t.Errorf("the SDK's AdminPost took a role given as a string: %q", f.RoleModel)
			}
			if x := f.ExtraField; x.Status != 400 || len(x.Body.Errors) != 1 || x.Body.Errors[0].Context != "management_access_policies" || !strings.Contains(x.Body.Errors[0].Message, tc.extraMsg) {
				t.Errorf("management_access_policies at %s: %+v, want 400 %q", e.Version(), x, tc.extraMsg)
			}

			tok := r.Token
			if tok.Owner != "vault-sdk-ro" || tok.ItemType != "AdminApiToken" || tok.TTLMS != 3600000 || !tok.CreatedNearNow || tok.Shape != tc.tokenShape {
				t.Errorf("post_admins_api_tokens gave %+v; want vault-sdk-ro's, expiring 1h after creation, shaped %s", tok, tc.tokenShape)
			}
			if len(r.TokensListed) != 2 || r.TokensListed["pureuser"] != "****" || r.TokensListed["vault-sdk-ro"] != "****" || r.AdminListed.Token != "****" || r.AdminListed.Locked == nil || *r.AdminListed.Locked {
				t.Errorf("tokens listed %v, get_admins shows token %q locked %v; want both masked, locked false", r.TokensListed, r.AdminListed.Token, r.AdminListed.Locked)
			}

			u := r.User
			if strings.Join(u.Arrays, ",") != tc.arrayName || strings.Join(u.Admins, ",") != "ops,pureuser,vault-sdk-ro" {
				t.Errorf("the user's token listed arrays %v and admins %v", u.Arrays, u.Admins)
			}
			for name, got := range map[string]sdkError{"post_admins": u.PostAdmins, "delete_admins": u.DeleteAdmins, "another user's token": u.OtherToken} {
				if got.Status != 403 || !strings.Contains(got.Message, "needs the array_admin role; this session's user vault-sdk-ro has role readonly") {
					t.Errorf("the readonly user's %s: %+v, want 403 naming the role", name, got)
				}
			}
			if len(u.OwnExposed) != 1 || !u.OwnExposed[0] {
				t.Errorf("the user's own token with expose_api_token: %v", u.OwnExposed)
			}

			if !strings.Contains(r.Expired, "Failed to retrieve session token") || !strings.Contains(r.Expired, "has expired") || !strings.Contains(r.Expired, "(401)") {
				t.Errorf("a token past its timeout: %q, want the SDK's login refused 401 as expired", r.Expired)
			}
			a := r.AfterDelete
			for name, got := range map[string]string{"a new client": a.Login, "the user's client": a.UserClient} {
				if !strings.Contains(got, "Failed to retrieve session token") || !strings.Contains(got, "Invalid api-token.") || !strings.Contains(got, "(401)") {
					t.Errorf("%s with the deleted user's token: %q, want the SDK's login refused", name, got)
				}
			}
			if strings.Join(a.Admins, ",") != "ops,pureuser,vault-sdk-short" || strings.Join(a.Tokens, ",") != "pureuser,vault-sdk-short" || strings.Join(a.AdminsLeft, ",") != "ops,pureuser" {
				t.Errorf("after the deletes: admins %v, tokens %v, finally %v", a.Admins, a.Tokens, a.AdminsLeft)
			}
			if s := r.Sessions; s["after_login"] != 1 || s["with_user"] != 2 || s["at_end"] != 0 {
				t.Errorf("open sessions seen by the script: %v; want 1, 2 with the user's client, 0 at the end", s)
			}

			// The script has exited: nothing of it is left on the array.
			st := e.Stats(t)
			t.Logf("emulator stats: %+v", st)
			if st.OpenSessions != 0 || st.Users != 2 || st.UsersCreated != 2 || st.UsersDeleted != 2 || st.APITokensCreated != 2 || st.APITokensDeleted != 2 {
				t.Errorf("after the SDK's run: %d sessions open, %d users (%d created, %d deleted), tokens %d created, %d deleted; want 0, 2 (2, 2), 2, 2",
					st.OpenSessions, st.Users, st.UsersCreated, st.UsersDeleted, st.APITokensCreated, st.APITokensDeleted)
			}
			if st.LoginsByUser["vault-sdk-ro"] != 1 || st.LoginsByUser["vault-sdk-short"] != 1 || st.ExpiredTokenLogins != 1 || st.SessionsEndedByUserDelete != 2 {
				t.Errorf("logins by user %v, expired-token logins %d, sessions ended by a delete %d; want 1 each, 1, 2",
					st.LoginsByUser, st.ExpiredTokenLogins, st.SessionsEndedByUserDelete)
			}
			var names []string
			for _, u := range e.Users(t) {
				names = append(names, u.Name)
				if u.Name == "pureuser" && (!u.BuiltIn || !u.HasAPIToken || u.APITokenExpiresAt != 0) {
					t.Errorf("pureuser: %+v, want built in with a token that never expires", u)
				}
			}
			if strings.Join(names, ",") != "ops,pureuser" {
				t.Errorf("users left on the array: %v", names)
			}
		})
	}
}

// TestSDKArrayAdminsFaults: faults at the new steps as Pure's SDK meets
// them. It retries a 503 at post_admins and succeeds; a token created and
// then dropped raises in the SDK, yet the user holds it, so a plain retry
// is refused (one token per user) and the way out is Pure's Ansible
// modules' own: delete, then create.
func TestSDKArrayAdminsFaults(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	sdkDir := installArraysSDK(t)
	e := StartArrayEmulatorKind(t, arrayemu.FlashBlade, "-quiet")
	e.Fault(t,
		arrayemu.Fault{Step: arrayemu.StepAdminsPost, Mode: arrayemu.ModeError, Status: 503},
		arrayemu.Fault{Step: arrayemu.StepAPITokensPost, Mode: arrayemu.ModeAppliedDrop},
	)
	run := RunArraySDKSnippet(t, sdkDir, sdkAdminsFaultSnippet, e.SDKEnv()...)
	var r struct {
		Created int      `json:"created"`
		Dropped string   `json:"dropped"`
		Retry   sdkError `json:"retry"`
		Renewed int      `json:"renewed"`
		Listed  []string `json:"listed"`
	}
	run.JSON(t, &r)
	if r.Created != 200 || !strings.Contains(r.Dropped, "Remote end closed connection without response") ||
		r.Retry.Status != 400 || !strings.Contains(r.Retry.Message, "already has an API token") || r.Renewed != 200 ||
		strings.Join(r.Listed, ",") != "vault-sdk-f" {
		t.Errorf("SDK under faults: %+v; want the 503 retried to 200, the dropped token raising, its retry refused, delete-then-create working", r)
	}
	st := e.Stats(t)
	// Two tokens deleted: the dropped one by the script, the renewed one
	// with its user.
	if st.FaultsFired != 2 || st.APITokensCreated != 2 || st.APITokensDeleted != 2 || st.LoginsByUser["vault-sdk-f"] != 1 || st.OpenSessions != 0 || len(e.PendingFaults(t)) != 0 {
		t.Errorf("faults fired %d, tokens created %d deleted %d, logins %v, sessions open %d; want 2, 2, 2, one by vault-sdk-f, 0",
			st.FaultsFired, st.APITokensCreated, st.APITokensDeleted, st.LoginsByUser, st.OpenSessions)
	}
}

const sdkAdminsFaultSnippet = `
import json, os
from pypureclient import flashblade
from pypureclient.configuration import Configuration
from pypureclient.flashblade.FB_2_17 import models

cfg = Configuration(ssl_ca_cert=os.environ["ARRAY_CA_FILE"])
cfg.verify_ssl = True
def client(token):
    return flashblade.Client(os.environ["ARRAY_TARGET"], version=os.environ["ARRAY_VERSION"],
                             api_token=token, configuration=cfg, verify_ssl=True)
c = client(os.environ["ARRAY_API_TOKEN"])
body = models.AdminPost(password="Vault-generated-1", role=models.ReferenceWritable(name="readonly"))
out = {"created": c.post_admins(names=["vault-sdk-f"], admin=body).status_code}
try:
    out["dropped"] = str(c.post_admins_api_tokens(admin_names=["vault-sdk-f"], timeout=60000).status_code)
except Exception as e:
    out["dropped"] = "%s: %s" % (type(e).__name__, e)
retry = c.post_admins_api_tokens(admin_names=["vault-sdk-f"], timeout=60000)
out["retry"] = {"status": retry.status_code, "message": retry.errors[0].message, "context": retry.errors[0].context}
c.delete_admins_api_tokens(admin_names=["vault-sdk-f"])
renewed = c.post_admins_api_tokens(admin_names=["vault-sdk-f"], timeout=60000)
out["renewed"] = renewed.status_code
user = client(list(renewed.items)[0].api_token.token)
out["listed"] = [a.name for a in c.get_admins(names=["vault-sdk-f"]).items]
user.logout()
c.delete_admins(names=["vault-sdk-f"])
c.logout()
print(json.dumps(out))
`
