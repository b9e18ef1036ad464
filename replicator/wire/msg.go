package wire

import (
	"encoding/binary"
	"fmt"
	"math"
)

var be = binary.BigEndian

// Write flags (Write payload bytes 12-15).
const (
	// WriteFUA asks the peer to make this write durable before acking it.
	WriteFUA uint32 = 1 << 0
	// WritePreFlush asks the peer to flush its volatile cache before
	// applying this write (REQ_PREFLUSH).
	WritePreFlush uint32 = 1 << 1

	knownWriteFlags = WriteFUA | WritePreFlush
)

// Status codes carried by acks and ResyncData.
const (
	// StatusOK reports success.
	StatusOK uint32 = 0
	// StatusIOError reports a failed disk operation on the peer.
	StatusIOError uint32 = 1
	// StatusOutOfRange reports an offset or length beyond the volume.
	StatusOutOfRange uint32 = 2
)

// DigestSHA256 is the only verify digest algorithm: SHA-256 of the range.
const DigestSHA256 uint32 = 1

// Fixed payload sizes.
const (
	// WriteHeaderSize is the size of the header before a Write's data; a
	// ResyncData has the same header.
	WriteHeaderSize = 16
	// WriteAckSize is the payload size of a WriteAck.
	WriteAckSize = 24
	// FlushSize is the payload size of a Flush.
	FlushSize = 8
	// FlushAckSize is the payload size of a FlushAck.
	FlushAckSize = 16
	// BitmapHeaderSize is the size of the header before a BitmapChunk's bits.
	BitmapHeaderSize = 24
	// RangeSize is the payload size of ResyncRequest and VerifyRequest.
	RangeSize = 16
	// DigestSize is the size of a verify digest.
	DigestSize = 32
	// VerifyDigestSize is the payload size of a VerifyDigest.
	VerifyDigestSize = RangeSize + DigestSize
	// PingSize is the payload size of Ping and Pong.
	PingSize = 16
	// MaxErrorMessage is the longest message an Error frame carries.
	MaxErrorMessage = 256
	// CloseSize is the payload size of a Close.
	CloseSize = 8
)

func malformed(t Type, what string) error {
	return fmt.Errorf("%s: %s: %w", t, what, ErrMalformed)
}

// rangeOK reports whether [off, off+n) does not overflow.
func rangeOK(off uint64, n uint32) bool { return off <= math.MaxUint64-uint64(n) }

// WriteHeader is the header of a Write (and, with Status in Flags' place,
// of a ResyncData): the data block's byte offset and length.
type WriteHeader struct {
	Offset uint64
	Length uint32
	Flags  uint32 // Write: WriteFUA, WritePreFlush; ResyncData: status
}

// Put writes h into b, which must hold WriteHeaderSize bytes, and returns
// b[:WriteHeaderSize].
func (h WriteHeader) Put(b []byte) []byte {
	b = b[:WriteHeaderSize]
	be.PutUint64(b[0:], h.Offset)
	be.PutUint32(b[8:], h.Length)
	be.PutUint32(b[12:], h.Flags)
	return b
}

func parseWriteHeader(t Type, p []byte) (WriteHeader, []byte, error) {
	if len(p) < WriteHeaderSize {
		return WriteHeader{}, nil, malformed(t, "short")
	}
	h := WriteHeader{Offset: be.Uint64(p[0:]), Length: be.Uint32(p[8:]), Flags: be.Uint32(p[12:])}
	if !rangeOK(h.Offset, h.Length) {
		return WriteHeader{}, nil, malformed(t, "range overflows")
	}
	return h, p[WriteHeaderSize:], nil
}

// ParseWrite parses a Write payload. data aliases p.
func ParseWrite(p []byte) (h WriteHeader, data []byte, err error) {
	h, data, err = parseWriteHeader(TypeWrite, p)
	if err != nil {
		return WriteHeader{}, nil, err
	}
	if int64(len(data)) != int64(h.Length) || h.Length > MaxData {
		return WriteHeader{}, nil, malformed(TypeWrite, "length mismatch")
	}
	if h.Flags&^knownWriteFlags != 0 {
		return WriteHeader{}, nil, malformed(TypeWrite, "unknown flags")
	}
	return h, data, nil
}

