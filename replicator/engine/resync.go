package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-ha/vigil/replicator/meta"
	"github.com/vigil-ha/vigil/replicator/wire"
)

// bitmapChunkBytes is the bitmap bytes per BitmapChunk frame.
const bitmapChunkBytes = 64 << 10

// resyncRun is one resync this node sources: the dirty runs taken when it
// started, and the bits written while it runs (those stay dirty after
// it: their writes may not be covered by its final flush, or may not
// have reached the peer at all).
type resyncRun struct {
	c       *conn
	runs    []span
	total   uint64
	catchUp bool     // started while an async primary was behind
	begun   bool     // the target acked ResyncBegin
	running bool     // the resync loop took it
	touched []uint64 // one bit per bitmap bit
}

// touch records that the aligned span s was written during the run.
func (r *resyncRun) touch(e *Engine, s span) {
	if r.touched == nil {
		r.touched = make([]uint64, (e.bm.Bits()+63)/64)
	}
	for b := s.off / e.gran; b*e.gran < s.end; b++ {
		r.touched[b/64] |= 1 << (b % 64)
	}
}

func (r *resyncRun) isTouched(b uint64) bool {
	return r.touched != nil && r.touched[b/64]&(1<<(b%64)) != 0
}

// snapshot takes the bitmap's dirty runs as rs's work.
func (e *Engine) snapshot(rs *resyncRun) {
	rs.runs, rs.total = rs.runs[:0], 0
	e.bm.Runs(func(off, n uint64) bool {
		rs.runs = append(rs.runs, span{off, off + n})
		rs.total += n
		return true
	})
}

// startRunLocked makes rs the running resync. Caller holds e.mu.
func (e *Engine) startRunLocked(rs *resyncRun) {
	e.rs = rs
	e.rsTotal, e.rsDone = rs.total, 0
	e.meter.reset(time.Now(), 0)
	e.state = Resyncing
}

// readResync reads the next frame of the bitmap exchange under a fresh
// deadline. A Close from the peer is an error.
func (c *conn) readResync() (wire.Frame, error) {
	c.deadline()
	f, err := c.r.ReadFrame()
	if err != nil {
		return f, fmt.Errorf("mirror resync: %w", err)
	}
	if f.Type == wire.TypeClose {
		cl, _ := wire.ParseClose(f.Payload)
		if cl.Code == wire.CloseSplitBrain {
			return f, ErrSplitBrain
		}
		return f, fmt.Errorf("%w: peer closed (code %d)", ErrRefused, cl.Code)
	}
	return f, nil
}

// exchangeControl sends the control Flush id and reads its FlushAck,
// before the session runs.
func (c *conn) exchangeControl(id uint64) error {
	var fb [wire.FlushSize]byte
	c.deadline()
	if _, err := c.w.WriteFrame(wire.TypeFlush, wire.Flush{ID: id}.Put(fb[:]), nil); err != nil {
		return fmt.Errorf("mirror resync send: %w", err)
	}
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("mirror resync send: %w", err)
	}
	f, err := c.readResync()
	if err != nil {
		return err
	}
	if f.Type != wire.TypeFlushAck {
		return fmt.Errorf("mirror resync: unexpected %s", f.Type)
	}
	a, err := wire.ParseFlushAck(f.Payload)
	if err != nil {
		return err
	}
	if a.ID != id || a.Status != wire.StatusOK {
		return fmt.Errorf("mirror resync: peer answered %#x with status %d", a.ID, a.Status)
	}
	return nil
}

