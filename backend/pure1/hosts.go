package pure1

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-cleanhttp"
)

// Pure1Host is the one remote host a JWT goes to unless the plugin's
// registrar allows another.
const Pure1Host = "api.pure1.purestorage.com"

// AllowedHostsEnv names the environment variable that allows hosts besides
// Pure1's: comma-separated host names or host:port, and the word loopback
// for the Vault host's own loopback addresses. For the plugin it is set with
// `vault plugin register -env`, which takes sudo in Vault, so whoever may
// only write a config cannot aim live JWTs (or an array's admin token)
// elsewhere, nor at a service listening on the Vault host itself.
const AllowedHostsEnv = "PURE1_ALLOWED_TOKEN_HOSTS"

// loopbackWord, as an item of $PURE1_ALLOWED_TOKEN_HOSTS, allows loopback
// addresses: 127.0.0.0/8, ::1, localhost, and any name that resolves to one.
const loopbackWord = "loopback"

// loopbackFix is what an operator runs to allow loopback, for messages.
const loopbackFix = "vault plugin register -env " + AllowedHostsEnv + "=" + loopbackWord + " ... (then vault plugin reload)"

// ErrHostNotAllowed: a URL names a host the HostPolicy does not allow, or
// its name resolved to a loopback address the policy does not allow. No
// request is sent there.
var ErrHostNotAllowed = errors.New("host not allowed")

// HostPolicy decides which URLs may receive a signed JWT or an array's
// token: https to Pure1's host and to the hosts the registrar listed, and,
// only when the registrar wrote the word loopback, http or https to a
// loopback address (a local emulator). The zero value allows Pure1 alone.
// It is a value, built once at plugin start, so every client that signs for
// a host (the Pure1 token exchange, an array's) checks the same list, by
// spelling in Check and by the address actually dialed in Transport.
type HostPolicy struct {
	hosts    map[string]bool // lower-case "host" (any port) or "host:port"
	loopback bool
	// resolver replaces net.DefaultResolver in Transport's dialer; tests
	// make a name resolve to loopback without touching /etc/hosts.
	resolver *net.Resolver
}

// HostPolicyFromEnv builds the policy from $PURE1_ALLOWED_TOKEN_HOSTS.
func HostPolicyFromEnv() (HostPolicy, error) {
	return NewHostPolicy(os.Getenv(AllowedHostsEnv))
}

// NewHostPolicy parses a comma-separated list of allowed hosts, each a host
// name or IP address, optionally with :port, or the word loopback. Empty
// items are ignored. A loopback address or localhost in the list is refused:
// the word loopback is the one way to allow them, so there is one thing to
// look for when reviewing a registration.
func NewHostPolicy(list string) (HostPolicy, error) {
	p := HostPolicy{hosts: map[string]bool{}}
	for _, item := range strings.Split(list, ",") {
		item = strings.ToLower(strings.TrimSpace(item))
		switch item {
		case "":
			continue
		case loopbackWord:
			p.loopback = true
			continue
		}
		u, err := url.Parse("https://" + item)
		if err != nil || u.Host != item || u.Hostname() == "" || u.User != nil {
			return HostPolicy{}, fmt.Errorf("%s: %q is not a host name or host:port (give names such as pure1.example.com or 10.0.0.5:8443, or the word %s, comma-separated, without https:// or a path)",
				AllowedHostsEnv, printableHost(item), loopbackWord)
		}
		if u.Hostname() == loopbackWord {
			return HostPolicy{}, fmt.Errorf("%s: %q: the word %s takes no port; it allows every loopback address and port",
				AllowedHostsEnv, printableHost(item), loopbackWord)
		}
		if isLoopbackHost(u.Hostname()) {
			return HostPolicy{}, fmt.Errorf("%s: %q is a loopback address: write the word %s instead (%s=%s) to allow the Vault host's loopback addresses",
				AllowedHostsEnv, printableHost(item), loopbackWord, AllowedHostsEnv, loopbackWord)
		}
		p.hosts[item] = true
	}
	return p, nil
}

// WithLoopback is the policy with loopback allowed, as if the list held the
// word loopback: for pure1-token, whose user signs with their own key on
// their own machine, where a local emulator is theirs to reach.
func (p HostPolicy) WithLoopback() HostPolicy {
	p.loopback = true
	return p
}

// AllowsLoopback says whether loopback addresses may be reached.
func (p HostPolicy) AllowsLoopback() bool { return p.loopback }

// AllowedHosts lists the extra hosts, sorted, for messages and logs; the
// word loopback comes first when it is allowed.
func (p HostPolicy) AllowedHosts() []string {
	out := make([]string, 0, len(p.hosts)+1)
	for h := range p.hosts {
		out = append(out, h)
	}
	sort.Strings(out)
	if p.loopback {
		out = append([]string{loopbackWord}, out...)
	}
	return out
}

