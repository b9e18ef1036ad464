// Package mirror holds the VM suite "mirror": the mirror disk end to end,
// on a kernel that has nbd (the host's has not). Two vigild nodes run in
// network namespaces joined by a veth, with a mirror_disk on file
// partitions exposed through the NBD frontend and mounted as ext4 on the
// active node.
//
// TestMirrorFailover follows the disk through the life of a group: online
// on node1 (mkfs, mount, files written and fsynced), a planned move to
// node2 (every file intact there), node2's daemon SIGKILLed in the middle
// of a stream of fsynced writes (node1 takes over: promote, expose, mount
// with ext4's journal replay, and every acknowledged write is there), the
// killed node restarted (it comes back as a secondary and resyncs), an
// online verify that finds nothing, and e2fsck on both copies after the
// group stops.
//
// TestMirrorCrossAZ writes to the mounted disk for a minute in sync mode
// while the veth delays and loses packets as a link between two
// Availability Zones does (netem delay 1ms 0.3ms loss 1% each way) and the
// heartbeat runs with the cross-az profile: no false failover, the mirror
// stays connected (or reconnects without a full resync), and verify finds
// both copies equal. The cluster is deployed (initial full sync, mkfs) with
// the conservative profile first, then restarted with cross-az: under TCG
// the initial sync starves the VM's CPUs for longer than cross-az's 150 ms
// timeout.
//
// The tests are built only with the tag vmtest, which the VM harness sets
// (make vmtest VMTEST_FLAGS=mirror).
package mirror
