package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Array kinds.
const (
	FlashArray = "flasharray"
	FlashBlade = "flashblade"
)

// The newest REST version each kind offers: those of Pure's SDK clients the
// emulator is held to (py-pure-client 1.90.0, FA_2_30 and FB_2_17).
const (
	FlashArrayAPIVersion = "2.30"
	FlashBladeAPIVersion = "2.17"
)

// kind is one array family's dialect of REST 2, read from Pure's SDK
// (pypureclient/flasharray/FA_2_30, pypureclient/flashblade/FB_2_17, the
// api_token_manager and _helpers) and its Ansible collections.
type kind struct {
	name, product string
	// versionsKey names the list GET /api/api_version answers: the FA
	// client reads "version", the FB client "versions" (and fails with
	// "Failed to retrieve 'versions'" on anything else).
	versionsKey string
	versions    []string
	newest      string
	// versionedLogin: a FlashArray logs in at /api/<ver>/login and out at
	// /api/<ver>/logout (APITokenManager given the client's version); the FB
	// client gives none, so it posts to /api/login and /api/logout.
	versionedLogin bool
	// maxRoleAsReference: FB models take and show max_role as a reference
	// (ReferenceWritable in, FixedReference out); FA models as StrictStr.
	maxRoleAsReference bool
	// issuerRequired: the FA SDK says names, max_role, issuer and
	// public_key are required; the FB model defaults issuer to the name.
	issuerRequired bool
	// patchFields are the fields PATCH api-clients takes: the writable
	// fields of the model the SDK sends (FA ApiClientPatch: enabled; FB
	// ApiClient as a request: enabled and max_role).
	patchFields []string
	clientName  *regexp.Regexp
	nameRule    string
	// tokenPrefix starts a generated API token (FlashBlade tokens look
	// like T-<uuid>).
	tokenPrefix string
	// arrayItem is the GET arrays item, fields of the SDK's model.
	arrayItem func(s *Server, now time.Time) map[string]any
	// adminIDs: FB admins have an id (Admin 2.3), are selected by ids= as
	// well as names=, and api-tokens by admin_names= or admin_ids= (its
	// AdminApiToken names the user as an "admin" reference); FA admins
	// have no id, and api-tokens take names=.
	adminIDs bool
	// adminPostFields are the fields of the kind's AdminPost (FA 2.2:
	// password, role; FB 2.15: password, public_key, role).
	adminPostFields []string
}

// localUserName is the local user name rule of both kinds, as Pure's
// Ansible collections check it (purefa_user, purefb_user): 1 to 32
// lowercase letters, digits and '-', starting and ending with a letter or
// digit.
var localUserName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

const localUserNameRule = "1 to 32 lowercase letters, digits and '-', starting and ending with a letter or digit"

func (k *kind) offers(ver string) bool { return slices.Contains(k.versions, ver) }

// versionList is "<major>.0" to "<major>.<last>".
func versionList(major, last int) []string {
	out := make([]string, 0, last+1)
	for i := 0; i <= last; i++ {
		out = append(out, fmt.Sprintf("%d.%d", major, i))
	}
	return out
}

