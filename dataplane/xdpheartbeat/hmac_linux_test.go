package xdpheartbeat

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
	"testing"

	"github.com/vigil-ha/vigil/dataplane/heartbeat"
)

// TestHMACStates finishes HMAC-SHA256 from the precomputed states the way
// the kernel does (message blocks, then one outer block), with a reference
// SHA-256 compression written here, and compares with crypto/hmac for every
// message length a heartbeat can have.
func TestHMACStates(t *testing.T) {
	key := heartbeat.DeriveKey(testKey)
	inner, outer, err := hmacStates(key)
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, heartbeat.MaxPacketSize)
	for i := range msg {
		msg[i] = byte(i*31 + 7)
	}
	for n := heartbeat.HeaderSize; n <= heartbeat.MaxPacketSize-heartbeat.TagSize; n++ {
		m := hmac.New(sha256.New, key[:])
		m.Write(msg[:n])
		want := m.Sum(nil)[:heartbeat.TagSize]

		st := inner
		for _, blk := range pad(msg[:n], 64) {
			compress(&st, blk)
		}
		var digest [32]byte
		for i, w := range st {
			binary.BigEndian.PutUint32(digest[4*i:], w)
		}
		st = outer
		for _, blk := range pad(digest[:], 64) {
			compress(&st, blk)
		}
		var got [16]byte
		for i := range 4 {
			binary.BigEndian.PutUint32(got[4*i:], st[i])
		}
		if !bytes.Equal(got[:], want) {
			t.Fatalf("message of %d bytes: tag %x, want %x", n, got, want)
		}
	}
}

// pad returns msg padded the SHA-256 way, as blocks, for a hash that has
// already absorbed prefix bytes.
func pad(msg []byte, prefix int) [][]byte {
	b := append(bytes.Clone(msg), 0x80)
	for len(b)%64 != 56 {
		b = append(b, 0)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(prefix+len(msg))*8)
	var blocks [][]byte
	for len(b) > 0 {
		blocks = append(blocks, b[:64])
		b = b[64:]
	}
	return blocks
}

var k256 = [64]uint32{
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

// compress is FIPS 180-4's SHA-256 compression function.
func compress(st *[8]uint32, blk []byte) {
	var w [64]uint32
	for i := range 16 {
		w[i] = binary.BigEndian.Uint32(blk[4*i:])
	}
	for i := 16; i < 64; i++ {
		s0 := bits.RotateLeft32(w[i-15], -7) ^ bits.RotateLeft32(w[i-15], -18) ^ w[i-15]>>3
		s1 := bits.RotateLeft32(w[i-2], -17) ^ bits.RotateLeft32(w[i-2], -19) ^ w[i-2]>>10
		w[i] = w[i-16] + s0 + w[i-7] + s1
	}
	a, b, c, d, e, f, g, h := st[0], st[1], st[2], st[3], st[4], st[5], st[6], st[7]
	for i := range 64 {
		t1 := h + (bits.RotateLeft32(e, -6) ^ bits.RotateLeft32(e, -11) ^ bits.RotateLeft32(e, -25)) + (e&f ^ ^e&g) + k256[i] + w[i]
		t2 := (bits.RotateLeft32(a, -2) ^ bits.RotateLeft32(a, -13) ^ bits.RotateLeft32(a, -22)) + (a&b ^ a&c ^ b&c)
		h, g, f, e, d, c, b, a = g, f, e, d+t1, c, b, a, t1+t2
	}
	st[0] += a
	st[1] += b
	st[2] += c
	st[3] += d
	st[4] += e
	st[5] += f
	st[6] += g
	st[7] += h
}
