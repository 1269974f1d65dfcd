#!/usr/bin/python3
"""List Pure1 arrays with Pure's own Python SDK, signed in with Vault's JWT.

    export PURE1_ID_TOKEN="$(vault read -field=jwt pure1/creds/readonly-jwt)"
    PYTHONPATH=.cache/py-pure-client /usr/bin/python3 bootstrap/sdk-list-arrays.py

Nothing here is specific to Vault: the SDK reads PURE1_ID_TOKEN (or
id_token=...) as it would read the JWT of Pure1's token-factory script, and
trades it for an access token itself. That is the point: any script built on
the SDK works with Vault's JWT unchanged.

Environment:
  PURE1_ID_TOKEN     the JWT (required)
  PURE1_API_URL      base URL of another Pure1, e.g. the emulator of `make dev`
                     ($PURE1_EMULATOR_ADDR). Unset: api.pure1.purestorage.com
  PURE1_API_VERSION  the SDK's API version, 1.0 to 1.5 (default 1.5)
  PURE1_PAGE_SIZE    arrays per request (default 100); pages are followed with
                     the continuation_token Pure1 returns

Prints one line per array (name, model, os, version, id, tab-separated) on
stdout, and a summary line on stderr. Exits 1 with Pure1's error otherwise.

The SDK caches the access token in a file named oauth21.0token.access_token in
the working directory, in the clear; this script runs it in a private
temporary directory, so the token does not outlive the run.
"""
import os
import sys
import tempfile


def fail(msg):
    print("sdk-list-arrays: " + msg, file=sys.stderr)
    sys.exit(1)


def client(version, api_url):
    """pure1.Client exactly as any SDK script makes it: with no credential
    argument it reads PURE1_ID_TOKEN from the environment."""
    if api_url:
        # The SDK fixes its host to api.pure1.purestorage.com (pure1/client.py
        # passes that target to create_transport_config); point it elsewhere
        # by wrapping that one call. The token endpoint stays <host>/oauth2/1.0/token.
        import pypureclient.pure1.client as entry
        fixed = entry.create_transport_config

        def elsewhere(target, configuration, ssl_cert, verify_ssl):
            cfg = fixed(target=target, configuration=configuration, ssl_cert=ssl_cert, verify_ssl=verify_ssl)
            cfg.host = api_url.rstrip("/")
            return cfg
        entry.create_transport_config = elsewhere
    from pypureclient import pure1
    return pure1.Client(version=version)


def main():
    if not os.environ.get("PURE1_ID_TOKEN", "").strip():
        fail("PURE1_ID_TOKEN is empty: export PURE1_ID_TOKEN=\"$(vault read -field=jwt pure1/creds/<jwt role>)\"")
    version = os.environ.get("PURE1_API_VERSION", "1.5")
    if version not in ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5"):
        fail("PURE1_API_VERSION=%s: the SDK speaks 1.0 to 1.5" % version)
    try:
        page_size = int(os.environ.get("PURE1_PAGE_SIZE", "100"))
    except ValueError:
        page_size = 0
    if page_size < 1:
        fail("PURE1_PAGE_SIZE must be a whole number >= 1")

    from pypureclient import PureError
    from pypureclient.responses import ValidResponse

    with tempfile.TemporaryDirectory() as private:
        os.chdir(private)
        try:
            c = client(version, os.environ.get("PURE1_API_URL", ""))
        except PureError as e:
            fail("Pure1 refused the JWT: %s (is it a jwt role's, and unexpired?)" % e)
        arrays, pages, token, total = [], 0, None, None
        while True:
            kw = {"limit": page_size}
            if token is not None:
                kw["continuation_token"] = token
            r = c.get_arrays(**kw)
            if not isinstance(r, ValidResponse):
                fail("GET arrays: HTTP %s: %s" % (r.status_code, "; ".join(
                    "%s%s" % (e.message, " (%s)" % e.context if e.context else "") for e in r.errors)))
            pages += 1
            arrays.extend(r.items)
            total, token = r.total_item_count, r.continuation_token
            if token is None:
                break
        os.chdir("/")  # leave the directory so it can be removed

    for a in arrays:
        print("\t".join([a.name, a.model, a.os, a.version, a.id]))
    print("%d arrays in %d page(s); total_item_count %s" % (len(arrays), pages, total), file=sys.stderr)


if __name__ == "__main__":
    main()
