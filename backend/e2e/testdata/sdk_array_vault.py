"""Pure's own array SDK (py-pure-client 1.90.0) as the judge of what Vault did.

Run by TestArrayManaged (backend/e2e/array_test.go) with the arrays SDK on
PYTHONPATH, in a temporary working directory (the SDK writes its access
token there). It looks at the array the way an operator's script would:

  - logged in with the array's API token, it lists the API clients and
    prints each one's name, enabled flag and max_role as the SDK's model
    parsed it (a string on a FlashArray, a reference on a FlashBlade);
  - with VAULT_JWT (the JWT of a Vault role of credential_type=jwt) as its
    id_token, it exchanges it at the array itself and lists arrays;
  - it closes its own session, and reports the array's open sessions.

It prints one JSON object on stdout; the Go test judges it.

Environment: ARRAY_KIND, ARRAY_TARGET, ARRAY_CA_FILE, ARRAY_API_TOKEN,
ARRAY_VERSION, ARRAY_ADMIN_URL (see sdk_array_common.py), and VAULT_JWT
(optional).
"""

import json
import os

from sdk_array_common import API_TOKEN, FA, KIND, client, close, log, ok, open_sessions

result = {"kind": KIND}
admin = client(api_token=API_TOKEN)
clients = []
for c in ok(admin.get_api_clients(), "get_api_clients"):
    role = c.max_role if FA else (c.max_role.name if c.max_role is not None else None)
    clients.append({"name": c.name, "enabled": c.enabled, "max_role": role,
                    "max_role_type": type(c.max_role).__name__, "id": c.id})
result["api_clients"] = sorted(clients, key=lambda c: c["name"])

if os.environ.get("VAULT_JWT"):
    by_jwt = client(id_token=os.environ["VAULT_JWT"])
    result["arrays_id_token"] = [a.name for a in ok(by_jwt.get_arrays(), "get_arrays (Vault's JWT as id_token)")]

# The SDK's own session ends as the SDK ends it (FlashBlade: logout();
# FlashArray: at exit, which is called here).
close(admin)
result["open_sessions"] = open_sessions()
print(json.dumps(result))
log("judged", KIND, "clients:", [c["name"] for c in clients])
