// Package wire is the mirror connect's frame format and codec: framing,
// CRC32C, the cluster-key handshake and per-frame authentication. It
// imports nothing from control/; the engine drives it.
//
// # Frame
//
// Every integer is big-endian. A frame is a 24-byte header, a payload of
// n bytes, and, after the handshake, a 16-byte tag:
//
//	off  size  field
//	  0     4  magic, "VGMR"
//	  4     4  CRC32C (Castagnoli) of bytes 8 .. 24+n: the rest of the
//	           header and the payload as sent (ciphertext if encrypted)
//	  8     1  version, 1
//	  9     1  type (below)
//	 10     2  flags: bit 0 MAC (a tag follows), bit 1 encrypted,
//	           bit 2 compressed (reserved, always rejected); others 0
//	 12     4  payload length n, at most 1 MiB + 64 (u32), or less when
//	           the peer's Hello announced a smaller maximum
//	 16     8  sequence number (u64): 0 for the first frame in each
//	           direction of a connection, +1 per frame
//	 24     n  payload
//	 24+n  16  tag (flag MAC only)
//
// # Authentication
//
// Handshake frames (Hello, HelloAck, Auth, and Error or Close instead of
// one) carry no tag and flags 0; every later frame carries flag MAC. The
// tag is AES-256-GCM under the direction's session key, with nonce four
// zero bytes then the sequence number. Without encryption the payload is
// not encrypted: the tag is GCM's over additional data bytes 8 .. 24+n
// (GMAC). With encryption (both peers advertised CapEncrypt) the payload
// is the GCM ciphertext and the additional data bytes 8 .. 24. The CRC is
// computed after sealing.
//
// Why GCM: the hot path is 4 KiB to 1 MiB writes at link rate (10-25
// Gbit/s on AWS). On this development machine (AES-NI, PCLMULQDQ, SHA-NI)
// HMAC-SHA256 runs at about 1.6 GB/s, GMAC at about 7.2 GB/s and full
// AES-256-GCM at about 3.9 GB/s; CRC32C at 22 GB/s. GMAC authenticates at
// line rate with room to spare; encryption is a capability for links that
// need it without TLS.
//
// A receiver checks, in order, and rejects the frame (counting the
// reason) at the first failure: magic, version, flags (against the
// connection's state), length; then reads payload and tag ("truncated" if
// the stream ends); CRC ("bad_crc": corruption); tag ("bad_mac": forgery);
// sequence number equal to the expected one ("replay" if lower, "reorder"
// if higher; the tag is checked first, so these are authentic frames out
// of place); type known ("bad_type") and allowed in the state
// ("unexpected"); payload parses ("malformed"). A rejection breaks the
// stream: the connection is closed and redialled.
//
// # Handshake
//
// Client (the dialler) and Server each send a Hello with a fresh 32-byte
// nonce. K = HMAC-SHA256(clusterKey, "vigil mirror v1"). TH = SHA-256(
// "vigil mirror v1 transcript" || client Hello || server Hello).
//
//	client -> server  Hello    (seq 0)
//	server -> client  HelloAck (seq 0): server Hello || HMAC(K, "server proof" || TH)
//	client -> server  Auth     (seq 1): HMAC(K, "client proof" || TH)
//
// Each side checks the other's proof in constant time, and rejects a peer
// that echoes its nonce or its node index (reflection). Session keys:
// HMAC(K, "client to server key" || TH) and HMAC(K, "server to client
// key" || TH). Fresh nonces on both sides make a replayed handshake fail;
// distinct proof labels make a reflected proof fail; capabilities are in
// TH, so they cannot be stripped. The Hellos travel in clear before the
// proofs: an unauthenticated client learns the server's volume UUID,
// size and generations, not its data.
//
// Hello payload (132 bytes):
//
//	off  size  field
//	  0    32  nonce, nonzero
//	 32    16  config hash (as the heartbeat's)
//	 48    16  volume UUID
//	 64     8  incarnation, nonzero
//	 72     8  volume size in bytes, a multiple of the block size
//	 80     4  block size, power of two in [512, 65536]
//	 84     4  largest payload the sender accepts, [4160, 1 MiB + 64]
//	 88     4  capabilities: bit 0 encrypt, bit 1 compress (reserved),
//	           bit 2 TLS (reserved)
//	 92     4  disk flags (replicator/meta superblock flags)
//	 96     1  node index
//	 97     1  role: 0 secondary, 1 primary
//	 98     2  reserved, 0
//	100     8  current generation id
//	108     8  bitmap generation id
//	116    16  history generation ids
//
// HelloAck: a Hello then a 32-byte proof. Auth: a 32-byte proof.
//
// # Session payloads
//
//	Write          off u64, len u32, flags u32 (bit 0 FUA, bit 1 preflush), data (len bytes)
//	WriteAck       from u64, to u64, status u32, reserved u32: acks every Write
//	               whose frame seq is in [from, to]
//	Flush          id u64
//	FlushAck       id u64, status u32, reserved u32
//	BitmapChunk    start bit u64 (multiple of 8), total bits u64, granularity u32,
//	               flags u32 (bit 0 last), bits: bit i is byte i/8, bit i%8
//	ResyncRequest  off u64, len u32, 0 u32
//	ResyncData     off u64, len u32, status u32, data (len bytes if status 0, else none)
//	VerifyRequest  off u64, len u32, algorithm u32 (1: SHA-256)
//	VerifyDigest   VerifyRequest's 16 bytes, digest (32 bytes)
//	Ping, Pong     token u64, send time i64 (Unix ns); Pong echoes Ping
//	Error          code u32, message length u16 (<= 256), reserved u16, message
//	Close          code u32 (0 normal, 1 split brain, 2 unrelated, 3 config), reserved u32
//
// Status: 0 ok, 1 I/O error, 2 out of range. Ranges must not overflow;
// data is at most 1 MiB.
//
// # Compression and TLS
//
// Not implemented: CapCompress and CapTLS are reserved and never
// negotiated, and a frame with the compressed flag is rejected. A later
// version negotiates them through the capability word (authenticated in
// TH) without changing the frame layout.
package wire
