package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestClusterUpgradeFromLastRelease (PURE1_CLUSTER=1, make test-cluster) is
// TestUpgradeFromLastRelease on the 3-node Raft cluster of
// scripts/cluster.sh, started with the last release's plugin
// (scripts/build-old-plugin.sh) and filled through it. The upgrade goes node
// by node while 6 readers read every credential round-robin through all three
// nodes over HTTP:
//
//  1. the new binary is copied into every node's plugin directory: Vault
//     runs a plugin from the plugin directory of whichever node is active;
//  2. it is registered once and the mount tuned to it once, through the
//     active node: the catalog and the mount table live in Raft storage;
//  3. `vault plugin reload` is sent through each node, the standbys first,
//     then the active node. Without performance standbys (Vault Enterprise)
//     a standby runs no plugin and forwards the reload to the active node,
//     which restarts the plugin each time.
//
// Every config, role, static role and static token then reads back through
// every node as the release stored it, every credential works through every
// node, and no read failed. Last, `vault operator step-down`: the next
// active node starts the new version from its own plugin directory and
// serves the same state (readers stopped: the handoff's brief refusals are
// TestCluster's subject).
func TestClusterUpgradeFromLastRelease(t *testing.T) {
	if os.Getenv("PURE1_CLUSTER") != "1" {
		t.Skip("set PURE1_CLUSTER=1 (make test-cluster) to run the 3-node Raft cluster tests")
	}
	testStart := time.Now()
	old := buildOldRelease(t)
	nextBin, next := nextBuild(t, old)
	emu := StartEmulator(t, "-quiet")
	arr := StartArrayEmulator(t, "-quiet")

	// scripts/cluster.sh installs and registers the plugin of PURE1_BIN_DIR
	// under VERSION; startRaftCluster passes the harness's BinDir and
	// PluginVersion. Both point at the release for the start only (this test
	// is not parallel, so the environment is its own).
	t.Setenv(EnvVaultBin, VaultBin(t))
	t.Setenv(EnvBinDir, filepath.Dir(old.Bin))
	t.Setenv(EnvPluginVersion, old.Version)
	c := startRaftCluster(t)
	leader := c.waitActive(t, 30*time.Second, 0)
	var standbys []int
	for _, n := range c.nodes() {
		if n != leader {
			standbys = append(standbys, n)
		}
	}
	nodes := []*Vault{c.node[1], c.node[2], c.node[3]}
	for _, n := range c.nodes() {
		c.waitMountVersion(t, n, old.Version, old.SHA256, 30*time.Second)
	}
	t.Logf("cluster up with %s in %s; node%d is active", old.Version, c.startTime.Round(time.Second), leader)

	fillStart := time.Now()
	s := fill(t, c.node[leader], emu, arr)
	s.record(t, c.node[leader])
	s.mustCredsWork(t, "on "+old.Version, nodes...)
	t.Logf("filled through %s in %s", old.Version, time.Since(fillStart).Round(time.Millisecond))

	// ---- node by node ------------------------------------------------------------------------
	nextCmd := PluginName + "-" + next
	nextSHA := FileSHA256(t, nextBin)
	steps := map[string]time.Duration{}
	timed := func(name string, f func()) {
		began := time.Now()
		f()
		steps[name] += time.Since(began)
	}
	up := s.through(t, "cluster upgrade "+old.Version+" -> "+next, 6, nodes, func() {
		timed("copy", func() {
			for _, n := range c.nodes() {
				copyFile(t, nextBin, filepath.Join(c.dir, fmt.Sprintf("node%d", n), "plugins", nextCmd), 0o755)
			}
		})
		timed("register+tune", func() {
			registerPlugin(t, c.node[leader], nextCmd, nextSHA, next)
			c.node[leader].MustCLI(t, "secrets", "tune", "-plugin-version="+next, Mount+"/")
		})
		for _, n := range append(append([]int{}, standbys...), leader) {
			timed("reloads", func() {
				out := c.node[n].MustCLI(t, "plugin", "reload", "-type=secret", "-plugin="+PluginName)
				t.Logf("plugin reload through node%d: %s; node%d (active) now runs %v", n, strings.TrimSpace(out), leader, c.pluginProcesses(t, leader))
			})
		}
	})
	for _, n := range c.nodes() {
		c.waitMountVersion(t, n, next, nextSHA, 30*time.Second)
	}
	c.checkPluginProcesses(t, leader, nextCmd)
	for _, n := range c.nodes() {
		s.mustReadBack(t, c.node[n], fmt.Sprintf("after the upgrade, through node%d", n), nil)
	}
	s.mustCredsWork(t, "after the upgrade", nodes...)

	// ---- the next active node runs it from its own plugin directory ------------------------
	handoffStart := time.Now()
	c.node[leader].MustCLI(t, "operator", "step-down")
	nextActive := c.waitActive(t, 60*time.Second, leader)
	for _, n := range c.nodes() {
		eventually(t, 60*time.Second, 200*time.Millisecond, fmt.Sprintf("creds through node%d after the step-down", n), func() (bool, string) {
			err := s.checkCred(context.Background(), c.node[n], s.roles[0], true)
			return err == nil, fmt.Sprint(err)
		})
	}
	handoff := time.Since(handoffStart)
	c.waitMountVersion(t, nextActive, next, nextSHA, 30*time.Second)
	c.checkPluginProcesses(t, nextActive, nextCmd)
	s.mustReadBack(t, c.node[nextActive], fmt.Sprintf("after the step-down, through node%d (active)", nextActive), nil)
	s.mustCredsWork(t, "after the step-down", nodes...)

	t.Logf("SUMMARY cluster upgrade: %s (%s) -> %s node by node (copy to 3 nodes %s, register+tune %s, 3 reloads %s): %s; "+
		"step-down node%d -> node%d serving %s after %s; whole test %s",
		old.Version, old.Commit[:7], next, steps["copy"].Round(time.Millisecond), steps["register+tune"].Round(time.Millisecond),
		steps["reloads"].Round(time.Millisecond), up, leader, nextActive, next, handoff.Round(time.Millisecond), time.Since(testStart).Round(time.Second))
}

// checkPluginProcesses checks that node n (the active one) runs the plugin
// from command and no other build of it, and logs which plugin processes
// the other nodes run (none, without performance standbys).
func (c *raftCluster) checkPluginProcesses(t *testing.T, n int, command string) {
	t.Helper()
	for _, m := range c.nodes() {
		var plugins []string
		for _, p := range c.pluginProcesses(t, m) {
			plugins = append(plugins, strings.SplitN(p, " ", 2)[0])
		}
		if m == n {
			if len(plugins) != 1 || plugins[0] != command {
				t.Errorf("node%d (active) runs plugin processes %v, want [%s]", m, plugins, command)
			}
			continue
		}
		t.Logf("node%d (standby) runs plugin processes %v", m, plugins)
	}
}

// pluginProcesses lists node n's plugin processes as "command (pid N)".
func (c *raftCluster) pluginProcesses(t *testing.T, n int) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("node%d", n), "vault.pid"))
	if err != nil {
		t.Fatalf("node%d: %v", n, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("node%d's vault.pid: %v", n, err)
	}
	var out []string
	for p, cmd := range groupMembers(pid) {
		if strings.HasPrefix(filepath.Base(cmd), PluginName) {
			out = append(out, fmt.Sprintf("%s (pid %d)", filepath.Base(cmd), p))
		}
	}
	sort.Strings(out)
	return out
}
