// Command pure1-emulator runs a local Pure1 REST API emulator and drives its
// admin API, so the Vault plugin can be tested end to end without Pure1.
//
//	pure1-emulator [serve] [-listen 127.0.0.1:0] [-addr-file PATH] [-org NAME]
//	               [-token-lifetime 35999s] [-rate-limit N] [-arrays N] [-quiet]
//	pure1-emulator register -addr URL [-public-key FILE] [-max-role viewer] [-name NAME]
//	pure1-emulator fault    -addr URL -kind K [-status N] [-retry-after S] [-delay D] [-count N] | -clear
//	pure1-emulator stats    -addr URL [-reset]
//	pure1-emulator array    [-kind flasharray|flashblade] [-listen 127.0.0.1:0] [-addr-file PATH]
//	                        -ca-file PATH -api-token-file PATH [-users pureuser,ops] [-wrap-token] [-quiet]
//
// Client subcommands read the address from $PURE1_EMULATOR_ADDR when -addr is
// not given.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1/emulator"
)

const addrEnv = "PURE1_EMULATOR_ADDR"

// usageError marks command-line mistakes, which exit with status 2.
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func main() {
	err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	var ue usageError
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "pure1-emulator:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "pure1-emulator:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := "serve" // the default, so `pure1-emulator -listen ...` just works
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args, stdout, stderr)
	case "register":
		return register(args, stdin, stdout, stderr)
	case "fault":
		return fault(args, stderr)
	case "stats":
		return stats(args, stdout, stderr)
	case "array":
		return serveArray(args, stdout, stderr)
	case "help":
		fmt.Fprintln(stdout, "usage: pure1-emulator [serve|register|fault|stats|array] [flags]; run a subcommand with -h for its flags")
		return nil
	}
	return usagef("unknown subcommand %q; use serve, register, fault, stats or array", cmd)
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("pure1-emulator "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse wraps flag errors so they exit with status 2, and refuses stray
// arguments, which are nearly always a misplaced flag.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q; flags must come before it", fs.Arg(0))
	}
	return nil
}

// ---- serve ----------------------------------------------------------------------

func serve(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	listen := fs.String("listen", "127.0.0.1:0", "loopback `host:port` to listen on; port 0 picks a free one")
	addrFile := fs.String("addr-file", "", "write the base URL to this `file` once listening (atomically), for scripts to wait on")
	org := fs.String("org", emulator.DefaultOrg, "org claim of issued access tokens")
	lifetime := fs.Duration("token-lifetime", emulator.DefaultTokenLifetime, "access token lifetime (expires_in)")
	rateLimit := fs.Int("rate-limit", 0, "token requests per second per org before 429; 0 = unlimited")
	arrays := fs.Int("arrays", 1, "number of arrays GET /api/<version>/arrays lists (more show paging: ?limit=2)")
	quiet := fs.Bool("quiet", false, "do not log requests to stderr")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkLoopback(*listen); err != nil {
		return err
	}

	var logger *log.Logger
	if !*quiet {
		logger = log.New(stderr, "pure1-emulator: ", log.LstdFlags|log.Lmicroseconds)
	}
	emu, err := emulator.New(emulator.Options{Org: *org, TokenLifetime: *lifetime, RateLimit: *rateLimit, Arrays: *arrays, Logger: logger})
	if err != nil {
		return usageError{err}
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w (is the port in use? -listen 127.0.0.1:0 picks a free one)", *listen, err)
	}
	base := "http://" + ln.Addr().String()
	if *addrFile != "" {
		if err := writeFileAtomic(*addrFile, base+"\n"); err != nil {
			ln.Close()
			return err
		}
		defer os.Remove(*addrFile) // a stale file would point scripts at a dead port
	}
	fmt.Fprintln(stdout, "pure1-emulator listening on "+base)

	errLog := log.New(io.Discard, "", 0)
	if logger != nil {
		errLog = logger
	}
	srv := &http.Server{
		Handler:           emu.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          errLog,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	stop() // a second signal now kills the process the default way
	// Requests held by delay faults can take a while; give them a moment.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	if logger != nil {
		logger.Print("shut down")
	}
	return nil
}

