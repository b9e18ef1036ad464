package engine

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-ha/vigil/replicator/wire"
)

const (
	// verifyWindow is how many verify chunks are outstanding at once.
	verifyWindow = 16
	// minVerifyChunk is the smallest verify chunk; the chunk is the
	// bitmap granularity within [minVerifyChunk, wire.MaxData].
	minVerifyChunk = 64 << 10
	// MaxVerifyExtents bounds VerifyResult.Mismatches.
	MaxVerifyExtents = 1024
)

// VerifyOptions says what Verify compares.
type VerifyOptions struct {
	// Offset and Length are the byte range to compare; Length 0 means up
	// to the end of the volume.
	Offset, Length uint64
	// Resync marks the mismatched regions dirty and resyncs them from this
	// (primary) node before Verify returns.
	Resync bool
}

// Extent is a byte range of the volume.
type Extent struct {
	Offset, Length uint64
}

// VerifyResult is what Verify found.
type VerifyResult struct {
	// Checked is the bytes compared.
	Checked uint64
	// Mismatched is the bytes of the chunks whose digests differ.
	Mismatched uint64
	// Mismatches are the mismatched ranges, adjacent chunks merged, at
	// most MaxVerifyExtents of them; Truncated is set when more were
	// found.
	Mismatches []Extent
	Truncated  bool
	// Skipped is the bytes that differed while an async primary tracked
	// them in its bitmap only (behind, or waiting for the catch-up): not
	// counted as mismatches, since the catch-up copies them anyway.
	Skipped uint64
	// Resynced is set when Resync copied the mismatched regions.
	Resynced bool
}

// Verify compares a range of the volume with the peer's, online: for each
// chunk it sends a VerifyRequest, computes the local SHA-256 while the
// peer computes its own, and compares it with the peer's VerifyDigest.
// Up to verifyWindow chunks are outstanding. Writes overlapping a chunk
// being verified wait until its digest arrived (and a chunk waits for
// the overlapping writes in flight, or queued in async mode, to reach the
// peer), so concurrent writes cause no false mismatch. The resync rate
// limit paces it. Only a connected primary verifies, one verify at a time
// and not during a resync. Status shows the progress (VerifyTotal,
// VerifyDone).
func (e *Engine) Verify(ctx context.Context, o VerifyOptions) (VerifyResult, error) {
	var res VerifyResult
	if o.Offset > e.size || o.Length > e.size-o.Offset {
		return res, fmt.Errorf("mirror verify %d+%d: %w", o.Offset, o.Length, ErrRange)
	}
	end := o.Offset + o.Length
	if o.Length == 0 {
		end = e.size
	}
	e.mu.Lock()
	var err error
	switch {
	case e.closed:
		err = ErrClosed
	case e.role != Primary:
		err = ErrNotPrimary
	case e.cur == nil:
		err = ErrNotConnected
	case e.verifying:
		err = fmt.Errorf("%w: a verify is running", ErrBusy)
	case e.rs != nil || e.rsWant:
		err = fmt.Errorf("%w: a resync is running", ErrBusy)
	}
	if err != nil {
		e.mu.Unlock()
		return res, fmt.Errorf("mirror verify: %w", err)
	}
	c := e.cur
	e.verifying = true
	e.vTotal, e.vDone = end-o.Offset, 0
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.verifying = false
		e.mu.Unlock()
	}()
	stop := context.AfterFunc(ctx, func() {
		e.mu.Lock()
		e.cond.Broadcast()
		e.mu.Unlock()
	})
	defer stop()

	v := &verifier{e: e, c: c, ctx: ctx, res: &res, resync: o.Resync}
	defer v.abandon()
	if err := v.run(o.Offset, end); err != nil {
		return res, fmt.Errorf("mirror verify: %w", err)
	}
	if !o.Resync || res.Mismatched == 0 {
		return res, nil
	}
	if err := e.bm.Sync(); err != nil {
		return res, fmt.Errorf("mirror verify: mark mismatches: %w", err)
	}
	if err := e.resyncNow(ctx, c); err != nil {
		return res, fmt.Errorf("mirror verify: resync of the mismatches: %w", err)
	}
	res.Resynced = true
	return res, nil
}

