package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/vigil-ha/vigil/replicator/wire"
)

// maxCandidates bounds the regions waiting for a Flush to be cleared;
// beyond it, regions simply stay dirty until the next resync.
const maxCandidates = 1 << 16

// Write writes data at byte offset off of the volume (sync mode): it
// marks the region dirty (durably first, if needed), sends the write to the
// peer and writes locally in parallel, and returns when the local write is
// done (durable if fua) and the peer acked it, or the peer was lost (the
// region then stays dirty). data is at most wire.MaxData bytes. Only a
// primary writes.
func (e *Engine) Write(ctx context.Context, off uint64, data []byte, fua bool) error {
	if err := e.checkRange(off, len(data)); err != nil {
		return err
	}
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
		if !slices.ContainsFunc(e.inflight, s.overlaps) {
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
	e.inflight = append(e.inflight, s)
	e.mu.Unlock()
	defer e.writeDone(s)

	if e.bm.MarkDirty(off, uint64(len(data))) {
		if err := e.bm.Sync(); err != nil {
			return fmt.Errorf("mirror write: bitmap: %w", err)
		}
	}
	if e.cfg.Mode == AsyncMode {
		return e.writeAsync(c, s, data, fua)
	}

	var ack chan uint32
	if c != nil {
		ack = make(chan uint32, 1)
		var flags uint32
		if fua {
			flags = wire.WriteFUA
		}
		var hb [wire.WriteHeaderSize]byte
		h := wire.WriteHeader{Offset: off, Length: uint32(len(data)), Flags: flags}
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
			defer func() {
				c.mu.Lock()
				delete(c.pending, seq)
				c.mu.Unlock()
			}()
		}
	}

	_, werr := e.cfg.Data.WriteAt(data, int64(off))
	if werr == nil && fua {
		werr = e.cfg.Data.Sync()
	}

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
		e.dropCandidates(s)
		return fmt.Errorf("mirror write at %d: %w", off, werr)
	}
	return nil
}

// writeDone removes s from the writes in flight.
func (e *Engine) writeDone(s span) {
	e.mu.Lock()
	if i := slices.Index(e.inflight, s); i >= 0 {
		e.inflight = slices.Delete(e.inflight, i, i+1)
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
	if n := len(e.cands); n > 0 && e.cands[n-1].s == a && e.cands[n-1].c == c {
		return
	}
	e.candSeq++
	e.cands = append(e.cands, candidate{a, c, e.candSeq})
}

// dropCandidates forgets candidates overlapping s: a local write there
// failed, so the region must stay dirty.
func (e *Engine) dropCandidates(s span) {
	a := e.align(s.off, s.end-s.off)
	e.mu.Lock()
	e.cands = slices.DeleteFunc(e.cands, func(k candidate) bool { return k.s.overlaps(a) })
	e.mu.Unlock()
}

// Flush makes every write completed before it durable on both sides. It
// then clears the bits of regions whose writes both sides now hold durably
// and that no write in flight touches.
//
// In async mode it waits until every write queued before it was acked,
// then flushes end to end; if the engine fell back to the bitmap, it also
// waits for the catch-up resync. A lost peer ends the wait without error.
func (e *Engine) Flush(ctx context.Context) error {
	if e.cfg.Mode == AsyncMode {
		return e.flushAsync(ctx)
	}
	e.gate.RLock()
	defer e.gate.RUnlock()
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
	e.flushIDSeq++
	id := e.flushIDSeq
	e.mu.Unlock()

	if err := e.cfg.Data.Sync(); err != nil {
		return fmt.Errorf("mirror flush: %w", err)
	}
	if c == nil {
		return nil
	}
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
// acked before the Flush was sent), unless a write in flight overlaps them.
func (e *Engine) clearCandidates(c *conn, upto uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur != c || e.behind {
		return
	}
	queued := e.queuedBitsLocked()
	e.cands = slices.DeleteFunc(e.cands, func(k candidate) bool {
		if k.id > upto {
			return false
		}
		// An overlapping write in flight (or an async write queued or
		// unacked) adds its own candidate.
		if k.c == c && !slices.ContainsFunc(e.inflight, k.s.overlaps) && (queued == nil || !e.overlapsBits(queued, k.s)) {
			e.bm.Clear(k.s.off, k.s.end-k.s.off)
		}
		return true
	})
}
