package e2e

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConfig drives config/<name> with the CLI and the HTTP API: a key
// generated in Vault, keys made by openssl and imported encrypted (OpenSSL
// 3's PKCS#8 and the legacy PEM), what a read shows, list, and a delete
// refused while a role uses the config.
func TestConfig(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	e := StartEmulator(t)
	v := StartVaultDev(t)
	dir := t.TempDir()

	t.Run("generate", func(t *testing.T) {
		resp := v.MustCLIJSON(t, "write", "-format=json", "pure1/config/gen", "generate_key=true")
		pub := jstr(t, resp, "data", "public_key")
		key := parsePublicKey(t, pub)
		if key.N.BitLen() != 2048 {
			t.Errorf("generated key has %d bits, want 2048", key.N.BitLen())
		}
		if got, want := jstr(t, resp, "data", "public_key_fingerprint"), fingerprint(t, key); got != want {
			t.Errorf("public_key_fingerprint %s, want sha256 of the SPKI DER %s", got, want)
		}
		if got := jget(resp, "data", "key_source"); got != "generated" {
			t.Errorf("key_source %v, want generated", got)
		}
		if got := jget(resp, "data", "app_id"); got != "" {
			t.Errorf("app_id %v before it was written", got)
		}
		assertWarning(t, resp, "no app_id yet")
		assertNoPrivateKey(t, fmt.Sprint(resp))

		big := v.MustCLIJSON(t, "write", "-format=json", "pure1/config/gen3072", "generate_key=true", "key_bits=3072")
		if n := parsePublicKey(t, jstr(t, big, "data", "public_key")).N.BitLen(); n != 3072 {
			t.Errorf("key_bits=3072 gave %d bits", n)
		}
	})

	t.Run("read shows no private key", func(t *testing.T) {
		table := v.MustCLI(t, "read", "pure1/config/gen")
		assertNoPrivateKey(t, table)
		for _, want := range []string{"public_key", "BEGIN PUBLIC KEY", "public_key_fingerprint", "key_source", "token_url"} {
			if !strings.Contains(table, want) {
				t.Errorf("vault read pure1/config/gen does not show %q:\n%s", want, table)
			}
		}
		js := v.MustCLIJSON(t, "read", "-format=json", "pure1/config/gen")
		assertNoPrivateKey(t, fmt.Sprint(js))
		if got := jget(js, "data", "token_url"); got != "https://api.pure1.purestorage.com/oauth2/1.0/token" {
			t.Errorf("default token_url %v", got)
		}
		status, body := v.HTTP(t, "GET", "pure1/config/gen", nil)
		if status != 200 {
			t.Fatalf("GET /v1/pure1/config/gen: %d %v", status, body)
		}
		data := jget(body, "data").(map[string]any)
		if _, ok := data["private_key"]; ok {
			t.Errorf("HTTP read returns a private_key field: %v", data)
		}
		if _, ok := data["private_key_password"]; ok {
			t.Errorf("HTTP read returns a private_key_password field")
		}
		assertNoPrivateKey(t, fmt.Sprint(body))
	})

	// Keys made the way Pure1's documentation says: openssl genrsa -aes256.
	type imported struct{ name, file, format, fingerprint string }
	var keys []imported
	t.Run("import openssl encrypted keys", func(t *testing.T) {
		for _, k := range []struct{ name, flag, pemType string }{
			{"pkcs8", "", "ENCRYPTED PRIVATE KEY"},               // OpenSSL 3 default
			{"legacy", "-traditional", "Proc-Type: 4,ENCRYPTED"}, // OpenSSL 1.1 style
		} {
			file := filepath.Join(dir, k.name+".pem")
			args := []string{"genrsa", "-aes256", "-passout", "pass:correct horse", "-out", file}
			if k.flag != "" {
				args = append(args, k.flag)
			}
			args = append(args, "2048")
			runCmd(t, "", "openssl", args...)
			if b, _ := os.ReadFile(file); !strings.Contains(string(b), k.pemType) {
				t.Fatalf("openssl %v did not write a %q key:\n%s", args, k.pemType, b)
			}
			// The fingerprint Pure1 would compute from the public key openssl extracts.
			der := runCmd(t, "", "openssl", "rsa", "-in", file, "-passin", "pass:correct horse", "-pubout", "-outform", "DER")
			sum := sha256.Sum256([]byte(der))
			want := hex.EncodeToString(sum[:])

			name := "imported-" + k.name
			resp := v.MustCLIJSON(t, "write", "-format=json", "pure1/config/"+name,
				"private_key=@"+file, "private_key_password=correct horse")
			if got := jstr(t, resp, "data", "public_key_fingerprint"); got != want {
				t.Errorf("%s: fingerprint %s, openssl's public key gives %s", name, got, want)
			}
			src := jstr(t, resp, "data", "key_source")
			if !strings.HasPrefix(src, "imported") || !strings.Contains(src, "encrypted") {
				t.Errorf("%s: key_source %q", name, src)
			}
			assertNoPrivateKey(t, fmt.Sprint(resp))
			keys = append(keys, imported{name, file, src, want})
		}
	})

	t.Run("import errors", func(t *testing.T) {
		if len(keys) == 0 {
			t.Skip("no imported key")
		}
		file := keys[0].file
		cases := []struct {
			args []string
			want string
		}{
			{[]string{"private_key=@" + file, "private_key_password=wrong"}, "private_key_password does not decrypt private_key"},
			{[]string{"private_key=@" + file}, "private_key is encrypted: supply private_key_password"},
			{[]string{"privat_key=@" + file}, "unknown field(s) privat_key"},
			{[]string{"app_id=pure1:apikey:abc"}, "has no key yet"},
			{[]string{"generate_key=true", "token_url=http://pure1.example.com/token"}, "token_url must use https"},
		}
		for _, c := range cases {
			out, err := v.CLI(t, append([]string{"write", "pure1/config/bad"}, c.args...)...)
			if ExitCode(err) != 2 || !strings.Contains(err.Error(), c.want) {
				t.Errorf("vault write pure1/config/bad %v: exit %d, %v (stdout %q); want exit 2 and %q", c.args, ExitCode(err), err, out, c.want)
			}
		}
		if _, err := v.CLI(t, "read", "pure1/config/bad"); ExitCode(err) != 2 {
			t.Errorf("a refused write left config/bad behind: %v", err)
		}
	})

	t.Run("imported key issues credentials", func(t *testing.T) {
		if len(keys) == 0 {
			t.Skip("no imported key")
		}
		for _, k := range keys {
			pub := jstr(t, v.MustCLIJSON(t, "read", "-format=json", "pure1/config/"+k.name), "data", "public_key")
			app := e.Register(t, pub)
			v.MustCLI(t, "write", "pure1/config/"+k.name, "app_id="+app, "token_url="+e.TokenURL())
			v.MustCLI(t, "write", "pure1/roles/"+k.name, "config="+k.name)
			tok := strings.TrimSpace(v.MustCLI(t, "read", "-field=access_token", "pure1/creds/"+k.name))
			e.MustCallAPI(t, tok)
			// Writing app_id kept the key.
			after := v.MustCLIJSON(t, "read", "-format=json", "pure1/config/"+k.name)
			if got := jstr(t, after, "data", "public_key_fingerprint"); got != k.fingerprint {
				t.Errorf("%s: fingerprint changed to %s after writing app_id", k.name, got)
			}
		}
	})

	t.Run("list", func(t *testing.T) {
		var names []string
		if err := json.Unmarshal([]byte(v.MustCLI(t, "list", "-format=json", "pure1/config")), &names); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"gen", "gen3072", "imported-pkcs8", "imported-legacy"} {
			if !slices.Contains(names, want) {
				t.Errorf("vault list pure1/config = %v, missing %s", names, want)
			}
		}
		status, body := v.HTTP(t, "LIST", "pure1/config", nil)
		if keys, _ := jget(body, "data", "keys").([]any); status != 200 || len(keys) != len(names) {
			t.Errorf("LIST /v1/pure1/config: %d %v, want the %d names the CLI lists", status, body, len(names))
		}
	})

	t.Run("delete blocked by role", func(t *testing.T) {
		if len(keys) == 0 {
			t.Skip("no imported key")
		}
		name := keys[0].name // role of the same name uses it
		_, err := v.CLI(t, "delete", "pure1/config/"+name)
		if ExitCode(err) != 2 || !strings.Contains(err.Error(), "is used by role(s) "+name) {
			t.Fatalf("deleting a config a role uses: %v; want exit 2 naming the role", err)
		}
		v.MustCLIJSON(t, "read", "-format=json", "pure1/config/"+name) // still there
		v.MustCLI(t, "delete", "pure1/roles/"+name)
		v.MustCLI(t, "delete", "pure1/config/"+name)
		if _, err := v.CLI(t, "read", "pure1/config/"+name); ExitCode(err) != 2 || !strings.Contains(err.Error(), "No value found") {
			t.Errorf("read after delete: %v; want exit 2, No value found", err)
		}
		// Over HTTP too.
		v.MustCLI(t, "write", "pure1/roles/byhttp", "config=gen")
		status, body := v.HTTP(t, "DELETE", "pure1/config/gen", nil)
		if status != 400 || !strings.Contains(fmt.Sprint(body), "byhttp") {
			t.Errorf("DELETE /v1/pure1/config/gen used by role byhttp: %d %v", status, body)
		}
	})
}

