//go:build !linux

package heartbeat

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// listen binds a plain UDP socket on addr. Only Linux sets SO_REUSEADDR and
// IP_FREEBIND; other systems are for development, and their lanes need
// their addresses up before Run.
func listen(ctx context.Context, addr netip.AddrPort) (*net.UDPConn, error) {
	network := "udp4"
	if addr.Addr().Is6() {
		network = "udp6"
	}
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, network, addr.String())
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// readRefused is Linux only.
func readRefused(*net.UDPConn) (netip.Addr, bool) { return netip.Addr{}, false }

// monoNow is Linux only.
func monoNow() time.Duration { return 0 }
