// Package np resolves network partitions: a node that loses its peers asks
// its acknowledgement devices (the guides' NAT instance by ping, or the
// regional endpoint's port 443) whether it is the one cut off.
package np

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/control/config"
)

// Pinger sends one ICMP echo and waits for its answer.
type Pinger interface {
	Ping(ctx context.Context, addr netip.Addr) (time.Duration, error)
}

// Result is the outcome of one check.
type Result struct {
	// Reachable is true when any target answered.
	Reachable bool
	// Detail says which target answered, or why none did.
	Detail string
}

// Checker checks the acknowledgement devices.
type Checker interface {
	Check(ctx context.Context) Result
}

// Targets is the real checker over a configuration's NP targets.
type Targets struct {
	Targets []config.NPTarget
	Pinger  Pinger
	Timeout time.Duration
}

// Check asks every target at once and returns as soon as one answers.
func (t *Targets) Check(ctx context.Context) Result {
	if len(t.Targets) == 0 {
		return Result{Reachable: true, Detail: "no NP targets configured"}
	}
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	type answer struct {
		ok     bool
		detail string
	}
	answers := make(chan answer, len(t.Targets))
	for _, tg := range t.Targets {
		go func() {
			start := time.Now()
			err := t.one(ctx, tg)
			if err != nil {
				answers <- answer{detail: err.Error()}
				return
			}
			answers <- answer{ok: true, detail: fmt.Sprintf("%s answered in %.1f ms", name(tg), float64(time.Since(start).Microseconds())/1000)}
		}()
	}
	var fails []string
	for range t.Targets {
		a := <-answers
		if a.ok {
			return Result{Reachable: true, Detail: a.detail}
		}
		fails = append(fails, a.detail)
	}
	return Result{Detail: "no NP target answered: " + strings.Join(fails, "; ")}
}

func (t *Targets) one(ctx context.Context, tg config.NPTarget) error {
	if tg.Ping != "" {
		addr, err := netip.ParseAddr(tg.Ping)
		if err != nil {
			return fmt.Errorf("ping %s: %w", tg.Ping, err)
		}
		if t.Pinger == nil {
			return fmt.Errorf("ping %s: no ICMP socket", tg.Ping)
		}
		if _, err := t.Pinger.Ping(ctx, addr); err != nil {
			return fmt.Errorf("ping %s: %w", tg.Ping, err)
		}
		return nil
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", tg.TCP)
	if err != nil {
		return fmt.Errorf("tcp %s: %w", tg.TCP, err)
	}
	return c.Close()
}

func name(tg config.NPTarget) string {
	if tg.Ping != "" {
		return "ping " + tg.Ping
	}
	return "tcp " + tg.TCP
}
