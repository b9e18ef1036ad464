package engine

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/vigil-ha/vigil/replicator/wire"
)

// maxCandidates bounds the regions waiting for a Flush to be cleared;
// beyond it, regions simply stay dirty until the next resync.
const maxCandidates = 1 << 16

// Write writes data at byte offset off of the volume: it marks the region
// dirty (durably first, if needed), then, in sync mode, sends the write
// to the peer and writes locally in parallel, and returns when the local
// write is done (durable if fua) and the peer acked it, or the peer was
// lost (the region then stays dirty). In async mode it queues the write
// to the peer and returns when the local write is done. data is at most
// wire.MaxData bytes. Only a primary writes. Writes are never held by a
// resync or a verify, except while one of their chunks overlapping the
// write is in flight.
func (e *Engine) Write(ctx context.Context, off uint64, data []byte, fua bool) error {
	if err := e.checkRange(off, len(data)); err != nil {
		return err
	}
	start := time.Now()
	e.gate.RLock()
	defer e.gate.RUnlock()
	s := span{off, off + uint64(len(data))}

	e.mu.Lock()
	for {
		if e.closed {
			e.mu.Unlock()
			return ErrClosed
		}
		if e.role != Primary {
			e.mu.Unlock()
			return ErrNotPrimary
		}
		if !slices.ContainsFunc(e.locked, s.overlaps) {
			break
		}
		e.cond.Wait() // overlapping writes go in order on both sides
	}
	c := e.cur
	if c == nil {
		if err := e.divergeLocked(); err != nil {
			e.mu.Unlock()
			return err
		}
	}
	e.locked = append(e.locked, s)
	e.nwrites++
	if e.rs != nil {
		e.rs.touch(e, e.align(off, uint64(len(data))))
	}
	e.mu.Unlock()
	defer e.writeDone(s)

	if e.bm.MarkDirty(off, uint64(len(data))) {
		e.bmSyncs.Add(1)
		if err := e.bm.Sync(); err != nil {
			return fmt.Errorf("mirror write: bitmap: %w", err)
		}
	}
	var err error
	if e.cfg.Mode == AsyncMode {
		err = e.writeAsync(c, s, data, fua)
	} else {
		err = e.writeSync(ctx, c, s, data, fua)
	}
	if err == nil && e.cfg.ObserveWrite != nil {
		e.cfg.ObserveWrite(time.Since(start))
	}
	return err
}

// writeSync is Write in sync mode once the region is locked and marked
// dirty.
func (e *Engine) writeSync(ctx context.Context, c *conn, s span, data []byte, fua bool) error {
	var ack chan uint32
	if c != nil {
		ack = make(chan uint32, 1)
		var flags uint32
		if fua {
			flags = wire.WriteFUA
		}
		var hb [wire.WriteHeaderSize]byte
		h := wire.WriteHeader{Offset: s.off, Length: uint32(len(data)), Flags: flags}
		var seq uint64
		err := c.send(wire.TypeWrite, h.Put(hb[:]), data, func(sq uint64) {
			seq = sq
			c.mu.Lock()
			c.pending[sq] = ack
			c.mu.Unlock()
		})
		if err != nil {
			c.fail(err)
			c = nil
		} else {
			e.replicated.Add(uint64(len(data)))
			defer func() {
				c.mu.Lock()
				delete(c.pending, seq)
				c.mu.Unlock()
			}()
		}
	}

	werr := e.writeLocal(data, s.off, fua)

	if c != nil {
		st, ok, err := c.wait(ctx, ack, "write ack")
		if err != nil {
			return err
		}
		switch {
		case ok && st != wire.StatusOK:
			c.fail(fmt.Errorf("%w: peer write status %d", ErrPeerLost, st))
		case ok && werr == nil:
			e.addCandidate(s, c)
		}
	}
	if werr != nil {
		e.keepDirty(s)
		return fmt.Errorf("mirror write at %d: %w", s.off, werr)
	}
	return nil
}

// writeDone unlocks the write s.
func (e *Engine) writeDone(s span) {
	e.mu.Lock()
	if i := slices.Index(e.locked, s); i >= 0 {
		e.locked = slices.Delete(e.locked, i, i+1)
	}
	e.nwrites--
	e.cond.Broadcast()
	e.mu.Unlock()
}

// lockSpan waits until no write, chunk or async write still queued (not
// yet sent) overlaps s, then locks s like a write. It gives up, returning
// false, when c is no longer the connection, the engine closes or ctx
// ends (the caller wakes e.cond for ctx).
func (e *Engine) lockSpan(ctx context.Context, s span, c *conn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		if e.cur != c || e.closed || ctx.Err() != nil {
			return false
		}
		if !slices.ContainsFunc(e.locked, s.overlaps) && !e.unsentOverlapsLocked(s) {
			e.locked = append(e.locked, s)
			return true
		}
		e.cond.Wait()
	}
}

// unlockSpan unlocks a span locked by lockSpan.
func (e *Engine) unlockSpan(s span) {
	e.mu.Lock()
	if i := slices.Index(e.locked, s); i >= 0 {
		e.locked = slices.Delete(e.locked, i, i+1)
	}
	e.cond.Broadcast()
	e.mu.Unlock()
}

