package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"golang.org/x/term"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
)

const (
	progName = "pure1-token"

	// passwordEnv holds the private key's password when -p is not given.
	passwordEnv = "PURE1_PRIVATE_KEY_PASSWORD"

	// defaultJWTLifetime is the Python token factory's, to the second: its
	// expire_seconds=31556952, a mean Gregorian year of 365.2425 days. A
	// drop-in must not hand out JWTs that die 5h49m12s earlier.
	defaultJWTLifetime = 31556952 * time.Second
	// defaultExchangeJWTLifetime is the lifetime of the JWT that --exchange
	// sends: it is used once, right away, so it need not outlive the call.
	defaultExchangeJWTLifetime = 5 * time.Minute

	// exchangeTimeout bounds the whole exchange, retries included.
	exchangeTimeout = 90 * time.Second
	// attemptTimeout bounds one HTTP request to the token endpoint.
	attemptTimeout = 30 * time.Second

	// maxKeyFileBytes: a PEM RSA key of the largest size accepted is ~7 KiB;
	// anything much larger is not a key file.
	maxKeyFileBytes = 1 << 20

	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = ""

const usageText = `Usage:
  pure1-token [flags] <app_id> <private_key_file>
  pure1-token --generate-key FILE [--key-bits N] [-p PASSWORD]

Prints a JWT for the Pure1 REST API, signed with the application's private
key and valid for one year (like Pure1's Python token factory script), or with
--exchange, a Pure1 access token. Keys may be PKCS#1, PKCS#8, encrypted PKCS#8
(OpenSSL 3's genrsa -aes256) or legacy encrypted PEM (OpenSSL 1.1's).

Flags:
  -p, --password PASSWORD   password of an encrypted private key. When it is
                            not given: a prompt (no echo) when stdin is a
                            terminal, else $PURE1_PRIVATE_KEY_PASSWORD
      --expire DURATION     lifetime of the JWT: a Go duration (8760h, 90m)
                            or days (365d). Default 31556952s (365.2425
                            days, the Python script's expire_seconds, to the
                            second); with --exchange, 5m
      --exchange            trade the JWT for a Pure1 access token and print
                            that instead
      --token-url URL       token endpoint for --exchange: Pure1's (default
                            https://api.pure1.purestorage.com/oauth2/1.0/token)
                            or a loopback address (http allowed there); any
                            other https host only when listed in
                            $PURE1_ALLOWED_TOKEN_HOSTS (host[:port],...).
                            Redirects are never followed
      --json                print every field as one JSON object
      --generate-key FILE   write a new RSA key pair to FILE (mode 0600; never
                            overwritten), encrypted PKCS#8 when a password is
                            given with -p or $PURE1_PRIVATE_KEY_PASSWORD, and
                            print the public key to register in Pure1
      --key-bits N          size of the generated key: 2048 (default), 3072
                            or 4096
      --version             print the version and exit
  -h, --help                show this help

Examples:
  # A one-year JWT, as the Python script prints it (prompts for the password)
  pure1-token pure1:apikey:AbCdEf0123456789 private.pem

  # Password from the environment, a 30-day JWT, all fields as JSON
  PURE1_PRIVATE_KEY_PASSWORD=... pure1-token --expire 30d --json \
      pure1:apikey:AbCdEf0123456789 private.pem

  # An access token, ready for curl
  TOKEN=$(pure1-token --exchange pure1:apikey:AbCdEf0123456789 private.pem)
  curl -H "Authorization: Bearer $TOKEN" https://api.pure1.purestorage.com/api/1.latest/arrays

  # A new key pair: register the printed public key in Pure1 >
  # Administration > API Registration to get the app ID
  pure1-token --generate-key private.pem -p 'a long passphrase'

Exit status: 0 on success, 1 when the work failed, 2 for a usage error.
`

// run is main without the process: it parses args, does the work and returns
// the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{
		stdin:     stdin,
		stdout:    stdout,
		stderr:    stderr,
		lookupEnv: os.LookupEnv,
		now:       time.Now,
	}
	c.readPassword = c.terminalPassword
	return c.run(args)
}

