package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/replicator/meta"
	"github.com/vigil-ha/vigil/replicator/wire"
)

// conn is one authenticated connection to the peer.
type conn struct {
	e       *Engine
	nc      net.Conn
	r       *wire.Reader
	w       *wire.Writer
	primary bool // local role when connected
	maxData int  // largest data block the peer accepts in one frame

	wmu sync.Mutex // serialises w

	mu      sync.Mutex
	pending map[uint64]chan uint32 // Write frame seq -> ack status
	flushes map[uint64]chan uint32 // Flush id -> ack status

	kick chan struct{} // wakes the async pump

	once sync.Once
	done chan struct{}
	err  error
}

// Connect runs the handshake on nc (as the client if dialer, else as the
// server), compares generations and runs a resync if one is needed, all
// while writes are held. On success it returns with the session running in
// the background until the connection breaks; the engine owns nc. On
// failure nc is closed. A connection already running is replaced.
func (e *Engine) Connect(ctx context.Context, nc net.Conn, dialer bool) error {
	e.mu.Lock()
	closed, old := e.closed, e.cur
	e.mu.Unlock()
	if closed {
		nc.Close()
		return ErrClosed
	}
	if old != nil {
		old.fail(fmt.Errorf("%w: replaced by a new connection", ErrPeerLost))
	}
	e.gate.Lock()
	defer e.gate.Unlock()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()

	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		nc.Close()
		return ErrClosed
	}
	e.state = Connecting
	sb, role := e.sb, e.role
	e.mu.Unlock()

	c := &conn{
		e: e, nc: nc, r: wire.NewReader(nc, nil), w: wire.NewWriter(nc),
		primary: role == Primary,
		pending: make(map[uint64]chan uint32),
		flushes: make(map[uint64]chan uint32),
		done:    make(chan struct{}),
		kick:    make(chan struct{}, 1),
	}
	err := c.establish(sb, role, dialer)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		nc.Close()
		e.mu.Lock()
		if e.state != SplitBrain {
			e.state = StandAlone
		}
		e.lastErr = err.Error()
		e.mu.Unlock()
		return err
	}
	_ = nc.SetDeadline(time.Time{})
	e.mu.Lock()
	e.cur = c
	e.state = Connected
	e.diverged = false
	e.lastErr = ""
	e.resetQueueLocked()
	async := c.primary && e.cfg.Mode == AsyncMode
	if async {
		e.wg.Add(1)
	}
	e.wg.Add(2)
	e.mu.Unlock()
	go c.readLoop()
	go c.pingLoop()
	if async {
		go c.pump()
	}
	return nil
}

// establish runs the handshake, the checks and the resync.
func (c *conn) establish(sb meta.Superblock, role Role, dialer bool) error {
	e := c.e
	c.deadline()
	hello := wire.Hello{
		ConfigHash:  e.cfg.ConfigHash,
		VolumeUUID:  sb.VolumeUUID,
		Incarnation: e.cfg.GenID(),
		Size:        sb.Size,
		BlockSize:   sb.BlockSize,
		MaxPayload:  wire.MaxPayload,
		DiskFlags:   sb.Flags,
		Node:        e.cfg.Node,
		Role:        uint8(role),
		Gens:        wire.Generations(sb.Gens),
	}
	cfg := wire.Config{ClusterKey: e.cfg.ClusterKey, Local: hello}
	var res wire.Result
	var err error
	if dialer {
		res, err = wire.Client(c.r, c.w, cfg)
	} else {
		res, err = wire.Server(c.r, c.w, cfg)
	}
	if err != nil {
		return fmt.Errorf("mirror handshake: %w", err)
	}
	peer := res.Peer
	c.maxData = int(peer.MaxPayload) - wire.WriteHeaderSize
	c.w.SetMaxPayload(int(peer.MaxPayload))
	if peer.VolumeUUID != sb.VolumeUUID || peer.Size != sb.Size || peer.BlockSize != sb.BlockSize || peer.ConfigHash != e.cfg.ConfigHash {
		return c.refuse(wire.CloseConfig, fmt.Errorf("%w: different volume or configuration", ErrRefused))
	}
	peerRole := Role(peer.Role)
	v := meta.Compare(sb.Gens, meta.Generations(peer.Gens))
	e.mu.Lock()
	e.verdict = v.Decision.String()
	e.peer = int(peer.Node)
	e.peerRole = peerRole
	e.mu.Unlock()

	if v.Decision == meta.SplitBrain {
		e.mu.Lock()
		e.state = SplitBrain
		e.mu.Unlock()
		return c.refuse(wire.CloseSplitBrain, ErrSplitBrain)
	}
	switch {
	case v.Decision == meta.Unrelated:
		return c.refuse(wire.CloseUnrelated, fmt.Errorf("%w: unrelated data", ErrRefused))
	case role == Primary && peerRole == Primary:
		return c.refuse(wire.CloseConfig, fmt.Errorf("%w: both primary", ErrRefused))
	case v.Decision == meta.InSync:
		return nil
	case role == Primary && v.Decision == meta.LocalNewer:
		return c.resyncSource(v.Full)
	case role == Secondary && peerRole == Primary && v.Decision == meta.PeerNewer:
		return c.resyncTarget(meta.Generations(peer.Gens))
	}
	return c.refuse(wire.CloseConfig, fmt.Errorf("%w: %s as %s", ErrRefused, v.Decision, role))
}

