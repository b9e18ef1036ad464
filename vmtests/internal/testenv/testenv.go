// Package testenv holds helpers for the harness's own tests.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// RequireTool returns the path of the host program name that a test
// needs. When it is missing the test skips, saying so, or fails under
// CI=true, where scripts/install-deps.sh must have installed it.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing (scripts/install-deps.sh installs it), and CI=true forbids skipping", name)
	}
	t.Skipf("needs %s (scripts/install-deps.sh installs it)", name)
	return ""
}
