package np

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/control/config"
)

type fakePinger map[netip.Addr]bool

func (f fakePinger) Ping(ctx context.Context, a netip.Addr) (time.Duration, error) {
	if f[a] {
		return time.Millisecond, nil
	}
	<-ctx.Done()
	return 0, errors.New("timeout")
}

func TestAnyTargetAnswering(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := &Targets{
		Targets: []config.NPTarget{{Ping: "198.18.9.9"}, {TCP: ln.Addr().String()}},
		Pinger:  fakePinger{},
		Timeout: 2 * time.Second,
	}
	r := c.Check(context.Background())
	if !r.Reachable || !strings.Contains(r.Detail, "tcp "+ln.Addr().String()) {
		t.Fatalf("Check = %+v, want reachable through the listener", r)
	}
}

func TestNoTargetAnswering(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	c := &Targets{
		Targets: []config.NPTarget{{Ping: "198.18.9.9"}, {TCP: closed}},
		Pinger:  fakePinger{},
		Timeout: 100 * time.Millisecond,
	}
	r := c.Check(context.Background())
	if r.Reachable {
		t.Fatalf("Check = %+v, want unreachable", r)
	}
	for _, want := range []string{"ping 198.18.9.9", "tcp " + closed} {
		if !strings.Contains(r.Detail, want) {
			t.Errorf("detail %q lacks %q", r.Detail, want)
		}
	}
}

func TestPingAnswer(t *testing.T) {
	a := netip.MustParseAddr("198.18.2.1")
	c := &Targets{Targets: []config.NPTarget{{Ping: a.String()}}, Pinger: fakePinger{a: true}, Timeout: time.Second}
	if r := c.Check(context.Background()); !r.Reachable {
		t.Fatalf("Check = %+v", r)
	}
}

func TestNoTargetsMeansReachable(t *testing.T) {
	if r := (&Targets{}).Check(context.Background()); !r.Reachable {
		t.Fatalf("Check = %+v", r)
	}
}