// cli carries what the command touches outside itself, so tests can replace
// the environment, the clock and the terminal.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
	now            func() time.Time
	// readPassword prompts for a password and reads it without echo. ok is
	// false when there is no terminal to prompt on.
	readPassword func(prompt string) (password []byte, ok bool, err error)
	// httpClient, when set, replaces the client --exchange uses.
	httpClient *http.Client

	// secrets are scrubbed from error messages as a last line of defence.
	secrets []string
}

type options struct {
	appID, keyFile string

	password    string
	expire      time.Duration
	expireSet   bool
	exchange    bool
	tokenURL    string
	json        bool
	generateKey string
	keyBits     int
	version     bool
	// hosts are where --exchange may send the JWT: Pure1, loopback, and
	// $PURE1_ALLOWED_TOKEN_HOSTS.
	hosts pure1.HostPolicy
}

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

var errHelp = errors.New("help requested")

func (c *cli) run(args []string) int {
	err := c.main(args)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, errHelp) {
		fmt.Fprint(c.stdout, usageText)
		return exitOK
	}
	msg := c.scrub(err.Error())
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(c.stderr, "%s: %s (see %s -h)\n", progName, msg, progName)
		return exitUsage
	}
	fmt.Fprintf(c.stderr, "%s: %s\n", progName, msg)
	return exitRuntime
}

