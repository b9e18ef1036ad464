//go:build linux

package vip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Netlink is the real Binder: it adds and removes addresses with netlink
// in the network namespace of the thread that calls Set or CleanUp (the
// daemon's, unless the caller locked its goroutine to a thread in another
// one). After adding an IPv4 address it announces it with gratuitous ARP,
// so that neighbours update their caches at failover. IPv6 addresses are
// added without duplicate address detection, so they are usable at once.
//
// Its methods are safe for concurrent use; calls are serialized.
type Netlink struct {
	managed []Binding
	log     *slog.Logger

	mu sync.Mutex
	// announcing holds, per binding, a channel that stops its pending
	// gratuitous ARP announcements when closed.
	announcing map[Binding]chan struct{}
	// senders counts announcement goroutines; idle is signaled when it
	// drops to zero. Both use mu.
	senders int
	idle    *sync.Cond
}

// NewNetlink returns a Netlink that manages the given bindings. A nil log
// discards messages.
func NewNetlink(managed []Binding, log *slog.Logger) *Netlink {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Netlink{
		managed:    dedup(managed),
		log:        log,
		announcing: make(map[Binding]chan struct{}),
	}
	n.idle = sync.NewCond(&n.mu)
	return n
}

var _ Binder = (*Netlink)(nil)

// Set implements Binder. Managed bindings that are not desired are removed
// first, then desired ones added, so a binding can move between interfaces
// in one call. It works on every binding even when some fail, and returns
// their errors joined.
func (n *Netlink) Set(desired []Binding) error {
	ordered, want, err := plan(n.managed, desired)
	if err != nil {
		return fmt.Errorf("set: %w", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var errs []error
	for _, b := range n.managed {
		if !want[b] {
			errs = append(errs, n.remove(b))
		}
	}
	for _, b := range ordered {
		errs = append(errs, n.add(b))
	}
	return errors.Join(errs...)
}

// CleanUp implements Binder. Addresses outside the managed set, even on
// the same interfaces, are left alone.
func (n *Netlink) CleanUp() error {
	if _, _, err := plan(n.managed, nil); err != nil {
		return fmt.Errorf("clean up: %w", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var errs []error
	for _, b := range n.managed {
		errs = append(errs, n.remove(b))
	}
	return errors.Join(errs...)
}

// Wait blocks until pending gratuitous ARP announcements are sent. Set does
// not wait for them; a daemon calls Wait on shutdown and tests call it to
// leave no goroutine behind.
func (n *Netlink) Wait() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for n.senders > 0 {
		n.idle.Wait()
	}
}

// IsBound implements Binder: it lists b's interface's addresses. A missing
// interface holds nothing.
func (n *Netlink) IsBound(b Binding) (bool, error) {
	link, err := netlink.LinkByName(b.Interface)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return false, nil
		}
		return false, fmt.Errorf("look up %s: %w", b.Interface, err)
	}
	family := netlink.FAMILY_V4
	if b.Prefix.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := netlink.AddrList(link, family)
	if err != nil {
		return false, fmt.Errorf("list addresses of %s: %w", b.Interface, err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		ones, _ := a.Mask.Size()
		if ok && ip.Unmap() == b.Prefix.Addr() && ones == b.Prefix.Bits() {
			return true, nil
		}
	}
	return false, nil
}

func (n *Netlink) add(b Binding) error {
	link, err := netlink.LinkByName(b.Interface)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return fmt.Errorf("bind %s to %s: %w: %w", b.Prefix, b.Interface, ErrLinkNotFound, err)
		}
		return fmt.Errorf("bind %s to %s: %w", b.Prefix, b.Interface, err)
	}
	err = netlink.AddrAdd(link, toAddr(b.Prefix))
	if errors.Is(err, unix.EEXIST) {
		return nil // already bound
	}
	if err != nil {
		return fmt.Errorf("bind %s to %s: %w", b.Prefix, b.Interface, err)
	}
	n.log.Info("vip bound", "address", b.Prefix.String(), "interface", b.Interface)
	if b.Prefix.Addr().Is4() && !b.Quiet {
		n.announce(b, link.Attrs())
	}
	return nil
}

func (n *Netlink) remove(b Binding) error {
	n.stopAnnouncing(b)
	link, err := netlink.LinkByName(b.Interface)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil // no interface, no address on it
		}
		return fmt.Errorf("unbind %s from %s: %w", b.Prefix, b.Interface, err)
	}
	err = netlink.AddrDel(link, toAddr(b.Prefix))
	if errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENOENT) {
		return nil // not bound
	}
	if err != nil {
		return fmt.Errorf("unbind %s from %s: %w", b.Prefix, b.Interface, err)
	}
	n.log.Info("vip unbound", "address", b.Prefix.String(), "interface", b.Interface)
	return nil
}

// toAddr is the netlink form of p: no label, universe scope, broadcast
// computed by the netlink package for IPv4 prefixes up to /30, and no
// duplicate address detection for IPv6.
func toAddr(p netip.Prefix) *netlink.Addr {
	a := p.Addr()
	addr := &netlink.Addr{IPNet: &net.IPNet{
		IP:   a.AsSlice(),
		Mask: net.CIDRMask(p.Bits(), a.BitLen()),
	}}
	if a.Is6() {
		addr.Flags = unix.IFA_F_NODAD
	}
	return addr
}
