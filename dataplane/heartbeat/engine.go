package heartbeat

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Engine limits.
const (
	// MinKeySize is the shortest cluster key New accepts.
	MinKeySize = 16
	// MinInterval is the shortest probe interval New accepts.
	MinInterval = time.Millisecond
	// MissAfter is how many intervals a probe stays outstanding before it
	// counts as a miss.
	MissAfter = 4
)

// Drop reasons, the keys of Stats.Drops.
const (
	// DropMalformed counts packets that failed structural validation.
	DropMalformed = "malformed"
	// DropBadMAC counts packets whose tag did not verify.
	DropBadMAC = "bad_mac"
	// DropReplay counts replayed probes and duplicate replies.
	DropReplay = "replay"
	// DropUnknownPeer counts authentic packets whose sender index is not a
	// peer on the lane, or whose source address is not that peer's.
	DropUnknownPeer = "unknown_peer"
	// DropUnsolicitedReply counts replies whose nonce was never sent to
	// that peer on that lane.
	DropUnsolicitedReply = "unsolicited_reply"
	// DropLateReply counts replies to probes that had already expired and
	// counted as misses.
	DropLateReply = "late_reply"
	// DropWrongLane counts authentic packets whose lane index is not the
	// lane of the socket that received them.
	DropWrongLane = "wrong_lane"
	// DropOversize counts datagrams larger than MaxPacketSize and probes
	// declaring a payload larger than MaxPayload.
	DropOversize = "oversize"
)

type dropReason uint8

const (
	dropMalformed dropReason = iota
	dropBadMAC
	dropReplay
	dropUnknownPeer
	dropUnsolicitedReply
	dropLateReply
	dropWrongLane
	dropOversize
	numDropReasons
)

var dropNames = [numDropReasons]string{
	dropMalformed:        DropMalformed,
	dropBadMAC:           DropBadMAC,
	dropReplay:           DropReplay,
	dropUnknownPeer:      DropUnknownPeer,
	dropUnsolicitedReply: DropUnsolicitedReply,
	dropLateReply:        DropLateReply,
	dropWrongLane:        DropWrongLane,
	dropOversize:         DropOversize,
}

// Peer is another server reachable on a lane.
type Peer struct {
	// Index is the peer's server index.
	Index uint8
	// Addr is the peer's address on the lane. Probes go to Addr:Port, and
	// packets claiming to come from the peer on the lane must come from
	// Addr.
	Addr netip.Addr
}

// LaneConfig is one interconnect lane.
type LaneConfig struct {
	// Index is the lane index carried in packets; unique among lanes.
	Index uint8
	// Name names the lane in logs and errors (lan1); unique among lanes.
	Name string
	// Local is this server's address on the lane; the lane's socket binds
	// Local:Port, even before the address is configured (IP_FREEBIND).
	Local netip.Addr
	// Peers are the other servers on the lane, each with a distinct index
	// and address of Local's family.
	Peers []Peer
}

// Config configures an Engine.
type Config struct {
	// Key is the cluster key, at least MinKeySize bytes; the engine
	// authenticates packets with a subkey derived from it (DeriveKey).
	Key []byte
	// Self is this server's index, sent as the sender of every packet.
	Self uint8
	// ConfigHash is the first half of the SHA-256 of the configuration,
	// sent in every packet and reported in observations of the peers'.
	ConfigHash [16]byte
	// Port is the UDP port of every lane, local and remote.
	Port int
	// Lanes are the interconnect lanes; at least one.
	Lanes []LaneConfig
	// Interval is the time between probe rounds, at least MinInterval;
	// each round is jittered by up to a tenth of it either way.
	Interval time.Duration
	// Handler receives every accepted probe and reply. It is called from
	// the receive goroutines, one per lane, possibly concurrently, and must
	// be quick. Nil discards observations.
	Handler func(Observation)
	// Logger receives drops (Debug), clock skew and socket read errors
	// (Warn) and refused payloads (Error). Nil discards logs.
	Logger *slog.Logger
	// Incarnation identifies this run of the daemon in every packet; 0
	// picks a random one. A fast path must be loaded with the same.
	Incarnation uint64
	// FastPath, when not nil, is the kernel fast path answering this node's
	// probes: the engine registers every probe it sends with it, hands it
	// the liveness epoch every round, and reads the probes it answered from
	// it instead of answering them itself.
	FastPath FastPath
}