// refuse sends a Close with code and returns err.
func (c *conn) refuse(code uint32, err error) error {
	var b [wire.CloseSize]byte
	if _, werr := c.w.WriteFrame(wire.TypeClose, wire.Close{Code: code}.Put(b[:]), nil); werr == nil {
		_ = c.w.Flush()
	}
	return err
}

// deadline arms the connection's deadline for one step of the handshake or
// resync.
func (c *conn) deadline() {
	_ = c.nc.SetDeadline(time.Now().Add(c.e.cfg.Timeout))
}

// send writes one frame and flushes it. register, if set, is called with
// the frame's sequence number before the frame can reach the peer.
func (c *conn) send(t wire.Type, head, data []byte, register func(seq uint64)) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if register != nil {
		register(c.w.NextSeq())
	}
	_, err := c.w.WriteFrame(t, head, data)
	if err == nil {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.e.cfg.Timeout))
		err = c.w.Flush()
	}
	if err != nil {
		return fmt.Errorf("mirror send %s: %w", t, err)
	}
	return nil
}

// fail breaks the connection once: the engine stands alone and a primary
// takes a new generation before anyone waiting on the peer proceeds.
func (c *conn) fail(err error) {
	c.once.Do(func() {
		c.err = err
		c.nc.Close()
		e := c.e
		e.mu.Lock()
		if e.cur == c {
			e.cur = nil
			e.state = StandAlone
			e.peer = -1
			e.lastErr = err.Error()
			if derr := e.divergeLocked(); derr != nil {
				e.lastErr = derr.Error()
			}
			kept := e.cands[:0]
			for _, k := range e.cands {
				if k.c != c {
					kept = append(kept, k)
				}
			}
			e.cands = kept
			e.resetQueueLocked()
		}
		e.mu.Unlock()
		close(c.done)
	})
}

// wait waits for an ack on ch, the connection's end, the context or the
// ack timeout (which breaks the connection). ok reports an ack; status is
// its status.
func (c *conn) wait(ctx context.Context, ch chan uint32, what string) (status uint32, ok bool, err error) {
	t := time.NewTimer(c.e.cfg.Timeout)
	defer t.Stop()
	select {
	case st := <-ch:
		return st, true, nil
	case <-c.done:
		return 0, false, nil
	case <-t.C:
		c.fail(fmt.Errorf("%w: no %s within %v", ErrPeerLost, what, c.e.cfg.Timeout))
		return 0, false, nil
	case <-ctx.Done():
		return 0, false, ctx.Err()
	}
}

// readLoop reads session frames until the connection breaks.
func (c *conn) readLoop() {
	defer c.e.wg.Done()
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.e.cfg.Timeout))
		f, err := c.r.ReadFrame()
		if err == nil {
			err = c.handle(f)
		} else {
			err = fmt.Errorf("%w: %w", ErrPeerLost, err)
		}
		if err != nil {
			c.fail(err)
			return
		}
	}
}

// pingLoop pings the peer every PingInterval until the connection breaks.
func (c *conn) pingLoop() {
	defer c.e.wg.Done()
	t := time.NewTicker(c.e.cfg.PingInterval)
	defer t.Stop()
	var token uint64
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			if c.ackOverdue() {
				c.fail(fmt.Errorf("%w: no write ack within %v", ErrPeerLost, c.e.cfg.Timeout))
				return
			}
			token++
			var b [wire.PingSize]byte
			p := wire.Ping{Token: token, SentAt: time.Now().UnixNano()}
			if err := c.send(wire.TypePing, p.Put(b[:]), nil, nil); err != nil {
				c.fail(err)
				return
			}
		}
	}
}

