// Package drbd holds the VM suite "drbd": the replication baseline Vigil's
// mirror disk is measured against, DRBD 8.4 (the drbd.ko of the VM's
// Debian 6.1 kernel, driven with drbd-utils' 8.4 tools drbdsetup-84 and
// drbdmeta) in protocol C between two loop devices, and the benchmark that
// compares the two (make bench-vm).
//
// # Topology
//
// DRBD 8.4 opens its sockets in the initial network namespace (the 6.1
// kernel's drbd_receiver.c creates them in init_net), so its two ends
// cannot live in two namespaces the way two vigild nodes do. Both ends are
// in the VM's initial namespace instead, each on its own end of one veth
// pair: policy routing sends what a local socket addresses to the other
// end out of its own end of the pair, and the other end accepts packets
// from a local address (accept_local), so every byte crosses the veth as
// it would between two namespaces.
//
// # Tests
//
// TestDRBDBaseline is the quick check that keeps the baseline from
// rotting (it runs in make vmtest): the two DRBD devices connect over the
// veth, a forced primary syncs its peer, a write on the primary is on the
// secondary's disk when it completes, and reads back through DRBD after
// the roles are switched.
//
// BenchmarkMirrorVM is make bench-vm: in the same topology it runs
// internal/blockbench's workloads of make bench-mirror (sequential 1 MiB
// writes, MB/s; random 4 KiB sync writes at queue depth 1, p99 latency),
// with O_DIRECT, on /dev/drbd0 and on the /dev/nbdN of Vigil's mirror disk
// in sync mode (replicator/mirror with its NBD frontend, both nodes in
// this process, on the same veth), and ends with two bench-vm: lines.
//
// The tests are built only with the tag vmtest, which the VM harness sets.
package drbd