// TestRoles drives roles/<name>: create, read, update keeping other fields,
// list, delete, and the errors a typo or a missing config gives.
func TestRoles(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	e := StartEmulator(t)
	v := StartVaultDev(t)
	Bootstrap(t, v, e)

	role := v.MustCLIJSON(t, "read", "-format=json", "pure1/roles/readonly")
	if got := jget(role, "data", "credential_type"); got != "access_token" {
		t.Errorf("default credential_type %v, want access_token", got)
	}
	if got := jget(role, "data", "config"); got != "main" {
		t.Errorf("config %v", got)
	}
	if got := jget(v.MustCLIJSON(t, "read", "-format=json", "pure1/roles/readonly-jwt"), "data", "credential_type"); got != "jwt" {
		t.Errorf("readonly-jwt credential_type %v", got)
	}

	// Create with every field, then update one: the others are kept.
	v.MustCLI(t, "write", "pure1/roles/full", "config=main", "credential_type=access_token", "ttl=10m", "max_ttl=1h",
		"reuse_access_token=true", "reuse_margin=5m")
	v.MustCLI(t, "write", "pure1/roles/full", "ttl=20m")
	full := v.MustCLIJSON(t, "read", "-format=json", "pure1/roles/full")
	for k, want := range map[string]int64{"ttl": 1200, "max_ttl": 3600, "reuse_margin": 300} {
		if got := jint(t, full, "data", k); got != want {
			t.Errorf("after update, %s = %d, want %d", k, got, want)
		}
	}
	if got := jget(full, "data", "reuse_access_token"); got != true {
		t.Errorf("reuse_access_token %v after an update that did not set it", got)
	}

	// Over HTTP.
	status, body := v.HTTP(t, "POST", "pure1/roles/byhttp", map[string]any{"config": "main", "credential_type": "jwt", "ttl": "5m"})
	if status != 200 && status != 204 {
		t.Fatalf("POST /v1/pure1/roles/byhttp: %d %v", status, body)
	}
	status, body = v.HTTP(t, "GET", "pure1/roles/byhttp", nil)
	if status != 200 || jget(body, "data", "credential_type") != "jwt" || jget(body, "data", "ttl") != float64(300) {
		t.Errorf("GET /v1/pure1/roles/byhttp: %d %v", status, body)
	}

	var names []string
	if err := json.Unmarshal([]byte(v.MustCLI(t, "list", "-format=json", "pure1/roles")), &names); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if want := []string{"byhttp", "full", "readonly", "readonly-jwt"}; !slices.Equal(names, want) {
		t.Errorf("vault list pure1/roles = %v, want %v", names, want)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"pure1/roles/x", "config=main", "credential_type=password"}, "credential_type"},
		{[]string{"pure1/roles/x", "config=nope"}, `config "nope" does not exist`},
		{[]string{"-force", "pure1/roles/x"}, "config is required"},
		{[]string{"pure1/roles/x", "config=main", "ttl=2h", "max_ttl=1h"}, "must not be longer than max_ttl"},
		{[]string{"pure1/roles/x", "config=main", "credential_type=jwt", "reuse_access_token=true"}, "reuse_access_token applies only"},
		{[]string{"pure1/roles/x", "config=main", "tll=5m"}, "unknown field(s) tll"},
	} {
		_, err := v.CLI(t, append([]string{"write"}, c.args...)...)
		if ExitCode(err) != 2 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("vault write %v: %v; want exit 2 and %q", c.args, err, c.want)
		}
	}

	v.MustCLI(t, "delete", "pure1/roles/full")
	if _, err := v.CLI(t, "read", "pure1/roles/full"); ExitCode(err) != 2 {
		t.Errorf("read of a deleted role: %v, want exit 2", err)
	}
	status, _ = v.HTTP(t, "DELETE", "pure1/roles/byhttp", nil)
	if status != 204 {
		t.Errorf("DELETE /v1/pure1/roles/byhttp: %d", status)
	}
	status, body = v.HTTP(t, "LIST", "pure1/roles", nil)
	keys, _ := jget(body, "data", "keys").([]any)
	if status != 200 || len(keys) != 2 {
		t.Errorf("LIST /v1/pure1/roles after deletes: %d %v, want readonly and readonly-jwt", status, body)
	}
}

