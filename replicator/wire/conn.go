package wire

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync/atomic"
	"unsafe"

	"github.com/klauspost/compress/s2"
)

// Counters counts rejected frames by reason. One Counters may be shared by
// the Readers of successive connections of one mirror disk, and read
// concurrently (metrics) while they run.
type Counters struct {
	rejected [NumReasons]atomic.Uint64
}

// Rejected returns how many frames were rejected for reason r.
func (c *Counters) Rejected(r Reason) uint64 {
	if r >= NumReasons {
		return 0
	}
	return c.rejected[r].Load()
}

// Total returns how many frames were rejected for any reason.
func (c *Counters) Total() uint64 {
	var n uint64
	for i := range c.rejected {
		n += c.rejected[i].Load()
	}
	return n
}

func (c *Counters) add(r Reason) { c.rejected[r].Add(1) }

// session is one direction's authentication state.
type session struct {
	aead    cipher.AEAD
	encrypt bool
	nonce   [12]byte
}

func newSession(key []byte, encrypt bool) (*session, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("session cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("session gcm: %w", err)
	}
	return &session{aead: aead, encrypt: encrypt}, nil
}

// setSeq makes s.nonce the GCM nonce of sequence number seq: four zero
// bytes, then seq big-endian. Each direction has its own key and its
// sequence numbers never repeat, so a nonce is never reused.
func (s *session) setSeq(seq uint64) []byte {
	be.PutUint64(s.nonce[4:], seq)
	return s.nonce[:]
}

// DataAlign is the alignment of the data block of a Write or ResyncData
// frame that ReadFrame returns (its address): a volume opened for direct
// I/O writes it without a copy.
const DataAlign = 4096

// alignedAt returns a buffer of n bytes, with room for c, whose byte at
// index at has an address that is a multiple of DataAlign.
func alignedAt(n, c, at int) []byte {
	b := make([]byte, c+DataAlign)
	skip := (DataAlign - int((uintptr(unsafe.Pointer(unsafe.SliceData(b)))+uintptr(at))%DataAlign)) % DataAlign
	return b[skip : skip+n : skip+c]
}

// maxSpares bounds the buffers a Reader keeps for reuse after Retain.
const maxSpares = 8

// spares is a bounded free list of a Reader's buffers; put may be called
// from any goroutine.
type spares struct {
	ch chan []byte
}

// get returns a buffer of n bytes whose byte at index at is DataAlign
// aligned: a spare large enough, else a new one (twice old's capacity
// when that is larger, so that a growing stream allocates rarely).
func (s *spares) get(old []byte, n, at int) []byte {
	if s.ch != nil {
		select {
		case b := <-s.ch:
			if cap(b) >= n {
				return b[:n]
			}
		default:
		}
	}
	return alignedAt(n, max(n, 2*cap(old)), at)
}

// put keeps b for reuse unless enough are kept already.
func (s *spares) put(b []byte) {
	select {
	case s.ch <- b:
	default:
	}
}

// Retain hands the buffer holding the payload of the frame ReadFrame last
// returned to the caller: the payload stays valid after later ReadFrames,
// which read into other buffers, until release is called. release gives
// the buffer back for reuse; call it once, from any goroutine. A caller
// that applies frames in another goroutine than the one reading them
// retains each frame it hands over.
func (r *Reader) Retain() (release func()) {
	pool, b := &r.bufs, r.buf
	if r.inDBuf {
		pool, b = &r.dbufs, r.dbuf
		r.dbuf = nil
	} else {
		r.buf = nil
	}
	if pool.ch == nil {
		pool.ch = make(chan []byte, maxSpares)
	}
	return func() { pool.put(b[:cap(b)]) }
}

// Reader decodes frames from a stream. It is not safe for concurrent use;
// one goroutine reads a connection.
type Reader struct {
	br         *bufio.Reader
	buf        []byte
	dbuf       []byte // decompressed payloads
	zbuf       []byte // the zero block a compressed block is compared with
	maxPayload int
	next       uint64
	sess       *session
	compress   bool // CapCompress negotiated: FlagCompressed allowed
	counters   *Counters
	err        error
	hdr        [HeaderSize]byte // kept here so it does not escape per frame
	// bufs and dbufs hold buffers given back after Retain, for buf and
	// dbuf; inDBuf tells which of the two holds the last payload.
	bufs, dbufs spares
	inDBuf      bool
	// plain accepts session frame types without authentication. Only
	// tests and benchmarks set it, to measure the codec without the MAC.
	plain bool
}

