package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/vigil-ha/vigil/control/config"
	"github.com/vigil-ha/vigil/dataplane/heartbeat"
	"github.com/vigil-ha/vigil/dataplane/xdpheartbeat"
)

// fastPath adapts the XDP fast path to the heartbeat engine.
type fastPath struct {
	*xdpheartbeat.Fastpath
}

// ReadProbe implements heartbeat.FastPath.
func (f fastPath) ReadProbe(buf []byte) (int, netip.AddrPort, uint8, error) {
	p, err := f.Fastpath.ReadProbe(buf)
	return p.N, p.Src, p.Lane, err
}

var _ heartbeat.FastPath = fastPath{}

// loadFastPath loads the kernel heartbeat on every lane's interface as the
// configuration's heartbeat mode asks: "userspace" loads nothing, "ebpf"
// fails without it, "auto" falls back to userspace and says why. It returns
// the fast path (nil in userspace) and the mode status shows.
func loadFastPath(cfg *config.Config, self uint8, incarnation uint64, log *slog.Logger) (*xdpheartbeat.Fastpath, string, error) {
	mode := cfg.Cluster.Heartbeat.Mode
	if mode == config.HeartbeatUserspace {
		return nil, "userspace", nil
	}
	fp, err := tryFastPath(cfg, self, incarnation)
	if err == nil {
		shown := "ebpf (xdp " + fp.Mode() + ")"
		log.Info("heartbeat answered in the kernel", "xdp_mode", fp.Mode())
		return fp, shown, nil
	}
	if mode == config.HeartbeatEBPF {
		return nil, "", fmt.Errorf("heartbeat mode ebpf: %w", err)
	}
	log.Warn("eBPF heartbeat unavailable: serving heartbeats from userspace, a stalled daemon cannot be told from a dead one", "err", err)
	return nil, "userspace (fallback: " + err.Error() + ")", nil
}

func tryFastPath(cfg *config.Config, self uint8, incarnation uint64) (*xdpheartbeat.Fastpath, error) {
	ifaces := map[uint8]string{}
	var names []string
	var members []xdpheartbeat.Member
	me := cfg.Servers[self]
	for li, l := range cfg.Lanes {
		local, err := netip.ParseAddr(me.Interconnects[l.Name])
		if err != nil {
			return nil, fmt.Errorf("lane %s: %w", l.Name, err)
		}
		if !local.Is4() {
			return nil, fmt.Errorf("lane %s: the kernel heartbeat speaks IPv4 only", l.Name)
		}
		name, err := interfaceOf(local)
		if err != nil {
			return nil, fmt.Errorf("lane %s: %w", l.Name, err)
		}
		ifaces[uint8(li)] = name
		names = append(names, name)
		for si, s := range cfg.Servers {
			if uint8(si) == self {
				continue
			}
			a, err := netip.ParseAddr(s.Interconnects[l.Name])
			if err != nil {
				return nil, fmt.Errorf("lane %s address of %s: %w", l.Name, s.Name, err)
			}
			members = append(members, xdpheartbeat.Member{Addr: a, Server: uint8(si), Lane: uint8(li)})
		}
	}
	if err := xdpheartbeat.CleanUp(names); err != nil {
		return nil, fmt.Errorf("remove stale attachments: %w", err)
	}
	xc := xdpheartbeat.Config{
		Key: cfg.Key, Self: self, Incarnation: incarnation, Port: uint16(cfg.Cluster.Heartbeat.Port),
		Interfaces: ifaces, Members: members,
	}
	copy(xc.ConfigHash[:], cfg.Hash[:16])
	return xdpheartbeat.Load(xc)
}

// interfaceOf returns the name of the interface holding addr.
func interfaceOf(addr netip.Addr) (string, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return "", fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
			link, err := netlink.LinkByIndex(a.LinkIndex)
			if err != nil {
				return "", fmt.Errorf("interface of %s: %w", addr, err)
			}
			return link.Attrs().Name, nil
		}
	}
	return "", errors.New("no interface holds " + addr.String() + " yet")
}

// clockEvery keeps the fast path's realtime offset in step with the wall
// clock (NTP slews it) once a minute.
const clockEvery = time.Minute
