package bpftest

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// RequireTCX skips t on kernels older than 6.6, which have no tcx hooks,
// saying so. On 6.6 and later it does nothing, so a tcx program that fails
// to attach there fails the test: no silent skips on kernels that should
// run it.
func RequireTCX(t testing.TB) {
	t.Helper()
	major, minor, err := KernelVersion()
	if err != nil {
		t.Fatalf("kernel version: %v", err)
	}
	if major < 6 || major == 6 && minor < 6 {
		t.Skipf("kernel %d.%d has no tcx (6.6+)", major, minor)
	}
}

// KernelVersion returns the running kernel's major and minor version.
func KernelVersion() (major, minor int, err error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return 0, 0, err
	}
	release := unix.ByteSliceToString(u.Release[:])
	if _, err := fmt.Sscanf(release, "%d.%d", &major, &minor); err != nil {
		return 0, 0, fmt.Errorf("parse release %q: %w", release, err)
	}
	return major, minor, nil
}
