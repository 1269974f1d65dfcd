package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"gopkg.in/yaml.v3"
)

// The identities in bootstrap/ci/github-actions.yml and gitlab-ci.yml: the
// test sets Vault up for exactly these, so the examples' role names and
// audiences are the ones checked here.
const (
	ciRepo       = "acme/storage-automation"
	ciBranch     = "main"
	ciRole       = "pure1-acme-storage-automation-main"
	githubIssuer = "https://token.actions.githubusercontent.com"
	githubAud    = "https://github.com/acme" // vault-action's default aud for owner acme
	gitlabIssuer = "https://gitlab.com"
	gitlabAud    = "https://vault.example.com:8200" // the example job's id_tokens aud
)

// ciIssuer plays GitHub's or GitLab's OIDC token service: an RSA key whose
// public half Vault is given as jwt_validation_pubkeys, since the real
// issuers' keys cannot be fetched here.
type ciIssuer struct {
	key     *rsa.PrivateKey
	kid     string
	pubFile string
}

func newCIIssuer(t *testing.T, kid string) *ciIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), kid+".pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &ciIssuer{key: key, kid: kid, pubFile: f}
}

// sign makes an RS256 JWT with a kid header, as both CI systems send.
func (c *ciIssuer) sign(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = c.kid
	s, err := tok.SignedString(c.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// githubClaims is a GitHub Actions OIDC token's payload for a push to
// repo@branch (claim names and value types as GitHub documents them:
// IDs and numbers are strings).
func githubClaims(repo, branch string, now time.Time) jwt.MapClaims {
	owner := strings.SplitN(repo, "/", 2)[0]
	ref := "refs/heads/" + branch
	return jwt.MapClaims{
		"jti": "5a1b0b4e-6c1d-4a39-9a77-b0e0e5d6c0f1", "iss": githubIssuer, "aud": "https://github.com/" + owner,
		"sub": "repo:" + repo + ":ref:" + ref, "ref": ref, "ref_type": "branch", "ref_protected": "true",
		"sha": "d6cd1e2bd19e03a81132a23b2025920577f84e37", "repository": repo, "repository_id": "74",
		"repository_owner": owner, "repository_owner_id": "65", "repository_visibility": "private",
		"actor": "octocat", "actor_id": "12", "run_id": "9876543210", "run_number": "10", "run_attempt": "1",
		"runner_environment": "github-hosted", "workflow": "pure1-arrays", "event_name": "push",
		"workflow_ref":     repo + "/.github/workflows/pure1.yml@" + ref,
		"job_workflow_ref": repo + "/.github/workflows/pure1.yml@" + ref,
		"head_ref":         "", "base_ref": "",
		"iat": now.Unix(), "nbf": now.Unix() - 5, "exp": now.Add(5 * time.Minute).Unix(),
	}
}

// gitlabClaims is a GitLab CI id_tokens payload for a pipeline on
// project@branch.
func gitlabClaims(project, branch, aud string, now time.Time) jwt.MapClaims {
	ns := project[:strings.LastIndex(project, "/")]
	return jwt.MapClaims{
		"jti": "c82eeb0c-5c6f-4a33-abf5-4c474b92b558", "iss": gitlabIssuer, "aud": aud,
		"sub":          "project_path:" + project + ":ref_type:branch:ref:" + branch,
		"namespace_id": "72", "namespace_path": ns, "project_id": "20", "project_path": project,
		"user_id": "1", "user_login": "sample-user", "user_email": "sample-user@example.com",
		"user_access_level": "developer", "pipeline_id": "574", "pipeline_source": "push", "job_id": "302",
		"ref": branch, "ref_type": "branch", "ref_path": "refs/heads/" + branch, "ref_protected": "true",
		"runner_id": 1, "runner_environment": "gitlab-hosted", "sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
		"project_visibility": "private", "ci_config_ref_uri": "gitlab.com/" + project + "//.gitlab-ci.yml@refs/heads/" + branch,
		"ci_config_sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
		"iat":           now.Unix(), "nbf": now.Unix() - 5, "exp": now.Add(5 * time.Minute).Unix(),
	}
}

// ciLogin logs in as a pipeline does: the vault CLI, no Vault token of its
// own. The JWT goes in a file (jwt=@file) so the harness's command log does
// not print it.
func ciLogin(t *testing.T, v *Vault, mount, role, token string) (string, error) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "id-token")
	if err := os.WriteFile(f, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := v.CLIStreams(t, []string{"VAULT_TOKEN="}, "write", "-field=token",
		"auth/"+mount+"/login", "role="+role, "jwt=@"+f)
	if err != nil {
		return "", &cliError{err: err, stderr: stderr}
	}
	return strings.TrimSpace(out), nil
}

type cliError struct {
	err    error
	stderr string
}

func (e *cliError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.stderr) }

