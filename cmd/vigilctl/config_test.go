package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeConfig writes a cluster key and the configuration text in a fresh
// folder and returns the configuration's path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cluster.key"), []byte(strings.Repeat("k", 48)), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const goodConfig = `cluster:
  name: test
  key_file: cluster.key
servers:
  - name: node1
    interconnects: {lan1: 198.18.0.1}
  - name: node2
    interconnects: {lan1: 198.18.0.2}
lanes:
  - name: lan1
groups:
  - name: web
    resources:
      - name: app
        type: exec
        start: /usr/local/bin/app-start
        stop: /usr/local/bin/app-stop
`

func TestConfigCheckGood(t *testing.T) {
	path := writeConfig(t, goodConfig)
	code, out, errOut := vigilctl(t, "", "config", "check", path)
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(out, "test") || !strings.Contains(out, "node2") || !strings.HasSuffix(out, "\n") {
		t.Errorf("summary lacks the cluster:\n%s", out)
	}
}

func TestConfigCheckListsEveryError(t *testing.T) {
	// Two independent mistakes on two lines: a duplicate server, and an
	// address that is not one.
	bad := strings.Replace(goodConfig, "name: node2", "name: node1", 1)
	bad = strings.Replace(bad, "lan1: 198.18.0.1", "lan1: not-an-address", 1)
	path := writeConfig(t, bad)
	code, out, errOut := vigilctl(t, "", "config", "check", path)
	if code != exitFailed || out != "" {
		t.Fatalf("exit %d, stdout %q; want 1 and nothing", code, out)
	}
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	if len(lines) < 2 {
		t.Errorf("want every error, one a line; got:\n%s", errOut)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, path+":") {
			t.Errorf("line %q does not start with %q", l, path+":")
		}
	}
}

func TestConfigCheckMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.yaml")
	code, _, errOut := vigilctl(t, "", "config", "check", path)
	if code != exitFailed || !strings.HasPrefix(errOut, "vigilctl: ") || !strings.Contains(errOut, "none.yaml") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := vigilctl(t, "", "config", "check"); code != exitUsage {
		t.Errorf("config check without a file: exit %d, want 2", code)
	}
}
