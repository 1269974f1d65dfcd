"""What the sdk_array_*.py scripts share: the emulated array they talk to,
the kind's SDK client, and the checks they judge its answers with.

Python puts a script's own directory on sys.path, so the scripts import this
module wherever RunArraySDK (backend/e2e/array_emulator_harness_test.go)
runs them from.

Environment:
  ARRAY_KIND       flasharray or flashblade
  ARRAY_TARGET     host:port of the emulator
  ARRAY_CA_FILE    the emulator's CA certificate (PEM)
  ARRAY_API_TOKEN  pureuser's API token
  ARRAY_VERSION    the REST version to ask for (2.30 / 2.17)
  ARRAY_ADMIN_URL  the emulator's base URL, for its /emulator/stats
"""

import json
import os
import ssl
import sys
import urllib.request

from pypureclient import flasharray, flashblade
from pypureclient.configuration import Configuration

KIND = os.environ["ARRAY_KIND"]
TARGET = os.environ["ARRAY_TARGET"]
CA_FILE = os.environ["ARRAY_CA_FILE"]
API_TOKEN = os.environ["ARRAY_API_TOKEN"]
VERSION = os.environ["ARRAY_VERSION"]
ADMIN_URL = os.environ["ARRAY_ADMIN_URL"]

FA = KIND == "flasharray"
SDK = flasharray if FA else flashblade
OTHER_SDK = flashblade if FA else flasharray
if FA:
    from pypureclient.flasharray.FA_2_30 import models
else:
    from pypureclient.flashblade.FB_2_17 import models


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def config():
    """The SDK's configuration, verifying the emulator's certificate.

    The Client's ssl_cert parameter is not what urllib3 reads (it reads
    ssl_ca_cert), so the CA goes in through a Configuration."""
    cfg = Configuration(ssl_ca_cert=CA_FILE)
    cfg.verify_ssl = True
    return cfg


def client(sdk=SDK, version=VERSION, **auth):
    return sdk.Client(TARGET, version=version, configuration=config(), verify_ssl=True, **auth)


def close(c):
    """Ends c's session as the SDK ends it: the FlashBlade client has
    logout() (POST /api/logout); the FlashArray client has none, and logs out
    when the program exits (APITokenManager registers close_session with
    atexit), so that is called here as the SDK would call it."""
    if FA:
        c._token_man.close_session()
    else:
        check(c.logout().status_code == 200, "logout")


def open_sessions():
    ctx = ssl.create_default_context(cafile=CA_FILE)
    with urllib.request.urlopen(ADMIN_URL + "/emulator/stats", context=ctx, timeout=10) as r:
        return json.load(r)["open_sessions"]


def strict(item):
    """Re-parse an item the SDK built (without validation) with validation:
    every field must have the model's type, nested references included."""
    return type(item).parse_obj(item.to_dict())


def ok(resp, what):
    check(resp.status_code == 200, "%s: HTTP %s %s" % (what, resp.status_code, getattr(resp, "errors", "")))
    return list(resp.items) if resp.items is not None else []


def error_of(resp):
    check(resp.status_code != 200, "expected a refusal, got 200")
    e = resp.errors[0]
    return {"status": resp.status_code, "message": e.message, "context": e.context}
