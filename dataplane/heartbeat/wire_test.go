package heartbeat

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

func sampleProbe(payload []byte) Packet {
	return Packet{
		Type:        TypeProbe,
		Sender:      2,
		Lane:        1,
		Flags:       0,
		ConfigHash:  [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		Incarnation: 0x0102030405060708,
		Nonce:       [16]byte{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf},
		Seq:         42,
		SentAt:      1_700_000_000_123_456_789,
		Payload:     payload,
	}
}

func sampleReply() Packet {
	return Packet{
		Type:        TypeReply,
		Sender:      3,
		Lane:        1,
		Flags:       FlagKernelReply,
		ConfigHash:  [16]byte{0xff, 0xfe},
		Incarnation: 99,
		Nonce:       [16]byte{1},
		Seq:         42,
		SentAt:      1_700_000_000_200_000_000,
		EchoSentAt:  1_700_000_000_123_456_789,
		ReceivedAt:  -5,
		Epoch:       1 << 63,
	}
}

func mustAppend(t testing.TB, c *Codec, p Packet) []byte {
	t.Helper()
	b, err := c.Append(nil, &p)
	if err != nil {
		t.Fatalf("append %v: %v", p.Type, err)
	}
	return b
}

// TestWireLayout pins the byte layout documented in doc.go.
func TestWireLayout(t *testing.T) {
	c := NewCodec(testKey)
	b := mustAppend(t, c, sampleProbe([]byte("xyz")))
	if len(b) != ProbeMinSize+3 || ProbeMinSize != 84 || ProbeMaxSize != 1108 || ReplySize != 106 || HeaderSize != 66 {
		t.Fatalf("sizes: probe %d, min %d, max %d, reply %d, header %d", len(b), ProbeMinSize, ProbeMaxSize, ReplySize, HeaderSize)
	}
	want := []byte{
		'V', 'G', 'H', 'B', // magic
		1,    // version
		1,    // type probe
		2,    // sender
		1,    // lane
		0, 0, // flags
		1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, // config hash
		1, 2, 3, 4, 5, 6, 7, 8, // incarnation
		0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf, // nonce
		0, 0, 0, 0, 0, 0, 0, 42, // seq
	}
	want = binary.BigEndian.AppendUint64(want, 1_700_000_000_123_456_789) // send time
	want = append(want, 0, 3, 'x', 'y', 'z')                              // payload length, payload
	if !bytes.Equal(b[:len(want)], want) {
		t.Fatalf("probe bytes\n got %x\nwant %x", b[:len(want)], want)
	}

	r := mustAppend(t, c, sampleReply())
	if len(r) != ReplySize {
		t.Fatalf("reply is %d bytes", len(r))
	}
	if r[offType] != 2 || binary.BigEndian.Uint16(r[8:]) != 1 ||
		int64(binary.BigEndian.Uint64(r[66:])) != 1_700_000_000_123_456_789 ||
		int64(binary.BigEndian.Uint64(r[74:])) != -5 ||
		binary.BigEndian.Uint64(r[82:]) != 1<<63 {
		t.Fatalf("reply fields misplaced: %x", r)
	}

	// The tag is HMAC-SHA256 with the derived subkey, truncated, over the rest.
	k := DeriveKey(testKey)
	if got, want := r[90:], hmacSHA256(k[:], r[:90])[:16]; !bytes.Equal(got, want) {
		t.Fatalf("tag %x, want %x", got, want)
	}
	if got, want := k[:], hmacSHA256(testKey, []byte("vigil heartbeat v1")); !bytes.Equal(got, want) {
		t.Fatalf("subkey %x, want %x", got, want)
	}
}

func TestRoundtrip(t *testing.T) {
	c := NewCodec(testKey)
	for _, p := range []Packet{
		sampleProbe(nil),
		sampleProbe([]byte("group state")),
		sampleProbe(bytes.Repeat([]byte{7}, MaxPayload)),
		sampleReply(),
	} {
		b := mustAppend(t, c, p)
		got, err := c.Decode(b)
		if err != nil {
			t.Fatalf("decode %v: %v", p.Type, err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Fatalf("roundtrip\n got %+v\nwant %+v", got, p)
		}
	}
}

// randomPacket returns a random valid packet.
func randomPacket(r *rand.Rand) Packet {
	p := Packet{
		Type:        TypeProbe,
		Sender:      uint8(r.Uint32()),
		Lane:        uint8(r.Uint32()),
		Flags:       uint16(r.Uint32()),
		Incarnation: r.Uint64(),
		Seq:         r.Uint64(),
		SentAt:      r.Int64() - r.Int64(),
	}
	for i := range p.ConfigHash {
		p.ConfigHash[i] = byte(r.Uint32())
		p.Nonce[i] = byte(r.Uint32())
	}
	if r.IntN(2) == 0 {
		if n := r.IntN(MaxPayload + 1); n > 0 {
			p.Payload = make([]byte, n)
			for i := range p.Payload {
				p.Payload[i] = byte(r.Uint32())
			}
		}
	} else {
		p.Type = TypeReply
		p.EchoSentAt = int64(r.Uint64())
		p.ReceivedAt = int64(r.Uint64())
		p.Epoch = r.Uint64()
	}
	return p
}

// TestRoundtripProperty checks, on random packets, that Decode inverts
// Append, that Append appends without touching the prefix, and that flipping
// any single bit makes Decode fail.
func TestRoundtripProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	c := NewCodec(testKey)
	for i := range 500 {
		p := randomPacket(r)
		prefix := []byte("prefix")
		b, err := c.Append(append([]byte(nil), prefix...), &p)
		if err != nil {
			t.Fatalf("#%d: append: %v", i, err)
		}
		if !bytes.HasPrefix(b, prefix) {
			t.Fatalf("#%d: prefix clobbered", i)
		}
		b = b[len(prefix):]
		got, err := c.Decode(b)
		if err != nil {
			t.Fatalf("#%d: decode: %v", i, err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Fatalf("#%d: roundtrip\n got %+v\nwant %+v", i, got, p)
		}
		bit := r.IntN(8 * len(b))
		b[bit/8] ^= 1 << (bit % 8)
		if _, err := c.Decode(b); err == nil {
			t.Fatalf("#%d: decode accepted a packet with bit %d flipped", i, bit)
		}
	}
}

// TestDecodeErrors covers every decode error class.
func TestDecodeErrors(t *testing.T) {
	c := NewCodec(testKey)
	probe := mustAppend(t, c, sampleProbe([]byte("abc")))
	reply := mustAppend(t, c, sampleReply())
	edit := func(b []byte, f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), b...))
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"shorter than header and tag", probe[:HeaderSize+TagSize-1], ErrShort},
		{"bad magic", edit(probe, func(b []byte) []byte { b[0] = 'X'; return b }), ErrMagic},
		{"version 0", edit(probe, func(b []byte) []byte { b[offVersion] = 0; return b }), ErrVersion},
		{"version 2", edit(probe, func(b []byte) []byte { b[offVersion] = 2; return b }), ErrVersion},
		{"type 0", edit(probe, func(b []byte) []byte { b[offType] = 0; return b }), ErrType},
		{"type 3", edit(probe, func(b []byte) []byte { b[offType] = 3; return b }), ErrType},
		{"truncated probe", probe[:len(probe)-1], ErrShort},
		{"probe payload length past end", edit(probe, func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[offPayloadLen:], 100)
			return b
		}), ErrShort},
		{"probe with trailing bytes", append(append([]byte(nil), probe...), 0), ErrLength},
		{"probe payload length over max", edit(probe, func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[offPayloadLen:], MaxPayload+1)
			return b
		}), ErrOversize},
		{"truncated reply", reply[:len(reply)-1], ErrShort},
		{"reply with trailing bytes", append(append([]byte(nil), reply...), 0), ErrLength},
		{"datagram over max", make([]byte, MaxPacketSize+1), ErrOversize},
		{"probe tag flipped", edit(probe, func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrBadMAC},
		{"reply body flipped", edit(reply, func(b []byte) []byte { b[offEpoch] ^= 0x80; return b }), ErrBadMAC},
		{"probe from another key", mustAppend(t, NewCodec([]byte("another key, just as long!!!!!!!")), sampleProbe(nil)), ErrBadMAC},
		{"reply from another key", mustAppend(t, NewCodec([]byte("another key, just as long!!!!!!!")), sampleReply()), ErrBadMAC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Decode(tt.b)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			structural := tt.want != ErrOversize && tt.want != ErrBadMAC
			if errors.Is(err, ErrMalformed) != structural {
				t.Fatalf("errors.Is(%v, ErrMalformed) = %v", err, !structural)
			}
		})
	}
}

