package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReadme is the newcomer: it runs the README's commands as they are
// written, in the README's order, against a real Vault and the emulators,
// and fails when the README has a command it does not run. What a newcomer
// would do by hand (Pure1's UI, downloading a release) the test does in
// their place; what it must change to run here (the Pure1 address, the
// application ID Pure1 shows, the plugin directory) is in readmeSubs, each
// checked to still apply.
//
// `make dev` is run as scripts/dev.sh, what the make target runs once the
// binaries are built; `make test` is what runs this test.
func TestReadme(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	root := RepoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeBlocks(string(readme))
	var cmds []string
	for _, b := range blocks {
		for _, c := range b {
			if !contains(cmds, c) {
				cmds = append(cmds, c)
			}
		}
	}
	ran := map[string]bool{"make test": true} // this test is part of it

	// A working directory like a clone's, without writing into the clone:
	// bootstrap/ for the policy file, .dev/ for make dev's state.
	work := t.TempDir()
	if err := os.Symlink(filepath.Join(root, "bootstrap"), filepath.Join(work, "bootstrap")); err != nil {
		t.Fatal(err)
	}

	t.Run("make dev", func(t *testing.T) {
		devDir := t.TempDir()
		env := []string{"PURE1_DEV_DIR=" + devDir, "PURE1_BIN_DIR=" + BinDir(t), "VAULT_BIN=" + VaultBin(t),
			"VERSION=" + PluginVersion(), "NO_COLOR=1", "DEV_DETACH=1"}
		t.Cleanup(func() { runScriptErr(t, filepath.Join(root, "scripts", "dev-stop.sh"), nil, env) })
		runScript(t, filepath.Join(root, "scripts", "dev.sh"), nil, env)
		ran["make dev"] = true
		if err := os.Symlink(devDir, filepath.Join(work, ".dev")); err != nil {
			t.Fatal(err)
		}
		// source .dev/env must carry into the commands after it: one shell.
		script := readmeBlock(t, blocks, "source .dev/env")
		out := readmeShell(t, work, childEnv("HOME="+t.TempDir()), script...)
		for _, c := range script {
			ran[c] = true
		}
		for _, want := range []string{"access_token", "rotation_period", "pure1_credentials_issued_total"} {
			if !strings.Contains(out, want) {
				t.Errorf("make dev's commands printed no %s:\n%s", want, out)
			}
		}
	})

	emu := StartEmulator(t)
	v := StartVaultDevOpts(t, VaultOptions{NoMount: true})
	vaultEnv := childEnv("VAULT_ADDR="+v.Addr, "VAULT_TOKEN="+v.Token, "HOME="+t.TempDir(),
		"PATH="+filepath.Dir(v.Bin)+string(os.PathListSeparator)+os.Getenv("PATH"))

	t.Run("install from a release", func(t *testing.T) {
		// A release as the newcomer downloads it: the plugin binary and
		// SHA256SUMS.
		rel := t.TempDir()
		bin := filepath.Join(rel, PluginName)
		copyFile(t, BinPath(t, PluginName), bin, 0o755)
		sums := FileSHA256(t, bin) + "  " + PluginName + "\n"
		if err := os.WriteFile(filepath.Join(rel, "SHA256SUMS"), []byte(sums), 0o644); err != nil {
			t.Fatal(err)
		}
		check := readmeBlock(t, blocks, "sha256sum -c --ignore-missing SHA256SUMS")
		readmeShell(t, rel, vaultEnv, check...)
		ran[check[0]] = true
		// Copy it into plugin_directory (a step in words).
		copyFile(t, bin, filepath.Join(v.PluginDir, PluginName), 0o755)

		// SHA=..., register, enable, and the register with -env: one shell,
		// for $SHA. Then a reload, so the -env applies (the README's
		// register with -env is the same command a newcomer runs first).
		script := append(readmeBlock(t, blocks, "SHA=$(sha256sum /etc/vault/plugins/vault-plugin-secrets-pure1 | cut -d' ' -f1)"),
			readmeBlock(t, blocks, `vault plugin register -sha256="$SHA" -version=v0.2.0 -env PURE1_ALLOWED_TOKEN_HOSTS=fa1.example.com,fb1.example.com -command=vault-plugin-secrets-pure1 secret vault-plugin-secrets-pure1`)...)
		for _, c := range script {
			ran[c] = true
		}
		script = append(script, "vault plugin reload -plugin "+PluginName)
		out := readmeShell(t, work, vaultEnv, applyReadmeSubs(t, script, readmeInstallSubs(v))...)
		t.Logf("install:\n%s", out)
		list := v.MustCLI(t, "secrets", "list", "-detailed")
		if !strings.Contains(list, "pure1/") || !strings.Contains(list, PluginVersion()) {
			t.Fatalf("pure1/ is not mounted at %s after the README's install:\n%s", PluginVersion(), list)
		}
	})

	t.Run("five-minute Pure1 setup", func(t *testing.T) {
		do := func(c string, subs ...readmeSub) string {
			t.Helper()
			if !contains(cmds, c) {
				t.Fatalf("the README no longer has %q: update TestReadme to run what it says now", c)
			}
			ran[c] = true
			return readmeShell(t, work, vaultEnv, applyReadmeSubs(t, []string{c}, subs)...)
		}
		do("vault write pure1/config/prod generate_key=true")
		do("vault read -field=public_key pure1/config/prod > pure1-public.pem")
		// Pure1's UI: register the public key, read the application ID.
		pub, err := os.ReadFile(filepath.Join(work, "pure1-public.pem"))
		if err != nil {
			t.Fatal(err)
		}
		appID := emu.Register(t, string(pub))
		// Where Pure1 is, here: the emulator.
		v.MustCLI(t, "write", "pure1/config/prod", "token_url="+emu.TokenURL())
		do("vault write pure1/config/prod app_id=pure1:apikey:iRT5OwhslZVLWNGG", readmeSub{readmeAppID, appID})
		out := do("vault read pure1/config/prod/check")
		if !regexp.MustCompile(`(?m)^ok\s+true$`).MatchString(out) {
			t.Errorf("config/prod/check after the README's steps:\n%s", out)
		}
		do("vault write pure1/roles/readonly config=prod")
		if out := do("vault read pure1/creds/readonly"); !strings.Contains(out, "access_token") {
			t.Errorf("creds/readonly:\n%s", out)
		}
		curl := `curl -H "Authorization: Bearer $(vault read -field=access_token pure1/creds/readonly)" https://api.pure1.purestorage.com/api/1.latest/arrays`
		if out := do(curl, readmeSub{"https://api.pure1.purestorage.com", emu.URL}); !strings.Contains(out, `"items"`) {
			t.Errorf("the emulated Pure1 API did not list arrays for the README's curl:\n%s", out)
		}
		do("vault policy write pure1-creds bootstrap/policy-pure1-creds.hcl")
		if out := do("vault token create -policy=pure1-creds"); !strings.Contains(out, "pure1-creds") {
			t.Errorf("token create:\n%s", out)
		}

		// Bringing a key instead: an openssl genrsa -aes256 key, its public
		// half registered, into a config of its own (prod is in use now,
		// and a new key there is refused, as it should be).
		const password = "readme newcomer's key password"
		key := filepath.Join(work, "private.pem")
		runCmd(t, "", "openssl", "genrsa", "-aes256", "-passout", "pass:"+password, "-out", key, "2048")
		pubOut, err := exec.Command("openssl", "rsa", "-in", key, "-passin", "pass:"+password, "-pubout").Output()
		if err != nil {
			t.Fatal(err)
		}
		broughtID := emu.Register(t, string(pubOut))
		bring := `printf '%s' "$PURE1_PRIVATE_KEY_PASSWORD" | vault write pure1/config/prod app_id=pure1:apikey:iRT5OwhslZVLWNGG private_key=@private.pem private_key_password=-`
		if !contains(cmds, bring) {
			t.Fatalf("the README no longer has %q: update TestReadme to run what it says now", bring)
		}
		ran[bring] = true
		env := append(append([]string{}, vaultEnv...), "PURE1_PRIVATE_KEY_PASSWORD="+password)
		readmeShell(t, work, env, applyReadmeSubs(t, []string{bring}, []readmeSub{
			{"pure1/config/prod", "pure1/config/brought"},
			{readmeAppID, broughtID},
			{"private_key_password=-", "private_key_password=- token_url=" + emu.TokenURL()},
		})...)
		out = v.MustCLI(t, "read", "pure1/config/brought/check")
		if !regexp.MustCompile(`(?m)^ok\s+true$`).MatchString(out) {
			t.Errorf("config/brought/check: the brought key does not work:\n%s", out)
		}
	})

	if t.Failed() {
		return // a failed step left its commands unrun; that is reported above
	}
	var notRun []string
	for _, c := range cmds {
		if !ran[c] {
			notRun = append(notRun, c)
		}
	}
	if len(notRun) > 0 {
		t.Errorf("README commands no test runs (run them in TestReadme, or say in words what is not a command):\n  %s",
			strings.Join(notRun, "\n  "))
	}
}

