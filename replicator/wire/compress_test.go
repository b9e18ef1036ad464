package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/klauspost/compress/s2"
)

// pipe returns the two ends of a net.Pipe, closed when the test ends. The
// deadline only keeps a broken test from hanging; nothing is timed.
func pipe(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	dl := time.Now().Add(2 * time.Minute)
	_ = a.SetDeadline(dl)
	_ = b.SetDeadline(dl)
	return a, b
}

// dataKind returns size bytes of one of the benchmark and test data
// kinds: "zero", "text" (log-like lines) or "random".
func dataKind(kind string, size int) []byte {
	rng := rand.New(rand.NewPCG(uint64(size), 7))
	switch kind {
	case "zero":
		return make([]byte, size)
	case "text":
		words := strings.Fields("the mirror disk replicates every write to the secondary node over an authenticated " +
			"connection and a differential resync copies only dirty regions after a failover or a lost link " +
			"INFO WARN ERROR level=debug event=mirror_connected peer=198.18.0.2 took 13ms bytes 4096 offset")
		var b bytes.Buffer
		for b.Len() < size {
			fmt.Fprintf(&b, "2025-11-22T05:%02d:%02d.%06dZ", rng.IntN(60), rng.IntN(60), rng.IntN(1e6))
			for range 4 + rng.IntN(10) {
				b.WriteByte(' ')
				b.WriteString(words[rng.IntN(len(words))])
			}
			b.WriteByte('\n')
		}
		return b.Bytes()[:size]
	case "random":
		b := make([]byte, size)
		for i := 0; i < size; i += 8 {
			binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
		}
		return b
	}
	panic("unknown data kind " + kind)
}

// setMode prepares r and w for one codec mode: "plain" (no MAC), "mac" or
// "encrypt", each optionally with "+s2" compression negotiated.
func setMode(t testing.TB, r *Reader, w *Writer, mode string) {
	t.Helper()
	base, s2on := strings.CutSuffix(mode, "+s2")
	switch base {
	case "plain":
		r.plain = true
	case "mac":
		sessions(t, r, w, 1, false)
	case "encrypt":
		sessions(t, r, w, 1, true)
	default:
		t.Fatalf("unknown mode %q", mode)
	}
	r.compress, w.compress = s2on, s2on
}

func TestCompressedRoundTrip(t *testing.T) {
	text, random, zero := dataKind("text", 64<<10), dataKind("random", 4096), dataKind("zero", MaxData)
	wh := func(ty Type, n int, flags uint32) []byte {
		return WriteHeader{Offset: 1 << 30, Length: uint32(n), Flags: flags}.Put(make([]byte, WriteHeaderSize))
	}
	cases := []struct {
		name       string
		t          Type
		head, data []byte
		compressed bool
	}{
		{"write text", TypeWrite, wh(TypeWrite, len(text), WriteFUA), text, true},
		{"write zeros 1MiB", TypeWrite, wh(TypeWrite, len(zero), 0), zero, true},
		{"write random", TypeWrite, wh(TypeWrite, len(random), 0), random, false},
		{"write small", TypeWrite, wh(TypeWrite, 100, 0), make([]byte, 100), false},
		{"write empty", TypeWrite, wh(TypeWrite, 0, 0), nil, false},
		{"resync text", TypeResyncData, wh(TypeResyncData, len(text), StatusOK), text, true},
		{"resync joined", TypeResyncData, slices.Concat(wh(TypeResyncData, len(text), StatusOK), text), nil, true},
		{"write odd split", TypeWrite, slices.Concat(wh(TypeWrite, len(text), 0), text[:5]), text[5:], true},
		{"resync error", TypeResyncData, wh(TypeResyncData, 4096, StatusIOError), nil, false},
		{"bitmap", TypeBitmapChunk, BitmapHeader{Start: 0, Total: 1 << 20, Granularity: 4096}.Put(make([]byte, BitmapHeaderSize)), make([]byte, 4096), false},
	}
	for _, mode := range []string{"plain+s2", "mac+s2", "encrypt+s2"} {
		t.Run(mode, func(t *testing.T) {
			var stream bytes.Buffer
			w := NewWriter(&stream)
			r := NewReader(&stream, nil)
			setMode(t, r, w, mode)
			raw := 0
			for _, c := range cases {
				if _, err := w.WriteFrame(c.t, c.head, c.data); err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				raw += HeaderSize + len(c.head) + len(c.data)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if stream.Len() > raw/4 {
				t.Errorf("compressed stream is %d bytes for %d raw", stream.Len(), raw)
			}
			for i, c := range cases {
				f, err := r.ReadFrame()
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				want := slices.Concat(c.head, c.data)
				if f.Type != c.t || f.Seq != uint64(i) || !bytes.Equal(f.Payload, want) {
					t.Fatalf("%s: got %s seq %d %d bytes, want %s %d bytes", c.name, f.Type, f.Seq, len(f.Payload), c.t, len(want))
				}
				if got := f.Flags&FlagCompressed != 0; got != c.compressed {
					t.Errorf("%s: compressed %v, want %v", c.name, got, c.compressed)
				}
			}
			if _, err := r.ReadFrame(); err != io.EOF {
				t.Fatalf("after last frame: %v, want io.EOF", err)
			}
			if n := r.Counters().Total(); n != 0 {
				t.Fatalf("%d rejections", n)
			}
		})
	}
}

// TestCompressedSizeLimit checks that the size limit applies to the
// payload before compression, on both sides.
func TestCompressedSizeLimit(t *testing.T) {
	w := NewWriter(io.Discard)
	setMode(t, NewReader(nil, nil), w, "mac+s2")
	w.SetMaxPayload(MinMaxPayload)
	zero := make([]byte, MinMaxPayload)
	h := WriteHeader{Length: uint32(len(zero))}.Put(make([]byte, WriteHeaderSize))
	if _, err := w.WriteFrame(TypeWrite, h, zero); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("compressible payload above the peer's maximum: %v, want ErrPayloadTooLarge", err)
	}
}

