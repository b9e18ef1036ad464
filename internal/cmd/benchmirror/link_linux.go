package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"time"

	"github.com/vigil-ha/vigil/internal/blockbench"
	"github.com/vigil-ha/vigil/replicator/wire"
)

const (
	dialTimeout = 10 * time.Second
	// ioSlack bounds any socket wait beyond a measurement's own length.
	ioSlack = 30 * time.Second
	// pingSize is the ping-pong message: a small frame, as a WriteAck.
	pingSize = 64
)

// accept1 accepts one connection on ln, giving up after d.
func accept1(ln net.Listener, d time.Duration) (net.Conn, error) {
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-time.After(d):
		ln.Close()
		if r := <-ch; r.c != nil {
			r.c.Close()
		}
		return nil, fmt.Errorf("accept: %w", errTimeout)
	}
}

// pair returns a TCP connection from namespace a to namespace b: the
// dialling end (in a) and the accepted end (in b).
func (t *topology) pair() (ac, bc net.Conn, err error) {
	ln, err := t.b.listen(addrB)
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	ac, err = t.a.dial(ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	bc, err = accept1(ln, dialTimeout)
	if err != nil {
		ac.Close()
		return nil, nil, err
	}
	return ac, bc, nil
}

// streamResult is what one stream from a to b delivered: the bytes the
// receiver took, over the time from the first write to the receiver's
// end of stream.
type streamResult struct {
	bytes   int64
	elapsed time.Duration
}

// endpoints are the two ends of a stream: send writes one 1 MiB block
// from a; recv takes everything b receives, to the end of the stream,
// and returns how many bytes of data it took.
type endpoints struct {
	send func() error
	recv func() (int64, error)
}

// measureStream streams 1 MiB blocks from a to b for d over one TCP
// connection, through the endpoints that ends makes of its two ends.
func measureStream(ctx context.Context, t *topology, d time.Duration, what string, ends func(ac, bc net.Conn) (endpoints, error)) (streamResult, error) {
	ac, bc, err := t.pair()
	if err != nil {
		return streamResult{}, err
	}
	defer ac.Close()
	defer bc.Close()
	stop := context.AfterFunc(ctx, func() { ac.Close(); bc.Close() })
	defer stop()
	deadline := time.Now().Add(d + ioSlack)
	ac.SetDeadline(deadline)
	bc.SetDeadline(deadline)
	ep, err := ends(ac, bc)
	if err != nil {
		return streamResult{}, fmt.Errorf("%s stream: %w", what, err)
	}

	type recv struct {
		n   int64
		end time.Time
		err error
	}
	rc := make(chan recv, 1)
	go func() {
		n, err := ep.recv()
		rc <- recv{n, time.Now(), err}
	}()
	start := time.Now()
	var werr error
	for time.Since(start) < d {
		if werr = ep.send(); werr != nil {
			break
		}
	}
	if werr == nil {
		werr = ac.(*net.TCPConn).CloseWrite()
	}
	r := <-rc
	if werr != nil || r.err != nil {
		return streamResult{}, fmt.Errorf("%s stream: send %v, receive %v", what, werr, r.err)
	}
	return streamResult{bytes: r.n, elapsed: r.end.Sub(start)}, nil
}

// measureTCP streams 1 MiB writes from a to b for d over one plain TCP
// connection: the link's raw throughput.
func measureTCP(ctx context.Context, t *topology, d time.Duration) (streamResult, error) {
	return measureStream(ctx, t, d, "tcp", func(ac, bc net.Conn) (endpoints, error) {
		buf := blockbench.AlignedBuffer(1 << 20)
		blockbench.FillBlock(1, 0, buf)
		return endpoints{
			send: func() error { _, err := ac.Write(buf); return err },
			// Reads of up to 1 MiB, as the mirror's reader makes: io.Copy
			// to io.Discard would read 8 KiB at a time (its ReadFrom),
			// a slower receiver than any frame reader.
			recv: func() (int64, error) {
				into := make([]byte, 1<<20)
				var n int64
				for {
					k, err := bc.Read(into)
					n += int64(k)
					if errors.Is(err, io.EOF) {
						return n, nil
					}
					if err != nil {
						return n, err
					}
				}
			},
		}, nil
	})
}

// measureWire streams Write frames of 1 MiB from a to b for d, as the
// mirror connect carries them after its handshake (replicator/wire: each
// frame CRC32C-checked and tagged under a session key of the cluster
// key), sealed by one sender and checked by one reader, with nothing done
// with the data: what the protocol alone moves over the link, with no
// disk and no engine.
func measureWire(ctx context.Context, t *topology, d time.Duration) (streamResult, error) {
	return measureStream(ctx, t, d, "wire", func(ac, bc net.Conn) (endpoints, error) {
		w, r, err := session(ac, bc)
		if err != nil {
			return endpoints{}, err
		}
		head, data := writeBlock()
		return endpoints{
			send: func() error {
				if _, err := w.WriteFrame(wire.TypeWrite, head, data); err != nil {
					return err
				}
				return w.Flush()
			},
			recv: func() (int64, error) {
				var n int64
				for {
					f, err := r.ReadFrame()
					if errors.Is(err, io.EOF) {
						return n, nil
					}
					if err != nil {
						return n, err
					}
					_, data, err := wire.ParseWrite(f.Payload)
					if err != nil {
						return n, err
					}
					n += int64(len(data))
				}
			},
		}, nil
	})
}

// session runs the mirror connect's handshake between a and b, with a
// fresh cluster key, and returns a's Writer and b's Reader, which then
// seal and check every frame.
func session(a, b net.Conn) (*wire.Writer, *wire.Reader, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, nil, err
	}
	hello := func(node uint8) wire.Hello {
		return wire.Hello{ConfigHash: [16]byte{1}, VolumeUUID: [16]byte{1}, Incarnation: 1 + uint64(node),
			Size: 1 << 30, BlockSize: 4096, Node: node}
	}
	w, ar := wire.NewWriter(a), wire.NewReader(a, nil)
	bw, r := wire.NewWriter(b), wire.NewReader(b, nil)
	srv := make(chan error, 1)
	go func() {
		_, err := wire.Server(r, bw, wire.Config{ClusterKey: key, Local: hello(2)})
		srv <- err
	}()
	_, cerr := wire.Client(ar, w, wire.Config{ClusterKey: key, Local: hello(1)})
	if serr := <-srv; cerr != nil || serr != nil {
		return nil, nil, fmt.Errorf("handshake: client %v, server %v", cerr, serr)
	}
	return w, r, nil
}

