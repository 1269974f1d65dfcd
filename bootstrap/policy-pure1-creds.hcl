# pure1-creds: read Pure1 credentials from the Pure1 secrets engine (leased
# ones from creds/, shared static tokens from static-creds/), nothing else. Give it to the applications (or their Vault Agent) that call Pure1:
#
#   vault policy write pure1-creds bootstrap/policy-pure1-creds.hcl
#   vault token create -policy=pure1-creds            # or attach it to an auth role
#
# It does not allow reading or writing pure1/config/* (the application keys)
# or pure1/roles/* and static-roles/*, and it does not allow listing anything. If the engine is
# mounted elsewhere than pure1/, change the path. To allow one role only,
# name it instead of the wildcard: path "pure1/creds/readonly".
path "pure1/creds/*" {
  capabilities = ["read"]
}

path "pure1/static-creds/*" {
  capabilities = ["read"]
}
