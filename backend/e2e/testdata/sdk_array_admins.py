"""Pure's own array SDK (py-pure-client 1.90.0) against `pure1-emulator array`:
local users (admins) and their API tokens, as Vault's API-token roles use them.

Run by TestSDKArrayAdmins (backend/e2e/sdk_array_admins_test.go) with the
arrays SDK on PYTHONPATH, in a temporary working directory. Logged in with
pureuser's API token, it creates a readonly user and an API token with a
timeout for it, as Pure's Ansible collections do (purefa_user, purefb_user);
a new Client(target, api_token=<that token>) lists arrays with the user's
rights and is refused admin calls; a second user's short token expires and
is refused; once the user is deleted its token is refused and it is gone
from get_admins. Every item the SDK hands back is re-validated against the
SDK's own models. It prints one JSON object on stdout for the Go test to
judge; any check that fails raises, so the script exits non-zero.

Environment: ARRAY_KIND, ARRAY_TARGET, ARRAY_CA_FILE, ARRAY_API_TOKEN,
ARRAY_VERSION, ARRAY_ADMIN_URL (see sdk_array_common.py).
"""

import json
import time

from pypureclient.exceptions import PureError
from pypureclient._transport.rest import ApiException

from sdk_array_common import (API_TOKEN, FA, KIND, VERSION, check, client, close, error_of, log, models, ok,
                              open_sessions, strict)

USER = "vault-sdk-ro"      # a name both kinds take for a local user
SHORT = "vault-sdk-short"  # a user whose token expires during the run
PASSWORD = "Vault-generated-1"
TIMEOUT_MS = 3600000
SHORT_MS = 1500

result = {"kind": KIND, "sessions": {}}


def role(name):
    """AdminPost's role: a FlashArray's AdminRole, a FlashBlade's ReferenceWritable."""
    return models.AdminRole(name=name) if FA else models.ReferenceWritable(name=name)


def new_admin(name, role_name):
    return models.AdminPost(password=PASSWORD, role=role(name=role_name))


def tokens_of(names):
    """api-tokens name users by names= on a FlashArray, admin_names= on a FlashBlade."""
    return {"names": names} if FA else {"admin_names": names}


def token_owner(item):
    return item.name if FA else item.admin.name


def login_error(token):
    """A client with token: the SDK logs in as it is built."""
    try:
        client(api_token=token)
        return "accepted"
    except PureError as e:
        return str(e)


# ---- pureuser creates a readonly user and its token ---------------------------
admin = client(api_token=API_TOKEN)
result["sessions"]["after_login"] = open_sessions()

created = [strict(i) for i in ok(admin.post_admins(names=[USER], admin=new_admin(USER, "readonly")), "post_admins")]
check(len(created) == 1, "post_admins gave %d items" % len(created))
c = created[0]
result["created"] = {
    "name": c.name, "role": c.role.name, "role_type": type(c.role).__name__, "is_local": c.is_local,
    "has_id": getattr(c, "id", None) is not None, "has_token": getattr(c, "api_token", None) is not None,
    "password_shown": getattr(c, "password", None) is not None,
}
log("created", c.name, "role", c.role.name)

# What the array refuses, as the SDK reports it.
result["refused"] = {
    "bad_name": error_of(admin.post_admins(names=["Vault_SDK"], admin=new_admin("x", "readonly"))),
    "reserved": error_of(admin.post_admins(names=["pureuser"], admin=new_admin("x", "readonly"))),
    "taken": error_of(admin.post_admins(names=[USER], admin=new_admin(USER, "readonly"))),
    "unknown_role": error_of(admin.post_admins(names=["vault-sdk-x"], admin=new_admin("x", "superuser"))),
}
# The SDK's own model refuses a role given as a string...
try:
    models.AdminPost(password=PASSWORD, role="readonly")
    result["refused"]["role_model"] = "accepted"
except Exception as e:  # pydantic's ValidationError
    result["refused"]["role_model"] = type(e).__name__
# ...and a field the kind's AdminPost has not at this version goes raw.
extra = {"management_access_policies": [{"name": "x"}]} if FA else {"management_access_policies": []}
try:
    admin._api_client.call_api(
        "/api/%s/admins" % VERSION, "POST", query_params=[("names", "vault-sdk-x")],
        header_params={"Content-Type": "application/json", "Accept": "application/json"},
        body=dict({"password": PASSWORD, "role": {"name": "readonly"}}, **extra),
        response_types_map={"200": "bytearray"}, _return_http_data_only=True)
    result["refused"]["extra_field"] = {"status": 200}
