package xdpheartbeat

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// PinDir is where a Vigil daemon would pin eBPF objects under bpffs. This
// package pins nothing; CleanUp removes whatever is there.
const PinDir = "/sys/fs/bpf/vigil"

// pinDir is PinDir, changed by tests.
var pinDir = PinDir

// stalePrefix names the programs CleanUp removes.
const stalePrefix = "vigil_"

// xdpModes are the XDP attach modes, each with the IFLA_XDP attribute that
// reports its program and the flag that detaches it.
var xdpModes = []struct {
	attr  uint16
	flags uint32
}{
	{unix.IFLA_XDP_SKB_PROG_ID, unix.XDP_FLAGS_SKB_MODE},
	{unix.IFLA_XDP_DRV_PROG_ID, unix.XDP_FLAGS_DRV_MODE},
	{unix.IFLA_XDP_HW_PROG_ID, unix.XDP_FLAGS_HW_MODE},
}

// CleanUp removes what a crashed predecessor may have left behind: XDP
// programs whose name starts with "vigil_" attached to one of ifaces
// through netlink (the legacy attach, which outlives its process), in any
// mode, and everything pinned under PinDir. Programs attached through a
// live bpf_link belong to a running process and are left alone, as are
// other programs. Interfaces that do not exist are skipped; with nothing to
// remove, CleanUp does nothing. It works in the calling thread's network
// namespace.
func CleanUp(ifaces []string) error {
	var errs []error
	for _, name := range ifaces {
		if err := cleanXDP(name); err != nil {
			errs = append(errs, fmt.Errorf("clean up %s: %w", name, err))
		}
	}
	if err := os.RemoveAll(pinDir); err != nil {
		errs = append(errs, fmt.Errorf("clean up pins: %w", err))
	}
	return errors.Join(errs...)
}

// cleanXDP detaches stale vigil_ programs from interface name.
func cleanXDP(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil
		}
		return err
	}
	ids, err := xdpProgIDs(l.Attrs().Index)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range xdpModes {
		id, ok := ids[m.attr]
		if !ok {
			continue
		}
		stale, err := isStale(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !stale {
			continue
		}
		err = netlink.LinkSetXdpFdWithFlags(l, -1, int(m.flags))
		// EBUSY: attached through a bpf_link, which a live process holds.
		if err != nil && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, fmt.Errorf("detach xdp program %d: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// isStale reports whether program id is one of ours.
func isStale(id uint32) (bool, error) {
	p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("open xdp program %d: %w", id, err)
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return false, fmt.Errorf("xdp program %d info: %w", id, err)
	}
	return strings.HasPrefix(info.Name, stalePrefix), nil
}

// xdpProgIDs returns the XDP program attached to interface index in each
// mode, keyed by the IFLA_XDP_*_PROG_ID attribute. The netlink package
// reports one program only, so the attributes are read here.
func xdpProgIDs(index int) (map[uint16]uint32, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return nil, fmt.Errorf("get link %d: %w", index, err)
	}
	ids := make(map[uint16]uint32)
	for _, m := range msgs {
		if len(m) < unix.SizeofIfInfomsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[unix.SizeofIfInfomsg:])
		if err != nil {
			return nil, fmt.Errorf("parse link %d: %w", index, err)
		}
		for _, a := range attrs {
			if a.Attr.Type&nl.NLA_TYPE_MASK != unix.IFLA_XDP {
				continue
			}
			nested, err := nl.ParseRouteAttr(a.Value)
			if err != nil {
				return nil, fmt.Errorf("parse link %d xdp: %w", index, err)
			}
			for _, x := range nested {
				for _, md := range xdpModes {
					if x.Attr.Type&nl.NLA_TYPE_MASK == md.attr && len(x.Value) >= 4 {
						if id := nl.NativeEndian().Uint32(x.Value); id != 0 {
							ids[md.attr] = id
						}
					}
				}
			}
		}
	}
	return ids, nil
}
