package pure1

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
)

// Pure1Host is the one remote host a JWT goes to unless the plugin's
// registrar allows another.
const Pure1Host = "api.pure1.purestorage.com"

// AllowedHostsEnv names the environment variable that allows hosts besides
// Pure1's and loopback: comma-separated host names or host:port. For the
// plugin it is set with `vault plugin register -env`, which takes sudo in
// Vault, so whoever may only write a config cannot aim live JWTs elsewhere.
const AllowedHostsEnv = "PURE1_ALLOWED_TOKEN_HOSTS"

// ErrHostNotAllowed: a URL names a host the HostPolicy does not allow. No
// request is sent there.
var ErrHostNotAllowed = errors.New("host not allowed")

// HostPolicy decides which URLs may receive a signed JWT: https to Pure1's
// host, http or https to a loopback address (a local emulator), and https to
// the hosts the registrar listed. The zero value is that default with no extra
// host. It is a value, built once at plugin start, so every client that
// signs for a host (the Pure1 token exchange, later an array's) checks the
// same list.
type HostPolicy struct {
	hosts map[string]bool // lower-case "host" (any port) or "host:port"
}

// HostPolicyFromEnv builds the policy from $PURE1_ALLOWED_TOKEN_HOSTS.
func HostPolicyFromEnv() (HostPolicy, error) {
	return NewHostPolicy(os.Getenv(AllowedHostsEnv))
}

// NewHostPolicy parses a comma-separated list of allowed hosts, each a host
// name or IP address, optionally with :port. Empty items are ignored.
func NewHostPolicy(list string) (HostPolicy, error) {
	p := HostPolicy{hosts: map[string]bool{}}
	for _, item := range strings.Split(list, ",") {
		item = strings.ToLower(strings.TrimSpace(item))
		if item == "" {
			continue
		}
		u, err := url.Parse("https://" + item)
		if err != nil || u.Host != item || u.Hostname() == "" || u.User != nil {
			return HostPolicy{}, fmt.Errorf("%s: %q is not a host name or host:port (give names such as pure1.example.com or 10.0.0.5:8443, comma-separated, without https:// or a path)",
				AllowedHostsEnv, printableHost(item))
		}
		p.hosts[item] = true
	}
	return p, nil
}

// AllowedHosts lists the extra hosts, sorted, for messages and logs.
func (p HostPolicy) AllowedHosts() []string {
	out := make([]string, 0, len(p.hosts))
	for h := range p.hosts {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// Check refuses a URL that must not receive a JWT. field names the setting in
// the message (token_url, --token-url, later array_url). The error wraps
// ErrHostNotAllowed when the host is the problem, so callers can say how the
// operator allows it.
func (p HostPolicy) Check(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%s must be an absolute URL such as %s", field, DefaultTokenURL)
	}
	if u.User != nil {
		return fmt.Errorf("%s must not contain a user name or password", field)
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return fmt.Errorf("%s names no host: give one, such as %s", field, DefaultTokenURL)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if isLoopbackHost(host) {
			return nil
		}
		return fmt.Errorf("%s must use https: plain http is only allowed to localhost or another loopback address (127.0.0.1, ::1), for a local emulator, not %s",
			field, printableHost(host))
	default:
		return fmt.Errorf("%s must use https, not %q", field, printableHost(u.Scheme))
	}
	if host == Pure1Host || isLoopbackHost(host) || p.hosts[host] || p.hosts[strings.ToLower(u.Host)] || p.hosts[hostWithDefaultPort(u)] {
		return nil
	}
	return fmt.Errorf("%w: %s names %s, which may not receive a signed JWT: only %s and loopback addresses may, unless the operator who registers the plugin allows it with vault plugin register -env %s=%s ... (then vault plugin reload)",
		ErrHostNotAllowed, field, printableHost(u.Host), Pure1Host, AllowedHostsEnv, printableHost(u.Host))
}

// hostWithDefaultPort makes https://h/ match an allowed "h:443".
func hostWithDefaultPort(u *url.URL) string {
	if u.Port() != "" {
		return strings.ToLower(u.Host)
	}
	return strings.ToLower(net.JoinHostPort(u.Hostname(), "443"))
}

// ValidateTokenURL checks a token endpoint against the default policy: Pure1
// or loopback. Callers that honour $PURE1_ALLOWED_TOKEN_HOSTS use a
// HostPolicy's Check instead.
func ValidateTokenURL(field, raw string) error {
	return HostPolicy{}.Check(field, raw)
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// printableHost keeps what a config writer typed short and printable in
// messages that reach logs.
func printableHost(s string) string {
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
