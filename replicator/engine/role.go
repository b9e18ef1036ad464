package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/vigil-ha/vigil/replicator/meta"
	"github.com/vigil-ha/vigil/replicator/wire"
)

// Promote makes this node primary. It is idempotent.
//
// It refuses while the connected peer is primary (even with force: break
// the connection first, as a takeover does). Without force it also
// refuses when this node's data is known to be older than the peer's
// (the last verdict made it the target of a resync that has not ended,
// ErrOutdated) or is an unfinished resync target (ErrInconsistent).
// Forced over such data, or on a disk that never held data while
// connected, it breaks the connection: the next connection compares the
// new generations (a forced promotion over older data is then a split
// brain).
//
// Connected to a secondary peer, it announces the promotion in session
// (a PromoteID control flush) and becomes primary once the peer acked it;
// the connection stays up and the next writes replicate at once. A peer
// that is itself primary, being promoted, or the source of a running
// resync refuses (ErrPeerPrimary). Standing alone, or when the peer is
// lost during the announcement, it takes a new current generation: its
// data may now diverge from the peer's. The role is recorded in the
// superblock.
func (e *Engine) Promote(force bool) error {
	e.roleMu.Lock()
	defer e.roleMu.Unlock()
	e.gate.Lock()
	defer e.gate.Unlock()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	if e.role == Primary {
		e.mu.Unlock()
		return nil
	}
	c := e.cur
	if c != nil && e.peerRole == Primary {
		e.mu.Unlock()
		return fmt.Errorf("mirror promote: %w", ErrPeerPrimary)
	}
	fresh := e.sb.Gens.Current == 0
	inconsistent := e.sb.Flags&meta.FlagConsistent == 0 && !fresh
	if !force {
		switch {
		case e.older:
			e.mu.Unlock()
			return fmt.Errorf("mirror promote: %w (last verdict %s)", ErrOutdated, e.verdict)
		case inconsistent:
			e.mu.Unlock()
			return fmt.Errorf("mirror promote: %w: an unfinished resync target", ErrInconsistent)
		}
	}
	breakConn := c != nil && (fresh || e.older || inconsistent || c.target)
	if c != nil && !breakConn {
		e.promoting = true
	}
	e.mu.Unlock()

	if breakConn {
		c.fail(fmt.Errorf("%w: promoted over data the peer must not follow", ErrPeerLost))
	} else if c != nil {
		st, ok := c.control(PromoteID)
		e.mu.Lock()
		e.promoting = false
		e.mu.Unlock()
		switch {
		case ok && st == StatusRoleConflict:
			return fmt.Errorf("mirror promote: %w: the peer refused (it is primary, being promoted, or a resync source)", ErrPeerPrimary)
		case ok && st != wire.StatusOK:
			c.fail(fmt.Errorf("%w: peer answered the promotion with status %d", ErrPeerLost, st))
		}
		// !ok: the peer was lost during the announcement; promote alone.
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	e.role = Primary
	if err := e.becomePrimaryLocked(e.cur == nil); err != nil {
		e.role = Secondary
		return fmt.Errorf("mirror promote: %w", err)
	}
	return nil
}

// Demote makes this node secondary. It is idempotent. It holds new writes,
// waits for those in flight, and flushes end to end when connected (in
// async mode after every queued write was acked), so that the peer holds
// everything this node completed; then it records the role in the
// superblock and announces it in session (a DemoteID control flush): the
// connection stays up, and the peer may be promoted at once, with no
// resync and no new generation. A resync this node sources goes on with
// it as a secondary source; the peer becomes promotable when it ends.
//
// If ctx ends before the flush completes, Demote returns its error and
// the node stays primary. A peer lost during the flush is not an error:
// the regions stay dirty and the next connection resyncs them from this
// node (the newer side) even though it is secondary.
func (e *Engine) Demote(ctx context.Context) error {
	e.roleMu.Lock()
	defer e.roleMu.Unlock()
	e.mu.Lock()
	closed, role := e.closed, e.role
	e.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case role == Secondary:
		return nil
	}
	e.gate.Lock()
	if err := e.flush(ctx, false); err != nil {
		e.gate.Unlock()
		return fmt.Errorf("mirror demote: %w", err)
	}
	// No write comes any more: the activity extents cool, so that a
	// crash of this secondary resyncs only what is dirty.
	if err := e.bm.WriteBack(); err != nil {
		e.gate.Unlock()
		return fmt.Errorf("mirror demote: %w", err)
	}
	e.mu.Lock()
	e.role = Secondary
	c := e.cur
	err := e.updateSuperblockLocked(func(sb *meta.Superblock) {
		sb.Role = uint8(Secondary)
		sb.Flags &^= meta.FlagPrimary
	})
	e.cond.Broadcast() // a verify sees the new role
	e.mu.Unlock()
	e.gate.Unlock()
	if err != nil {
		return fmt.Errorf("mirror demote: %w", err)
	}
	if c != nil {
		if st, ok := c.control(DemoteID); ok && st != wire.StatusOK {
			c.fail(fmt.Errorf("%w: peer answered the demotion with status %d", ErrPeerLost, st))
		}
	}
	return nil
}

// ResolveSplitBrain records, durably, an operator's choice after a split
// brain: discardLocal says this node's changes since the split are
// thrown away (it becomes the resync target), else the peer's are (this
// node becomes the source). The choice travels in the next Hello, so it is
// enough on one side; the next Connect then resyncs from the surviving
// side, differentially from both bitmaps or fully, as
// meta.ResolveSplitBrain says, and the choice is cleared when that resync
// ends. A primary's changes cannot be discarded: demote it first. Calling
// it again replaces the choice.
func (e *Engine) ResolveSplitBrain(discardLocal bool) error {
	e.roleMu.Lock()
	defer e.roleMu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.closed:
		return ErrClosed
	case e.state != SplitBrain && e.verdict != meta.SplitBrain.String():
		return errors.New("mirror resolve split brain: the last connection found no split brain")
	case discardLocal && e.role == Primary:
		return fmt.Errorf("mirror resolve split brain: this node is primary: demote it before discarding its data")
	}
	err := e.updateSuperblockLocked(func(sb *meta.Superblock) {
		sb.Flags &^= meta.FlagResolveDiscard | meta.FlagResolveKeep
		if discardLocal {
			sb.Flags |= meta.FlagResolveDiscard
		} else {
			sb.Flags |= meta.FlagResolveKeep
		}
	})
	if err != nil {
		return fmt.Errorf("mirror resolve split brain: %w", err)
	}
	return nil
}
