//go:build linux && !vmtest

package nbd

import (
	"context"
	"errors"
	"os"
	"testing"
)

// TestNoDriver runs on the host, whose kernel has no nbd driver: Expose,
// List and CleanUp say so with ErrNoDriver. The VM suite "nbd" (build tag
// vmtest) tests them against the driver.
func TestNoDriver(t *testing.T) {
	if _, err := os.Stat("/sys/module/nbd"); err == nil {
		t.Skip("this kernel has the nbd driver loaded; the VM suite nbd (make vmtest VMTEST_FLAGS=nbd) tests Expose")
	}
	ctx := context.Background()
	if _, err := Expose(ctx, newMemDevice(1<<20), Options{Index: AnyIndex}); !errors.Is(err, ErrNoDriver) {
		t.Fatalf("Expose: %v, want ErrNoDriver", err)
	}
	if _, err := Expose(ctx, newMemDevice(1<<20), Options{Index: 3}); !errors.Is(err, ErrNoDriver) {
		t.Fatalf("Expose nbd3: %v, want ErrNoDriver", err)
	}
	if _, err := List(); !errors.Is(err, ErrNoDriver) {
		t.Fatalf("List: %v, want ErrNoDriver", err)
	}
	if err := CleanUp(ctx, 0); !errors.Is(err, ErrNoDriver) {
		t.Fatalf("CleanUp: %v, want ErrNoDriver", err)
	}
	if _, err := CleanUpBackend(ctx, "vigil-test"); !errors.Is(err, ErrNoDriver) {
		t.Fatalf("CleanUpBackend: %v, want ErrNoDriver", err)
	}
}
