package xdpheartbeat

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/dataplane/heartbeat"
)

//go:generate go tool bpf2go -tags linux -target bpfel -type hb_probe_event heartbeat ../../bpf/heartbeat.c -- -I../../bpf/include -mcpu=v3 -Wall -Werror

// ProgramName is the name of the XDP program in the kernel; CleanUp removes
// programs whose name starts with "vigil_".
const ProgramName = "vigil_hb_xdp"

// XDP attach modes, as Mode and Modes report them.
const (
	// ModeNative is driver mode: the program runs in the driver's receive
	// path, before any socket buffer exists.
	ModeNative = "native"
	// ModeGeneric is generic (SKB) mode: the program runs on socket
	// buffers, on any interface, more slowly.
	ModeGeneric = "generic"
	// ModeMixed is what Mode reports when interfaces differ.
	ModeMixed = "mixed"
)

// Errors. Errors from Load wrap ErrInvalidConfig or ErrNotSupported when
// they are about the configuration or the system.
var (
	// ErrNotSupported means this kernel or process cannot run the fast path
	// (no CAP_BPF or CAP_NET_ADMIN, a kernel without BPF ring buffers,
	// bpf_loop, bpf_xdp_load_bytes or XDP links); serve heartbeats from
	// userspace instead.
	ErrNotSupported = errors.New("xdp heartbeat fast path not supported")
	// ErrInvalidConfig is wrapped by every configuration error of Load.
	ErrInvalidConfig = errors.New("xdp heartbeat config")
	// ErrClosed is returned by methods of a closed Fastpath. It is
	// os.ErrClosed, so errors.Is(err, os.ErrClosed) also holds.
	ErrClosed = os.ErrClosed
)

// Member is a peer's address on one lane.
type Member struct {
	// Addr is the peer's IPv4 address on the lane; probes and replies from
	// it are the peer's.
	Addr netip.Addr
	// Server is the peer's server index.
	Server uint8
	// Lane is the lane index; it must be a key of Config.Interfaces.
	Lane uint8
}

// Config configures a Fastpath.
type Config struct {
	// Key is the cluster key, at least heartbeat.MinKeySize bytes. Load
	// derives the heartbeat subkey from it (heartbeat.DeriveKey) and hands
	// the kernel only the HMAC inner and outer SHA-256 states.
	Key []byte
	// Self is this server's index, the sender index of every reply.
	Self uint8
	// ConfigHash is this server's configuration hash, sent in replies.
	ConfigHash [16]byte
	// Incarnation is this daemon's incarnation, sent in replies; nonzero.
	Incarnation uint64
	// Port is the heartbeat UDP port; nonzero.
	Port uint16
	// Interfaces maps each lane index to the name of its interconnect
	// interface; at least one. The program is attached to every one.
	Interfaces map[uint8]string
	// Members are the peers' addresses, per lane; not this server's.
	Members []Member
	// Mode is how to attach: "" (automatic), ModeNative or ModeGeneric.
	// Automatic tries native mode and falls back to generic mode, except
	// on veth interfaces, where it picks generic mode: native XDP_TX on a
	// veth end only reaches the other end if that end has an XDP program
	// of its own, which this side cannot know. ModeNative fails where the
	// driver has no native XDP.
	Mode string
}

// PeerLaneState is what the prober side recorded of one peer on one lane.
// Times are monotonic, on Now's clock.
type PeerLaneState struct {
	// LastReply is when the last authentic reply to an outstanding probe
	// arrived.
	LastReply time.Duration
	// RTT is that reply's round-trip time, from the send time given to
	// Outstanding.
	RTT time.Duration
	// Epoch is the peer daemon's liveness epoch in that reply.
	Epoch uint64
	// EpochChanged is when a reply first carried Epoch: a peer whose epoch
	// stopped changing while its replies keep coming has a stalled daemon.
	EpochChanged time.Duration
	// Replies counts the replies recorded.
	Replies uint64
	// KernelReplies counts those made by the peer's kernel fast path.
	KernelReplies uint64
}