// FastPath is a kernel fast path (XDP) that answers peers' probes in the
// kernel and records replies to this node's probes there.
type FastPath interface {
	// Outstanding registers a probe sent to peer on lane at sentMono
	// (CLOCK_MONOTONIC), so the kernel recognises its reply.
	Outstanding(nonce [NonceSize]byte, peer, lane uint8, sentMono time.Duration) error
	// SetEpoch publishes the daemon's liveness epoch for kernel replies.
	SetEpoch(epoch uint64) error
	// ReadProbe blocks until the kernel answered a probe and returns it
	// (the whole UDP payload in buf[:n]) with its source and lane; after
	// the fast path is closed it returns an error wrapping os.ErrClosed.
	ReadProbe(buf []byte) (n int, src netip.AddrPort, lane uint8, err error)
}

// ObservationKind tells what an Observation saw.
type ObservationKind uint8

// Observation kinds.
const (
	// ProbeReceived means a peer's valid probe arrived and was answered.
	ProbeReceived ObservationKind = iota + 1
	// ReplyReceived means a peer answered one of this engine's probes.
	ReplyReceived
	// ProbeRefused means a peer's kernel answered a probe with ICMP port
	// unreachable: the node is up, nothing serves the heartbeat port. ICMP
	// is not authenticated: it explains a loss, it proves nothing.
	ProbeRefused
)