// writeBlock returns the header and the data of a Write of wire.MaxData
// bytes at offset 0.
func writeBlock() (head, data []byte) {
	data = blockbench.AlignedBuffer(wire.MaxData)
	blockbench.FillBlock(1, 0, data)
	head = wire.WriteHeader{Length: wire.MaxData}.Put(make([]byte, wire.WriteHeaderSize))
	return head, data
}

// codecRuns is how many times codecPerMiB times each step.
const codecRuns = 64

// codecPerMiB returns the CPU time the mirror connect's codec takes per
// MiB of Write data on an otherwise idle CPU: sealing a frame on the sender (its copy
// into the frame, CRC32C, GMAC tag) and checking it on the receiver
// (CRC32C, tag), the check taken as the seal less the copy. Each step is
// the fastest of codecRuns on one goroutine, in this process.
func codecPerMiB() (time.Duration, error) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	w, _, err := session(a, b)
	if err != nil {
		return 0, err
	}
	head, data := writeBlock()
	frame := make([]byte, 0, wire.MaxFrameSize)
	into := make([]byte, len(data))
	seal, cp := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
	for i := range codecRuns {
		t0 := time.Now()
		if _, err := w.SealFrame(frame, uint64(i), wire.TypeWrite, head, data); err != nil {
			return 0, err
		}
		t1 := time.Now()
		copy(into, data)
		seal, cp = min(seal, t1.Sub(t0)), min(cp, time.Since(t1))
	}
	perMiB := 2*seal - cp
	return perMiB * (1 << 20) / wire.MaxData, nil
}

// measureRTT times n ping-pongs of pingSize bytes from a to b over one TCP
// connection (Nagle off, as Go sets it), after a short warm-up.
func measureRTT(ctx context.Context, t *topology, n int) (*blockbench.Histogram, error) {
	ac, bc, err := t.pair()
	if err != nil {
		return nil, err
	}
	defer ac.Close()
	defer bc.Close()
	stop := context.AfterFunc(ctx, func() { ac.Close(); bc.Close() })
	defer stop()
	deadline := time.Now().Add(ioSlack + time.Duration(n)*10*time.Millisecond)
	ac.SetDeadline(deadline)
	bc.SetDeadline(deadline)

	echo := make(chan error, 1)
	go func() {
		b := make([]byte, pingSize)
		for {
			if _, err := io.ReadFull(bc, b); err != nil {
				if err == io.EOF {
					err = nil
				}
				echo <- err
				return
			}
			if _, err := bc.Write(b); err != nil {
				echo <- err
				return
			}
		}
	}()
	h := &blockbench.Histogram{}
	msg, got := make([]byte, pingSize), make([]byte, pingSize)
	const warmup = 50
	for i := range warmup + n {
		msg[0] = byte(i)
		t0 := time.Now()
		if _, err := ac.Write(msg); err != nil {
			return nil, fmt.Errorf("ping %d: %w", i, err)
		}
		if _, err := io.ReadFull(ac, got); err != nil {
			return nil, fmt.Errorf("pong %d: %w", i, err)
		}
		if i >= warmup {
			h.Record(time.Since(t0))
		}
		if got[0] != msg[0] {
			return nil, fmt.Errorf("pong %d carries ping %d", i, got[0])
		}
	}
	ac.(*net.TCPConn).CloseWrite()
	if err := <-echo; err != nil {
		return nil, fmt.Errorf("echo: %w", err)
	}
	return h, nil
}
