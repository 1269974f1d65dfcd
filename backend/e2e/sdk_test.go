package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// EnvPython is the interpreter that runs Pure's SDK: Debian's, whose
// python3-* packages scripts/install-sdk-deps.sh installs.
const EnvPython = "PURE1_PYTHON"

func pythonBin() string {
	if p := os.Getenv(EnvPython); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

// installSDK runs scripts/install-sdk-deps.sh, which installs the SDK's
// Debian dependencies when missing and unpacks the SDK into .cache/, and
// returns the directory to put on PYTHONPATH. It fails the test, never
// skips it: a machine that cannot run the SDK must not look green.
func installSDK(t *testing.T) string {
	t.Helper()
	script := filepath.Join(RepoRoot(t), "scripts", "install-sdk-deps.sh")
	cmd := exec.Command(script)
	cmd.Env = childEnv(EnvPython + "=" + pythonBin())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("Pure's SDK cannot run here: %s: %v\n%s%s", script, err, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := lines[len(lines)-1]
	if _, err := os.Stat(filepath.Join(dir, "pypureclient", "pure1", "__init__.py")); err != nil {
		t.Fatalf("install-sdk-deps.sh printed %q, which holds no pypureclient.pure1: %v", dir, err)
	}
	return dir
}

// sdkRun is one run of bootstrap/sdk-list-arrays.py.
type sdkRun struct {
	stdout, stderr string
	err            error
	dir            string // its working directory
	took           time.Duration
}

// names are the array names the script printed, one per stdout line.
func (r sdkRun) names() []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if l != "" {
			out = append(out, strings.SplitN(l, "\t", 2)[0])
		}
	}
	return out
}

func runSDKExample(t *testing.T, sdkDir string, env ...string) sdkRun {
	t.Helper()
	cmd := exec.Command(pythonBin(), filepath.Join(RepoRoot(t), "bootstrap", "sdk-list-arrays.py"))
	cmd.Env = childEnv(append([]string{"PYTHONPATH=" + sdkDir}, env...)...)
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	return sdkRun{stdout: stdout.String(), stderr: stderr.String(), err: err, dir: cmd.Dir, took: time.Since(start)}
}