// TestCreds reads credentials of both roles as users and CI do, and checks
// them against what Pure1 wants: the JWT's exact header and claims, its
// signature under the config's public key, the access token accepted by the
// (emulated) Pure1 API, and leases that are not renewable, never outlive the
// credential, and revoke cleanly.
func TestCreds(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	e := StartEmulator(t)
	v := StartVaultDev(t)
	boot := Bootstrap(t, v, e)
	pub := parsePublicKey(t, jstr(t, v.MustCLIJSON(t, "read", "-format=json", "pure1/config/main"), "data", "public_key"))

	t.Run("access_token", func(t *testing.T) {
		start := time.Now()
		resp := v.MustCLIJSON(t, "read", "-format=json", "pure1/creds/readonly")
		tok := jstr(t, resp, "data", "access_token")
		e.MustCallAPI(t, tok)
		if got := jget(resp, "data", "token_type"); got != "Bearer" {
			t.Errorf("token_type %v", got)
		}
		if got := jget(resp, "data", "app_id"); got != boot.AppID {
			t.Errorf("app_id %v, want %s", got, boot.AppID)
		}
		if got := jget(resp, "data", "max_role"); got != "viewer" {
			t.Errorf("max_role %v, want viewer (as registered)", got)
		}
		if got := jget(resp, "data", "org"); got == nil || got == "" {
			t.Errorf("no org in %v", resp["data"])
		}
		expires := parseTime(t, jstr(t, resp, "data", "expires_at"))
		checkLease(t, resp, "pure1/creds/readonly/", expires, start)
		if lease := jint(t, resp, "lease_duration"); lease < 35999-60 {
			t.Errorf("lease_duration %d: expected close to the emulator's 35999 s token life", lease)
		}
	})

	t.Run("field for CI", func(t *testing.T) {
		out := v.MustCLI(t, "read", "-field=access_token", "pure1/creds/readonly")
		if strings.ContainsAny(strings.TrimRight(out, "\n"), " \n\t") || strings.Count(out, ".") != 2 {
			t.Fatalf("-field=access_token printed %q, want the bare token", out)
		}
		e.MustCallAPI(t, strings.TrimSpace(out))
		jwt := strings.TrimSpace(v.MustCLI(t, "read", "-field=jwt", "pure1/creds/readonly-jwt"))
		if strings.Count(jwt, ".") != 2 {
			t.Fatalf("-field=jwt printed %q", jwt)
		}
	})

	t.Run("jwt", func(t *testing.T) {
		start := time.Now()
		resp := v.MustCLIJSON(t, "read", "-format=json", "pure1/creds/readonly-jwt")
		jwt := jstr(t, resp, "data", "jwt")
		header, claims := checkPure1JWT(t, jwt, pub)
		_ = header
		if claims["iss"] != boot.AppID {
			t.Errorf("iss %v, want the app_id %s", claims["iss"], boot.AppID)
		}
		iat, exp := claimInt(t, claims, "iat"), claimInt(t, claims, "exp")
		if exp-iat != 3600 {
			t.Errorf("exp - iat = %d, want 3600 (the default jwt ttl)", exp-iat)
		}
		if d := iat - start.Unix(); d < -1 || d > 5 {
			t.Errorf("iat %d is %d s from the time of the read", iat, d)
		}
		expires := parseTime(t, jstr(t, resp, "data", "expires_at"))
		if expires.Unix() != exp {
			t.Errorf("expires_at %s is not the JWT's exp %d", expires, exp)
		}
		checkLease(t, resp, "pure1/creds/readonly-jwt/", expires, start)
		if lease := jint(t, resp, "lease_duration"); lease < 3590 {
			t.Errorf("lease_duration %d, want about 3600", lease)
		}
		// Pure1 takes it: exchange it at the token endpoint ourselves.
		status, body := e.Exchange(t, jwt)
		if status != 200 {
			t.Fatalf("the emulator's token endpoint refused the JWT Vault signed: %d %v", status, body)
		}
		e.MustCallAPI(t, body["access_token"].(string))
	})

	t.Run("role ttl bounds the lease", func(t *testing.T) {
		v.MustCLI(t, "write", "pure1/roles/short", "config=main", "ttl=2m")
		v.MustCLI(t, "write", "pure1/roles/short-jwt", "config=main", "credential_type=jwt", "ttl=5m")
		if got := jint(t, v.MustCLIJSON(t, "read", "-format=json", "pure1/creds/short"), "lease_duration"); got != 120 {
			t.Errorf("access_token role ttl=2m: lease_duration %d, want 120", got)
		}
		resp := v.MustCLIJSON(t, "read", "-format=json", "pure1/creds/short-jwt")
		_, claims := checkPure1JWT(t, jstr(t, resp, "data", "jwt"), pub)
		if d := claimInt(t, claims, "exp") - claimInt(t, claims, "iat"); d != 300 {
			t.Errorf("jwt role ttl=5m: exp - iat = %d, want 300", d)
		}
		// The JWT lives ttl; the lease 5 s less (the plugin's safety margin),
		// and Vault counts from a little later still.
		if got := jint(t, resp, "lease_duration"); got > 295 || got < 290 {
			t.Errorf("jwt role ttl=5m: lease_duration %d, want 290-295", got)
		}
	})

	t.Run("http api", func(t *testing.T) {
		start := time.Now()
		status, body := v.HTTP(t, "GET", "pure1/creds/readonly", nil)
		if status != 200 {
			t.Fatalf("GET /v1/pure1/creds/readonly: %d %v", status, body)
		}
		e.MustCallAPI(t, jget(body, "data", "access_token").(string))
		checkLease(t, body, "pure1/creds/readonly/", parseTime(t, jget(body, "data", "expires_at").(string)), start)
		status, body = v.HTTP(t, "GET", "pure1/creds/readonly-jwt", nil)
		if status != 200 {
			t.Fatalf("GET /v1/pure1/creds/readonly-jwt: %d %v", status, body)
		}
		checkPure1JWT(t, jget(body, "data", "jwt").(string), pub)
	})

	t.Run("lease revoke and renew", func(t *testing.T) {
		resp := v.MustCLIJSON(t, "read", "-format=json", "pure1/creds/readonly")
		lease, tok := jstr(t, resp, "lease_id"), jstr(t, resp, "data", "access_token")
		v.MustCLIJSON(t, "lease", "lookup", "-format=json", lease)

		_, err := v.CLI(t, "lease", "renew", lease)
		if err == nil {
			t.Errorf("vault lease renew of a Pure1 lease succeeded; it is not renewable")
		} else if !strings.Contains(err.Error(), "renew") {
			t.Errorf("vault lease renew: %v; want a message about renewal", err)
		}

		out := v.MustCLI(t, "lease", "revoke", lease)
		if !strings.Contains(out, "Success") && !strings.Contains(out, "queued") {
			t.Errorf("vault lease revoke printed %q", out)
		}
		eventually(t, 10*time.Second, 200*time.Millisecond, "lease gone after revoke", func() (bool, string) {
			_, err := v.CLI(t, "lease", "lookup", lease)
			return err != nil, "vault lease lookup still finds it"
		})
		// Pure1 has no revocation: the token stays valid until it expires.
		e.MustCallAPI(t, tok)

		// Revoking every lease of the role by prefix works too.
		v.MustCLI(t, "read", "pure1/creds/readonly-jwt")
		v.MustCLI(t, "lease", "revoke", "-prefix", "pure1/creds/")
		status, body := v.HTTP(t, "LIST", "sys/leases/lookup/pure1/creds/readonly-jwt", nil)
		if keys, _ := jget(body, "data", "keys").([]any); status == 200 && len(keys) > 0 {
			t.Errorf("leases left after revoke -prefix: %v", keys)
		}
	})
}