// ParseResyncData parses a ResyncData payload; h.Flags is the status. A
// StatusOK block carries h.Length bytes of data, any other status none.
func ParseResyncData(p []byte) (h WriteHeader, data []byte, err error) {
	h, data, err = parseWriteHeader(TypeResyncData, p)
	if err != nil {
		return WriteHeader{}, nil, err
	}
	want := int64(h.Length)
	if h.Flags != StatusOK {
		want = 0
	}
	if int64(len(data)) != want || h.Length > MaxData {
		return WriteHeader{}, nil, malformed(TypeResyncData, "length mismatch")
	}
	return h, data, nil
}

// WriteAck acknowledges every Write frame whose sequence number is in
// [From, To] with one status.
type WriteAck struct {
	From, To uint64
	Status   uint32
}

// Put writes a into b (WriteAckSize bytes) and returns b[:WriteAckSize].
func (a WriteAck) Put(b []byte) []byte {
	b = b[:WriteAckSize]
	be.PutUint64(b[0:], a.From)
	be.PutUint64(b[8:], a.To)
	be.PutUint32(b[16:], a.Status)
	be.PutUint32(b[20:], 0)
	return b
}

// ParseWriteAck parses a WriteAck payload.
func ParseWriteAck(p []byte) (WriteAck, error) {
	if len(p) != WriteAckSize || be.Uint32(p[20:]) != 0 {
		return WriteAck{}, malformed(TypeWriteAck, "bad size or reserved")
	}
	a := WriteAck{From: be.Uint64(p[0:]), To: be.Uint64(p[8:]), Status: be.Uint32(p[16:])}
	if a.From > a.To {
		return WriteAck{}, malformed(TypeWriteAck, "from after to")
	}
	return a, nil
}

// Flush asks the peer to make every write it acked before it durable.
type Flush struct {
	ID uint64
}

// Put writes f into b (FlushSize bytes) and returns b[:FlushSize].
func (f Flush) Put(b []byte) []byte {
	b = b[:FlushSize]
	be.PutUint64(b, f.ID)
	return b
}

// ParseFlush parses a Flush payload.
func ParseFlush(p []byte) (Flush, error) {
	if len(p) != FlushSize {
		return Flush{}, malformed(TypeFlush, "bad size")
	}
	return Flush{ID: be.Uint64(p)}, nil
}

// FlushAck answers the Flush with the same ID.
type FlushAck struct {
	ID     uint64
	Status uint32
}

// Put writes a into b (FlushAckSize bytes) and returns b[:FlushAckSize].
func (a FlushAck) Put(b []byte) []byte {
	b = b[:FlushAckSize]
	be.PutUint64(b[0:], a.ID)
	be.PutUint32(b[8:], a.Status)
	be.PutUint32(b[12:], 0)
	return b
}

// ParseFlushAck parses a FlushAck payload.
func ParseFlushAck(p []byte) (FlushAck, error) {
	if len(p) != FlushAckSize || be.Uint32(p[12:]) != 0 {
		return FlushAck{}, malformed(TypeFlushAck, "bad size or reserved")
	}
	return FlushAck{ID: be.Uint64(p[0:]), Status: be.Uint32(p[8:])}, nil
}

// BitmapLast marks the last BitmapChunk of a bitmap exchange.
const BitmapLast uint32 = 1 << 0

// BitmapHeader is the header of a BitmapChunk. The chunk's bits follow it:
// bit i of the chunk (byte i/8, bit i%8, least significant first) is bit
// Start+i of a bitmap of Total bits, one per Granularity bytes of volume.
type BitmapHeader struct {
	Start       uint64
	Total       uint64
	Granularity uint32
	Flags       uint32
}

// Put writes h into b (BitmapHeaderSize bytes) and returns
// b[:BitmapHeaderSize].
func (h BitmapHeader) Put(b []byte) []byte {
	b = b[:BitmapHeaderSize]
	be.PutUint64(b[0:], h.Start)
	be.PutUint64(b[8:], h.Total)
	be.PutUint32(b[16:], h.Granularity)
	be.PutUint32(b[20:], h.Flags)
	return b
}

