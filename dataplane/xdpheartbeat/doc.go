// Package xdpheartbeat loads and drives Vigil's XDP heartbeat fast path
// (bpf/heartbeat.c): a program on every interconnect interface that answers
// heartbeat probes in the kernel and timestamps replies to the daemon's
// probes, speaking exactly the wire format of dataplane/heartbeat.
//
// The responder side answers an authentic probe from a cluster member with
// XDP_TX, stamping the reply with flag bit 0 (heartbeat.FlagKernelReply),
// the kernel's receive time and the daemon's liveness epoch, and copies the
// probe to a ring buffer the daemon reads with ReadProbe. The prober side
// matches replies against the probes the daemon registered with Outstanding
// and keeps, per peer and lane, the kernel receive time of the last reply,
// its round-trip time and when the peer's epoch last changed (PeerLane);
// the reply then goes on to the daemon's socket as usual.
//
// The program and its maps belong to the Fastpath through bpf_link, never
// pinned: when the daemon exits or dies they vanish, and the peers' probes
// stop being answered. A daemon that is alive but stalled keeps being
// answered, with a frozen epoch. Times the kernel records are
// CLOCK_MONOTONIC; Now reads the same clock.
//
// Load returns an error wrapping ErrNotSupported when the kernel or the
// process's privileges cannot run the fast path (no CAP_BPF, a kernel older
// than 5.18); the daemon then serves the same wire format from userspace.
//
// The package is Linux-only; on other systems it holds nothing but this
// documentation.
//
// # veth and XDP_TX
//
// On a veth pair, native (driver) mode XDP_TX hands the reply to the other
// end's NAPI instance, and on Linux 6.18 that end only takes it if it has
// an XDP program attached itself (one that passes everything will do, see
// internal/bpftest.XDPPass); otherwise the kernel drops the reply silently
// while counting it as sent. Enabling GRO on the other end (ethtool -K gro
// on), which gives a veth end a NAPI instance for ordinary traffic, did not
// help. Generic (SKB) mode XDP_TX goes through the other end's normal
// receive path and always works. Load therefore picks generic mode on veth
// unless Config.Mode asks for native. Real interconnects (ENA, virtio-net,
// mlx5) transmit native XDP_TX frames themselves.
package xdpheartbeat
