package bpftest

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/netnstest"
)

// TestDropAllAndXDPPass checks that DropAll cuts traffic both ways and
// that closing it restores the link, with XDPPass attached on the
// receiving end meanwhile.
func TestDropAllAndXDPPass(t *testing.T) {
	RequireTCX(t)
	a := netnstest.New(t, "drop-a")
	b := netnstest.New(t, "drop-b")
	netnstest.Veth(t, a, "va", netip.MustParsePrefix("198.18.22.1/24"), b, "vb", netip.MustParsePrefix("198.18.22.2/24"))
	var recv, sendConn *net.UDPConn
	b.Do(t, func() error {
		var err error
		recv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("198.18.22.2"), Port: 9999})
		return err
	})
	defer recv.Close()
	a.Do(t, func() error {
		var err error
		sendConn, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP("198.18.22.2"), Port: 9999})
		return err
	})
	defer sendConn.Close()
	b.Do(t, func() error {
		c, err := XDPPass("vb")
		if err != nil {
			return err
		}
		t.Cleanup(func() { c.Close() })
		return nil
	})

	// arrives reports whether a datagram sent now arrives within d.
	arrives := func(d time.Duration) bool {
		if _, err := sendConn.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		recv.SetReadDeadline(time.Now().Add(d))
		_, err := recv.Read(make([]byte, 16))
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		return true
	}
	if !arrives(5 * time.Second) {
		t.Fatal("nothing arrives before DropAll")
	}
	var drop interface{ Close() error }
	a.Do(t, func() error {
		var err error
		drop, err = DropAll("va")
		return err
	})
	if arrives(300 * time.Millisecond) {
		t.Fatal("a datagram crossed a link DropAll cut")
	}
	if err := drop.Close(); err != nil {
		t.Fatal(err)
	}
	if err := drop.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if !arrives(5 * time.Second) {
		t.Fatal("nothing arrives after DropAll was closed")
	}
}
