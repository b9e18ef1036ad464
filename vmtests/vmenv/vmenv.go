// Package vmenv tells a test whether it runs inside a VM of the vmtests
// harness, and which VM of a multi-VM topology it is in.
package vmenv

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
)

// Environment variables the VM's init sets for every test.
const (
	// EnvVM is "1" inside a test VM.
	EnvVM = "VIGIL_VM"
	// EnvIndex is the VM's index, from 0.
	EnvIndex = "VIGIL_VM_INDEX"
	// EnvCount is the number of VMs in the topology.
	EnvCount = "VIGIL_VM_COUNT"
)

// InVM reports whether the test runs inside a test VM.
func InVM() bool { return os.Getenv(EnvVM) == "1" }

// Index is this VM's index in its topology, 0 outside a VM.
func Index() int { n, _ := strconv.Atoi(os.Getenv(EnvIndex)); return n }

// Count is the number of VMs in the topology, 0 outside a VM.
func Count() int { n, _ := strconv.Atoi(os.Getenv(EnvCount)); return n }

// Address is VM i's eth0 address in a multi-VM topology: the VMs share
// 198.18.250.0/24, VM i holding .i+1.
func Address(i int) netip.Prefix {
	return netip.MustParsePrefix(fmt.Sprintf("198.18.250.%d/24", i+1))
}