// String returns "probe_received" or "reply_received".
func (k ObservationKind) String() string {
	switch k {
	case ProbeReceived:
		return "probe_received"
	case ReplyReceived:
		return "reply_received"
	case ProbeRefused:
		return "probe_refused"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Observation is one accepted packet from a peer.
type Observation struct {
	// Kind is ProbeReceived or ReplyReceived.
	Kind ObservationKind
	// Peer is the sender's server index.
	Peer uint8
	// Lane is the lane index the packet arrived on.
	Lane uint8
	// At is when the packet was read, with a monotonic clock reading.
	At time.Time
	// RTT, for replies, is the monotonic time from sending the probe to
	// reading its reply, from this engine's own table of outstanding
	// probes (never from the packet's clocks).
	RTT time.Duration
	// ConfigHash is the sender's configuration hash, which may differ from
	// ours; what a mismatch means is the caller's decision.
	ConfigHash [16]byte
	// Incarnation is the sender's incarnation.
	Incarnation uint64
	// Epoch, for replies, is the responder's liveness epoch.
	Epoch uint64
	// Kernel, for replies, is true when the responder's kernel fast path
	// made the reply (FlagKernelReply), so Epoch says whether its daemon
	// is still running.
	Kernel bool
	// Payload, for probes, is a copy of the peer's payload; nil if empty.
	Payload []byte
}

// PeerLane names one peer on one lane.
type PeerLane struct {
	// Peer is the peer's server index.
	Peer uint8
	// Lane is the lane index.
	Lane uint8
}

// Stats are an Engine's counters since New.
type Stats struct {
	// ProbesSent counts probes sent without a socket error.
	ProbesSent uint64
	// RepliesSent counts replies sent without a socket error.
	RepliesSent uint64
	// ProbesReceived counts probes accepted (delivered to Handler).
	ProbesReceived uint64
	// RepliesReceived counts replies accepted (delivered to Handler).
	RepliesReceived uint64
	// SendErrors counts probes and replies the socket refused to send.
	SendErrors uint64
	// Drops counts rejected packets by reason (DropMalformed...); every
	// reason has an entry.
	Drops map[string]uint64
	// Misses counts, per configured (peer, lane), probes that got no reply
	// within MissAfter intervals; every pair has an entry.
	Misses map[PeerLane]uint64
}

// Engine sends and answers heartbeat probes on every lane.
type Engine struct {
	cfg         Config
	log         *slog.Logger
	incarnation uint64
	lanes       []*lane

	payload atomic.Pointer[[]byte]
	kick    chan struct{}
	epoch   atomic.Uint64
	ran     atomic.Bool

	probesSent, repliesSent atomic.Uint64
	probesRecv, repliesRecv atomic.Uint64
	sendErrors              atomic.Uint64
	drops                   [numDropReasons]atomic.Uint64
	clockWarnMu             sync.Mutex
	clockWarned             map[uint8]time.Time
}

type lane struct {
	cfg   LaneConfig
	conn  *net.UDPConn // set by Run before its goroutines start
	peers []*peerLane
	byIdx map[uint8]*peerLane
	seq   uint64 // owned by the send goroutine
}

type peerLane struct {
	peer    Peer
	dst     netip.AddrPort
	guard   *replayGuard // shared by the peer's lanes
	pending pendingTable
	misses  atomic.Uint64
}

// New validates cfg and returns an Engine ready to Run. It copies cfg, so
// later changes to the caller's slices do not affect the engine.
func New(cfg Config) (*Engine, error) {
	if err := validate(&cfg); err != nil {
		return nil, err
	}
	cfg.Key = append([]byte(nil), cfg.Key...)
	if cfg.Incarnation == 0 {
		cfg.Incarnation = NewIncarnation()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		cfg:         cfg,
		log:         log,
		incarnation: cfg.Incarnation,
		kick:        make(chan struct{}, 1),
		clockWarned: make(map[uint8]time.Time),
	}
	guards := make(map[uint8]*replayGuard)
	for _, lc := range cfg.Lanes {
		lc.Local = lc.Local.Unmap()
		lc.Peers = append([]Peer(nil), lc.Peers...)
		l := &lane{cfg: lc, byIdx: make(map[uint8]*peerLane, len(lc.Peers))}
		for i := range lc.Peers {
			p := &lc.Peers[i]
			p.Addr = p.Addr.Unmap()
			g := guards[p.Index]
			if g == nil {
				g = newReplayGuard()
				guards[p.Index] = g
			}
			pl := &peerLane{
				peer:  *p,
				dst:   netip.AddrPortFrom(p.Addr, uint16(cfg.Port)),
				guard: g,
			}
			l.peers = append(l.peers, pl)
			l.byIdx[p.Index] = pl
		}
		e.lanes = append(e.lanes, l)
	}
	e.cfg.Lanes = nil // the lanes hold the normalized copies
	return e, nil
}

func validate(cfg *Config) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if len(cfg.Key) < MinKeySize {
		return bad("key of %d bytes, need at least %d", len(cfg.Key), MinKeySize)
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return bad("port %d out of range", cfg.Port)
	}
	if cfg.Interval < MinInterval {
		return bad("interval %v below %v", cfg.Interval, MinInterval)
	}
	if len(cfg.Lanes) == 0 {
		return bad("no lanes")
	}
	laneIdx := make(map[uint8]bool)
	laneName := make(map[string]bool)
	locals := make(map[netip.Addr]string)
	for _, l := range cfg.Lanes {
		if l.Name == "" {
			return bad("lane %d: empty name", l.Index)
		}
		if laneName[l.Name] {
			return bad("lane %s: duplicate name", l.Name)
		}
		laneName[l.Name] = true
		if laneIdx[l.Index] {
			return bad("lane %s: duplicate index %d", l.Name, l.Index)
		}
		laneIdx[l.Index] = true
		local := l.Local.Unmap()
		if !local.IsValid() || local.IsUnspecified() {
			return bad("lane %s: invalid local address %v", l.Name, l.Local)
		}
		if other, ok := locals[local.WithZone("")]; ok {
			return bad("lane %s: local address %v already used by lane %s", l.Name, local, other)
		}
		locals[local.WithZone("")] = l.Name
		peerIdx := make(map[uint8]bool)
		peerAddr := make(map[netip.Addr]bool)
		for _, p := range l.Peers {
			addr := p.Addr.Unmap()
			switch {
			case p.Index == cfg.Self:
				return bad("lane %s: peer %d is this server", l.Name, p.Index)
			case peerIdx[p.Index]:
				return bad("lane %s: duplicate peer %d", l.Name, p.Index)
			case !addr.IsValid() || addr.IsUnspecified():
				return bad("lane %s: peer %d: invalid address %v", l.Name, p.Index, p.Addr)
			case addr.Is4() != local.Is4():
				return bad("lane %s: peer %d: address %v not of the family of %v", l.Name, p.Index, addr, local)
			case addr.WithZone("") == local.WithZone(""):
				return bad("lane %s: peer %d: address %v is the local address", l.Name, p.Index, addr)
			case peerAddr[addr.WithZone("")]:
				return bad("lane %s: peer %d: duplicate address %v", l.Name, p.Index, addr)
			}
			peerIdx[p.Index] = true
			peerAddr[addr.WithZone("")] = true
		}
	}
	return nil
}

// NewIncarnation returns a random nonzero incarnation.
func NewIncarnation() uint64 {
	var b [8]byte
	for {
		rand.Read(b[:])
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}

// Incarnation returns this engine's incarnation, random per New and never
// zero.
func (e *Engine) Incarnation() uint64 { return e.incarnation }

// SetPayload sets the payload of subsequent probes (p is copied) and asks
// for an immediate probe round, so that a change reaches the peers within
// one round trip rather than one interval. Rounds requested faster than they
// are sent coalesce. A payload longer than MaxPayload is refused and logged;
// the previous payload stays.
func (e *Engine) SetPayload(p []byte) {
	if len(p) > MaxPayload {
		e.log.Error("heartbeat payload refused", "size", len(p), "max", MaxPayload)
		return
	}
	c := append([]byte(nil), p...)
	e.payload.Store(&c)
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Stats returns a snapshot of the engine's counters.
func (e *Engine) Stats() Stats {
	s := Stats{
		ProbesSent:      e.probesSent.Load(),
		RepliesSent:     e.repliesSent.Load(),
		ProbesReceived:  e.probesRecv.Load(),
		RepliesReceived: e.repliesRecv.Load(),
		SendErrors:      e.sendErrors.Load(),
		Drops:           make(map[string]uint64, numDropReasons),
		Misses:          make(map[PeerLane]uint64),
	}
	for r := range numDropReasons {
		s.Drops[dropNames[r]] = e.drops[r].Load()
	}
	for _, l := range e.lanes {
		for _, pl := range l.peers {
			s.Misses[PeerLane{Peer: pl.peer.Index, Lane: l.cfg.Index}] = pl.misses.Load()
		}
	}
	return s
}

// Run binds one UDP socket per lane on Local:Port, then probes every peer on
// every lane each Interval, answers valid probes and reports accepted packets
// to Handler, until ctx ends. It then closes the sockets and returns nil once
// all its goroutines have ended. It returns an error without running if a
// socket cannot be bound, and ErrAlreadyRun if called a second time.
// Socket errors are logged, send errors also counted; none is fatal.
func (e *Engine) Run(ctx context.Context) error {
	if !e.ran.CompareAndSwap(false, true) {
		return ErrAlreadyRun
	}
	for i, l := range e.lanes {
		addr := netip.AddrPortFrom(l.cfg.Local, uint16(e.cfg.Port))
		conn, err := listen(ctx, addr)
		if err != nil {
			for _, prev := range e.lanes[:i] {
				prev.conn.Close()
			}
			return fmt.Errorf("bind lane %s %v: %w", l.cfg.Name, addr, bareErr(err))
		}
		l.conn = conn
	}

	var wg sync.WaitGroup
	for _, l := range e.lanes {
		wg.Go(func() { e.receive(l) })
	}
	wg.Go(func() { e.send(ctx) })
	if e.cfg.FastPath != nil {
		wg.Go(e.receiveKernel)
	}
	<-ctx.Done()
	for _, l := range e.lanes {
		l.conn.Close()
	}
	wg.Wait()
	return nil
}

// bareErr strips the net.OpError and bind SyscallError wrappers whose text
// the caller's context already says.
func bareErr(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	var se *os.SyscallError
	if errors.As(err, &se) && se.Syscall == "bind" {
		err = se.Err
	}
	return err
}

// send runs the probe rounds: one at once, then one per jittered interval
// (which also bumps the epoch and expires unanswered probes), and one more
// whenever SetPayload asks.
func (e *Engine) send(ctx context.Context) {
	codec := NewCodec(e.cfg.Key)
	buf := make([]byte, 0, MaxPacketSize)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			epoch := e.epoch.Add(1)
			if fp := e.cfg.FastPath; fp != nil {
				if err := fp.SetEpoch(epoch); err != nil {
					e.log.Warn("heartbeat fast path epoch not set", "err", err)
				}
			}
			e.expire(time.Now())
			buf = e.round(codec, buf)
			timer.Reset(e.jittered())
		case <-e.kick:
			buf = e.round(codec, buf)
		}
	}
}

func (e *Engine) jittered() time.Duration {
	d := e.cfg.Interval
	if j := int64(d / 10); j > 0 {
		d += time.Duration(mrand.Int64N(2*j+1) - j)
	}
	return d
}

func (e *Engine) expire(now time.Time) {
	ttl := MissAfter * e.cfg.Interval
	for _, l := range e.lanes {
		for _, pl := range l.peers {
			if n := pl.pending.expire(now, ttl); n > 0 {
				pl.misses.Add(uint64(n))
			}
		}
	}
}

// round sends one probe to every peer on every lane.
func (e *Engine) round(codec *Codec, buf []byte) []byte {
	var payload []byte
	if p := e.payload.Load(); p != nil {
		payload = *p
	}
	for _, l := range e.lanes {
		l.seq++
		for _, pl := range l.peers {
			p := Packet{
				Type:        TypeProbe,
				Sender:      e.cfg.Self,
				Lane:        l.cfg.Index,
				ConfigHash:  e.cfg.ConfigHash,
				Incarnation: e.incarnation,
				Seq:         l.seq,
				Payload:     payload,
			}
			rand.Read(p.Nonce[:])
			now := time.Now()
			p.SentAt = now.UnixNano()
			buf, _ = codec.Append(buf[:0], &p) // cannot fail: type and payload size are valid
			if n := pl.pending.add(p.Nonce, now); n > 0 {
				pl.misses.Add(uint64(n))
			}
			if fp := e.cfg.FastPath; fp != nil {
				if err := fp.Outstanding(p.Nonce, pl.peer.Index, l.cfg.Index, monoNow()); err != nil {
					e.log.Debug("heartbeat probe not registered with the fast path", "lane", l.cfg.Name, "peer", pl.peer.Index, "err", err)
				}
			}
			if _, err := l.conn.WriteToUDPAddrPort(buf, pl.dst); err != nil {
				if errors.Is(err, net.ErrClosed) {
					return buf // Run is stopping
				}
				e.sendErrors.Add(1)
				e.log.Debug("heartbeat probe not sent", "lane", l.cfg.Name, "peer", pl.peer.Index, "err", err)
				continue
			}
			e.probesSent.Add(1)
		}
	}
	return buf
}

// receive reads the lane's socket until Run closes it.
func (e *Engine) receive(l *lane) {
	codec := NewCodec(e.cfg.Key)
	buf := make([]byte, MaxPacketSize+1) // one more byte shows an oversize datagram
	out := make([]byte, 0, ReplySize)
	var backoff time.Duration
	for {
		n, src, err := l.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				e.refused(l)
				continue
			}
			e.log.Warn("heartbeat read failed", "lane", l.cfg.Name, "err", err)
			backoff = min(max(2*backoff, time.Millisecond), 100*time.Millisecond)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		out = e.handle(l, codec, buf[:n], src, time.Now(), out)
	}
}

