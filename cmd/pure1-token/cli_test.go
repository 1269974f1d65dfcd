package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/youmark/pkcs8"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1/emulator"
)

const (
	testAppID    = "pure1:apikey:Ab12Cd34Ef56Gh78"
	testPassword = "hunter2-Correct-Horse" // never to appear in any output
	wrongPass    = "not-the-Right-Password"
	oneYearSecs  = 31556952 // the default: the Python script's expire_seconds (365.2425 days)
)

var fixedNow = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

// The RSA key most tests use: generated once per test binary, because RSA
// key generation is the slow part of these tests.
var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
	keyErr  error
)

func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	keyOnce.Do(func() { testKey, keyErr = rsa.GenerateKey(rand.Reader, 2048) })
	if keyErr != nil {
		t.Fatal(keyErr)
	}
	return testKey
}

// env is what a test sets around one run of the command.
type env struct {
	vars   map[string]string
	now    func() time.Time                   // default fixedNow
	prompt func(string) ([]byte, bool, error) // default: no terminal
	stdin  string
}

type result struct {
	code           int
	stdout, stderr string
}

func runWith(t *testing.T, e env, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{
		stdin:  strings.NewReader(e.stdin),
		stdout: &out,
		stderr: &errOut,
		lookupEnv: func(k string) (string, bool) {
			v, ok := e.vars[k]
			return v, ok
		},
		now: func() time.Time { return fixedNow },
		readPassword: func(string) ([]byte, bool, error) {
			return nil, false, nil
		},
	}
	if e.now != nil {
		c.now = e.now
	}
	if e.prompt != nil {
		c.readPassword = e.prompt
	}
	code := c.run(args)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func pkcs1PEM(k *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

func pkcs8PEM(t *testing.T, k any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func encryptedPKCS8PEM(t *testing.T, k *rsa.PrivateKey, password string) []byte {
	t.Helper()
	der, err := pkcs8.MarshalPrivateKey(k, []byte(password), nil)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der})
}

func legacyEncryptedPEM(t *testing.T, k *rsa.PrivateKey, password string, cipher x509.PEMCipher) []byte {
	t.Helper()
	//nolint:staticcheck // legacy PEM encryption is exactly the format under test
	block, err := x509.EncryptPEMBlock(rand.Reader, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k), []byte(password), cipher)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}

func publicPEM(t *testing.T, pub *rsa.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func fingerprint(t *testing.T, pub *rsa.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// verifyJWT checks a JWT the way Pure1 does, without the code under test:
// the exact header, exactly the claims iss, iat and exp with integer times,
// and an RS256 signature by pub. It returns iat and exp.
func verifyJWT(t *testing.T, token string, pub *rsa.PublicKey, wantIss string) (iat, exp int64) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("JWT has %d parts, want 3: %q", len(parts), token)
	}
	header, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatalf("JWT header is not base64url: %v", err)
	}
	if got, want := string(header), `{"alg":"RS256","typ":"JWT"}`; got != want {
		t.Errorf("JWT header = %s, want exactly %s", got, want)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("JWT payload is not base64url: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		t.Fatalf("JWT payload is not a JSON object: %v", err)
	}
	var names []string
	for k := range claims {
		names = append(names, k)
	}
	sort.Strings(names)
	if got := strings.Join(names, ","); got != "exp,iat,iss" {
		t.Errorf("JWT claims = %s, want exactly exp,iat,iss", got)
	}
	if iss, _ := claims["iss"].(string); iss != wantIss {
		t.Errorf("iss = %v, want %q", claims["iss"], wantIss)
	}
	intClaim := func(name string) int64 {
		n, ok := claims[name].(json.Number)
		if !ok || strings.ContainsAny(n.String(), ".eE-") {
			t.Fatalf("claim %s = %v, want a positive integer", name, claims[name])
		}
		v, err := n.Int64()
		if err != nil {
			t.Fatalf("claim %s: %v", name, err)
		}
		return v
	}
	iat, exp = intClaim("iat"), intClaim("exp")
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatalf("JWT signature is not base64url: %v", err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		t.Errorf("JWT signature does not verify with the expected public key: %v", err)
	}
	return iat, exp
}

// oneJWT checks that stdout is exactly one line holding a JWT.
func oneJWT(t *testing.T, r result) string {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, stderr: %s", r.code, r.stderr)
	}
	if !strings.HasSuffix(r.stdout, "\n") || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("stdout is not one line: %q", r.stdout)
	}
	return strings.TrimSuffix(r.stdout, "\n")
}

