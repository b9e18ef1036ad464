// Package heartbeat is Vigil's userspace heartbeat: authenticated UDP probes
// and replies on every interconnect lane, and the wire format a later XDP
// fast path answers in the kernel. It imports nothing from control/; the
// control layer reads Observations and decides what they mean.
//
// # Wire format
//
// Every integer is big-endian (network order). Fields are not naturally
// aligned: a kernel implementation reads them bytewise. Offsets are in bytes
// from the start of the UDP payload.
//
// Header, common to probes and replies (66 bytes):
//
//	off  size  field
//	  0     4  magic, "VGHB" (0x56 0x47 0x48 0x42)
//	  4     1  version, 1
//	  5     1  type: 1 probe, 2 reply
//	  6     1  sender server index
//	  7     1  lane index
//	  8     2  flags; bit 0 (0x0001) set in replies made by the kernel fast
//	           path; other bits 0 when sent, ignored when received
//	 10    16  config hash: first 16 bytes of SHA-256 of the sender's config
//	 26     8  incarnation: random per daemon start, nonzero (u64)
//	 34    16  nonce: random per probe; a reply echoes its probe's nonce
//	 50     8  seq: probes, +1 per probe round of the sender on the lane,
//	           from 1 per incarnation; a reply echoes its probe's seq (u64)
//	 58     8  send time: sender's wall clock, Unix nanoseconds (i64)
//
// Probe (84 + n bytes, 84 to 1108):
//
//	off    size  field
//	 66       2  payload length n, at most 1024 (u16)
//	 68       n  payload, opaque (the control layer's group state)
//	 68+n    16  tag
//
// Reply (106 bytes):
//
//	off  size  field
//	 66     8  echoed probe send time, Unix nanoseconds (i64)
//	 74     8  responder receive time, Unix nanoseconds (i64)
//	 82     8  responder liveness epoch (u64)
//	 90    16  tag
//
// The tag is HMAC-SHA256 truncated to its first 16 bytes, over every byte
// before it, keyed with the subkey HMAC-SHA256(clusterKey, "vigil heartbeat
// v1") (DeriveKey). The subkey is fixed per cluster, so a kernel
// implementation can precompute HMAC's inner and outer SHA-256 states.
//
// A receiver checks, in order: the datagram is at most 1108 bytes, at least
// 82; magic; version; type; for a probe, payload length at most 1024 and
// the datagram exactly 84+n bytes; for a reply, exactly 106 bytes; then the
// tag, compared in constant time. Nothing else in the packet is trusted
// before the tag verifies.
//
// # Acceptance
//
// An authentic packet is then accepted only if its lane index is the lane of
// the socket it arrived on (else drop "wrong_lane"), its sender index is a
// peer on that lane and its UDP source address that peer's address on the
// lane (else "unknown_peer").
//
// A probe must be fresh ("replay" otherwise). Per peer the engine remembers
// the current incarnation, the highest seq accepted per lane for it, and the
// last 8 incarnations the peer left. A probe of the current incarnation needs
// a seq above its lane's highest. A probe of another incarnation is accepted,
// and its incarnation becomes the current one, only if that incarnation is
// not retired, its send time is within ±30 s of the receiver's clock, and it
// is after every send time accepted from the current incarnation. An accepted
// probe is answered even when its config hash differs from the receiver's.
//
// A reply must carry the nonce of a probe sent to that peer on that lane and
// still outstanding; the nonce is consumed. Otherwise it is "replay" if the
// nonce was already consumed, "late_reply" if the probe had expired, and
// "unsolicited_reply" if it was never sent. A probe expires, and counts as a
// miss, MissAfter (4) intervals after it was sent, or when 64 newer probes to
// the same peer on the same lane are outstanding.
//
// # Engine
//
// Engine runs the protocol on one UDP socket per lane. A send goroutine
// sends a probe round at start, then every Interval (jittered by ±10%),
// bumping the liveness epoch each time, and an extra round whenever
// SetPayload changes the payload. One receive goroutine per lane answers
// probes and reports accepted probes and replies to Config.Handler.
package heartbeat
