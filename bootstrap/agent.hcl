# Vault Agent keeping a valid Pure1 access token in a file, for tools that
# read a bearer token from disk (scripts, exporters, the Pure1 CLI).
#
# The agent reads pure1/creds/readonly through agent-template.ctmpl and writes
# the access token to ./pure1-access-token. The lease is not renewable and ends
# no later than the token, so the agent reads a new one shortly before the
# lease ends (at 85-95% of it) and rewrites the file; add `command` to the
# template stanza to tell the consumer.
#
# Demo (paths are relative to the directory the agent runs in):
#
#   vault policy write pure1-creds bootstrap/policy-pure1-creds.hcl
#   mkdir -p /tmp/pure1-agent && cp bootstrap/agent.hcl bootstrap/agent-template.ctmpl /tmp/pure1-agent/
#   cd /tmp/pure1-agent
#   vault token create -policy=pure1-creds -period=24h -field=token > agent-token
#   vault agent -config=agent.hcl
#
# (make dev prepares such a directory in .dev/agent.) VAULT_ADDR, when set,
# overrides the address below.

pid_file = "./agent.pid"

vault {
  address = "http://127.0.0.1:8200"
}

auto_auth {
  # Demo: a Vault token read from a file. The agent renews it when it is
  # renewable (-period); it does not create new ones.
  method "token_file" {
    config = {
      token_file_path = "./agent-token"
    }
  }

  # Production: AppRole instead of a token file. Set up once with
  #   vault auth enable approle
  #   vault write auth/approle/role/pure1-reader token_policies=pure1-creds \
  #       token_ttl=1h token_max_ttl=4h secret_id_ttl=24h
  #   vault read -field=role_id auth/approle/role/pure1-reader/role-id > /etc/vault-agent/role-id
  #   vault write -f -field=secret_id auth/approle/role/pure1-reader/secret-id > /etc/vault-agent/secret-id
  # then replace the token_file method above with:
  #
  # method "approle" {
  #   mount_path = "auth/approle"
  #   config = {
  #     role_id_file_path                   = "/etc/vault-agent/role-id"
  #     secret_id_file_path                 = "/etc/vault-agent/secret-id"
  #     remove_secret_id_file_after_reading = true
  #   }
  # }
}

template_config {
  # Give up (and exit non-zero, so a supervisor notices) when Vault keeps
  # failing, instead of leaving a stale token in place silently.
  exit_on_retry_failure = true
}

template {
  source               = "./agent-template.ctmpl"
  destination          = "./pure1-access-token"
  perms                = "0600"
  error_on_missing_key = true
  # command = "systemctl reload my-pure1-client"
}
