package monitor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/control/script"
)

// fakePinger answers per address: an error, a round-trip time, or (for
// addresses in neither map) nothing until ctx is done.
type fakePinger struct {
	rtt      map[netip.Addr]time.Duration
	errs     map[netip.Addr]error
	canceled atomic.Int32
}

func (p *fakePinger) Ping(ctx context.Context, addr netip.Addr) (time.Duration, error) {
	if err, ok := p.errs[addr]; ok {
		return 0, err
	}
	if rtt, ok := p.rtt[addr]; ok {
		return rtt, nil
	}
	<-ctx.Done()
	p.canceled.Add(1)
	return 0, fmt.Errorf("ping %s: no echo reply after 1s: %w", addr, ctx.Err())
}

var (
	nat1 = netip.MustParseAddr("198.18.3.1")
	nat2 = netip.MustParseAddr("198.18.4.1")
)

func TestIPAnyAnswers(t *testing.T) {
	p := &fakePinger{
		rtt:  map[netip.Addr]time.Duration{nat2: 1500 * time.Microsecond},
		errs: map[netip.Addr]error{},
	}
	// nat1 never answers; nat2 does: healthy, without waiting for nat1.
	c := NewIP(p, []netip.Addr{nat1, nat2})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	res := c.Check(ctx)
	if res.Status != OK || res.Message != "198.18.4.1 answered in 1.5ms." {
		t.Errorf("Check = %+v", res)
	}
	// The ping of nat1 was canceled rather than left running.
	deadline := time.Now().Add(waitTimeout)
	for p.canceled.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if p.canceled.Load() != 1 {
		t.Error("the ping still running after an answer was not canceled")
	}
}

func TestIPNoneAnswers(t *testing.T) {
	p := &fakePinger{errs: map[netip.Addr]error{
		nat2: fmt.Errorf("ping %s: %w", nat2, errors.New("host unreachable (reported by 198.18.4.254)")),
	}}
	c := NewIP(p, []netip.Addr{nat1, nat2})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	res := c.Check(ctx)
	want := Result{Status: Error, Code: CodeTimeout,
		Message: "Timeout occurred. No echo reply from 198.18.3.1 (timeout), 198.18.4.1 (host unreachable (reported by 198.18.4.254))."}
	if res != want {
		t.Errorf("Check =\n%+v, want\n%+v", res, want)
	}
}

func TestIPNoTargets(t *testing.T) {
	res := NewIP(&fakePinger{}, nil).Check(context.Background())
	if res.Status != Error || res.Code != CodeInternal {
		t.Errorf("Check = %+v", res)
	}
	res = NewIP(nil, []netip.Addr{nat1}).Check(context.Background())
	if res.Status != Error || res.Code != CodeInternal {
		t.Errorf("Check with no pinger = %+v", res)
	}
}

func TestTCPOpenPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	res := NewTCP(ln.Addr().String()).Check(ctx)
	if res.Status != OK || res.Message != "Connected to "+ln.Addr().String()+"." {
		t.Errorf("Check = %+v", res)
	}
	<-accepted
}

func TestTCPClosedPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens there now
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	res := NewTCP(addr).Check(ctx)
	if res.Status != Error || res.Code != CodeFailed || !strings.Contains(res.Message, "connection refused") {
		t.Errorf("Check = %+v", res)
	}
}

func TestTCPTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// A deadline already past: the dial gives up before sending anything.
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	res := NewTCP(ln.Addr().String()).Check(ctx)
	if res.Status != Error || res.Code != CodeTimeout || !strings.HasPrefix(res.Message, "Timeout occurred. ") {
		t.Errorf("Check = %+v", res)
	}
}

func TestExecFake(t *testing.T) {
	spec := script.Spec{Path: "/opt/app/check.sh", Args: []string{"--quick"}}
	for _, tc := range []struct {
		name string
		fn   func(context.Context, script.Spec) (script.Result, error)
		want Result
	}{
		{"exit 0", func(context.Context, script.Spec) (script.Result, error) {
			return script.Result{Output: "all good\n"}, nil
		}, Result{Status: OK, Message: "all good"}},
		{"exit 3", func(context.Context, script.Spec) (script.Result, error) {
			return script.Result{ExitCode: 3, Output: "starting\ndatabase down\n"}, nil
		}, Result{Status: Error, Code: 3, Message: "/opt/app/check.sh exited with code 3. database down"}},
		{"exit 2 silent", func(context.Context, script.Spec) (script.Result, error) {
			return script.Result{ExitCode: 2}, nil
		}, Result{Status: Error, Code: 2, Message: "/opt/app/check.sh exited with code 2."}},
		{"timeout", func(context.Context, script.Spec) (script.Result, error) {
			return script.Result{ExitCode: -1}, fmt.Errorf("run /opt/app/check.sh: %w after 5s, process group killed", script.ErrTimeout)
		}, Result{Status: Error, Code: CodeTimeout, Message: "Timeout occurred. run /opt/app/check.sh: timed out after 5s, process group killed"}},
		{"not startable", func(context.Context, script.Spec) (script.Result, error) {
			return script.Result{ExitCode: -1}, errors.New("run /opt/app/check.sh: fork/exec /opt/app/check.sh: no such file or directory")
		}, Result{Status: Error, Code: CodeInternal, Message: "Internal error. run /opt/app/check.sh: fork/exec /opt/app/check.sh: no such file or directory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &script.Fake{Func: tc.fn}
			if got := NewExec(f, spec).Check(context.Background()); got != tc.want {
				t.Errorf("Check =\n%+v, want\n%+v", got, tc.want)
			}
			if calls := f.Calls(); len(calls) != 1 || calls[0].Path != spec.Path || calls[0].Args[0] != "--quick" {
				t.Errorf("calls %+v", calls)
			}
		})
	}
	if res := NewExec(nil, spec).Check(context.Background()); res.Code != CodeInternal {
		t.Errorf("no runner: %+v", res)
	}
}

func TestExecReal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ok := NewExec(script.Exec{}, script.Spec{Path: "/bin/sh", Args: []string{"-c", "echo healthy"}})
	if res := ok.Check(ctx); res != (Result{Status: OK, Message: "healthy"}) {
		t.Errorf("exit 0: %+v", res)
	}
	bad := NewExec(script.Exec{}, script.Spec{Path: "/bin/sh", Args: []string{"-c", "echo no listener >&2; exit 4"}})
	if res := bad.Check(ctx); res != (Result{Status: Error, Code: 4, Message: "/bin/sh exited with code 4. no listener"}) {
		t.Errorf("exit 4: %+v", res)
	}
	// The Runner's timeout reaches the script through ctx.
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	slow := NewExec(script.Exec{}, script.Spec{Path: "/bin/sh", Args: []string{"-c", "sleep 100"}})
	if res := slow.Check(short); res.Code != CodeTimeout || res.Status != Error {
		t.Errorf("timeout: %+v", res)
	}
}

func TestIPMonitorThroughRunner(t *testing.T) {
	p := &fakePinger{rtt: map[netip.Addr]time.Duration{}, errs: map[netip.Addr]error{}}
	r := NewRunner(Options{Name: "ipw1", Checker: NewIP(p, []netip.Addr{nat1}),
		Interval: time.Millisecond, Timeout: 5 * time.Millisecond, Retry: 1})
	start(t, r)
	s := waitState(t, r, "error", isError)
	if s.Code != CodeTimeout || s.Message != "Timeout occurred. No echo reply from 198.18.3.1 (timeout)." {
		t.Errorf("state %+v", s)
	}
}