// ParseBitmapChunk parses a BitmapChunk payload. bits aliases p.
func ParseBitmapChunk(p []byte) (h BitmapHeader, bits []byte, err error) {
	if len(p) < BitmapHeaderSize {
		return BitmapHeader{}, nil, malformed(TypeBitmapChunk, "short")
	}
	h = BitmapHeader{Start: be.Uint64(p[0:]), Total: be.Uint64(p[8:]),
		Granularity: be.Uint32(p[16:]), Flags: be.Uint32(p[20:])}
	bits = p[BitmapHeaderSize:]
	switch {
	case h.Flags&^BitmapLast != 0:
		return BitmapHeader{}, nil, malformed(TypeBitmapChunk, "unknown flags")
	case h.Granularity == 0 || h.Granularity&(h.Granularity-1) != 0:
		return BitmapHeader{}, nil, malformed(TypeBitmapChunk, "granularity not a power of two")
	case h.Start%8 != 0 || h.Start > h.Total:
		return BitmapHeader{}, nil, malformed(TypeBitmapChunk, "bad start")
	case uint64(len(bits)) > (h.Total-h.Start+7)/8:
		return BitmapHeader{}, nil, malformed(TypeBitmapChunk, "bits beyond total")
	}
	return h, bits, nil
}

// Range is the payload of ResyncRequest and VerifyRequest: a byte range of
// the volume. For a VerifyRequest Aux is the digest algorithm
// (DigestSHA256); for a ResyncRequest it is 0.
type Range struct {
	Offset uint64
	Length uint32
	Aux    uint32
}

// Put writes r into b (RangeSize bytes) and returns b[:RangeSize].
func (r Range) Put(b []byte) []byte {
	b = b[:RangeSize]
	be.PutUint64(b[0:], r.Offset)
	be.PutUint32(b[8:], r.Length)
	be.PutUint32(b[12:], r.Aux)
	return b
}

func parseRange(t Type, p []byte) (Range, error) {
	r := Range{Offset: be.Uint64(p[0:]), Length: be.Uint32(p[8:]), Aux: be.Uint32(p[12:])}
	if !rangeOK(r.Offset, r.Length) || r.Length > MaxData {
		return Range{}, malformed(t, "bad range")
	}
	if (t == TypeResyncRequest && r.Aux != 0) || (t != TypeResyncRequest && r.Aux != DigestSHA256) {
		return Range{}, malformed(t, "bad aux")
	}
	return r, nil
}

// ParseResyncRequest parses a ResyncRequest payload.
func ParseResyncRequest(p []byte) (Range, error) {
	if len(p) != RangeSize {
		return Range{}, malformed(TypeResyncRequest, "bad size")
	}
	return parseRange(TypeResyncRequest, p)
}

// ParseVerifyRequest parses a VerifyRequest payload.
func ParseVerifyRequest(p []byte) (Range, error) {
	if len(p) != RangeSize {
		return Range{}, malformed(TypeVerifyRequest, "bad size")
	}
	return parseRange(TypeVerifyRequest, p)
}

// VerifyDigest answers a VerifyRequest with the digest of the same range.
type VerifyDigest struct {
	Range  Range
	Digest [DigestSize]byte
}

// Put writes d into b (VerifyDigestSize bytes) and returns
// b[:VerifyDigestSize].
func (d *VerifyDigest) Put(b []byte) []byte {
	b = b[:VerifyDigestSize]
	d.Range.Put(b)
	copy(b[RangeSize:], d.Digest[:])
	return b
}

// ParseVerifyDigest parses a VerifyDigest payload.
func ParseVerifyDigest(p []byte) (VerifyDigest, error) {
	if len(p) != VerifyDigestSize {
		return VerifyDigest{}, malformed(TypeVerifyDigest, "bad size")
	}
	r, err := parseRange(TypeVerifyDigest, p)
	if err != nil {
		return VerifyDigest{}, err
	}
	d := VerifyDigest{Range: r}
	copy(d.Digest[:], p[RangeSize:])
	return d, nil
}

// Ping is the payload of Ping and Pong: a Pong echoes its Ping's token and
// send time.
type Ping struct {
	Token  uint64
	SentAt int64 // sender's clock, Unix nanoseconds
}

// Put writes p into b (PingSize bytes) and returns b[:PingSize].
func (p Ping) Put(b []byte) []byte {
	b = b[:PingSize]
	be.PutUint64(b[0:], p.Token)
	be.PutUint64(b[8:], uint64(p.SentAt))
	return b
}

// ParsePing parses a Ping or Pong payload.
func ParsePing(p []byte) (Ping, error) {
	if len(p) != PingSize {
		return Ping{}, malformed(TypePing, "bad size")
	}
	return Ping{Token: be.Uint64(p[0:]), SentAt: int64(be.Uint64(p[8:]))}, nil
}