// TestParallelReaders has 8 clients read credentials 200 times each, half
// access tokens and half JWTs, through the HTTP API with a token holding
// only the pure1-creds policy: every read must succeed.
func TestParallelReaders(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	e := StartEmulator(t, "-quiet")
	v := StartVaultDevOpts(t, VaultOptions{LogLevel: "info"})
	Bootstrap(t, v, e)
	v.MustCLI(t, "policy", "write", "pure1-creds", filepath.Join(RepoRoot(t), "bootstrap", "policy-pure1-creds.hcl"))
	token := strings.TrimSpace(v.MustCLI(t, "token", "create", "-policy=pure1-creds", "-field=token"))
	e.ResetStats(t)

	const readers, reads = 8, 200
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		errs   []string
		sample []string
	)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			for i := 0; i < reads; i++ {
				role, field := "readonly", "access_token"
				if (r+i)%2 == 1 {
					role, field = "readonly-jwt", "jwt"
				}
				status, body, err := v.Request(ctx, token, "GET", "pure1/creds/"+role, nil)
				msg := ""
				switch {
				case err != nil:
					msg = err.Error()
				case status != 200:
					msg = fmt.Sprintf("HTTP %d %v", status, body)
				default:
					cred, _ := jget(body, "data", field).(string)
					lease, _ := jget(body, "lease_duration").(float64)
					switch {
					case strings.Count(cred, ".") != 2:
						msg = fmt.Sprintf("no %s in %v", field, body)
					case lease <= 0 || jget(body, "renewable") != false:
						msg = fmt.Sprintf("lease %v renewable %v", lease, jget(body, "renewable"))
					case field == "access_token" && i%50 == 0:
						mu.Lock()
						sample = append(sample, cred)
						mu.Unlock()
					}
				}
				if msg != "" {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("reader %d read %d (%s): %s", r, i, role, msg))
					mu.Unlock()
				}
			}
		}(r)
	}
	wg.Wait()
	elapsed := time.Since(start)
	stats := e.Stats(t)
	t.Logf("%d reads in %s (%.0f/s); emulator: %d token requests, %d tokens issued, max %d in flight",
		readers*reads, elapsed.Round(time.Millisecond), float64(readers*reads)/elapsed.Seconds(),
		stats["token_requests"], stats["tokens_issued"], stats["max_in_flight"])
	if len(errs) > 0 {
		t.Fatalf("%d of %d reads failed; first ones:\n%s", len(errs), readers*reads, strings.Join(errs[:min(len(errs), 10)], "\n"))
	}
	if stats["tokens_issued"] == 0 || stats["rejected"] != 0 {
		t.Errorf("emulator stats %v: want tokens issued and none rejected", stats)
	}
	for _, tok := range sample {
		e.MustCallAPI(t, tok)
	}
}

