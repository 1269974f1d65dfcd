package pure1

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-cleanhttp"
)

// The policy is held where the connection is made, not only on the URL's
// spelling: a name the registrar allowed, or Pure1's own, that resolves
// (or is re-pointed) to 127.0.0.1 gets no JWT unless loopback is allowed.
func TestTransportRefusesNameResolvingToLoopback(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		writeJSON(w, http.StatusOK, okBody("tok", 36000))
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	// httptest's certificate is valid for *.example.com.
	tokenURL := "https://pure1.example.com:" + port + "/oauth2/1.0/token"

	for _, c := range []struct {
		list    string
		allowed bool
	}{
		{"pure1.example.com", false},
		{"pure1.example.com,loopback", true},
	} {
		t.Run(c.list, func(t *testing.T) {
			p := mustHostPolicy(t, c.list)
			p.resolver = fakeResolver(t, netAddr("127.0.0.1"))
			if err := p.Check("token_url", tokenURL); err != nil {
				t.Fatalf("Check by spelling: %v (the name is allowed; the dialer must judge the address)", err)
			}
			tr := p.Transport()
			tr.TLSClientConfig = &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
			defer tr.CloseIdleConnections()
			ex := NewHTTPExchanger(HTTPExchangerOptions{Client: &http.Client{Transport: tr, Timeout: 5 * time.Second}, Hosts: p, Retry: fastRetry})
			before := hits.Load()
			tok, err := ex.Exchange(testCtx(t), tokenURL, "header.payload.signature")
			if c.allowed {
				if err != nil || tok.Token != "tok" {
					t.Fatalf("with loopback allowed: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrRejected) || !errors.Is(err, ErrHostNotAllowed) {
				t.Fatalf("Exchange: %v, want ErrRejected and ErrHostNotAllowed", err)
			}
			for _, want := range []string{"127.0.0.1", "no request was sent", "vault plugin register -env PURE1_ALLOWED_TOKEN_HOSTS=loopback"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q should say %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "header.payload.signature") {
				t.Error("the error quotes the JWT")
			}
			if n := hits.Load() - before; n != 0 {
				t.Errorf("the loopback server got %d request(s)", n)
			}
		})
	}
}

// The exchanger's own client (no Client given: the plugin's) dials through
// the policy's transport, and a refused address is not retried.
func TestExchangerOwnClientIsGuarded(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		writeJSON(w, http.StatusOK, okBody("tok", 36000))
	}))
	defer srv.Close()
	p := mustHostPolicy(t, "pure1.example.com")
	ex := NewHTTPExchanger(HTTPExchangerOptions{Hosts: p, Retry: fastRetry})
	defer ex.CloseIdleConnections()
	dial := ex.client.Transport.(*http.Transport).DialContext
	if dial == nil {
		t.Fatal("the exchanger's transport has no guarded dialer")
	}
	// Dial the server's address directly, as a name resolving to it would.
	_, err := dial(testCtx(t), "tcp", srv.Listener.Addr().String())
	if !errors.Is(err, ErrHostNotAllowed) || !strings.Contains(err.Error(), "PURE1_ALLOWED_TOKEN_HOSTS=loopback") {
		t.Fatalf("dial to %s: %v, want ErrHostNotAllowed naming the fix", srv.Listener.Addr(), err)
	}
	if hits.Load() != 0 {
		t.Error("the server was reached")
	}
	// With loopback allowed the same transport connects.
	lp := NewHTTPExchanger(HTTPExchangerOptions{Hosts: p.WithLoopback(), Retry: fastRetry})
	defer lp.CloseIdleConnections()
	tok, err := lp.Exchange(testCtx(t), srv.URL+"/oauth2/1.0/token", "header.payload.signature")
	if err != nil || tok.Token != "tok" {
		t.Fatalf("with loopback allowed: %v", err)
	}
}

func TestRefuseLoopbackAddresses(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:8200", false},
		{"127.10.20.30:443", false},
		{"[::1]:443", false},
		{"[::ffff:127.0.0.1]:443", false},
		{"0.0.0.0:8200", false},
		{"[::]:8200", false},
		{"10.0.0.5:443", true},
		{"[2001:db8::1]:443", true},
		{"not-an-address", false},
	} {
		err := refuseLoopback("tcp", c.addr, nil)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok=%v", c.addr, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrHostNotAllowed) {
			t.Errorf("%s: %v does not wrap ErrHostNotAllowed", c.addr, err)
		}
	}
}