func TestKeyFormats(t *testing.T) {
	t.Parallel()
	k := rsaKey(t)
	dir := t.TempDir()
	cases := []struct {
		name     string
		pem      []byte
		password string
	}{
		{"PKCS#1", pkcs1PEM(k), ""},
		{"PKCS#8", pkcs8PEM(t, k), ""},
		{"encrypted PKCS#8", encryptedPKCS8PEM(t, k, testPassword), testPassword},
		{"legacy encrypted PEM AES-256", legacyEncryptedPEM(t, k, testPassword, x509.PEMCipherAES256), testPassword},
		{"legacy encrypted PEM 3DES", legacyEncryptedPEM(t, k, testPassword, x509.PEMCipher3DES), testPassword},
		{"key after a certificate-like block", append([]byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"), pkcs1PEM(k)...), ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, dir, strings.Repeat("k", i+1)+".pem", tc.pem)
			args := []string{testAppID, path}
			if tc.password != "" {
				args = append([]string{"-p", tc.password}, args...)
			}
			r := runWith(t, env{}, args...)
			iat, exp := verifyJWT(t, oneJWT(t, r), &k.PublicKey, testAppID)
			if iat != fixedNow.Unix() || exp-iat != oneYearSecs {
				t.Errorf("iat=%d exp-iat=%d, want iat=%d and one year (%d)", iat, exp-iat, fixedNow.Unix(), oneYearSecs)
			}
			if r.stderr != "" {
				t.Errorf("stderr on success: %q", r.stderr)
			}
		})
	}
}

// TestOpenSSLKeys uses keys written by the openssl CLI, the way Pure1 users
// make them, including OpenSSL 3's encrypted PKCS#8 that the Python script
// cannot read.
func TestOpenSSLKeys(t *testing.T) {
	t.Parallel()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl CLI not installed")
	}
	k := rsaKey(t)
	dir := t.TempDir()
	pkcs1 := writeFile(t, dir, "pkcs1.pem", pkcs1PEM(k))
	sh := func(t *testing.T, args ...string) {
		t.Helper()
		out, err := exec.Command(openssl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	cases := []struct {
		name    string
		make    func(t *testing.T, out string) // writes the key to out
		ownKey  bool                           // the key is not k: read its public key with openssl
		wantHdr string
	}{
		{"genrsa -aes256 (OpenSSL 3 default)", func(t *testing.T, out string) {
			sh(t, "genrsa", "-aes256", "-passout", "pass:"+testPassword, "-out", out, "2048")
		}, true, "ENCRYPTED PRIVATE KEY"},
		{"pkcs8 -topk8 -v2 aes-256-cbc", func(t *testing.T, out string) {
			sh(t, "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", pkcs1, "-passout", "pass:"+testPassword, "-out", out)
		}, false, "ENCRYPTED PRIVATE KEY"},
		{"pkcs8 -topk8 -v2 des3", func(t *testing.T, out string) {
			sh(t, "pkcs8", "-topk8", "-v2", "des3", "-in", pkcs1, "-passout", "pass:"+testPassword, "-out", out)
		}, false, "ENCRYPTED PRIVATE KEY"},
		{"rsa -aes256 -traditional (OpenSSL 1.1 style)", func(t *testing.T, out string) {
			sh(t, "rsa", "-aes256", "-traditional", "-in", pkcs1, "-passout", "pass:"+testPassword, "-out", out)
		}, false, "RSA PRIVATE KEY"},
		{"pkey unencrypted PKCS#8", func(t *testing.T, out string) {
			sh(t, "pkey", "-in", pkcs1, "-out", out)
		}, false, "PRIVATE KEY"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, strings.Repeat("o", i+1)+".pem")
			tc.make(t, path)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(data, []byte("-----BEGIN "+tc.wantHdr+"-----")) {
				t.Fatalf("openssl wrote %q, want a %s block", bytes.SplitN(data, []byte("\n"), 2)[0], tc.wantHdr)
			}
			pub := &k.PublicKey
			if tc.ownKey {
				pubPath := path + ".pub"
				sh(t, "pkey", "-in", path, "-passin", "pass:"+testPassword, "-pubout", "-out", pubPath)
				pubPEM, err := os.ReadFile(pubPath)
				if err != nil {
					t.Fatal(err)
				}
				block, _ := pem.Decode(pubPEM)
				if block == nil {
					t.Fatal("openssl wrote no public key")
				}
				parsed, err := x509.ParsePKIXPublicKey(block.Bytes)
				if err != nil {
					t.Fatal(err)
				}
				pub = parsed.(*rsa.PublicKey)
			}
			r := runWith(t, env{vars: map[string]string{passwordEnv: testPassword}}, testAppID, path)
			iat, exp := verifyJWT(t, oneJWT(t, r), pub, testAppID)
			if exp-iat != oneYearSecs {
				t.Errorf("exp-iat = %d, want %d", exp-iat, oneYearSecs)
			}
		})
	}
}

