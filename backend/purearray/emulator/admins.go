package emulator

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Local users (admins) and their API tokens, as Pure's SDK speaks them:
// FlashArray REST 2.30 (AdministratorsApi 2.2: Admin, AdminPost with
// AdminRole, AdminApiToken{name, api_token}, ApiToken) and FlashBlade REST
// 2.17 (AdministratorsApi 2.17: Admin 2.3 with id, AdminPost 2.15 with
// public_key and a ReferenceWritable role, AdminApiToken{admin, api_token},
// selected by admin_names/admin_ids).
//
// What the models and Pure's Ansible collections (purefa_user, purefb_user)
// fix: a user name is 1 to 32 lowercase letters, digits and '-', starting
// and ending with a letter or digit; roles are readonly, ops_admin,
// storage_admin and array_admin; a user holds at most one API token, which
// is why both collections delete the old token before creating a new one;
// POST admins/api-tokens takes timeout in milliseconds, and both collections
// send timeout=0 by default for a token that does not expire; the token is
// shown once, at its creation, and masked ("****", as `pureadmin list
// --api-token` prints it) everywhere else unless its own user asks with
// expose_api_token=true.
//
// What the emulator chose where Pure's code is silent (the messages are its
// own; a client must branch on the status and context, not on the words):
// a second token while one exists, expired or not, is refused (400); a user
// limit (Options.MaxUsers) refuses a create with 400; deleting a user
// deletes its token and ends its sessions; a user may create, list and
// delete its own token whatever its role, and only an array_admin may touch
// another user's token or create and delete users.

// Steps of the admins endpoints (see Steps).
const (
	StepAdminsGet       = "admins_get"    // GET admins
	StepAdminsPost      = "admins_post"   // POST admins
	StepAdminsDelete    = "admins_delete" // DELETE admins
	StepAPITokensPost   = "tokens_post"   // POST admins/api-tokens
	StepAPITokensGet    = "tokens_get"    // GET admins/api-tokens
	StepAPITokensDelete = "tokens_delete" // DELETE admins/api-tokens
)

const (
	// DefaultMaxUsers is the number of local users, pureuser included, an
	// emulated array holds before it refuses a create (Options.MaxUsers).
	DefaultMaxUsers = 1000
	// maskedToken is how an array shows an API token that is not shown.
	maskedToken = "****"
	// maxAPITokenTimeout bounds timeout so that expires_at stays a sane
	// number of milliseconds; a client wanting a token that never expires
	// gives 0 or no timeout.
	maxAPITokenTimeout = 100 * 365 * 24 * time.Hour
)

// reservedUserNames are the built-in administrator and the accounts of the
// array's own operating system: no local user may take them.
var reservedUserNames = map[string]bool{
	adminUser: true, "root": true, "daemon": true, "bin": true, "sys": true, "nobody": true,
}

// localUser is one local user. Its password is not kept: nothing here logs
// in with a password, and an emulator holding none cannot leak one.
type localUser struct {
	name, id, role string
	builtIn        bool
	publicKey      string
	created        time.Time
	token          *apiToken
}

// apiToken is a user's API token; expires is zero for one that never does.
type apiToken struct {
	secret           string
	created, expires time.Time
}

func (t *apiToken) expired(now time.Time) bool {
	return !t.expires.IsZero() && !now.Before(t.expires)
}

// wire is the ApiToken model: created_at and expires_at in milliseconds
// since the epoch (expires_at null for a token that never expires), the
// secret only when shown.
func (t *apiToken) wire(show bool) map[string]any {
	var expires any
	if !t.expires.IsZero() {
		expires = t.expires.UnixMilli()
	}
	tok := maskedToken
	if show {
		tok = t.secret
	}
	return map[string]any{"created_at": t.created.UnixMilli(), "expires_at": expires, "token": tok}
}

// User is a local user as the admin API shows it, without secrets.
type User struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	BuiltIn bool   `json:"builtin"`
	// HasAPIToken: the user holds an API token, expired or not.
	HasAPIToken bool `json:"has_api_token"`
	// APITokenCreatedAt and APITokenExpiresAt are milliseconds since the
	// epoch, as the wire has them; ExpiresAt is 0 for a token that never
	// expires.
	APITokenCreatedAt int64 `json:"api_token_created_at,omitempty"`
	APITokenExpiresAt int64 `json:"api_token_expires_at,omitempty"`
	APITokenExpired   bool  `json:"api_token_expired"`
}

