// Package guest is PID 1 of a test VM: it mounts the kernel's file
// systems, loads the modules the manifest names, brings up lo (and, in
// two-VM mode, eth0), runs the test binaries one by one as its children,
// streams their output to the host and reports their exit status, then
// powers the VM off. See package proto for what it says to the host.
//
// The harness binaries carry this code and become it when the kernel
// starts them as /init: call IsInit first thing in main.
package guest

import "os"

// IsInit reports whether this process is a VM's init (PID 1).
func IsInit() bool { return os.Getpid() == 1 }
