package wire

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkCodec encodes and decodes one Write frame per iteration through
// an in-memory stream; MB/s counts the data block.
func BenchmarkCodec(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20} {
		for _, mode := range []string{"plain", "mac", "encrypt"} {
			b.Run(fmt.Sprintf("%dKiB/%s", size>>10, mode), func(b *testing.B) {
				var stream bytes.Buffer
				stream.Grow(2 * MaxFrameSize)
				w := NewWriter(&stream)
				r := NewReader(&stream, nil)
				switch mode {
				case "plain":
					r.plain = true
				case "mac":
					sessions(b, r, w, 1, false)
				case "encrypt":
					sessions(b, r, w, 1, true)
				}
				data := make([]byte, size)
				var hb [WriteHeaderSize]byte
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					h := WriteHeader{Offset: 0, Length: uint32(size), Flags: WriteFUA}
					if _, err := w.WriteFrame(TypeWrite, h.Put(hb[:]), data); err != nil {
						b.Fatal(err)
					}
					if err := w.Flush(); err != nil {
						b.Fatal(err)
					}
					if _, err := r.ReadFrame(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkCompression encodes and decodes one authenticated Write frame
// per iteration, with and without s2 compression, for zero-filled,
// text-like and random data blocks: "off" is the uncompressed baseline of
// the same run. MB/s counts the data block before compression; wire/raw
// is the frame's size on the wire over the data block's.
func BenchmarkCompression(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20} {
		for _, kind := range []string{"zero", "text", "random"} {
			data := dataKind(kind, size)
			for _, mode := range []string{"mac", "mac+s2"} {
				name := map[string]string{"mac": "off", "mac+s2": "s2"}[mode]
				b.Run(fmt.Sprintf("%dKiB/%s/%s", size>>10, kind, name), func(b *testing.B) {
					var stream bytes.Buffer
					stream.Grow(2 * MaxFrameSize)
					w := NewWriter(&stream)
					r := NewReader(&stream, nil)
					setMode(b, r, w, mode)
					var hb [WriteHeaderSize]byte
					h := WriteHeader{Offset: 0, Length: uint32(size)}
					var wire int
					b.SetBytes(int64(size))
					b.ReportAllocs()
					for b.Loop() {
						if _, err := w.WriteFrame(TypeWrite, h.Put(hb[:]), data); err != nil {
							b.Fatal(err)
						}
						if err := w.Flush(); err != nil {
							b.Fatal(err)
						}
						wire = stream.Len()
						if _, err := r.ReadFrame(); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(wire)/float64(size), "wire/raw")
				})
			}
		}
	}
}
