"""Pure's own array SDK (py-pure-client 1.90.0) against `pure1-emulator array`.

Run by TestSDKArrayEmulator (backend/e2e/sdk_array_emulator_test.go) with
the arrays SDK on PYTHONPATH, in a temporary working directory (the SDK
writes its access token there). It drives the kind's client as a user of
the SDK would, checks what the SDK hands back against the SDK's own models,
and prints one JSON object on stdout for the Go test to judge; progress goes
to stderr. Any check that fails raises, so the script exits non-zero.

Environment: ARRAY_KIND, ARRAY_TARGET, ARRAY_CA_FILE, ARRAY_API_TOKEN,
ARRAY_VERSION, ARRAY_ADMIN_URL (see sdk_array_common.py).
"""

import json
import os
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pypureclient import _helpers
from pypureclient.api_token_manager import APITokenManager
from pypureclient.exceptions import PureError
from pypureclient._transport.rest import ApiException

from sdk_array_common import (API_TOKEN, FA, KIND, OTHER_SDK, TARGET, VERSION, check, client, close, config,
                              error_of, log, models, ok, open_sessions, strict)

# The names each kind takes: a FlashBlade refuses '-'.
NAME = "vault-sdk-fa" if FA else "vault_sdk_fb"
ISSUER = "vault_sdk_issuer"
TTL_MS = 3600000
USER = "pureuser"

result = {"kind": KIND, "sessions": {}}


# ---- keys --------------------------------------------------------------------
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
public_pem = key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
# paramiko, which the SDK reads keys with, takes PKCS#1 ("BEGIN RSA PRIVATE KEY").
key_file = os.path.abspath("api-client-key.pem")
with open(key_file, "wb") as f:
    f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()))

# ---- the admin session: create, enable, list, arrays -------------------------
admin = client(api_token=API_TOKEN)
if FA:  # the FlashBlade client has no get_rest_version
    check(admin.get_rest_version() == VERSION, "REST version %s" % admin.get_rest_version())
result["sessions"]["after_login"] = open_sessions()
log("logged in at REST", VERSION)

if FA:
    body = models.ApiClientPost(issuer=ISSUER, public_key=public_pem, max_role="readonly",
                                access_token_ttl_in_ms=TTL_MS)
    created = ok(admin.post_api_clients(names=[NAME], api_clients=body), "post_api_clients")
else:
    body = models.ApiClientsPost(issuer=ISSUER, public_key=public_pem,
                                 max_role=models.ReferenceWritable(name="readonly"),
                                 access_token_ttl_in_ms=TTL_MS)
    created = ok(admin.post_api_clients(names=[NAME], api_client=body), "post_api_clients")
check(len(created) == 1, "post_api_clients gave %d items" % len(created))
c = strict(created[0])
check(c.enabled is False, "a new client is enabled")
result["created"] = {"name": c.name, "enabled": c.enabled, "id": c.id, "key_id": c.key_id}
log("created", c.name, "disabled")

again = admin.post_api_clients(names=[NAME], api_clients=body) if FA else \
    admin.post_api_clients(names=[NAME], api_client=body)
result["duplicate"] = error_of(again)

patch = models.ApiClientPatch(enabled=True) if FA else models.ApiClient(enabled=True)
patched = ok(admin.patch_api_clients(names=[NAME], api_clients=patch), "patch_api_clients")
check(strict(patched[0]).enabled is True, "patch did not enable")

listed = [strict(i) for i in ok(admin.get_api_clients(), "get_api_clients")]
mine = [i for i in listed if i.name == NAME]
check(len(mine) == 1, "get_api_clients lists %s" % [i.name for i in listed])
m = mine[0]
role = m.max_role if FA else m.max_role.name
check(isinstance(m.max_role, str) if FA else type(m.max_role).__name__ == "FixedReference",
      "max_role is a %s" % type(m.max_role).__name__)
check(isinstance(m.access_token_ttl_in_ms, int) and isinstance(m.enabled, bool), "field types")
result["listed"] = {
    "name": m.name, "enabled": m.enabled, "issuer": m.issuer, "max_role": role,
    "max_role_type": type(m.max_role).__name__, "ttl_ms": m.access_token_ttl_in_ms,
    "id": m.id, "key_id": m.key_id, "public_key_matches": m.public_key == public_pem,
}
by_name = [strict(i) for i in ok(admin.get_api_clients(names=[NAME]), "get_api_clients(names)")]
check([i.id for i in by_name] == [m.id], "get_api_clients(names) %s" % by_name)
result["missing"] = error_of(admin.get_api_clients(names=[NAME + "0"]))