// TestErrors checks that what goes wrong end to end exits non-zero with a
// message that says what to fix.
func TestErrors(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	e := StartEmulator(t)
	v := StartVaultDev(t)
	Bootstrap(t, v, e)

	t.Run("unknown role", func(t *testing.T) {
		_, err := v.CLI(t, "read", "pure1/creds/nope")
		if ExitCode(err) != 2 || !strings.Contains(err.Error(), `role "nope" does not exist`) {
			t.Errorf("vault read pure1/creds/nope: %v; want exit 2 and the role named", err)
		}
		status, body := v.HTTP(t, "GET", "pure1/creds/nope", nil)
		if status != 400 || !strings.Contains(fmt.Sprint(body["errors"]), "does not exist") {
			t.Errorf("GET /v1/pure1/creds/nope: %d %v", status, body)
		}
	})

	t.Run("config without app_id", func(t *testing.T) {
		v.MustCLI(t, "write", "pure1/config/noapp", "generate_key=true")
		assertWarning(t, v.MustCLIJSON(t, "write", "-format=json", "pure1/roles/noapp", "config=noapp"), "no app_id yet")
		_, err := v.CLI(t, "read", "pure1/creds/noapp")
		if ExitCode(err) != 2 || !strings.Contains(err.Error(), `config "noapp" has no app_id`) ||
			!strings.Contains(err.Error(), "API Registration") {
			t.Errorf("vault read pure1/creds/noapp: %v; want exit 2 and how to register", err)
		}
	})

	t.Run("emulator 401 for a key registered under another application", func(t *testing.T) {
		resp := v.MustCLIJSON(t, "write", "-format=json", "pure1/config/wrongkey", "generate_key=true")
		fp := jstr(t, resp, "data", "public_key_fingerprint")
		// The application Pure1 knows has some other key.
		other := filepath.Join(t.TempDir(), "other.pem")
		runCmd(t, "", "openssl", "genrsa", "-out", other, "2048")
		otherPub := runCmd(t, "", "openssl", "rsa", "-in", other, "-pubout")
		app := e.Register(t, otherPub)
		v.MustCLI(t, "write", "pure1/config/wrongkey", "app_id="+app, "token_url="+e.TokenURL())
		v.MustCLI(t, "write", "pure1/roles/wrongkey", "config=wrongkey")
		before := e.Stats(t)["rejected"]
		_, err := v.CLI(t, "read", "pure1/creds/wrongkey")
		if ExitCode(err) != 2 {
			t.Fatalf("vault read pure1/creds/wrongkey: %v; want exit 2", err)
		}
		for _, want := range []string{"Pure1 rejected the token exchange", app, "401", fp} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		if after := e.Stats(t)["rejected"]; after != before+1 {
			t.Errorf("emulator rejected %d requests, want exactly 1 (no retries of a 401)", after-before)
		}
		// The JWT role of that config is signed fine: the key is only wrong for Pure1.
		v.MustCLI(t, "write", "pure1/roles/wrongkey-jwt", "config=wrongkey", "credential_type=jwt")
		jwt := strings.TrimSpace(v.MustCLI(t, "read", "-field=jwt", "pure1/creds/wrongkey-jwt"))
		if status, body := e.Exchange(t, jwt); status != 401 || body["error"] != "invalid_client" {
			t.Errorf("exchanging a JWT signed with the wrong key: %d %v, want 401 invalid_client", status, body)
		}
	})

	t.Run("Pure1 unavailable", func(t *testing.T) {
		e.Fault(t, Fault{Kind: "status", Status: 503, Count: 20})
		defer e.ClearFaults(t)
		_, err := v.CLI(t, "read", "pure1/creds/readonly")
		if ExitCode(err) != 2 || !strings.Contains(err.Error(), "Pure1 token exchange for app_id") || !strings.Contains(err.Error(), "503") {
			t.Errorf("vault read during a Pure1 outage: %v; want exit 2 and the 503", err)
		}
		status, body := v.HTTP(t, "GET", "pure1/creds/readonly", nil)
		if status != http.StatusBadGateway {
			t.Errorf("GET /v1/pure1/creds/readonly during an outage: %d %v, want 502", status, body)
		}
		e.ClearFaults(t)
		e.MustCallAPI(t, strings.TrimSpace(v.MustCLI(t, "read", "-field=access_token", "pure1/creds/readonly")))
	})

	t.Run("one failure is retried", func(t *testing.T) {
		e.ResetStats(t)
		e.Fault(t, []Fault{{Kind: "status", Status: 502}, {Kind: "reset"}})
		tok := strings.TrimSpace(v.MustCLI(t, "read", "-field=access_token", "pure1/creds/readonly"))
		e.MustCallAPI(t, tok)
		if s := e.Stats(t); s["faults_served"] != 2 || s["tokens_issued"] != 1 {
			t.Errorf("emulator stats %v: want 2 faults served, then 1 token", s)
		}
	})

	t.Run("policy", func(t *testing.T) {
		v.MustCLI(t, "policy", "write", "pure1-creds", filepath.Join(RepoRoot(t), "bootstrap", "policy-pure1-creds.hcl"))
		tok := strings.TrimSpace(v.MustCLI(t, "token", "create", "-policy=pure1-creds", "-field=token"))
		if _, err := v.CLIAs(t, tok, "read", "-field=access_token", "pure1/creds/readonly"); err != nil {
			t.Errorf("pure1-creds cannot read creds: %v", err)
		}
		for _, args := range [][]string{
			{"read", "pure1/config/main"},
			{"list", "pure1/config"},
			{"list", "pure1/roles"},
			{"read", "pure1/roles/readonly"},
			{"write", "pure1/roles/mine", "config=main"},
			{"write", "pure1/config/main", "app_id=pure1:apikey:x"},
		} {
			_, err := v.CLIAs(t, tok, args...)
			if err == nil || !strings.Contains(err.Error(), "permission denied") {
				t.Errorf("pure1-creds: vault %v: %v; want permission denied", args, err)
			}
		}
	})
}