func TestPasswordSources(t *testing.T) {
	t.Parallel()
	k := rsaKey(t)
	dir := t.TempDir()
	enc8 := writeFile(t, dir, "enc8.pem", encryptedPKCS8PEM(t, k, testPassword))
	legacy := writeFile(t, dir, "legacy.pem", legacyEncryptedPEM(t, k, testPassword, x509.PEMCipherAES256))
	plain := writeFile(t, dir, "plain.pem", pkcs1PEM(k))

	noPrompt := func(t *testing.T) func(string) ([]byte, bool, error) {
		return func(string) ([]byte, bool, error) {
			t.Error("prompted although a password was given")
			return nil, true, errors.New("unexpected prompt")
		}
	}
	// What the prompt does when stdin is not a terminal (a script, CI).
	noTerminal := func(*testing.T) func(string) ([]byte, bool, error) {
		return func(string) ([]byte, bool, error) { return nil, false, nil }
	}
	prompt := func(pw string) func(string) ([]byte, bool, error) {
		return func(p string) ([]byte, bool, error) {
			if !strings.Contains(p, "Password") {
				return nil, true, errors.New("prompt does not ask for a password")
			}
			return []byte(pw), true, nil
		}
	}
	for _, file := range []string{enc8, legacy} {
		cases := []struct {
			name   string
			args   []string
			vars   map[string]string
			prompt func(*testing.T) func(string) ([]byte, bool, error)
		}{
			{"-p before the arguments", []string{"-p", testPassword, testAppID, file}, nil, noPrompt},
			{"-p after the arguments", []string{testAppID, file, "-p", testPassword}, nil, noPrompt},
			{"-p between the arguments", []string{testAppID, "-p", testPassword, file}, nil, noPrompt},
			{"-pPASSWORD (argparse style)", []string{"-p" + testPassword, testAppID, file}, nil, noPrompt},
			{"--password PASSWORD", []string{"--password", testPassword, testAppID, file}, nil, noPrompt},
			{"--password=PASSWORD", []string{"--password=" + testPassword, testAppID, file}, nil, noPrompt},
			{"-password=PASSWORD", []string{"-password=" + testPassword, testAppID, file}, nil, noPrompt},
			{"environment, no terminal", []string{testAppID, file}, map[string]string{passwordEnv: testPassword}, noTerminal},
			{"terminal prompt wins over environment", []string{testAppID, file}, map[string]string{passwordEnv: wrongPass}, func(*testing.T) func(string) ([]byte, bool, error) { return prompt(testPassword) }},
			{"flag wins over environment", []string{"-p", testPassword, testAppID, file}, map[string]string{passwordEnv: wrongPass}, noPrompt},
			{"terminal prompt", []string{testAppID, file}, nil, func(*testing.T) func(string) ([]byte, bool, error) { return prompt(testPassword) }},
			{"empty environment variable falls through to the prompt", []string{testAppID, file}, map[string]string{passwordEnv: ""}, func(*testing.T) func(string) ([]byte, bool, error) { return prompt(testPassword) }},
		}
		for _, tc := range cases {
			t.Run(filepath.Base(file)+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				r := runWith(t, env{vars: tc.vars, prompt: tc.prompt(t)}, tc.args...)
				verifyJWT(t, oneJWT(t, r), &k.PublicKey, testAppID)
				if strings.Contains(r.stdout+r.stderr, testPassword) {
					t.Error("the password appears in the output")
				}
			})
		}
	}
	t.Run("password is ignored for an unencrypted key", func(t *testing.T) {
		t.Parallel()
		r := runWith(t, env{prompt: noPrompt(t)}, "-p", testPassword, testAppID, plain)
		verifyJWT(t, oneJWT(t, r), &k.PublicKey, testAppID)
	})
	t.Run("no prompt for an unencrypted key", func(t *testing.T) {
		t.Parallel()
		r := runWith(t, env{prompt: noPrompt(t)}, testAppID, plain)
		verifyJWT(t, oneJWT(t, r), &k.PublicKey, testAppID)
	})
}

func TestExpire(t *testing.T) {
	t.Parallel()
	k := rsaKey(t)
	path := writeFile(t, t.TempDir(), "k.pem", pkcs1PEM(k))
	cases := []struct {
		flags []string
		want  int64
	}{
		{nil, 31556952}, // the Python script's expire_seconds: 365.2425 days
		{[]string{"--expire", "8760h"}, 8760 * 3600},
		{[]string{"--expire=365d"}, 365 * 86400},
		{[]string{"-expire", "720h"}, 720 * 3600},
		{[]string{"--expire", "30d"}, 30 * 86400},
		{[]string{"--expire", "1d12h"}, 36 * 3600},
		{[]string{"--expire", "90m"}, 90 * 60},
		{[]string{"--expire", "1s"}, 1},
		{[]string{"--expire", "1h0m1.9s"}, 3601}, // sub-second parts are dropped
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.flags, " "), func(t *testing.T) {
			t.Parallel()
			r := runWith(t, env{}, append(tc.flags, testAppID, path)...)
			iat, exp := verifyJWT(t, oneJWT(t, r), &k.PublicKey, testAppID)
			if iat != fixedNow.Unix() {
				t.Errorf("iat = %d, want the clock's %d", iat, fixedNow.Unix())
			}
			if exp-iat != tc.want {
				t.Errorf("exp-iat = %d, want %d", exp-iat, tc.want)
			}
		})
	}
}

