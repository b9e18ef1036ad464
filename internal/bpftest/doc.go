// Package bpftest holds eBPF helpers for Vigil's privileged tests: a TC
// program that drops every packet of an interface (DropAll), standing in for
// a lost link where the kernel has no netem, and an XDP program that passes
// every packet (XDPPass), which gives a veth end the NAPI instance that
// native XDP_TX on its peer needs. Everything is attached through bpf_link
// and goes away with the returned io.Closer or with the process.
//
// The package is Linux-only; on other systems it holds nothing but this
// documentation.
package bpftest
