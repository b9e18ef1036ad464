//go:build linux

package monitor

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/dataplane/ping"
	"github.com/vigil-ha/vigil/internal/netnstest"
)

var _ Pinger = (*ping.Pinger)(nil)

// TestIPWithRealPinger pings, from namespace a, a peer in namespace b and
// an address nobody holds.
func TestIPWithRealPinger(t *testing.T) {
	a := netnstest.New(t, "ipw-a")
	b := netnstest.New(t, "ipw-b")
	netnstest.Veth(t, a, "wa", netip.MustParsePrefix("198.18.5.1/24"), b, "wb", netip.MustParsePrefix("198.18.5.2/24"))
	var p *ping.Pinger
	a.Do(t, func() error {
		var err error
		p, err = ping.New()
		return err
	})
	defer p.Close()
	peer, nobody := netip.MustParseAddr("198.18.5.2"), netip.MustParseAddr("198.18.5.99")

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if res := NewIP(p, []netip.Addr{nobody, peer}).Check(ctx); res.Status != OK || !strings.HasPrefix(res.Message, "198.18.5.2 answered in ") {
		t.Errorf("any-of with a live peer: %+v", res)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	if res := NewIP(p, []netip.Addr{nobody}).Check(short); res.Status != Error || res.Code != CodeTimeout ||
		res.Message != "Timeout occurred. No echo reply from 198.18.5.99 (timeout)." {
		t.Errorf("nobody: %+v", res)
	}
}