// TestSDK runs Pure's own Python SDK (py-pure-client 1.90, the Pure1
// client) for real, against `make dev`: scripts/dev.sh starts the emulator
// and Vault and bootstraps them, and the SDK, given only Vault's JWT in
// PURE1_ID_TOKEN, exchanges it itself and lists the arrays page by page.
// The command `make dev` prints for it is run as printed.
func TestSDK(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	root := RepoRoot(t)
	start := time.Now()
	sdkDir := installSDK(t)
	t.Logf("install-sdk-deps.sh: %v", time.Since(start).Round(time.Millisecond))

	devDir := t.TempDir()
	env := []string{
		"PURE1_DEV_DIR=" + devDir, "PURE1_BIN_DIR=" + BinDir(t), "VAULT_BIN=" + VaultBin(t),
		"VERSION=" + PluginVersion(), "NO_COLOR=1", "DEV_DETACH=1",
	}
	t.Cleanup(func() { runScriptErr(t, filepath.Join(root, "scripts", "dev-stop.sh"), nil, env) })
	devOut := runScript(t, filepath.Join(root, "scripts", "dev.sh"), nil, env)

	envFile := filepath.Join(devDir, "env")
	dv := AttachVault(t, envFileValue(t, envFile, "VAULT_ADDR"), "root")
	emuURL := envFileValue(t, envFile, "PURE1_EMULATOR_ADDR")
	emu := AttachEmulator(emuURL)

	// What Pure1 (the emulator) itself lists, asked with an access token.
	listed := emu.MustCallAPI(t, strings.TrimSpace(dv.MustCLI(t, "read", "-field=access_token", "pure1/creds/readonly")))
	var want []string
	for _, it := range listed["items"].([]any) {
		want = append(want, it.(map[string]any)["name"].(string))
	}
	if len(want) < 3 {
		t.Fatalf("make dev's emulator lists %d arrays; want 3 so that a page of 2 makes the SDK follow a continuation token", len(want))
	}

	jwt := strings.TrimSpace(dv.MustCLI(t, "read", "-field=jwt", "pure1/creds/readonly-jwt"))

	t.Run("Vault's JWT as PURE1_ID_TOKEN, every API version", func(t *testing.T) {
		for _, version := range []string{"1.5", "1.0"} {
			r := runSDKExample(t, sdkDir, "PURE1_ID_TOKEN="+jwt, "PURE1_API_URL="+emuURL,
				"PURE1_PAGE_SIZE=2", "PURE1_API_VERSION="+version)
			t.Logf("API %s: SDK run took %v; stderr: %s", version, r.took.Round(time.Millisecond), strings.TrimSpace(r.stderr))
			if r.err != nil {
				t.Fatalf("API %s: the SDK failed with Vault's JWT: %v\nstdout:\n%s\nstderr:\n%s", version, r.err, r.stdout, r.stderr)
			}
			if !slices.Equal(r.names(), want) {
				t.Errorf("API %s: the SDK listed %v, the emulator has %v", version, r.names(), want)
			}
			pages := (len(want) + 1) / 2
			if !strings.Contains(r.stderr, "in "+strconv.Itoa(pages)+" page(s)") {
				t.Errorf("API %s: want %d pages of 2 (continuation tokens followed), stderr: %s", version, pages, r.stderr)
			}
			// The SDK writes its access token into the working directory; the
			// example keeps it in a private directory it removes.
			if left, _ := filepath.Glob(filepath.Join(r.dir, "*access_token*")); len(left) > 0 {
				t.Errorf("the SDK left %v in the working directory", left)
			}
		}
	})

	t.Run("a JWT Pure1 does not accept is refused", func(t *testing.T) {
		// One signature character changed (not the last, whose low bits are
		// padding): a well-formed JWT whose signature does not verify.
		i := len(jwt) - 10
		swap := byte('A')
		if jwt[i] == 'A' {
			swap = 'B'
		}
		bad := jwt[:i] + string(swap) + jwt[i+1:]
		r := runSDKExample(t, sdkDir, "PURE1_ID_TOKEN="+bad, "PURE1_API_URL="+emuURL)
		if r.err == nil || !strings.Contains(r.stderr, "Pure1 refused the JWT") || r.stdout != "" {
			t.Errorf("a broken JWT: err %v, stdout %q, stderr %q; want exit 1 and Pure1's refusal", r.err, r.stdout, r.stderr)
		}
	})

	// purestorage.pure1's modules require app_id and key_file and call
	// pure1.Client(app_id=..., private_key_file=...) (plugins/module_utils/
	// pure1.py); the SDK then takes id_token from PURE1_ID_TOKEN, and an
	// id_token overrides the key, which is never opened. The README's
	// Ansible example rests on that: this is that call, without Ansible.
	t.Run("the Ansible collection's SDK call, with PURE1_ID_TOKEN", func(t *testing.T) {
		const ansibleCall = `
import os, sys
import pypureclient.pure1.client as entry
fixed = entry.create_transport_config
def elsewhere(target, configuration, ssl_cert, verify_ssl):
    cfg = fixed(target=target, configuration=configuration, ssl_cert=ssl_cert, verify_ssl=verify_ssl)
    cfg.host = os.environ["PURE1_API_URL"]
    return cfg
entry.create_transport_config = elsewhere
os.chdir(sys.argv[1])
from pypureclient import pure1
c = pure1.Client(app_id="pure1:apikey:placeholder", private_key_file="/nonexistent/pure1-key.pem")
r = c.get_arrays()
print(r.status_code, r.total_item_count)
`
		cmd := exec.Command(pythonBin(), "-c", ansibleCall, t.TempDir())
		cmd.Env = childEnv("PYTHONPATH="+sdkDir, "PURE1_ID_TOKEN="+jwt, "PURE1_API_URL="+emuURL)
		out, err := cmd.CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != "200 "+strconv.Itoa(len(want)) {
			t.Errorf("pure1.Client(app_id, private_key_file) with PURE1_ID_TOKEN: %v\n%s\nwant \"200 %d\"", err, out, len(want))
		}
	})

	t.Run("the command make dev prints, as printed", func(t *testing.T) {
		var cmdLines []string
		lines := strings.Split(devOut, "\n")
		for i, l := range lines {
			if strings.HasPrefix(strings.TrimSpace(l), "PURE1_ID_TOKEN=") {
				cmdLines = []string{strings.TrimSpace(l)}
				for j := i; strings.HasSuffix(lines[j], `\`) && j+1 < len(lines); j++ {
					cmdLines = append(cmdLines, strings.TrimSpace(lines[j+1]))
				}
				break
			}
		}
		if cmdLines == nil {
			t.Fatalf("make dev does not print the SDK command:\n%s", devOut)
		}
		command := strings.Join(cmdLines, "\n")
		// The printed command is for the repository root; .cache/py-pure-client
		// there is what install-sdk-deps.sh filled, unless PURE1_SDK_DIR moved it.
		if filepath.Clean(sdkDir) != filepath.Join(root, ".cache", "py-pure-client") {
			t.Skipf("PURE1_SDK_DIR moved the SDK to %s; the printed command expects .cache/py-pure-client", sdkDir)
		}
		sh := exec.Command("bash", "-c", "set -euo pipefail; source \"$1\"; "+command, "bash", envFile)
		sh.Dir = root
		sh.Env = childEnv(EnvPython + "=" + pythonBin())
		var stdout, stderr bytes.Buffer
		sh.Stdout, sh.Stderr = &stdout, &stderr
		if err := sh.Run(); err != nil {
			t.Fatalf("%s\nfailed: %v\n%s%s", command, err, stdout.String(), stderr.String())
		}
		got := sdkRun{stdout: stdout.String()}.names()
		if !slices.Equal(got, want) {
			t.Errorf("%s\nlisted %v, want %v", command, got, want)
		}
	})
}