// NewReader returns a Reader of frames from rd. Rejections are counted in
// c; if c is nil the Reader counts in its own Counters.
func NewReader(rd io.Reader, c *Counters) *Reader {
	if c == nil {
		c = new(Counters)
	}
	return &Reader{
		br:         bufio.NewReaderSize(rd, 64<<10),
		maxPayload: MaxPayload,
		counters:   c,
	}
}

// Counters returns the counters the Reader counts rejections in.
func (r *Reader) Counters() *Counters { return r.counters }

// SetMaxPayload lowers the largest payload the Reader accepts (the
// peer's negotiated maximum). n is clamped to [1, MaxPayload].
func (r *Reader) SetMaxPayload(n int) { r.maxPayload = min(max(n, 1), MaxPayload) }

// Authenticated reports whether the Reader verifies frame tags.
func (r *Reader) Authenticated() bool { return r.sess != nil }

func (r *Reader) reject(reason Reason, seq uint64) error {
	r.counters.add(reason)
	r.err = fmt.Errorf("read frame %d: %w", seq, reasonErrs[reason])
	return r.err
}

// Compressed reports whether the Reader accepts compressed frames
// (CapCompress was negotiated).
func (r *Reader) Compressed() bool { return r.compress }

// ReadFrame reads, checks and returns the next frame. The payload aliases
// the Reader's buffers and is valid until the next call. A compressed
// frame is returned decompressed, with FlagCompressed still in Flags to
// tell how it travelled. A frame is returned only if everything in
// doc.go's receive checks passed; any rejection is counted, returned, and
// breaks the Reader: later calls return ErrBroken. A stream that ends
// cleanly between frames returns io.EOF.
func (r *Reader) ReadFrame() (Frame, error) {
	if r.err != nil {
		return Frame{}, fmt.Errorf("%w: %w", ErrBroken, r.err)
	}
	hdr := &r.hdr
	if n, err := io.ReadFull(r.br, hdr[:]); err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			r.err = io.EOF
			return Frame{}, io.EOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Frame{}, r.reject(ReasonTruncated, r.next)
		}
		r.err = fmt.Errorf("read frame header: %w", err)
		return Frame{}, r.err
	}
	seq := be.Uint64(hdr[offSeq:])
	if string(hdr[offMagic:offMagic+4]) != Magic {
		return Frame{}, r.reject(ReasonBadMagic, seq)
	}
	if hdr[offVersion] != Version {
		return Frame{}, r.reject(ReasonBadVersion, seq)
	}
	flags := be.Uint16(hdr[offFlags:])
	switch {
	case flags&^knownFlags != 0, flags&FlagCompressed != 0 && !r.compress:
		return Frame{}, r.reject(ReasonBadFlags, seq)
	case r.sess == nil && flags&^FlagCompressed != 0:
		return Frame{}, r.reject(ReasonBadFlags, seq)
	case r.sess != nil && flags&FlagMAC == 0:
		return Frame{}, r.reject(ReasonBadMAC, seq)
	case r.sess != nil && (flags&FlagEncrypted != 0) != r.sess.encrypt:
		return Frame{}, r.reject(ReasonBadFlags, seq)
	}
	n := be.Uint32(hdr[offLength:])
	if uint64(n) > uint64(r.maxPayload) {
		return Frame{}, r.reject(ReasonTooLarge, seq)
	}
	total := HeaderSize + int(n)
	if r.sess != nil {
		total += TagSize
	}
	if cap(r.buf) < total {
		r.buf = r.bufs.get(r.buf, total, HeaderSize+WriteHeaderSize)
	}
	r.inDBuf = false
	buf := r.buf[:total]
	copy(buf, hdr[:])
	if _, err := io.ReadFull(r.br, buf[HeaderSize:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Frame{}, r.reject(ReasonTruncated, seq)
		}
		r.err = fmt.Errorf("read frame %d: %w", seq, err)
		return Frame{}, r.err
	}
	end := HeaderSize + int(n)
	if crc32.Checksum(buf[offVersion:end], castagnoli) != be.Uint32(hdr[offCRC:]) {
		return Frame{}, r.reject(ReasonBadCRC, seq)
	}
	payload := buf[HeaderSize:end]
	if s := r.sess; s != nil {
		nonce := s.setSeq(seq)
		var err error
		if s.encrypt {
			payload, err = s.aead.Open(payload[:0], nonce, buf[HeaderSize:], buf[offVersion:HeaderSize])
		} else {
			_, err = s.aead.Open(buf[end:end], nonce, buf[end:], buf[offVersion:end])
		}
		if err != nil {
			return Frame{}, r.reject(ReasonBadMAC, seq)
		}
	}
	switch {
	case seq < r.next:
		return Frame{}, r.reject(ReasonReplay, seq)
	case seq > r.next:
		return Frame{}, r.reject(ReasonReorder, seq)
	}
	t := Type(hdr[offType])
	switch {
	case !t.valid():
		return Frame{}, r.reject(ReasonBadType, seq)
	case r.sess == nil && !t.handshake() && !r.plain, r.sess != nil && !t.session():
		return Frame{}, r.reject(ReasonUnexpected, seq)
	}
	if flags&FlagCompressed != 0 {
		var err error
		if payload, err = r.decompress(t, payload); err != nil {
			return Frame{}, r.reject(ReasonMalformed, seq)
		}
	}
	if Validate(t, payload) != nil {
		return Frame{}, r.reject(ReasonMalformed, seq)
	}
	r.next++
	return Frame{Type: t, Flags: flags, Seq: seq, Payload: payload}, nil
}

