// Package harness runs Go test binaries inside VMs booted from Debian's
// cloud kernel, for make vmtest (RunSuites, with the suites of Suites) and
// for go test -exec (Exec).
//
// A boot goes: build the test binaries on the host (go test -c, static)
// and the programs they start (vigild); fetch the kernel package once
// (package kernel); resolve the kernel modules the packages need with
// their dependencies (package kmod); write an initramfs (package
// initramfs) holding this very program as /init, busybox, the host tools
// the tests run with their shared libraries, the modules, the binaries and
// a manifest per VM (package proto); probe KVM once per host boot and fall
// back to TCG; boot qemu (package qemu) and read the guest's two
// virtio-serial ports: the tests' output, byte for byte, and their exit
// statuses; kill a VM past its deadline and keep its console log.
package harness
