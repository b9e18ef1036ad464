package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/replicator/meta"
	"github.com/vigil-ha/vigil/replicator/wire"
)

// conn is one authenticated connection to the peer.
type conn struct {
	e        *Engine
	nc       net.Conn
	r        *wire.Reader
	w        *wire.Writer
	maxData  int              // largest data block the peer accepts in one frame
	peerGens meta.Generations // the peer's, from its Hello: a resync target takes them

	// Frames go out in sequence order. A sender reserves its sequence
	// numbers under wmu, may then seal a large frame with no lock held
	// (its copy, tag and CRC), and takes wmu again to send it when its
	// turn comes: the frames reserved before it sent.
	wmu      sync.Mutex // serialises w
	wturn    sync.Cond  // on wmu: a frame was sent, or sending broke
	reserved uint64     // under wmu: sequence numbers reserved past w.NextSeq()
	wbroken  bool       // under wmu: a reserved frame was not sent; nothing more is

	mu       sync.Mutex
	pending  map[uint64]chan uint32            // Write frame seq -> ack status
	flushes  map[uint64]chan uint32            // Flush id -> ack status
	verifies map[uint64]chan wire.VerifyDigest // VerifyRequest offset -> digest

	// target (under e.mu) is set while this node is the target of a
	// resync on this connection, from ResyncBegin to ResyncDone.
	target bool
	// failed (under e.mu) is set by fail.
	failed bool

	kick    chan struct{}   // wakes the async pump
	rsKick  chan struct{}   // wakes the resync loop
	digests chan wire.Range // verify requests for the digest worker

	// jobs carries large data frames from the read loop to the
	// appliers, which apply several at once. inflight (under imu) holds
	// the spans of the frames handed over and not yet applied: the read
	// loop hands over or handles a data frame only when none of them
	// overlaps it, and any other frame whose place among writes matters
	// only when there is none (icond wakes it). idone: the connection
	// failed, nothing more completes.
	jobs     chan job
	imu      sync.Mutex
	icond    sync.Cond
	inflight []span
	idone    bool

	// Replies of the read loop (acks, pongs) wait here for the reply
	// loop, so that a read loop never blocks on the network: two read
	// loops each blocked sending to the other would deadlock. Only a
	// node applying Writes may send a WriteAck itself (ackNow).
	rmu     sync.Mutex
	replies []reply
	rKick   chan struct{}

	once sync.Once
	done chan struct{}
	err  error
}

// Connect runs the handshake on nc (as the client if dialer, else as the
// server; nc may be a *tls.Conn whose TLS handshake completed: the
// handshake is then bound to it and a peer without TLS is refused),
// compares generations and roles and, when a resync is needed,
// exchanges the bitmaps and starts it, all while writes are held. On
// success it returns with the session running in the background until
// the connection breaks; a resync then streams in the session while
// writes are replicated. The engine owns nc. On failure nc is closed. A
// connection already running is replaced.
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
		e: e, nc: nc, r: wire.NewReader(nc, &e.counters), w: wire.NewWriter(nc),
		pending:  make(map[uint64]chan uint32),
		flushes:  make(map[uint64]chan uint32),
		verifies: make(map[uint64]chan wire.VerifyDigest),
		done:     make(chan struct{}),
		kick:     make(chan struct{}, 1),
		rsKick:   make(chan struct{}, 1),
		digests:  make(chan wire.Range, verifyWindow),
		rKick:    make(chan struct{}, 1),
		jobs:     make(chan job, appliers),
	}
	c.wturn.L = &c.wmu
	c.icond.L = &c.imu
	rs, err := c.establish(sb, role, dialer)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		nc.Close()
		e.mu.Lock()
		if e.state != SplitBrain || !errors.Is(err, ErrSplitBrain) {
			e.state = StandAlone
		}
		e.peer = -1
		e.lastErr = err.Error()
		e.mu.Unlock()
		return err
	}
	_ = nc.SetDeadline(time.Time{})
	e.mu.Lock()
	e.cur = c
	e.state = Connected
	if rs != nil {
		e.rs = rs
		e.startRunLocked(rs)
	}
	if rs != nil || c.target {
		e.state = Resyncing
	}
	e.lastErr = ""
	e.resetQueueLocked()
	e.wg.Add(6 + appliers)
	e.mu.Unlock()
	go c.readLoop()
	for range appliers {
		go c.applyLoop()
	}
	go c.replyLoop()
	go c.pingLoop()
	go c.resyncLoop()
	go c.digestLoop()
	go c.pump()
	return nil
}

