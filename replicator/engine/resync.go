package engine

import (
	"errors"
	"fmt"

	"github.com/vigil-ha/vigil/replicator/meta"
	"github.com/vigil-ha/vigil/replicator/wire"
)

// bitmapChunkBytes is the bitmap bytes per BitmapChunk frame.
const bitmapChunkBytes = 64 << 10

// readResync reads the next frame of a resync under a fresh deadline. A
// Close from the peer is an error.
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

// resyncSource runs the primary's side: merge the target's bitmap, send
// every dirty run, end with a resync-done Flush, then clear and retire the
// bitmap generation.
func (c *conn) resyncSource(full bool) error {
	e := c.e
	e.setState(Resyncing)
	if full {
		if err := e.bm.SetAll(); err != nil {
			return fmt.Errorf("mirror resync: %w", err)
		}
	}
	// The target's bitmap: regions it may hold that we lack.
	for {
		f, err := c.readResync()
		if err != nil {
			return err
		}
		if f.Type != wire.TypeBitmapChunk {
			return fmt.Errorf("mirror resync: unexpected %s", f.Type)
		}
		h, bits, err := wire.ParseBitmapChunk(f.Payload)
		if err != nil {
			return err
		}
		if h.Total != e.bm.Bits() || uint64(h.Granularity) != e.gran || h.Start%8 != 0 || h.Start > h.Total {
			return fmt.Errorf("mirror resync: bitmap chunk %d/%d granularity %d does not fit", h.Start, h.Total, h.Granularity)
		}
		e.bm.Or(h.Start, bits)
		if h.Flags&wire.BitmapLast != 0 {
			break
		}
	}
	if err := e.bm.Sync(); err != nil {
		return fmt.Errorf("mirror resync: %w", err)
	}
	var runs []span
	var total uint64
	e.bm.Runs(func(off, n uint64) bool {
		runs = append(runs, span{off, off + n})
		total += n
		return true
	})
	e.mu.Lock()
	e.rsTotal, e.rsDone = total, 0
	e.mu.Unlock()

	chunk := min(c.maxData, wire.MaxData)
	buf := make([]byte, chunk)
	var hb [wire.WriteHeaderSize]byte
	for _, r := range runs {
		for off := r.off; off < r.end; {
			n := min(uint64(chunk), r.end-off)
			h := wire.WriteHeader{Offset: off, Length: uint32(n), Flags: wire.StatusOK}
			data := buf[:n]
			if _, err := e.cfg.Data.ReadAt(data, int64(off)); err != nil {
				return fmt.Errorf("mirror resync read at %d: %w", off, err)
			}
			c.deadline()
			if _, err := c.w.WriteFrame(wire.TypeResyncData, h.Put(hb[:]), data); err != nil {
				return fmt.Errorf("mirror resync send: %w", err)
			}
			off += n
			e.mu.Lock()
			e.rsDone += n
			e.rsSent += n
			e.mu.Unlock()
		}
	}
	var fb [wire.FlushSize]byte
	c.deadline()
	if _, err := c.w.WriteFrame(wire.TypeFlush, wire.Flush{ID: ResyncDoneID}.Put(fb[:]), nil); err != nil {
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
	if a.ID != ResyncDoneID || a.Status != wire.StatusOK {
		return fmt.Errorf("mirror resync: peer status %d", a.Status)
	}
	for _, r := range runs {
		e.bm.Clear(r.off, r.end-r.off)
	}
	if err := e.bm.WriteBack(); err != nil {
		return fmt.Errorf("mirror resync: %w", err)
	}
	return e.updateSuperblock(func(sb *meta.Superblock) { sb.Gens = sb.Gens.ResyncSourceDone() })
}

// resyncTarget runs the secondary's side: mark the data inconsistent, send
// our bitmap, apply ResyncData until the resync-done Flush, then take the
// source's generations.
func (c *conn) resyncTarget(src meta.Generations) error {
	e := c.e
	e.setState(Resyncing)
	if err := e.updateSuperblock(func(sb *meta.Superblock) { sb.Flags &^= meta.FlagConsistent }); err != nil {
		return err
	}
	e.mu.Lock()
	e.rsTotal, e.rsDone = 0, 0
	e.mu.Unlock()
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
	for {
		f, err := c.readResync()
		if err != nil {
			return err
		}
		switch f.Type {
		case wire.TypeResyncData:
			h, data, err := wire.ParseResyncData(f.Payload)
			if err != nil {
				return err
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
			e.mu.Unlock()
		case wire.TypeFlush:
			fl, err := wire.ParseFlush(f.Payload)
			if err != nil {
				return err
			}
			if fl.ID != ResyncDoneID {
				return errors.New("mirror resync: flush before the end of the resync")
			}
			if err := e.cfg.Data.Sync(); err != nil {
				return fmt.Errorf("mirror resync: %w", err)
			}
			e.bm.Clear(0, e.size)
			if err := e.bm.WriteBack(); err != nil {
				return fmt.Errorf("mirror resync: %w", err)
			}
			if err := e.updateSuperblock(func(sb *meta.Superblock) {
				sb.Gens = sb.Gens.ResyncTargetDone(src)
				sb.Flags |= meta.FlagConsistent
			}); err != nil {
				return err
			}
			var ab [wire.FlushAckSize]byte
			c.deadline()
			if _, err := c.w.WriteFrame(wire.TypeFlushAck, wire.FlushAck{ID: fl.ID}.Put(ab[:]), nil); err != nil {
				return fmt.Errorf("mirror resync send: %w", err)
			}
			if err := c.w.Flush(); err != nil {
				return fmt.Errorf("mirror resync send: %w", err)
			}
			return nil
		default:
			return fmt.Errorf("mirror resync: unexpected %s", f.Type)
		}
	}
}

func (e *Engine) setState(s State) {
	e.mu.Lock()
	e.state = s
	e.mu.Unlock()
}

// updateSuperblock durably applies fn to the superblock.
func (e *Engine) updateSuperblock(fn func(*meta.Superblock)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	sb := e.sb
	fn(&sb)
	if err := e.cfg.Meta.WriteSuperblock(sb); err != nil {
		return fmt.Errorf("mirror superblock: %w", err)
	}
	e.sb = e.cfg.Meta.Superblock()
	return nil
}