// ErrorMsg is the payload of an Error frame: a code and a short message
// for the peer's log. The sender closes the connection after it.
type ErrorMsg struct {
	Code    uint32
	Message string
}

// Append appends e's payload to b. A message longer than MaxErrorMessage
// is cut.
func (e ErrorMsg) Append(b []byte) []byte {
	m := e.Message
	if len(m) > MaxErrorMessage {
		m = m[:MaxErrorMessage]
	}
	b = be.AppendUint32(b, e.Code)
	b = be.AppendUint16(b, uint16(len(m)))
	b = be.AppendUint16(b, 0)
	return append(b, m...)
}

// ParseError parses an Error payload.
func ParseError(p []byte) (ErrorMsg, error) {
	if len(p) < 8 || be.Uint16(p[6:]) != 0 {
		return ErrorMsg{}, malformed(TypeError, "short or reserved")
	}
	n := int(be.Uint16(p[4:]))
	if n > MaxErrorMessage || len(p) != 8+n {
		return ErrorMsg{}, malformed(TypeError, "bad message length")
	}
	return ErrorMsg{Code: be.Uint32(p[0:]), Message: string(p[8:])}, nil
}

// validateError is ParseError without the message copy.
func validateError(p []byte) error {
	if len(p) < 8 || be.Uint16(p[6:]) != 0 {
		return malformed(TypeError, "short or reserved")
	}
	if n := int(be.Uint16(p[4:])); n > MaxErrorMessage || len(p) != 8+n {
		return malformed(TypeError, "bad message length")
	}
	return nil
}

// Close codes.
const (
	// CloseNormal is an orderly shutdown (demotion, daemon stop).
	CloseNormal uint32 = 0
	// CloseSplitBrain reports diverged data: the sender refuses to connect
	// until told which side to discard.
	CloseSplitBrain uint32 = 1
	// CloseUnrelated reports data with no common generation.
	CloseUnrelated uint32 = 2
	// CloseConfig reports a configuration or volume mismatch.
	CloseConfig uint32 = 3
	// CloseTLS reports that one side runs the mirror connect in TLS and
	// the other does not. The handshake sends it as an Error frame's code,
	// with a message naming the side that has TLS off.
	CloseTLS uint32 = 4
)

// Close is the payload of a Close frame.
type Close struct {
	Code uint32
}

// Put writes c into b (CloseSize bytes) and returns b[:CloseSize].
func (c Close) Put(b []byte) []byte {
	b = b[:CloseSize]
	be.PutUint32(b[0:], c.Code)
	be.PutUint32(b[4:], 0)
	return b
}

// ParseClose parses a Close payload.
func ParseClose(p []byte) (Close, error) {
	if len(p) != CloseSize || be.Uint32(p[4:]) != 0 {
		return Close{}, malformed(TypeClose, "bad size or reserved")
	}
	return Close{Code: be.Uint32(p)}, nil
}

// Validate checks that p is a well-formed payload for t, without
// allocating. Reader calls it on every frame it returns.
func Validate(t Type, p []byte) error {
	var err error
	switch t {
	case TypeHello:
		_, err = ParseHello(p)
	case TypeHelloAck:
		_, _, err = ParseHelloAck(p)
	case TypeAuth:
		_, err = ParseAuth(p)
	case TypeWrite:
		_, _, err = ParseWrite(p)
	case TypeWriteAck:
		_, err = ParseWriteAck(p)
	case TypeFlush:
		_, err = ParseFlush(p)
	case TypeFlushAck:
		_, err = ParseFlushAck(p)
	case TypeBitmapChunk:
		_, _, err = ParseBitmapChunk(p)
	case TypeResyncRequest:
		_, err = ParseResyncRequest(p)
	case TypeResyncData:
		_, _, err = ParseResyncData(p)
	case TypeVerifyRequest:
		_, err = ParseVerifyRequest(p)
	case TypeVerifyDigest:
		_, err = ParseVerifyDigest(p)
	case TypePing, TypePong:
		_, err = ParsePing(p)
	case TypeError:
		err = validateError(p)
	case TypeClose:
		_, err = ParseClose(p)
	default:
		err = fmt.Errorf("%s: %w", t, ErrBadType)
	}
	return err
}
