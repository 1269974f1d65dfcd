package purearray

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Local array users and their API tokens, as Pure's SDK speaks them
// (FlashArray REST 2.2+, FlashBlade 2.15+): POST /api/<ver>/admins?names=
// with AdminPost (password, role as {"name": role}), POST
// /api/<ver>/admins/api-tokens?names=&timeout=<ms> (admin_names= on a
// FlashBlade) answering the token once,
// DELETE /api/<ver>/admins?names= (which takes the user's token with it).
// The engine makes a user per lease and deletes it when the lease ends.

// Users manages an array's local users; an Admin session is one.
type Users interface {
	// CreateUser creates a local user with a password and a role.
	CreateUser(ctx context.Context, u NewUser) error
	// CreateAPIToken gives user an API token that expires after timeout
	// (0: never) and returns it: the only time the array shows it.
	CreateAPIToken(ctx context.Context, user string, timeout time.Duration) (*APIToken, error)
	// DeleteAPIToken deletes user's API token; none is not an error.
	DeleteAPIToken(ctx context.Context, user string) error
	// DeleteUser deletes a local user, and its API token with it; a user
	// already gone is not an error.
	DeleteUser(ctx context.Context, name string) error
	// ListUsers lists the array's users.
	ListUsers(ctx context.Context) ([]User, error)
}

// NewUser is what POST admins takes.
type NewUser struct {
	Name     string
	Password string
	Role     string // readonly, ops_admin, storage_admin, array_admin
}

// User is a user as the array lists it.
type User struct {
	Name string `json:"name"`
	// Role is {"name": role} as both kinds show it.
	Role struct {
		Name string `json:"name"`
	} `json:"role"`
}

// APIToken is a user's API token as its creation answers it.
type APIToken struct {
	Token     string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: it does not expire
}

func (s *httpAdmin) adminsPath(sub string, q url.Values) string {
	p := "/api/" + s.ver + "/admins" + sub
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return p
}

func (s *httpAdmin) CreateUser(ctx context.Context, u NewUser) error {
	body := map[string]any{"password": u.Password, "role": map[string]string{"name": u.Role}}
	_, _, err := s.a.do(ctx, fmt.Sprintf("create user %q", u.Name), http.MethodPost, s.adminsPath("", url.Values{"names": {u.Name}}), s.header(), body)
	return err
}

func (s *httpAdmin) CreateAPIToken(ctx context.Context, user string, timeout time.Duration) (*APIToken, error) {
	call := fmt.Sprintf("create an API token of user %q", user)
	q := url.Values{s.a.kind.tokenUserParam: {user}}
	if timeout > 0 {
		q.Set("timeout", strconv.FormatInt(timeout.Milliseconds(), 10))
	}
	path := s.adminsPath("/api-tokens", q)
	raw, _, err := s.a.do(ctx, call, http.MethodPost, path, s.header(), nil)
	if err != nil {
		return nil, err
	}
	var r struct {
		Items []struct {
			APIToken struct {
				Token     string `json:"token"`
				CreatedAt *int64 `json:"created_at"`
				ExpiresAt *int64 `json:"expires_at"`
			} `json:"api_token"`
		} `json:"items"`
	}
	if err := json.Unmarshal(raw, &r); err != nil || len(r.Items) != 1 || r.Items[0].APIToken.Token == "" {
		return nil, s.a.badAnswer(call, http.MethodPost, path, "the answer holds no api_token.token")
	}
	t := r.Items[0].APIToken
	out := &APIToken{Token: t.Token}
	if t.CreatedAt != nil {
		out.CreatedAt = time.UnixMilli(*t.CreatedAt).UTC()
	}
	if t.ExpiresAt != nil {
		out.ExpiresAt = time.UnixMilli(*t.ExpiresAt).UTC()
	}
	return out, nil
}

func (s *httpAdmin) DeleteAPIToken(ctx context.Context, user string) error {
	_, _, err := s.a.do(ctx, fmt.Sprintf("delete the API token of user %q", user), http.MethodDelete,
		s.adminsPath("/api-tokens", url.Values{s.a.kind.tokenUserParam: {user}}), s.header(), nil)
	return s.unlessGone(ctx, user, err) // a user gone took its token with it
}

func (s *httpAdmin) DeleteUser(ctx context.Context, name string) error {
	_, _, err := s.a.do(ctx, fmt.Sprintf("delete user %q", name), http.MethodDelete, s.adminsPath("", url.Values{"names": {name}}), s.header(), nil)
	return s.unlessGone(ctx, name, err)
}

// unlessGone is a delete's err, or nil when the list of users shows user
// gone: it failed as already done, not as refused.
func (s *httpAdmin) unlessGone(ctx context.Context, user string, err error) error {
	if err == nil {
		return nil
	}
	users, lerr := s.ListUsers(ctx)
	if lerr != nil {
		return err
	}
	for _, u := range users {
		if u.Name == user {
			return err
		}
	}
	return nil
}

func (s *httpAdmin) ListUsers(ctx context.Context) ([]User, error) {
	const call = "list users"
	path := s.adminsPath("", nil)
	raw, _, err := s.a.do(ctx, call, http.MethodGet, path, s.header(), nil)
	if err != nil {
		return nil, err
	}
	var r struct {
		Items []User `json:"items"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, s.a.badAnswer(call, http.MethodGet, path, "the answer is not JSON")
	}
	return r.Items, nil
}