// scrub keeps an error to one line and takes out any password, in case one
// found its way into a message through a path nobody foresaw.
func (c *cli) scrub(msg string) string {
	for _, s := range c.secrets {
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return strings.Join(strings.Fields(msg), " ")
}

// env is the value of an environment variable, "" when unset.
func (c *cli) env(name string) string {
	v, _ := c.lookupEnv(name)
	return v
}

func (c *cli) main(args []string) error {
	o, err := c.parseArgs(args)
	if err != nil {
		return err
	}
	switch {
	case o.version:
		return c.printf("%s %s (%s)\n", progName, versionString(), runtime.Version())
	case o.generateKey != "":
		return c.generate(o)
	case o.exchange:
		return c.exchange(o)
	default:
		return c.printJWT(o)
	}
}

// valueFlags are the flags that take a value, for splitShortPassword.
var valueFlags = map[string]bool{"p": true, "password": true, "expire": true, "token-url": true, "generate-key": true, "key-bits": true}

func (c *cli) parseArgs(args []string) (*options, error) {
	o := &options{}
	var expire, keyBits string
	fs := flag.NewFlagSet(progName, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&o.password, "p", "", "")
	fs.StringVar(&o.password, "password", "", "")
	fs.StringVar(&expire, "expire", "", "")
	fs.BoolVar(&o.exchange, "exchange", false, "")
	fs.StringVar(&o.tokenURL, "token-url", pure1.DefaultTokenURL, "")
	fs.BoolVar(&o.json, "json", false, "")
	fs.StringVar(&o.generateKey, "generate-key", "", "")
	fs.StringVar(&keyBits, "key-bits", "", "")
	fs.BoolVar(&o.version, "version", false, "")

	// The Python script's argparse lets flags and the two arguments come in
	// any order, so parse flags again after each positional argument.
	rest := splitShortPassword(args)
	var positional []string
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, usagef("%v", err)
		}
		left := fs.Args()
		if len(left) == 0 {
			break
		}
		if n := len(rest) - len(left); n > 0 && rest[n-1] == "--" {
			positional = append(positional, left...)
			break
		}
		positional = append(positional, left[0])
		rest = left[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	if o.password != "" {
		c.secrets = append(c.secrets, o.password)
	}
	if v, ok := c.lookupEnv(passwordEnv); ok && v != "" {
		c.secrets = append(c.secrets, v)
	}
	if o.version {
		return o, nil
	}

	if set["expire"] {
		d, err := parseExpire(expire)
		if err != nil {
			return nil, err
		}
		o.expire, o.expireSet = d, true
	}

	if set["generate-key"] {
		if o.generateKey == "" || strings.HasPrefix(o.generateKey, "-") {
			return nil, usagef("--generate-key needs the name of the file to create")
		}
		for _, f := range []string{"exchange", "token-url", "expire"} {
			if set[f] {
				return nil, usagef("--%s cannot be used with --generate-key", f)
			}
		}
		if len(positional) > 0 {
			return nil, usagef("--generate-key takes no <app_id> or <private_key_file>: register the printed public key in Pure1 to get the app ID")
		}
		o.keyBits = pure1.DefaultKeyBits
		if set["key-bits"] {
			n, err := strconv.Atoi(keyBits)
			if err != nil || !validKeyBits(n) {
				return nil, usagef("--key-bits must be 2048, 3072 or 4096")
			}
			o.keyBits = n
		}
		return o, nil
	}

	if set["key-bits"] {
		return nil, usagef("--key-bits is only used with --generate-key")
	}
	if set["token-url"] && !o.exchange {
		return nil, usagef("--token-url is only used with --exchange")
	}
	switch len(positional) {
	case 0:
		return nil, usagef("missing <app_id> and <private_key_file>")
	case 1:
		return nil, usagef("missing <private_key_file> after <app_id>")
	case 2:
	default:
		return nil, usagef("too many arguments: expected <app_id> <private_key_file>, got %d arguments (give the password with -p)", len(positional))
	}
	o.appID, o.keyFile = positional[0], positional[1]
	if err := pure1.ValidateAppID(o.appID); err != nil {
		if strings.HasPrefix(o.keyFile, pure1.AppIDPrefix) {
			return nil, usagef("the arguments are swapped: give <app_id> first, then <private_key_file>")
		}
		return nil, usagef("%v", err)
	}
	if o.exchange {
		hosts, err := pure1.NewHostPolicy(c.env(pure1.AllowedHostsEnv))
		if err != nil {
			return nil, usagef("%v", err)
		}
		// Loopback stays allowed here, unlike in the plugin: the key and
		// the machine are the user's own, so a local emulator is theirs to
		// reach, and no config writer stands between them and the JWT.
		hosts = hosts.WithLoopback()
		if err := hosts.Check("--token-url", o.tokenURL); err != nil {
			if errors.Is(err, pure1.ErrHostNotAllowed) {
				// The JWT is the user's own, but a copied command line
				// must not mail it to a stranger: another host takes a
				// second, deliberate step.
				u, _ := url.Parse(o.tokenURL)
				return nil, usagef("--token-url names %s, which is neither Pure1 (%s) nor a loopback address: to send your JWT there, allow it with %s=%s",
					u.Host, pure1.Pure1Host, pure1.AllowedHostsEnv, u.Host)
			}
			return nil, usagef("%v", err)
		}
		o.hosts = hosts
	}
	if !o.expireSet {
		o.expire = defaultJWTLifetime
		if o.exchange {
			o.expire = defaultExchangeJWTLifetime
		}
	}
	return o, nil
}

// splitShortPassword turns argparse's "-pSECRET" into "-p" "SECRET", which Go's
// flag package would otherwise reject as an unknown flag, naming the
// password in the error.
func splitShortPassword(args []string) []string {
	out := make([]string, 0, len(args)+1)
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		name := strings.TrimLeft(a, "-")
		if strings.HasPrefix(a, "-") && !strings.Contains(name, "=") && valueFlags[name] && i+1 < len(args) {
			// A flag whose value is the next argument: copy both as they are.
			out = append(out, a, args[i+1])
			i++
			continue
		}
		if strings.HasPrefix(a, "-p") && len(a) > 2 && a[2] != '=' && !strings.HasPrefix(a, "-password") {
			out = append(out, "-p", a[2:])
			continue
		}
		out = append(out, a)
	}
	return out
}

