// Package engine is the mirror disk's replication core: a primary that
// writes locally and to its peer in parallel, a secondary that applies the
// primary's writes in order and never exposes its volume, the connection
// over replicator/wire, role changes, the differential resync driven by
// the generation identifiers and dirty bitmap of replicator/meta, online
// verify and the resync rate limit.
//
// # Sync mode
//
// Write marks the regions dirty in the bitmap and, when meta says so,
// syncs the bitmap before anything is issued (the write-ahead rule). It then
// sends the Write frame to the peer and writes locally while the frame
// travels; it completes when the local write is done (durable with FUA)
// and the peer's WriteAck arrived. Writes overlapping an in-flight write
// wait for it, so both sides apply overlapping writes in the same order;
// the peer applies frames in sequence order: its read loop applies small
// Writes itself and hands large ones (applyLarge and up) and every
// ResyncData to an applier goroutine, with every later frame whose order
// matters while the applier holds any. Bits are cleared lazily: a region
// whose writes were acked becomes a candidate, and a later end-to-end
// Flush (both sides durable) clears candidates whose connection is still
// the same, region by region, except regions a write in flight or a write
// acked after the Flush was sent overlaps.
//
// The local volume is written as DataFile writes it: aligned blocks
// around the page cache (O_DIRECT) where the file system or device has
// direct I/O, a FUA write as one write with RWF_DSYNC (FUAWriter).
//
// # Lost peer
//
// The connection breaks when a frame is rejected, the stream ends, nothing
// arrives for Config.Timeout (both sides ping every PingInterval), a sync
// write, flush, control message or verify digest waits longer than Timeout
// for its answer, async writes wait that long with no ack progress at
// all, or a send blocks that long. A primary that loses its peer takes a
// new current generation, durably, before it completes the writes that
// were waiting for the lost peer; they complete locally, and their
// regions stay dirty. A read loop never blocks on the network, except
// the one of a node applying Writes, which sends a WriteAck itself when
// the writer is free: its peer, the primary, never blocks reading. Other
// acks and pongs go through a reply queue (consecutive WriteAcks merge
// into one range), so two peers each sending to the other cannot
// deadlock.
//
// # Roles
//
// Promote and Demote change roles in session, without breaking the
// connection, with control Flushes (ids with the top bit set, answered by
// a FlushAck). Demote holds new writes, waits for those in flight,
// flushes end to end, records the role in the superblock and sends
// DemoteID; Promote sends PromoteID and becomes primary once the peer
// acked it (a peer that is primary, being promoted or a resync source
// refuses with StatusRoleConflict). A planned switchover (Demote on A,
// Promote on B) therefore takes no new generation and no resync, and B's
// next write replicates to A. A peer's Write while this node is primary
// breaks the connection. Promote refuses while the connected peer is
// primary, and, without force, when the data is known older than the
// peer's (the last verdict made it a resync target that has not ended) or
// is an unfinished resync target. Promoted standing alone, a node takes a
// new generation. A forced promotion over such data, and the first
// promotion of a disk that never held data while connected, break the
// connection instead: the next connection compares the new generations.
//
// # Connecting and resync
//
// Connect runs the handshake and plans the connection from both Hellos
// (roles, generations, disk flags; see decide), while writes are held. A
// connection the caller wrapped in TLS binds the handshake to it (a peer
// without TLS is refused); Config.Compress offers compression of the
// replicated data (wire.CapCompress).
//
//   - the newer data is the source whatever the roles (two secondaries
//     resync from the newer one), but a primary is never a target: a
//     secondary newer than a primary is refused;
//   - with equal generations, dirty bits or an inconsistent side (a crash
//     left in-flight regions) still resync differentially, from the
//     primary, the consistent side, the side that was primary last, or the
//     lower node index;
//   - two fresh disks connect and wait; the first Promote makes the source
//     of the initial full sync;
//   - split brain (state SplitBrain, Close to the peer), unrelated data and
//     two primaries are refused; nothing is merged. ResolveSplitBrain
//     records an operator's choice in the superblock; it travels in the
//     next Hello's disk flags, so one side suffices, and that connection
//     resyncs from the surviving side, differentially from both bitmaps or
//     fully (meta.ResolveSplitBrain).
//
// For a resync the target sends its bitmap (BitmapChunk frames: regions
// it may hold that the source lacks), the source merges it and sends
// ResyncBeginID: the target marks its data inconsistent, durably, before
// it applies anything after it. Connect then returns and the resync
// streams in the session: the dirty runs taken at its start go as
// ResyncData, paced by the rate limit, while application writes are
// replicated. A chunk locks its span like a write (it waits for
// overlapping writes in flight, and async writes queued and not yet sent;
// overlapping writes wait for it to be sent), so the target, applying
// frames in order, never ends with stale data. ResyncDoneID ends it: the
// target syncs, takes the source's generations and becomes consistent;
// the source then clears its runs except regions written during the
// resync (their writes may postdate the final flush), and clears no
// candidate while a resync runs. Verify and ResyncRange start the same
// in-session resync.
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
// (Status.Behind, Status.Fallbacks), tracks writes in the bitmap only and
// drops its candidates. Once the queue drained to half its bounds, a
// catch-up resync starts in session as above: after ResyncBegin queueing
// resumes, and the dirty runs stream while new writes replicate. Until
// the catch-up starts the secondary holds a prefix of the primary's
// writes (consistent, older); from ResyncBegin to its end it is marked
// inconsistent, so it is not promoted without force. Flush waits until
// every write queued before it was acked, flushes end to end, clears, and,
// if the engine is behind, waits for the catch-up. A lost peer drops the
// queue: its regions are still dirty and the next Connect resyncs them.
//
// # Online verify
//
// Verify, on a connected primary, sends a VerifyRequest per chunk (the
// bitmap granularity, at least 64 KiB), computes the local SHA-256 while
// the peer's digest worker computes its own, and compares the
// VerifyDigest; 16 chunks are outstanding. A chunk locks its span from
// before its request until its digest arrives, so concurrent writes
// cause no false mismatch. The result counts the bytes checked and
// mismatched and lists the mismatched ranges (bounded); with Resync it
// marks them dirty and resyncs them. Regions an async primary tracks in
// its bitmap only are not counted as mismatches but as skipped.
//
// # Rate limit and status
//
// Config.ResyncRate and SetResyncRate pace resync and verify traffic (a
// virtual clock: one chunk of burst); application writes are never
// limited. Status reports the measured resync rate and ETA, verify
// progress, replicated bytes, frames rejected by reason over all
// connections, and Config.ObserveWrite sees every successful write's
// latency.
//
// Not yet: a peer with a smaller maximum payload than a Write's size (the
// connection breaks), a periodic flush to clear bits without an explicit
// Flush, the engine's own choice of which side to keep after a split
// brain (an operator always chooses), and persisting "older than the
// peer" across a restart (only an unfinished resync target's
// inconsistency is durable).
package engine

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
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

