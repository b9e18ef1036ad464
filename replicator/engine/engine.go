// Package engine is the mirror disk's replication core: a primary that
// writes locally and to its peer in parallel, a secondary that applies the
// primary's writes in order and never exposes its volume, the connection
// over replicator/wire, and the differential resync driven by the
// generation identifiers and dirty bitmap of replicator/meta.
//
// # Sync mode
//
// Write marks the regions dirty in the bitmap and, when meta says so,
// syncs the bitmap before anything is issued (the write-ahead rule). It then
// sends the Write frame to the peer and writes locally while the frame
// travels; it completes when the local write is done (durable with FUA)
// and the peer's WriteAck arrived. Writes overlapping an in-flight write
// wait for it, so both sides apply overlapping writes in the same order;
// the secondary applies frames in sequence order. Bits are cleared lazily:
// a region whose writes were acked becomes a candidate, and a later
// end-to-end Flush (both sides durable) clears candidates whose connection
// is still the same and that have no write in flight.
//
// # Lost peer
//
// The connection breaks when a frame is rejected, the stream ends, nothing
// arrives for Config.Timeout (both sides ping every PingInterval), a write
// waits longer than Timeout for its ack (DRBD's ko-count), or a send blocks
// that long. A primary that loses its peer takes a new current generation,
// durably, before it completes the writes that were waiting for the lost
// peer; they complete locally, and their regions stay dirty.
//
// # Resync
//
// Connect runs the handshake and compares generations (meta.Compare)
// while writes are held. If the primary is newer, the secondary sends its
// own bitmap (BitmapChunk frames; regions it may hold that the primary
// lacks), the primary merges it, streams the dirty runs as ResyncData, and
// ends with a Flush carrying ResyncDoneID. The secondary syncs, takes the
// primary's generations and answers FlushAck; then both clear their
// bitmaps and the session starts. Split brain and unrelated data are
// reported (Close frame, StateSplitBrain) and nothing is merged.
//
// # Async mode
//
// With Config.Mode AsyncMode a primary's Write marks the bitmap as above,
// copies the data into a FIFO queue to the peer and writes locally; it
// completes when the local write is done (durable with FUA), without
// waiting for the peer. One pump goroutine per connection sends the queue
// in order; the peer applies and acks in frame order, and an ack makes
// the region a clearing candidate as in sync mode. Queued and unacked
// writes are bounded by MaxQueueWrites and MaxQueueBytes. A write that
// would overflow is not blocked and not queued: the engine falls behind
// (Status.Behind, Status.Fallbacks). While behind it queues nothing,
// records and clears no candidates (an acked region may since have been
// written unqueued), and tracks every write in the bitmap only. Once every
// sent write is acked, the pump runs a catch-up resync inside the session:
// with writes held (as during Connect's resync) it sends every dirty run
// as ResyncData, then a Flush; on its FlushAck it clears the runs and
// queueing resumes. Candidates are never cleared while a queued or
// unacked write touches their region. Flush waits until every write
// queued before it was acked, flushes end to end, clears, and, if the
// engine is behind, waits for the catch-up. A lost peer drops the queue:
// its regions are still dirty and the next Connect resyncs them; an ack
// outstanding for Timeout breaks the connection.
//
// The secondary of an async primary lags: it holds a prefix of the
// primary's writes while queueing works, and, while behind or during a
// catch-up, an image that is not a point in the primary's history (it is
// not marked inconsistent for that yet).
//
// Not yet: writes during a resync or catch-up (they wait for it), resync
// rate limiting, a peer with a smaller maximum payload than a Write's
// size, marking an async secondary inconsistent while it lags behind the
// bitmap.
package engine

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/replicator/meta"
	"github.com/vigil-ha/vigil/replicator/wire"
)

// Volume is the local data disk: a file or block device.
type Volume interface {
	io.ReaderAt
	io.WriterAt
	// Sync makes every completed write durable.
	Sync() error
}

// Role is a node's role for one mirror disk.
type Role uint8

// Roles.
const (
	Secondary Role = iota
	Primary
)

// String returns the role's name.
func (r Role) String() string {
	if r == Primary {
		return "primary"
	}
	return "secondary"
}

// State is the connection state of a mirror disk.
type State uint8

// Connection states.
const (
	// StandAlone: no peer; a primary completes writes locally and tracks
	// them in the bitmap.
	StandAlone State = iota
	// Connecting: handshake and generation comparison in progress.
	Connecting
	// Resyncing: dirty regions are being copied to the peer (or from it).
	Resyncing
	// Connected: in sync; writes are replicated.
	Connected
	// SplitBrain: the last connection found diverged data; an operator
	// must choose the side to discard.
	SplitBrain
)