// sourceStart runs the source's side of a connection's bitmap exchange:
// merge the target's bitmap (regions it may hold that we lack), take the
// dirty runs, and announce the resync. With nothing to copy it ends the
// resync at once and returns nil; otherwise the resync loop streams the
// returned run in the session.
func (c *conn) sourceStart(full bool) (*resyncRun, error) {
	e := c.e
	e.setState(Resyncing)
	if full {
		if err := e.bm.SetAll(); err != nil {
			return nil, fmt.Errorf("mirror resync: %w", err)
		}
	}
	for {
		f, err := c.readResync()
		if err != nil {
			return nil, err
		}
		if f.Type != wire.TypeBitmapChunk {
			return nil, fmt.Errorf("mirror resync: unexpected %s", f.Type)
		}
		h, bits, err := wire.ParseBitmapChunk(f.Payload)
		if err != nil {
			return nil, err
		}
		if h.Total != e.bm.Bits() || uint64(h.Granularity) != e.gran || h.Start%8 != 0 || h.Start > h.Total {
			return nil, fmt.Errorf("mirror resync: bitmap chunk %d/%d granularity %d does not fit", h.Start, h.Total, h.Granularity)
		}
		e.bm.Or(h.Start, bits)
		if h.Flags&wire.BitmapLast != 0 {
			break
		}
	}
	if err := e.bm.Sync(); err != nil {
		return nil, fmt.Errorf("mirror resync: %w", err)
	}
	rs := &resyncRun{c: c}
	e.snapshot(rs)
	if rs.total == 0 {
		if err := c.exchangeControl(ResyncDoneID); err != nil {
			return nil, err
		}
		return nil, c.sourceDone(nil)
	}
	if err := c.exchangeControl(ResyncBeginID); err != nil {
		return nil, err
	}
	rs.begun = true
	return rs, nil
}

// targetStart runs the target's side of a connection's bitmap exchange:
// send our bitmap, then take the source's ResyncBegin (the resync then
// streams in the session) or, with nothing to copy, its ResyncDone.
func (c *conn) targetStart() error {
	e := c.e
	e.setState(Resyncing)
	bits := e.bm.Bits()
	buf := make([]byte, bitmapChunkBytes)
	var hb [wire.BitmapHeaderSize]byte
	for start := uint64(0); start < bits; start += bitmapChunkBytes * 8 {
		n := e.bm.Export(start, buf)
		h := wire.BitmapHeader{Start: start, Total: bits, Granularity: uint32(e.gran)}
		if start+bitmapChunkBytes*8 >= bits {
			h.Flags = wire.BitmapLast
		}
		c.deadline()
		if _, err := c.w.WriteFrame(wire.TypeBitmapChunk, h.Put(hb[:]), buf[:n]); err != nil {
			return fmt.Errorf("mirror resync send: %w", err)
		}
	}
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("mirror resync send: %w", err)
	}
	f, err := c.readResync()
	if err != nil {
		return err
	}
	if f.Type != wire.TypeFlush {
		return fmt.Errorf("mirror resync: unexpected %s", f.Type)
	}
	fl, err := wire.ParseFlush(f.Payload)
	if err != nil {
		return err
	}
	switch fl.ID {
	case ResyncBeginID:
		err = c.targetBegin()
	case ResyncDoneID:
		err = c.targetDone()
	default:
		err = fmt.Errorf("mirror resync: unexpected flush %#x", fl.ID)
	}
	if err != nil {
		return err
	}
	var ab [wire.FlushAckSize]byte
	return c.send(wire.TypeFlushAck, wire.FlushAck{ID: fl.ID}.Put(ab[:]), nil, nil)
}

// targetBegin makes this node a resync target: its data is inconsistent,
// durably, before any resync frame is applied.
func (c *conn) targetBegin() error {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.role == Primary || e.promoting {
		return fmt.Errorf("%w: a resync toward a primary", ErrRefused)
	}
	c.target = true
	if !c.failed { // still in Connect, or the session
		e.state = Resyncing
	}
	e.rsTotal, e.rsDone = 0, 0
	e.meter.reset(time.Now(), 0)
	if e.sb.Flags&meta.FlagConsistent == 0 {
		return nil
	}
	return e.updateSuperblockLocked(func(sb *meta.Superblock) { sb.Flags &^= meta.FlagConsistent })
}