// readmeAppID is the application ID the README uses as its example.
const readmeAppID = "pure1:apikey:iRT5OwhslZVLWNGG"

// readmeSub is one change a command needs to run here instead of at a
// newcomer's site.
type readmeSub struct{ old, new string }

func readmeInstallSubs(v *Vault) []readmeSub {
	subs := []readmeSub{
		{"/etc/vault/plugins", v.PluginDir},
		// The emulator stands in for Pure1 on loopback, which the
		// registrar must allow.
		{"PURE1_ALLOWED_TOKEN_HOSTS=fa1.example.com,fb1.example.com", "PURE1_ALLOWED_TOKEN_HOSTS=fa1.example.com,fb1.example.com,loopback"},
	}
	if pv := PluginVersion(); pv != "v0.2.0" {
		subs = append(subs, readmeSub{"-version=v0.2.0", "-version=" + pv}, readmeSub{"-plugin-version=v0.2.0", "-plugin-version=" + pv})
	}
	return subs
}

// applyReadmeSubs applies each substitution where it matches and fails
// when one matches none of the commands: the README changed under it.
func applyReadmeSubs(t *testing.T, cmds []string, subs []readmeSub) []string {
	t.Helper()
	out := append([]string{}, cmds...)
	for _, s := range subs {
		hit := false
		for i, c := range out {
			if strings.Contains(c, s.old) {
				out[i] = strings.ReplaceAll(c, s.old, s.new)
				hit = true
			}
		}
		if !hit {
			t.Fatalf("the substitution of %q matches no README command any more: update TestReadme", s.old)
		}
	}
	return out
}