func TestAppendErrors(t *testing.T) {
	c := NewCodec(testKey)
	dst := []byte("keep")
	p := sampleProbe(make([]byte, MaxPayload+1))
	if got, err := c.Append(dst, &p); !errors.Is(err, ErrOversize) || string(got) != "keep" {
		t.Fatalf("oversize payload: %q, %v", got, err)
	}
	p = sampleProbe(nil)
	p.Type = 9
	if got, err := c.Append(dst, &p); !errors.Is(err, ErrType) || string(got) != "keep" {
		t.Fatalf("unknown type: %q, %v", got, err)
	}
}

func TestAppendDoesNotAllocate(t *testing.T) {
	c := NewCodec(testKey)
	probe := sampleProbe(make([]byte, 256))
	reply := sampleReply()
	buf := make([]byte, 0, MaxPacketSize)
	var err error
	allocs := testing.AllocsPerRun(100, func() {
		buf, _ = c.Append(buf[:0], &probe)
		if _, err = c.Decode(buf); err != nil {
			return
		}
		buf, _ = c.Append(buf[:0], &reply)
		_, err = c.Decode(buf)
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Fatalf("%v allocations per encode/decode, want 0", allocs)
	}
}

func FuzzDecode(f *testing.F) {
	c := NewCodec(testKey)
	f.Add(mustAppend(f, c, sampleProbe(nil)))
	f.Add(mustAppend(f, c, sampleProbe([]byte("group state"))))
	f.Add(mustAppend(f, c, sampleProbe(bytes.Repeat([]byte{0xff}, MaxPayload))))
	f.Add(mustAppend(f, c, sampleReply()))
	f.Add(mustAppend(f, NewCodec([]byte("wrong key wrong key wrong key!!!")), sampleReply()))
	f.Add([]byte{})
	f.Add([]byte("VGHB"))
	f.Add([]byte("VGHB\x01\x01 garbage garbage garbage garbage garbage garbage garbage garbage garbage garbage"))
	f.Add(bytes.Repeat([]byte{0}, ReplySize))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := c.Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrOversize) && !errors.Is(err, ErrBadMAC) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		// A packet that decodes is canonical: encoding it gives it back.
		again, err := c.Append(nil, &p)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs\n got %x\nwant %x", again, b)
		}
	})
}

func BenchmarkEncodeDecodeProbe(b *testing.B) {
	c := NewCodec(testKey)
	p := sampleProbe(make([]byte, 256))
	buf := make([]byte, 0, MaxPacketSize)
	b.ReportAllocs()
	b.SetBytes(int64(ProbeMinSize + len(p.Payload)))
	for b.Loop() {
		buf, _ = c.Append(buf[:0], &p)
		if _, err := c.Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineHMAC is the floor BenchmarkEncodeDecodeProbe is measured
// against: the two HMAC-SHA256 computations (sign, verify) over the same
// bytes, with a fresh HMAC each time as a naive codec would, and nothing else.
func BenchmarkBaselineHMAC(b *testing.B) {
	key := DeriveKey(testKey)
	msg := make([]byte, ProbeMinSize-TagSize+256)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg) + TagSize))
	for b.Loop() {
		for range 2 {
			m := hmac.New(sha256.New, key[:])
			m.Write(msg)
			m.Sum(nil)
		}
	}
}