// targetDone ends a resync on the target: sync the volume, forget our
// bitmap (it was merged into the source's), take the source's
// generations and become consistent.
func (c *conn) targetDone() error {
	e := c.e
	if err := e.cfg.Data.Sync(); err != nil {
		return fmt.Errorf("mirror resync: %w", err)
	}
	e.bm.Clear(0, e.size)
	if err := e.bm.WriteBack(); err != nil {
		return fmt.Errorf("mirror resync: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	err := e.updateSuperblockLocked(func(sb *meta.Superblock) {
		sb.Gens = sb.Gens.ResyncTargetDone(c.peerGens)
		sb.Flags |= meta.FlagConsistent
		sb.Flags &^= meta.FlagResolveDiscard | meta.FlagResolveKeep
	})
	c.target = false
	e.older = false
	e.diverged = false
	if e.cur == c {
		e.state = Connected
	}
	return err
}

// applyResync applies one ResyncData on the target, in frame order.
func (c *conn) applyResync(f wire.Frame) error {
	h, data, err := wire.ParseResyncData(f.Payload)
	if err != nil {
		return err
	}
	e := c.e
	e.mu.Lock()
	target := c.target
	e.mu.Unlock()
	if !target {
		return errors.New("mirror: resync data outside a resync")
	}
	if h.Flags != wire.StatusOK {
		return fmt.Errorf("mirror resync: source status %d at %d", h.Flags, h.Offset)
	}
	if h.Offset > e.size || uint64(len(data)) > e.size-h.Offset {
		return fmt.Errorf("mirror resync: data at %d+%d beyond the volume", h.Offset, len(data))
	}
	if _, err := e.cfg.Data.WriteAt(data, int64(h.Offset)); err != nil {
		return fmt.Errorf("mirror resync write: %w", err)
	}
	e.mu.Lock()
	e.rsDone += uint64(len(data))
	e.rsTotal = e.rsDone
	e.meter.add(time.Now(), e.rsDone)
	e.mu.Unlock()
	return nil
}

// resyncLoop runs this node's resyncs as source on c, one at a time: the
// one Connect prepared, a verify's, and an async primary's catch-up after
// it fell behind.
func (c *conn) resyncLoop() {
	e := c.e
	defer e.wg.Done()
	for {
		e.mu.Lock()
		if e.cur != c {
			e.mu.Unlock()
			return
		}
		var rs *resyncRun
		switch {
		case e.rs != nil && e.rs.c == c && !e.rs.running:
			rs = e.rs
		case e.rs == nil && (e.rsWant || (e.behind && e.queueRoomLocked())):
			rs = &resyncRun{c: c, catchUp: e.behind}
			e.rsWant = false
		}
		if rs != nil {
			rs.running = true
		}
		e.mu.Unlock()
		if rs != nil {
			c.runResync(rs)
			continue
		}
		select {
		case <-c.rsKick:
		case <-c.done:
			return
		}
	}
}

// kickResync wakes c's resync loop.
func (c *conn) kickResync() {
	select {
	case c.rsKick <- struct{}{}:
	default:
	}
}

// runResync streams rs: ResyncBegin (unless Connect sent it), every dirty
// run as ResyncData, paced by the rate limit, then ResyncDone; on its ack
// it clears what it copied. Application writes go on meanwhile: a chunk
// locks its span like a write, so a chunk and an overlapping write reach
// the peer in the order they were applied here, and the peer applies
// frames in order.
func (c *conn) runResync(rs *resyncRun) {
	e := c.e
	if !rs.begun {
		st, ok := c.control(ResyncBeginID)
		if !ok {
			return
		}
		if st != wire.StatusOK {
			c.fail(fmt.Errorf("%w: peer refused a resync (status %d)", ErrPeerLost, st))
			return
		}
		e.mu.Lock()
		if e.cur != c {
			e.mu.Unlock()
			return
		}
		// The snapshot covers every write tracked only in the bitmap so
		// far; later writes are queued again (after ResyncBegin).
		e.behind = false
		e.snapshot(rs)
		rs.begun = true
		e.startRunLocked(rs)
		e.mu.Unlock()
	}
	if !c.sendRuns(rs.runs) {
		return
	}
	st, ok := c.control(ResyncDoneID)
	if !ok {
		return
	}
	if st != wire.StatusOK {
		c.fail(fmt.Errorf("%w: peer resync end status %d", ErrPeerLost, st))
		return
	}
	if err := c.sourceDone(rs); err != nil {
		c.fail(err)
	}
}

