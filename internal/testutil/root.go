// Package testutil holds helpers shared by Vigil's tests.
package testutil

import (
	"os"
	"testing"
)

// RequireRoot skips a privileged test when not run as root, saying so. Under
// CI=true there are no silent skips: a privileged test that cannot run fails.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("privileged test needs root, and CI=true forbids skipping it")
	}
	t.Skip("privileged test: needs root (network namespaces, netlink, raw sockets)")
}
