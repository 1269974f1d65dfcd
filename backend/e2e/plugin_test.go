package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPluginReloadAndUpgrade reloads the plugin, registers it again, and
// upgrades the mount to a new version (v0.2.1, built here into the plugin
// directory under another file name) and back, the way an operator rolls
// out a new plugin binary. Through all of it the config keeps its key (same
// fingerprint) and credentials keep working.
func TestPluginReloadAndUpgrade(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	e := StartEmulator(t)
	v := StartVaultDev(t)
	boot := Bootstrap(t, v, e)

	// Build the next version while Vault serves the current one.
	const next = "v0.2.1"
	nextFile := PluginName + "-" + next
	built := make(chan error, 1)
	var buildOut []byte
	root := RepoRoot(t)
	go func() {
		cmd := exec.Command("go", "build", "-trimpath",
			"-ldflags", "-s -w -X "+ModulePath+"/backend.Version="+next,
			"-o", filepath.Join(v.PluginDir, nextFile), "./cmd/vault-plugin-secrets-pure1")
		cmd.Dir = root
		cmd.Env = append(childEnv(), "CGO_ENABLED=0")
		var err error
		buildOut, err = cmd.CombinedOutput()
		built <- err
	}()

	works := func(t *testing.T, when string) {
		t.Helper()
		cfg := v.MustCLIJSON(t, "read", "-format=json", "pure1/config/main")
		if got := jstr(t, cfg, "data", "public_key_fingerprint"); got != boot.Fingerprint {
			t.Fatalf("%s: config fingerprint %s, was %s: the key was lost", when, got, boot.Fingerprint)
		}
		if got := jget(cfg, "data", "app_id"); got != boot.AppID {
			t.Fatalf("%s: app_id %v, was %s", when, got, boot.AppID)
		}
		e.MustCallAPI(t, strings.TrimSpace(v.MustCLI(t, "read", "-field=access_token", "pure1/creds/readonly")))
		if _, err := v.CLI(t, "read", "-field=jwt", "pure1/creds/readonly-jwt"); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
	}
	running := func(t *testing.T) (version, sha string) {
		t.Helper()
		m := v.MustCLIJSON(t, "secrets", "list", "-format=json")
		return jstr(t, m, Mount+"/", "running_plugin_version"), jstr(t, m, Mount+"/", "running_sha256")
	}

	t.Run("reload by plugin name", func(t *testing.T) {
		before := v.PluginProcesses(t)
		if len(before) == 0 {
			t.Fatal("no plugin process runs under Vault")
		}
		out := v.MustCLI(t, "plugin", "reload", "-plugin", PluginName)
		if !strings.Contains(out, "Success") {
			t.Errorf("vault plugin reload printed %q", out)
		}
		works(t, "after vault plugin reload -plugin")
		after := v.PluginProcesses(t)
		for pid := range after {
			if _, ok := before[pid]; ok {
				t.Errorf("plugin process %d survived the reload (before %v, after %v)", pid, before, after)
			}
		}
	})

	// Through the HTTP API: in the root namespace, Vault 1.21's
	// `vault plugin reload -mounts` calls sys/plugins/reload/unknown (404).
	t.Run("reload by mount", func(t *testing.T) {
		status, body := v.HTTP(t, "PUT", "sys/plugins/reload/backend", map[string]any{"mounts": []string{Mount + "/"}})
		if status != 200 && status != 204 {
			t.Fatalf("PUT /v1/sys/plugins/reload/backend: %d %v", status, body)
		}
		works(t, "after reloading the mount")
	})

	t.Run("register again", func(t *testing.T) {
		v.RegisterPlugin(t, PluginName, v.PluginSHA256, v.PluginVersion)
		v.MustCLI(t, "plugin", "reload", "-plugin", PluginName)
		works(t, "after registering the same plugin again")
		if ver, sha := running(t); ver != v.PluginVersion || sha != v.PluginSHA256 {
			t.Errorf("running %s %s, want %s %s", ver, sha, v.PluginVersion, v.PluginSHA256)
		}
	})

	t.Run("upgrade to "+next, func(t *testing.T) {
		select {
		case err := <-built:
			if err != nil {
				t.Fatalf("go build of %s: %v\n%s", next, err, buildOut)
			}
		case <-time.After(5 * time.Minute):
			t.Fatal("go build of the new version took more than 5 minutes")
		}
		sha := FileSHA256(t, filepath.Join(v.PluginDir, nextFile))
		v.RegisterPlugin(t, nextFile, sha, next)
		info := v.MustCLIJSON(t, "plugin", "info", "-format=json", "-version="+next, "secret", PluginName)
		if got := jget(info, "command"); got != nextFile {
			t.Errorf("plugin info %s: command %v, want %s", next, got, nextFile)
		}
		// Both versions are in the catalog.
		list := v.MustCLI(t, "plugin", "list", "-detailed", "secret")
		if !strings.Contains(list, v.PluginVersion) || !strings.Contains(list, next) {
			t.Errorf("vault plugin list does not show both versions:\n%s", list)
		}

		v.MustCLI(t, "secrets", "tune", "-plugin-version="+next, Mount+"/")
		v.MustCLI(t, "plugin", "reload", "-plugin", PluginName)
		if ver, runSHA := running(t); ver != next || runSHA != sha {
			t.Fatalf("after tune and reload the mount runs %s (%s), want %s (%s)", ver, runSHA, next, sha)
		}
		works(t, "after the upgrade to "+next)
		procs := v.PluginProcesses(t)
		found := false
		for _, cmd := range procs {
			found = found || filepath.Base(cmd) == nextFile
		}
		if !found {
			t.Errorf("no %s process runs; plugin processes: %v", nextFile, procs)
		}
	})

	t.Run("downgrade back", func(t *testing.T) {
		v.MustCLI(t, "secrets", "tune", "-plugin-version="+v.PluginVersion, Mount+"/")
		v.MustCLI(t, "plugin", "reload", "-plugin", PluginName)
		if ver, _ := running(t); ver != v.PluginVersion {
			t.Fatalf("after the downgrade the mount runs %s, want %s", ver, v.PluginVersion)
		}
		works(t, "after the downgrade")
	})
}
