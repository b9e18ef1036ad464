// Package twovm holds the VM suite "two-vm": two VMs, two kernels, joined
// by qemu's -netdev socket, ping each other and run vigild with the
// kernel-answered heartbeat between them. Outside that topology the test
// skips, saying so.
package twovm
