package purearray

import (
	"fmt"
	"regexp"
	"strings"
)

// Kind is one array family's dialect of REST 2: FlashArray and FlashBlade
// share the API client model and the token exchange but differ in the
// details below, each read from Pure's own SDK (py-pure-client 1.90.0,
// FlashArray 2.30 and FlashBlade 2.17 clients) and Ansible collections.
type Kind struct {
	// Name is the config kind: flasharray or flashblade.
	Name string
	// Product is how messages name it.
	Product string
	// versionsKey is the key of GET /api/api_version's list: "version" on
	// a FlashArray, "versions" on a FlashBlade (Pure's FlashBlade client
	// fails with "Failed to retrieve 'versions'" on anything else).
	versionsKey string
	// versionedLogin: a FlashArray logs in at /api/<ver>/login and out at
	// /api/<ver>/logout; a FlashBlade at /api/login and /api/logout only.
	versionedLogin bool
	// maxRoleAsReference: a FlashBlade takes and shows an API client's
	// max_role as {"name": role}; a FlashArray as the plain string.
	maxRoleAsReference bool
	// clientName is the array's rule for API client names; nameRule says
	// it in words, nameSeparator joins a base name and a suffix.
	clientName    *regexp.Regexp
	nameRule      string
	nameSeparator string
	// tokenUserParam selects a user's API token: names= on a FlashArray,
	// admin_names= on a FlashBlade.
	tokenUserParam string
}

var (
	// FlashArray: names of letters, digits and '-', starting and ending
	// with a letter or digit, at most 63 characters (Purity's object names,
	// as Pure's FlashArray Ansible collection checks them).
	FlashArray = &Kind{
		Name:           KindFlashArray,
		Product:        "FlashArray",
		versionsKey:    "version",
		versionedLogin: true,
		clientName:     regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`),
		nameRule:       "letters, digits and '-' only (no '_' or '.'), starting and ending with a letter or digit, at most 63 characters",
		nameSeparator:  "-",
		tokenUserParam: "names",
	}
	// FlashBlade: letters, digits and '_' only, at most 56 characters (as
	// Pure's FlashBlade Ansible collection checks API client names).
	FlashBlade = &Kind{
		Name:               KindFlashBlade,
		Product:            "FlashBlade",
		versionsKey:        "versions",
		maxRoleAsReference: true,
		clientName:         regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_]{0,54}[a-zA-Z0-9])?$`),
		nameRule:           "letters, digits and '_' only (no '-' or '.'), starting and ending with a letter or digit, at most 56 characters",
		nameSeparator:      "_",
		tokenUserParam:     "admin_names",
	}
)

// localUserName is both kinds' rule for local user names, as Pure's
// purefa_user and purefb_user modules check them: lowercase letters, digits
// and '-', starting and ending with a letter or digit, 1 to maxUserName
// characters.
var localUserName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

const (
	localUserRule = "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 32 characters"
	maxUserName   = 32
)

// Kinds lists every array kind, FlashArray first.
var Kinds = []*Kind{FlashArray, FlashBlade}

// KindNamed returns the kind called name, or nil.
func KindNamed(name string) *Kind {
	for _, k := range Kinds {
		if k.Name == name {
			return k
		}
	}
	return nil
}

// CheckClientName refuses a name the array would refuse, with its rule.
func (k *Kind) CheckClientName(field, name string) error {
	if !k.clientName.MatchString(name) {
		return fmt.Errorf("%s %q is not a %s API client name: use %s", field, printable(name), k.Product, k.nameRule)
	}
	return nil
}

// MaxBaseName is the longest base name of a managed client: a rotation
// adds the kind's separator and a Unix time (and, twice in a second, "-2"),
// which must still fit the shorter of the kinds' limits (56).
const MaxBaseName = 40

// DefaultClientName is the name of the API client Vault registers for
// config when none is given: vault-<config> on a FlashArray, vault_<config>
// on a FlashBlade, with the characters the kind refuses made its separator,
// cut to MaxBaseName and ending with a letter or digit.
func (k *Kind) DefaultClientName(config string) string {
	name := strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' {
			return rune(k.nameSeparator[0])
		}
		return r
	}, "vault"+k.nameSeparator+config)
	if len(name) > MaxBaseName {
		name = name[:MaxBaseName]
	}
	return strings.TrimRight(name, k.nameSeparator)
}

// SuffixedName is base with suffix, joined as the kind's names allow: a
// rotated client is <base>-<unix time> on a FlashArray, <base>_<unix time>
// on a FlashBlade.
func (k *Kind) SuffixedName(base, suffix string) string {
	return base + k.nameSeparator + suffix
}

// sessionPath is where an admin session starts (op login) and ends (op
// logout).
func (k *Kind) sessionPath(ver, op string) string {
	if k.versionedLogin {
		return "/api/" + ver + "/" + op
	}
	return "/api/" + op
}

// maxRoleValue is max_role as the kind takes it in a request body.
func (k *Kind) maxRoleValue(role string) any {
	if k.maxRoleAsReference {
		return map[string]string{"name": role}
	}
	return role
}

// printable keeps a name echoed in an error short and printable.
func printable(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// CheckUserName refuses a local user name the array would refuse.
func (k *Kind) CheckUserName(field, name string) error {
	if !localUserName.MatchString(name) {
		return fmt.Errorf("%s %q is not a %s user name: use %s", field, printable(name), k.Product, localUserRule)
	}
	return nil
}

// MaxUserName is the longest local user name the array takes.
func (k *Kind) MaxUserName() int { return maxUserName }

// UserPrefix makes s a prefix of user names the array takes: capitals are
// lowered, other characters it refuses become '-', and it is cut so that a suffix of
// suffixLen still fits.
func (k *Kind) UserPrefix(s string, suffixLen int) string {
	p := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return '-'
	}, s)
	if max := maxUserName - suffixLen; len(p) > max {
		p = p[:max]
	}
	return strings.TrimLeft(p, "-")
}