except ApiException as e:
    result["refused"]["extra_field"] = {"status": e.status, "body": json.loads(e.body)}

made = [strict(i) for i in ok(admin.post_admins_api_tokens(timeout=TIMEOUT_MS, **tokens_of([USER])), "post_admins_api_tokens")]
check(len(made) == 1, "post_admins_api_tokens gave %d items" % len(made))
t = made[0]
token = t.api_token.token
check(isinstance(t.api_token.created_at, int) and isinstance(t.api_token.expires_at, int), "created_at/expires_at types")
result["token"] = {
    "owner": token_owner(t), "item_type": type(t).__name__,
    "ttl_ms": t.api_token.expires_at - t.api_token.created_at,
    "created_near_now": abs(t.api_token.created_at - int(time.time() * 1000)) < 60000,
    "shape": ("T-" if token.startswith("T-") else "") + str(len(token)),
}
result["second_token"] = error_of(admin.post_admins_api_tokens(timeout=TIMEOUT_MS, **tokens_of([USER])))

listed = [strict(i) for i in ok(admin.get_admins_api_tokens(), "get_admins_api_tokens")]
result["tokens_listed"] = {token_owner(i): i.api_token.token for i in listed}
check(token not in json.dumps(result["tokens_listed"]), "get_admins_api_tokens shows the user's token")
by_name = [strict(i) for i in ok(admin.get_admins(names=[USER]), "get_admins(names)")]
result["admin_listed"] = {"token": by_name[0].api_token.token, "locked": by_name[0].locked}
log("token made for", USER, "; listed:", result["tokens_listed"])

# ---- the user's token, as Client(target, api_token=...) ----------------------
user = client(api_token=token)
result["user"] = {
    "arrays": [strict(a).name for a in ok(user.get_arrays(), "get_arrays (user's token)")],
    "admins": sorted(strict(a).name for a in ok(user.get_admins(), "get_admins (user's token)")),
    "post_admins": error_of(user.post_admins(names=["vault-sdk-x"], admin=new_admin("x", "readonly"))),
    "delete_admins": error_of(user.delete_admins(names=["ops"])),
    "other_token": error_of(user.post_admins_api_tokens(timeout=1000, **tokens_of(["ops"]))),
    "own_exposed": [i.api_token.token == token for i in
                    ok(user.get_admins_api_tokens(expose_api_token=True, **tokens_of([USER])), "own token")],
}
result["sessions"]["with_user"] = open_sessions()
log("the user's client listed", result["user"]["arrays"], "and was refused admin calls")

# ---- a token with a short timeout stops logging in ---------------------------
ok(admin.post_admins(names=[SHORT], admin=new_admin(SHORT, "storage_admin")), "post_admins (short)")
short = strict(ok(admin.post_admins_api_tokens(timeout=SHORT_MS, **tokens_of([SHORT])), "short token")[0])
short_client = client(api_token=short.api_token.token)
ok(short_client.get_arrays(), "get_arrays (short token, before it expires)")
wait = short.api_token.expires_at / 1000.0 - time.time() + 0.3
time.sleep(max(wait, 0))
result["expired"] = login_error(short.api_token.token)
log("the short token after its expiry:", result["expired"])

# ---- delete the user: its token is refused, it is gone -----------------------
check(admin.delete_admins(names=[USER]).status_code == 200, "delete_admins")
result["after_delete"] = {
    "login": login_error(token),
    "admins": sorted(a.name for a in ok(admin.get_admins(), "get_admins (after)")),
    "get_by_name": error_of(admin.get_admins(names=[USER])),
    "tokens": sorted(token_owner(i) for i in ok(admin.get_admins_api_tokens(), "get_admins_api_tokens (after)")),
}
# The user's client holds a session the delete ended: the SDK logs in again
# on the 401, with the deleted user's token, and fails.
try:
    resp = user.get_arrays()
    result["after_delete"]["user_client"] = "HTTP %s" % resp.status_code
except PureError as e:
    result["after_delete"]["user_client"] = str(e)

check(admin.delete_admins(names=[SHORT]).status_code == 200, "delete_admins (short)")
result["after_delete"]["admins_left"] = sorted(a.name for a in ok(admin.get_admins(), "get_admins (end)"))
close(admin)
result["sessions"]["at_end"] = open_sessions()
print(json.dumps(result))