// TestCILogin runs the Vault-side commands of bootstrap/ci/github-actions.yml
// and gitlab-ci.yml as written (bootstrap/ci/setup-jwt-auth.sh against a
// real Vault), then logs in with tokens shaped exactly like GitHub's and
// GitLab's: the right repository and branch read Pure1 credentials and
// nothing else; another repository, branch, audience, issuer or key, and an
// expired token, are refused. The example GitLab job's script and the GitHub
// workflow's curl step run as written. The examples' static variant too, as
// their comments write it: refused with 403 until its setup command has run,
// then every job's read of static-creds/ci works.
func TestCILogin(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	e := StartEmulator(t)
	v := StartVaultDev(t)
	Bootstrap(t, v, e)
	// The config the examples' static variant names: prod, as the README's
	// five-minute setup makes it.
	gen := v.MustCLIJSON(t, "write", "-format=json", Mount+"/config/prod", "generate_key=true")
	v.MustCLI(t, "write", Mount+"/config/prod", "app_id="+e.Register(t, jstr(t, gen, "data", "public_key")), "token_url="+e.TokenURL())
	root := RepoRoot(t)
	script := filepath.Join(root, "bootstrap", "ci", "setup-jwt-auth.sh")
	github, gitlab, stranger := newCIIssuer(t, "github-key"), newCIIssuer(t, "gitlab-key"), newCIIssuer(t, "stranger")
	vaultEnv := []string{"VAULT_ADDR=" + v.Addr, "VAULT_TOKEN=" + v.Token, "VAULT_BIN=" + v.Bin}
	// An admin's shell: the vault CLI on PATH; the issuers' keys given, as
	// GitHub's and GitLab's cannot be fetched here.
	adminEnv := []string{"VAULT_ADDR=" + v.Addr, "VAULT_TOKEN=" + v.Token, "PATH=" + filepath.Dir(v.Bin) + ":" + os.Getenv("PATH")}
	githubEnv := append(slices.Clone(adminEnv), "JWT_VALIDATION_PUBKEYS="+github.pubFile)
	gitlabEnv := append(slices.Clone(adminEnv), "JWT_VALIDATION_PUBKEYS="+gitlab.pubFile)
	ghExample := readCIExample(t, filepath.Join(root, "bootstrap", "ci", "github-actions.yml"))
	glExample := readCIExample(t, filepath.Join(root, "bootstrap", "ci", "gitlab-ci.yml"))
	for _, c := range ghExample.setup {
		runExample(t, root, c, githubEnv...)
	}
	for _, c := range glExample.setup {
		runExample(t, root, c, gitlabEnv...)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"github", "acme"}, "is not OWNER/REPO"},
		{[]string{"github", "acme/group/repo"}, "must be OWNER/REPO"},
		{[]string{"github", ciRepo, "refs/heads/main"}, "plain branch name"},
		{[]string{"bitbucket", ciRepo}, "setup-jwt-auth.sh github OWNER/REPO"},
	} {
		if out, err := runScriptErr(t, script, bad.args, vaultEnv); err == nil || !strings.Contains(out, bad.want) {
			t.Errorf("setup-jwt-auth.sh %v: err %v, output %q; want a refusal saying %q", bad.args, err, out, bad.want)
		}
	}
	// Again: the script updates in place.
	for _, c := range glExample.setup {
		runExample(t, root, c, gitlabEnv...)
	}

	// useToken checks what a pipeline's Vault token may do: read its Pure1
	// credential (accepted by Pure1), and no other Pure1 path.
	useToken := func(t *testing.T, token string, mayRead []string) {
		t.Helper()
		access := strings.TrimSpace(mustCLIAs(t, v, token, "read", "-field=access_token", "pure1/creds/readonly"))
		e.MustCallAPI(t, access)
		for _, args := range [][]string{
			{"read", "pure1/config/main"}, {"read", "pure1/roles/readonly"}, {"list", "pure1/roles"},
			{"read", "pure1/creds/readonly-jwt"}, {"write", "pure1/roles/x", "config=main"},
			{"write", "pure1/config/main", "app_id=pure1:apikey:x"}, {"read", "pure1/static-creds/other"},
			{"read", "sys/mounts"},
		} {
			_, stderr, err := v.CLIStreams(t, []string{"VAULT_TOKEN=" + token}, args...)
			if err == nil || !strings.Contains(stderr, "permission denied") {
				t.Errorf("vault %v with the pipeline's token: err %v, stderr %q; want permission denied", args, err, stderr)
			}
		}
		for _, p := range mayRead {
			out, stderr, err := v.CLIStreams(t, []string{"VAULT_TOKEN=" + token}, "read", "-field=access_token", p)
			if err != nil {
				t.Errorf("vault read %s with the pipeline's token: %v: %s", p, err, stderr)
				continue
			}
			e.MustCallAPI(t, strings.TrimSpace(out))
		}
	}

	now := time.Now()
	t.Run("GitHub Actions", func(t *testing.T) {
		good := githubClaims(ciRepo, ciBranch, now)
		if good["aud"] != githubAud {
			t.Fatalf("aud %v, want vault-action's default %s", good["aud"], githubAud)
		}
		token, err := ciLogin(t, v, "jwt-github", ciRole, github.sign(t, good))
		if err != nil {
			t.Fatalf("a token of %s on %s: %v", ciRepo, ciBranch, err)
		}
		useToken(t, token, nil)
		look := mustJSONObject(t, mustCLIAs(t, v, token, "token", "lookup", "-format=json"))
		meta, _ := jget(look, "data", "meta").(map[string]any)
		if meta["repository"] != ciRepo || meta["actor"] != "octocat" || meta["run_id"] != "9876543210" || meta["role"] != ciRole {
			t.Errorf("the Vault token's metadata (what the audit log shows) = %v", meta)
		}
		if ttl, _ := strconv.Atoi(fmt.Sprint(jget(look, "data", "ttl"))); ttl <= 0 || ttl > 600 {
			t.Errorf("pipeline token ttl %d s, want at most 10m", ttl)
		}

		// A job with an environment gets sub repo:R:environment:E; the role
		// binds repository and ref, so it still logs in.
		env := githubClaims(ciRepo, ciBranch, now)
		env["environment"], env["sub"] = "production", "repo:"+ciRepo+":environment:production"
		if _, err := ciLogin(t, v, "jwt-github", ciRole, github.sign(t, env)); err != nil {
			t.Errorf("a job with an environment: %v", err)
		}

		expire := func(c jwt.MapClaims) {
			c["iat"], c["nbf"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		}
		for _, r := range []struct {
			name, why string // why: what Vault must say, so a refusal for another reason fails
			signer    *ciIssuer
			mutate    func(jwt.MapClaims)
		}{
			{"another repository", `claim "repository"`, github, func(c jwt.MapClaims) { mergeClaims(c, githubClaims("acme/other-repo", ciBranch, now)) }},
			{"the same name under another owner", `claim "repository"`, github, func(c jwt.MapClaims) {
				mergeClaims(c, githubClaims("mallory/storage-automation", ciBranch, now), "aud")
			}},
			{"another branch", `claim "ref"`, github, func(c jwt.MapClaims) { mergeClaims(c, githubClaims(ciRepo, "dev", now)) }},
			// Both ref and ref_type differ: Vault names whichever bound claim
			// it checks first, in map order.
			{"a tag named main", `claim "ref"|claim "ref_type"`, github, func(c jwt.MapClaims) {
				c["ref"], c["ref_type"], c["sub"] = "refs/tags/main", "tag", "repo:"+ciRepo+":ref:refs/tags/main"
			}},
			{"a pull request", `claim "ref"`, github, func(c jwt.MapClaims) {
				c["ref"], c["event_name"], c["sub"] = "refs/pull/7/merge", "pull_request", "repo:"+ciRepo+":pull_request"
			}},
			{"expired an hour ago", "token is expired", github, expire},
			{"another audience", "audience claim does not match", github, func(c jwt.MapClaims) { c["aud"] = "https://github.com/mallory" }},
			{"another issuer", "invalid issuer", github, func(c jwt.MapClaims) { c["iss"] = "https://token.actions.example.com" }},
			{"signed with another key", "no known key", stranger, func(jwt.MapClaims) {}},
		} {
			c := githubClaims(ciRepo, ciBranch, now)
			r.mutate(c)
			if _, err := ciLogin(t, v, "jwt-github", ciRole, r.signer.sign(t, c)); err == nil || !containsAny(err.Error(), r.why) {
				t.Errorf("%s: %v; want refused with %q", r.name, err, r.why)
			}
		}
		// GitHub's token is not good at GitLab's mount, and the reverse.
		if _, err := ciLogin(t, v, "jwt-gitlab", ciRole, github.sign(t, good)); err == nil || !strings.Contains(err.Error(), "no known key") {
			t.Errorf("a GitHub token at auth/jwt-gitlab: %v; want refused by the signature check", err)
		}

		// The workflow's "List arrays" step, as written, with what
		// vault-action would export.
		wf := readYAML(t, filepath.Join(root, "bootstrap", "ci", "github-actions.yml"))
		steps := wf["jobs"].(map[string]any)["arrays"].(map[string]any)["steps"].([]any)
		vaultStep := steps[0].(map[string]any)["with"].(map[string]any)
		if vaultStep["method"] != "jwt" || vaultStep["path"] != "jwt-github" || vaultStep["role"] != ciRole ||
			!strings.Contains(vaultStep["secrets"].(string), "pure1/creds/readonly access_token | PURE1_ACCESS_TOKEN") {
			t.Errorf("github-actions.yml's vault-action step does not match what setup-jwt-auth.sh made: %v", vaultStep)
		}
		access := strings.TrimSpace(mustCLIAs(t, v, token, "read", "-field=access_token", "pure1/creds/readonly"))
		runCI(t, steps[1].(map[string]any)["run"].(string), "PURE1_ACCESS_TOKEN="+access, "PURE1_API_URL="+e.URL)

		// The static variant, as the comment writes it: its secrets line.
		path, field, ok := strings.Cut(strings.TrimSpace(strings.Split(ghExample.staticLine, "|")[0]), " ")
		if !ok || !strings.HasSuffix(ghExample.staticLine, "| PURE1_ACCESS_TOKEN") {
			t.Fatalf("github-actions.yml's static variant line %q is not a vault-action secrets line (PATH KEY | VAR)", ghExample.staticLine)
		}
		read := func(t *testing.T) (string, string, error) {
			t.Helper()
			tok, err := ciLogin(t, v, "jwt-github", ciRole, github.sign(t, githubClaims(ciRepo, ciBranch, time.Now())))
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			return v.CLIStreams(t, []string{"VAULT_TOKEN=" + tok}, "read", "-field="+field, path)
		}
		staticVariant(t, root, ghExample, githubEnv, func(t *testing.T, before bool) {
			out, stderr, err := read(t)
			if before {
				if err == nil || !strings.Contains(stderr, "permission denied") || !strings.Contains(stderr, "403") {
					t.Errorf("read %s before the static variant's setup: err %v, stderr %q; want 403 permission denied, as the example warns", path, err, stderr)
				}
				return
			}
			if err != nil {
				t.Fatalf("read %s after the static variant's commands: %v: %s", path, err, stderr)
			}
			runCI(t, steps[1].(map[string]any)["run"].(string), "PURE1_ACCESS_TOKEN="+strings.TrimSpace(out), "PURE1_API_URL="+e.URL)
		})
	})

	t.Run("GitLab CI", func(t *testing.T) {
		good := gitlabClaims(ciRepo, ciBranch, gitlabAud, now)
		token, err := ciLogin(t, v, "jwt-gitlab", ciRole, gitlab.sign(t, good))
		if err != nil {
			t.Fatalf("an ID token of %s on %s: %v", ciRepo, ciBranch, err)
		}
		useToken(t, token, nil)
		meta, _ := jget(mustJSONObject(t, mustCLIAs(t, v, token, "token", "lookup", "-format=json")), "data", "meta").(map[string]any)
		if meta["project_path"] != ciRepo || meta["user_login"] != "sample-user" || meta["pipeline_id"] != "574" {
			t.Errorf("the Vault token's metadata = %v", meta)
		}

		for _, r := range []struct {
			name, why string
			mutate    func(jwt.MapClaims)
		}{
			{"another project", `claim "project_path"`, func(c jwt.MapClaims) { mergeClaims(c, gitlabClaims("acme/other-project", ciBranch, gitlabAud, now)) }},
			{"another group", `claim "project_path"`, func(c jwt.MapClaims) {
				mergeClaims(c, gitlabClaims("mallory/storage-automation", ciBranch, gitlabAud, now))
			}},
			{"another branch", `claim "ref"`, func(c jwt.MapClaims) { mergeClaims(c, gitlabClaims(ciRepo, "dev", gitlabAud, now)) }},
			{"an unprotected main", `claim "ref_protected"`, func(c jwt.MapClaims) { c["ref_protected"] = "false" }},
			{"a tag named main", `claim "ref_type"`, func(c jwt.MapClaims) {
				c["ref_type"], c["ref_path"], c["sub"] = "tag", "refs/tags/main", "project_path:"+ciRepo+":ref_type:tag:ref:main"
			}},
			{"expired an hour ago", "token is expired", func(c jwt.MapClaims) {
				c["iat"], c["nbf"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
			}},
			{"another audience", "audience claim does not match", func(c jwt.MapClaims) { c["aud"] = "https://other-vault.example.com" }},
			{"another GitLab", "invalid issuer", func(c jwt.MapClaims) { c["iss"] = "https://gitlab.example.com" }},
		} {
			c := gitlabClaims(ciRepo, ciBranch, gitlabAud, now)
			r.mutate(c)
			if _, err := ciLogin(t, v, "jwt-gitlab", ciRole, gitlab.sign(t, c)); err == nil || !containsAny(err.Error(), r.why) {
				t.Errorf("%s: %v; want refused with %q", r.name, err, r.why)
			}
		}
		if _, err := ciLogin(t, v, "jwt-gitlab", ciRole, github.sign(t, good)); err == nil || !strings.Contains(err.Error(), "no known key") {
			t.Errorf("a GitLab-shaped token signed with GitHub's key: %v; want refused by the signature check", err)
		}

		// The example job's script: lines, as written, with GitLab's
		// variables: VAULT_ID_TOKEN from id_tokens, VAULT_ADDR, PURE1_API_URL.
		job := readYAML(t, filepath.Join(root, "bootstrap", "ci", "gitlab-ci.yml"))["pure1-arrays"].(map[string]any)
		aud := job["id_tokens"].(map[string]any)["VAULT_ID_TOKEN"].(map[string]any)["aud"]
		if aud != gitlabAud {
			t.Errorf("gitlab-ci.yml id_tokens aud %v, want %s (what the role is bound to here)", aud, gitlabAud)
		}
		var lines []string
		for i, l := range job["script"].([]any) {
			line, ok := l.(string)
			if !ok {
				t.Fatalf("gitlab-ci.yml script line %d is a %T, not a string: quote it (%v)", i+1, l, l)
			}
			lines = append(lines, line)
		}
		out := runCI(t, strings.Join(lines, "\n"), "VAULT_ADDR="+v.Addr, "VAULT_ID_TOKEN="+gitlab.sign(t, good),
			"PURE1_API_URL="+e.URL, "PATH="+filepath.Dir(v.Bin)+":"+os.Getenv("PATH"))
		if !strings.Contains(out, `"total_item_count"`) {
			t.Errorf("the job's script did not list arrays:\n%s", out)
		}
		// With a refused token the job fails at login, not later.
		bad := gitlabClaims(ciRepo, "dev", gitlabAud, now)
		if out, err := runCIErr(strings.Join(lines, "\n"), "VAULT_ADDR="+v.Addr, "VAULT_ID_TOKEN="+gitlab.sign(t, bad),
			"PURE1_API_URL="+e.URL, "PATH="+filepath.Dir(v.Bin)+":"+os.Getenv("PATH")); err == nil || !strings.Contains(out, "auth/jwt-gitlab/login") {
			t.Errorf("the job's script with a dev-branch token: err %v, want it to fail at the login:\n%s", err, out)
		}

		// The static variant, as the comment writes it: its script line in
		// place of the one that reads pure1/creds/readonly.
		staticLine := strings.TrimSpace(strings.TrimPrefix(glExample.staticLine, "- "))
		replaced := 0
		var staticLines []string
		for _, l := range lines {
			if strings.Contains(l, "pure1/creds/readonly") {
				l = staticLine
				replaced++
			}
			staticLines = append(staticLines, l)
		}
		if replaced != 1 || !strings.Contains(staticLine, "pure1/static-creds/ci") {
			t.Fatalf("gitlab-ci.yml: the static variant's line %q should replace exactly one script line reading pure1/creds/readonly (found %d)", staticLine, replaced)
		}
		staticVariant(t, root, glExample, gitlabEnv, func(t *testing.T, before bool) {
			out, err := runCIErr(strings.Join(staticLines, "\n"), "VAULT_ADDR="+v.Addr, "VAULT_ID_TOKEN="+gitlab.sign(t, gitlabClaims(ciRepo, ciBranch, gitlabAud, time.Now())),
				"PURE1_API_URL="+e.URL, "PATH="+filepath.Dir(v.Bin)+":"+os.Getenv("PATH"))
			if before {
				if err == nil || !strings.Contains(out, "permission denied") || !strings.Contains(out, "pure1/static-creds/ci") {
					t.Errorf("the static job before the static variant's setup: err %v; want 403 permission denied on pure1/static-creds/ci, as the example warns:\n%s", err, out)
				}
				return
			}
			if err != nil || !strings.Contains(out, `"total_item_count"`) {
				t.Errorf("the static job after the static variant's commands: err %v; want it to list arrays:\n%s", err, out)
			}
		})
	})

	// Last, because it replaces the mounts' trusted keys with its own: the
	// script make dev prints for trying a pipeline's login locally.
	t.Run("try-ci-login.sh, as make dev prints it", func(t *testing.T) {
		for _, provider := range []string{"github", "gitlab"} {
			out := runScript(t, filepath.Join(root, "bootstrap", "ci", "try-ci-login.sh"), []string{provider}, append(vaultEnv,
				"PURE1_CI_DIR="+t.TempDir(), "PATH="+filepath.Dir(v.Bin)+":"+os.Getenv("PATH")))
			if !strings.Contains(out, "permission denied, as it should be") || !strings.Contains(out, "auth/jwt-"+provider+"/login role="+ciRole) {
				t.Errorf("try-ci-login.sh %s:\n%s", provider, out)
			}
		}
	})
}

// mergeClaims copies src's identity into c, all but the claims in keep.
func mergeClaims(c, src jwt.MapClaims, keep ...string) {
	for k, v := range src {
		if !slices.Contains(keep, k) {
			c[k] = v
		}
	}
}

func mustCLIAs(t *testing.T, v *Vault, token string, args ...string) string {
	t.Helper()
	out, stderr, err := v.CLIStreams(t, []string{"VAULT_TOKEN=" + token}, args...)
	if err != nil {
		t.Fatalf("vault %v with the pipeline's token: %v\n%s", args, err, stderr)
	}
	return out
}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s is not valid YAML: %v", path, err)
	}
	return m
}

