package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/vmtests/internal/kernel"
)

// lock takes an exclusive lock on the cache (go test -exec starts several
// harnesses at once: one fetches the kernel or probes KVM while the others
// wait) and returns its release.
func (e *Env) lock(name string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(e.Cache, "."+name+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return func() { f.Close() }, nil
}

// setup returns the kernel to boot (fetching it if needed) and the
// accelerator (probing if needed), under the cache's lock. init is the
// static program that becomes the VM's init.
func (e *Env) setup(ctx context.Context, init string) (*kernel.Kernel, Accel, error) {
	if err := requireStatic(init); err != nil {
		return nil, Accel{}, fmt.Errorf("%s: %w (build it with CGO_ENABLED=0: it is also the VM's init)", init, err)
	}
	unlock, err := e.lock("setup")
	if err != nil {
		return nil, Accel{}, err
	}
	defer unlock()
	k, err := kernel.Get(ctx, e.Cache, os.Getenv(EnvKernel), e.Log)
	if err != nil {
		return nil, Accel{}, err
	}
	a, err := e.ChooseAccel(ctx, k, init)
	return k, a, err
}
