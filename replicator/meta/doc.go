// Package meta is a mirror disk's metadata on the cluster partition: the
// superblock, the generation identifiers and their rules, and the dirty
// bitmap. It imports nothing from control/ or replicator/wire.
//
// # Layout
//
// Integers are little-endian. The partition (or file) holds two 4 KiB
// superblock slots, then the bitmap:
//
//	offset  size              what
//	     0  4096              superblock slot 0
//	  4096  4096              superblock slot 1
//	  8192  ceil(bits/8) rounded up to 4 KiB   dirty bitmap
//
// Superblock slot (the rest of the slot is zero):
//
//	off  size  field
//	  0     8  magic, "VGMDMETA"
//	  8     4  version, 1
//	 12     4  flags: bit 0 consistent, bit 1 primary, bit 2 dirty
//	           shutdown, bit 3 split brain resolved by discarding this
//	           disk's changes, bit 4 resolved by keeping them (bit 31 is
//	           reserved for handshakes: never stored)
//	 16     8  sequence number: +1 per superblock write
//	 24    16  volume UUID
//	 40     8  data size in bytes
//	 48     4  block size
//	 52     4  granularity: volume bytes per bitmap bit
//	 56     1  role: 0 secondary, 1 primary
//	 57     7  reserved, 0
//	 64     8  current generation id
//	 72     8  bitmap generation id
//	 80    16  history generation ids, newest first
//	 96     8  bitmap offset, 8192
//	104     8  bitmap length in bytes
//	112     4  CRC32C (Castagnoli) of bytes 0-111
//
// A superblock write goes to the slot other than the current one (slot
// seq%2) and is fsynced. Open takes the valid slot (magic, version, CRC,
// geometry) with the highest sequence number, so a torn write leaves the
// previous superblock. Open sets "dirty shutdown"; Close clears it.
//
// Bitmap: bit i (word i/64, bit i%64 of 64-bit little-endian words; the
// same as byte i/8, bit i%8) covers volume bytes [i*g, (i+1)*g).
//
// # Granularity
//
// The default is 64 KiB per bit. DRBD uses 4 KiB. A 1 TiB volume then
// needs a 2 MiB bitmap instead of 32 MiB (loaded, scanned and exchanged
// 16 times faster), and a 4 KiB page of bitmap covers 2 GiB, so a burst
// of writes to fresh regions dirties few pages per fsync. The price is
// resync traffic: a dirty 4 KiB write costs at most 64 KiB of resync,
// which at link rate is tens of microseconds per region. The granularity
// is per volume and stored in the superblock.
//
// # Write-ahead rule
//
// Before the engine issues a write (locally or to the peer), the bits
// covering it must be durable. MarkDirty sets them in memory and returns
// mustSync if any of them is not yet on the partition; the engine groups
// the writes of a batch, calls Sync once (it writes only the changed 4 KiB
// pages and fsyncs once), then issues them. Writes to already-durable
// regions cost a bit test under a mutex (about 8 ns), no I/O. Clears are
// lazy: Clear changes memory only, and the next Sync or WriteBack carries
// it to the partition, so the on-disk bitmap is always a superset of the
// regions that may differ. This bitmap also plays DRBD's activity-log
// role: while connected, the engine marks a region before writing it and
// clears it some time after both sides acked and no write to it is in
// flight, so a crash of either node leaves at most the recently written
// regions to resync. A bitmap page torn by a crash mid-Sync is safe: the
// writes waiting on that Sync were not issued.
//
// # Activity extents
//
// What Sync writes is wider than memory: a set bit makes its whole 4 MiB
// extent (ExtentSize, 64 bits at the default granularity) set on the
// partition, and MarkDirty asks for a Sync only when a write leaves that
// durable superset. A burst of writes to fresh regions near each other
// (a sequential stream, a database's hot area) pays one bitmap sync per
// extent instead of one per region, as DRBD's activity log does. Memory
// keeps the exact regions, so a running node's resync copies only what
// it marked; after a restart the loaded bitmap holds the widened bits,
// and the resync copies whole extents. An extent's bits leave the
// partition once none of its regions is dirty.
//
// # Generations
//
// Generations, Compare and the transitions follow DRBD's data generation
// UUIDs; see Compare for the rules. Split brain is reported, never
// resolved on its own: ResolveSplitBrain needs the operator's choice,
// which an engine records in the superblock (FlagResolveDiscard or
// FlagResolveKeep) until the resync it asks for ends. Bitmap.Dirty tells
// whether a range has dirty bits.
package meta