func validKeyBits(n int) bool {
	for _, b := range pure1.GenerateKeyBits {
		if b == n {
			return true
		}
	}
	return false
}

// parseExpire reads a Go duration ("8760h", "90m") or days ("365d",
// "1d12h"). The value is not echoed: a mistyped command line may have put
// something private there.
func parseExpire(s string) (time.Duration, error) {
	bad := usagef("invalid --expire value: use a Go duration such as 8760h or 90m, or days such as 365d")
	s = strings.TrimSpace(s)
	var d time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 && allDigits(s[:i]) {
		days, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil || days > int64(math.MaxInt64/int64(24*time.Hour)) {
			return 0, usagef("--expire is too long")
		}
		d = time.Duration(days) * 24 * time.Hour
		if rest := s[i+1:]; rest != "" {
			r, err := time.ParseDuration(rest)
			if err != nil || r < 0 || strings.HasPrefix(rest, "+") {
				return 0, bad
			}
			if d > math.MaxInt64-r {
				return 0, usagef("--expire is too long")
			}
			d += r
		}
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, bad
		}
	}
	if d < time.Second {
		return 0, usagef("--expire must be at least 1s")
	}
	return d, nil
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// readKeyFile reads the key file with errors that say what to fix.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileError("the private key file", path, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory, not a private key file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %v", path, pathErr(err))
	}
	if len(data) > maxKeyFileBytes {
		return nil, fmt.Errorf("%s is larger than 1 MiB: it is not a private key file", path)
	}
	return data, nil
}

func fileError(what, path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s %s does not exist: check the path", what, path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s %s cannot be read: permission denied", what, path)
	}
	return fmt.Errorf("opening %s %s: %v", what, path, pathErr(err))
}

// pathErr drops the operation and path a *fs.PathError repeats.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// loadKey reads and parses the private key, asking for a password only when
// the key turns out to be encrypted.
func (c *cli) loadKey(o *options) (*pure1.Key, error) {
	data, err := readKeyFile(o.keyFile)
	if err != nil {
		return nil, err
	}
	defer clear(data)
	key, err := pure1.ParsePrivateKey(data, nil)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, pure1.ErrPasswordRequired) {
		return nil, fmt.Errorf("%s: %w", o.keyFile, err)
	}
	password, source, err := c.password(o, "Password for "+o.keyFile+": ")
	if err != nil {
		return nil, err
	}
	if password == nil {
		return nil, fmt.Errorf("%s: the private key is encrypted: give its password with -p, or in $%s, or run on a terminal to be prompted", o.keyFile, passwordEnv)
	}
	defer clear(password)
	key, err = pure1.ParsePrivateKey(data, password)
	if err != nil {
		if errors.Is(err, pure1.ErrWrongPassword) {
			return nil, fmt.Errorf("%w %s for %s", err, source, o.keyFile)
		}
		return nil, fmt.Errorf("%s: %w", o.keyFile, err)
	}
	return key, nil
}

// password finds the key's password: -p, then $PURE1_PRIVATE_KEY_PASSWORD,
// then (when prompt is not empty) a prompt on the terminal. It returns nil
// when there is none, and where the password came from, for messages.
func (c *cli) password(o *options, prompt string) (password []byte, source string, err error) {
	if o.password != "" {
		return []byte(o.password), "given with -p/--password", nil
	}
	// The order of the Python script's users' habits and of the issue: the
	// flag, then a prompt when a person is at a terminal, then the
	// environment (for scripts and CI, where there is no terminal).
	if prompt != "" && c.readPassword != nil {
		pw, ok, err := c.readPassword(prompt)
		if err != nil {
			return nil, "", fmt.Errorf("reading the password from the terminal: %v", err)
		}
		if ok {
			if len(pw) == 0 {
				return nil, "", errors.New("no password was entered: the private key is encrypted")
			}
			c.secrets = append(c.secrets, string(pw))
			return pw, "typed at the prompt", nil
		}
	}
	if v, ok := c.lookupEnv(passwordEnv); ok && v != "" {
		return []byte(v), "in $" + passwordEnv, nil
	}
	return nil, "", nil
}

