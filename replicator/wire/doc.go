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
//	           bit 2 compressed (Write and ResyncData only, when
//	           negotiated; see Compression); others 0
//	 12     4  payload length n as sent (compressed if flags bit 2), at most
//	           1 MiB + 64 (u32), or less when the peer's Hello announced
//	           a smaller maximum
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
// ("unexpected"); a compressed payload decompresses within its limits
// ("malformed", see Compression); the payload parses ("malformed"). A
// rejection breaks the stream: the connection is closed and redialled.
//
// # Handshake
//
// Client (the dialler) and Server each send a Hello with a fresh 32-byte
// nonce. K = HMAC-SHA256(clusterKey, "vigil mirror v1"). TH = SHA-256(
// "vigil mirror v1 transcript" || client Hello || server Hello [||
// B]), where B, present only when both run in TLS (see TLS), is the 32-byte
// TLS exporter value of the connection.
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
// proofs (unless in TLS): an unauthenticated client learns the server's
// volume UUID, size and generations, not its data.
//
// A capability is used when both Hellos have it, except CapTLS, which
// must agree: the server checks it on the client's Hello, the client on
// the server's (before the proof), and the side that finds a mismatch
// sends Error with code 4 and a message naming the side with TLS off,
// then closes.
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
//	 88     4  capabilities: bit 0 encrypt, bit 1 compress, bit 2 TLS
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
//	Write          off u64, len u32, flags u32 (bit 0 FUA, bit 1 preflush), data (len
//	               bytes, or an s2 block of them with frame flags bit 2)
//	WriteAck       from u64, to u64, status u32, reserved u32: acks every Write
//	               whose frame seq is in [from, to]
//	Flush          id u64
//	FlushAck       id u64, status u32, reserved u32
//	BitmapChunk    start bit u64 (multiple of 8), total bits u64, granularity u32,
//	               flags u32 (bit 0 last), bits: bit i is byte i/8, bit i%8
//	ResyncRequest  off u64, len u32, 0 u32
//	ResyncData     off u64, len u32, status u32, data (len bytes if status 0, else none;
//	               an s2 block of them with frame flags bit 2)
//	VerifyRequest  off u64, len u32, algorithm u32 (1: SHA-256)
//	VerifyDigest   VerifyRequest's 16 bytes, digest (32 bytes)
//	Ping, Pong     token u64, send time i64 (Unix ns); Pong echoes Ping
//	Error          code u32, message length u16 (<= 256), reserved u16, message
//	Close          code u32 (0 normal, 1 split brain, 2 unrelated, 3 config,
//	               4 TLS mismatch), reserved u32; Error codes use the same numbers
//
// Status: 0 ok, 1 I/O error, 2 out of range. Ranges must not overflow;
// data is at most 1 MiB.
//
// # Compression
//
// When both Hellos advertise CapCompress, the data of a Write, or of a
// ResyncData with status 0, may travel compressed, frame by frame: the
// payload is then the message's 16-byte header in clear, unchanged (its
// length field is the length of the data before compression), followed by
// one s2 block (github.com/klauspost/compress/s2, block format: a uvarint
// decompressed length, then literals and copies), and the frame has flags
// bit 2 set. No other type is ever compressed. The sender compresses a
// data block of at least 128 bytes and sends the block instead of the data
// if that saves at least 1/32 of it, and the raw data (bit 2 clear)
// otherwise, e.g. for data already compressed or encrypted. An all-zero
// data block is sent as an s2 block of a fixed form: a 32-byte literal,
// then copies that each double the output from offset 0, so none overlaps
// its source; s2's own encoding of a zero run (one long copy from one byte
// back) decodes a byte at a time, at about 0.4 GB/s. The receiver
// recognises the fixed form and clears its buffer instead of decoding; any
// s2 decoder decodes it too.
//
// Order: compress, then seal. The MAC (or GCM encryption) and the CRC
// cover the payload as sent, compressed, so the decoder only ever sees
// authentic blocks; compressing after encryption would gain nothing.
// With CapEncrypt as well, frame lengths reveal how well each block
// compresses: a link that must hide that leaves compression off.
//
// Decoding is bounded. Before decoding, the receiver reads the block's
// uvarint and requires it to equal the header's length, that length to
// be at most MaxData (1 MiB), and header plus data to fit the maximum
// payload it announced in its Hello; the data is then decoded into a
// buffer of exactly that length, and the block must fill it exactly. No
// allocation depends on anything but the checked length. Any failure
// (a compressed frame of another type or of a ResyncData with a nonzero
// status, a payload shorter than the header, a length mismatch, a
// corrupt block) rejects the frame as "malformed". A frame with bit 2
// on a connection that did not negotiate compression is "bad_flags".
//
// Figures (this development machine, idle, one core encoding and decoding,
// BenchmarkCompression: authenticated Write frames, MB/s of data before
// compression, each beside the uncompressed baseline of the same run,
// about 2.0 GB/s for 4 KiB and 1 MiB blocks): zero-filled blocks shrink to
// 3.6% (4 KiB) and 0.02% (1 MiB) of their size and run 3.6x (4 KiB) and
// 14x (1 MiB) faster than the baseline; log-like text shrinks to 46%
// (4 KiB) and 36% (1 MiB) and runs at 0.28x and 0.18x (s2 encodes such text
// at about 0.8 GB/s and decodes it at 1.6-3 GB/s); random data is sent raw
// after a failed attempt, at 0.68x the baseline for 4 KiB blocks and about
// 1x for 1 MiB. Compression pays where the link, not the CPU, is the
// bottleneck: cross-AZ links, and resyncs of mostly empty disks.
//
// # TLS
//
// The mirror connect may run inside TLS 1.3 with mutual authentication
// (LoadTLS builds both ends' configurations from a node certificate, its
// key and the cluster CA: TLS 1.3 only, each side requires the other's
// certificate to chain to the cluster CA and nothing else, host names are
// not checked). The frames above then travel unchanged inside the TLS
// connection, and the cluster-key handshake still runs: TLS keeps out
// whoever lacks a certificate of the cluster CA, the handshake whoever
// lacks the cluster key.
//
// A side that runs in TLS advertises CapTLS and refuses a Hello without
// it; a side that does not refuses a Hello with it (code 4 above, an
// ErrTLSMismatch locally). With CapTLS on both sides, TH ends with B =
// the connection's TLS exporter value (RFC 8446 section 7.5, label
// "EXPORTER-vigil-mirror-v1", no context, 32 bytes), which both ends of
// one TLS connection share and no other connection has. A relay that
// holds a certificate of the cluster CA and terminates TLS towards each
// node sees two connections with different exporters, so the proofs it
// relays do not verify, even though it can read the Hellos.
package wire