// compressedFrame returns a plain (untagged) stream of one frame with
// FlagCompressed, type t and the given payload, for a Reader in mode
// "plain+s2".
func compressedFrame(t Type, payload []byte) []byte {
	b := make([]byte, HeaderSize+len(payload))
	copy(b, Magic)
	b[offVersion] = Version
	b[offType] = byte(t)
	be.PutUint16(b[offFlags:], FlagCompressed)
	be.PutUint32(b[offLength:], uint32(len(payload)))
	copy(b[HeaderSize:], payload)
	be.PutUint32(b[offCRC:], crc32Of(b[offVersion:]))
	return b
}

// TestHostileCompressedFrames feeds compressed frames whose block or
// header lie: each is malformed, counted once, and none makes the Reader
// allocate for a length it then rejects.
func TestHostileCompressedFrames(t *testing.T) {
	text := dataKind("text", 8192)
	block := s2.Encode(nil, text)
	wh := func(n int, flags uint32) []byte {
		return WriteHeader{Offset: 4096, Length: uint32(n), Flags: flags}.Put(make([]byte, WriteHeaderSize))
	}
	// A block that says it holds 4 GiB - 1 and one that says 1 MiB + 1.
	huge := binary.AppendUvarint(nil, 1<<32-1)
	over := binary.AppendUvarint(nil, MaxData+1)
	// A block that starts with a copy (tag 2) from 16 bytes back, before
	// the start of the output.
	corrupt := slices.Concat(binary.AppendUvarint(nil, uint64(len(text))), []byte{(4-1)<<2 | 2, 16, 0}, block[2:])
	cases := []struct {
		name  string
		t     Type
		p     []byte
		alloc bool // whether decoding may start (the lengths agree)
	}{
		{"declared shorter than block", TypeWrite, slices.Concat(wh(len(text)-1, 0), block), false},
		{"declared longer than block", TypeWrite, slices.Concat(wh(len(text)+1, 0), block), false},
		{"block claims 4 GiB", TypeWrite, slices.Concat(wh(len(text), 0), huge, block[5:]), false},
		{"both claim 4 GiB", TypeWrite, slices.Concat(wh(1<<32-1, 0), huge, block[5:]), false},
		{"both claim MaxData+1", TypeResyncData, slices.Concat(wh(MaxData+1, StatusOK), over, block[3:]), false},
		{"bad varint", TypeWrite, slices.Concat(wh(len(text), 0), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), false},
		{"no block", TypeWrite, wh(len(text), 0), false},
		{"short header", TypeWrite, wh(len(text), 0)[:15], false},
		{"corrupt block", TypeWrite, slices.Concat(wh(len(text), 0), corrupt), true},
		{"truncated block", TypeWrite, slices.Concat(wh(len(text), 0), block[:len(block)-3]), true},
		{"resync error status", TypeResyncData, slices.Concat(wh(len(text), StatusIOError), block), false},
		{"flush", TypeFlush, Flush{ID: 1}.Put(make([]byte, FlushSize)), false},
		{"bitmap", TypeBitmapChunk, slices.Concat(BitmapHeader{Total: 8, Granularity: 4096}.Put(make([]byte, BitmapHeaderSize)), block), false},
		{"bad write flags", TypeWrite, slices.Concat(wh(len(text), 1<<9), block), true},
	}
	for _, c := range cases {
		r := NewReader(bytes.NewReader(compressedFrame(c.t, c.p)), nil)
		setMode(t, r, NewWriter(io.Discard), "plain+s2")
		_, err := r.ReadFrame()
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", c.name, err)
			continue
		}
		if r.Counters().Rejected(ReasonMalformed) != 1 || r.Counters().Total() != 1 {
			t.Errorf("%s: rejection not counted once", c.name)
		}
		if !c.alloc && cap(r.dbuf) != 0 {
			t.Errorf("%s: allocated %d bytes before rejecting", c.name, cap(r.dbuf))
		}
		if cap(r.dbuf) > WriteHeaderSize+MaxData {
			t.Errorf("%s: decompression buffer of %d bytes", c.name, cap(r.dbuf))
		}
	}
	// The same block honestly declared decodes.
	r := NewReader(bytes.NewReader(compressedFrame(TypeWrite, slices.Concat(wh(len(text), 0), block))), nil)
	setMode(t, r, NewWriter(io.Discard), "plain+s2")
	f, err := r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if _, data, _ := ParseWrite(f.Payload); !bytes.Equal(data, text) {
		t.Fatal("decoded data differs")
	}
	// Above the Reader's own negotiated maximum, though within MaxData.
	r = NewReader(bytes.NewReader(compressedFrame(TypeWrite, slices.Concat(wh(len(text), 0), block))), nil)
	setMode(t, r, NewWriter(io.Discard), "plain+s2")
	r.SetMaxPayload(MinMaxPayload)
	if _, err := r.ReadFrame(); !errors.Is(err, ErrMalformed) || cap(r.dbuf) != 0 {
		t.Fatalf("above the negotiated maximum: %v (buffer %d), want ErrMalformed", err, cap(r.dbuf))
	}
}