func TestJSONOutput(t *testing.T) {
	t.Parallel()
	k := rsaKey(t)
	path := writeFile(t, t.TempDir(), "k.pem", encryptedPKCS8PEM(t, k, testPassword))
	r := runWith(t, env{vars: map[string]string{passwordEnv: testPassword}}, "--json", "--expire", "48h", testAppID, path)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("JSON output is not one line: %q", r.stdout)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v: %q", err, r.stdout)
	}
	want := map[string]any{
		"app_id":                 testAppID,
		"issued_at":              "2025-03-14T15:09:26Z",
		"expires_at":             "2025-03-16T15:09:26Z",
		"public_key_fingerprint": fingerprint(t, &k.PublicKey),
	}
	token, _ := got["jwt"].(string)
	iat, exp := verifyJWT(t, token, &k.PublicKey, testAppID)
	if exp-iat != 48*3600 {
		t.Errorf("exp-iat = %d, want 48h", exp-iat)
	}
	delete(got, "jwt")
	if len(got) != len(want) {
		t.Errorf("JSON fields = %v, want jwt plus %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestExchangeWithEmulator(t *testing.T) {
	t.Parallel()
	k := rsaKey(t)
	em, err := emulator.New(emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(em.Handler())
	t.Cleanup(srv.Close)
	app, err := em.Register(publicPEM(t, &k.PublicKey), "storage_admin")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := writeFile(t, dir, "k.pem", encryptedPKCS8PEM(t, k, testPassword))
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherFile := writeFile(t, dir, "other.pem", pkcs1PEM(other))
	tokenURL := srv.URL + emulator.TokenPath
	realClock := env{now: time.Now, vars: map[string]string{passwordEnv: testPassword}}

	arrays := func(t *testing.T, token string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, srv.URL+emulator.ArraysPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := arrays(t, "not-a-token"); code != http.StatusUnauthorized {
		t.Fatalf("the emulator accepts a bogus token (%d): this test could not fail", code)
	}

	t.Run("plain", func(t *testing.T) {
		r := runWith(t, realClock, "--exchange", "--token-url", tokenURL, app.ID, keyFile)
		token := oneJWT(t, r)
		if token == "" || strings.Count(token, ".") != 2 {
			t.Fatalf("not an access token: %q", token)
		}
		if code := arrays(t, token); code != http.StatusOK {
			t.Errorf("GET %s with the access token = %d, want 200", emulator.ArraysPath, code)
		}
	})
	t.Run("localhost and json", func(t *testing.T) {
		u := strings.Replace(tokenURL, "127.0.0.1", "localhost", 1)
		start := time.Now()
		r := runWith(t, realClock, "--exchange", "--json", "--token-url="+u, app.ID, keyFile)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var got struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			ExpiresAt   string `json:"expires_at"`
			AppID       string `json:"app_id"`
			Org         string `json:"org"`
			MaxRole     string `json:"max_role"`
		}
		dec := json.NewDecoder(strings.NewReader(r.stdout))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("stdout: %v: %q", err, r.stdout)
		}
		if got.TokenType != "Bearer" || got.AppID != app.ID || got.Org != emulator.DefaultOrg || got.MaxRole != "storage_admin" {
			t.Errorf("got %+v, want Bearer, %s, %s, storage_admin", got, app.ID, emulator.DefaultOrg)
		}
		exp, err := time.Parse(time.RFC3339, got.ExpiresAt)
		if err != nil {
			t.Fatalf("expires_at %q is not RFC 3339: %v", got.ExpiresAt, err)
		}
		if life := exp.Sub(start); life < emulator.DefaultTokenLifetime-time.Minute || life > emulator.DefaultTokenLifetime+time.Minute {
			t.Errorf("expires_at is %v after the request, want about %v", life, emulator.DefaultTokenLifetime)
		}
		if code := arrays(t, got.AccessToken); code != http.StatusOK {
			t.Errorf("GET %s with the access token = %d, want 200", emulator.ArraysPath, code)
		}
	})
	rejected := []struct {
		name, appID, file, want string
	}{
		{"unregistered app", "pure1:apikey:NotRegistered000", keyFile, "Pure1 refused the token exchange"},
		{"key of another application", app.ID, otherFile, fingerprint(t, &other.PublicKey)},
		{"wrong token path", app.ID, keyFile, "check --token-url"},
	}
	for _, tc := range rejected {
		t.Run(tc.name, func(t *testing.T) {
			u, status := tokenURL, "HTTP 401 invalid_client"
			if tc.name == "wrong token path" {
				u, status = srv.URL+"/oauth2/token", "HTTP 404"
			}
			r := runWith(t, realClock, "--exchange", "--token-url", u, tc.appID, tc.file)
			if r.code != exitRuntime || r.stdout != "" {
				t.Fatalf("exit %d stdout %q, want 1 and nothing", r.code, r.stdout)
			}
			if !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, status) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("stderr %q is not one line mentioning %q and %q", r.stderr, tc.want, status)
			}
			if strings.Contains(r.stderr, testPassword) {
				t.Error("password in stderr")
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cases := []struct {
		name     string
		args     []string
		vars     map[string]string
		password string // the file should be encrypted with this
		bits     int
		json     bool
	}{
		{"plain", nil, nil, "", 2048, false},
		{"password flag", []string{"-p", testPassword}, nil, testPassword, 2048, false},
		{"password env", nil, map[string]string{passwordEnv: testPassword}, testPassword, 2048, true},
		{"3072 bits", []string{"--key-bits", "3072", "--password=" + testPassword}, nil, testPassword, 3072, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(dir, strings.Repeat("g", i+1)+".pem")
			args := append([]string{"--generate-key", file}, tc.args...)
			if tc.json {
				args = append(args, "--json")
			}
			r := runWith(t, env{vars: tc.vars}, args...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			fi, err := os.Stat(file)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600", fi.Mode().Perm())
			}
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			block, rest := pem.Decode(data)
			if block == nil || len(bytes.TrimSpace(rest)) != 0 {
				t.Fatalf("the file is not one PEM block: %q", data)
			}
			var priv any
			if tc.password != "" {
				if block.Type != "ENCRYPTED PRIVATE KEY" {
					t.Fatalf("block %q, want ENCRYPTED PRIVATE KEY", block.Type)
				}
				if _, _, err := pkcs8.ParsePrivateKey(block.Bytes, []byte(wrongPass)); err == nil {
					t.Error("a wrong password decrypts the key")
				}
				priv, _, err = pkcs8.ParsePrivateKey(block.Bytes, []byte(tc.password))
			} else {
				if block.Type != "PRIVATE KEY" {
					t.Fatalf("block %q, want PRIVATE KEY", block.Type)
				}
				priv, err = x509.ParsePKCS8PrivateKey(block.Bytes)
			}
			if err != nil {
				t.Fatalf("the written key does not parse: %v", err)
			}
			rk, ok := priv.(*rsa.PrivateKey)
			if !ok || rk.N.BitLen() != tc.bits {
				t.Fatalf("key %T, want a %d-bit RSA key", priv, tc.bits)
			}

			wantPub, wantFP := publicPEM(t, &rk.PublicKey), fingerprint(t, &rk.PublicKey)
			if tc.json {
				var got map[string]any
				if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
					t.Fatalf("stdout is not JSON: %v", err)
				}
				if got["public_key"] != wantPub || got["public_key_fingerprint"] != wantFP ||
					got["private_key_file"] != file || got["key_bits"] != float64(tc.bits) || got["encrypted"] != (tc.password != "") {
					t.Errorf("JSON = %v", got)
				}
			} else {
				if !strings.HasPrefix(r.stdout, wantPub) {
					t.Errorf("stdout does not start with the public key PEM:\n%s\nwant:\n%s", r.stdout, wantPub)
				}
				if !strings.Contains(r.stdout, wantFP) {
					t.Errorf("stdout does not show the fingerprint %s:\n%s", wantFP, r.stdout)
				}
			}
			if strings.Contains(r.stdout+r.stderr, "PRIVATE KEY") || strings.Contains(r.stdout+r.stderr, testPassword) {
				t.Error("private key material or the password in the output")
			}

			// The new key signs JWTs with the tool itself.
			jr := runWith(t, env{vars: map[string]string{passwordEnv: tc.password}}, testAppID, file)
			verifyJWT(t, oneJWT(t, jr), &rk.PublicKey, testAppID)

			// A second run must not overwrite it.
			again := runWith(t, env{vars: tc.vars}, args...)
			if again.code != exitRuntime || !strings.Contains(again.stderr, "already exists") || again.stdout != "" {
				t.Errorf("second run: exit %d stderr %q stdout %q, want exit 1 and already exists", again.code, again.stderr, again.stdout)
			}
			after, err := os.ReadFile(file)
			if err != nil || !bytes.Equal(after, data) {
				t.Error("the existing key file was changed")
			}
		})
	}
	t.Run("directory missing", func(t *testing.T) {
		t.Parallel()
		r := runWith(t, env{}, "--generate-key", filepath.Join(dir, "nope", "k.pem"))
		if r.code != exitRuntime || !strings.Contains(r.stderr, "cannot create") {
			t.Errorf("exit %d stderr %q", r.code, r.stderr)
		}
	})
}

func TestBadInputs(t *testing.T) {
	t.Parallel()
	k := rsaKey(t)
	dir := t.TempDir()
	plain := writeFile(t, dir, "plain.pem", pkcs1PEM(k))
	enc8 := writeFile(t, dir, "enc8.pem", encryptedPKCS8PEM(t, k, testPassword))
	legacy := writeFile(t, dir, "legacy.pem", legacyEncryptedPEM(t, k, testPassword, x509.PEMCipherAES256))
	garbage := writeFile(t, dir, "garbage.pem", []byte("this is not a key\n"))
	pubFile := writeFile(t, dir, "pub.pem", []byte(publicPEM(t, &k.PublicKey)))
	truncated := writeFile(t, dir, "trunc.pem", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)[:200]}))

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	ecSEC1 := writeFile(t, dir, "ec.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}))
	ec8 := writeFile(t, dir, "ec8.pem", pkcs8PEM(t, ecKey))
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ed := writeFile(t, dir, "ed.pem", pkcs8PEM(t, edKey))
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallFile := writeFile(t, dir, "1024.pem", pkcs1PEM(small))
	emptyPrompt := func(string) ([]byte, bool, error) { return []byte{}, true, nil }
	wrongPrompt := func(string) ([]byte, bool, error) { return []byte(wrongPass), true, nil }
	withEnv := map[string]string{passwordEnv: testPassword}
	wrongEnv := map[string]string{passwordEnv: wrongPass}

	cases := []struct {
		name   string
		args   []string
		vars   map[string]string
		prompt func(string) ([]byte, bool, error)
		code   int
		want   string
	}{
		{"no arguments", nil, nil, nil, exitUsage, "missing <app_id> and <private_key_file>"},
		{"only the app id", []string{testAppID}, nil, nil, exitUsage, "missing <private_key_file>"},
		{"password as a third argument", []string{testAppID, enc8, testPassword}, nil, nil, exitUsage, "too many arguments"},
		{"app id without prefix", []string{"Ab12Cd34Ef56Gh78", plain}, nil, nil, exitUsage, "app_id must look like pure1:apikey:"},
		{"app id with a bad character", []string{"pure1:apikey:ab/cd", plain}, nil, nil, exitUsage, "unexpected character"},
		{"app id with only the prefix", []string{"pure1:apikey:", plain}, nil, nil, exitUsage, "app_id must look like"},
		{"arguments swapped", []string{plain, testAppID}, nil, nil, exitUsage, "swapped"},
		{"missing file", []string{testAppID, filepath.Join(dir, "nope.pem")}, nil, nil, exitRuntime, "nope.pem does not exist"},
		{"directory", []string{testAppID, dir}, nil, nil, exitRuntime, "is a directory"},
		{"garbage file", []string{testAppID, garbage}, nil, nil, exitRuntime, "not a PEM-encoded private key"},
		{"public key file", []string{testAppID, pubFile}, nil, nil, exitRuntime, "public key or certificate, not a private key"},
		{"truncated key", []string{testAppID, truncated}, nil, nil, exitRuntime, "corrupt or truncated"},
		{"wrong password flag", []string{"-p", wrongPass, testAppID, enc8}, withEnv, nil, exitRuntime, "the password does not decrypt the private key: check the password given with -p"},
		{"wrong password env", []string{testAppID, enc8}, wrongEnv, nil, exitRuntime, "the password does not decrypt the private key: check the password in $PURE1_PRIVATE_KEY_PASSWORD"},
		{"wrong password legacy PEM", []string{"--password", wrongPass, testAppID, legacy}, nil, nil, exitRuntime, "the password does not decrypt the private key"},
		{"wrong password at the prompt", []string{testAppID, enc8}, nil, wrongPrompt, exitRuntime, "check the password typed at the prompt"},
		{"encrypted, no password, no terminal", []string{testAppID, enc8}, nil, nil, exitRuntime, "the private key is encrypted: give its password with -p"},
		{"encrypted legacy, no password", []string{testAppID, legacy}, nil, nil, exitRuntime, "the private key is encrypted"},
		{"empty password at the prompt", []string{testAppID, enc8}, nil, emptyPrompt, exitRuntime, "no password was entered"},
		{"EC key (SEC1)", []string{testAppID, ecSEC1}, nil, nil, exitRuntime, "must be RSA"},
		{"EC key (PKCS#8)", []string{testAppID, ec8}, nil, nil, exitRuntime, "must be RSA"},
		{"Ed25519 key", []string{testAppID, ed}, nil, nil, exitRuntime, "must be RSA"},
		{"1024-bit key", []string{testAppID, smallFile}, nil, nil, exitRuntime, "at least 2048 bits (this one has 1024)"},
		{"expire zero", []string{"--expire", "0", testAppID, plain}, nil, nil, exitUsage, "--expire must be at least 1s"},
		{"expire negative", []string{"--expire", "-5h", testAppID, plain}, nil, nil, exitUsage, "--expire must be at least 1s"},
		{"expire sub-second", []string{"--expire", "500ms", testAppID, plain}, nil, nil, exitUsage, "--expire must be at least 1s"},
		{"expire years", []string{"--expire", "1y", testAppID, plain}, nil, nil, exitUsage, "invalid --expire value"},
		{"expire words", []string{"--expire", "forever", testAppID, plain}, nil, nil, exitUsage, "invalid --expire value"},
		{"expire empty", []string{"--expire=", testAppID, plain}, nil, nil, exitUsage, "invalid --expire value"},
		{"expire negative after days", []string{"--expire", "1d-1h", testAppID, plain}, nil, nil, exitUsage, "invalid --expire value"},
		{"expire overflow", []string{"--expire", "999999999999d", testAppID, plain}, nil, nil, exitUsage, "--expire is too long"},
		{"expire holding the password", []string{"--expire", testPassword, testAppID, plain}, nil, nil, exitUsage, "invalid --expire value"},
		{"ftp token url", []string{"--exchange", "--token-url", "ftp://127.0.0.1/oauth2/1.0/token", testAppID, plain}, nil, nil, exitUsage, `--token-url must use https, not "ftp"`},
		{"http to a remote host", []string{"--exchange", "--token-url", "http://api.pure1.purestorage.com/oauth2/1.0/token", testAppID, plain}, nil, nil, exitUsage, "plain http is only allowed to localhost"},
		{"http to a private address", []string{"--exchange", "--token-url", "http://10.0.0.1/oauth2/1.0/token", testAppID, plain}, nil, nil, exitUsage, "plain http is only allowed to localhost"},
		{"relative token url", []string{"--exchange", "--token-url", "/oauth2/1.0/token", testAppID, plain}, nil, nil, exitUsage, "--token-url must be an absolute URL"},
		{"token url with credentials", []string{"--exchange", "--token-url", "https://user:" + testPassword + "@example.com/t", testAppID, plain}, nil, nil, exitUsage, "must not contain a user name or password"},
		{"token url without --exchange", []string{"--token-url", "https://example.com/t", testAppID, plain}, nil, nil, exitUsage, "--token-url is only used with --exchange"},
		{"unknown flag", []string{"--frobnicate", testAppID, plain}, nil, nil, exitUsage, "flag provided but not defined: -frobnicate"},
		{"misspelt password flag", []string{"--pasword=" + testPassword, testAppID, plain}, nil, nil, exitUsage, "flag provided but not defined: -pasword"},
		{"-p without a value", []string{testAppID, plain, "-p"}, nil, nil, exitUsage, "flag needs an argument: -p"},
		{"bad boolean", []string{"--json=maybe", testAppID, plain}, nil, nil, exitUsage, "invalid boolean value"},
		{"generate-key with arguments", []string{"--generate-key", filepath.Join(dir, "x.pem"), testAppID, plain}, nil, nil, exitUsage, "--generate-key takes no <app_id>"},
		{"generate-key with --exchange", []string{"--generate-key", filepath.Join(dir, "x.pem"), "--exchange"}, nil, nil, exitUsage, "--exchange cannot be used with --generate-key"},
		{"generate-key without a file", []string{"--generate-key=", "-p", testPassword}, nil, nil, exitUsage, "--generate-key needs the name of the file"},
		{"generate-key into an existing file", []string{"--generate-key", plain}, nil, nil, exitRuntime, "already exists: refusing to overwrite"},
		{"key-bits 1024", []string{"--generate-key", filepath.Join(dir, "x.pem"), "--key-bits", "1024"}, nil, nil, exitUsage, "--key-bits must be 2048, 3072 or 4096"},
		{"key-bits words", []string{"--generate-key", filepath.Join(dir, "x.pem"), "--key-bits", "big"}, nil, nil, exitUsage, "--key-bits must be 2048, 3072 or 4096"},
		{"key-bits without generate-key", []string{"--key-bits", "4096", testAppID, plain}, nil, nil, exitUsage, "--key-bits is only used with --generate-key"},
	}
	t.Cleanup(func() { // after the parallel subtests
		if _, err := os.Stat(filepath.Join(dir, "x.pem")); err == nil {
			t.Error("a usage error still wrote a key file")
		}
	})
	keyMaterial := regexp.MustCompile(`MII[A-Za-z0-9+/]{20}`)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runWith(t, env{vars: tc.vars, prompt: tc.prompt}, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", r.code, tc.code, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			if !strings.HasPrefix(r.stderr, "pure1-token: ") || !strings.HasSuffix(r.stderr, "\n") || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("stderr is not one line starting with pure1-token: %q", r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tc.want)
			}
			if strings.Contains(r.stderr, testPassword) || strings.Contains(r.stderr, wrongPass) {
				t.Errorf("stderr contains a password: %q", r.stderr)
			}
			if keyMaterial.MatchString(r.stderr) {
				t.Errorf("stderr contains key material: %q", r.stderr)
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-help"}, {testAppID, "-h"}} {
		r := runWith(t, env{}, args...)
		if r.code != 0 || r.stderr != "" {
			t.Errorf("%v: exit %d stderr %q", args, r.code, r.stderr)
		}
		for _, want := range []string{"Usage:", "Examples:", "-p, --password", "--expire", "--exchange", "--token-url", "--json", "--generate-key", "--key-bits", "--version", passwordEnv} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("%v: usage lacks %q", args, want)
			}
		}
	}
	r := runWith(t, env{}, "--version")
	if r.code != 0 || !regexp.MustCompile(`^pure1-token \S+ \(go[^)]+\)\n$`).MatchString(r.stdout) {
		t.Errorf("--version: exit %d stdout %q", r.code, r.stdout)
	}
}