// String returns the state's name.
func (s State) String() string {
	switch s {
	case StandAlone:
		return "standalone"
	case Connecting:
		return "connecting"
	case Resyncing:
		return "resyncing"
	case Connected:
		return "connected"
	case SplitBrain:
		return "split-brain"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ResyncDoneID is the Flush id that ends a resync stream.
const ResyncDoneID = 1 << 63

// Errors.
var (
	// ErrClosed reports use of a closed engine.
	ErrClosed = errors.New("mirror engine closed")
	// ErrNotPrimary reports a write or flush on a secondary.
	ErrNotPrimary = errors.New("mirror: not primary")
	// ErrRange reports a write beyond the volume or larger than a frame.
	ErrRange = errors.New("mirror: write out of range")
	// ErrSplitBrain reports diverged data found on connect.
	ErrSplitBrain = errors.New("mirror: split brain")
	// ErrRefused reports a peer refused on connect (unrelated data, a
	// different volume or configuration, roles that do not fit).
	ErrRefused = errors.New("mirror: peer refused")
	// ErrPeerLost reports a connection that broke.
	ErrPeerLost = errors.New("mirror: peer lost")
)

// Config configures an Engine.
type Config struct {
	// Role is the initial role.
	Role Role
	// Node is this node's index in the cluster configuration.
	Node uint8
	// ClusterKey is the shared secret of the handshake.
	ClusterKey []byte
	// ConfigHash must match the peer's.
	ConfigHash [16]byte
	// Data is the local volume; Meta its metadata. The caller closes both
	// after the engine.
	Data Volume
	Meta *meta.Store
	// PingInterval is how often each side pings (default 1 s).
	PingInterval time.Duration
	// Timeout breaks the connection when nothing arrives, a write is not
	// acked or a send blocks for this long (default 5 s).
	Timeout time.Duration
	// GenID returns a fresh nonzero generation id; nil uses crypto/rand.
	GenID func() uint64
	// Mode is the primary's replication mode (default SyncMode).
	Mode Mode
	// MaxQueueBytes and MaxQueueWrites bound the async writes queued to
	// or unacked by the peer (defaults DefaultMaxQueueBytes and
	// DefaultMaxQueueWrites). A write that would exceed either falls back
	// to the bitmap.
	MaxQueueBytes  int64
	MaxQueueWrites int
}

// Status is a mirror disk's state for `vigilctl mirror status`.
type Status struct {
	Role  Role
	State State
	// Peer is the connected peer's node index, -1 when none.
	Peer int
	// Verdict is the last generation comparison, e.g. "local-newer".
	Verdict string
	// LastError is why the last connection ended or was refused.
	LastError string
	Gens      meta.Generations
	// Consistent is false on a secondary whose resync was interrupted.
	Consistent bool
	Size       uint64
	// DirtyBytes is the volume covered by dirty bitmap bits.
	DirtyBytes uint64
	// InSyncPercent is 100 * (Size - DirtyBytes) / Size.
	InSyncPercent float64
	// ResyncTotal and ResyncDone are the bytes of the current (or last)
	// resync, as source or target.
	ResyncTotal, ResyncDone uint64
	// ResyncSent counts every ResyncData byte sent since the engine
	// started.
	ResyncSent uint64
	// InFlight is the number of writes in progress.
	InFlight int
	// Mode is the replication mode.
	Mode Mode
	// QueuedWrites and QueuedBytes are the async writes queued to or
	// unacked by the peer (the lag).
	QueuedWrites int
	QueuedBytes  uint64
	// OldestUnacked is the age of the oldest queued or unacked async
	// write, 0 when none.
	OldestUnacked time.Duration
	// Behind is set while an async primary tracks writes in the bitmap
	// only, after its queue overflowed, until the catch-up resync.
	Behind bool
	// Fallbacks counts the overflows that made the engine fall behind.
	Fallbacks uint64
}

type span struct{ off, end uint64 }

func (a span) overlaps(b span) bool { return a.off < b.end && b.off < a.end }

// candidate is a bit-aligned region whose writes were acked on conn c.
type candidate struct {
	s  span
	c  *conn
	id uint64
}

// Engine replicates one mirror disk. Its methods are safe for concurrent
// use.
type Engine struct {
	cfg  Config
	bm   *meta.Bitmap
	size uint64
	gran uint64

	// gate is held shared by Write and Flush, exclusively by Connect:
	// no write runs during a handshake or resync.
	gate sync.RWMutex

	mu         sync.Mutex
	cond       *sync.Cond
	role       Role
	state      State
	cur        *conn
	sb         meta.Superblock
	diverged   bool // primary: Current taken since the peer last matched
	inflight   []span
	cands      []candidate
	closed     bool
	verdict    string
	lastErr    string
	peer       int
	peerRole   Role
	rsTotal    uint64
	rsDone     uint64
	rsSent     uint64
	wg         sync.WaitGroup
	flushIDSeq uint64
	candSeq    uint64

	// Async mode (under mu): aq is queued and not yet sent, unacked sent
	// and not yet acked, both in write order.
	aq        []*qitem
	unacked   []*qitem
	qWrites   int
	qBytes    uint64
	enqSeq    uint64 // writes ever queued
	ackedSeq  uint64 // enqSeq of the last acked (or dropped) write
	behind    bool
	fallbacks uint64
}

// New returns an engine for the volume and metadata in cfg, standing
// alone.
func New(cfg Config) (*Engine, error) {
	if cfg.Data == nil || cfg.Meta == nil {
		return nil, errors.New("mirror engine: no data or metadata")
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.GenID == nil {
		cfg.GenID = randomID
	}
	if cfg.Mode > AsyncMode {
		return nil, fmt.Errorf("mirror engine: unknown mode %d", cfg.Mode)
	}
	if cfg.MaxQueueBytes <= 0 {
		cfg.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if cfg.MaxQueueWrites <= 0 {
		cfg.MaxQueueWrites = DefaultMaxQueueWrites
	}
	sb := cfg.Meta.Superblock()
	e := &Engine{
		cfg:  cfg,
		bm:   cfg.Meta.Bitmap(),
		size: sb.Size,
		gran: uint64(sb.Granularity),
		role: cfg.Role,
		sb:   sb,
		peer: -1,
	}
	e.cond = sync.NewCond(&e.mu)
	return e, nil
}

func randomID() uint64 {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(err) // crypto/rand never fails on Linux
		}
		if v := binary.LittleEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}

// Status returns the current state.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	dirty := min(e.bm.Count()*e.gran, e.size)
	st := Status{
		Role:        e.role,
		State:       e.state,
		Peer:        e.peer,
		Verdict:     e.verdict,
		LastError:   e.lastErr,
		Gens:        e.sb.Gens,
		Consistent:  e.sb.Flags&meta.FlagConsistent != 0,
		Size:        e.size,
		DirtyBytes:  dirty,
		ResyncTotal: e.rsTotal,
		ResyncDone:  e.rsDone,
		ResyncSent:  e.rsSent,
		InFlight:    len(e.inflight),
		Mode:        e.cfg.Mode,

		QueuedWrites: e.qWrites,
		QueuedBytes:  e.qBytes,
		Behind:       e.behind,
		Fallbacks:    e.fallbacks,
	}
	switch {
	case len(e.unacked) > 0:
		st.OldestUnacked = time.Since(e.unacked[0].at)
	case len(e.aq) > 0:
		st.OldestUnacked = time.Since(e.aq[0].at)
	}
	if e.size > 0 {
		st.InSyncPercent = 100 * float64(e.size-dirty) / float64(e.size)
	}
	return st
}

// Promote makes this node primary. Promoted while disconnected, it takes
// a new current generation: its data may now diverge from the peer's.
func (e *Engine) Promote() error {
	e.gate.Lock()
	defer e.gate.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if e.cur != nil && e.peerRole == Primary {
		return errors.New("mirror promote: peer is primary")
	}
	e.role = Primary
	if e.cur == nil {
		return e.divergeLocked()
	}
	return nil
}

// divergeLocked takes a new current generation, durably, unless one was
// taken since the peer last matched. Caller holds e.mu.
func (e *Engine) divergeLocked() error {
	if e.diverged || e.role != Primary {
		return nil
	}
	sb := e.sb
	sb.Gens = sb.Gens.NewCurrent(e.cfg.GenID())
	sb.Role = uint8(Primary)
	sb.Flags |= meta.FlagPrimary
	if err := e.cfg.Meta.WriteSuperblock(sb); err != nil {
		return fmt.Errorf("mirror new generation: %w", err)
	}
	e.sb = e.cfg.Meta.Superblock()
	e.diverged = true
	return nil
}

// Disconnect breaks the current connection, if any.
func (e *Engine) Disconnect() {
	e.mu.Lock()
	c := e.cur
	e.mu.Unlock()
	if c != nil {
		c.fail(fmt.Errorf("%w: disconnected locally", ErrPeerLost))
	}
}

// Close breaks the connection and waits for the engine's goroutines. It
// writes back the bitmap's lazy clears; it does not close the volume or
// the metadata.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.Disconnect()
	e.wg.Wait()
	return e.bm.WriteBack()
}

// checkRange validates a volume byte range.
func (e *Engine) checkRange(off uint64, n int) error {
	if n <= 0 || n > wire.MaxData || off > e.size || uint64(n) > e.size-off {
		return fmt.Errorf("%w: %d+%d", ErrRange, off, n)
	}
	return nil
}

// align returns the bit-aligned span covering [off, off+n).
func (e *Engine) align(off, n uint64) span {
	g := e.gran
	return span{off &^ (g - 1), min((off+n+g-1)&^(g-1), e.size)}
}