// Probe describes a probe the fast path answered, as ReadProbe returns it.
type Probe struct {
	// N is the probe's length in bytes (UDP payload, tag included), which
	// ReadProbe copied to the start of its buffer.
	N int
	// Src is the probe's source address and port.
	Src netip.AddrPort
	// Peer and Lane are the member the source address belongs to.
	Peer, Lane uint8
	// Received is the kernel's monotonic receive time, on Now's clock.
	Received time.Duration
}

// Counters are the fast path's counters since Load, summed over CPUs.
type Counters struct {
	// Answered counts probes answered in the kernel.
	Answered uint64
	// BadTag counts probes whose tag did not verify; they are dropped.
	BadTag uint64
	// NonMember counts heartbeat packets from addresses that are not
	// members; they are passed to the stack, not answered.
	NonMember uint64
	// WrongLane counts heartbeats whose lane or sender index is not the
	// member's on the receiving interface's lane; passed.
	WrongLane uint64
	// Malformed counts packets to the heartbeat port that are not
	// well-formed heartbeats, or were sent to a group address; passed.
	Malformed uint64
	// IPOptions counts heartbeats with IPv4 options; passed.
	IPOptions uint64
	// NotConfigured counts heartbeats on an interface without a lane.
	NotConfigured uint64
	// RingbufFull counts probes answered but not delivered to ReadProbe
	// because the ring buffer was full.
	RingbufFull uint64
	// TxError counts probes that could not be turned into a reply; passed.
	TxError uint64
	// RepliesRecorded counts replies recorded in PeerLane.
	RepliesRecorded uint64
	// RepliesUnknownNonce counts replies whose nonce was not outstanding.
	RepliesUnknownNonce uint64
	// RepliesBadTag counts replies whose tag did not verify.
	RepliesBadTag uint64
	// RepliesMismatch counts replies whose nonce was registered for
	// another peer or lane.
	RepliesMismatch uint64
}

// counter indexes, as enum hb_counter in bpf/heartbeat.c.
const (
	cntAnswered = iota
	cntBadTag
	cntNonMember
	cntWrongLane
	cntMalformed
	cntIPOptions
	cntNotConfigured
	cntRingbufFull
	cntTxError
	cntReplyRecorded
	cntReplyUnknownNonce
	cntReplyBadTag
	cntReplyMismatch
	numCounters
)

// probeEventSize is sizeof(struct hb_probe_event), the ring buffer record
// header.
const probeEventSize = int(unsafe.Sizeof(heartbeatHbProbeEvent{}))

// Fastpath is the loaded and attached XDP heartbeat program. Its methods
// are safe for concurrent use.
type Fastpath struct {
	objs  heartbeatObjects
	links []link.Link
	modes map[string]string
	rd    *ringbuf.Reader

	// mu guards mem and closed: readers may use mem, Close unmaps it.
	mu     sync.RWMutex
	mem    []byte // the hb_config map, memory-mapped
	closed bool

	recMu sync.Mutex
	rec   ringbuf.Record
}

// Now returns the CLOCK_MONOTONIC time, the clock of bpf_ktime_get_ns and
// of every monotonic time this package takes or returns.
func Now() time.Duration {
	var ts unix.Timespec
	// CLOCK_MONOTONIC cannot fail with a valid pointer.
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}

// Supported reports whether this kernel and process can run the fast path,
// as an error wrapping ErrNotSupported if not. Load checks it first. The
// kernel's answers are cached.
func Supported() error {
	if err := features.HaveMapType(ebpf.RingBuf); err != nil {
		return fmt.Errorf("%w: ring buffer: %w", ErrNotSupported, err)
	}
	for _, fn := range []asm.BuiltinFunc{asm.FnLoop, asm.FnXdpLoadBytes, asm.FnXdpStoreBytes} {
		if err := features.HaveProgramHelper(ebpf.XDP, fn); err != nil {
			return fmt.Errorf("%w: helper %s: %w", ErrNotSupported, fn, err)
		}
	}
	return nil
}

