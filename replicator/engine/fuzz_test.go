package engine

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/replicator/meta"
	"github.com/vigil-ha/vigil/replicator/wire"
)

// memVolume is an in-memory Volume for the fuzz target.
type memVolume struct {
	mu sync.Mutex
	b  []byte
}

func (v *memVolume) ReadAt(p []byte, off int64) (int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if off < 0 || off >= int64(len(v.b)) {
		return 0, io.EOF
	}
	n := copy(p, v.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (v *memVolume) WriteAt(p []byte, off int64) (int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(v.b)) {
		return 0, io.ErrShortWrite
	}
	return copy(v.b[off:], p), nil
}

func (v *memVolume) Sync() error { return nil }

// fuzzRecord encodes one frame for FuzzSession's input: type, payload
// length (u16), payload.
func fuzzRecord(t wire.Type, payload []byte) []byte {
	b := []byte{byte(t), 0, 0}
	binary.LittleEndian.PutUint16(b[1:], uint16(len(payload)))
	return append(b, payload...)
}

// FuzzSession authenticates as a primary peer of a secondary engine and
// then sends it arbitrary session frames (authentic, in sequence, with
// any type and payload): the engine must never panic, must end the
// connection on what it cannot accept, and must close cleanly. This
// covers the engine's reading of network input past wire's parsers:
// control flush ids, ranges against the volume, acks for nothing,
// resync frames outside a resync, digests for no request, role changes.
func FuzzSession(f *testing.F) {
	var b [64]byte
	w := wire.WriteHeader{Offset: 4096, Length: 16}.Put(b[:])
	write := append(append([]byte{}, w...), make([]byte, 16)...)
	flush := func(id uint64) []byte { return wire.Flush{ID: id}.Put(make([]byte, wire.FlushSize)) }
	rng := wire.Range{Offset: 0, Length: 4096, Aux: wire.DigestSHA256}.Put(make([]byte, wire.RangeSize))
	ping := wire.Ping{Token: 1}.Put(make([]byte, wire.PingSize))
	var seeds [][]byte
	seeds = append(seeds,
		fuzzRecord(wire.TypeWrite, write),
		append(fuzzRecord(wire.TypeWrite, write), fuzzRecord(wire.TypeFlush, flush(1))...),
		append(fuzzRecord(wire.TypeFlush, flush(ResyncBeginID)), append(fuzzRecord(wire.TypeResyncData, write), fuzzRecord(wire.TypeFlush, flush(ResyncDoneID))...)...),
		fuzzRecord(wire.TypeResyncData, write),
		fuzzRecord(wire.TypeFlush, flush(ResyncDoneID)),
		fuzzRecord(wire.TypeFlush, flush(PromoteID)),
		append(fuzzRecord(wire.TypeFlush, flush(DemoteID)), fuzzRecord(wire.TypeWrite, write)...),
		fuzzRecord(wire.TypeFlush, flush(controlID|77)),
		fuzzRecord(wire.TypeVerifyRequest, rng),
		fuzzRecord(wire.TypeVerifyDigest, append(append([]byte{}, rng...), make([]byte, wire.DigestSize)...)),
		fuzzRecord(wire.TypeWriteAck, wire.WriteAck{From: 0, To: 1 << 40}.Put(make([]byte, wire.WriteAckSize))),
		fuzzRecord(wire.TypeFlushAck, wire.FlushAck{ID: 9}.Put(make([]byte, wire.FlushAckSize))),
		fuzzRecord(wire.TypeBitmapChunk, wire.BitmapHeader{Total: 2, Granularity: 4096}.Put(make([]byte, wire.BitmapHeaderSize))),
		append(fuzzRecord(wire.TypePing, ping), fuzzRecord(wire.TypePong, ping)...),
		fuzzRecord(wire.TypeClose, wire.Close{Code: wire.CloseNormal}.Put(make([]byte, wire.CloseSize))),
		fuzzRecord(wire.TypeHello, make([]byte, wire.HelloSize)),
	)
	big := wire.WriteHeader{Offset: 1 << 40, Length: 16}.Put(make([]byte, wire.WriteHeaderSize))
	seeds = append(seeds, fuzzRecord(wire.TypeWrite, append(big, make([]byte, 16)...)))
	for _, s := range seeds {
		f.Add(s)
	}
	dir := f.TempDir()
	var iter int
	f.Fuzz(func(t *testing.T, in []byte) {
		iter++
		const size = 64 << 10
		gens := meta.Generations{Current: 0xabc}
		st, err := meta.Create(filepath.Join(dir, "meta"+strconv.Itoa(iter)), meta.Superblock{
			VolumeUUID: [16]byte{7}, Size: size, BlockSize: 4096, Granularity: 4096,
			Flags: meta.FlagConsistent, Gens: gens,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		e, err := New(Config{
			Role: Secondary, Node: 2, ClusterKey: testKey, ConfigHash: [16]byte{1},
			Data: &memVolume{b: make([]byte, size)}, Meta: st,
			PingInterval: time.Second, Timeout: 2 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		a, b := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- e.Connect(context.Background(), b, false) }()
		r, w := wire.NewReader(a, nil), wire.NewWriter(a)
		_ = a.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = wire.Client(r, w, wire.Config{ClusterKey: testKey, Local: wire.Hello{
			ConfigHash: [16]byte{1}, VolumeUUID: [16]byte{7}, Incarnation: 1, Size: size,
			BlockSize: 4096, Node: 1, Role: wire.RolePrimary, Gens: wire.Generations(gens), DiskFlags: meta.FlagConsistent,
		}})
		if err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		drained := make(chan struct{})
		go func() { // the engine's acks and digests
			defer close(drained)
			_, _ = io.Copy(io.Discard, a)
		}()
		for len(in) >= 3 {
			typ, n := wire.Type(in[0]), int(binary.LittleEndian.Uint16(in[1:]))
			in = in[3:]
			n = min(n, len(in))
			if _, err := w.WriteFrame(typ, in[:n], nil); err != nil {
				break
			}
			in = in[n:]
			if w.Flush() != nil {
				break
			}
		}
		a.Close()
		<-drained
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		if st := e.Status(); st.State != StandAlone || st.Peer != -1 {
			t.Fatalf("after the peer left: %+v", st)
		}
	})
}