// side is what the connection plan needs to know of one node.
type side struct {
	role  Role
	gens  meta.Generations
	flags uint32 // superblock flags, with meta.FlagHelloDirty
	node  uint8
}

func (s side) inconsistent() bool {
	return s.flags&meta.FlagConsistent == 0 && s.gens.Current != 0
}

// plan is what a connection does after the handshake.
type plan struct {
	raw     meta.Decision // meta.Compare's
	verdict meta.Verdict  // after a split brain resolution
	source  bool          // this node sends a resync
	target  bool          // this node receives one
	code    uint32        // with err: the Close code refusing the peer
	err     error
}

// decide plans a connection from both sides' roles, generations and
// flags. Both sides compute mirrored plans from the same two Hellos.
//
//   - Split brain stays refused unless an operator resolved it on either
//     side (FlagResolveDiscard / FlagResolveKeep): then the resolution
//     turns it into a resync (meta.ResolveSplitBrain); opposite choices on
//     both sides are refused.
//   - Unrelated data and two primaries are refused.
//   - The newer data is the source, whatever the roles, except that a
//     primary is never a resync target: a secondary newer than a primary
//     is refused (the primary holds older data its users see).
//   - In sync, a resync of the dirty bitmaps still runs when either side
//     has dirty bits or is inconsistent (a crash left in-flight regions):
//     from the primary, else the consistent side, else the side that was
//     primary last (FlagPrimary), else the lower node index.
//   - Both fresh: nothing to copy; the first Promote makes the source.
func decide(l, p side) plan {
	v := meta.Compare(l.gens, p.gens)
	pl := plan{raw: v.Decision, verdict: v}
	refuse := func(code uint32, err error) plan {
		pl.code, pl.err = code, err
		return pl
	}
	if v.Decision == meta.SplitBrain {
		localWins := l.flags&meta.FlagResolveKeep != 0 || p.flags&meta.FlagResolveDiscard != 0
		peerWins := l.flags&meta.FlagResolveDiscard != 0 || p.flags&meta.FlagResolveKeep != 0
		switch {
		case localWins && peerWins:
			return refuse(wire.CloseSplitBrain, fmt.Errorf("%w: the operators' resolutions conflict (both sides keep, or both discard, their data)", ErrSplitBrain))
		case !localWins && !peerWins:
			return refuse(wire.CloseSplitBrain, ErrSplitBrain)
		}
		pl.verdict = meta.ResolveSplitBrain(v, peerWins)
	}
	switch d := pl.verdict.Decision; {
	case d == meta.Unrelated:
		return refuse(wire.CloseUnrelated, fmt.Errorf("%w: unrelated data", ErrRefused))
	case l.role == Primary && p.role == Primary:
		return refuse(wire.CloseConfig, fmt.Errorf("%w: both primary", ErrRefused))
	case d == meta.BothFresh:
	case d == meta.InSync:
		if (l.flags|p.flags)&meta.FlagHelloDirty == 0 && !l.inconsistent() && !p.inconsistent() {
			break
		}
		lp, pp := l.flags&meta.FlagPrimary != 0, p.flags&meta.FlagPrimary != 0
		switch {
		case l.role != p.role:
			pl.source = l.role == Primary
		case l.inconsistent() != p.inconsistent():
			pl.source = p.inconsistent()
		case lp != pp:
			pl.source = lp
		default:
			pl.source = l.node < p.node
		}
		pl.target = !pl.source
	case d == meta.LocalNewer:
		if p.role == Primary {
			return refuse(wire.CloseConfig, fmt.Errorf("%w: the peer is primary with older data", ErrRefused))
		}
		pl.source = true
	case d == meta.PeerNewer:
		if l.role == Primary {
			return refuse(wire.CloseConfig, fmt.Errorf("%w: this node is primary with older data than the peer", ErrRefused))
		}
		pl.target = true
	}
	return pl
}

