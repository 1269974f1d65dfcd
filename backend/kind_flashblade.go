package backend

import "github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray"

// flashBladeKind is an API client of a FlashBlade: REST 2 versions under
// "versions", login and logout at /api/login and /api/logout (unversioned),
// max_role a reference {"name": role}, API client names of letters, digits
// and '_' only, so the default managed name is vault_<config>
// (purearray.FlashBlade holds the wire).
type flashBladeKind struct{ arrayKind }

func init() { registerKind(flashBladeKind{arrayKind{wire: purearray.FlashBlade}}) }