// A forward proxy named in the plugin's environment (HTTPS_PROXY) is the
// registrar's choice: the transport reaches it on loopback without the
// loopback word, while the target behind it is still judged by Check.
func TestTransportProxyOnLoopback(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	target := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		writeJSON(w, http.StatusOK, okBody("via-proxy", 36000))
	}))
	defer target.Close()
	var connects atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		connects.Add(1)
		// The proxy resolves the target itself: here, to the test server.
		up, err := net.Dial("tcp", target.Listener.Addr().String())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			up.Close()
			return
		}
		_, _ = rw.WriteString("HTTP/1.1 200 Connection established\r\n\r\n")
		_ = rw.Flush()
		go func() { _, _ = io.Copy(up, rw); up.Close() }()
		_, _ = io.Copy(conn, up)
		conn.Close()
	}))
	defer proxy.Close()

	p := mustHostPolicy(t, "pure1.example.com")
	proxyURL, _ := url.Parse(proxy.URL)
	// As Transport builds it, with this proxy in place of the environment's
	// (which net/http reads once per process).
	tr := cleanhttp.DefaultPooledTransport()
	tr.Proxy = http.ProxyURL(proxyURL)
	p.guard(tr)
	defer tr.CloseIdleConnections()
	tr.TLSClientConfig = &tls.Config{RootCAs: target.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	ex := NewHTTPExchanger(HTTPExchangerOptions{Client: &http.Client{Transport: tr, Timeout: 5 * time.Second}, Hosts: p, Retry: fastRetry})
	tok, err := ex.Exchange(testCtx(t), "https://pure1.example.com/oauth2/1.0/token", "header.payload.signature")
	if err != nil || tok.Token != "via-proxy" {
		t.Fatalf("through a loopback proxy: %v", err)
	}
	if connects.Load() != 1 || hits.Load() != 1 {
		t.Errorf("CONNECTs %d, target hits %d; want 1 and 1", connects.Load(), hits.Load())
	}
}

// ---- a resolver that answers every A query with one address ----------------

func netAddr(s string) [4]byte {
	ip := net.ParseIP(s).To4()
	return [4]byte{ip[0], ip[1], ip[2], ip[3]}
}

// fakeResolver is Go's own resolver talking to an in-process DNS server over
// a pipe (DNS over a stream: each message behind a two-byte length), so the
// test exercises the dialer's real resolution path without /etc/hosts.
func fakeResolver(t *testing.T, a [4]byte) *net.Resolver {
	t.Helper()
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		client, server := net.Pipe()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer server.Close()
			r := bufio.NewReader(server)
			for {
				var n uint16
				if err := binary.Read(r, binary.BigEndian, &n); err != nil {
					return
				}
				q := make([]byte, n)
				if _, err := io.ReadFull(r, q); err != nil {
					return
				}
				resp := dnsAnswer(q, a)
				if resp == nil {
					return
				}
				out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
				if _, err := server.Write(append(out, resp...)); err != nil {
					return
				}
			}
		}()
		return client, nil
	}}
}

// dnsAnswer answers query q: an A record of a for type A, no records (but
// success) for any other type.
func dnsAnswer(q []byte, a [4]byte) []byte {
	if len(q) < 12 {
		return nil
	}
	// The question: labels up to the zero byte, then type and class.
	i := 12
	for i < len(q) && q[i] != 0 {
		i += int(q[i]) + 1
	}
	if i+5 > len(q) {
		return nil
	}
	question := q[12 : i+5]
	qtype := binary.BigEndian.Uint16(q[i+1:])
	resp := append([]byte{}, q[0:2]...) // the query's ID
	resp = append(resp, 0x81, 0x80)     // a response, recursion desired and available, no error
	ancount := uint16(0)
	if qtype == 1 {
		ancount = 1
	}
	resp = binary.BigEndian.AppendUint16(resp, 1)
	resp = binary.BigEndian.AppendUint16(resp, ancount)
	resp = append(resp, 0, 0, 0, 0) // no authority or additional records
	resp = append(resp, question...)
	if ancount == 1 {
		resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4) // the name at offset 12, A, IN, TTL 60, 4 bytes
		resp = append(resp, a[:]...)
	}
	return resp
}