// ---- helpers ---------------------------------------------------------------------------

// checkLease checks the lease fields of a creds response read at start:
// the lease ID is under prefix, it is not renewable, and it ends no later
// than the credential expires.
func checkLease(t *testing.T, resp map[string]any, prefix string, expires, start time.Time) {
	t.Helper()
	if id, _ := resp["lease_id"].(string); !strings.HasPrefix(id, prefix) {
		t.Errorf("lease_id %q, want it under %s", id, prefix)
	}
	if resp["renewable"] != false {
		t.Errorf("renewable %v, want false", resp["renewable"])
	}
	lease := jint(t, resp, "lease_duration")
	remaining := expires.Unix() - start.Unix()
	if lease <= 0 || lease > remaining {
		t.Errorf("lease_duration %d s, but the credential expires %d s after the read started: the lease must end no later", lease, remaining)
	}
}

// checkPure1JWT checks a JWT the way Pure1 does and returns its header and
// claims: header exactly {"alg":"RS256","typ":"JWT"}, claims exactly iss,
// iat and exp with integer times, and an RS256 signature by pub.
func checkPure1JWT(t *testing.T, jwt string, pub *rsa.PublicKey) (map[string]any, map[string]any) {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("JWT has %d parts", len(parts))
	}
	decode := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("JWT part %q is not unpadded base64url: %v", s, err)
		}
		return b
	}
	var header, claims map[string]any
	hdr, payload := decode(parts[0]), decode(parts[1])
	dec := json.NewDecoder(strings.NewReader(string(hdr)))
	if err := dec.Decode(&header); err != nil {
		t.Fatalf("JWT header %s: %v", hdr, err)
	}
	if len(header) != 2 || header["alg"] != "RS256" || header["typ"] != "JWT" {
		t.Errorf("JWT header %s, want exactly {\"alg\":\"RS256\",\"typ\":\"JWT\"}", hdr)
	}
	dec = json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		t.Fatalf("JWT claims %s: %v", payload, err)
	}
	var names []string
	for k := range claims {
		names = append(names, k)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"exp", "iat", "iss"}) {
		t.Errorf("JWT claims %s: want exactly iss, iat, exp", payload)
	}
	if _, ok := claims["iss"].(string); !ok {
		t.Errorf("iss is not a string: %s", payload)
	}
	for _, c := range []string{"iat", "exp"} {
		n, ok := claims[c].(json.Number)
		if !ok || strings.ContainsAny(n.String(), ".eE-") {
			t.Errorf("%s must be an integer count of seconds: %s", c, payload)
		}
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], decode(parts[2])); err != nil {
		t.Errorf("JWT signature does not verify with the config's public_key: %v", err)
	}
	return header, claims
}

