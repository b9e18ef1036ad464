// Command benchheartbeat measures how fast Vigil's heartbeat detects a dead
// daemon and how well it tells a stalled daemon from a dead one, beside
// keepalived (VRRPv3) measured in the same run on the same topology: two
// node namespaces on a bridge in a switch namespace, one lane on
// 198.18.0.0/24 and the floating IP 198.18.0.100/24 on each node's eth0.
//
//   - kill-to-takeover: SIGKILL the active node's daemon, time from just
//     before kill(2) until the floating IP is bound on the standby (its
//     RTM_NEWADDR, read from a netlink subscription inside the standby's
//     namespace), for Vigil with the eBPF heartbeat, Vigil with the
//     userspace heartbeat (both with the fast profile) and keepalived
//     (parent and VRRP child killed together). Between trials the killed
//     daemon is restarted and the group moved back (vigilctl group move).
//   - false failovers while the daemon of the node holding the floating IP
//     is SIGSTOPped for 150 ms once a second (following the group if it
//     moves), eBPF against userspace: every RTM_NEWADDR of the floating IP
//     is a takeover, and each is classed by cause.
//   - heartbeat round-trip times under that load, seen from the standby
//     (the prober of the stopped node): on the wire, by capturing its
//     probes and the replies on its eth0 (AF_PACKET, kernel timestamps,
//     matched by nonce, late replies included), and from the daemon's own
//     vigil_lane_rtt_seconds histogram (bucket deltas between scrapes).
//
// It runs as root (`make bench-heartbeat`, or go run from the module) and
// removes every namespace and process it made, also on failure or
// interrupt. It prints each variant's n, p50, p90, p99 and max and ends
// with summary lines starting with "bench-heartbeat:".
//
// Flags: -trials (20) and -stall-seconds (300) size the run; -quick is 3
// trials and 20 s stall phases; -phases runs a subset; -keep keeps the work
// directory with configurations and daemon logs; -v prints progress.
package main