// Load loads the fast path with cfg and attaches it to every interface of
// cfg.Interfaces, in native mode where the driver supports it, else in
// generic mode. The program stays attached until Close or the end of the
// process. Errors about cfg wrap ErrInvalidConfig; errors meaning the
// system cannot run the fast path wrap ErrNotSupported.
func Load(cfg Config) (*Fastpath, error) {
	ifindex, members, err := cfg.check()
	if err != nil {
		return nil, err
	}
	if err := Supported(); err != nil {
		return nil, err
	}
	// A no-op on kernels that account BPF memory to cgroups (5.11+).
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("%w: memlock rlimit: %w", ErrNotSupported, err)
	}

	spec, err := loadHeartbeat()
	if err != nil {
		return nil, err
	}
	if err := spec.Variables[heartbeatVarHbPort].Set(cfg.Port); err != nil {
		return nil, fmt.Errorf("set port: %w", err)
	}
	f := &Fastpath{modes: make(map[string]string)}
	if err := spec.LoadAndAssign(&f.objs, nil); err != nil {
		return nil, loadError(err)
	}
	if err := f.setup(cfg, ifindex, members); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// loadError wraps a load failure in ErrNotSupported when it is about
// privileges or kernel support. A verifier rejection (EACCES) counts as
// such: it means this kernel's verifier does not accept the program, and
// the daemon should serve heartbeats from userspace; the error carries the
// verifier's last words.
func loadError(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || errors.Is(err, ebpf.ErrNotSupported) {
		return fmt.Errorf("%w: load: %w", ErrNotSupported, err)
	}
	return fmt.Errorf("load: %w", err)
}

// check validates cfg and resolves its interfaces, returning each lane's
// interface index and the members with IPv4 addresses.
func (cfg *Config) check() (map[uint8]int, []Member, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if len(cfg.Key) < heartbeat.MinKeySize {
		return nil, nil, bad("key of %d bytes, want at least %d", len(cfg.Key), heartbeat.MinKeySize)
	}
	if cfg.Port == 0 {
		return nil, nil, bad("port 0")
	}
	if cfg.Incarnation == 0 {
		return nil, nil, bad("incarnation 0")
	}
	if cfg.Mode != "" && cfg.Mode != ModeNative && cfg.Mode != ModeGeneric {
		return nil, nil, bad("mode %q", cfg.Mode)
	}
	if len(cfg.Interfaces) == 0 {
		return nil, nil, bad("no interfaces")
	}
	ifindex := make(map[uint8]int, len(cfg.Interfaces))
	seen := make(map[int]uint8)
	for lane, name := range cfg.Interfaces {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return nil, nil, bad("lane %d: interface %q: %v", lane, name, err)
		}
		if other, dup := seen[ifi.Index]; dup {
			return nil, nil, bad("interface %q on lanes %d and %d", name, other, lane)
		}
		seen[ifi.Index] = lane
		ifindex[lane] = ifi.Index
	}
	members := make([]Member, 0, len(cfg.Members))
	addrs := make(map[netip.Addr]bool)
	for _, m := range cfg.Members {
		a := m.Addr.Unmap()
		switch {
		case !a.Is4():
			return nil, nil, bad("member %d: address %v is not IPv4", m.Server, m.Addr)
		case m.Server == cfg.Self:
			return nil, nil, bad("member %d: that is self", m.Server)
		case addrs[a]:
			return nil, nil, bad("member %d: address %v listed twice", m.Server, a)
		}
		if _, ok := cfg.Interfaces[m.Lane]; !ok {
			return nil, nil, bad("member %d: lane %d has no interface", m.Server, m.Lane)
		}
		addrs[a] = true
		members = append(members, Member{Addr: a, Server: m.Server, Lane: m.Lane})
	}
	return ifindex, members, nil
}

