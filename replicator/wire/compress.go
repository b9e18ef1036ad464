package wire

import (
	"bytes"
	"encoding/binary"

	"github.com/klauspost/compress/s2"
)

// Compression of data blocks (CapCompress). Only the data of Write and
// StatusOK ResyncData frames is compressed, as one s2 block after the
// message's own 16-byte header, which stays in clear so that the receiver
// knows the decompressed length before it decompresses. doc.go describes
// the format.
const (
	// minCompress is the smallest data block the Writer tries to compress:
	// below it the s2 block header and the decoder's work cost more than
	// anything there is to save.
	minCompress = 128
	// compressGain is the share of the data (1/compressGain) a compressed
	// block must save to be sent instead of the raw data; s2 itself gives up
	// on a block near the same bound.
	compressGain = 32
	// maxZeroBlock bounds the size of appendZeroBlock's blocks of up to
	// MaxData bytes (164 for 1 MiB), with room to spare.
	maxZeroBlock = 256
)

// compressible reports whether a frame of type t may carry compressed
// data: a Write, or a ResyncData with StatusOK (its status is the last
// word of the header).
func compressible(t Type, hdr []byte) bool {
	switch t {
	case TypeWrite:
		return true
	case TypeResyncData:
		return be.Uint32(hdr[12:]) == StatusOK
	}
	return false
}

// zeroPage is compared against data to find all-zero blocks.
var zeroPage [4096]byte

// allZero reports whether p holds only zero bytes. It stops at the first
// 4 KiB page that holds anything else, so non-zero data costs next to
// nothing.
func allZero(p []byte) bool {
	for len(p) > 0 {
		n := min(len(p), len(zeroPage))
		if !bytes.Equal(p[:n], zeroPage[:n]) {
			return false
		}
		p = p[n:]
	}
	return true
}

// appendZeroBlock appends to dst an s2 block of n zero bytes (n >= 1) in
// a fixed form, and returns the extended slice. s2.Encode codes a run of
// zeros as one long copy from one byte back, which every decoder must
// copy a byte at a time (s2 decodes zero-filled blocks at about 0.4 GB/s
// on the development machine). This form is a 32-byte literal and then
// copies that each double the output from offset 0 (a 4-byte-offset copy
// of up to 64 bytes, then an s2 repeat for the rest of the doubling), so
// no copy overlaps its source; a 1 MiB block is 164 bytes. The Reader
// recognises this exact form and clears its buffer instead of decoding,
// and any s2 decoder decodes it as well.
func appendZeroBlock(dst []byte, n int) []byte {
	dst = binary.AppendUvarint(dst, uint64(n))
	lit := min(n, 32)
	dst = append(dst, byte(lit-1)<<2) // literal, length-1 in the tag
	dst = append(dst, zeroPage[:lit]...)
	for d := lit; d < n; {
		l := min(d, n-d) // copy l bytes from offset 0: never overlaps
		c := min(l, 64)
		dst = append(dst, byte(c-1)<<2|3) // copy, 4-byte offset d
		dst = binary.LittleEndian.AppendUint32(dst, uint32(d))
		// The rest repeats offset d: a copy-1 tag with offset 0 whose
		// length code 4..7 selects the length's encoding.
		switch r := l - c; {
		case r == 0:
		case r <= 64:
			dst = append(dst, byte(r-1)<<2|3)
			dst = binary.LittleEndian.AppendUint32(dst, uint32(d))
		case r <= 8+255:
			dst = append(dst, 5<<2|1, 0, byte(r-8))
		case r <= 260+65535:
			dst = append(dst, 6<<2|1, 0)
			dst = binary.LittleEndian.AppendUint16(dst, uint16(r-260))
		default: // r <= 65540 + 1<<24 - 1, more than MaxData
			v := r - 65540
			dst = append(dst, 7<<2|1, 0, byte(v), byte(v>>8), byte(v>>16))
		}
		d += l
	}
	return dst
}

// worthIt reports whether an encoded block of n bytes is small enough to
// send instead of raw data of size bytes.
func worthIt(n, size int) bool { return n <= size-size/compressGain-1 }

// decompress returns the payload of a compressed frame of type t: p's
// header followed by its s2 block decoded into r.dbuf. The decompressed
// length is read from the block and checked against the header's declared
// length, MaxData and the Reader's maximum payload before anything is
// decoded, so a hostile block can neither allocate nor write beyond the
// limit. Every failure is a malformed payload.
func (r *Reader) decompress(t Type, p []byte) ([]byte, error) {
	if len(p) < WriteHeaderSize {
		return nil, malformed(t, "compressed payload shorter than its header")
	}
	hdr, block := p[:WriteHeaderSize], p[WriteHeaderSize:]
	if !compressible(t, hdr) {
		return nil, malformed(t, "compressed frame carries no data")
	}
	declared := be.Uint32(hdr[8:])
	if declared > MaxData || WriteHeaderSize+int(declared) > r.maxPayload {
		return nil, malformed(t, "declared length too large")
	}
	n, err := s2.DecodedLen(block)
	if err != nil || n != int(declared) {
		return nil, malformed(t, "decompressed length differs from declared length")
	}
	size := WriteHeaderSize + n
	if cap(r.dbuf) < size {
		r.dbuf = r.dbufs.get(r.dbuf[:0:min(cap(r.dbuf), (WriteHeaderSize+MaxData)/2)], size, WriteHeaderSize)
	}
	r.inDBuf = true
	out := r.dbuf[:size]
	copy(out, hdr)
	if len(block) <= maxZeroBlock {
		r.zbuf = appendZeroBlock(r.zbuf[:0], n)
		if bytes.Equal(block, r.zbuf) {
			clear(out[WriteHeaderSize:])
			return out, nil
		}
	}
	// out[WriteHeaderSize:] has room for exactly n bytes, so Decode
	// writes in place and never allocates.
	if _, err := s2.Decode(out[WriteHeaderSize:], block); err != nil {
		return nil, malformed(t, "corrupt compressed data")
	}
	return out, nil
}
