// Package blockbench holds the block workloads of Vigil's storage
// benchmarks, free of any engine: sequential writes of N bytes at a
// queue depth, random sync (FUA) 4 KiB writes at queue depth 1 with a
// latency histogram, and a fill with known data. They write to a Target,
// a two-method interface (WriteAt with a sync flag, and Flush) that a file
// written as the mirror engine writes its local volume (FileTarget: over
// the engine's DataFile, aligned blocks around the page cache, FUA writes
// with RWF_DSYNC), a block device or file opened with O_DIRECT (Device,
// Linux), or a replicated volume implements.
//
// Latencies go to a Histogram: log-linear buckets, exact below 256 ns and
// within 0.4 % above, exact count, minimum, maximum and mean, and
// nearest-rank quantiles. Rates are in megabytes of 10^6 bytes per second
// (MBps) and operations per second (PerSecond).
//
// make bench-mirror (internal/cmd/benchmirror) runs these workloads on a
// backing file and through the mirror engine; a VM benchmark can run the
// same ones on /dev/drbd0 or /dev/nbd0 through Device.
package blockbench
