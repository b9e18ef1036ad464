package wire

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
)

// sessions makes w's frames readable by r, authenticated (and encrypted
// when encrypt is set) with key.
func sessions(t testing.TB, r *Reader, w *Writer, key byte, encrypt bool) {
	t.Helper()
	k := bytes.Repeat([]byte{key}, 32)
	rs, err := newSession(k, encrypt)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := newSession(k, encrypt)
	if err != nil {
		t.Fatal(err)
	}
	r.sess, w.sess = rs, ws
}

type sample struct {
	t          Type
	head, data []byte
}

// samples returns one valid payload of every session frame type.
func samples() []sample {
	data := bytes.Repeat([]byte("0123456789abcdef"), 256) // 4 KiB
	vd := VerifyDigest{Range: Range{Offset: 1 << 20, Length: 4096, Aux: DigestSHA256}}
	vd.Digest[0], vd.Digest[31] = 0xaa, 0x55
	return []sample{
		{TypeWrite, WriteHeader{Offset: 8192, Length: 4096, Flags: WriteFUA | WritePreFlush}.Put(make([]byte, WriteHeaderSize)), data},
		{TypeWriteAck, WriteAck{From: 3, To: 9, Status: StatusOK}.Put(make([]byte, WriteAckSize)), nil},
		{TypeFlush, Flush{ID: 7}.Put(make([]byte, FlushSize)), nil},
		{TypeFlushAck, FlushAck{ID: 7, Status: StatusIOError}.Put(make([]byte, FlushAckSize)), nil},
		{TypeBitmapChunk, BitmapHeader{Start: 64, Total: 1000, Granularity: 65536, Flags: BitmapLast}.Put(make([]byte, BitmapHeaderSize)), []byte{0xff, 0, 1, 0x80}},
		{TypeResyncRequest, Range{Offset: 65536, Length: 65536}.Put(make([]byte, RangeSize)), nil},
		{TypeResyncData, WriteHeader{Offset: 65536, Length: 4096}.Put(make([]byte, WriteHeaderSize)), data},
		{TypeResyncData, WriteHeader{Offset: 65536, Length: 4096, Flags: StatusIOError}.Put(make([]byte, WriteHeaderSize)), nil},
		{TypeVerifyRequest, Range{Offset: 0, Length: 4096, Aux: DigestSHA256}.Put(make([]byte, RangeSize)), nil},
		{TypeVerifyDigest, vd.Put(make([]byte, VerifyDigestSize)), nil},
		{TypePing, Ping{Token: 42, SentAt: -5}.Put(make([]byte, PingSize)), nil},
		{TypePong, Ping{Token: 42, SentAt: 1e18}.Put(make([]byte, PingSize)), nil},
		{TypeError, ErrorMsg{Code: 9, Message: "disk gone"}.Append(nil), nil},
		{TypeClose, Close{Code: CloseSplitBrain}.Put(make([]byte, CloseSize)), nil},
	}
}