// verifier is one Verify's pipeline.
type verifier struct {
	e      *Engine
	c      *conn
	ctx    context.Context
	res    *VerifyResult
	resync bool
	fifo   []verifyChunk
	buf    []byte
}

type verifyChunk struct {
	s     span
	local [wire.DigestSize]byte
	ch    chan wire.VerifyDigest
}

// lost returns why the verify cannot go on.
func (v *verifier) lost() error {
	e := v.e
	if err := v.ctx.Err(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.closed:
		return ErrClosed
	case e.role != Primary:
		return ErrNotPrimary
	}
	return fmt.Errorf("%w: %w", ErrPeerLost, ErrNotConnected)
}

func (v *verifier) run(off, end uint64) error {
	e, c := v.e, v.c
	vc := min(max(e.gran, minVerifyChunk), uint64(min(c.maxData, wire.MaxData)))
	v.buf = make([]byte, vc)
	for off < end {
		n := min(vc-off%vc, end-off)
		if !e.limiter.wait(v.ctx, c.done, int(n)) {
			return v.lost()
		}
		s := span{off, off + n}
		if !e.lockSpan(v.ctx, s, c) {
			return v.lost()
		}
		e.mu.Lock()
		primary := e.role == Primary
		e.mu.Unlock()
		if !primary {
			e.unlockSpan(s)
			return ErrNotPrimary
		}
		ch := make(chan wire.VerifyDigest, 1)
		c.mu.Lock()
		c.verifies[off] = ch
		c.mu.Unlock()
		v.fifo = append(v.fifo, verifyChunk{s: s, ch: ch})
		var rb [wire.RangeSize]byte
		r := wire.Range{Offset: off, Length: uint32(n), Aux: wire.DigestSHA256}
		if err := c.send(wire.TypeVerifyRequest, r.Put(rb[:]), nil, nil); err != nil {
			c.fail(err)
			return v.lost()
		}
		data := v.buf[:n]
		if _, err := e.cfg.Data.ReadAt(data, int64(off)); err != nil {
			return fmt.Errorf("read at %d: %w", off, err)
		}
		v.fifo[len(v.fifo)-1].local = sha256.Sum256(data)
		if len(v.fifo) >= verifyWindow {
			if err := v.complete(); err != nil {
				return err
			}
		}
		off += n
	}
	for len(v.fifo) > 0 {
		if err := v.complete(); err != nil {
			return err
		}
	}
	return nil
}

// complete waits for the oldest chunk's digest and compares it.
func (v *verifier) complete() error {
	e, c := v.e, v.c
	k := v.fifo[0]
	t := time.NewTimer(e.cfg.Timeout)
	defer t.Stop()
	var d wire.VerifyDigest
	select {
	case d = <-k.ch:
	case <-c.done:
		return v.lost()
	case <-t.C:
		c.fail(fmt.Errorf("%w: no verify digest within %v", ErrPeerLost, e.cfg.Timeout))
		return v.lost()
	case <-v.ctx.Done():
		return v.ctx.Err()
	}
	v.fifo = v.fifo[1:]
	n := k.s.end - k.s.off
	if d.Range.Length != uint32(n) {
		e.unlockSpan(k.s)
		err := fmt.Errorf("%w: verify digest of %d bytes at %d for %d", ErrPeerLost, d.Range.Length, k.s.off, n)
		c.fail(err)
		return err
	}
	if d.Digest != k.local {
		e.mu.Lock()
		lag := e.cfg.Mode == AsyncMode && (e.behind || (e.rs != nil && e.rs.catchUp)) && e.bm.Dirty(k.s.off, n)
		e.mu.Unlock()
		switch {
		case lag:
			v.res.Skipped += n
		default:
			v.res.Mismatched += n
			v.addExtent(k.s)
			if v.resync {
				e.bm.MarkStale(k.s.off, n)
				e.keepDirty(k.s)
			}
		}
	}
	e.unlockSpan(k.s)
	v.res.Checked += n
	e.mu.Lock()
	e.vDone += n
	e.mu.Unlock()
	return nil
}

