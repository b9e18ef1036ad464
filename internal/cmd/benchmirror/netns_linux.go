package main

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The link: namespace a holds the primary, namespace b the secondary, one
// veth pair between them.
const (
	addrA   = "198.18.0.1"
	addrB   = "198.18.0.2"
	linkPfx = 30
	vethA   = "vbm-a"
	vethB   = "vbm-b"
)

// netNS is an anonymous network namespace with one OS thread inside it
// that runs jobs, so that sockets those jobs open live in the namespace
// (a socket keeps the namespace it was created in, whichever thread uses
// it later). No name is bound under /run/netns: the namespace goes away
// with its last thread, socket and descriptor, so even a killed benchmark
// leaves none behind.
type netNS struct {
	name string
	fd   int // the namespace, for moving a veth end into it
	jobs chan func()
	once sync.Once
}

// newNetNS starts a thread in a fresh network namespace with its loopback
// up.
func newNetNS(name string) (*netNS, error) {
	ns := &netNS{name: name, fd: -1, jobs: make(chan func())}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread ends with this goroutine instead of
		// going back to the scheduler in the wrong namespace.
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("netns %s: unshare: %w", name, err)
			return
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("netns %s: open: %w", name, err)
			return
		}
		ns.fd = fd
		if err := linkUp("lo"); err != nil {
			unix.Close(fd)
			errc <- fmt.Errorf("netns %s: %w", name, err)
			return
		}
		errc <- nil
		for job := range ns.jobs {
			job()
		}
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return ns, nil
}

// do runs fn on the namespace's thread and returns its error.
func (ns *netNS) do(fn func() error) error {
	errc := make(chan error, 1)
	ns.jobs <- func() { errc <- fn() }
	return <-errc
}

// listen opens a TCP listener on addr:0 inside the namespace.
func (ns *netNS) listen(addr string) (net.Listener, error) {
	var ln net.Listener
	err := ns.do(func() (err error) {
		ln, err = net.Listen("tcp4", net.JoinHostPort(addr, "0"))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen in %s: %w", ns.name, err)
	}
	return ln, nil
}

// dial connects to addr from inside the namespace.
func (ns *netNS) dial(addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.do(func() (err error) {
		c, err = net.DialTimeout("tcp4", addr, dialTimeout)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s from %s: %w", addr, ns.name, err)
	}
	return c, nil
}

// close ends the namespace's thread and closes its descriptor; the
// namespace disappears once its sockets are closed too.
func (ns *netNS) close() {
	ns.once.Do(func() {
		close(ns.jobs)
		if ns.fd >= 0 {
			unix.Close(ns.fd)
		}
	})
}

// linkUp brings up the named interface of the calling thread's namespace.
func linkUp(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("%s up: %w", name, err)
	}
	return nil
}

// addrUp gives the named interface of the calling thread's namespace the
// address addr/linkPfx and brings it up.
func addrUp(name, addr string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	a, err := netlink.ParseAddr(fmt.Sprintf("%s/%d", addr, linkPfx))
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(l, a); err != nil {
		return fmt.Errorf("%s: add %s: %w", name, a, err)
	}
	return linkUp(name)
}

// topology is the two namespaces and the veth between them.
type topology struct {
	a, b *netNS
	mtu  int
}

// newTopology makes namespaces a and b and joins them with a veth pair,
// 198.18.0.1/30 in a and 198.18.0.2/30 in b.
func newTopology() (*topology, error) {
	a, err := newNetNS("a")
	if err != nil {
		return nil, err
	}
	b, err := newNetNS("b")
	if err != nil {
		a.close()
		return nil, err
	}
	t := &topology{a: a, b: b}
	err = a.do(func() error {
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: vethA},
			PeerName:      vethB,
			PeerNamespace: netlink.NsFd(b.fd),
		}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("veth %s-%s: add: %w", vethA, vethB, err)
		}
		if err := addrUp(vethA, addrA); err != nil {
			return err
		}
		l, err := netlink.LinkByName(vethA)
		if err != nil {
			return err
		}
		t.mtu = l.Attrs().MTU
		return nil
	})
	if err == nil {
		err = b.do(func() error { return addrUp(vethB, addrB) })
	}
	if err != nil {
		t.close()
		return nil, fmt.Errorf("topology: %w", err)
	}
	return t, nil
}

// close ends both namespaces.
func (t *topology) close() {
	if t == nil {
		return
	}
	t.a.close()
	t.b.close()
}

// errTimeout reports a peer that did not answer in time.
var errTimeout = errors.New("timed out")