// flushAt is the buffered size past which Writer writes to the stream
// without waiting for Flush.
const flushAt = 256 << 10

// Writer encodes frames onto a stream. Frames are buffered until Flush,
// or until the buffer passes 256 KiB, so a caller batches small frames
// into one write system call. It is not safe for concurrent use; one
// goroutine writes a connection.
type Writer struct {
	w          io.Writer
	buf        []byte
	scratch    []byte // a Write or ResyncData payload joined for compression
	zbuf       []byte // the s2 block of an all-zero data block
	maxPayload int
	seq        uint64
	sess       *session
	compress   bool // CapCompress negotiated: compress data when it pays
	err        error
}

// NewWriter returns a Writer of frames onto w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, buf: make([]byte, 0, 64<<10), maxPayload: MaxPayload}
}

// SetMaxPayload lowers the largest payload the Writer sends (the peer's
// negotiated maximum). n is clamped to [1, MaxPayload].
func (w *Writer) SetMaxPayload(n int) { w.maxPayload = min(max(n, 1), MaxPayload) }

// NextSeq returns the sequence number the next frame will carry.
func (w *Writer) NextSeq() uint64 { return w.seq }

// Buffered returns the number of bytes waiting for Flush.
func (w *Writer) Buffered() int { return len(w.buf) }

// Compressed reports whether the Writer compresses data blocks
// (CapCompress was negotiated).
func (w *Writer) Compressed() bool { return w.compress }

// WriteFrame appends a frame of type t whose payload is head followed by
// data, and returns its sequence number. Splitting the payload lets a
// caller pass a message header from a stack array and a data block from
// its own buffer without joining them first. Both are copied; the caller
// may reuse them on return. WriteFrame does not check that the payload
// parses for t.
//
// When compression was negotiated, the data of a Write or a StatusOK
// ResyncData (the payload after its 16-byte header) travels as an s2
// block if that saves at least 1/32 of it, raw otherwise; the size limit
// applies to the payload before compression. The frame is compressed
// first, then sealed.
func (w *Writer) WriteFrame(t Type, head, data []byte) (uint64, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := len(head) + len(data)
	if n > w.maxPayload {
		return 0, fmt.Errorf("write %s frame: %d bytes: %w", t, n, ErrPayloadTooLarge)
	}
	// body is the part of the payload that may be compressed: the data
	// after a Write's or ResyncData's header.
	var body []byte
	if w.compress && (t == TypeWrite || t == TypeResyncData) && n >= WriteHeaderSize+minCompress {
		if len(head) != WriteHeaderSize {
			// The header is not passed on its own: join the payload once.
			w.scratch = append(append(w.scratch[:0], head...), data...)
			head, data = w.scratch[:WriteHeaderSize], w.scratch[WriteHeaderSize:]
		}
		if compressible(t, head) {
			body = data
		}
	}
	room := n // payload bytes to reserve: an s2 block may be a bit larger
	if body != nil {
		room = WriteHeaderSize + s2.MaxEncodedLen(len(body))
	}
	size := HeaderSize + room
	if w.sess != nil {
		size += TagSize
	}
	if len(w.buf) > 0 && len(w.buf)+size > flushAt {
		if err := w.Flush(); err != nil {
			return 0, err
		}
	}
	start := len(w.buf)
	if cap(w.buf)-start < size {
		nb := make([]byte, start, max(start+size, 2*cap(w.buf)))
		copy(nb, w.buf)
		w.buf = nb
	}
	b := w.buf[start : start+size]
	flags := w.flags()
	copy(b[HeaderSize:], head)
	if body != nil {
		// Encode straight into the frame; s2 writes nothing past room.
		dst := b[HeaderSize+WriteHeaderSize : HeaderSize+room]
		var enc []byte
		if allZero(body) {
			w.zbuf = appendZeroBlock(w.zbuf[:0], len(body))
			enc = dst[:copy(dst, w.zbuf)]
		} else {
			enc = s2.Encode(dst, body)
		}
		if worthIt(len(enc), len(body)) {
			flags |= FlagCompressed
			n = WriteHeaderSize + len(enc)
		} else {
			body = nil
		}
	}
	if flags&FlagCompressed == 0 {
		copy(b[HeaderSize+len(head):], data)
	}
	size = HeaderSize + n
	if w.sess != nil {
		size += TagSize
	}
	b = b[:size]
	seq := w.seq
	var nonce []byte
	if w.sess != nil {
		nonce = w.sess.setSeq(seq)
	}
	seal(b, t, flags, n, seq, w.sess, nonce)
	w.buf = w.buf[:start+size]
	w.seq++
	if len(w.buf) >= flushAt {
		if err := w.Flush(); err != nil {
			return 0, err
		}
	}
	return seq, nil
}