// checkLoopback refuses anything but a loopback address: the emulator hands
// out tokens to anyone and has an unauthenticated admin API.
func checkLoopback(listen string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return usagef("-listen %q: %v; use host:port such as 127.0.0.1:0", listen, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(strings.SplitN(host, "%", 2)[0]); ip != nil && ip.IsLoopback() {
		return nil
	}
	return usagef("refusing to listen on %q: the emulator has no authentication, so it only listens on loopback; use 127.0.0.1:PORT, [::1]:PORT or localhost:PORT", listen)
}

// writeFileAtomic writes via a temporary file and rename, so a script polling
// for the file never reads it half-written.
func writeFileAtomic(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".pure1-emulator-addr-*")
	if err != nil {
		return fmt.Errorf("writing address file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return fmt.Errorf("writing address file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing address file: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("writing address file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing address file: %w", err)
	}
	return nil
}

// ---- client subcommands ----------------------------------------------------------

func addrFlag(fs *flag.FlagSet) *string {
	return fs.String("addr", os.Getenv(addrEnv), "emulator base `URL`, as printed by serve (default $"+addrEnv+")")
}

func register(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("register", stderr)
	addr := addrFlag(fs)
	keyFile := fs.String("public-key", "", "PEM public key `file`; read from stdin when empty or \"-\"")
	maxRole := fs.String("max-role", emulator.DefaultMaxRole, "maximum role of the application")
	name := fs.String("name", "", "application name (default derived from the key)")
	if err := parse(fs, args); err != nil {
		return err
	}
	var key []byte
	var err error
	if *keyFile == "" || *keyFile == "-" {
		key, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
	} else {
		key, err = os.ReadFile(*keyFile)
	}
	if err != nil {
		return fmt.Errorf("reading public key: %w", err)
	}
	body, _ := json.Marshal(map[string]string{"public_key": string(key), "max_role": *maxRole, "name": *name})
	var app emulator.Application
	if err := call(*addr, http.MethodPost, emulator.ApplicationsPath, body, http.StatusCreated, &app); err != nil {
		return err
	}
	fmt.Fprintln(stdout, app.ID) // nothing else: APP_ID=$(pure1-emulator register ...)
	return nil
}

func fault(args []string, stderr io.Writer) error {
	fs := newFlagSet("fault", stderr)
	addr := addrFlag(fs)
	var f emulator.Fault
	fs.StringVar(&f.Kind, "kind", "", "fault kind: status, reset, delay, slow_body, non_json, truncated_json, no_access_token, no_expires_in, zero_expires_in")
	fs.IntVar(&f.Status, "status", 0, "HTTP status for -kind status (400-599)")
	fs.StringVar(&f.RetryAfter, "retry-after", "", "raw Retry-After header value for -kind status")
	delay := fs.Duration("delay", 0, "delay for -kind delay and slow_body, e.g. 2s")
	fs.IntVar(&f.Count, "count", 1, "number of token requests the fault applies to")
	clearQueue := fs.Bool("clear", false, "remove all queued faults instead of adding one")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *clearQueue {
		return call(*addr, http.MethodDelete, emulator.FaultsPath, nil, http.StatusNoContent, nil)
	}
	f.Delay = emulator.Duration(*delay)
	// Validate here too, so mistakes are reported before any network call.
	if err := f.Validate(); err != nil {
		return usageError{err}
	}
	body, _ := json.Marshal(f)
	return call(*addr, http.MethodPost, emulator.FaultsPath, body, http.StatusNoContent, nil)
}

func stats(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("stats", stderr)
	addr := addrFlag(fs)
	reset := fs.Bool("reset", false, "print the counters, then zero them")
	if err := parse(fs, args); err != nil {
		return err
	}
	var st emulator.Stats
	if err := call(*addr, http.MethodGet, emulator.StatsPath, nil, http.StatusOK, &st); err != nil {
		return err
	}
	out, _ := json.MarshalIndent(st, "", "  ")
	fmt.Fprintln(stdout, string(out))
	if *reset {
		return call(*addr, http.MethodPost, emulator.StatsResetPath, nil, http.StatusNoContent, nil)
	}
	return nil
}

// call performs one admin API request, decoding the answer into out when it
// has the wanted status and turning anything else into an actionable error.
func call(addr, method, path string, body []byte, want int, out any) error {
	base, err := baseURL(addr)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the emulator at %s: %w (is `pure1-emulator serve` running?)", base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading response: %w", method, path, err)
	}
	if resp.StatusCode != want {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decoding response: %w", method, path, err)
		}
	}
	return nil
}

func baseURL(addr string) (string, error) {
	if addr == "" {
		return "", usagef("no emulator address; pass -addr http://127.0.0.1:PORT or set $%s", addrEnv)
	}
	u, err := url.Parse(strings.TrimSpace(addr))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usagef("-addr %q is not a base URL like http://127.0.0.1:PORT", addr)
	}
	return strings.TrimRight(u.String(), "/"), nil
}