// addCandidate records that the write s was acked on c: its bits may be
// cleared after the next end-to-end Flush.
func (e *Engine) addCandidate(s span, c *conn) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.addCandidateLocked(s, c)
}

// addCandidateLocked is addCandidate with e.mu held. An engine behind
// (async fallback) records none.
func (e *Engine) addCandidateLocked(s span, c *conn) {
	a := e.align(s.off, s.end-s.off)
	if e.cur != c || e.behind || len(e.cands) >= maxCandidates {
		return
	}
	// A write to the region of the newest candidate needs no candidate
	// of its own, unless a Flush took that one already: the Flush may
	// have been sent before this write.
	if n := len(e.cands); n > 0 && e.cands[n-1].s == a && e.cands[n-1].c == c && e.cands[n-1].id > e.snapSeq {
		return
	}
	e.candSeq++
	e.cands = append(e.cands, candidate{a, c, e.candSeq})
}

// keepDirty makes sure the region of s stays dirty: a local write there
// failed (the peer may hold data we do not), or verify found it differs.
// It forgets the candidates overlapping it, and keeps it dirty past a
// running resync.
func (e *Engine) keepDirty(s span) {
	a := e.align(s.off, s.end-s.off)
	e.mu.Lock()
	e.cands = slices.DeleteFunc(e.cands, func(k candidate) bool { return k.s.overlaps(a) })
	if e.rs != nil {
		e.rs.touch(e, a)
	}
	e.mu.Unlock()
}

// Flush makes every write completed before it durable on both sides. It
// then clears the bits of regions whose writes both sides now hold durably
// and that no write in flight touches (not while a resync runs: its
// regions are cleared when it ends).
//
// In async mode it waits until every write queued before it was acked,
// then flushes end to end; if the engine fell back to the bitmap, it also
// waits for the catch-up resync. A lost peer ends the wait without error.
func (e *Engine) Flush(ctx context.Context) error {
	e.gate.RLock()
	defer e.gate.RUnlock()
	return e.flush(ctx, true)
}

// flush is Flush under the gate; waitCatchUp makes an async flush wait
// for a catch-up.
func (e *Engine) flush(ctx context.Context, waitCatchUp bool) error {
	if e.cfg.Mode == AsyncMode {
		return e.flushAsync(ctx, waitCatchUp)
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	if e.role != Primary {
		e.mu.Unlock()
		return ErrNotPrimary
	}
	c := e.cur
	upto := e.candSeq
	e.snapSeq = upto
	e.flushIDSeq++
	id := e.flushIDSeq
	e.mu.Unlock()

	// The peer's flush runs while the local one does: the Flush frame
	// follows every write completed before it on the connection.
	var ch chan uint32
	if c != nil {
		if ch = c.sendFlush(id); ch == nil {
			c = nil
		}
	}
	if err := e.cfg.Data.Sync(); err != nil {
		// The peer's FlushAck still finds its (buffered) channel.
		return fmt.Errorf("mirror flush: %w", err)
	}
	if c == nil {
		return nil
	}
	st, ok, err := c.wait(ctx, ch, "flush ack")
	if err != nil {
		c.mu.Lock()
		delete(c.flushes, id)
		c.mu.Unlock()
		return err
	}
	if !ok {
		return nil
	}
	if st != wire.StatusOK {
		c.fail(fmt.Errorf("%w: peer flush status %d", ErrPeerLost, st))
		return nil
	}
	e.clearCandidates(c, upto)
	return nil
}

// clearCandidates clears the candidates recorded on c up to id upto (those
// acked before the Flush was sent), unless a write in flight or a write
// acked since (a newer candidate) overlaps them.
// While a resync runs or is wanted it keeps them for a later Flush: the
// resync's regions are cleared when it ends, and a region waiting for it
// must stay dirty.
func (e *Engine) clearCandidates(c *conn, upto uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur != c || e.behind || e.rs != nil || e.rsWant {
		return
	}
	queued := e.queuedBitsLocked()
	var newer []span // acked after the Flush was sent: maybe not durable
	for _, k := range e.cands {
		if k.id > upto {
			newer = append(newer, k.s)
		}
	}
	e.cands = slices.DeleteFunc(e.cands, func(k candidate) bool {
		if k.id > upto {
			return false
		}
		if k.c != c {
			return true
		}
		// Region by region: one that a write in flight (or an async write
		// queued or unacked) overlaps gets a candidate of that write's; a
		// newer candidate stays for the next Flush.
		for b := k.s.off / e.gran; b*e.gran < k.s.end; b++ {
			reg := span{b * e.gran, min((b+1)*e.gran, e.size)}
			if _, q := queued[b]; q || slices.ContainsFunc(e.locked, reg.overlaps) || slices.ContainsFunc(newer, reg.overlaps) {
				continue
			}
			e.bm.Clear(reg.off, reg.end-reg.off)
		}
		return true
	})
}