// receiveKernel reads the probes the fast path answered until it closes.
func (e *Engine) receiveKernel() {
	codec := NewCodec(e.cfg.Key)
	buf := make([]byte, MaxPacketSize+1)
	for {
		n, src, laneIdx, err := e.cfg.FastPath.ReadProbe(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			e.log.Warn("heartbeat fast path read failed", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		for _, l := range e.lanes {
			if l.cfg.Index == laneIdx {
				e.handleProbe(l, codec, buf[:n], src, time.Now(), nil)
				break
			}
		}
	}
}

// refused reads the socket's error queue after an ICMP error and reports a
// port unreachable from a peer's address as ProbeRefused.
func (e *Engine) refused(l *lane) {
	dst, ok := readRefused(l.conn)
	if !ok || e.cfg.Handler == nil {
		return
	}
	for _, pl := range l.peers {
		if pl.peer.Addr == dst.Unmap() {
			e.cfg.Handler(Observation{Kind: ProbeRefused, Peer: pl.peer.Index, Lane: l.cfg.Index, At: time.Now()})
			return
		}
	}
}

// handleProbe processes a probe the kernel fast path already answered:
// everything handle does but the reply.
func (e *Engine) handleProbe(l *lane, codec *Codec, b []byte, src netip.AddrPort, now time.Time, out []byte) []byte {
	return e.process(l, codec, b, src, now, out, false)
}

// handle processes one datagram read on lane l at now; out is the reply
// buffer, returned for reuse.
func (e *Engine) handle(l *lane, codec *Codec, b []byte, src netip.AddrPort, now time.Time, out []byte) []byte {
	return e.process(l, codec, b, src, now, out, true)
}

// process validates and accepts one datagram; it answers an accepted probe
// when answer is set.
func (e *Engine) process(l *lane, codec *Codec, b []byte, src netip.AddrPort, now time.Time, out []byte, answer bool) []byte {
	p, err := codec.Decode(b)
	switch {
	case err == nil:
	case errors.Is(err, ErrOversize):
		e.drop(dropOversize, l, src, err)
		return out
	case errors.Is(err, ErrBadMAC):
		e.drop(dropBadMAC, l, src, err)
		return out
	default:
		e.drop(dropMalformed, l, src, err)
		return out
	}
	if p.Lane != l.cfg.Index {
		e.drop(dropWrongLane, l, src, nil)
		return out
	}
	pl := l.byIdx[p.Sender]
	if pl == nil || src.Addr().Unmap().WithZone("") != pl.peer.Addr.WithZone("") {
		e.drop(dropUnknownPeer, l, src, nil)
		return out
	}

	switch p.Type {
	case TypeProbe:
		if v := pl.guard.check(l.cfg.Index, p.Incarnation, p.Seq, p.SentAt, now.UnixNano()); v != probeAccepted {
			e.drop(dropReplay, l, src, nil)
			if v == probeClockSkew {
				e.warnClock(pl.peer.Index, l, p.SentAt, now)
			}
			return out
		}
		e.probesRecv.Add(1)
		if !answer {
			e.deliverProbe(&p, now)
			return out
		}
		reply := Packet{
			Type:        TypeReply,
			Sender:      e.cfg.Self,
			Lane:        l.cfg.Index,
			ConfigHash:  e.cfg.ConfigHash,
			Incarnation: e.incarnation,
			Nonce:       p.Nonce,
			Seq:         p.Seq,
			SentAt:      time.Now().UnixNano(),
			EchoSentAt:  p.SentAt,
			ReceivedAt:  now.UnixNano(),
			Epoch:       e.epoch.Load(),
		}
		out, _ = codec.Append(out[:0], &reply) // cannot fail
		if _, err := l.conn.WriteToUDPAddrPort(out, src); err != nil && !errors.Is(err, net.ErrClosed) {
			e.sendErrors.Add(1)
			e.log.Debug("heartbeat reply not sent", "lane", l.cfg.Name, "peer", p.Sender, "err", err)
		} else if err == nil {
			e.repliesSent.Add(1)
		}
		e.deliverProbe(&p, now)

	case TypeReply:
		sent, v := pl.pending.take(p.Nonce)
		switch v {
		case replyUnknown:
			e.drop(dropUnsolicitedReply, l, src, nil)
			return out
		case replyDuplicate:
			e.drop(dropReplay, l, src, nil)
			return out
		case replyLate:
			e.drop(dropLateReply, l, src, nil)
			return out
		}
		e.repliesRecv.Add(1)
		if e.cfg.Handler != nil {
			e.cfg.Handler(Observation{
				Kind:        ReplyReceived,
				Peer:        p.Sender,
				Lane:        p.Lane,
				At:          now,
				RTT:         now.Sub(sent),
				ConfigHash:  p.ConfigHash,
				Incarnation: p.Incarnation,
				Epoch:       p.Epoch,
				Kernel:      p.Flags&FlagKernelReply != 0,
			})
		}
	}
	return out
}

// deliverProbe reports an accepted probe to the handler.
func (e *Engine) deliverProbe(p *Packet, now time.Time) {
	if e.cfg.Handler == nil {
		return
	}
	var payload []byte
	if len(p.Payload) > 0 {
		payload = append([]byte(nil), p.Payload...)
	}
	e.cfg.Handler(Observation{
		Kind:        ProbeReceived,
		Peer:        p.Sender,
		Lane:        p.Lane,
		At:          now,
		ConfigHash:  p.ConfigHash,
		Incarnation: p.Incarnation,
		Payload:     payload,
	})
}

func (e *Engine) drop(r dropReason, l *lane, src netip.AddrPort, err error) {
	e.drops[r].Add(1)
	if !e.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	if err != nil {
		e.log.Debug("heartbeat packet dropped", "reason", dropNames[r], "lane", l.cfg.Name, "src", src, "err", err)
	} else {
		e.log.Debug("heartbeat packet dropped", "reason", dropNames[r], "lane", l.cfg.Name, "src", src)
	}
}

// warnClock logs, at most once a minute per peer, that a peer's new
// incarnation was refused for clock skew: an operator must fix the clocks.
func (e *Engine) warnClock(peer uint8, l *lane, sentAt int64, now time.Time) {
	e.clockWarnMu.Lock()
	last, seen := e.clockWarned[peer]
	due := !seen || now.Sub(last) >= time.Minute
	if due {
		e.clockWarned[peer] = now
	}
	e.clockWarnMu.Unlock()
	if due {
		e.log.Warn("heartbeat from a new incarnation refused: clocks differ too much",
			"peer", peer, "lane", l.cfg.Name,
			"skew", time.Duration(sentAt-now.UnixNano()), "max", MaxClockSkew)
	}
}