// setup fills the maps, maps the configuration and attaches the program.
func (f *Fastpath) setup(cfg Config, ifindex map[uint8]int, members []Member) error {
	var c heartbeatHbConfig
	var err error
	if c.Inner, c.Outer, err = hmacStates(heartbeat.DeriveKey(cfg.Key)); err != nil {
		return err
	}
	copy(c.Hdr[:16], cfg.ConfigHash[:])
	binary.BigEndian.PutUint64(c.Hdr[16:], cfg.Incarnation)
	c.Self = cfg.Self
	c.Ready = 1
	c.ClockOffsetNs = clockOffset()
	if err := f.objs.HbConfig.Put(uint32(0), &c); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	mem, err := unix.Mmap(f.objs.HbConfig.FD(), 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("map config: %w", err)
	}
	f.mem = mem

	for lane, idx := range ifindex {
		if err := f.objs.HbIfaces.Put(uint32(idx), uint32(lane)); err != nil {
			return fmt.Errorf("write lane %d: %w", lane, err)
		}
	}
	for _, m := range members {
		v := heartbeatHbMember{Server: m.Server, Lane: m.Lane}
		if err := f.objs.HbMembers.Put(m.Addr.As4(), &v); err != nil {
			return fmt.Errorf("write member %v: %w", m.Addr, err)
		}
		// Created here so that the kernel never has to.
		if err := f.objs.HbPeerLanes.Update(peerLaneKey(m.Server, m.Lane), &heartbeatHbPeerLane{}, ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			return fmt.Errorf("write peer %d lane %d: %w", m.Server, m.Lane, err)
		}
	}

	if f.rd, err = ringbuf.NewReader(f.objs.HbProbes); err != nil {
		return fmt.Errorf("ring buffer: %w", err)
	}

	for lane, idx := range ifindex {
		name := cfg.Interfaces[lane]
		mode := cfg.Mode
		if mode == "" && isVeth(name) {
			mode = ModeGeneric
		}
		l, mode, err := attach(f.objs.VigilHbXdp, idx, mode)
		if err != nil {
			return fmt.Errorf("attach xdp to %s: %w", name, err)
		}
		f.links = append(f.links, l)
		f.modes[name] = mode
	}
	return nil
}

// attach attaches prog to interface ifindex through a bpf_link in mode:
// ModeNative, ModeGeneric, or "" for native with a fallback to generic.
func attach(prog *ebpf.Program, ifindex int, mode string) (link.Link, string, error) {
	if mode != ModeGeneric {
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
		if err == nil {
			return l, ModeNative, nil
		}
		if mode == ModeNative {
			if errors.Is(err, ebpf.ErrNotSupported) {
				err = fmt.Errorf("%w: %w", ErrNotSupported, err)
			}
			return nil, "", fmt.Errorf("native mode: %w", err)
		}
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPGenericMode})
	if err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EPERM) {
			err = fmt.Errorf("%w: %w", ErrNotSupported, err)
		}
		return nil, "", err
	}
	return l, ModeGeneric, nil
}

// isVeth reports whether the driver of interface name is veth.
func isVeth(name string) bool {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, name)
	return err == nil && unix.ByteSliceToString(info.Driver[:]) == "veth"
}

// Mode is ModeNative or ModeGeneric when every interface runs the program
// in that mode, else ModeMixed.
func (f *Fastpath) Mode() string {
	mode := ""
	for _, m := range f.modes {
		if mode != "" && m != mode {
			return ModeMixed
		}
		mode = m
	}
	return mode
}

// Modes returns each interface's attach mode, ModeNative or ModeGeneric.
func (f *Fastpath) Modes() map[string]string {
	out := make(map[string]string, len(f.modes))
	for k, v := range f.modes {
		out[k] = v
	}
	return out
}

// configField returns a pointer to the 64-bit field at offset off of the
// memory-mapped configuration, or ErrClosed. The caller holds f.mu for
// reading while it uses the pointer.
func (f *Fastpath) configField(off uintptr) (*uint64, error) {
	if f.closed || f.mem == nil {
		return nil, ErrClosed
	}
	return (*uint64)(unsafe.Pointer(&f.mem[off])), nil
}

