//go:build !linux

package guest

import (
	"fmt"
	"os"
)

// Main is the VM's init; it exists only on Linux.
func Main() {
	fmt.Fprintln(os.Stderr, "vigil-init: only runs on Linux")
	os.Exit(1)
}