// TestCompressedNotNegotiated sends a compressed frame to an authenticated
// Reader that did not negotiate compression.
func TestCompressedNotNegotiated(t *testing.T) {
	var stream bytes.Buffer
	w := NewWriter(&stream)
	setMode(t, NewReader(nil, nil), w, "mac+s2")
	text := dataKind("text", 4096)
	if _, err := w.WriteFrame(TypeWrite, WriteHeader{Length: 4096}.Put(make([]byte, WriteHeaderSize)), text); err != nil {
		t.Fatal(err)
	}
	_ = w.Flush()
	r := NewReader(&stream, nil)
	setMode(t, r, NewWriter(io.Discard), "mac")
	if _, err := r.ReadFrame(); !errors.Is(err, ErrBadFlags) {
		t.Fatalf("%v, want ErrBadFlags", err)
	}
}

// TestCompressedBitFlipsRejected flips every bit of an authenticated
// compressed frame: the CRC or the tag catches each one before the
// decoder sees it.
func TestCompressedBitFlipsRejected(t *testing.T) {
	for _, mode := range []string{"mac+s2", "encrypt+s2"} {
		var stream bytes.Buffer
		w := NewWriter(&stream)
		setMode(t, NewReader(nil, nil), w, mode)
		text := dataKind("text", 400)
		if _, err := w.WriteFrame(TypeWrite, WriteHeader{Length: 400}.Put(make([]byte, WriteHeaderSize)), text); err != nil {
			t.Fatal(err)
		}
		_ = w.Flush()
		good := stream.Bytes()
		if be.Uint16(good[offFlags:])&FlagCompressed == 0 {
			t.Fatal("frame not compressed")
		}
		for bit := range len(good) * 8 {
			bad := bytes.Clone(good)
			bad[bit/8] ^= 1 << (bit % 8)
			r := NewReader(bytes.NewReader(bad), nil)
			setMode(t, r, NewWriter(io.Discard), mode)
			_, err := r.ReadFrame()
			if _, ok := ReasonOf(err); !ok {
				t.Fatalf("%s bit %d: %v, want a rejection", mode, bit, err)
			}
			if errors.Is(err, ErrMalformed) {
				t.Fatalf("%s bit %d: reached the decoder: %v", mode, bit, err)
			}
			if cap(r.dbuf) != 0 {
				t.Fatalf("%s bit %d: decoded before authenticating", mode, bit)
			}
		}
	}
}