// handle processes one session frame.
func (c *conn) handle(f wire.Frame) error {
	switch f.Type {
	case wire.TypePing:
		return c.send(wire.TypePong, f.Payload, nil, nil)
	case wire.TypePong:
		return nil
	case wire.TypeClose:
		cl, err := wire.ParseClose(f.Payload)
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: peer closed (code %d)", ErrPeerLost, cl.Code)
	case wire.TypeError:
		m, err := wire.ParseError(f.Payload)
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: peer error %d: %s", ErrPeerLost, m.Code, m.Message)
	}
	if c.primary {
		switch f.Type {
		case wire.TypeWriteAck:
			a, err := wire.ParseWriteAck(f.Payload)
			if err != nil {
				return err
			}
			if c.e.cfg.Mode == AsyncMode {
				return c.ackAsync(a)
			}
			c.ackWrites(a)
			return nil
		case wire.TypeFlushAck:
			a, err := wire.ParseFlushAck(f.Payload)
			if err != nil {
				return err
			}
			c.mu.Lock()
			ch := c.flushes[a.ID]
			delete(c.flushes, a.ID)
			c.mu.Unlock()
			if ch == nil {
				return errors.New("mirror: FlushAck for no flush")
			}
			ch <- a.Status
			return nil
		}
	} else {
		switch f.Type {
		case wire.TypeWrite:
			return c.apply(f)
		case wire.TypeResyncData:
			return c.applyResync(f)
		case wire.TypeFlush:
			fl, err := wire.ParseFlush(f.Payload)
			if err != nil {
				return err
			}
			st := wire.StatusOK
			if err := c.e.cfg.Data.Sync(); err != nil {
				st = wire.StatusIOError
			}
			var b [wire.FlushAckSize]byte
			return c.send(wire.TypeFlushAck, wire.FlushAck{ID: fl.ID, Status: st}.Put(b[:]), nil, nil)
		}
	}
	return fmt.Errorf("mirror: unexpected %s in session", f.Type)
}

// ackWrites delivers a WriteAck to the writes it covers. An ack for no
// pending write breaks the connection.
func (c *conn) ackWrites(a wire.WriteAck) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a.From > a.To {
		return
	}
	if a.To-a.From < uint64(len(c.pending)) {
		for s := a.From; ; s++ {
			if ch, ok := c.pending[s]; ok {
				ch <- a.Status
				delete(c.pending, s)
			}
			if s == a.To {
				break
			}
		}
		return
	}
	for s, ch := range c.pending {
		if s >= a.From && s <= a.To {
			ch <- a.Status
			delete(c.pending, s)
		}
	}
}

// apply applies one Write on the secondary, in frame order, and acks it.
func (c *conn) apply(f wire.Frame) error {
	h, data, err := wire.ParseWrite(f.Payload)
	if err != nil {
		return err
	}
	e := c.e
	st := wire.StatusOK
	switch {
	case h.Offset > e.size || uint64(len(data)) > e.size-h.Offset:
		st = wire.StatusOutOfRange
	default:
		if h.Flags&wire.WritePreFlush != 0 {
			err = e.cfg.Data.Sync()
		}
		if err == nil {
			_, err = e.cfg.Data.WriteAt(data, int64(h.Offset))
		}
		if err == nil && h.Flags&wire.WriteFUA != 0 {
			err = e.cfg.Data.Sync()
		}
		if err != nil {
			st = wire.StatusIOError
		}
	}
	var b [wire.WriteAckSize]byte
	return c.send(wire.TypeWriteAck, wire.WriteAck{From: f.Seq, To: f.Seq, Status: st}.Put(b[:]), nil, nil)
}

// applyResync applies one ResyncData of an async primary's catch-up
// resync, in frame order; the Flush that follows acks it.
func (c *conn) applyResync(f wire.Frame) error {
	h, data, err := wire.ParseResyncData(f.Payload)
	if err != nil {
		return err
	}
	e := c.e
	if h.Flags != wire.StatusOK {
		return fmt.Errorf("mirror catch-up: source status %d at %d", h.Flags, h.Offset)
	}
	if h.Offset > e.size || uint64(len(data)) > e.size-h.Offset {
		return fmt.Errorf("mirror catch-up: data at %d+%d beyond the volume", h.Offset, len(data))
	}
	if _, err := e.cfg.Data.WriteAt(data, int64(h.Offset)); err != nil {
		return fmt.Errorf("mirror catch-up write: %w", err)
	}
	e.mu.Lock()
	e.rsDone += uint64(len(data))
	e.rsTotal = e.rsDone
	e.mu.Unlock()
	return nil
}
