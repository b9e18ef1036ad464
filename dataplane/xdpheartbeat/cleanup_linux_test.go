package xdpheartbeat

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/internal/bpftest"
	"github.com/vigil-ha/vigil/internal/netnstest"
)

// TestCleanUp leaves what a crashed daemon would (vigil_ programs attached
// through netlink, in generic and native mode, and pins) beside what it
// must not touch (another program, and a live daemon's bpf_link), and
// checks that CleanUp removes exactly the former.
func TestCleanUp(t *testing.T) {
	ns := netnstest.New(t, "hb-cleanup")

	// A bpffs of our own stands in for /sys/fs/bpf.
	fs := t.TempDir()
	if err := unix.Mount("bpf", fs, "bpf", 0, ""); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(fs, unix.MNT_DETACH) })
	old := pinDir
	pinDir = filepath.Join(fs, "vigil")
	t.Cleanup(func() { pinDir = old })

	ns.Do(t, func() error {
		for _, name := range []string{"c0", "c1", "c2", "c3"} {
			if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}); err != nil {
				return fmt.Errorf("add %s: %w", name, err)
			}
			l, _ := netlink.LinkByName(name)
			if err := netlink.LinkSetUp(l); err != nil {
				return err
			}
		}

		// The crashed daemon's programs.
		spec, err := loadHeartbeat()
		if err != nil {
			return err
		}
		var objs heartbeatObjects
		if err := spec.LoadAndAssign(&objs, nil); err != nil {
			return err
		}
		defer objs.Close()
		pass, err := bpftest.XDPPassProgram()
		if err != nil {
			return err
		}
		defer pass.Close()
		for _, a := range []struct {
			iface string
			prog  *ebpf.Program
			flags int
		}{
			{"c0", objs.VigilHbXdp, unix.XDP_FLAGS_SKB_MODE},
			{"c1", objs.VigilHbXdp, unix.XDP_FLAGS_DRV_MODE},
			{"c2", pass, unix.XDP_FLAGS_SKB_MODE},
		} {
			l, err := netlink.LinkByName(a.iface)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetXdpFdWithFlags(l, a.prog.FD(), a.flags); err != nil {
				return fmt.Errorf("legacy attach to %s: %w", a.iface, err)
			}
		}
		if err := os.MkdirAll(pinDir, 0o700); err != nil {
			return err
		}
		if err := objs.HbCounters.Pin(filepath.Join(pinDir, "hb_counters")); err != nil {
			return fmt.Errorf("pin: %w", err)
		}

		// A live daemon's fast path, through a bpf_link.
		cfg := configB("c3")
		live, err := Load(cfg)
		if err != nil {
			return err
		}
		defer live.Close()

		if err := CleanUp([]string{"c0", "c1", "c2", "c3", "nosuch0"}); err != nil {
			return fmt.Errorf("CleanUp: %w", err)
		}
		for iface, want := range map[string]string{"c0": "", "c1": "", "c2": "bpftest_pass", "c3": ProgramName} {
			if got := attachedName(t, iface); got != want {
				t.Errorf("%s: XDP program %q after CleanUp, want %q", iface, got, want)
			}
		}
		if _, err := os.Stat(pinDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after CleanUp: %v, want it gone", pinDir, err)
		}
		// Nothing left: a second run does nothing.
		if err := CleanUp([]string{"c0", "c1", "c2", "c3", "nosuch0"}); err != nil {
			return fmt.Errorf("second CleanUp: %w", err)
		}
		return nil
	})
}

// attachedName returns the name of the XDP program on iface, "" if none.
func attachedName(t *testing.T, iface string) string {
	t.Helper()
	l, err := netlink.LinkByName(iface)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := xdpProgIDs(l.Attrs().Index)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
		if err != nil {
			t.Fatal(err)
		}
		info, err := p.Info()
		p.Close()
		if err != nil {
			t.Fatal(err)
		}
		return info.Name
	}
	return ""
}
