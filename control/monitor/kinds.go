package monitor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/control/script"
)

// Pinger sends one ICMP echo request and waits for its reply until ctx is
// done; *ping.Pinger from dataplane/ping is one.
type Pinger interface {
	Ping(ctx context.Context, addr netip.Addr) (time.Duration, error)
}

// NewIP returns the IP monitor's Checker: it pings every address at once
// and is healthy as soon as any of them answers within ctx. When none
// does, the Result is an Error with CodeTimeout whose message lists every
// address with the reason it failed.
func NewIP(p Pinger, addrs []netip.Addr) Checker {
	return &ipChecker{p: p, addrs: append([]netip.Addr(nil), addrs...)}
}

type ipChecker struct {
	p     Pinger
	addrs []netip.Addr
}

func (c *ipChecker) Check(ctx context.Context) Result {
	if len(c.addrs) == 0 {
		return Result{Status: Error, Code: CodeInternal, Message: "Internal error. No address to ping."}
	}
	if c.p == nil {
		return Result{Status: Error, Code: CodeInternal, Message: "Internal error. No pinger."}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the other pings once one answered

	type answer struct {
		i   int
		rtt time.Duration
		err error
	}
	answers := make(chan answer, len(c.addrs)) // buffered: no goroutine waits on us
	for i, a := range c.addrs {
		go func() {
			rtt, err := c.p.Ping(ctx, a)
			answers <- answer{i, rtt, err}
		}()
	}
	reasons := make([]string, len(c.addrs))
	for range c.addrs {
		a := <-answers
		if a.err == nil {
			return Result{Status: OK, Message: fmt.Sprintf("%s answered in %s.", c.addrs[a.i], a.rtt.Round(time.Microsecond))}
		}
		reasons[a.i] = pingReason(c.addrs[a.i], a.err)
	}
	var b strings.Builder
	b.WriteString("Timeout occurred. No echo reply from ")
	for i, a := range c.addrs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (%s)", a, reasons[i])
	}
	b.WriteString(".")
	return Result{Status: Error, Code: CodeTimeout, Message: b.String()}
}

// pingReason shortens a Ping error for a message that already names addr.
func pingReason(addr netip.Addr, err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return strings.TrimPrefix(err.Error(), "ping "+addr.String()+": ")
}

// NewTCP returns the TCP monitor's Checker: it connects to address
// ("host:port") within ctx's deadline, then closes the connection. A
// timeout is an Error with CodeTimeout, any other failure (connection
// refused) one with CodeFailed.
func NewTCP(address string) Checker { return tcpChecker{address: address} }

type tcpChecker struct{ address string }

func (c tcpChecker) Check(ctx context.Context) Result {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.address)
	if err == nil {
		conn.Close()
		return Result{Status: OK, Message: fmt.Sprintf("Connected to %s.", c.address)}
	}
	var ne net.Error
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return Result{Status: Error, Code: CodeTimeout, Message: fmt.Sprintf("Timeout occurred. %v", err)}
	}
	return Result{Status: Error, Code: CodeFailed, Message: err.Error()}
}

// NewExec returns the exec monitor's Checker: it runs spec through r.
// Exit code 0 is OK; another exit code is an Error with that code and the
// last line of output; a timeout is an Error with CodeTimeout; a script
// that cannot start or dies by a signal is an Error with CodeInternal.
func NewExec(r script.Runner, spec script.Spec) Checker { return execChecker{r: r, spec: spec} }

type execChecker struct {
	r    script.Runner
	spec script.Spec
}

func (c execChecker) Check(ctx context.Context) Result {
	if c.r == nil {
		return Result{Status: Error, Code: CodeInternal, Message: "Internal error. No script runner."}
	}
	res, err := c.r.Run(ctx, c.spec)
	switch {
	case err == nil:
		return Result{Status: OK, Message: script.LastLine(res.Output)}
	case errors.Is(err, script.ErrTimeout) || errors.Is(err, context.DeadlineExceeded):
		return Result{Status: Error, Code: CodeTimeout, Message: fmt.Sprintf("Timeout occurred. %v", err)}
	case errors.Is(err, script.ErrExit) && res.ExitCode > 0:
		msg := fmt.Sprintf("%s exited with code %d.", c.spec.Path, res.ExitCode)
		if line := script.LastLine(res.Output); line != "" {
			msg += " " + line
		}
		return Result{Status: Error, Code: res.ExitCode, Message: msg}
	}
	return Result{Status: Error, Code: CodeInternal, Message: fmt.Sprintf("Internal error. %v", err)}
}
