//go:build linux && !vmtest

package main

import (
	"os"
	"os/exec"
	"testing"
)

// requireTool returns the path of a host program a test runs (Debian's
// prometheus package gives prometheus and promtool; make deps installs
// it). Without it the test skips, or fails under CI=true. These tests are
// left out of the VM suites (build tag vmtest), whose image has none of
// these programs.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found (make deps installs it), and CI=true forbids skipping", name)
	}
	t.Skipf("%s not found: run make deps", name)
	return ""
}

// startWith is testCluster.start with vigild run by the wrapper command
// (none if empty), with more flags.
func (c *testCluster) startWith(i int, cfg string, wrapper []string, flags ...string) {
	c.t.Helper()
	args := append([]string{"netns", "exec", c.nodes[i].Name()}, wrapper...)
	args = append(args, vigildBin, "-config", cfg, "-server", c.names[i], "-socket", c.socket(i), "-log-level", "debug")
	args = append(args, flags...)
	cmd := exec.Command("ip", args...)
	buf := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start vigild %s: %v", c.names[i], err)
	}
	c.mu.Lock()
	c.procs[i], c.logs[i] = cmd, buf
	c.mu.Unlock()
}
