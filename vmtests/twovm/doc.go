// Package twovm holds the VM suite "two-vm": two VMs, two kernels, joined
// by qemu's -netdev socket, ping each other and run vigild with the
// kernel-answered heartbeat between them. The test is built only with the
// tag vmtest, which the VM harness sets; outside the two-VM topology it
// skips, saying so.
package twovm
