package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/vigil-ha/vigil/internal/blockbench"
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

// tcpResult is the link's raw throughput.
type tcpResult struct {
	bytes   int64
	elapsed time.Duration
}

// measureTCP streams 1 MiB writes from a to b for d over one plain TCP
// connection; the rate is the bytes received over the time from the first
// write to the receiver's end of stream.
func measureTCP(ctx context.Context, t *topology, d time.Duration) (tcpResult, error) {
	ac, bc, err := t.pair()
	if err != nil {
		return tcpResult{}, err
	}
	defer ac.Close()
	defer bc.Close()
	stop := context.AfterFunc(ctx, func() { ac.Close(); bc.Close() })
	defer stop()
	deadline := time.Now().Add(d + ioSlack)
	ac.SetDeadline(deadline)
	bc.SetDeadline(deadline)

	type recv struct {
		n   int64
		end time.Time
		err error
	}
	rc := make(chan recv, 1)
	go func() {
		n, err := io.CopyBuffer(io.Discard, bc, make([]byte, 1<<20))
		rc <- recv{n, time.Now(), err}
	}()
	buf := blockbench.AlignedBuffer(1 << 20)
	blockbench.FillBlock(1, 0, buf)
	start := time.Now()
	var werr error
	for time.Since(start) < d {
		if _, werr = ac.Write(buf); werr != nil {
			break
		}
	}
	if werr == nil {
		werr = ac.(*net.TCPConn).CloseWrite()
	}
	r := <-rc
	if werr != nil || r.err != nil {
		return tcpResult{}, fmt.Errorf("tcp stream: send %v, receive %v", werr, r.err)
	}
	return tcpResult{bytes: r.n, elapsed: r.end.Sub(start)}, nil
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