// resyncWorkers is how many chunks a resync source reads and sends at
// once: one chunk's read and seal overlap another's socket write.
const resyncWorkers = 3

// sendRuns sends runs as ResyncData, chunk by chunk, resyncWorkers at
// once, paced by the rate limit. It returns false when the connection
// ended or failed first (a read or send error fails it).
func (c *conn) sendRuns(runs []span) bool {
	e := c.e
	chunk := uint64(min(c.maxData, wire.MaxData))
	ahead := readAhead{runs: runs}
	ahead.p, _ = e.cfg.Data.(Prefetcher)
	var mu sync.Mutex
	i, off := 0, uint64(0)
	// next hands out the next chunk of the runs, in order.
	next := func() (span, bool) {
		mu.Lock()
		defer mu.Unlock()
		for ; i < len(runs); i++ {
			off = max(off, runs[i].off)
			if off < runs[i].end {
				n := min(chunk, runs[i].end-off)
				ahead.consume(n)
				off += n
				return span{off - n, off}, true
			}
		}
		return span{}, false
	}
	var stopped atomic.Bool
	var wg sync.WaitGroup
	for range resyncWorkers {
		wg.Go(func() {
			buf := make([]byte, chunk)
			for !stopped.Load() {
				s, ok := next()
				if !ok {
					return
				}
				if !c.sendChunk(s, buf) {
					stopped.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	return !stopped.Load()
}

// sendChunk sends the chunk s of a resync as ResyncData, read into buf,
// once the rate limit lets it go and no write in flight overlaps it; it
// locks s like a write meanwhile, so a chunk and an overlapping write
// reach the peer in the order they were applied here. It returns false
// when the connection ended or failed first.
func (c *conn) sendChunk(s span, buf []byte) bool {
	e := c.e
	n := s.end - s.off
	if !e.limiter.wait(context.Background(), c.done, int(n)) {
		return false
	}
	if !e.lockSpan(context.Background(), s, c) {
		return false
	}
	data := buf[:n]
	_, err := e.cfg.Data.ReadAt(data, int64(s.off))
	if err != nil {
		err = fmt.Errorf("mirror resync read at %d: %w", s.off, err)
	} else {
		var hb [wire.WriteHeaderSize]byte
		h := wire.WriteHeader{Offset: s.off, Length: uint32(n), Flags: wire.StatusOK}
		err = c.send(wire.TypeResyncData, h.Put(hb[:]), data, nil)
	}
	e.unlockSpan(s)
	if err != nil {
		c.fail(err)
		return false
	}
	e.mu.Lock()
	e.rsDone += n
	e.rsSent += n
	e.meter.add(time.Now(), e.rsDone)
	e.mu.Unlock()
	return true
}

// sourceDone ends a resync on the source once the target acked
// ResyncDone: clear the copied runs (rs nil: nothing was copied), retire
// the bitmap generation and any split brain resolution.
//
// The run stays current (its touched bits recorded, candidates kept)
// until the new generations are durable; only then does the state say
// connected.
func (c *conn) sourceDone(rs *resyncRun) error {
	e := c.e
	if rs != nil {
		e.mu.Lock()
		if e.cur != c || e.rs != rs {
			e.mu.Unlock()
			return nil
		}
		e.clearRunLocked(rs)
		e.mu.Unlock()
	}
	// Persist the clears; the extents this primary's writes keep hot
	// stay so.
	if err := e.bm.Sync(); err != nil {
		return fmt.Errorf("mirror resync: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	err := e.updateSuperblockLocked(func(sb *meta.Superblock) {
		sb.Gens = sb.Gens.ResyncSourceDone()
		sb.Flags &^= meta.FlagResolveDiscard | meta.FlagResolveKeep
	})
	if err != nil {
		return err
	}
	e.diverged = false
	e.older = false
	if rs != nil && e.cur == c && e.rs == rs {
		e.rs = nil
		e.rsFinished++
		e.state = Connected
		e.cond.Broadcast()
	}
	return nil
}

// clearRunLocked clears the bits of rs's runs, except those written
// during the run, touched by an async write still queued or unacked, or
// locked by a write or chunk in flight: those stay dirty. Caller holds
// e.mu.
func (e *Engine) clearRunLocked(rs *resyncRun) {
	queued := e.queuedBitsLocked()
	g := e.gran
	for _, r := range rs.runs {
		var from, to uint64
		open := false
		for b := r.off / g; b*g < r.end; b++ {
			reg := span{b * g, min((b+1)*g, e.size)}
			_, q := queued[b]
			keep := q || rs.isTouched(b) || (len(e.locked) > 0 && slices.ContainsFunc(e.locked, reg.overlaps))
			switch {
			case keep && open:
				e.bm.Clear(from, to-from)
				open = false
			case !keep && open:
				to = reg.end
			case !keep:
				from, to, open = reg.off, reg.end, true
			}
		}
		if open {
			e.bm.Clear(from, to-from)
		}
	}
}

// ResyncRange copies the byte range [off, off+length) (length 0: to the
// end of the volume) from this primary to the connected peer, whatever
// the bitmap says (DRBD's invalidate-remote): it marks the range dirty,
// durably, and waits for an in-session resync of the dirty bitmap, writes
// going on meanwhile at the resync rate limit. A lost peer ends it with
// ErrPeerLost: the range stays dirty for the next connection.
func (e *Engine) ResyncRange(ctx context.Context, off, length uint64) error {
	if off >= e.size || length > e.size-off {
		return fmt.Errorf("mirror resync %d+%d: %w", off, length, ErrRange)
	}
	if length == 0 {
		length = e.size - off
	}
	e.mu.Lock()
	c := e.cur
	var err error
	switch {
	case e.closed:
		err = ErrClosed
	case e.role != Primary:
		err = ErrNotPrimary
	case c == nil:
		err = ErrNotConnected
	}
	e.mu.Unlock()
	if err != nil {
		return fmt.Errorf("mirror resync: %w", err)
	}
	e.bm.MarkStale(off, length)
	if err := e.bm.Sync(); err != nil {
		return fmt.Errorf("mirror resync: %w", err)
	}
	e.keepDirty(span{off, off + length})
	if err := e.resyncNow(ctx, c); err != nil {
		return fmt.Errorf("mirror resync: %w", err)
	}
	return nil
}

// readAheadWindow is how far ahead of the chunk being sent a resync
// source asks its volume to read: scattered dirty regions are read
// concurrently by the disk instead of one cold read at a time.
const readAheadWindow = 16 << 20

// readAhead hints a Prefetcher about the runs a resync will read next.
type readAhead struct {
	p        Prefetcher
	runs     []span
	i        int    // the run being hinted
	next     uint64 // where its hints go on
	hinted   uint64 // bytes hinted so far
	consumed uint64 // bytes read so far
}

// consume records n more bytes about to be read and hints the runs up to
// readAheadWindow beyond them.
func (ra *readAhead) consume(n uint64) {
	if ra.p == nil {
		return
	}
	ra.consumed += n
	for ra.i < len(ra.runs) && ra.hinted < ra.consumed+readAheadWindow {
		r := ra.runs[ra.i]
		ra.next = max(ra.next, r.off)
		if ra.next >= r.end {
			ra.i++
			continue
		}
		k := min(r.end-ra.next, 1<<20)
		ra.p.Prefetch(int64(ra.next), int64(k))
		ra.next += k
		ra.hinted += k
	}
}