// Check refuses a URL that must not receive a JWT. field names the setting in
// the message (token_url, --token-url, array_url). The error wraps
// ErrHostNotAllowed when the host is the problem, so callers can say how the
// operator allows it. Check judges the spelling; a name that resolves to a
// loopback address is caught where it is dialed (Transport).
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
	loop := isLoopbackHost(host)
	switch u.Scheme {
	case "https":
	case "http":
		if !loop {
			when := ""
			if !p.loopback {
				when = ", when the operator who registers the plugin allows loopback (" + AllowedHostsEnv + "=" + loopbackWord + ")"
			}
			return fmt.Errorf("%s must use https: plain http is only allowed to localhost or another loopback address (127.0.0.1, ::1), for a local emulator%s; not %s",
				field, when, printableHost(host))
		}
	default:
		return fmt.Errorf("%s must use https, not %q", field, printableHost(u.Scheme))
	}
	if loop {
		if p.loopback {
			return nil
		}
		return fmt.Errorf("%w: %s names %s, a loopback address of the Vault host, which may receive a signed JWT or token only when the operator who registers the plugin allows it with %s",
			ErrHostNotAllowed, field, printableHost(u.Host), loopbackFix)
	}
	if host == Pure1Host || p.hosts[host] || p.hosts[strings.ToLower(u.Host)] || p.hosts[hostWithDefaultPort(u)] {
		return nil
	}
	return fmt.Errorf("%w: %s names %s, which may not receive a signed JWT: only %s may, unless the operator who registers the plugin allows it with vault plugin register -env %s=%s ... (then vault plugin reload)",
		ErrHostNotAllowed, field, printableHost(u.Host), Pure1Host, AllowedHostsEnv, printableHost(u.Host))
}

// hostWithDefaultPort makes https://h/ match an allowed "h:443".
func hostWithDefaultPort(u *url.URL) string {
	if u.Port() != "" {
		return strings.ToLower(u.Host)
	}
	return strings.ToLower(net.JoinHostPort(u.Hostname(), "443"))
}

// Transport is go-cleanhttp's pooled transport (proxy from the environment,
// timeouts, keep-alive) whose dialer holds the policy at the address it
// connects to: without loopback allowed, a connection to a loopback or
// unspecified address is refused before it is made, whatever name led
// there, so a host name that resolves (or is later re-pointed) to 127.0.0.1
// gets nothing. A proxy named by the plugin's environment is the
// registrar's choice and is dialed as is, even on loopback.
func (p HostPolicy) Transport() *http.Transport {
	t := cleanhttp.DefaultPooledTransport()
	p.guard(t)
	return t
}

// guard replaces t's dialer with the policy's, keeping t's proxy rule.
func (p HostPolicy) guard(t *http.Transport) {
	// The settings of cleanhttp's dialer, plus the check.
	guarded := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Resolver: p.resolver}
	if !p.loopback {
		guarded.Control = refuseLoopback
	}
	plain := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Resolver: p.resolver}
	var proxies sync.Map // "host:port" of the proxies this transport was given
	if next := t.Proxy; next != nil {
		t.Proxy = func(r *http.Request) (*url.URL, error) {
			u, err := next(r)
			if u != nil {
				proxies.Store(proxyAddr(u), true)
			}
			return u, err
		}
	}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if _, ok := proxies.Load(strings.ToLower(addr)); ok {
			return plain.DialContext(ctx, network, addr)
		}
		return guarded.DialContext(ctx, network, addr)
	}
}

// refuseLoopback is the dialer's last look before connect(2): address is
// the IP and port resolution chose, whatever name the URL gave.
func refuseLoopback(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot read the address dialed (%q): %v", ErrHostNotAllowed, printableHost(address), err)
	}
	if ip := ap.Addr().Unmap(); ip.IsLoopback() || ip.IsUnspecified() {
		return fmt.Errorf("%w: the host name resolved to %s, a loopback address of the Vault host; no connection was made: a JWT or token goes to loopback only when the operator who registers the plugin allows it with %s",
			ErrHostNotAllowed, ip, loopbackFix)
	}
	return nil
}

// proxyAddr is the host:port the transport dials for proxy u.
func proxyAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "socks5", "socks5h":
			port = "1080"
		default:
			port = "80"
		}
	}
	return strings.ToLower(net.JoinHostPort(u.Hostname(), port))
}

// isLoopbackHost says whether a host, as spelled, is the Vault host itself:
// localhost (and RFC 6761's *.localhost, which resolvers may answer with
// 127.0.0.1), a loopback address, or the unspecified address (0.0.0.0 and
// :: reach the local host when dialed).
func isLoopbackHost(h string) bool {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	// netip reads every form net.ParseIP does, and zones (::1%lo) too.
	ip, err := netip.ParseAddr(h)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsUnspecified()
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