// Prefetcher is a Volume that can start reading a range in the
// background, so that a later ReadAt finds it in memory. A resync source
// uses it to read the dirty runs ahead of the one it sends (DataFile is
// one); the hint changes nothing else.
type Prefetcher interface {
	Prefetch(off, n int64)
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
	// Resyncing: dirty regions are being copied to the peer (or from it)
	// while writes are replicated.
	Resyncing
	// Connected: in sync; writes are replicated.
	Connected
	// SplitBrain: the last connection found diverged data; an operator
	// must choose the side to discard (ResolveSplitBrain).
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

// Flush ids with the top bit set are the engine's control messages; the
// peer answers each with a FlushAck carrying the same id. Ordinary Flush
// ids count up from 1.
const (
	// ResyncDoneID ends a resync stream: the target syncs, takes the
	// source's generations, becomes consistent and acks.
	ResyncDoneID uint64 = 1 << 63
	// ResyncBeginID starts a resync stream: the target marks its data
	// inconsistent, durably, before it applies any frame after it.
	ResyncBeginID uint64 = 1<<63 | 1
	// PromoteID announces that the sender becomes primary. The receiver
	// acks it with StatusOK, or with StatusRoleConflict when it is primary,
	// is itself being promoted, or is the source of a running resync.
	PromoteID uint64 = 1<<63 | 2
	// DemoteID announces that the sender became secondary.
	DemoteID uint64 = 1<<63 | 3

	controlID uint64 = 1 << 63
)

// StatusRoleConflict is the FlushAck status that refuses a PromoteID.
// (wire defines statuses 0-2; this one is the engine's.)
const StatusRoleConflict uint32 = 3

// Errors.
var (
	// ErrClosed reports use of a closed engine.
	ErrClosed = errors.New("mirror engine closed")
	// ErrNotPrimary reports a write, flush or verify on a secondary.
	ErrNotPrimary = errors.New("mirror: not primary")
	// ErrRange reports a write or verify beyond the volume, or a write
	// larger than a frame.
	ErrRange = errors.New("mirror: out of range")
	// ErrSplitBrain reports diverged data found on connect.
	ErrSplitBrain = errors.New("mirror: split brain")
	// ErrRefused reports a peer refused on connect (unrelated data, a
	// different volume or configuration, roles that do not fit).
	ErrRefused = errors.New("mirror: peer refused")
	// ErrPeerLost reports a connection that broke.
	ErrPeerLost = errors.New("mirror: peer lost")
	// ErrPeerPrimary reports a promotion refused because the connected
	// peer is (or is becoming) primary.
	ErrPeerPrimary = errors.New("mirror: peer is primary")
	// ErrOutdated reports a promotion refused because this node's data is
	// known to be older than the peer's.
	ErrOutdated = errors.New("mirror: data older than the peer's")
	// ErrInconsistent reports a promotion refused because this node's data
	// is an unfinished resync target.
	ErrInconsistent = errors.New("mirror: data inconsistent")
	// ErrNotConnected reports a verify without a connected peer.
	ErrNotConnected = errors.New("mirror: not connected")
	// ErrBusy reports a verify while another verify or a resync runs.
	ErrBusy = errors.New("mirror: busy")
)

// Config configures an Engine.
type Config struct {
	// Role is the initial role. A primary whose disk never held data takes
	// its first generation in New.
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
	// Timeout breaks the connection when nothing arrives, a write, flush
	// or verify is not answered, or a send blocks for this long (default
	// 5 s).
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
	// ResyncRate limits resync and verify traffic, in bytes per second;
	// 0 is unlimited. SetResyncRate changes it at run time. Application
	// writes are never limited.
	ResyncRate int64
	// ObserveWrite, if set, is called with the latency of every Write
	// that succeeded, from its call to its return.
	ObserveWrite func(d time.Duration)
	// Compress offers s2 compression of Write and ResyncData data
	// (wire.CapCompress); it is used when the peer offers it too.
	Compress bool
}

// Status is a mirror disk's state for `vigilctl mirror status` and the
// metrics.
type Status struct {
	Role  Role
	State State
	// Peer is the connected peer's node index, -1 when none; PeerRole its
	// role (meaningful while Peer >= 0).
	Peer     int
	PeerRole Role
	// Verdict is the last generation comparison, after any split brain
	// resolution, e.g. "local_newer".
	Verdict string
	// Resolution is the operator's split brain choice waiting for the
	// next connection: "discard-local", "keep-local" or "".
	Resolution string
	// LastError is why the last connection ended or was refused.
	LastError string
	Gens      meta.Generations
	// Consistent reports a complete image: false on a resync target from
	// the first resync frame until the resync ends (also an async
	// secondary during a catch-up), on a disk that never held data, and
	// on a primary forced onto such data.
	Consistent bool
	Size       uint64
	// DirtyBytes is the volume covered by dirty bitmap bits.
	DirtyBytes uint64
	// InSyncPercent is 100 * (Size - DirtyBytes) / Size.
	InSyncPercent float64
	// ResyncTotal and ResyncDone are the bytes of the current (or last)
	// resync, as source or target (a target does not know the total: it
	// shows the bytes received in both).
	ResyncTotal, ResyncDone uint64
	// ResyncSent counts every ResyncData byte sent since the engine
	// started.
	ResyncSent uint64
	// ResyncRate is the measured resync rate in bytes/s over the last
	// seconds, 0 when no resync runs; ResyncETA the time the source still
	// needs at that rate (0 when unknown).
	ResyncRate uint64
	ResyncETA  time.Duration
	// ResyncRateLimit is the configured limit in bytes/s, 0 unlimited.
	ResyncRateLimit int64
	// ReplicatedBytes counts the Write payload bytes sent to the peer.
	ReplicatedBytes uint64
	// BitmapSyncs counts the writes that waited for a write-ahead sync of
	// the dirty bitmap (their activity extent was cold: DRBD's al-writes);
	// HotExtents is how many activity extents are hot now.
	BitmapSyncs uint64
	HotExtents  int
	// FramesRejected counts the received frames rejected, by reason
	// (wire.Reason), over every connection since the engine started.
	FramesRejected [wire.NumReasons]uint64
	// Verifying is set while Verify runs; VerifyTotal and VerifyDone are
	// the bytes of the current (or last) verify.
	Verifying               bool
	VerifyTotal, VerifyDone uint64
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
	// only, after its queue overflowed, until the catch-up resync starts.
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
	cfg      Config
	bm       *meta.Bitmap
	size     uint64
	gran     uint64
	counters wire.Counters // frames rejected, over every connection
	limiter  *limiter

	// gate is held shared by Write and Flush, exclusively by Connect
	// (handshake and bitmap exchange), Promote and Demote.
	gate sync.RWMutex
	// roleMu serialises Promote, Demote and ResolveSplitBrain.
	roleMu sync.Mutex

	replicated atomic.Uint64
	bmSyncs    atomic.Uint64

	mu        sync.Mutex
	cond      *sync.Cond
	role      Role
	promoting bool // a PromoteID is out
	state     State
	cur       *conn
	sb        meta.Superblock
	diverged  bool // primary: Current taken since the peer last matched
	older     bool // the last verdict made this node a resync target of newer data, not yet done
	locked    []span
	nwrites   int
	cands     []candidate
	closed    bool
	verdict   string
	lastErr   string
	peer      int
	peerRole  Role

	// Resync (under mu): rs is the run this node sources, rsWant asks the
	// resync loop for one (verify), rsFinished counts completed runs.
	rs         *resyncRun
	rsWant     bool
	rsFinished uint64
	rsTotal    uint64
	rsDone     uint64
	rsSent     uint64
	meter      rateMeter

	verifying     bool
	vTotal, vDone uint64
	flushIDSeq    uint64
	candSeq       uint64
	// snapSeq is the candSeq the latest Flush took as its limit: a
	// candidate at or below it may be cleared by that Flush, so a later
	// write to its region needs a candidate of its own.
	snapSeq uint64
	wg      sync.WaitGroup

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
	lastAck   time.Time // the last async WriteAck
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
	if cfg.Role > Primary {
		return nil, fmt.Errorf("mirror engine: unknown role %d", cfg.Role)
	}
	if cfg.ResyncRate < 0 {
		return nil, fmt.Errorf("mirror engine: negative resync rate %d", cfg.ResyncRate)
	}
	if cfg.MaxQueueBytes <= 0 {
		cfg.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if cfg.MaxQueueWrites <= 0 {
		cfg.MaxQueueWrites = DefaultMaxQueueWrites
	}
	sb := cfg.Meta.Superblock()
	e := &Engine{
		cfg:     cfg,
		bm:      cfg.Meta.Bitmap(),
		size:    sb.Size,
		gran:    uint64(sb.Granularity),
		limiter: newLimiter(cfg.ResyncRate),
		role:    cfg.Role,
		sb:      sb,
		peer:    -1,
	}
	e.cond = sync.NewCond(&e.mu)
	if cfg.Role == Primary {
		e.mu.Lock()
		err := e.becomePrimaryLocked(false)
		e.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
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
		Role:            e.role,
		State:           e.state,
		Peer:            e.peer,
		PeerRole:        e.peerRole,
		Verdict:         e.verdict,
		LastError:       e.lastErr,
		Gens:            e.sb.Gens,
		Consistent:      e.sb.Flags&meta.FlagConsistent != 0,
		Size:            e.size,
		DirtyBytes:      dirty,
		ResyncTotal:     e.rsTotal,
		ResyncDone:      e.rsDone,
		ResyncSent:      e.rsSent,
		ResyncRateLimit: e.limiter.get(),
		ReplicatedBytes: e.replicated.Load(),
		BitmapSyncs:     e.bmSyncs.Load(),
		HotExtents:      e.bm.HotCount(),
		Verifying:       e.verifying,
		VerifyTotal:     e.vTotal,
		VerifyDone:      e.vDone,
		InFlight:        e.nwrites,
		Mode:            e.cfg.Mode,

		QueuedWrites: e.qWrites,
		QueuedBytes:  e.qBytes,
		Behind:       e.behind,
		Fallbacks:    e.fallbacks,
	}
	switch {
	case e.sb.Flags&meta.FlagResolveDiscard != 0:
		st.Resolution = "discard-local"
	case e.sb.Flags&meta.FlagResolveKeep != 0:
		st.Resolution = "keep-local"
	}
	for r := range wire.NumReasons {
		st.FramesRejected[r] = e.counters.Rejected(r)
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
	if e.state == Resyncing {
		now := time.Now()
		if r := e.meter.rate(now, e.rsDone); r > 0 {
			st.ResyncRate = uint64(r)
			if e.rs != nil && e.rsTotal > e.rsDone {
				st.ResyncETA = time.Duration(float64(e.rsTotal-e.rsDone) / r * float64(time.Second))
			}
		}
	}
	return st
}

// SetResyncRate changes the resync and verify rate limit, in bytes per
// second (0: unlimited). It applies at once, also to a resync or verify
// running.
func (e *Engine) SetResyncRate(bytesPerSec int64) error {
	if bytesPerSec < 0 {
		return fmt.Errorf("mirror resync rate: %d bytes/s is negative", bytesPerSec)
	}
	e.limiter.set(bytesPerSec)
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

// becomePrimaryLocked records the primary role durably. A disk that never
// held data takes its first generation and becomes the reference (the
// source of the initial full sync); a primary promoted standing alone
// takes a new generation. Caller holds e.mu and has set e.role.
func (e *Engine) becomePrimaryLocked(standalone bool) error {
	sb := e.sb
	sb.Role = uint8(Primary)
	sb.Flags |= meta.FlagPrimary
	switch {
	case sb.Gens.Current == 0:
		sb.Gens = sb.Gens.NewCurrent(e.cfg.GenID())
		sb.Flags |= meta.FlagConsistent
		e.diverged = true
	case standalone && !e.diverged:
		sb.Gens = sb.Gens.NewCurrent(e.cfg.GenID())
		e.diverged = true
	}
	if err := e.cfg.Meta.WriteSuperblock(sb); err != nil {
		return fmt.Errorf("mirror record role: %w", err)
	}
	e.sb = e.cfg.Meta.Superblock()
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
// writes back the bitmap's lazy clears; it does not flush the volume, and
// does not close the volume or the metadata.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.cond.Broadcast()
	e.mu.Unlock()
	e.Disconnect()
	e.wg.Wait()
	return e.bm.WriteBack()
}

// checkRange validates a write's byte range.
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

// updateSuperblock durably applies fn to the superblock.
func (e *Engine) updateSuperblock(fn func(*meta.Superblock)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.updateSuperblockLocked(fn)
}

func (e *Engine) updateSuperblockLocked(fn func(*meta.Superblock)) error {
	sb := e.sb
	fn(&sb)
	if err := e.cfg.Meta.WriteSuperblock(sb); err != nil {
		return fmt.Errorf("mirror superblock: %w", err)
	}
	e.sb = e.cfg.Meta.Superblock()
	return nil
}

func (e *Engine) setState(s State) {
	e.mu.Lock()
	e.state = s
	e.mu.Unlock()
}
