// Command benchmirror measures the mirror disk (make bench-mirror): the
// replication engine's sequential throughput, its 4 KiB sync write latency
// and its resync, each beside a baseline measured in the same run.
//
// Topology: two anonymous network namespaces, a (the primary) and b (the
// secondary), joined by one veth pair, 198.18.0.1/30 and 198.18.0.2/30.
// Both engines run in this process; each socket is opened on a thread
// inside its namespace, so all mirror traffic crosses the veth. The
// namespaces have no name under /run/netns and vanish with the process,
// even a killed one. The partitions are files of the same size (-size,
// 1 GiB) on a real disk, in a work directory under the module's bin/
// (-dir), removed afterwards; directories left by runs that died are
// removed first.
//
// It measures the link first: TCP ping-pong RTT (64 bytes), one TCP
// stream of 1 MiB writes read 1 MiB at a time (the throughput ceiling),
// and one stream of the
// mirror connect's own 1 MiB Write frames after its handshake
// (replicator/wire: CRC32C and a GMAC tag under a session key on each,
// sealed by one sender and checked by one reader, the data then dropped):
// what the wire protocol alone moves over the link, with no disk and no
// engine. Then three partitions
// are filled: the primary's, the secondary's, and a raw one alike in size,
// fill and disk. "raw" is that partition written as the engine writes its
// backing file (engine.NewDataFile: aligned writes around the page cache
// where the file system has direct I/O, a sync write is one write with
// RWF_DSYNC); once, for context, the raw and the secondary's partitions
// are written at once (the disk work of a mirror whose two partitions
// share one disk), and, with the random sync workload, in step: each write
// to both at once, done when both hold it ("raw pair", the floor of a sync
// mirror's write on this disk). Then come -rounds interleaved rounds, so
// that a noisy machine spreads its noise over every variant; each round
// runs
//
//   - a full sync of the volume to a fresh secondary (the first one
//     creates the mirror);
//   - on the raw partition, through the engine in sync mode and in async
//     mode: sequential 1 MiB writes of the whole volume, -seq-qd in
//     flight, ending with a timed flush; then random aligned 4 KiB sync
//     writes at queue depth 1 (-rand-time per variant, split over the
//     rounds); in sync mode the sequential run again with cold activity
//     extents (a diagnostic: the cost of the write-ahead bitmap after a
//     clean start);
//   - a differential resync: 1 % of the bitmap's regions written at
//     random while disconnected, then a reconnect, timed until in sync.
//
// Sequential rates and resync times are the median of the rounds; random
// write latencies are pooled. Beside the sequential rates it prints the
// machine's busy CPU time per MiB (/proc/stat, all CPUs) of the TCP and
// wire streams and of each sequential variant, the codec's share (a 1 MiB
// Write sealed and checked in process, the fastest of 64), and how many
// CPUs mirroring at the goal's rate would take: at the least (the TCP
// stream's, the codec's and two raw writes' CPU per MiB) and at the sync
// runs' own cost. That is what bounds a rate on a small machine. A data check ends the run: after the
// last flush both mirror partitions must be equal.
//
// Each measurement through the engine starts from the same state: flushed
// end to end, the dirty bitmap clean but for the activity extents, every
// one hot (as in steady use, after earlier writes to them: no write waits
// for a bitmap sync; the cold diagnostic cools them all first, as after a
// clean start), the partitions' pages dropped from the page cache (reads,
// such as a resync source's, go through it).
//
// It prints every figure, the three goals with MET or NOT MET (a
// goal not met does not fail the run), and ends with three lines:
//
//	bench-mirror: seq-MBps raw=N tcp=N sync=N async=N
//	bench-mirror: rand4k-p99-us raw=N sync=N async=N
//	bench-mirror: resync-1pct-vs-full ratio=R
//
// MB are 10^6 bytes. It runs as root, in about two minutes. -quick is a
// short run (64 MiB partitions, one round); -keep keeps the work
// directory; -v prints each figure as it is measured; -h lists the flags.
package main