// Users lists the array's local users by name.
func (s *Server) Users() []User {
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]User, 0, len(s.users))
	for _, u := range s.users {
		v := User{Name: u.name, Role: u.role, BuiltIn: u.builtIn, HasAPIToken: u.token != nil}
		if u.token != nil {
			v.APITokenCreatedAt = u.token.created.UnixMilli()
			if !u.token.expires.IsZero() {
				v.APITokenExpiresAt = u.token.expires.UnixMilli()
			}
			v.APITokenExpired = u.token.expired(now)
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// addUser adds a user, checking nothing; s.mu is held (or New is running).
func (s *Server) addUser(name, role string, builtIn bool) *localUser {
	u := &localUser{name: name, id: formatUUID(randomHex(16)), role: role, builtIn: builtIn, created: s.opts.Now()}
	s.users[name] = u
	return u
}

// setToken gives u a new token; s.mu is held (or New is running).
func (s *Server) setToken(u *localUser, secret string, now time.Time, timeout time.Duration) {
	t := &apiToken{secret: secret, created: now}
	if timeout > 0 {
		t.expires = now.Add(timeout)
	}
	u.token = t
	s.tokens[secret] = u.name
}

// dropToken deletes u's token; s.mu is held.
func (s *Server) dropToken(u *localUser) {
	if u.token != nil {
		delete(s.tokens, u.token.secret)
		u.token = nil
	}
}

// userExists is whether name is a user of the array now.
func (s *Server) userExists(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[name] != nil
}

// ---- per-kind shapes ------------------------------------------------------------

// checkUserName refuses a name the array refuses for a local user.
func (k *kind) checkUserName(name string) error {
	if !localUserName.MatchString(name) {
		return fmt.Errorf("Invalid user name %q: a %s local user name has %s.", name, k.product, localUserNameRule)
	}
	if reservedUserNames[name] {
		return fmt.Errorf("User name %q is reserved on a %s (a built-in or system account): pick another.", name, k.product)
	}
	return nil
}

// roleRef is a role as the kind shows it: {"name": role} on both (FA
// AdminRole, FB FixedReference).
func roleRef(role string) map[string]string { return map[string]string{"name": role} }

// wireAdmin is the kind's Admin model. locked is shown to an array_admin
// only (the models: "only visible to array_admin roles"); the token is
// masked unless show.
func (k *kind) wireAdmin(u *localUser, viewerIsAdmin, show bool) map[string]any {
	m := map[string]any{"name": u.name, "is_local": true, "role": roleRef(u.role)}
	if k.adminIDs {
		m["id"] = u.id
	}
	if u.token != nil {
		m["api_token"] = u.token.wire(show)
	}
	if u.publicKey != "" {
		m["public_key"] = u.publicKey
	}
	if viewerIsAdmin {
		m["locked"] = false
	}
	return m
}

// wireAdminToken is the kind's AdminApiToken: FA {name, api_token}, FB
// {admin: {id, name, resource_type}, api_token}.
func (k *kind) wireAdminToken(u *localUser, show bool) map[string]any {
	if k.adminIDs {
		return map[string]any{
			"admin":     map[string]string{"id": u.id, "name": u.name, "resource_type": "admins"},
			"api_token": u.token.wire(show),
		}
	}
	return map[string]any{"name": u.name, "api_token": u.token.wire(show)}
}

// writeList answers a GET in the kind's list shape: FA with
// more_items_remaining and total_item_count only when asked for, FB with
// total_item_count always.
func (k *kind) writeList(w http.ResponseWriter, items []map[string]any, total int, lq listQuery) {
	if k.name == FlashArray {
		var count any
		if lq.countWanted {
			count = total
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"continuation_token": nil, "more_items_remaining": lq.offset+len(items) < total,
			"total_item_count": count, "items": items,
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"continuation_token": nil, "total_item_count": total, "items": items})
}

// ---- request checks -------------------------------------------------------------

// listQuery is what a GET's paging parameters ask for.
type listQuery struct {
	offset, limit int
	hasLimit      bool
	countWanted   bool
	expose        bool
}

// page cuts n items as lq asks.
func (lq listQuery) page(n int) (from, to int) {
	from, to = min(lq.offset, n), n
	if lq.hasLimit {
		to = min(from+lq.limit, n)
	}
	return from, to
}

// strictBool reads a boolean query parameter as Pure's SDK sends one.
func strictBool(w http.ResponseWriter, q url.Values, name string) (bool, bool) {
	switch v := q.Get(name); {
	case !q.Has(name), v == "false":
		return false, true
	case v == "true":
		return true, true
	}
	writeErrors(w, http.StatusBadRequest, name, name+" must be true or false.")
	return false, false
}

// listParams reads the paging parameters of a GET; on failure it has
// answered 400.
func listParams(w http.ResponseWriter, q url.Values) (listQuery, bool) {
	var lq listQuery
	if q.Has("continuation_token") {
		// This emulator never gives one out, so any is not one of its own.
		writeErrors(w, http.StatusBadRequest, "continuation_token", "Invalid continuation_token.")
		return lq, false
	}
	var ok bool
	if lq.offset, ok = intParam(w, q, "offset"); !ok {
		return lq, false
	}
	if lq.limit, ok = intParam(w, q, "limit"); !ok {
		return lq, false
	}
	lq.hasLimit = q.Has("limit")
	if lq.countWanted, ok = strictBool(w, q, "total_item_count"); !ok {
		return lq, false
	}
	if lq.expose, ok = strictBool(w, q, "expose_api_token"); !ok {
		return lq, false
	}
	return lq, true
}

// userSelectors reads the kind's user selectors, namesKey and (on a
// FlashBlade) idsKey, which cannot be set together; required refuses a
// request with neither. On failure it has answered 400.
func userSelectors(w http.ResponseWriter, q url.Values, namesKey, idsKey string, required bool) (selector, bool) {
	names := csv(q.Get(namesKey))
	var ids []string
	if idsKey != "" {
		ids = csv(q.Get(idsKey))
	}
	takes := namesKey
	if idsKey != "" {
		takes += " or " + idsKey
	}
	switch {
	case idsKey != "" && q.Has(namesKey) && q.Has(idsKey):
		writeErrors(w, http.StatusBadRequest, namesKey, fmt.Sprintf("The %s and %s parameters cannot be set together.", idsKey, namesKey))
		return selector{}, false
	case q.Has(namesKey) && len(names) == 0, idsKey != "" && q.Has(idsKey) && len(ids) == 0:
		writeErrors(w, http.StatusBadRequest, namesKey, takes+" is given empty.")
		return selector{}, false
	case len(ids) > 0:
		return selector{byID: true, values: ids}, true
	case len(names) > 0:
		return selector{values: names}, true
	case required:
		writeErrors(w, http.StatusBadRequest, namesKey, "The "+takes+" parameter is required.")
		return selector{}, false
	}
	return selector{}, true
}

// pickUsers finds the users sel names, in its order, each once; s.mu is
// held. Every name or id must match a user (an error for each one that
// does not, as arrays answer).
func (s *Server) pickUsers(sel selector) ([]*localUser, []apiError) {
	var out []*localUser
	var missing []apiError
	seen := map[string]bool{}
	for _, v := range sel.values {
		var u *localUser
		if sel.byID {
			for _, x := range s.users {
				if x.id == v {
					u = x
				}
			}
		} else {
			u = s.users[v]
		}
		if u == nil {
			missing = append(missing, apiError{Context: v, Message: "User does not exist."})
			continue
		}
		if !seen[u.name] {
			seen[u.name] = true
			out = append(out, u)
		}
	}
	return out, missing
}

// listedUsers is what a GET lists: the users sel names, or every user when
// it names none, by name; s.mu is held.
func (s *Server) listedUsers(sel selector) ([]*localUser, []apiError) {
	if len(sel.values) == 0 {
		return s.allUsers(), nil
	}
	picked, missing := s.pickUsers(sel)
	sort.Slice(picked, func(i, j int) bool { return picked[i].name < picked[j].name })
	return picked, missing
}

// allUsers is every user by name; s.mu is held.
func (s *Server) allUsers() []*localUser {
	out := make([]*localUser, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// parseAdminRole reads AdminPost's role: a reference on both kinds, {"name":
// role} (a FlashArray's AdminRole has only name; a FlashBlade's
// ReferenceWritable also id and resource_type, which must be "roles").
func (k *kind) parseAdminRole(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return "", fmt.Errorf("role is a reference on a %s: give {\"name\": role}, one of %s, not %s.", k.product, strings.Join(MaxRoles, ", "), raw)
	}
	var ref struct {
		ID           *string `json:"id"`
		Name         *string `json:"name"`
		ResourceType *string `json:"resource_type"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ref); err != nil {
		return "", fmt.Errorf("role: %s; give {\"name\": role}.", strings.TrimPrefix(err.Error(), "json: "))
	}
	if !k.adminIDs && (ref.ID != nil || ref.ResourceType != nil) {
		// FA AdminRole: {"name"} and nothing else.
		return "", fmt.Errorf("role takes only name on a %s: give {\"name\": role}.", k.product)
	}
	if ref.Name == nil || *ref.Name == "" {
		return "", fmt.Errorf("role names no role: give {\"name\": role}, one of %s.", strings.Join(MaxRoles, ", "))
	}
	if ref.ResourceType != nil && *ref.ResourceType != "roles" {
		return "", fmt.Errorf("role refers to a %q, not to a role (resource_type roles).", *ref.ResourceType)
	}
	if !slices.Contains(MaxRoles, *ref.Name) {
		return "", fmt.Errorf("role %q is not a role: use one of %s.", *ref.Name, strings.Join(MaxRoles, ", "))
	}
	return *ref.Name, nil
}

// checkSSHPublicKey takes an OpenSSH public key line, "<type> <base64>
// [comment]", of a type the FlashBlade takes (Ed25519, RSA), whose blob
// names the same type.
func checkSSHPublicKey(line string) error {
	fields := strings.Fields(line)
	if len(fields) < 2 {
		return fmt.Errorf("not an OpenSSH public key line (\"ssh-ed25519 AAAA... comment\")")
	}
	if fields[0] != "ssh-ed25519" && fields[0] != "ssh-rsa" {
		return fmt.Errorf("key type %q is not taken: use an Ed25519 (ssh-ed25519) or RSA (ssh-rsa) key", fields[0])
	}
	blob, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil || len(blob) < 4 {
		return fmt.Errorf("the key's base64 does not decode")
	}
	n := binary.BigEndian.Uint32(blob)
	if uint64(n) > uint64(len(blob)-4) || string(blob[4:4+n]) != fields[0] {
		return fmt.Errorf("the key's blob is not a %s key", fields[0])
	}
	return nil
}

// ---- the handlers ---------------------------------------------------------------

// getAdmins is GET admins: all users, or those names= (or, on a
// FlashBlade, ids=) give, by name, to any user of the array.
func (s *Server) getAdmins(w http.ResponseWriter, r *http.Request) {
	p, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	allowed := []string{"names", "expose_api_token", "limit", "offset", "continuation_token"}
	idsKey := ""
	if s.kind.adminIDs {
		allowed, idsKey = append(allowed, "ids"), "ids"
	} else {
		allowed = append(allowed, "total_item_count")
	}
	q, ok := s.query(w, r, allowed...)
	if !ok {
		return
	}
	sel, ok := userSelectors(w, q, "names", idsKey, false)
	if !ok {
		return
	}
	lq, ok := listParams(w, q)
	if !ok {
		return
	}
	s.mu.Lock()
	picked, missing := s.listedUsers(sel)
	if len(missing) > 0 {
		s.mu.Unlock()
		writeErrorList(w, http.StatusBadRequest, missing)
		return
	}
	from, to := lq.page(len(picked))
	items := []map[string]any{}
	for _, u := range picked[from:to] {
		items = append(items, s.kind.wireAdmin(u, p.role == roleArrayAdmin, lq.expose && u.name == p.user))
	}
	s.mu.Unlock()
	s.kind.writeList(w, items, len(picked), lq)
}

// postAdmins is POST admins?names=<one name> with the kind's AdminPost: a
// new local user, by an array_admin.
func (s *Server) postAdmins(w http.ResponseWriter, r *http.Request) {
	p, ok := s.authenticate(w, r)
	if !ok || !p.mayManage(w, "role", "creating users") {
		return
	}
	name, ok := s.oneName(w, r, "admins?names=<user>", "user")
	if !ok {
		return
	}
	if err := s.kind.checkUserName(name); err != nil {
		writeErrors(w, http.StatusBadRequest, name, err.Error())
		return
	}
	var body map[string]json.RawMessage
	if !s.decodeBody(w, r, &body) {
		return
	}
	for field := range body {
		if !slices.Contains(s.kind.adminPostFields, field) {
			msg := fmt.Sprintf("Invalid body: unknown field %q: a %s's AdminPost at REST %s takes %s.", field, s.kind.product, s.kind.newest, strings.Join(s.kind.adminPostFields, ", "))
			if field == "management_access_policies" && s.kind.name == FlashArray {
				msg += " management_access_policies came with REST 2.36."
			}
			writeErrors(w, http.StatusBadRequest, field, msg)
			return
		}
	}
	var password string
	if raw, ok := body["password"]; !ok || string(raw) == "null" || json.Unmarshal(raw, &password) != nil || password == "" {
		writeErrors(w, http.StatusBadRequest, "password", "password is required: a non-empty string, the new local user's password.")
		return
	}
	raw, ok := body["role"]
	if !ok || string(raw) == "null" {
		writeErrors(w, http.StatusBadRequest, "role", fmt.Sprintf("role is required: give {\"name\": role}, one of %s.", strings.Join(MaxRoles, ", ")))
		return
	}
	role, err := s.kind.parseAdminRole(raw)
	if err != nil {
		writeErrors(w, http.StatusBadRequest, "role", err.Error())
		return
	}
	publicKey := ""
	if raw, ok := body["public_key"]; ok && string(raw) != "null" {
		if json.Unmarshal(raw, &publicKey) != nil {
			writeErrors(w, http.StatusBadRequest, "public_key", "public_key must be a string: an OpenSSH public key line.")
			return
		}
		if publicKey != "" {
			if err := checkSSHPublicKey(publicKey); err != nil {
				writeErrors(w, http.StatusBadRequest, "public_key", "Invalid public_key: "+err.Error()+".")
				return
			}
		}
	}
	s.mu.Lock()
	if s.users[name] != nil {
		s.mu.Unlock()
		writeErrors(w, http.StatusBadRequest, name, "Name already in use.")
		return
	}
	if len(s.users) >= s.opts.MaxUsers {
		s.mu.Unlock()
		writeErrors(w, http.StatusBadRequest, name, fmt.Sprintf("Cannot create user %s: the array holds its limit of %d local users. Delete users no longer needed.", name, s.opts.MaxUsers))
		return
	}
	u := s.addUser(name, role, false)
	u.publicKey = publicKey
	s.stats.UsersCreated++
	wire := s.kind.wireAdmin(u, true, false)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"items": []any{wire}})
}

// deleteAdmins is DELETE admins?names= (or, on a FlashBlade, ids=), by an
// array_admin: all or none. A user's token goes with it and its sessions
// end. Arrays answer 200 with no body.
func (s *Server) deleteAdmins(w http.ResponseWriter, r *http.Request) {
	p, ok := s.authenticate(w, r)
	if !ok || !p.mayManage(w, "role", "deleting users") {
		return
	}
	allowed, idsKey := []string{"names"}, ""
	if s.kind.adminIDs {
		allowed, idsKey = append(allowed, "ids"), "ids"
	}
	q, ok := s.query(w, r, allowed...)
	if !ok {
		return
	}
	sel, ok := userSelectors(w, q, "names", idsKey, true)
	if !ok {
		return
	}
	s.mu.Lock()
	picked, errs := s.pickUsers(sel)
	for _, u := range picked {
		switch {
		case u.builtIn:
			errs = append(errs, apiError{Context: u.name, Message: fmt.Sprintf("The built-in user %s cannot be deleted.", u.name)})
		case u.name == p.user:
			errs = append(errs, apiError{Context: u.name, Message: "A user cannot delete itself: delete it as another array_admin."})
		}
	}
	if len(errs) > 0 {
		s.mu.Unlock()
		writeErrorList(w, http.StatusBadRequest, errs)
		return
	}
	for _, u := range picked {
		if u.token != nil {
			s.stats.APITokensDeleted++
		}
		s.dropToken(u)
		delete(s.users, u.name)
		s.stats.UsersDeleted++
		for tok, sess := range s.sessions {
			if sess.user == u.name {
				delete(s.sessions, tok)
				s.stats.SessionsEndedByUserDelete++
			}
		}
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// tokenSelectors reads which users an api-tokens request is about: names=
// on a FlashArray, admin_names= or admin_ids= on a FlashBlade.
func (s *Server) tokenSelectors(w http.ResponseWriter, q url.Values, required bool) (selector, bool) {
	if s.kind.adminIDs {
		return userSelectors(w, q, "admin_names", "admin_ids", required)
	}
	return userSelectors(w, q, "names", "", required)
}

// tokenParams are the selector parameters of api-tokens on the kind.
func (k *kind) tokenParams() []string {
	if k.adminIDs {
		return []string{"admin_names", "admin_ids"}
	}
	return []string{"names"}
}

// mayTouchTokens refuses (403) a principal that is not an array_admin and
// names another user's token.
func (s *Server) mayTouchTokens(w http.ResponseWriter, p principal, users []*localUser, what string) bool {
	for _, u := range users {
		if u.name != p.user {
			return p.mayManage(w, "role", what+" of another user")
		}
	}
	return true
}

// postAPITokens is POST admins/api-tokens?<selector>&timeout=<ms>: a new
// token for each user named, all or none, shown in this answer only.
func (s *Server) postAPITokens(w http.ResponseWriter, r *http.Request) {
	p, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	q, ok := s.query(w, r, append(s.kind.tokenParams(), "timeout")...)
	if !ok {
		return
	}
	sel, ok := s.tokenSelectors(w, q, true)
	if !ok {
		return
	}
	var timeout time.Duration
	if q.Has("timeout") {
		ms, err := strconv.ParseInt(q.Get("timeout"), 10, 64)
		if err != nil || ms < 0 || ms > maxAPITokenTimeout.Milliseconds() {
			writeErrors(w, http.StatusBadRequest, "timeout", fmt.Sprintf("timeout must be an integer number of milliseconds from 0 (never expires) to %d.", maxAPITokenTimeout.Milliseconds()))
			return
		}
		timeout = time.Duration(ms) * time.Millisecond
	}
	now := s.opts.Now()
	s.mu.Lock()
	picked, errs := s.pickUsers(sel)
	if len(errs) > 0 {
		s.mu.Unlock()
		writeErrorList(w, http.StatusBadRequest, errs)
		return
	}
	if !s.mayTouchTokens(w, p, picked, "creating the API token") {
		s.mu.Unlock()
		return
	}
	for _, u := range picked {
		if u.token != nil {
			errs = append(errs, apiError{Context: u.name, Message: "The user already has an API token: delete it first (DELETE admins/api-tokens), then create a new one."})
		}
	}
	if len(errs) > 0 {
		s.mu.Unlock()
		writeErrorList(w, http.StatusBadRequest, errs)
		return
	}
	items := []any{}
	for _, u := range picked {
		s.setToken(u, s.kind.tokenPrefix+formatUUID(randomHex(16)), now, timeout)
		s.stats.APITokensCreated++
		items = append(items, s.kind.wireAdminToken(u, true))
	}
	s.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// getAPITokens is GET admins/api-tokens: the tokens of all users holding
// one, or of those named, masked unless expose_api_token=true and the
// token is the caller's own. A named user without a token is no error and
// no item.
func (s *Server) getAPITokens(w http.ResponseWriter, r *http.Request) {
	p, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	allowed := append(s.kind.tokenParams(), "expose_api_token", "limit", "offset", "continuation_token")
	if !s.kind.adminIDs {
		allowed = append(allowed, "total_item_count")
	}
	q, ok := s.query(w, r, allowed...)
	if !ok {
		return
	}
	sel, ok := s.tokenSelectors(w, q, false)
	if !ok {
		return
	}
	lq, ok := listParams(w, q)
	if !ok {
		return
	}
	s.mu.Lock()
	picked, missing := s.listedUsers(sel)
	if len(missing) > 0 {
		s.mu.Unlock()
		writeErrorList(w, http.StatusBadRequest, missing)
		return
	}
	var holders []*localUser
	for _, u := range picked {
		if u.token != nil {
			holders = append(holders, u)
		}
	}
	from, to := lq.page(len(holders))
	items := []map[string]any{}
	for _, u := range holders[from:to] {
		items = append(items, s.kind.wireAdminToken(u, lq.expose && u.name == p.user))
	}
	s.mu.Unlock()
	s.kind.writeList(w, items, len(holders), lq)
}

// deleteAPITokens is DELETE admins/api-tokens?<selector>: the tokens of the
// users named, all or none. A user without a token is no error, as Pure's
// Ansible modules rely on when they replace a token. 200 with no body.
func (s *Server) deleteAPITokens(w http.ResponseWriter, r *http.Request) {
	p, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	q, ok := s.query(w, r, s.kind.tokenParams()...)
	if !ok {
		return
	}
	sel, ok := s.tokenSelectors(w, q, true)
	if !ok {
		return
	}
	s.mu.Lock()
	picked, errs := s.pickUsers(sel)
	if len(errs) > 0 {
		s.mu.Unlock()
		writeErrorList(w, http.StatusBadRequest, errs)
		return
	}
	if !s.mayTouchTokens(w, p, picked, "deleting the API token") {
		s.mu.Unlock()
		return
	}
	for _, u := range picked {
		if u.token != nil {
			s.dropToken(u)
			s.stats.APITokensDeleted++
		}
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}
