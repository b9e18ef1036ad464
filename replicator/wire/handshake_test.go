package wire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
)

type side struct {
	r   *Reader
	w   *Writer
	res Result
	err error
}

// handshake runs Client and Server over a net.Pipe and returns both sides.
func handshake(t *testing.T, ckey, skey []byte, ccfg, scfg Hello) (c, s *side) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	c = &side{r: NewReader(a, nil), w: NewWriter(a)}
	s = &side{r: NewReader(b, nil), w: NewWriter(b)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.res, s.err = Server(s.r, s.w, Config{ClusterKey: skey, Local: scfg})
		if s.err != nil {
			b.Close()
		}
	}()
	c.res, c.err = Client(c.r, c.w, Config{ClusterKey: ckey, Local: ccfg})
	if c.err != nil {
		a.Close()
	}
	<-done
	return c, s
}

func TestHandshakeSuccess(t *testing.T) {
	key := []byte("cluster secret")
	for _, enc := range []bool{false, true} {
		ch, sh := testHello(1), testHello(2)
		if enc {
			ch.Caps, sh.Caps = CapEncrypt|CapCompress, CapEncrypt
		}
		sh.Role = RolePrimary
		c, s := handshake(t, key, key, ch, sh)
		if c.err != nil || s.err != nil {
			t.Fatalf("encrypt=%v: client %v, server %v", enc, c.err, s.err)
		}
		if c.res.Peer.Node != 2 || c.res.Peer.Role != RolePrimary || s.res.Peer.Node != 1 || s.res.Peer.Gens != ch.Gens {
			t.Fatalf("peers: %+v / %+v", c.res.Peer, s.res.Peer)
		}
		if wantCaps := map[bool]uint32{false: 0, true: CapEncrypt}[enc]; c.res.Caps != wantCaps || s.res.Caps != wantCaps {
			t.Fatalf("caps %x %x, want %x", c.res.Caps, s.res.Caps, wantCaps)
		}
		// Session frames both ways.
		exchange(t, c, s)
		exchange(t, s, c)
	}
}

func exchange(t *testing.T, from, to *side) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := from.w.WriteFrame(TypeWrite, WriteHeader{Offset: 4096, Length: 5}.Put(make([]byte, 16)), []byte("hello"))
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
	if _, data, _ := ParseWrite(f.Payload); string(data) != "hello" || f.Flags&FlagMAC == 0 {
		t.Fatalf("got %s %x flags %x", f.Type, f.Payload, f.Flags)
	}
}

func TestHandshakeWrongKey(t *testing.T) {
	c, s := handshake(t, []byte("right"), []byte("wrong"), testHello(1), testHello(2))
	if !errors.Is(c.err, ErrAuth) || c.r.Counters().Rejected(ReasonAuth) != 1 {
		t.Fatalf("client: %v, want ErrAuth", c.err)
	}
	if s.err == nil {
		t.Fatal("server accepted a client that refused it")
	}
}

// TestHandshakeClientProofChecked plays a client without the key against a
// real server: it cannot produce the client proof.
func TestHandshakeClientProofChecked(t *testing.T) {
	for _, proof := range [][]byte{make([]byte, ProofSize), nil} {
		a, b := net.Pipe()
		go func() {
			w, r := NewWriter(a), NewReader(a, nil)
			h := testHello(1)
			h.Nonce[0] = 7
			_, _ = w.WriteFrame(TypeHello, h.Put(make([]byte, HelloSize)), nil)
			_ = w.Flush()
			f, err := r.ReadFrame()
			if err != nil {
				return
			}
			if proof == nil { // reflect the server's own proof
				proof = bytes.Clone(f.Payload[HelloSize:])
			}
			_, _ = w.WriteFrame(TypeAuth, proof, nil)
			_ = w.Flush()
		}()
		_, err := Server(NewReader(b, nil), NewWriter(b), Config{ClusterKey: []byte("k"), Local: testHello(2)})
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("server: %v, want ErrAuth", err)
		}
		a.Close()
		b.Close()
	}
}

// TestHandshakeReflected echoes the client's own Hello back as the
// server's, and sends a server its own identity.
func TestHandshakeReflected(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		r, w := NewReader(b, nil), NewWriter(b)
		f, err := r.ReadFrame()
		if err != nil {
			return
		}
		ack := append(bytes.Clone(f.Payload), make([]byte, ProofSize)...)
		_, _ = w.WriteFrame(TypeHelloAck, ack, nil)
		_ = w.Flush()
	}()
	if _, err := Client(NewReader(a, nil), NewWriter(a), Config{ClusterKey: []byte("k"), Local: testHello(1)}); !errors.Is(err, ErrReflected) {
		t.Fatalf("client: %v, want ErrReflected", err)
	}
	_, s := handshake(t, []byte("k"), []byte("k"), testHello(3), testHello(3))
	if !errors.Is(s.err, ErrReflected) {
		t.Fatalf("server given its own identity: %v, want ErrReflected", s.err)
	}
}

// recorder keeps every byte written through it.
type recorder struct {
	io.ReadWriter
	sent bytes.Buffer
}

func (r *recorder) Write(p []byte) (int, error) {
	r.sent.Write(p)
	return r.ReadWriter.Write(p)
}

// TestHandshakeReplayed records a successful client's bytes and replays
// them to a new server: the server's fresh nonce defeats the old proof.
func TestHandshakeReplayed(t *testing.T) {
	key := []byte("k")
	a, b := net.Pipe()
	rec := &recorder{ReadWriter: a}
	go func() {
		_, _ = Server(NewReader(b, nil), NewWriter(b), Config{ClusterKey: key, Local: testHello(2)})
	}()
	if _, err := Client(NewReader(a, nil), NewWriter(rec), Config{ClusterKey: key, Local: testHello(1)}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	b.Close()

	replay := struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(rec.sent.Bytes()), io.Discard}
	_, err := Server(NewReader(replay, nil), NewWriter(replay), Config{ClusterKey: key, Local: testHello(2)})
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("replayed handshake: %v, want ErrAuth", err)
	}
}

func TestHandshakePeerClose(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		r, w := NewReader(b, nil), NewWriter(b)
		_, _ = r.ReadFrame()
		_, _ = w.WriteFrame(TypeError, ErrorMsg{Code: 3, Message: "volume mismatch"}.Append(nil), nil)
		_ = w.Flush()
	}()
	_, err := Client(NewReader(a, nil), NewWriter(a), Config{ClusterKey: []byte("k"), Local: testHello(1)})
	var pe *PeerError
	if !errors.As(err, &pe) || pe.Code != 3 || pe.Message != "volume mismatch" {
		t.Fatalf("client: %v, want a PeerError", err)
	}
}

func TestHandshakeBadLocalHello(t *testing.T) {
	h := testHello(1)
	h.BlockSize = 1000
	if _, err := Client(NewReader(nil, nil), NewWriter(io.Discard), Config{ClusterKey: []byte("k"), Local: h}); err == nil {
		t.Fatal("accepted a bad local hello")
	}
	if _, err := Client(NewReader(nil, nil), NewWriter(io.Discard), Config{Local: testHello(1)}); err == nil {
		t.Fatal("accepted an empty key")
	}
}