// readmeShell runs commands in one bash (set -euo pipefail) in dir and
// returns its output; the test fails with the output if one fails.
func readmeShell(t *testing.T, dir string, env []string, cmds ...string) string {
	t.Helper()
	script := "set -euo pipefail\n" + strings.Join(cmds, "\n") + "\n"
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README commands failed: %v\n%s\noutput:\n%s", err, script, out)
	}
	return string(out)
}

// readmeBlock returns the README's code block that starts with first.
func readmeBlock(t *testing.T, blocks [][]string, first string) []string {
	t.Helper()
	for _, b := range blocks {
		if b[0] == first {
			return b
		}
	}
	var starts []string
	for _, b := range blocks {
		starts = append(starts, b[0])
	}
	t.Fatalf("the README has no code block starting with %q any more: update TestReadme to run what it says now; its blocks start with:\n  %s",
		first, strings.Join(starts, "\n  "))
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// readmeComment is a trailing comment: two or more spaces, then #.
var readmeComment = regexp.MustCompile(`\s{2,}#.*$`)

// readmeBlocks returns the README's indented code blocks (four spaces or
// more, after a blank line), each a list of commands: lines continued with
// \ joined, trailing comments dropped, comment-only lines skipped.
func readmeBlocks(md string) [][]string {
	var blocks [][]string
	var cur []string
	inCode := false
	var cont string
	prevBlank := true
	for _, line := range strings.Split(md, "\n") {
		blank := strings.TrimSpace(line) == ""
		isCode := !blank && strings.HasPrefix(line, "    ") && (inCode || prevBlank)
		if !blank {
			if inCode && !isCode && len(cur) > 0 {
				blocks = append(blocks, cur)
				cur = nil
			}
			inCode = isCode
		}
		prevBlank = blank
		if !isCode {
			continue
		}
		l := strings.TrimSpace(readmeComment.ReplaceAllString(line, ""))
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasSuffix(l, `\`) {
			cont += strings.TrimSpace(strings.TrimSuffix(l, `\`)) + " "
			continue
		}
		cur = append(cur, cont+l)
		cont = ""
	}
	if len(cur) > 0 {
		blocks = append(blocks, cur)
	}
	return blocks
}

// TestReadmeCommandsParse: the parser finds the commands of a README-shaped
// text, joined and without comments, and nothing of the prose.
func TestReadmeCommandsParse(t *testing.T) {
	md := "# Title\n\nSome prose\n    not code: no blank line before\n\n" +
		"    make dev\n    source .dev/env            # a comment\n\n" +
		"1. A step:\n\n       sha256sum -c SHA256SUMS\n\nMore prose.\n\n" +
		"    curl -H \"X: y\" \\\n        https://example.com/a\n    make dev\n"
	got := fmt.Sprintf("%q", readmeBlocks(md))
	want := fmt.Sprintf("%q", [][]string{{"make dev", "source .dev/env"}, {"sha256sum -c SHA256SUMS"},
		{`curl -H "X: y" https://example.com/a`, "make dev"}})
	if got != want {
		t.Errorf("readmeBlocks:\n got %s\nwant %s", got, want)
	}
}