var kinds = map[string]*kind{
	FlashArray: {
		name: FlashArray, product: "FlashArray",
		versionsKey: "version",
		// REST 1.x is listed as a FlashArray lists it, but not served.
		versions:       append(versionList(1, 19), versionList(2, 30)...),
		newest:         FlashArrayAPIVersion,
		versionedLogin: true,
		issuerRequired: true,
		patchFields:    []string{"enabled"},
		// Purity//FA object names, as Pure's FlashArray Ansible collection
		// checks them (volumes, hosts, protection groups): letters, digits
		// and '-', starting and ending with a letter or digit, 1 to 63.
		clientName: regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`),
		nameRule:   "letters, digits and '-', starting and ending with a letter or digit, 1 to 63 characters",
		// Local users (admins.go).
		adminPostFields: []string{"password", "role"},
		arrayItem: func(s *Server, now time.Time) map[string]any {
			return map[string]any{
				"id": s.arrayID, "name": "emulated-flasharray", "_as_of": now.UnixMilli(),
				"banner": "", "capacity": int64(10995116277760), "console_lock_enabled": false,
				"idle_timeout": 1800000, "ntp_servers": []string{}, "os": "Purity//FA",
				"parity": 1.0, "scsi_timeout": 60000, "time_zone": "UTC", "version": "6.5.0",
			}
		},
	},
	FlashBlade: {
		name: FlashBlade, product: "FlashBlade",
		versionsKey:        "versions",
		versions:           append(versionList(1, 12), versionList(2, 17)...),
		newest:             FlashBladeAPIVersion,
		maxRoleAsReference: true,
		patchFields:        []string{"enabled", "max_role"},
		// Pure's FlashBlade Ansible collection (purefb_apiclient): letters,
		// digits and '_', starting and ending with a letter or digit, 1 to 56.
		clientName:  regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_]{0,54}[a-zA-Z0-9])?$`),
		nameRule:    "letters, digits and '_' (no '-' or '.'), starting and ending with a letter or digit, 1 to 56 characters",
		tokenPrefix: "T-",
		// Local users (admins.go).
		adminIDs:        true,
		adminPostFields: []string{"password", "public_key", "role"},
		arrayItem: func(s *Server, now time.Time) map[string]any {
			return map[string]any{
				"id": s.arrayID, "name": "emulated-flashblade", "_as_of": now.UnixMilli(),
				"banner": "", "idle_timeout": 900000, "ntp_servers": []string{}, "os": "Purity//FB",
				"product_type": "FlashBlade", "revision": "4.1.0.emulated", "smb_mode": "native",
				"time_zone": "UTC", "version": "4.1.0",
			}
		},
	},
}

// checkName refuses a name the array refuses.
func (k *kind) checkName(name string) error {
	if !k.clientName.MatchString(name) {
		return fmt.Errorf("Invalid API client name %q: a %s API client name has %s.", name, k.product, k.nameRule)
	}
	return nil
}

// parseMaxRole reads max_role in the kind's form and checks the role.
func (k *kind) parseMaxRole(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	var role string
	if k.maxRoleAsReference {
		if len(raw) == 0 || raw[0] != '{' {
			return "", fmt.Errorf("max_role is a reference on a %s: give {\"name\": role}, one of %s, not %s.", k.product, strings.Join(MaxRoles, ", "), raw)
		}
		var ref struct {
			ID           *string `json:"id"`
			Name         *string `json:"name"`
			ResourceType *string `json:"resource_type"`
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ref); err != nil {
			return "", fmt.Errorf("max_role: %v; give {\"name\": role}.", err)
		}
		if ref.Name == nil {
			return "", fmt.Errorf("max_role names no role: give {\"name\": role}, one of %s.", strings.Join(MaxRoles, ", "))
		}
		if ref.ResourceType != nil && *ref.ResourceType != "roles" {
			return "", fmt.Errorf("max_role refers to a %q, not to a role (resource_type roles).", *ref.ResourceType)
		}
		role = *ref.Name
	} else {
		if len(raw) == 0 || raw[0] != '"' {
			return "", fmt.Errorf("max_role is a string on a %s: give one of %s, not %s.", k.product, strings.Join(MaxRoles, ", "), raw)
		}
		if err := json.Unmarshal(raw, &role); err != nil {
			return "", fmt.Errorf("max_role: %v.", err)
		}
	}
	if !slices.Contains(MaxRoles, role) {
		return "", fmt.Errorf("max_role %q is not a role: use one of %s.", role, strings.Join(MaxRoles, ", "))
	}
	return role, nil
}

// wireMaxRole is max_role as the kind shows it.
func (k *kind) wireMaxRole(role string) any {
	if k.maxRoleAsReference {
		return roleRef(role)
	}
	return role
}

// wireClient is an API client as the kind's ApiClient model has it.
func (k *kind) wireClient(c *APIClient) map[string]any {
	return map[string]any{
		"name": c.Name, "id": c.ID, "key_id": c.KeyID, "issuer": c.Issuer, "public_key": c.PublicKey,
		"max_role": k.wireMaxRole(c.MaxRole), "enabled": c.Enabled, "access_token_ttl_in_ms": c.AccessTokenTTLMS,
	}
}