func (v *verifier) addExtent(s span) {
	r := v.res
	if k := len(r.Mismatches); k > 0 && r.Mismatches[k-1].Offset+r.Mismatches[k-1].Length == s.off {
		r.Mismatches[k-1].Length += s.end - s.off
		return
	}
	if len(r.Mismatches) >= MaxVerifyExtents {
		r.Truncated = true
		return
	}
	r.Mismatches = append(r.Mismatches, Extent{s.off, s.end - s.off})
}

// abandon waits for the digests still outstanding when the verify ends
// early (so that no late one meets a later verify's request), then
// unlocks their chunks.
func (v *verifier) abandon() {
	c := v.c
	for _, k := range v.fifo {
		t := time.NewTimer(v.e.cfg.Timeout)
		select {
		case <-k.ch:
		case <-c.done:
		case <-t.C:
			c.fail(fmt.Errorf("%w: no verify digest within %v", ErrPeerLost, v.e.cfg.Timeout))
		}
		t.Stop()
		v.e.unlockSpan(k.s)
	}
	v.fifo = nil
}

// resyncNow asks c's resync loop for a resync of the bitmap's dirty runs
// and waits until one that started after the request finished.
func (e *Engine) resyncNow(ctx context.Context, c *conn) error {
	stop := context.AfterFunc(ctx, func() {
		e.mu.Lock()
		e.cond.Broadcast()
		e.mu.Unlock()
	})
	defer stop()
	e.mu.Lock()
	defer e.mu.Unlock()
	want := e.rsFinished + 1
	if e.rs != nil {
		want++ // the running one may have started before the marks
	}
	e.rsWant = true
	c.kickResync()
	for e.cur == c && e.rsFinished < want && ctx.Err() == nil {
		e.cond.Wait()
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case e.cur != c:
		return fmt.Errorf("%w: the regions stay dirty for the next connection", ErrPeerLost)
	}
	return nil
}

// queueDigest hands a VerifyRequest to the digest worker. The worker may
// read while later frames are applied: the primary holds every write
// overlapping the range until the digest arrives.
func (c *conn) queueDigest(f wire.Frame) error {
	r, err := wire.ParseVerifyRequest(f.Payload)
	if err != nil {
		return err
	}
	if r.Length == 0 || r.Offset > c.e.size || uint64(r.Length) > c.e.size-r.Offset {
		return fmt.Errorf("mirror verify request %d+%d beyond the volume", r.Offset, r.Length)
	}
	select {
	case c.digests <- r:
	case <-c.done:
	}
	return nil
}

// digestLoop answers VerifyRequests in order with the SHA-256 of the
// local range.
func (c *conn) digestLoop() {
	e := c.e
	defer e.wg.Done()
	var buf []byte
	var pb [wire.VerifyDigestSize]byte
	for {
		select {
		case r := <-c.digests:
			if cap(buf) < int(r.Length) {
				buf = make([]byte, r.Length)
			}
			b := buf[:r.Length]
			if _, err := e.cfg.Data.ReadAt(b, int64(r.Offset)); err != nil {
				c.fail(fmt.Errorf("mirror verify read at %d: %w", r.Offset, err))
				return
			}
			d := wire.VerifyDigest{Range: r, Digest: sha256.Sum256(b)}
			if err := c.send(wire.TypeVerifyDigest, d.Put(pb[:]), nil, nil); err != nil {
				c.fail(err)
				return
			}
		case <-c.done:
			return
		}
	}
}

// verifyReply delivers a VerifyDigest to the chunk waiting for it.
func (c *conn) verifyReply(f wire.Frame) error {
	d, err := wire.ParseVerifyDigest(f.Payload)
	if err != nil {
		return err
	}
	c.mu.Lock()
	ch := c.verifies[d.Range.Offset]
	delete(c.verifies, d.Range.Offset)
	c.mu.Unlock()
	if ch == nil {
		return errors.New("mirror: VerifyDigest for no request")
	}
	ch <- d
	return nil
}