// runCI runs a CI script with sh -e, as the runners do, and fails the test
// if it fails.
func runCI(t *testing.T, script string, env ...string) string {
	t.Helper()
	out, err := runCIErr(script, env...)
	if err != nil {
		t.Fatalf("CI script failed: %v\n%s\n---\n%s", err, script, out)
	}
	return out
}

func runCIErr(script string, env ...string) (string, error) {
	cmd := exec.Command("sh", "-ec", script)
	cmd.Env = childEnv(append([]string{"VAULT_TOKEN="}, env...)...)
	cmd.Dir = os.TempDir()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// containsAny reports whether s contains one of the |-separated alternatives.
func containsAny(s, alternatives string) bool {
	for _, a := range strings.Split(alternatives, "|") {
		if strings.Contains(s, a) {
			return true
		}
	}
	return false
}

// ciExample is what a CI example file tells its reader to run: the Vault
// side's commands ("$ " lines of its header comment, continuations joined),
// the static variant's, and the line the static variant puts in the job.
type ciExample struct {
	setup, static []string
	staticLine    string
}

// readCIExample reads the header comment of a bootstrap/ci example file.
func readCIExample(t *testing.T, path string) ciExample {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ex ciExample
	inStatic, nextIsLine := false, false
	comment := strings.Split(string(b), "\n")
	for i := 0; i < len(comment) && strings.HasPrefix(comment[i], "#"); i++ {
		text := strings.TrimSpace(strings.TrimPrefix(comment[i], "#"))
		switch {
		case strings.HasPrefix(text, "Static variant"):
			inStatic = true
		case nextIsLine:
			ex.staticLine, nextIsLine = text, false
		case strings.HasSuffix(text, "pure1/creds/readonly line:"):
			nextIsLine = true
		case strings.HasPrefix(text, "$ "):
			cmd := strings.TrimPrefix(text, "$ ")
			for strings.HasSuffix(cmd, "\\") && i+1 < len(comment) {
				i++
				cmd = strings.TrimSuffix(cmd, "\\") + strings.TrimSpace(strings.TrimPrefix(comment[i], "#"))
			}
			if inStatic {
				ex.static = append(ex.static, cmd)
			} else {
				ex.setup = append(ex.setup, cmd)
			}
		}
	}
	if len(ex.setup) == 0 || len(ex.static) == 0 || ex.staticLine == "" {
		t.Fatalf("%s: its header should give the Vault side's commands ($ lines), a Static variant paragraph with its own, and the line it reads in place of pure1/creds/readonly; got %+v", path, ex)
	}
	return ex
}

// runExample runs one command from an example's comment as written, in the
// repository's root, as an admin would.
func runExample(t *testing.T, root, command string, env ...string) string {
	t.Helper()
	cmd := exec.Command("sh", "-ec", command)
	cmd.Dir = root
	cmd.Env = childEnv(env...)
	out, err := cmd.CombinedOutput()
	t.Logf("$ %s\n%s", command, strings.TrimRight(string(out), "\n"))
	if err != nil {
		t.Fatalf("%s: %v", command, err)
	}
	return string(out)
}

// staticVariant runs the example's static variant in the order a reader
// would: the commands that make the static role, then check (before=true:
// the pipeline must still be refused, since its policy was not told), then
// the setup script's rerun, then check again (before=false: it must work).
func staticVariant(t *testing.T, root string, ex ciExample, env []string, check func(t *testing.T, before bool)) {
	t.Helper()
	var setup []string
	for _, c := range ex.static {
		if strings.Contains(c, "setup-jwt-auth.sh") {
			setup = append(setup, c)
			continue
		}
		runExample(t, root, c, env...)
	}
	if len(setup) == 0 {
		t.Fatal("the static variant does not rerun setup-jwt-auth.sh: its policy covers creds/ only, so the pipeline's read is refused with 403")
	}
	check(t, true)
	for _, c := range setup {
		runExample(t, root, c, env...)
	}
	check(t, false)
}