// terminalPassword prompts on stderr and reads from stdin without echo, when
// stdin is a terminal.
func (c *cli) terminalPassword(prompt string) ([]byte, bool, error) {
	f, ok := c.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, false, nil
	}
	fd := int(f.Fd())
	if state, err := term.GetState(fd); err == nil {
		// Ctrl-C at the prompt must not leave the terminal without echo.
		sigs := make(chan os.Signal, 1)
		done := make(chan struct{})
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
		defer func() {
			signal.Stop(sigs)
			close(done)
		}()
		go func() {
			select {
			case <-sigs:
				_ = term.Restore(fd, state)
				fmt.Fprintln(c.stderr)
				os.Exit(130)
			case <-done:
			}
		}()
	}
	fmt.Fprint(c.stderr, prompt)
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(c.stderr)
	return pw, true, err
}

func (c *cli) signJWT(o *options, key *pure1.Key) (jwt string, iat, exp time.Time, err error) {
	signer, err := pure1.NewSigner(o.appID, key)
	if err != nil {
		return "", time.Time{}, time.Time{}, err
	}
	now := c.now()
	jwt, exp, err = signer.Sign(now, o.expire)
	if err != nil {
		return "", time.Time{}, time.Time{}, err
	}
	return jwt, time.Unix(now.Unix(), 0).UTC(), exp, nil
}

func (c *cli) printJWT(o *options) error {
	key, err := c.loadKey(o)
	if err != nil {
		return err
	}
	jwt, iat, exp, err := c.signJWT(o, key)
	if err != nil {
		return err
	}
	if o.json {
		return c.printJSON(struct {
			JWT         string `json:"jwt"`
			AppID       string `json:"app_id"`
			IssuedAt    string `json:"issued_at"`
			ExpiresAt   string `json:"expires_at"`
			Fingerprint string `json:"public_key_fingerprint"`
		}{jwt, o.appID, iat.Format(time.RFC3339), exp.Format(time.RFC3339), key.Fingerprint()})
	}
	return c.printf("%s\n", jwt)
}

func (c *cli) exchange(o *options) error {
	key, err := c.loadKey(o)
	if err != nil {
		return err
	}
	jwt, _, _, err := c.signJWT(o, key)
	if err != nil {
		return err
	}
	client := c.httpClient
	if client == nil {
		// One request per run: no connection pool to keep alive.
		client = cleanhttp.DefaultClient()
		client.Timeout = attemptTimeout
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	defer cancel()
	// The exchanger refuses redirects on its copy of this client: a 307 must
	// not re-post the JWT to another address.
	ex := pure1.NewHTTPExchanger(pure1.HTTPExchangerOptions{Client: client, Now: c.now, Hosts: o.hosts})
	tok, err := ex.Exchange(ctx, o.tokenURL, jwt)
	if err != nil {
		var apiErr *pure1.APIError
		switch {
		case errors.As(err, &apiErr) && (apiErr.StatusCode == http.StatusNotFound || apiErr.StatusCode == http.StatusMethodNotAllowed):
			return fmt.Errorf("Pure1 refused the token exchange (%v): check --token-url points at Pure1's token endpoint (%s)", apiErr, pure1.DefaultTokenURL)
		case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnauthorized:
			return fmt.Errorf("Pure1 refused the token exchange (%v): check that %s is registered in Pure1 with this key's public key (fingerprint %s) and that this machine's clock is right", apiErr, o.appID, key.Fingerprint())
		case errors.Is(err, pure1.ErrRejected):
			return fmt.Errorf("Pure1 refused the token exchange (%v): check the app ID %s and the key (fingerprint %s) against Pure1 > Administration > API Registration", err, o.appID, key.Fingerprint())
		case errors.Is(err, pure1.ErrBadResponse):
			return fmt.Errorf("token exchange failed: %v: check --token-url points at Pure1's token endpoint", err)
		default:
			return fmt.Errorf("token exchange failed: %v: check the network, the proxy settings (HTTPS_PROXY) and --token-url", err)
		}
	}
	if o.json {
		return c.printJSON(struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			ExpiresAt   string `json:"expires_at"`
			AppID       string `json:"app_id"`
			Org         string `json:"org"`
			MaxRole     string `json:"max_role"`
		}{tok.Token, tok.TokenType, tok.ExpiresAt.UTC().Format(time.RFC3339), o.appID, tok.Org, tok.MaxRole})
	}
	return c.printf("%s\n", tok.Token)
}

