//go:build linux

package netnstest

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

func TestNewDoAndCleanUp(t *testing.T) {
	var path string
	t.Run("inner", func(t *testing.T) {
		ns := New(t, t.Name())
		path = ns.Path()
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("namespace file: %v", err)
		}
		if !strings.HasPrefix(ns.Name(), "vt-TestNewDoAndCleanUp-inn") {
			t.Errorf("Name() = %q, want the test's name in it", ns.Name())
		}
		ns.Do(t, func() error {
			links, err := netlink.LinkList()
			if err != nil {
				return err
			}
			if len(links) != 1 || links[0].Attrs().Name != "lo" {
				t.Errorf("a fresh namespace should hold only lo, got %d links", len(links))
			}
			if links[0].Attrs().Flags&net.FlagUp == 0 {
				t.Errorf("lo is not up")
			}
			return nil
		})
		if err := ns.Run(func() error { return errors.New("boom") }); err == nil || err.Error() != "boom" {
			t.Errorf("Run error = %v, want boom", err)
		}
	})
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace file %s still there after the test: %v", path, err)
	}
}

func TestVethAndIPNetnsExec(t *testing.T) {
	a := New(t, "a")
	b := New(t, "b")
	aAddr := netip.MustParsePrefix("198.18.7.1/24")
	bAddr := netip.MustParsePrefix("198.18.7.2/24")
	Veth(t, a, "va", aAddr, b, "vb", bAddr)

	// A UDP datagram from a to b crosses the pair.
	var conn *net.UDPConn
	b.Do(t, func() error {
		var err error
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("198.18.7.2"), Port: 0})
		return err
	})
	defer conn.Close()
	port := conn.LocalAddr().(*net.UDPAddr).Port
	a.Do(t, func() error {
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP("198.18.7.2"), Port: port})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("hello"))
		return err
	})
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	n, from, err := conn.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("read in b: %v", err)
	}
	if string(buf[:n]) != "hello" || !from.IP.Equal(net.ParseIP("198.18.7.1")) {
		t.Errorf("got %q from %v, want hello from 198.18.7.1", buf[:n], from)
	}

	// iproute2 sees the namespace by its name.
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("iproute2 needed for this test: %v", err)
	}
	out, err := exec.Command("ip", "netns", "exec", a.Name(), "ip", "-o", "-4", "addr", "show", "dev", "va").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns exec: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "198.18.7.1/24") {
		t.Errorf("ip netns exec %s ip addr: %s, want 198.18.7.1/24", a.Name(), out)
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"TestX/sub_case.1":                     "TestX-sub-case-1",
		"":                                     "ns",
		"äöü":                                  "ns",
		"a-very-long-name-that-goes-on-and-on": "a-very-long-name-that-go",
	} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}