func claimInt(t *testing.T, claims map[string]any, name string) int64 {
	t.Helper()
	n, ok := claims[name].(json.Number)
	if !ok {
		t.Fatalf("claim %s missing", name)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatalf("claim %s = %s: %v", name, n, err)
	}
	return i
}

func parsePublicKey(t testing.TB, pemText string) *rsa.PublicKey {
	t.Helper()
	block, _ := pem.Decode([]byte(pemText))
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("not a PEM PUBLIC KEY: %q", pemText)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		t.Fatalf("public key is %T, not RSA", k)
	}
	return rk
}

func fingerprint(t testing.TB, k *rsa.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

func parseTime(t testing.TB, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("expires_at %q: %v", s, err)
	}
	return ts
}

// assertNoPrivateKey fails if s shows any private key material or field.
func assertNoPrivateKey(t testing.TB, s string) {
	t.Helper()
	for _, bad := range []string{"PRIVATE KEY", "private_key:", "private_key ", "private_key\"", "private_key_password"} {
		if strings.Contains(s, bad) {
			t.Errorf("output shows %q:\n%s", bad, s)
		}
	}
}

func assertWarning(t testing.TB, resp map[string]any, want string) {
	t.Helper()
	if !strings.Contains(fmt.Sprint(resp["warnings"]), want) {
		t.Errorf("warnings %v, want one saying %q", resp["warnings"], want)
	}
}

// runCmd runs a command (in dir, if set) and returns its stdout; the test
// fails if it exits non-zero.
func runCmd(t testing.TB, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}
