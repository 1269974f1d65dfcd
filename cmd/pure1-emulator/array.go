package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	arrayemu "github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray/emulator"
)

// serveArray runs the FlashArray or FlashBlade emulator over TLS with a CA
// of its own, strict as the kind's array is (see the emulator package). The
// CA's PEM and the login API token go to files (the token 0600), so tests
// and make dev can configure Vault with them; the address is printed and,
// with -addr-file, written once listening. Its admin API (stats, clients,
// users, faults) is under /emulator/ on the same address.
func serveArray(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("array", stderr)
	kind := fs.String("kind", arrayemu.FlashArray, "array `kind`: flasharray or flashblade; each answers only its own wire")
	listen := fs.String("listen", "127.0.0.1:0", "loopback `host:port` to listen on; port 0 picks a free one")
	addrFile := fs.String("addr-file", "", "write the base URL (https://...) to this `file` once listening")
	caFile := fs.String("ca-file", "", "write the emulator's CA certificate (PEM) to this `file`: the ca_cert a client must trust (required)")
	tokenFile := fs.String("api-token-file", "", "write pureuser's API token, which login takes (FlashArray POST /api/2.x/login, FlashBlade POST /api/login), to this `file`, mode 0600 (required)")
	users := fs.String("users", "pureuser", "comma-separated local `users` the array starts with besides the built-in pureuser (role array_admin, no API token): names a JWT's sub may give")
	maxUsers := fs.Int("max-users", arrayemu.DefaultMaxUsers, "local users, pureuser included, the array holds before POST admins is refused (400)")
	wrap := fs.Bool("wrap-token", false, `answer the token endpoint as {"items":[...]} instead of plain OAuth JSON`)
	quiet := fs.Bool("quiet", false, "do not log requests to stderr")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *caFile == "" || *tokenFile == "" {
		return usagef("-ca-file and -api-token-file are required: a client needs the CA to trust and the token to log in")
	}
	if err := checkLoopback(*listen); err != nil {
		return err
	}
	var logger *log.Logger
	if !*quiet {
		logger = log.New(stderr, "pure1-emulator array ("+*kind+"): ", log.LstdFlags|log.Lmicroseconds)
	}
	if *maxUsers < 1 {
		return usagef("-max-users %d: give at least 1 (pureuser is a user too)", *maxUsers)
	}
	emu, err := arrayemu.New(arrayemu.Options{Kind: *kind, Users: strings.Split(*users, ","), MaxUsers: *maxUsers, WrapToken: *wrap, Logger: logger})
	if err != nil {
		return usageError{err}
	}
	host, _, _ := net.SplitHostPort(*listen)
	certs, err := arrayemu.NewTLS(host)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(*caFile, string(certs.CAPEM)); err != nil {
		return err
	}
	if err := writeFileAtomic(*tokenFile, emu.APIToken()+"\n"); err != nil {
		return err
	}
	if err := os.Chmod(*tokenFile, 0o600); err != nil {
		return err
	}
	defer os.Remove(*tokenFile) // a live credential of a dead emulator is litter

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w (is the port in use? -listen 127.0.0.1:0 picks a free one)", *listen, err)
	}
	base := "https://" + ln.Addr().String()
	if *addrFile != "" {
		if err := writeFileAtomic(*addrFile, base+"\n"); err != nil {
			ln.Close()
			return err
		}
		defer os.Remove(*addrFile)
	}
	fmt.Fprintf(stdout, "pure1-emulator array (%s, REST %s) listening on %s; admin API %s%s\n", emu.Kind(), emu.APIVersion(), base, base, arrayemu.StatsPath)

	errLog := log.New(io.Discard, "", 0)
	if logger != nil {
		errLog = logger
	}
	srv := &http.Server{Handler: emu.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog, TLSConfig: certs.Config}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(tls.NewListener(ln, certs.Config)) }()
	select {
	case err := <-served:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	stop()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	return nil
}
