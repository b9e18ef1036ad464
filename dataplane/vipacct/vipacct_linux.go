package vipacct

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

//go:generate go tool bpf2go -tags linux -target bpfel vipacct ../../bpf/vipacct.c -- -I../../bpf/include -mcpu=v3 -Wall -Werror

// MaxVIPs is how many VIPs one Accounting can count.
const MaxVIPs = 256

// Errors.
var (
	// ErrNotSupported means this kernel or process cannot run the
	// accounting program: no CAP_BPF or CAP_NET_ADMIN, or a kernel without
	// tcx (before 6.6).
	ErrNotSupported = errors.New("vip accounting not supported")
	// ErrUnknownVIP is returned by Arm for an address not in the set.
	ErrUnknownVIP = errors.New("vip not accounted")
	// ErrInvalidVIP is returned by Set for an address that is not IPv4,
	// and for more than MaxVIPs addresses.
	ErrInvalidVIP = errors.New("invalid vip")
	// ErrClosed is returned by methods of a closed Accounting.
	ErrClosed = errors.New("vip accounting closed")
)

// VIPStats is the traffic one VIP received since it entered the set.
type VIPStats struct {
	// Packets counts packets to the VIP (GRO/GSO packets as their
	// segments).
	Packets uint64
	// Bytes counts their bytes as TC sees them: Ethernet header included.
	Bytes uint64
	// FirstPacket is the monotonic time (CLOCK_MONOTONIC, the clock of
	// xdpheartbeat.Now) of the first packet since the VIP was armed; 0 if
	// none arrived yet, or it was never armed.
	FirstPacket time.Duration
	// ArmedAt is the monotonic time of the last Arm; 0 if never armed.
	ArmedAt time.Duration
}

// Accounting is the accounting program attached to one interface's TC
// ingress. Its methods are safe for concurrent use.
type Accounting struct {
	mu     sync.Mutex
	objs   vipacctObjects
	link   link.Link
	closed bool
}

// Attach loads the accounting program and attaches it to the tcx ingress
// hook of iface (in the calling thread's network namespace) through a
// bpf_link: it goes away with Close or with the process. The VIP set starts
// empty. Errors meaning the system cannot run it wrap ErrNotSupported.
func Attach(iface string) (*Accounting, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("vip accounting on %s: %w", iface, err)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("%w: memlock rlimit: %w", ErrNotSupported, err)
	}
	a := &Accounting{}
	if err := loadVipacctObjects(&a.objs, nil); err != nil {
		if unsupported(err) {
			err = fmt.Errorf("%w: %w", ErrNotSupported, err)
		}
		return nil, fmt.Errorf("vip accounting on %s: load: %w", iface, err)
	}
	a.link, err = link.AttachTCX(link.TCXOptions{
		Interface: ifi.Index,
		Program:   a.objs.VigilVipAcct,
		Attach:    ebpf.AttachTCXIngress,
	})
	if err != nil {
		a.objs.Close()
		if unsupported(err) {
			err = fmt.Errorf("%w: %w", ErrNotSupported, err)
		}
		return nil, fmt.Errorf("vip accounting on %s: attach tcx ingress: %w", iface, err)
	}
	return a, nil
}

func unsupported(err error) bool {
	return errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
}

// Set makes vips the set of accounted VIPs: addresses new to the set start
// at zero, unarmed; addresses that stay keep their counts and arming;
// addresses that leave are forgotten. Calling it again with the same set
// changes nothing.
func (a *Accounting) Set(vips []netip.Addr) error {
	want := make(map[[4]byte]bool, len(vips))
	for _, v := range vips {
		v = v.Unmap()
		if !v.Is4() {
			return fmt.Errorf("%w: %v is not IPv4", ErrInvalidVIP, v)
		}
		want[v.As4()] = true
	}
	if len(want) > MaxVIPs {
		return fmt.Errorf("%w: %d addresses, at most %d", ErrInvalidVIP, len(want), MaxVIPs)
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	have, err := a.keys()
	if err != nil {
		return err
	}
	var errs []error
	for k := range have {
		if want[k] {
			continue
		}
		if err := a.objs.VipStats.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("forget %v: %w", netip.AddrFrom4(k), err))
		}
		if err := a.objs.VipArm.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("forget %v: %w", netip.AddrFrom4(k), err))
		}
	}
	zero := make([]vipacctVipCounts, ebpf.MustPossibleCPU())
	for k := range want {
		if have[k] {
			continue
		}
		// The arming entry first: the program looks it up only for an
		// address it already counts.
		if err := a.objs.VipArm.Update(k, &vipacctVipArm{}, ebpf.UpdateAny); err != nil {
			errs = append(errs, fmt.Errorf("add %v: %w", netip.AddrFrom4(k), err))
			continue
		}
		if err := a.objs.VipStats.Update(k, zero, ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			errs = append(errs, fmt.Errorf("add %v: %w", netip.AddrFrom4(k), err))
		}
	}
	return errors.Join(errs...)
}

// keys returns the VIPs in the counting map. The caller holds a.mu.
func (a *Accounting) keys() (map[[4]byte]bool, error) {
	have := make(map[[4]byte]bool)
	var k [4]byte
	it := a.objs.VipStats.Iterate()
	var v []vipacctVipCounts
	for it.Next(&k, &v) {
		have[k] = true
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list vips: %w", err)
	}
	return have, nil
}

// Arm records that this node just became vip's owner: from now on the
// first packet to vip sets FirstPacket. Arming again restarts the wait.
func (a *Accounting) Arm(vip netip.Addr) error {
	vip = vip.Unmap()
	if !vip.Is4() {
		return fmt.Errorf("%w: %v is not IPv4", ErrInvalidVIP, vip)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	k := vip.As4()
	v := vipacctVipArm{ArmedAtMonoNs: uint64(now())}
	if err := a.objs.VipArm.Update(k, &v, ebpf.UpdateExist); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("arm %v: %w", vip, ErrUnknownVIP)
		}
		return fmt.Errorf("arm %v: %w", vip, err)
	}
	return nil
}

// Stats returns the statistics of every VIP in the set.
func (a *Accounting) Stats() (map[netip.Addr]VIPStats, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, ErrClosed
	}
	out := make(map[netip.Addr]VIPStats)
	var k [4]byte
	var percpu []vipacctVipCounts
	it := a.objs.VipStats.Iterate()
	for it.Next(&k, &percpu) {
		var s VIPStats
		for _, c := range percpu {
			s.Packets += c.Packets
			s.Bytes += c.Bytes
		}
		var arm vipacctVipArm
		if err := a.objs.VipArm.Lookup(k, &arm); err == nil {
			s.ArmedAt = time.Duration(arm.ArmedAtMonoNs)
			s.FirstPacket = time.Duration(arm.FirstPacketMonoNs)
		}
		out[netip.AddrFrom4(k)] = s
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read vip stats: %w", err)
	}
	return out, nil
}

// Close detaches the program and frees it and its maps. Calling it again
// does nothing.
func (a *Accounting) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	var errs []error
	if err := a.link.Close(); err != nil {
		errs = append(errs, fmt.Errorf("detach tcx: %w", err))
	}
	if err := a.objs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close objects: %w", err))
	}
	return errors.Join(errs...)
}

// now returns CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns.
func now() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}