// flags returns the flags of the Writer's frames, before compression.
func (w *Writer) flags() uint16 {
	if w.sess == nil {
		return 0
	}
	if w.sess.encrypt {
		return FlagMAC | FlagEncrypted
	}
	return FlagMAC
}

// seal completes frame b, whose payload of n bytes is in place: the
// header's fields, then the tag (nonce is the session's for seq) and the
// CRC.
func seal(b []byte, t Type, flags uint16, n int, seq uint64, s *session, nonce []byte) {
	copy(b[offMagic:], Magic)
	b[offVersion] = Version
	b[offType] = byte(t)
	be.PutUint16(b[offFlags:], flags)
	be.PutUint32(b[offLength:], uint32(n))
	be.PutUint64(b[offSeq:], seq)
	end := HeaderSize + n
	if s != nil {
		if s.encrypt {
			s.aead.Seal(b[HeaderSize:HeaderSize], nonce, b[HeaderSize:end], b[offVersion:HeaderSize])
		} else {
			s.aead.Seal(b[end:end], nonce, nil, b[offVersion:end])
		}
	}
	be.PutUint32(b[offCRC:], crc32.Checksum(b[offVersion:end], castagnoli))
}

// SealFrame encodes a frame of type t with sequence number seq, its
// payload head then data, into buf (a new buffer if buf is too small) and
// returns it, sealed, for WriteSealed. Unlike WriteFrame it changes no
// state of the Writer: once the handshake is over, several goroutines may
// seal frames at once, beside the Writer's other methods, and then send
// them in sequence order. The copy, tag and CRC of a large frame so leave
// the connection's one-at-a-time path. It never compresses.
func (w *Writer) SealFrame(buf []byte, seq uint64, t Type, head, data []byte) ([]byte, error) {
	n := len(head) + len(data)
	if n > w.maxPayload {
		return nil, fmt.Errorf("seal %s frame: %d bytes: %w", t, n, ErrPayloadTooLarge)
	}
	size := HeaderSize + n
	var nonce []byte
	if w.sess != nil {
		size += TagSize
		nonce = make([]byte, len(w.sess.nonce))
		be.PutUint64(nonce[4:], seq)
	}
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	b := buf[:size]
	copy(b[HeaderSize:], head)
	copy(b[HeaderSize+len(head):], data)
	seal(b, t, w.flags(), n, seq, w.sess, nonce)
	return b, nil
}

// WriteSealed writes the buffered frames, then frame, a frame SealFrame
// returned, straight from its buffer. Its sequence number must be
// NextSeq's. A write error breaks the Writer, as in Flush.
func (w *Writer) WriteSealed(frame []byte) error {
	if w.err != nil {
		return w.err
	}
	if len(frame) < HeaderSize {
		return fmt.Errorf("write sealed frame: %d bytes: %w", len(frame), ErrOutOfOrder)
	}
	if seq := be.Uint64(frame[offSeq:]); seq != w.seq {
		return fmt.Errorf("write sealed frame %d, next is %d: %w", seq, w.seq, ErrOutOfOrder)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if _, err := w.w.Write(frame); err != nil {
		w.err = fmt.Errorf("write frames: %w", err)
		return w.err
	}
	w.seq++
	return nil
}

// Flush writes every buffered frame to the stream. A write error breaks
// the Writer: later calls return it.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.w.Write(w.buf)
	w.buf = w.buf[:0]
	if err != nil {
		w.err = fmt.Errorf("write frames: %w", err)
	}
	return w.err
}