// establish runs the handshake, the plan and the bitmap exchange. It
// returns the resync this node is to source, if any.
func (c *conn) establish(sb meta.Superblock, role Role, dialer bool) (*resyncRun, error) {
	e := c.e
	c.deadline()
	flags := sb.Flags
	if e.bm.Count() > 0 {
		flags |= meta.FlagHelloDirty
	}
	hello := wire.Hello{
		ConfigHash:  e.cfg.ConfigHash,
		VolumeUUID:  sb.VolumeUUID,
		Incarnation: e.cfg.GenID(),
		Size:        sb.Size,
		BlockSize:   sb.BlockSize,
		MaxPayload:  wire.MaxPayload,
		DiskFlags:   flags,
		Node:        e.cfg.Node,
		Role:        uint8(role),
		Gens:        wire.Generations(sb.Gens),
	}
	// Run over TLS (the caller completed its handshake), the cluster-key
	// handshake is bound to that TLS connection.
	cfg := wire.Config{ClusterKey: e.cfg.ClusterKey, Local: hello, Compress: e.cfg.Compress, TLS: wire.TLSState(c.nc)}
	var res wire.Result
	var err error
	if dialer {
		res, err = wire.Client(c.r, c.w, cfg)
	} else {
		res, err = wire.Server(c.r, c.w, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("mirror handshake: %w", err)
	}
	peer := res.Peer
	c.maxData = int(peer.MaxPayload) - wire.WriteHeaderSize
	c.w.SetMaxPayload(int(peer.MaxPayload))
	c.peerGens = meta.Generations(peer.Gens)
	if peer.VolumeUUID != sb.VolumeUUID || peer.Size != sb.Size || peer.BlockSize != sb.BlockSize || peer.ConfigHash != e.cfg.ConfigHash {
		return nil, c.refuse(wire.CloseConfig, fmt.Errorf("%w: different volume or configuration", ErrRefused))
	}
	pl := decide(side{role, sb.Gens, flags, e.cfg.Node}, side{Role(peer.Role), c.peerGens, peer.DiskFlags, peer.Node})
	e.mu.Lock()
	e.verdict = pl.verdict.Decision.String()
	e.peer = int(peer.Node)
	e.peerRole = Role(peer.Role)
	switch {
	case pl.verdict.Decision == meta.PeerNewer:
		e.older = true
	case pl.err == nil:
		e.older = false
	}
	if pl.raw == meta.SplitBrain && pl.err != nil {
		e.state = SplitBrain
	}
	e.mu.Unlock()
	if pl.err != nil {
		return nil, c.refuse(pl.code, pl.err)
	}
	if pl.raw != meta.SplitBrain && sb.Flags&(meta.FlagResolveDiscard|meta.FlagResolveKeep) != 0 {
		// A resolution left from a split brain that is gone.
		if err := e.updateSuperblock(func(sb *meta.Superblock) { sb.Flags &^= meta.FlagResolveDiscard | meta.FlagResolveKeep }); err != nil {
			return nil, err
		}
	}
	switch {
	case pl.source:
		return c.sourceStart(pl.verdict.Full)
	case pl.target:
		return nil, c.targetStart()
	}
	if pl.verdict.Decision == meta.InSync {
		e.mu.Lock()
		e.diverged = false
		e.mu.Unlock()
	}
	return nil, nil
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
// bitmap exchange.
func (c *conn) deadline() {
	_ = c.nc.SetDeadline(time.Now().Add(c.e.cfg.Timeout))
}

// sealApart is the smallest data block whose frame a sender seals
// before its turn, with no lock held: several large frames are then
// copied, tagged and checksummed at once while another is sent.
const sealApart = 64 << 10

// frameBufs holds buffers for frames sealed apart.
var frameBufs = sync.Pool{New: func() any { return new([]byte) }}

// errSendBroken is what a sender waiting for its turn gets when a frame
// before its own was lost: the connection is failing.
var errSendBroken = errors.New("an earlier frame was not sent")

// send writes one frame and flushes it. register, if set, is called with
// the frame's sequence number before the frame can reach the peer. A
// large uncompressed frame is sealed before the sender's turn, so that
// senders overlap.
func (c *conn) send(t wire.Type, head, data []byte, register func(seq uint64)) error {
	c.wmu.Lock()
	seq := c.reserve(1)
	if register != nil {
		register(seq)
	}
	var frame []byte
	var err error
	if len(data) >= sealApart && !c.w.Compressed() {
		c.wmu.Unlock()
		bp := frameBufs.Get().(*[]byte)
		defer frameBufs.Put(bp)
		frame, err = c.w.SealFrame(*bp, seq, t, head, data)
		*bp = frame[:0]
		c.wmu.Lock()
	}
	if terr := c.turn(seq); terr != nil {
		c.wmu.Unlock()
		return fmt.Errorf("mirror send %s: %w", t, terr)
	}
	if err == nil {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.e.cfg.Timeout))
		if frame != nil {
			err = c.w.WriteSealed(frame)
		} else if _, err = c.w.WriteFrame(t, head, data); err == nil {
			err = c.w.Flush()
		}
	}
	c.sent(1, err)
	c.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("mirror send %s: %w", t, err)
	}
	return nil
}

