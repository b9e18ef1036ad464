// Package vipacct counts the traffic each virtual IP receives, with a TC
// program (bpf/vipacct.c) on an interface's tcx ingress hook: packets and
// bytes per destination VIP, and the monotonic time of the first packet
// after the daemon armed the VIP, which is the proof that clients' traffic
// reached a new owner after a failover.
//
// The program never drops or redirects anything. It is attached through a
// bpf_link, never pinned, so it goes away with Close or with the process.
// It needs tcx (Linux 6.6); Attach returns an error wrapping
// ErrNotSupported on older kernels or without CAP_BPF and CAP_NET_ADMIN.
//
// The package is Linux-only; on other systems it holds nothing but this
// documentation.
package vipacct
