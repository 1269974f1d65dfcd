package backend

import "github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray"

// flashArrayKind is an API client of a FlashArray: REST 2 versions under
// "version", login and logout at /api/<ver>/, max_role a plain string, API
// client names with '-' (purearray.FlashArray holds the wire).
type flashArrayKind struct{ arrayKind }

func init() { registerKind(flashArrayKind{arrayKind{wire: purearray.FlashArray}}) }