// reserve reserves n consecutive sequence numbers and returns the first.
// The caller holds wmu.
func (c *conn) reserve(n uint64) uint64 {
	seq := c.w.NextSeq() + c.reserved
	c.reserved += n
	return seq
}

// turn waits, with wmu held, until the frame seq is the next to send.
func (c *conn) turn(seq uint64) error {
	for {
		switch next := c.w.NextSeq(); {
		case c.wbroken || next > seq:
			return errSendBroken
		case next == seq:
			return nil
		}
		c.wturn.Wait()
	}
}

// sent ends the turn of n reserved frames, sent unless err is set: then
// the frames after them can never go, and their senders learn it.
func (c *conn) sent(n uint64, err error) {
	c.reserved -= n
	if err != nil {
		c.wbroken = true
	}
	c.wturn.Broadcast()
}

// control sends the control Flush id and waits for its FlushAck (for at
// most Timeout, which breaks the connection). ok is false when the
// connection ended first.
func (c *conn) control(id uint64) (status uint32, ok bool) {
	ch := c.sendFlush(id)
	if ch == nil {
		return 0, false
	}
	st, ok, _ := c.wait(context.Background(), ch, "control ack")
	return st, ok
}

// sendFlush sends the Flush id and returns the channel its FlushAck's
// status arrives on, or nil, having failed the connection, if it could
// not be sent.
func (c *conn) sendFlush(id uint64) chan uint32 {
	ch := make(chan uint32, 1)
	var b [wire.FlushSize]byte
	err := c.send(wire.TypeFlush, wire.Flush{ID: id}.Put(b[:]), nil, func(uint64) {
		c.mu.Lock()
		c.flushes[id] = ch
		c.mu.Unlock()
	})
	if err != nil {
		c.fail(err)
		return nil
	}
	return ch
}