// SetEpoch publishes the daemon's liveness epoch, which replies carry from
// now on. The daemon bumps it every tick; it is one atomic store, no system
// call.
func (f *Fastpath) SetEpoch(epoch uint64) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p, err := f.configField(unsafe.Offsetof(heartbeatHbConfig{}.Epoch))
	if err != nil {
		return err
	}
	atomic.StoreUint64(p, epoch)
	return nil
}

// SetClockOffset measures CLOCK_REALTIME - CLOCK_MONOTONIC again and
// publishes it, so that the times replies carry stay Unix times after the
// wall clock is stepped. Call it when the clock may have been set, or
// periodically.
func (f *Fastpath) SetClockOffset() error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p, err := f.configField(unsafe.Offsetof(heartbeatHbConfig{}.ClockOffsetNs))
	if err != nil {
		return err
	}
	atomic.StoreUint64(p, uint64(clockOffset()))
	return nil
}

// clockOffset returns CLOCK_REALTIME - CLOCK_MONOTONIC in nanoseconds, the
// realtime reading taken between two monotonic ones.
func clockOffset() int64 {
	var m1, r, m2 unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &m1)
	_ = unix.ClockGettime(unix.CLOCK_REALTIME, &r)
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &m2)
	return r.Nano() - (m1.Nano()+m2.Nano())/2
}

// Outstanding registers a probe the daemon sent to peer on lane at
// monotonic time sentMono (Now), so that the kernel records its reply. A
// probe never answered ages out of the table (an LRU of 8192 entries).
func (f *Fastpath) Outstanding(nonce [16]byte, peer, lane uint8, sentMono time.Duration) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return ErrClosed
	}
	v := heartbeatHbOutstanding{SentMonoNs: uint64(sentMono), Peer: peer, Lane: lane}
	if err := f.objs.HbOutstanding.Put(heartbeatHbNonce{B: nonce}, &v); err != nil {
		return fmt.Errorf("register probe: %w", err)
	}
	return nil
}

// PeerLane returns what the prober side recorded of peer on lane, and
// false if no reply was recorded yet.
func (f *Fastpath) PeerLane(peer, lane uint8) (PeerLaneState, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return PeerLaneState{}, false
	}
	var v heartbeatHbPeerLane
	if err := f.objs.HbPeerLanes.Lookup(peerLaneKey(peer, lane), &v); err != nil || v.Replies == 0 {
		return PeerLaneState{}, false
	}
	return PeerLaneState{
		LastReply:     time.Duration(v.LastReplyMonoNs),
		RTT:           time.Duration(v.RttNs),
		Epoch:         v.Epoch,
		EpochChanged:  time.Duration(v.EpochChangedMonoNs),
		Replies:       v.Replies,
		KernelReplies: v.KernelReplies,
	}, true
}

func peerLaneKey(peer, lane uint8) uint32 { return uint32(peer)<<8 | uint32(lane) }

// ReadProbe waits for the next probe the fast path answered and copies it,
// as it arrived (UDP payload, tag included), to buf, which must hold
// heartbeat.MaxPacketSize bytes. After Close it returns an error wrapping
// ErrClosed (os.ErrClosed); after the deadline of SetReadDeadline, one
// wrapping os.ErrDeadlineExceeded.
func (f *Fastpath) ReadProbe(buf []byte) (Probe, error) {
	if len(buf) < heartbeat.MaxPacketSize {
		return Probe{}, fmt.Errorf("read probe: buffer of %d bytes, want %d", len(buf), heartbeat.MaxPacketSize)
	}
	f.recMu.Lock()
	defer f.recMu.Unlock()
	if err := f.rd.ReadInto(&f.rec); err != nil {
		return Probe{}, fmt.Errorf("read probe: %w", err)
	}
	raw := f.rec.RawSample
	if len(raw) < probeEventSize {
		return Probe{}, fmt.Errorf("read probe: record of %d bytes", len(raw))
	}
	n := int(binary.LittleEndian.Uint32(raw[0:]))
	if n > len(raw)-probeEventSize || n > heartbeat.MaxPacketSize {
		return Probe{}, fmt.Errorf("read probe: record of %d bytes says %d", len(raw), n)
	}
	p := Probe{
		N:        copy(buf, raw[probeEventSize:probeEventSize+n]),
		Src:      netip.AddrPortFrom(netip.AddrFrom4([4]byte(raw[4:8])), binary.BigEndian.Uint16(raw[16:])),
		Received: time.Duration(binary.LittleEndian.Uint64(raw[8:])),
		Lane:     raw[18],
		Peer:     raw[19],
	}
	return p, nil
}

