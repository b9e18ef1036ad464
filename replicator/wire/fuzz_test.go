package wire

import (
	"bytes"
	"io"
	"testing"
)

// Fuzz modes of FuzzReadFrame: the Reader's state and codec options.
const (
	fuzzHandshake     = iota // before authentication
	fuzzMAC                  // authenticated
	fuzzEncrypt              // encrypted
	fuzzPlain                // session types without a tag (codec only)
	fuzzMACS2                // authenticated, compression negotiated
	fuzzEncryptS2            // encrypted, compression negotiated
	fuzzPlainS2              // no tag, compression negotiated
	fuzzPlainS2FixCRC        // as fuzzPlainS2, with every CRC made right first
	fuzzModes
)

var fuzzModeNames = [fuzzModes]string{
	fuzzMAC: "mac", fuzzEncrypt: "encrypt", fuzzPlain: "plain",
	fuzzMACS2: "mac+s2", fuzzEncryptS2: "encrypt+s2", fuzzPlainS2: "plain+s2", fuzzPlainS2FixCRC: "plain+s2",
}

// fixCRCs rewrites the CRC of every untagged frame in stream, so that
// mutated payloads, compressed blocks above all, get past the CRC to the
// decoder.
func fixCRCs(stream []byte) {
	for pos := 0; pos+HeaderSize <= len(stream); {
		end := pos + HeaderSize + int(be.Uint32(stream[pos+offLength:]))
		if end > len(stream) || end < pos {
			return
		}
		be.PutUint32(stream[pos+offCRC:], crc32Of(stream[pos+offVersion:end]))
		pos = end
	}
}

// FuzzReadFrame feeds arbitrary streams to a Reader in each of its modes,
// compressed frames included: it must never panic, never return a frame
// that fails Validate, never grow its decompression buffer past one
// data block, and count every rejection.
func FuzzReadFrame(f *testing.F) {
	ss := samples()
	text := bytes.Repeat([]byte("mirror disk replication, "), 200)[:4096]
	ss = append(ss,
		sample{TypeWrite, WriteHeader{Offset: 4096, Length: 4096}.Put(make([]byte, WriteHeaderSize)), text},
		sample{TypeResyncData, WriteHeader{Offset: 0, Length: 8192}.Put(make([]byte, WriteHeaderSize)), make([]byte, 8192)})
	for _, s := range ss {
		for mode := range byte(fuzzModes) {
			var stream bytes.Buffer
			w := NewWriter(&stream)
			if mode != fuzzHandshake {
				setMode(f, NewReader(nil, nil), w, fuzzModeNames[mode])
			}
			_, _ = w.WriteFrame(s.t, s.head, s.data)
			_, _ = w.WriteFrame(s.t, s.head, s.data)
			_ = w.Flush()
			f.Add(mode, stream.Bytes())
		}
	}
	f.Fuzz(func(t *testing.T, mode byte, stream []byte) {
		mode %= fuzzModes
		if mode == fuzzPlainS2FixCRC {
			stream = bytes.Clone(stream)
			fixCRCs(stream)
		}
		r := NewReader(bytes.NewReader(stream), nil)
		if mode != fuzzHandshake {
			setMode(t, r, NewWriter(io.Discard), fuzzModeNames[mode])
		}
		var frames uint64
		for {
			fr, err := r.ReadFrame()
			if cap(r.dbuf) > WriteHeaderSize+MaxData {
				t.Fatalf("decompression buffer grew to %d bytes", cap(r.dbuf))
			}
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
		cfg := Config{ClusterKey: []byte("k"), Local: testHello(3), Rand: bytes.NewReader(bytes.Repeat([]byte{5}, NonceSize)), Compress: true}
		if _, err := Server(NewReader(bytes.NewReader(in), nil), NewWriter(io.Discard), cfg); err == nil {
			t.Fatal("server handshake succeeded against fuzz input")
		}
		cfg.Rand = bytes.NewReader(bytes.Repeat([]byte{5}, NonceSize))
		if _, err := Client(NewReader(bytes.NewReader(in), nil), NewWriter(io.Discard), cfg); err == nil {
			t.Fatal("client handshake succeeded against fuzz input")
		}
	})
}
