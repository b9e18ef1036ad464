package wire

import (
	"bytes"
	"io"
	"testing"
)

// FuzzReadFrame feeds arbitrary streams to a Reader in each of its modes:
// it must never panic, never return a frame that fails Validate, and
// count every rejection.
func FuzzReadFrame(f *testing.F) {
	for _, s := range samples() {
		for mode := range byte(3) {
			var stream bytes.Buffer
			w := NewWriter(&stream)
			if mode > 0 {
				sessions(f, NewReader(nil, nil), w, 1, mode == 2)
			}
			_, _ = w.WriteFrame(s.t, s.head, s.data)
			_, _ = w.WriteFrame(s.t, s.head, s.data)
			_ = w.Flush()
			f.Add(mode, stream.Bytes())
		}
	}
	f.Fuzz(func(t *testing.T, mode byte, stream []byte) {
		r := NewReader(bytes.NewReader(stream), nil)
		switch mode % 4 {
		case 1:
			sessions(t, r, NewWriter(io.Discard), 1, false)
		case 2:
			sessions(t, r, NewWriter(io.Discard), 1, true)
		case 3:
			r.plain = true
		}
		var frames uint64
		for {
			fr, err := r.ReadFrame()
			if err != nil {
				if _, rejected := ReasonOf(err); rejected && r.Counters().Total() != 1 {
					t.Fatalf("rejection %v counted %d times", err, r.Counters().Total())
				}
				break
			}
			if err := Validate(fr.Type, fr.Payload); err != nil {
				t.Fatalf("returned an invalid frame: %v", err)
			}
			if fr.Seq != frames {
				t.Fatalf("frame %d has seq %d", frames, fr.Seq)
			}
			frames++
		}
	})
}

// FuzzHandshake feeds arbitrary bytes to both sides of the handshake and
// to the handshake parsers: no panic, and never a success without the key.
func FuzzHandshake(f *testing.F) {
	h := testHello(1)
	h.Nonce[0] = 1
	var stream bytes.Buffer
	w := NewWriter(&stream)
	_, _ = w.WriteFrame(TypeHello, h.Put(make([]byte, HelloSize)), nil)
	_, _ = w.WriteFrame(TypeAuth, make([]byte, AuthSize), nil)
	_ = w.Flush()
	f.Add(stream.Bytes())
	stream.Reset()
	w = NewWriter(&stream)
	ack := append(h.Put(make([]byte, HelloSize)), make([]byte, ProofSize)...)
	ack[96] = 2
	_, _ = w.WriteFrame(TypeHelloAck, ack, nil)
	_ = w.Flush()
	f.Add(stream.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		_, _ = ParseHello(in)
		_, _, _ = ParseHelloAck(in)
		_, _ = ParseAuth(in)
		cfg := Config{ClusterKey: []byte("k"), Local: testHello(3), Rand: bytes.NewReader(bytes.Repeat([]byte{5}, NonceSize))}
		if _, err := Server(NewReader(bytes.NewReader(in), nil), NewWriter(io.Discard), cfg); err == nil {
			t.Fatal("server handshake succeeded against fuzz input")
		}
		cfg.Rand = bytes.NewReader(bytes.Repeat([]byte{5}, NonceSize))
		if _, err := Client(NewReader(bytes.NewReader(in), nil), NewWriter(io.Discard), cfg); err == nil {
			t.Fatal("client handshake succeeded against fuzz input")
		}
	})
}