// SetReadDeadline makes ReadProbe return os.ErrDeadlineExceeded once t has
// passed; the zero time waits forever.
func (f *Fastpath) SetReadDeadline(t time.Time) {
	f.rd.SetDeadline(t)
}

// Counters returns the fast path's counters, summed over CPUs; zero after
// Close.
func (f *Fastpath) Counters() Counters {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var v [numCounters]uint64
	if f.closed {
		return Counters{}
	}
	var percpu []uint64
	for i := range v {
		if err := f.objs.HbCounters.Lookup(uint32(i), &percpu); err != nil {
			continue
		}
		for _, n := range percpu {
			v[i] += n
		}
	}
	return Counters{
		Answered:            v[cntAnswered],
		BadTag:              v[cntBadTag],
		NonMember:           v[cntNonMember],
		WrongLane:           v[cntWrongLane],
		Malformed:           v[cntMalformed],
		IPOptions:           v[cntIPOptions],
		NotConfigured:       v[cntNotConfigured],
		RingbufFull:         v[cntRingbufFull],
		TxError:             v[cntTxError],
		RepliesRecorded:     v[cntReplyRecorded],
		RepliesUnknownNonce: v[cntReplyUnknownNonce],
		RepliesBadTag:       v[cntReplyBadTag],
		RepliesMismatch:     v[cntReplyMismatch],
	}
}

// Close detaches the program from every interface and frees it and its
// maps; probes are no longer answered, and ReadProbe returns ErrClosed.
// Calling it again does nothing.
func (f *Fastpath) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	var errs []error
	for _, l := range f.links {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach xdp: %w", err))
		}
	}
	f.links = nil
	if f.rd != nil {
		if err := f.rd.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close ring buffer: %w", err))
		}
	}
	if f.mem != nil {
		if err := unix.Munmap(f.mem); err != nil {
			errs = append(errs, fmt.Errorf("unmap config: %w", err))
		}
		f.mem = nil
	}
	if err := f.objs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close objects: %w", err))
	}
	return errors.Join(errs...)
}

// hmacStates returns the SHA-256 states after HMAC's first block, key ^
// ipad (inner) and key ^ opad (outer), for a key of one hash size. They are
// read from crypto/sha256's marshalled state: "sha\x03", then the eight
// state words big-endian.
func hmacStates(key [sha256.Size]byte) (inner, outer [8]uint32, err error) {
	state := func(pad byte) ([8]uint32, error) {
		var block [sha256.BlockSize]byte
		for i := range block {
			block[i] = pad
		}
		for i, b := range key {
			block[i] ^= b
		}
		h := sha256.New()
		h.Write(block[:])
		m, ok := h.(encoding.BinaryMarshaler)
		if !ok {
			return [8]uint32{}, errors.New("sha256 state not marshalable")
		}
		b, err := m.MarshalBinary()
		if err != nil {
			return [8]uint32{}, fmt.Errorf("sha256 state: %w", err)
		}
		if len(b) < 4+32 || string(b[:4]) != "sha\x03" {
			return [8]uint32{}, fmt.Errorf("sha256 state: unknown format %q", b[:min(len(b), 4)])
		}
		var st [8]uint32
		for i := range st {
			st[i] = binary.BigEndian.Uint32(b[4+4*i:])
		}
		return st, nil
	}
	if inner, err = state(0x36); err != nil {
		return inner, outer, err
	}
	outer, err = state(0x5c)
	return inner, outer, err
}
