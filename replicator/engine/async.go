package engine

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/vigil-ha/vigil/replicator/wire"
)

// Mode is the replication mode of a primary.
type Mode uint8

// Replication modes.
const (
	// SyncMode completes a write when both sides hold it (DRBD protocol C).
	SyncMode Mode = iota
	// AsyncMode completes a write when the local write is done and queues
	// it to the peer in order (DRBD protocol A), within a bounded queue.
	AsyncMode
)

// String returns the mode's name.
func (m Mode) String() string {
	if m == AsyncMode {
		return "async"
	}
	return "sync"
}

// Default bounds of the async queue.
const (
	DefaultMaxQueueBytes  = 64 << 20
	DefaultMaxQueueWrites = 4096
)

// qitem is one async write queued to, or sent to and not yet acked by,
// the peer.
type qitem struct {
	s      span
	data   []byte
	fua    bool
	idx    uint64    // enqueue order, from 1
	at     time.Time // enqueued
	seq    uint64    // Write frame sequence number, once sent
	sentAt time.Time
}

// enqueueLocked queues an async write to c (data is the caller's copy,
// which the queue keeps), or, if the queue
// would overflow (or the engine is already behind), falls back to the
// bitmap: the region is already marked dirty and the catch-up resync will
// copy it. Caller holds e.mu.
func (e *Engine) enqueueLocked(c *conn, s span, data []byte, fua bool) {
	if e.cur != c {
		// The peer was lost: the region stays dirty for the next
		// connection's resync.
		return
	}
	n := uint64(len(data))
	if e.behind || e.qWrites+1 > e.cfg.MaxQueueWrites || e.qBytes+n > uint64(e.cfg.MaxQueueBytes) {
		e.fallBackLocked()
		return
	}
	e.enqSeq++
	it := &qitem{s: s, data: data, fua: fua, idx: e.enqSeq, at: time.Now()}
	e.aq = append(e.aq, it)
	e.qWrites++
	e.qBytes += n
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// fallBackLocked switches to bitmap tracking until the catch-up resync
// starts: no more writes are queued and no bit is cleared, because an
// acked region may since have been written without being queued. Caller
// holds e.mu.
func (e *Engine) fallBackLocked() {
	if !e.behind {
		e.behind = true
		e.fallbacks++
	}
	e.cands = nil
	if e.cur != nil {
		e.cur.kickResync()
	}
}

// resetQueueLocked forgets the queue when the connection ends: every
// queued or unacked region is still dirty. Caller holds e.mu.
func (e *Engine) resetQueueLocked() {
	e.aq, e.unacked = nil, nil
	e.qWrites, e.qBytes = 0, 0
	e.ackedSeq = e.enqSeq
	e.behind = false
	e.cond.Broadcast()
}

// pump sends the async queue in order (in sync mode it has nothing to
// do).
func (c *conn) pump() {
	e := c.e
	defer e.wg.Done()
	if e.cfg.Mode != AsyncMode {
		return
	}
	var hb [wire.WriteHeaderSize]byte
	for {
		e.mu.Lock()
		if e.cur != c {
			e.mu.Unlock()
			return
		}
		if len(e.aq) > 0 {
			it := e.aq[0] // only the pump takes items off aq
			e.mu.Unlock()
			var flags uint32
			if it.fua {
				flags = wire.WriteFUA
			}
			h := wire.WriteHeader{Offset: it.s.off, Length: uint32(len(it.data)), Flags: flags}
			err := c.send(wire.TypeWrite, h.Put(hb[:]), it.data, func(sq uint64) {
				// Move it from aq to unacked at once, so clearing never
				// misses it; a chunk waiting for it may go after it.
				e.mu.Lock()
				if e.cur == c && len(e.aq) > 0 && e.aq[0] == it {
					e.aq[0] = nil
					e.aq = e.aq[1:]
					it.seq, it.sentAt = sq, time.Now()
					e.unacked = append(e.unacked, it)
					e.cond.Broadcast()
				}
				e.mu.Unlock()
			})
			if err != nil {
				c.fail(err)
				return
			}
			e.replicated.Add(uint64(len(it.data)))
			continue
		}
		e.mu.Unlock()
		select {
		case <-c.kick:
		case <-c.done:
			return
		}
	}
}

// ackAsync retires the async writes a WriteAck covers (the peer acks in
// frame order) and makes their regions candidates for clearing.
func (c *conn) ackAsync(a wire.WriteAck) error {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur != c {
		return nil
	}
	if a.Status != wire.StatusOK {
		return fmt.Errorf("%w: peer write status %d", ErrPeerLost, a.Status)
	}
	e.lastAck = time.Now()
	for len(e.unacked) > 0 && e.unacked[0].seq <= a.To {
		it := e.unacked[0]
		e.unacked[0] = nil
		e.unacked = e.unacked[1:]
		e.qWrites--
		e.qBytes -= uint64(len(it.data))
		e.ackedSeq = it.idx
		e.addCandidateLocked(it.s, c)
	}
	e.cond.Broadcast()
	if e.behind && e.queueRoomLocked() {
		c.kickResync()
	}
	return nil
}

// queueRoomLocked reports whether the queue drained to half its bounds:
// a catch-up starts only then, so that the writes it queues again do not
// overflow at once. Caller holds e.mu.
func (e *Engine) queueRoomLocked() bool {
	return e.qWrites*2 <= e.cfg.MaxQueueWrites && e.qBytes*2 <= uint64(e.cfg.MaxQueueBytes)
}

// ackOverdue reports async writes waiting for an ack while the peer made
// no progress for Timeout: neither the oldest was sent nor any ack came
// within it. (A deep queue on a slow link is old but progressing.)
func (c *conn) ackOverdue() bool {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur != c || len(e.unacked) == 0 {
		return false
	}
	last := e.unacked[0].sentAt
	if e.lastAck.After(last) {
		last = e.lastAck
	}
	return time.Since(last) > e.cfg.Timeout
}

// writeAsync is Write in async mode once the region is locked and marked
// dirty: queue the write to c (or fall back to the bitmap), then write
// locally.
func (e *Engine) writeAsync(c *conn, s span, data []byte, fua bool) error {
	if c != nil {
		own := slices.Clone(data) // copied before the lock: other writers and the pump go on
		e.mu.Lock()
		e.enqueueLocked(c, s, own, fua)
		e.mu.Unlock()
	}
	werr := e.writeLocal(data, s.off, fua)
	if werr != nil {
		// The peer may get data we failed to write: keep everything dirty
		// and let the catch-up copy our side.
		e.mu.Lock()
		if c != nil && e.cur == c {
			e.fallBackLocked()
		}
		e.mu.Unlock()
		e.keepDirty(s)
		return fmt.Errorf("mirror write at %d: %w", s.off, werr)
	}
	return nil
}

// flushAsync is Flush in async mode: local sync, wait until every write
// queued before it is acked, an end-to-end Flush, clearing; then, if
// waitCatchUp and the engine fell back to the bitmap, wait for the
// catch-up resync.
func (e *Engine) flushAsync(ctx context.Context, waitCatchUp bool) error {
	c, err := e.flushQueued(ctx)
	if err != nil || c == nil || !waitCatchUp {
		return err
	}
	stop := context.AfterFunc(ctx, func() {
		e.mu.Lock()
		e.cond.Broadcast()
		e.mu.Unlock()
	})
	defer stop()
	e.mu.Lock()
	defer e.mu.Unlock()
	for e.cur == c && (e.behind || (e.rs != nil && e.rs.catchUp)) && ctx.Err() == nil {
		c.kickResync()
		e.cond.Wait()
	}
	return ctx.Err()
}

func (e *Engine) flushQueued(ctx context.Context) (*conn, error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	if e.role != Primary {
		e.mu.Unlock()
		return nil, ErrNotPrimary
	}
	c := e.cur
	target := e.enqSeq
	e.flushIDSeq++
	id := e.flushIDSeq
	e.mu.Unlock()

	if err := e.cfg.Data.Sync(); err != nil {
		return nil, fmt.Errorf("mirror flush: %w", err)
	}
	if c == nil {
		return nil, nil
	}
	stop := context.AfterFunc(ctx, func() {
		e.mu.Lock()
		e.cond.Broadcast()
		e.mu.Unlock()
	})
	defer stop()
	e.mu.Lock()
	for e.cur == c && e.ackedSeq < target && ctx.Err() == nil {
		e.cond.Wait()
	}
	lost := e.cur != c
	upto := e.candSeq
	e.snapSeq = upto
	e.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if lost {
		return nil, nil
	}

	ch := c.sendFlush(id)
	if ch == nil {
		return nil, nil
	}
	st, ok, err := c.wait(ctx, ch, "flush ack")
	if err != nil {
		c.mu.Lock()
		delete(c.flushes, id)
		c.mu.Unlock()
		return nil, err
	}
	if !ok {
		return nil, nil
	}
	if st != wire.StatusOK {
		c.fail(fmt.Errorf("%w: peer flush status %d", ErrPeerLost, st))
		return nil, nil
	}
	e.clearCandidates(c, upto)
	return c, nil
}

// queuedBitsLocked returns the bitmap bits touched by queued or unacked
// async writes, or nil if there are none. Caller holds e.mu.
func (e *Engine) queuedBitsLocked() map[uint64]struct{} {
	if len(e.aq) == 0 && len(e.unacked) == 0 {
		return nil
	}
	m := make(map[uint64]struct{})
	for _, q := range [][]*qitem{e.unacked, e.aq} {
		for _, it := range q {
			for b := it.s.off / e.gran; b*e.gran < it.s.end; b++ {
				m[b] = struct{}{}
			}
		}
	}
	return m
}

// unsentOverlapsLocked reports whether an async write queued and not yet
// sent overlaps s. Caller holds e.mu.
func (e *Engine) unsentOverlapsLocked(s span) bool {
	for _, it := range e.aq {
		if it.s.overlaps(s) {
			return true
		}
	}
	return false
}
