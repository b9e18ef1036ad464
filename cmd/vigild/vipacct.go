package main

import (
	"log/slog"
	"net/netip"
	"sync"

	"github.com/vigil-ha/vigil/control/api"
	"github.com/vigil-ha/vigil/dataplane/vip"
	"github.com/vigil-ha/vigil/dataplane/vipacct"
	"github.com/vigil-ha/vigil/metrics"
)

// vipAccounting counts, in the kernel, the traffic to this node's IPv4 VIPs
// on their interfaces, and when the first packet arrived after each was
// bound here.
type vipAccounting struct {
	binder   vip.Binder
	bindings []vip.Binding
	byIface  map[string]*vipacct.Accounting

	mu    sync.Mutex
	armed map[vip.Binding]bool
}

// startVIPAccounting attaches the accounting program to the interfaces of
// the IPv4 bindings. Where it cannot, it logs why once and counts nothing
// there; it never stops the daemon.
func startVIPAccounting(bindings []vip.Binding, binder vip.Binder, log *slog.Logger) *vipAccounting {
	a := &vipAccounting{binder: binder, byIface: map[string]*vipacct.Accounting{}, armed: map[vip.Binding]bool{}}
	perIface := map[string][]netip.Addr{}
	for _, b := range bindings {
		if b.Prefix.Addr().Is4() {
			a.bindings = append(a.bindings, b)
			perIface[b.Interface] = append(perIface[b.Interface], b.Prefix.Addr())
		}
	}
	for iface, vips := range perIface {
		acc, err := vipacct.Attach(iface)
		if err == nil {
			err = acc.Set(vips)
			if err != nil {
				acc.Close()
			}
		}
		if err != nil {
			log.Warn("VIP traffic accounting unavailable", "interface", iface, "err", err)
			continue
		}
		a.byIface[iface] = acc
	}
	return a
}

// arm marks b as just bound here: its first packet from now on is timed.
func (a *vipAccounting) arm(b vip.Binding) {
	acc := a.byIface[b.Interface]
	if acc == nil || !b.Prefix.Addr().Is4() {
		return
	}
	if acc.Arm(b.Prefix.Addr()) == nil {
		a.mu.Lock()
		a.armed[b] = true
		a.mu.Unlock()
	}
}

// traffic reports every accounted VIP for status.
func (a *vipAccounting) traffic() []api.VIPTraffic {
	var out []api.VIPTraffic
	perIface := map[string]map[netip.Addr]vipacct.VIPStats{}
	for iface, acc := range a.byIface {
		if stats, err := acc.Stats(); err == nil {
			perIface[iface] = stats
		}
	}
	for _, b := range a.bindings {
		stats, ok := perIface[b.Interface]
		if !ok {
			continue
		}
		st := stats[b.Prefix.Addr()]
		t := api.VIPTraffic{Address: b.Prefix.Addr().String(), Interface: b.Interface, Packets: st.Packets, Bytes: st.Bytes}
		t.Bound, _ = a.binder.IsBound(b)
		a.mu.Lock()
		armed := a.armed[b]
		a.mu.Unlock()
		if armed && st.FirstPacket > 0 && st.ArmedAt > 0 && st.FirstPacket >= st.ArmedAt {
			d := st.FirstPacket - st.ArmedAt
			t.FirstPacketAfter = &d
		}
		out = append(out, t)
	}
	return out
}

// samples reports every accounted VIP for metrics.
func (a *vipAccounting) samples() []metrics.VIPSample {
	var out []metrics.VIPSample
	for _, t := range a.traffic() {
		s := metrics.VIPSample{Address: t.Address, Interface: t.Interface, Packets: t.Packets, Bytes: t.Bytes, FirstPacketAfter: -1}
		if t.FirstPacketAfter != nil {
			s.FirstPacketAfter = *t.FirstPacketAfter
		}
		out = append(out, s)
	}
	return out
}

func (a *vipAccounting) close() {
	for _, acc := range a.byIface {
		acc.Close()
	}
}