// TestHandshakeNegotiatesCompression runs real handshakes with compression
// on one side or both: only both turn it on, and then data travels
// compressed in both directions.
func TestHandshakeNegotiatesCompression(t *testing.T) {
	key := []byte("k")
	text := dataKind("text", 32<<10)
	for _, c := range []struct{ client, server, want bool }{{true, true, true}, {true, false, false}, {false, true, false}} {
		a, b := pipe(t)
		cs := &side{r: NewReader(a, nil), w: NewWriter(a)}
		ss := &side{r: NewReader(b, nil), w: NewWriter(b)}
		done := make(chan struct{})
		go func() {
			defer close(done)
			ss.res, ss.err = Server(ss.r, ss.w, Config{ClusterKey: key, Local: testHello(2), Compress: c.server})
		}()
		cs.res, cs.err = Client(cs.r, cs.w, Config{ClusterKey: key, Local: testHello(1), Compress: c.client})
		<-done
		if cs.err != nil || ss.err != nil {
			t.Fatalf("%+v: client %v, server %v", c, cs.err, ss.err)
		}
		if got := cs.res.Caps&CapCompress != 0; got != c.want || ss.res.Caps != cs.res.Caps {
			t.Fatalf("%+v: caps %x / %x", c, cs.res.Caps, ss.res.Caps)
		}
		if cs.w.Compressed() != c.want || cs.r.Compressed() != c.want || ss.w.Compressed() != c.want {
			t.Fatalf("%+v: codec compression not %v", c, c.want)
		}
		for _, dir := range [][2]*side{{cs, ss}, {ss, cs}} {
			f := sendData(t, dir[0], dir[1], TypeWrite, text)
			if got := f.Flags&FlagCompressed != 0; got != c.want {
				t.Fatalf("%+v: frame compressed %v", c, got)
			}
		}
	}
}

// sendData sends one frame of type t carrying data from one side to the
// other and returns it as received, checking the data.
func sendData(t *testing.T, from, to *side, ty Type, data []byte) Frame {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := from.w.WriteFrame(ty, WriteHeader{Offset: 8192, Length: uint32(len(data))}.Put(make([]byte, WriteHeaderSize)), data)
		if err == nil {
			err = from.w.Flush()
		}
		errc <- err
	}()
	f, err := to.r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if f.Type != ty || !bytes.Equal(f.Payload[WriteHeaderSize:], data) {
		t.Fatalf("received %s with different data", f.Type)
	}
	return f
}

// TestZeroBlock checks the fixed-form s2 block of zero bytes against the
// s2 decoder for every length a Writer may give it, and its size bound.
func TestZeroBlock(t *testing.T) {
	lengths := []int{MaxData, MaxData - 1, 65540 + 64, 65536 + 64 + 4, 1<<16 + 259, 999_999}
	for n := 1; n <= 3000; n++ {
		lengths = append(lengths, n)
	}
	for n := 3000; n < 300_000; n += 97 {
		lengths = append(lengths, n)
	}
	for _, n := range lengths {
		b := appendZeroBlock(nil, n)
		if len(b) > maxZeroBlock {
			t.Fatalf("n=%d: block of %d bytes", n, len(b))
		}
		if dl, err := s2.DecodedLen(b); err != nil || dl != n {
			t.Fatalf("n=%d: decoded length %d, %v", n, dl, err)
		}
		out, err := s2.Decode(nil, b)
		if err != nil || len(out) != n || !allZero(out) {
			t.Fatalf("n=%d: %d bytes, %v", n, len(out), err)
		}
	}
	if !allZero(make([]byte, 10_000)) || allZero(append(make([]byte, 9_999), 1)) || !allZero(nil) {
		t.Fatal("allZero")
	}
}