// fail breaks the connection once: the engine stands alone and a primary
// takes a new generation before anyone waiting on the peer proceeds.
func (c *conn) fail(err error) {
	c.once.Do(func() {
		c.err = err
		c.nc.Close()
		c.wmu.Lock()
		c.wbroken = true
		c.wturn.Broadcast()
		c.wmu.Unlock()
		c.imu.Lock()
		c.idone = true
		c.icond.Broadcast()
		c.imu.Unlock()
		e := c.e
		e.mu.Lock()
		c.failed = true
		if e.cur == c {
			e.cur = nil
			e.state = StandAlone
			e.peer = -1
			e.lastErr = err.Error()
			if e.rs != nil && e.rs.c == c {
				e.rs = nil
			}
			e.rsWant = false
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
		e.cond.Broadcast()
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

// readLoop reads session frames until the connection breaks. It hands
// each large Write and every ResyncData to the appliers, several of which
// write at once, and handles the other frames itself: a small sync write
// so keeps the shortest path. A frame whose place among writes matters
// waits first for the writes it must follow: a data frame for those in
// flight that it overlaps, any other for all of them. Receiving and
// checking the next frame so overlaps writing this one.
func (c *conn) readLoop() {
	defer c.e.wg.Done()
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.e.cfg.Timeout))
		f, err := c.r.ReadFrame()
		if err != nil {
			c.fail(fmt.Errorf("%w: %w", ErrPeerLost, err))
			return
		}
		if ordered(f.Type) {
			s, ok := dataSpan(f)
			if !c.waitInflight(s, !ok) {
				return
			}
			if ok && large(f) {
				c.imu.Lock()
				c.inflight = append(c.inflight, s)
				c.imu.Unlock()
				select {
				case c.jobs <- job{f, c.r.Retain(), s}:
					continue
				case <-c.done:
					return
				}
			}
		}
		if err := c.handle(f); err != nil {
			c.fail(err)
			return
		}
	}
}

// appliers is how many frames are applied at once at most; the jobs
// queue holds as many more (each frame keeps its buffer: up to 1 MiB).
const appliers = 4

// applyLarge is the smallest Write whose data the appliers write.
const applyLarge = 64 << 10

// job is a frame handed to the appliers, with the release of its buffer
// and its span.
type job struct {
	f       wire.Frame
	release func()
	s       span
}

// ordered reports whether frames of type t must be handled in their
// order among Writes and ResyncData.
func ordered(t wire.Type) bool {
	switch t {
	case wire.TypeWrite, wire.TypeResyncData, wire.TypeFlush, wire.TypeVerifyRequest:
		return true
	}
	return false
}

// large reports whether f is worth handing to the appliers.
func large(f wire.Frame) bool {
	return f.Type == wire.TypeResyncData || (f.Type == wire.TypeWrite && len(f.Payload) >= applyLarge)
}

// dataSpan returns the volume range a Write or ResyncData frame writes;
// ok is false for other frames, for a malformed one (its handling
// reports it) and for a Write that asks for a flush first: it must follow
// every write before it, as a Flush does.
func dataSpan(f wire.Frame) (s span, ok bool) {
	var h wire.WriteHeader
	var data []byte
	var err error
	switch f.Type {
	case wire.TypeWrite:
		h, data, err = wire.ParseWrite(f.Payload)
		if err == nil && h.Flags&wire.WritePreFlush != 0 {
			return span{}, false
		}
	case wire.TypeResyncData:
		h, data, err = wire.ParseResyncData(f.Payload)
	default:
		return span{}, false
	}
	if err != nil || h.Offset+uint64(len(data)) < h.Offset {
		return span{}, false
	}
	return span{h.Offset, h.Offset + uint64(len(data))}, true
}

// waitInflight waits until no frame handed to the appliers overlaps s,
// or, with all, until none is left. It returns false if the connection
// failed first.
func (c *conn) waitInflight(s span, all bool) bool {
	c.imu.Lock()
	defer c.imu.Unlock()
	for !c.idone && len(c.inflight) > 0 && (all || slices.ContainsFunc(c.inflight, s.overlaps)) {
		c.icond.Wait()
	}
	return !c.idone
}

// applyLoop applies the frames the read loop hands over.
func (c *conn) applyLoop() {
	defer c.e.wg.Done()
	for {
		select {
		case j := <-c.jobs:
			err := c.handle(j.f)
			j.release()
			c.imu.Lock()
			if i := slices.Index(c.inflight, j.s); i >= 0 {
				c.inflight = slices.Delete(c.inflight, i, i+1)
			}
			c.icond.Broadcast()
			c.imu.Unlock()
			if err != nil {
				c.fail(err)
				return
			}
		case <-c.done:
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

// reply is a frame the read loop answers with.
type reply struct {
	t   wire.Type
	ack wire.WriteAck // TypeWriteAck
	buf [wire.WriteAckSize]byte
	n   int // other types: payload length in buf
}

// reply queues a frame for the reply loop.
func (c *conn) reply(t wire.Type, payload []byte) {
	c.rmu.Lock()
	c.replies = append(c.replies, reply{t: t})
	r := &c.replies[len(c.replies)-1]
	r.n = copy(r.buf[:], payload)
	c.rmu.Unlock()
	c.kickReplies()
}

// replyAck queues a WriteAck for the Write frame seq. It extends the
// WriteAck queued last when that one, of the same status, ends at seq-1
// (a WriteAck acks every Write in its sequence range, and writes complete
// out of order when the appliers write several at once).
func (c *conn) replyAck(seq uint64, status uint32) {
	c.rmu.Lock()
	if k := len(c.replies); k > 0 && c.replies[k-1].t == wire.TypeWriteAck && c.replies[k-1].ack.Status == status && c.replies[k-1].ack.To+1 == seq {
		c.replies[k-1].ack.To = seq
	} else {
		c.replies = append(c.replies, reply{t: wire.TypeWriteAck, ack: wire.WriteAck{From: seq, To: seq, Status: status}})
	}
	c.rmu.Unlock()
	c.kickReplies()
}

func (c *conn) kickReplies() {
	select {
	case c.rKick <- struct{}{}:
	default:
	}
}

// replyLoop sends the queued replies, each batch with one write.
func (c *conn) replyLoop() {
	defer c.e.wg.Done()
	var batch []reply
	for {
		select {
		case <-c.rKick:
		case <-c.done:
			return
		}
		c.rmu.Lock()
		batch, c.replies = c.replies, batch[:0]
		c.rmu.Unlock()
		if len(batch) == 0 {
			continue
		}
		c.wmu.Lock()
		n := uint64(len(batch))
		err := c.turn(c.reserve(n))
		if err == nil {
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.e.cfg.Timeout))
			for i := range batch {
				r := &batch[i]
				p := r.buf[:r.n]
				if r.t == wire.TypeWriteAck {
					p = r.ack.Put(r.buf[:])
				}
				if _, err = c.w.WriteFrame(r.t, p, nil); err != nil {
					break
				}
			}
		}
		if err == nil {
			err = c.w.Flush()
		}
		c.sent(n, err)
		c.wmu.Unlock()
		if err != nil {
			c.fail(fmt.Errorf("mirror send replies: %w", err))
			return
		}
	}
}

// handle processes one session frame. Which frames are allowed depends on
// the roles at the time the frame is handled, not on those of the
// handshake: roles change in session.
func (c *conn) handle(f wire.Frame) error {
	switch f.Type {
	case wire.TypePing:
		c.reply(wire.TypePong, f.Payload)
		return nil
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
	case wire.TypeWrite:
		return c.apply(f)
	case wire.TypeResyncData:
		return c.applyResync(f)
	case wire.TypeFlush:
		fl, err := wire.ParseFlush(f.Payload)
		if err != nil {
			return err
		}
		return c.flushFrom(fl)
	case wire.TypeVerifyRequest:
		return c.queueDigest(f)
	case wire.TypeVerifyDigest:
		return c.verifyReply(f)
	}
	return fmt.Errorf("mirror: unexpected %s in session", f.Type)
}

// ackWrites delivers a WriteAck to the writes it covers.
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

// apply applies one Write from the primary peer, in frame order, and acks
// it. A Write while this node is (becoming) primary breaks the
// connection: two primaries never share one.
func (c *conn) apply(f wire.Frame) error {
	h, data, err := wire.ParseWrite(f.Payload)
	if err != nil {
		return err
	}
	e := c.e
	e.mu.Lock()
	primary := e.role == Primary || e.promoting
	if !primary {
		e.peerRole = Primary
	}
	e.mu.Unlock()
	if primary {
		return fmt.Errorf("%w: the peer wrote while this node is primary", ErrRefused)
	}
	st := wire.StatusOK
	switch {
	case h.Offset > e.size || uint64(len(data)) > e.size-h.Offset:
		st = wire.StatusOutOfRange
	default:
		if h.Flags&wire.WritePreFlush != 0 {
			err = e.cfg.Data.Sync()
		}
		if err == nil {
			err = e.writeLocal(data, h.Offset, h.Flags&wire.WriteFUA != 0)
		}
		if err != nil {
			st = wire.StatusIOError
		}
	}
	c.ackNow(f.Seq, st)
	return nil
}

// ackNow sends the WriteAck of the Write frame seq at once when the
// writer is free and no reply waits, and queues it for the reply loop
// otherwise: a sync write then waits for one goroutine less. Only a node
// applying Writes (never a primary) acks this way, and its peer's read
// loop never waits on the network, so this write cannot wait forever.
func (c *conn) ackNow(seq uint64, status uint32) {
	c.rmu.Lock()
	waiting := len(c.replies) > 0
	c.rmu.Unlock()
	if waiting || !c.wmu.TryLock() {
		c.replyAck(seq, status)
		return
	}
	if c.reserved > 0 || c.wbroken { // frames before it wait for their turn
		c.wmu.Unlock()
		c.replyAck(seq, status)
		return
	}
	c.reserve(1)
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.e.cfg.Timeout))
	var b [wire.WriteAckSize]byte
	_, err := c.w.WriteFrame(wire.TypeWriteAck, wire.WriteAck{From: seq, To: seq, Status: status}.Put(b[:]), nil)
	if err == nil {
		err = c.w.Flush()
	}
	c.sent(1, err)
	c.wmu.Unlock()
	if err != nil {
		c.fail(fmt.Errorf("mirror send ack: %w", err))
	}
}