func TestRoundTripEveryType(t *testing.T) {
	for _, mode := range []string{"plain", "mac", "encrypt"} {
		t.Run(mode, func(t *testing.T) {
			var stream bytes.Buffer
			w := NewWriter(&stream)
			r := NewReader(&stream, nil)
			switch mode {
			case "plain":
				r.plain = true
			case "mac":
				sessions(t, r, w, 1, false)
			case "encrypt":
				sessions(t, r, w, 1, true)
			}
			ss := samples()
			for i, s := range ss {
				seq, err := w.WriteFrame(s.t, s.head, s.data)
				if err != nil || seq != uint64(i) {
					t.Fatalf("write %s: seq %d, %v", s.t, seq, err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if mode == "encrypt" && bytes.Contains(stream.Bytes(), []byte("0123456789abcdef")) {
				t.Fatal("encrypted stream holds plaintext")
			}
			for i, s := range ss {
				f, err := r.ReadFrame()
				if err != nil {
					t.Fatalf("read %s: %v", s.t, err)
				}
				want := slices.Concat(s.head, s.data)
				if f.Type != s.t || f.Seq != uint64(i) || !bytes.Equal(f.Payload, want) {
					t.Fatalf("frame %d: got %s seq %d %x, want %s %x", i, f.Type, f.Seq, f.Payload, s.t, want)
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

func TestParsedFields(t *testing.T) {
	h, data, err := ParseWrite(slices.Concat(WriteHeader{Offset: 4096, Length: 3, Flags: WriteFUA}.Put(make([]byte, 16)), []byte("abc")))
	if err != nil || h.Offset != 4096 || h.Length != 3 || h.Flags != WriteFUA || string(data) != "abc" {
		t.Fatalf("write: %+v %q %v", h, data, err)
	}
	a, err := ParseWriteAck(WriteAck{From: 1, To: 2, Status: 3}.Put(make([]byte, WriteAckSize)))
	if err != nil || a != (WriteAck{From: 1, To: 2, Status: 3}) {
		t.Fatalf("write ack: %+v %v", a, err)
	}
	e, err := ParseError(ErrorMsg{Code: 4, Message: string(bytes.Repeat([]byte("x"), 300))}.Append(nil))
	if err != nil || e.Code != 4 || len(e.Message) != MaxErrorMessage {
		t.Fatalf("error: %+v %v", e, err)
	}
	hello := testHello(1)
	hello.Nonce[0] = 1
	got, err := ParseHello(hello.Put(make([]byte, HelloSize)))
	if err != nil || got != hello {
		t.Fatalf("hello: %+v %v", got, err)
	}
}

func TestMalformedPayloads(t *testing.T) {
	cases := []struct {
		t Type
		p []byte
	}{
		{TypeWrite, WriteHeader{Length: 5}.Put(make([]byte, 16))},                                          // data shorter than length
		{TypeWrite, slices.Concat(WriteHeader{Length: 1, Flags: 1 << 7}.Put(make([]byte, 16)), []byte{0})}, // unknown flag
		{TypeWrite, WriteHeader{Offset: ^uint64(0), Length: 0}.Put(make([]byte, 16))[:15]},                 // short
		{TypeResyncData, slices.Concat(WriteHeader{Length: 1, Flags: StatusIOError}.Put(make([]byte, 16)), []byte{0})},
		{TypeWriteAck, WriteAck{From: 5, To: 4}.Put(make([]byte, WriteAckSize))},
		{TypeWriteAck, make([]byte, WriteAckSize+1)},
		{TypeFlush, nil},
		{TypeBitmapChunk, BitmapHeader{Start: 0, Total: 8, Granularity: 3}.Put(make([]byte, BitmapHeaderSize))},
		{TypeBitmapChunk, slices.Concat(BitmapHeader{Start: 0, Total: 8, Granularity: 4096}.Put(make([]byte, BitmapHeaderSize)), []byte{1, 2})},
		{TypeResyncRequest, Range{Length: 1, Aux: 1}.Put(make([]byte, RangeSize))},
		{TypeVerifyRequest, Range{Length: 1, Aux: 0}.Put(make([]byte, RangeSize))},
		{TypeVerifyRequest, Range{Offset: ^uint64(0), Length: 2, Aux: DigestSHA256}.Put(make([]byte, RangeSize))},
		{TypePing, make([]byte, 15)},
		{TypeError, []byte{0, 0, 0, 1, 0, 5, 0, 0, 'a'}},
		{TypeClose, []byte{0, 0, 0, 0, 0, 0, 0, 1}},
		{TypeHello, make([]byte, HelloSize)}, // zero nonce
		{Type(0), nil},
	}
	for _, c := range cases {
		if err := Validate(c.t, c.p); !errors.Is(err, ErrRejected) {
			t.Errorf("%s %x: %v, want a rejection", c.t, c.p, err)
		}
	}
}

// oneFrame returns the bytes of one authenticated Write frame.
func oneFrame(t *testing.T, encrypt bool, seq uint64) []byte {
	t.Helper()
	var stream bytes.Buffer
	w := NewWriter(&stream)
	sessions(t, NewReader(nil, nil), w, 1, encrypt)
	w.seq = seq
	if _, err := w.WriteFrame(TypeWrite, WriteHeader{Offset: 512, Length: 40}.Put(make([]byte, 16)), bytes.Repeat([]byte{7}, 40)); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return stream.Bytes()
}

// readOne decodes stream with a Reader expecting sequence number next.
func readOne(t *testing.T, stream []byte, encrypt bool, next uint64) (*Reader, error) {
	t.Helper()
	r := NewReader(bytes.NewReader(stream), nil)
	sessions(t, r, NewWriter(io.Discard), 1, encrypt)
	r.next = next
	_, err := r.ReadFrame()
	return r, err
}

func TestEveryBitFlipRejected(t *testing.T) {
	for _, encrypt := range []bool{false, true} {
		good := oneFrame(t, encrypt, 0)
		if _, err := readOne(t, good, encrypt, 0); err != nil {
			t.Fatalf("good frame: %v", err)
		}
		for bit := range len(good) * 8 {
			bad := bytes.Clone(good)
			bad[bit/8] ^= 1 << (bit % 8)
			r, err := readOne(t, bad, encrypt, 0)
			reason, ok := ReasonOf(err)
			if !ok {
				t.Fatalf("encrypt=%v bit %d: %v, want a rejection", encrypt, bit, err)
			}
			if r.Counters().Rejected(reason) != 1 || r.Counters().Total() != 1 {
				t.Fatalf("bit %d: %s not counted once", bit, reason)
			}
			var want error
			off := bit / 8
			switch {
			case off < 4:
				want = ErrBadMagic
			case off < 8, off >= HeaderSize && off < len(good)-TagSize:
				want = ErrBadCRC
			case off >= len(good)-TagSize:
				want = ErrBadMAC
			}
			if want != nil && !errors.Is(err, want) {
				t.Fatalf("encrypt=%v bit %d (byte %d): %v, want %v", encrypt, bit, off, err, want)
			}
		}
	}
}

// TestForgedFrameRejected changes a frame and fixes its CRC, as a forger
// without the key would: only the MAC catches it.
func TestForgedFrameRejected(t *testing.T) {
	for _, encrypt := range []bool{false, true} {
		for _, off := range []int{offType, offSeq + 7, HeaderSize + 3, HeaderSize + 30} {
			bad := oneFrame(t, encrypt, 0)
			bad[off] ^= 0x01
			end := len(bad) - TagSize
			be.PutUint32(bad[offCRC:], crc32Of(bad[offVersion:end]))
			if _, err := readOne(t, bad, encrypt, 0); !errors.Is(err, ErrBadMAC) {
				t.Errorf("encrypt=%v forged byte %d: %v, want ErrBadMAC", encrypt, off, err)
			}
		}
	}
	// A frame authentic under another key.
	var stream bytes.Buffer
	w := NewWriter(&stream)
	sessions(t, NewReader(nil, nil), w, 2, false)
	if _, err := w.WriteFrame(TypeFlush, Flush{ID: 1}.Put(make([]byte, 8)), nil); err != nil {
		t.Fatal(err)
	}
	_ = w.Flush()
	if _, err := readOne(t, stream.Bytes(), false, 0); !errors.Is(err, ErrBadMAC) {
		t.Errorf("other key: %v, want ErrBadMAC", err)
	}
}

func TestTruncationRejected(t *testing.T) {
	good := oneFrame(t, false, 0)
	for n := 1; n < len(good); n++ {
		if _, err := readOne(t, good[:n], false, 0); !errors.Is(err, ErrTruncated) {
			t.Fatalf("%d of %d bytes: %v, want ErrTruncated", n, len(good), err)
		}
	}
	if _, err := readOne(t, nil, false, 0); err != io.EOF {
		t.Fatalf("empty stream: %v, want io.EOF", err)
	}
}

func TestOversizeRejected(t *testing.T) {
	good := oneFrame(t, false, 0)
	bad := bytes.Clone(good)
	be.PutUint32(bad[offLength:], MaxPayload+1)
	if _, err := readOne(t, bad, false, 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("length MaxPayload+1: %v, want ErrTooLarge", err)
	}
	r := NewReader(bytes.NewReader(good), nil)
	sessions(t, r, NewWriter(io.Discard), 1, false)
	r.SetMaxPayload(WriteHeaderSize + 39)
	if _, err := r.ReadFrame(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("above negotiated maximum: %v, want ErrTooLarge", err)
	}
	w := NewWriter(io.Discard)
	if _, err := w.WriteFrame(TypeWrite, nil, make([]byte, MaxPayload+1)); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("send oversize: %v", err)
	}
}

func TestReplayAndReorderRejected(t *testing.T) {
	f0, f1, f2 := oneFrame(t, false, 0), oneFrame(t, false, 1), oneFrame(t, false, 2)
	cases := []struct {
		name   string
		stream []byte
		want   error
	}{
		{"replay", slices.Concat(f0, f1, f1), ErrReplay},
		{"replay first", slices.Concat(f0, f1, f0), ErrReplay},
		{"gap", slices.Concat(f0, f2), ErrReorder},
		{"swap", slices.Concat(f0, f2, f1), ErrReorder},
	}
	for _, c := range cases {
		r := NewReader(bytes.NewReader(c.stream), nil)
		sessions(t, r, NewWriter(io.Discard), 1, false)
		var err error
		for err == nil {
			_, err = r.ReadFrame()
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if _, again := r.ReadFrame(); !errors.Is(again, ErrBroken) {
			t.Errorf("%s: after rejection: %v, want ErrBroken", c.name, again)
		}
	}
}

func TestStateRules(t *testing.T) {
	// A session frame before authentication.
	var stream bytes.Buffer
	w := NewWriter(&stream)
	_, _ = w.WriteFrame(TypeFlush, Flush{ID: 1}.Put(make([]byte, 8)), nil)
	_ = w.Flush()
	plain := bytes.Clone(stream.Bytes())
	if _, err := NewReader(bytes.NewReader(plain), nil).ReadFrame(); !errors.Is(err, ErrUnexpected) {
		t.Errorf("session frame before auth: %v, want ErrUnexpected", err)
	}
	// An unauthenticated frame after authentication.
	if _, err := readOne(t, plain, false, 0); !errors.Is(err, ErrBadMAC) {
		t.Errorf("untagged frame after auth: %v, want ErrBadMAC", err)
	}
	// A plaintext-tagged frame on an encrypted session and the reverse.
	if _, err := readOne(t, oneFrame(t, false, 0), true, 0); !errors.Is(err, ErrBadFlags) {
		t.Errorf("mac-only frame on encrypted session: %v, want ErrBadFlags", err)
	}
	if _, err := readOne(t, oneFrame(t, true, 0), false, 0); !errors.Is(err, ErrBadFlags) {
		t.Errorf("encrypted frame on mac-only session: %v, want ErrBadFlags", err)
	}
	// A handshake frame after authentication.
	stream.Reset()
	w = NewWriter(&stream)
	sessions(t, NewReader(nil, nil), w, 1, false)
	h := testHello(1)
	h.Nonce[0] = 1
	_, _ = w.WriteFrame(TypeHello, h.Put(make([]byte, HelloSize)), nil)
	_ = w.Flush()
	if _, err := readOne(t, stream.Bytes(), false, 0); !errors.Is(err, ErrUnexpected) {
		t.Errorf("hello after auth: %v, want ErrUnexpected", err)
	}
	// Compression was never negotiated; an unknown type.
	bad := bytes.Clone(plain)
	be.PutUint16(bad[offFlags:], FlagCompressed)
	be.PutUint32(bad[offCRC:], crc32Of(bad[offVersion:]))
	if _, err := NewReader(bytes.NewReader(bad), nil).ReadFrame(); !errors.Is(err, ErrBadFlags) {
		t.Errorf("compressed: %v, want ErrBadFlags", err)
	}
	bad = bytes.Clone(plain)
	bad[offType] = 200
	be.PutUint32(bad[offCRC:], crc32Of(bad[offVersion:]))
	if _, err := NewReader(bytes.NewReader(bad), nil).ReadFrame(); !errors.Is(err, ErrBadType) {
		t.Errorf("unknown type: %v, want ErrBadType", err)
	}
	bad = bytes.Clone(plain)
	bad[offVersion] = 2
	if _, err := NewReader(bytes.NewReader(bad), nil).ReadFrame(); !errors.Is(err, ErrBadVersion) {
		t.Errorf("version 2: %v, want ErrBadVersion", err)
	}
}

func TestCountersShared(t *testing.T) {
	var c Counters
	for range 3 {
		_, _ = NewReader(bytes.NewReader([]byte("XXXXXXXXXXXXXXXXXXXXXXXXXXXX")), &c).ReadFrame()
	}
	if c.Rejected(ReasonBadMagic) != 3 || c.Total() != 3 {
		t.Fatalf("bad_magic %d total %d, want 3 3", c.Rejected(ReasonBadMagic), c.Total())
	}
	for r := range NumReasons {
		if r.String() == "" || reasonErrs[r] == nil {
			t.Fatalf("reason %d has no name or error", r)
		}
	}
}

// TestSealedFrames: frames sealed at once by several goroutines, out of
// order, then written in sequence order among WriteFrame's buffered
// frames, are the bytes WriteFrame would have sent, in every mode; one
// written out of order is refused and sends nothing.
func TestSealedFrames(t *testing.T) {
	for _, mode := range []string{"plain", "mac", "encrypt"} {
		t.Run(mode, func(t *testing.T) {
			var want, got bytes.Buffer
			ww, w := NewWriter(&want), NewWriter(&got)
			r := NewReader(&got, nil)
			switch mode {
			case "plain":
				r.plain = true
			case "mac":
				sessions(t, r, w, 1, false)
				sessions(t, NewReader(nil, nil), ww, 1, false)
			case "encrypt":
				sessions(t, r, w, 1, true)
				sessions(t, NewReader(nil, nil), ww, 1, true)
			}
			ss := samples()
			for _, s := range ss {
				if _, err := ww.WriteFrame(s.t, s.head, s.data); err != nil {
					t.Fatal(err)
				}
			}
			if err := ww.Flush(); err != nil {
				t.Fatal(err)
			}
			// Odd frames are sealed concurrently, last first; even ones
			// go through WriteFrame when their turn comes.
			sealed := make([][]byte, len(ss))
			var wg sync.WaitGroup
			for i := len(ss) - 1; i >= 0; i -= 2 {
				if i%2 == 0 {
					continue
				}
				wg.Go(func() {
					f, err := w.SealFrame(make([]byte, 7), uint64(i), ss[i].t, ss[i].head, ss[i].data)
					if err != nil {
						t.Error(err)
					}
					sealed[i] = f
				})
			}
			wg.Wait()
			if err := w.WriteSealed(sealed[1]); !errors.Is(err, ErrOutOfOrder) || got.Len() != 0 {
				t.Fatalf("frame 1 first: %v, %d bytes sent", err, got.Len())
			}
			for i, s := range ss {
				var err error
				if i%2 == 1 {
					err = w.WriteSealed(sealed[i])
				} else {
					_, err = w.WriteFrame(s.t, s.head, s.data)
				}
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Fatal("sealed frames differ from WriteFrame's")
			}
			for i := range ss {
				if f, err := r.ReadFrame(); err != nil || f.Seq != uint64(i) {
					t.Fatalf("read frame %d: %+v %v", i, f, err)
				}
			}
			big := make([]byte, MaxPayload+1)
			if _, err := w.SealFrame(nil, w.NextSeq(), TypeWrite, nil, big); !errors.Is(err, ErrPayloadTooLarge) {
				t.Fatalf("oversized: %v", err)
			}
		})
	}
}
