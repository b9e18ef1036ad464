// Command vigil-vmexec runs a Go test binary in a VM booted from Debian's
// cloud kernel, for go test -exec:
//
//	go test -exec "$(pwd)/bin/vigil-vmexec" ./dataplane/xdpheartbeat/
//
// The binary's stdout and stderr come back unchanged (go test -json works)
// and its exit status is vigil-vmexec's. The package's kernel modules,
// tools and helper programs come from the suite definitions in
// vmtests/internal/harness. Build it with CGO_ENABLED=0 (make vmtest
// does): the same binary is the VM's init.
//
// Environment: VIGIL_VMTEST_CACHE (cache directory), VIGIL_VMTEST_KERNEL
// (kernel package), VIGIL_VMTEST_ACCEL (kvm or tcg, no probe),
// VIGIL_VMTEST_CONSOLE=1 (copy the serial console to stderr).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigil-ha/vigil/vmtests/internal/guest"
	"github.com/vigil-ha/vigil/vmtests/internal/harness"
)

func main() {
	if guest.IsInit() {
		guest.Main()
	}
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "-help" || os.Args[1] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: vigil-vmexec TEST-BINARY [ARGS...]   (go test -exec vigil-vmexec ./pkg)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cwd, err := os.Getwd()
	if err != nil {
		fail(err)
	}
	env, err := harness.NewEnv(cwd, os.Stderr)
	if err != nil {
		fail(err)
	}
	code, err := env.Exec(ctx, os.Args[1], os.Args[2:], cwd, os.Stdout, os.Stderr)
	if err != nil {
		fail(err)
	}
	stop()
	os.Exit(code)
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "vigil-vmexec: %v\n", err)
	os.Exit(1)
}