arrays = [strict(a) for a in ok(admin.get_arrays(), "get_arrays (session)")]
result["arrays_session"] = [{"name": a.name, "os": a.os, "version": a.version} for a in arrays]
log("listed", NAME, "enabled with max_role", role, "; arrays:", result["arrays_session"])

# ---- the SDK's own OAuth: it signs the JWT and exchanges it ------------------
oauth = client(client_id=m.id, key_id=m.key_id, issuer=ISSUER, username=USER, private_key_file=key_file)
oauth_arrays = [strict(a) for a in ok(oauth.get_arrays(), "get_arrays (OAuth)")]
result["arrays_oauth"] = [a.name for a in oauth_arrays]

# ...and a ready JWT as id_token, as a Vault jwt role hands one out.
now = int(time.time())
id_token = jwt.encode({"iss": ISSUER, "aud": m.id, "sub": USER, "iat": now, "exp": now + 600},
                      key, algorithm="RS256", headers={"kid": m.key_id})
by_jwt = client(id_token=id_token)
result["arrays_id_token"] = [a.name for a in ok(by_jwt.get_arrays(), "get_arrays (id_token)")]
log("OAuth and id_token clients listed arrays")

# A token of this client may read, not manage: max_role readonly.
result["readonly_delete"] = {"status": by_jwt.delete_api_clients(names=[NAME]).status_code}

# ---- delete; the OAuth client stops working ----------------------------------
deleted = admin.delete_api_clients(names=[NAME])
check(deleted.status_code == 200, "delete_api_clients: %s" % deleted.status_code)
result["after_delete"] = error_of(admin.get_api_clients(names=[NAME]))
try:
    gone = oauth.get_arrays()
    result["oauth_after_delete"] = {"status": gone.status_code}
except PureError as e:
    # On a 401 the SDK exchanges its JWT again, which the array now refuses.
    result["oauth_after_delete"] = {"error": str(e)}

close(admin)
result["sessions"]["after_close"] = open_sessions()
log("deleted; sessions open after the client closed:", result["sessions"]["after_close"])

# ---- the other kind's wire is refused ----------------------------------------
transport = _helpers.create_transport_config(target=TARGET, configuration=config(), ssl_cert=None, verify_ssl=True)
wrong = {}
# The other kind's login path: a FlashBlade's /api/login on a FlashArray, a
# FlashArray's /api/<ver>/login on a FlashBlade.
try:
    APITokenManager(api_token=API_TOKEN, configuration=transport, version=VERSION if not FA else None)
    wrong["login"] = "accepted"
except PureError as e:
    wrong["login"] = str(e)
# The other kind's client fails at version discovery.
try:
    client(sdk=OTHER_SDK, version=None, api_token=API_TOKEN)
    wrong["client"] = "accepted"
except PureError as e:
    wrong["client"] = str(e)
# The other kind's max_role form. The SDK's own model refuses it first...
try:
    if FA:
        models.ApiClientPost(issuer=ISSUER, public_key=public_pem, max_role={"name": "readonly"})
    else:
        models.ApiClientsPost(issuer=ISSUER, public_key=public_pem, max_role="readonly")
    wrong["model"] = "accepted"
except Exception as e:  # pydantic's ValidationError
    wrong["model"] = type(e).__name__
# ...so it goes raw, through the SDK's transport, with a session of its own.
raw = client(api_token=API_TOKEN)
try:
    raw._api_client.call_api(
        "/api/%s/api-clients" % VERSION, "POST",
        query_params=[("names", NAME)],
        header_params={"Content-Type": "application/json", "Accept": "application/json"},
        body={"issuer": ISSUER, "public_key": public_pem, "access_token_ttl_in_ms": TTL_MS,
              "max_role": {"name": "readonly"} if FA else "readonly"},
        response_types_map={"200": "bytearray"}, _return_http_data_only=True)
    wrong["max_role"] = {"status": 200}
except ApiException as e:
    wrong["max_role"] = {"status": e.status, "body": json.loads(e.body)}
result["clients_left"] = [i.name for i in ok(raw.get_api_clients(), "get_api_clients (after)")]
# raw is not closed here: the SDK logs it out as the program exits, which
# the Go test sees in the emulator's stats.
result["wrong_kind"] = wrong
result["sessions"]["before_exit"] = open_sessions()
print(json.dumps(result))
