// Package nbd exposes a Device (the mirror disk seen through the
// replication engine, or a plain file) as a kernel block device, /dev/nbdN,
// through the kernel's nbd driver, with the NBD server running in this
// process. It imports nothing from control/ or the engine: anything with
// ReadAt, WriteAt (with FUA), Flush, Size and BlockSize can sit behind it.
//
// # Why NBD over a socketpair
//
// ublk, the modern userspace block device, is missing from the kernels
// Vigil targets (Debian 12's 6.1 cloud kernel is built without it); nbd.ko
// is there everywhere. The driver needs nothing but a connected stream
// socket per queue. Expose makes a socketpair per queue, keeps one end and
// hands the other to the kernel with NBD_CMD_CONNECT over generic netlink
// (family "nbd"), which also carries the size, block size and flags. So:
// no TCP, no port, nothing to authenticate (the socket never leaves the
// process), no nbd-server or nbd-client program, and no handshake phase —
// the kernel starts in the transmission phase. The device lives with the
// process: if it dies, its socket ends close, the kernel's reads see EOF
// and the device fails I/O instead of hanging; CleanUp (or
// CleanUpBackend, by the backend identifier the export was given) removes
// such a leftover device.
//
// # How a request flows
//
// The kernel keeps one blk-mq hardware queue per socket (NBD_FLAG_CAN_MULTI_CONN)
// and up to 128 requests in flight on each. Per connection, one reader
// goroutine reads a request header, checks it, reserves its buffer from
// the server's memory budget, reads a WRITE's data, and starts one
// goroutine for the request, which calls the Device and hands the reply to
// the connection's one writer goroutine. The writer sends every reply that
// is ready in one writev, in completion order; the kernel matches replies
// to requests by cookie. Buffers come from power-of-two pools and a READ's
// buffer returns to its pool once its reply is written.
//
// Every integer is big-endian. A request is 28 bytes, then a WRITE's data:
//
//	off  size  field
//	  0     4  magic 0x25609513
//	  4     2  command flags: bit 0 FUA, bit 1 NO_HOLE (WRITE_ZEROES)
//	  6     2  type: 0 READ, 1 WRITE, 2 DISC, 3 FLUSH, 4 TRIM,
//	           (5 CACHE), 6 WRITE_ZEROES, (7 BLOCK_STATUS)
//	  8     8  cookie, echoed in the reply
//	 16     8  offset in bytes
//	 24     4  length in bytes
//
// A simple reply is 16 bytes, then a successful READ's data:
//
//	off  size  field
//	  0     4  magic 0x67446698
//	  4     4  error: 0, or an errno (EPERM 1, EIO 5, EINVAL 22,
//	           ENOSPC 28, ENOTSUP 95, ...)
//	  8     8  cookie
//
// # FLUSH and FUA
//
// A WRITE's reply is sent once Device.WriteAt has returned: the write is
// complete. A FLUSH calls Device.Flush, which makes durable every write
// whose WriteAt returned before it was called, so a FLUSH's reply means
// every write completed before the FLUSH was received is durable; writes
// still in flight when it arrives may or may not be (the block layer asks
// no more: a flush covers the writes completed before it). A WRITE with
// FUA calls WriteAt with fua set, which returns only once that data is
// durable; the kernel sends FUA for REQ_FUA writes (O_DSYNC, journal
// commits). TRIM and WRITE_ZEROES with FUA flush after their writes.
// Replies can go out in any order, so the kernel never relies on the
// order of completion, and neither does the server.
//
// # Limits and errors
//
// A READ or WRITE is at most MaxRequestSize (32 MiB, the kernel's
// max_hw_sectors) or ServerOptions.MaxRequest. The server holds at most
// ServerOptions.MaxBuffered bytes of buffers over all connections (256 MiB
// by default; a connection stops reading while the next request's buffer
// does not fit) and at most ServerOptions.MaxInFlight requests per
// connection. A request the server can parse but not serve — out of range
// (offset+length past the end, or overflowing), empty, longer than the
// limit, with a flag other than FUA and NO_HOLE — gets EINVAL and never
// reaches the device (a WRITE's data is read and dropped, in bounded
// chunks, so the stream stays in step); a write to a read-only export gets
// EPERM; CACHE, BLOCK_STATUS and, without Trimmer, TRIM get ENOTSUP. The
// connection goes on. A bad magic or an unknown type means the stream
// cannot be trusted: the server answers the requests in progress, logs the
// error and ends the connection (the kernel then fails that queue's I/O).
// A Device error becomes EIO, or its errno if the protocol defines it.
//
// Block sizes are 512 to 4096 bytes (the kernel's limits); the size must
// be a multiple of the block size. Options.Timeout, the kernel's request
// timeout, is off by default: the kernel never fails a slow request, it
// logs it every 30 s, so that a replication engine waiting out a lost peer
// does not turn into file system errors.
//
// # Life of an export
//
// Expose connects the device and returns once /dev/nbdN shows the size.
// The caller owns the block device: it mounts it and, before Close,
// unmounts it. Close opens the device exclusively (a mounted device gives
// ErrBusy and nothing changes), flushes the kernel's cache of it,
// disconnects, waits for the requests in flight, flushes the Device, and
// waits until the kernel releases the device (a process still holding it
// open keeps it: ErrStillOpen when the context ends; Close again later).
// One process exports an index once (ErrInUse).
//
// # Caveats
//
// The server is the process that writes back the device's dirty pages:
// under memory pressure, reclaim in the kernel may wait for the nbd device
// while the server waits for memory. The kernel marks its own side of the
// sockets for reclaim (GFP_NOIO, __GFP_MEMALLOC), but nothing can mark
// every thread of a Go process as an I/O flusher (PR_SET_IO_FLUSHER is
// per thread, and the runtime makes threads as it likes): run the daemon
// with memory headroom, and never write to the exposed file system from
// the daemon itself. Buffers are pooled and bounded, so steady I/O does
// not allocate.
package nbd
