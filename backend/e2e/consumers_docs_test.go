package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	arrayemu "github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray/emulator"
)

// fencedBlocks are the contents of md's ```lang blocks, in order.
func fencedBlocks(md, lang string) []string {
	re := regexp.MustCompile("(?ms)^```" + regexp.QuoteMeta(lang) + "\\s*\\n(.*?)^```\\s*$")
	var out []string
	for _, m := range re.FindAllStringSubmatch(md, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestDocsPythonSDK runs the Python blocks of docs/consumers/python-sdk.md
// as they are written, the first against an emulated FlashArray and the
// second against an emulated FlashBlade, with Debian's python3-hvac and
// Pure's SDK: each reads a lease of an api_token role from a real Vault,
// lists the array as the lease's user with certificate verification on,
// and revokes its lease, after which the user is gone from the array and
// Vault holds no lease of the role. Only the CA file's name is changed. Run
// first with another CA, each block must fail at the array's certificate
// and still revoke its lease.
func TestDocsPythonSDK(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	sdk := installArraysSDK(t)
	installAnsible(t) // python3-hvac, for Debian's python3
	md, err := os.ReadFile(filepath.Join(RepoRoot(t), "docs", "consumers", "python-sdk.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := fencedBlocks(string(md), "python")
	if len(blocks) != 2 {
		t.Fatalf("docs/consumers/python-sdk.md has %d python blocks; this test runs two: FlashArray, then FlashBlade", len(blocks))
	}
	v := StartVaultDevOpts(t, VaultOptions{LogLevel: "info"})
	emus := map[string]*ArrayEmulator{}
	for _, kind := range arrayKinds {
		emus[kind] = StartArrayEmulatorKind(t, kind, "-quiet")
	}
	for i, tc := range []struct{ kind, config, role, caName, arrayName string }{
		{arrayemu.FlashArray, "fa", "fa-automation", "fa1-ca.pem", "emulated-flasharray"},
		{arrayemu.FlashBlade, "fb", "fb-automation", "fb1-ca.pem", "emulated-flashblade"},
	} {
		code := blocks[i]
		t.Run(tc.kind, func(t *testing.T) {
			for _, want := range []string{tc.role, tc.caName} {
				if !strings.Contains(code, want) {
					t.Fatalf("python block %d no longer names %q; this test makes and substitutes it:\n%s", i+1, want, code)
				}
			}
			e, other := emus[tc.kind], emus[arrayemu.FlashArray]
			if tc.kind == arrayemu.FlashArray {
				other = emus[arrayemu.FlashBlade]
			}
			if status, resp := v.HTTP(t, "POST", Mount+"/config/"+tc.config, arrayConfig(e)); status != 200 {
				t.Fatalf("config: HTTP %d %v", status, resp)
			}
			v.MustCLI(t, "write", Mount+"/roles/"+tc.role, "config="+tc.config, "credential_type=api_token", "array_role=readonly", "ttl=15m")

			env := []string{"VAULT_ADDR=" + v.Addr, "VAULT_TOKEN=" + v.Token, "HOME=" + t.TempDir()}
			prefix := "vault-pure1-" + tc.role[:len("fa-automat")]
			leasesLeft := func() {
				t.Helper()
				if status, resp := v.HTTP(t, "LIST", "sys/leases/lookup/"+Mount+"/creds/"+tc.role, nil); status != 404 {
					t.Errorf("leases of %s left in Vault: HTTP %d %v", tc.role, status, resp)
				}
				if left := vaultUsers(t, e, prefix); len(left) != 0 {
					t.Errorf("users left on the array after the block revoked its lease: %v", left)
				}
			}

			wrong := RunArraySDKSnippet(t, sdk, strings.ReplaceAll(code, tc.caName, other.CAFile), env...)
			if wrong.Err == nil || !strings.Contains(wrong.Stderr, "CERTIFICATE_VERIFY_FAILED") {
				t.Fatalf("python block %d with another CA: %v, want it refused at the array's certificate\nstdout:\n%s\nstderr:\n%s", i+1, wrong.Err, wrong.Stdout, wrong.Stderr)
			}
			leasesLeft()

			st0 := e.Stats(t)
			run := RunArraySDKSnippet(t, sdk, strings.ReplaceAll(code, tc.caName, e.CAFile), env...)
			if run.Err != nil {
				t.Fatalf("python block %d failed: %v\nstdout:\n%s\nstderr:\n%s", i+1, run.Err, run.Stdout, run.Stderr)
			}
			out := strings.Fields(run.Stdout)
			if len(out) != 5 || out[0] != tc.arrayName || out[1] != "as" || !strings.HasPrefix(out[2], prefix) || out[3] != "until" {
				t.Fatalf("python block %d printed %q; want %q as %s... until <expires_at>", i+1, run.Stdout, tc.arrayName, prefix)
			}
			user := out[2]
			st := e.Stats(t)
			if n := st.LoginsByUser[user] - st0.LoginsByUser[user]; n != 1 {
				t.Errorf("logins as %s: %d, want 1 (the SDK with the lease's token)", user, n)
			}
			leasesLeft()
			if tc.kind == arrayemu.FlashBlade && st.OpenSessions > 1 {
				t.Errorf("%d sessions open at the FlashBlade: Vault keeps one, and the block logs out its own", st.OpenSessions)
			}
			t.Logf("%s: %s", tc.kind, strings.TrimSpace(run.Stdout))
		})
	}
}