// TestRun goes through run as main calls it: the real environment, clock and
// terminal check.
func TestRun(t *testing.T) {
	t.Setenv(passwordEnv, "")
	k := rsaKey(t)
	dir := t.TempDir()
	plain := writeFile(t, dir, "plain.pem", pkcs8PEM(t, k))
	enc := writeFile(t, dir, "enc.pem", encryptedPKCS8PEM(t, k, testPassword))

	// A pipe is an *os.File that is not a terminal: no prompt, a clear error.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	var out, errOut bytes.Buffer
	if code := run([]string{testAppID, enc}, pr, &out, &errOut); code != exitRuntime || !strings.Contains(errOut.String(), "is encrypted") {
		t.Errorf("encrypted key on a pipe: exit %d stderr %q", code, errOut.String())
	}

	t.Setenv(passwordEnv, testPassword)
	for _, file := range []string{plain, enc} {
		out.Reset()
		errOut.Reset()
		before := time.Now().Unix()
		code := run([]string{testAppID, file}, strings.NewReader(""), &out, &errOut)
		after := time.Now().Unix()
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		iat, exp := verifyJWT(t, strings.TrimSpace(out.String()), &k.PublicKey, testAppID)
		if iat < before || iat > after || exp-iat != oneYearSecs {
			t.Errorf("iat %d not in [%d, %d] or exp-iat %d", iat, before, after, exp-iat)
		}
	}
}