// flushFrom answers a Flush from the peer: an ordinary one syncs the
// volume, a control one runs its step.
func (c *conn) flushFrom(fl wire.Flush) error {
	e := c.e
	st := wire.StatusOK
	switch fl.ID {
	case ResyncBeginID:
		if err := c.targetBegin(); err != nil {
			return err
		}
	case ResyncDoneID:
		e.mu.Lock()
		target := c.target
		e.mu.Unlock()
		if !target {
			return errors.New("mirror: resync end without a resync")
		}
		if err := c.targetDone(); err != nil {
			return err
		}
	case PromoteID:
		e.mu.Lock()
		if e.role == Primary || e.promoting || (e.rs != nil && e.rs.c == c) {
			st = StatusRoleConflict
		} else {
			e.peerRole = Primary
		}
		e.mu.Unlock()
	case DemoteID:
		e.mu.Lock()
		e.peerRole = Secondary
		e.mu.Unlock()
	default:
		if fl.ID&controlID != 0 {
			return fmt.Errorf("mirror: unknown control flush %#x", fl.ID)
		}
		if err := e.cfg.Data.Sync(); err != nil {
			st = wire.StatusIOError
		}
	}
	var b [wire.FlushAckSize]byte
	c.reply(wire.TypeFlushAck, wire.FlushAck{ID: fl.ID, Status: st}.Put(b[:]))
	return nil
}
