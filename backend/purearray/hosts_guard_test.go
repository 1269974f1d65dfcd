package purearray

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
)

// The array client dials through the host policy's guard: an array_url
// whose name resolves to a loopback address (here: dialed as one) is
// refused where the connection would be made, unless the registrar allowed
// loopback. The admin token never leaves for the Vault host's own ports.
func TestNewDialsThroughHostGuard(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	listed, err := pure1.NewHostPolicy("flasharray.example.net")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		policy pure1.HostPolicy
		ok     bool
	}{{listed, false}, {listed.WithLoopback(), true}} {
		a, err := New(Options{ArrayURL: "https://flasharray.example.net", Hosts: c.policy})
		if err != nil {
			t.Fatal(err)
		}
		dial := a.HTTPClient().Transport.(*http.Transport).DialContext
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := dial(ctx, "tcp", ln.Addr().String())
		cancel()
		if conn != nil {
			conn.Close()
		}
		if c.ok {
			if err != nil {
				t.Errorf("loopback allowed: dial: %v", err)
			}
			continue
		}
		if !errors.Is(err, pure1.ErrHostNotAllowed) || !strings.Contains(err.Error(), "PURE1_ALLOWED_TOKEN_HOSTS=loopback") {
			t.Errorf("dial to %s without the opt-in: %v, want ErrHostNotAllowed naming the fix", ln.Addr(), err)
		}
	}
}