func TestParseExpire(t *testing.T) {
	t.Parallel()
	good := map[string]time.Duration{
		"8760h": 8760 * time.Hour, "365d": 365 * 24 * time.Hour, "0d1s": time.Second,
		"2d30m": 48*time.Hour + 30*time.Minute, " 7d ": 7 * 24 * time.Hour, "1h30m": 90 * time.Minute,
	}
	for in, want := range good {
		if got, err := parseExpire(in); err != nil || got != want {
			t.Errorf("parseExpire(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "1.5d", "-1d", "1d+1h", "1dd", "1w", "0d", "1d-1s", "abc"} {
		if got, err := parseExpire(in); err == nil {
			t.Errorf("parseExpire(%q) = %v, want an error", in, got)
		}
	}
}

func TestSplitShortPassword(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want []string }{
		{[]string{"-psecret", "a"}, []string{"-p", "secret", "a"}},
		{[]string{"-p", "-psecret"}, []string{"-p", "-psecret"}},
		{[]string{"--token-url", "-px", "a"}, []string{"--token-url", "-px", "a"}},
		{[]string{"-password=x", "-p=y"}, []string{"-password=x", "-p=y"}},
		{[]string{"--", "-pfile"}, []string{"--", "-pfile"}},
		{[]string{"-p"}, []string{"-p"}},
	}
	for _, tc := range cases {
		if got := splitShortPassword(tc.in); strings.Join(got, "\x00") != strings.Join(tc.want, "\x00") {
			t.Errorf("splitShortPassword(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// writeNewFile itself refuses an existing file (O_EXCL), not only the early
// check in generate: the file may appear while the key is being generated.
func TestWriteNewFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	existing := writeFile(t, dir, "existing.pem", []byte("keep me"))
	err := writeNewFile(existing, []byte("new"))
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("writeNewFile over an existing file: %v, want already exists", err)
	}
	if data, _ := os.ReadFile(existing); string(data) != "keep me" {
		t.Errorf("the existing file now holds %q", data)
	}
	fresh := filepath.Join(dir, "fresh.pem")
	if err := writeNewFile(fresh, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("fresh file: %v, %v; want mode 0600", fi.Mode(), err)
	}
}

func TestScrub(t *testing.T) {
	t.Parallel()
	c := &cli{secrets: []string{testPassword, "abc"}}
	got := c.scrub("bad\n" + testPassword + "\tthing abc")
	if want := "bad [redacted] thing abc"; got != want {
		t.Errorf("scrub = %q, want %q", got, want)
	}
}