// TestZeroBlocksOnTheWire sends zero-filled blocks, which travel in the
// fixed form and are cleared on receipt, and a zero block in s2's own
// form, which the Reader decodes.
func TestZeroBlocksOnTheWire(t *testing.T) {
	var stream bytes.Buffer
	w := NewWriter(&stream)
	r := NewReader(&stream, nil)
	setMode(t, r, w, "mac+s2")
	// Dirty the Reader's buffer first, so that clearing is seen.
	text := dataKind("text", MaxData)
	for _, data := range [][]byte{text, make([]byte, MaxData), make([]byte, 4096), make([]byte, 777)} {
		if _, err := w.WriteFrame(TypeResyncData, WriteHeader{Length: uint32(len(data))}.Put(make([]byte, WriteHeaderSize)), data); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if allZero(data) && stream.Len() > HeaderSize+WriteHeaderSize+maxZeroBlock+TagSize {
			t.Fatalf("%d zero bytes took %d bytes on the wire", len(data), stream.Len())
		}
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if f.Flags&FlagCompressed == 0 || !bytes.Equal(f.Payload[WriteHeaderSize:], data) {
			t.Fatalf("%d bytes: flags %x, data differs", len(data), f.Flags)
		}
	}
	r = NewReader(bytes.NewReader(compressedFrame(TypeWrite, slices.Concat(
		WriteHeader{Length: 8192}.Put(make([]byte, WriteHeaderSize)), s2.Encode(nil, make([]byte, 8192))))), nil)
	setMode(t, r, NewWriter(io.Discard), "plain+s2")
	r.dbuf = bytes.Repeat([]byte{0xee}, WriteHeaderSize+8192)
	f, err := r.ReadFrame()
	if err != nil || !allZero(f.Payload[WriteHeaderSize:]) || len(f.Payload) != WriteHeaderSize+8192 {
		t.Fatalf("s2's zero block: %v", err)
	}
}

// TestDataAligned checks that the data block of every Write and
// ResyncData frame ReadFrame returns starts at a multiple of DataAlign, in
// every codec mode, compressed or not, whatever size the Reader's buffer
// had grown to before.
func TestDataAligned(t *testing.T) {
	for _, mode := range []string{"plain", "mac", "encrypt", "plain+s2", "mac+s2", "encrypt+s2"} {
		t.Run(mode, func(t *testing.T) {
			var stream bytes.Buffer
			r, w := NewReader(&stream, nil), NewWriter(&stream)
			setMode(t, r, w, mode)
			for i, size := range []int{4096, 512, 64 << 10, 4096, MaxData, 8192} {
				for _, kind := range []string{"random", "text"} {
					data := dataKind(kind, size)
					for _, ty := range []Type{TypeWrite, TypeResyncData} {
						h := WriteHeader{Offset: uint64(i) << 20, Length: uint32(size)}
						if _, err := w.WriteFrame(ty, h.Put(make([]byte, WriteHeaderSize)), data); err != nil {
							t.Fatal(err)
						}
						if err := w.Flush(); err != nil {
							t.Fatal(err)
						}
						f, err := r.ReadFrame()
						if err != nil {
							t.Fatalf("%s %s %d: %v", ty, kind, size, err)
						}
						got := f.Payload[WriteHeaderSize:]
						if !bytes.Equal(got, data) {
							t.Fatalf("%s %s %d: data differs", ty, kind, size)
						}
						if a := uintptr(unsafe.Pointer(unsafe.SliceData(got))) % DataAlign; a != 0 {
							t.Fatalf("%s %s %d (compressed %v): data at address %% %d = %d, want 0",
								ty, kind, size, f.Flags&FlagCompressed != 0, DataAlign, a)
						}
					}
				}
			}
		})
	}
}

// TestRetain checks that a retained payload survives later frames, in
// every mode, compressed or not, and that released buffers are reused
// with their alignment.
func TestRetain(t *testing.T) {
	for _, mode := range []string{"plain", "mac", "encrypt+s2"} {
		t.Run(mode, func(t *testing.T) {
			var stream bytes.Buffer
			r, w := NewReader(&stream, nil), NewWriter(&stream)
			setMode(t, r, w, mode)
			type kept struct {
				want, got []byte
				release   func()
			}
			var held []kept
			for i := range 40 {
				kind := []string{"random", "text", "zero"}[i%3]
				data := dataKind(kind, 4096<<(i%5))
				data[0] = byte(i)
				h := WriteHeader{Offset: uint64(i) << 20, Length: uint32(len(data))}
				if _, err := w.WriteFrame(TypeWrite, h.Put(make([]byte, WriteHeaderSize)), data); err != nil {
					t.Fatal(err)
				}
				if err := w.Flush(); err != nil {
					t.Fatal(err)
				}
				f, err := r.ReadFrame()
				if err != nil {
					t.Fatal(err)
				}
				got := f.Payload[WriteHeaderSize:]
				if uintptr(unsafe.Pointer(unsafe.SliceData(got)))%DataAlign != 0 {
					t.Fatalf("frame %d: data not aligned", i)
				}
				held = append(held, kept{data, got, r.Retain()})
				for _, k := range held {
					if !bytes.Equal(k.want, k.got) {
						t.Fatalf("after frame %d: a retained payload changed", i)
					}
				}
				if len(held) == 4 { // release the oldest three, keep one
					for _, k := range held[:3] {
						k.release()
					}
					held = held[3:]
				}
			}
		})
	}
}