func (c *cli) generate(o *options) error {
	// Fail before the slow part when the file is there already; the
	// O_EXCL open below is what actually guarantees it.
	if _, err := os.Lstat(o.generateKey); err == nil {
		return existsError(o.generateKey)
	}
	password, _, err := c.password(o, "")
	if err != nil {
		return err
	}
	defer clear(password)
	key, err := pure1.GenerateKey(o.keyBits)
	if err != nil {
		return err
	}
	var pemData []byte
	format := "unencrypted PKCS#8"
	if len(password) > 0 {
		if pemData, err = key.MarshalEncryptedPKCS8PEM(password); err != nil {
			return err
		}
		format = "encrypted PKCS#8"
	} else {
		pemData = key.MarshalPKCS8PEM()
	}
	defer clear(pemData)
	if err := writeNewFile(o.generateKey, pemData); err != nil {
		return err
	}
	if o.json {
		return c.printJSON(struct {
			File        string `json:"private_key_file"`
			Bits        int    `json:"key_bits"`
			Encrypted   bool   `json:"encrypted"`
			PublicKey   string `json:"public_key"`
			Fingerprint string `json:"public_key_fingerprint"`
		}{o.generateKey, key.Bits(), len(password) > 0, key.PublicKeyPEM(), key.Fingerprint()})
	}
	note := ""
	if len(password) == 0 {
		note = "; it is not encrypted: keep it private, or give -p next time"
	}
	fmt.Fprintf(c.stderr, "%s: wrote a %d-bit RSA private key (%s) to %s%s\n", progName, key.Bits(), format, o.generateKey, note)
	fmt.Fprintf(c.stderr, "%s: register this public key in Pure1 > Administration > API Registration:\n", progName)
	return c.printf("%sFingerprint (SHA-256): %s\n", key.PublicKeyPEM(), key.Fingerprint())
}

func existsError(path string) error {
	return fmt.Errorf("%s already exists: refusing to overwrite it; choose another file name or move it away", path)
}

// writeNewFile creates path with mode 0600, failing if it exists.
func writeNewFile(path string, data []byte) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return existsError(path)
		}
		return fmt.Errorf("cannot create %s: %v", path, pathErr(err))
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("writing %s: %v", path, pathErr(cerr))
		}
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	// The umask can only take bits away; make sure it did not take the
	// owner's.
	if err := f.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		return fmt.Errorf("setting the mode of %s: %v", path, pathErr(err))
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %v", path, pathErr(err))
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %v", path, pathErr(err))
	}
	return nil
}

func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing the output: %v", err)
	}
	return nil
}

func (c *cli) printf(format string, a ...any) error {
	if _, err := fmt.Fprintf(c.stdout, format, a...); err != nil {
		return fmt.Errorf("writing the output: %v", err)
	}
	return nil
}

func versionString() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "dev"
}
