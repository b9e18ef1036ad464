//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	trials       int
	stallSeconds int
	quick        bool
	build        bool
	keep         bool
	verbose      bool
	timeout      time.Duration
	phases       map[string]bool
	bin          binaries
}

// Phases, for -phases.
const (
	phaseVigilKill      = "vigil-kill"
	phaseKeepalivedKill = "keepalived-kill"
	phaseStall          = "stall"
)

func main() {
	o := parseFlags()
	os.Exit(run(o))
}

func parseFlags() options {
	var o options
	flag.IntVar(&o.trials, "trials", 20, "kill-to-takeover trials per variant")
	flag.IntVar(&o.stallSeconds, "stall-seconds", 300, "length of each SIGSTOP phase, in `seconds` (one 150 ms stall per second)")
	flag.BoolVar(&o.quick, "quick", false, "a short run to try things out: 3 trials, 20 s stall phases (unless -trials or -stall-seconds is given)")
	flag.BoolVar(&o.build, "build", true, "build bin/vigild and bin/vigilctl first, as make build does")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (configurations and logs)")
	flag.BoolVar(&o.verbose, "v", false, "print progress")
	flag.DurationVar(&o.timeout, "timeout", 0, "overall deadline (default: from -trials and -stall-seconds)")
	flag.StringVar(&o.bin.vigild, "vigild", "bin/vigild", "vigild `binary`, relative to the module root")
	flag.StringVar(&o.bin.vigilctl, "vigilctl", "bin/vigilctl", "vigilctl `binary`, relative to the module root")
	flag.StringVar(&o.bin.keepalived, "keepalived", "/usr/sbin/keepalived", "keepalived `binary`")
	phases := flag.String("phases", phaseVigilKill+","+phaseKeepalivedKill+","+phaseStall,
		"comma-separated `phases` to run; the summary lines need all of them")
	flag.Parse()
	o.phases = map[string]bool{}
	for _, p := range strings.Split(*phases, ",") {
		o.phases[strings.TrimSpace(p)] = true
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		if !set["trials"] {
			o.trials = 3
		}
		if !set["stall-seconds"] {
			o.stallSeconds = 20
		}
	}
	if o.timeout == 0 {
		// Generous: a trial takes a few seconds, a stall phase its length
		// plus a start and a settle.
		o.timeout = 5*time.Minute + time.Duration(3*o.trials)*30*time.Second +
			time.Duration(2*o.stallSeconds)*time.Second + 2*2*time.Minute
	}
	return o
}

// fail prints the error, with the prefix every output line of this
// program shares.
func fail(err error) int {
	fmt.Fprintf(os.Stderr, "bench-heartbeat: FAILED: %v\n", err)
	return 1
}

func run(o options) int {
	if flag.NArg() > 0 {
		return fail(fmt.Errorf("unexpected arguments %q", flag.Args()))
	}
	if o.trials < 1 || o.stallSeconds < 1 {
		return fail(errors.New("-trials and -stall-seconds must be at least 1"))
	}
	for p := range o.phases {
		if p != phaseVigilKill && p != phaseKeepalivedKill && p != phaseStall {
			return fail(fmt.Errorf("-phases: unknown phase %q (want %s, %s, %s)", p, phaseVigilKill, phaseKeepalivedKill, phaseStall))
		}
	}
	if os.Geteuid() != 0 {
		return fail(errors.New("needs root: it creates network namespaces and runs daemons in them"))
	}
	root, err := moduleRoot()
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	if err := prepare(ctx, root, &o); err != nil {
		return fail(err)
	}
	e, err := newEnv(o.verbose)
	if err != nil {
		return fail(err)
	}
	// Every wait has its own bound and ends with ctx; should something
	// still hang past the deadline, clean up and leave anyway.
	watchdog := time.AfterFunc(o.timeout+time.Minute, func() {
		fmt.Fprintln(os.Stderr, "bench-heartbeat: FAILED: still running a minute after the overall deadline; cleaning up and exiting")
		done := make(chan struct{})
		go func() { e.cleanup(true); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
		os.Exit(2)
	})
	defer watchdog.Stop()
	defer func() {
		if p := recover(); p != nil {
			e.cleanup(true)
			panic(p)
		}
	}()
	res, err := measure(ctx, e, o)
	// Signals stay routed to ctx until run returns, so a second Ctrl-C
	// cannot cut the cleanup short. A failed run keeps its logs.
	keep := o.keep || err != nil && ctx.Err() == nil
	e.cleanup(keep)
	if err != nil {
		if ctx.Err() != nil {
			switch {
			case errors.Is(context.Cause(ctx), context.DeadlineExceeded):
				err = fmt.Errorf("overall deadline of %v passed: %w", o.timeout, err)
			default:
				err = fmt.Errorf("interrupted: %w", err)
			}
		}
		res.print(false)
		return fail(err)
	}
	res.print(len(o.phases) == 3)
	return 0
}

// moduleRoot finds the module's root directory from the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/vigil-ha/vigil\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run it inside the vigil module (go.mod of github.com/vigil-ha/vigil not found)")
		}
		dir = parent
	}
}

// prepare builds the binaries if asked and checks every program it runs.
func prepare(ctx context.Context, root string, o *options) error {
	for _, p := range []*string{&o.bin.vigild, &o.bin.vigilctl} {
		if !filepath.IsAbs(*p) {
			*p = filepath.Join(root, *p)
		}
	}
	if o.build {
		for _, b := range []struct{ out, pkg string }{{o.bin.vigild, "./cmd/vigild"}, {o.bin.vigilctl, "./cmd/vigilctl"}} {
			// As make build does.
			cmd := exec.CommandContext(ctx, goTool(), "build", "-trimpath", "-ldflags=-s -w", "-o", b.out, b.pkg)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
			}
		}
	}
	for _, p := range []string{o.bin.vigild, o.bin.vigilctl, o.bin.keepalived} {
		if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
			return fmt.Errorf("%s: not an executable (run make build; apt-get install keepalived): %v", p, err)
		}
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("ip not found: apt-get install iproute2")
	}
	return nil
}

// goTool returns the go command: $GO (as the Makefile sets it), else go.
func goTool() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

// results holds every figure of a run; fields stay empty for what did not
// run.
type results struct {
	trials    int
	takeover  map[string]dist // variant → kill-to-takeover, ms
	stall     map[string]*stallResult
	stallSecs int
}

// Variant names.
const (
	varEBPF       = "ebpf"
	varUser       = "userspace"
	varKeepalived = "keepalived"
)

// measure runs every phase on one topology.
func measure(ctx context.Context, e *env, o options) (*results, error) {
	res := &results{trials: o.trials, stallSecs: o.stallSeconds, takeover: map[string]dist{}, stall: map[string]*stallResult{}}
	fmt.Printf("bench-heartbeat: %d kill-to-takeover trials per variant, %d s SIGSTOP phases; topology: namespaces %s{sw,n1,n2}, bridge br0, lane 198.18.0.0/24, floating IP %s on eth0\n",
		o.trials, o.stallSeconds, fmt.Sprintf("%s%d-", nsPrefix, os.Getpid()), vipCIDR)
	if err := e.setup(ctx); err != nil {
		return res, fmt.Errorf("topology: %w", err)
	}

	for _, mode := range []string{varEBPF, varUser} {
		if !o.phases[phaseVigilKill] {
			break
		}
		c, err := newVigil(ctx, e, o.bin, mode, "kill-"+mode)
		if err != nil {
			return res, err
		}
		fmt.Printf("bench-heartbeat: kill-to-takeover, vigil %s ...\n", mode)
		if err := c.startBoth(ctx); err != nil {
			return res, err
		}
		for t := range o.trials {
			d, err := c.killTrial(ctx)
			if err != nil {
				c.stop()
				return res, fmt.Errorf("vigil %s trial %d: %w", mode, t+1, err)
			}
			res.takeover[mode] = append(res.takeover[mode], ms(d))
			e.logf("vigil %s trial %d: %.2f ms", mode, t+1, ms(d))
		}
		if err := c.stop(); err != nil {
			return res, err
		}
	}

	if err := measureKeepalived(ctx, e, o, res); err != nil {
		return res, err
	}
	for _, mode := range []string{varEBPF, varUser} {
		if !o.phases[phaseStall] {
			break
		}
		c, err := newVigil(ctx, e, o.bin, mode, "stall-"+mode)
		if err != nil {
			return res, err
		}
		fmt.Printf("bench-heartbeat: SIGSTOP 150 ms every second for %d s, vigil %s ...\n", o.stallSeconds, mode)
		r, err := c.stallPhase(ctx, o.stallSeconds)
		if err != nil {
			c.stop()
			return res, fmt.Errorf("stall phase vigil %s: %w", mode, err)
		}
		res.stall[mode] = r
		if err := c.stop(); err != nil {
			return res, err
		}
	}
	return res, nil
}

// measureKeepalived runs the keepalived kill-to-takeover trials.
func measureKeepalived(ctx context.Context, e *env, o options, res *results) error {
	if !o.phases[phaseKeepalivedKill] {
		return nil
	}
	k, err := newKeepalived(e, o.bin.keepalived)
	if err != nil {
		return err
	}
	fmt.Printf("bench-heartbeat: kill-to-takeover, keepalived ...\n")
	if err := k.startBoth(ctx); err != nil {
		k.stop()
		return err
	}
	for t := range o.trials {
		d, err := k.killTrial(ctx)
		if err != nil {
			k.stop()
			return fmt.Errorf("keepalived trial %d: %w", t+1, err)
		}
		res.takeover[varKeepalived] = append(res.takeover[varKeepalived], ms(d))
		e.logf("keepalived trial %d: %.2f ms", t+1, ms(d))
	}
	return k.stop()
}

// print writes the per-variant lines of what ran and, for a complete run,
// the summary lines.
func (r *results) print(complete bool) {
	if r == nil {
		return
	}
	if len(r.takeover) > 0 {
		r.printTakeover()
	}
	if len(r.stall) > 0 {
		r.printStall()
	}
	if complete {
		r.printSummary()
	}
}

// labels name the variants in the report.
var labels = map[string]string{
	varEBPF:       "vigil mode=ebpf profile=fast",
	varUser:       "vigil mode=userspace profile=fast",
	varKeepalived: "keepalived VRRPv3 advert_int=0.1",
}

// printTakeover writes the kill-to-takeover lines.
func (r *results) printTakeover() {
	fmt.Println()
	fmt.Println("kill-to-takeover: SIGKILL of the active node's daemon (t0 just before kill(2)) to the floating IP's RTM_NEWADDR in the standby's namespace (netlink subscription)")
	for _, v := range []string{varEBPF, varUser, varKeepalived} {
		if d, ok := r.takeover[v]; ok {
			fmt.Printf("  %-34s %s\n", labels[v], d.summary(2))
		}
	}
}

// printStall writes the false failover and RTT lines.
func (r *results) printStall() {
	fmt.Println()
	fmt.Printf("false failovers: the floating IP's holder SIGSTOPped 150 ms once a second (following the group), %d s\n", r.stallSecs)
	for _, v := range []string{varEBPF, varUser} {
		s := r.stall[v]
		if s == nil {
			continue
		}
		var minStop, maxStop time.Duration = math.MaxInt64, 0
		for _, cy := range s.cycles {
			d := cy.cont.Sub(cy.stop)
			minStop, maxStop = min(minStop, d), max(maxStop, d)
		}
		fmt.Printf("  %-34s stalls=%d (%.1f-%.1f ms) takeovers=%d (RTM_NEWADDR of the floating IP; failovers_total %.0f)\n",
			labels[v], len(s.cycles), ms(minStop), ms(maxStop), s.takeovers, s.failovers)
		fmt.Printf("  %-34s   by cause: standby took over during the holder's stall=%d, node just resumed (<= %v after SIGCONT) took the group=%d, other=%d\n",
			"", s.byCause[causeDuringStall], resumeWindow, s.byCause[causeAfterResume], s.byCause[causeOther])
		fmt.Printf("  %-34s   floating IP on both nodes %d times (%.1f ms in all); \"peer lost\" in the logs: node1 %d, node2 %d\n",
			"", s.dualActive, ms(s.dualFor), s.peerLost[0], s.peerLost[1])
		fmt.Printf("  %-34s   CPU during the stalls (share of one CPU): benchmark %.1f%%, vigild node1 %.1f%%, node2 %.1f%%; loadavg after: %s (%d CPUs)\n",
			"", 100*s.cpu[0], 100*s.cpu[1], 100*s.cpu[2], s.load, runtime.NumCPU())
		for _, d := range s.details {
			fmt.Printf("  %-34s   %s\n", "", d)
		}
		if s.preTakeovers > 0 {
			fmt.Printf("  %-34s   note: %d takeovers before the first stall, while the captures were set up (not counted)\n", "", s.preTakeovers)
		}
	}
	fmt.Println()
	fmt.Println("heartbeat RTT under the SIGSTOP load, probes of the standby to the stopped node:")
	fmt.Println("  wire: AF_PACKET capture on the standby's eth0, kernel timestamps, probe and reply matched by nonce (late replies included)")
	for _, v := range []string{varEBPF, varUser} {
		s := r.stall[v]
		if s == nil {
			continue
		}
		total := len(s.wire) + s.lost
		kern := 0.0
		if len(s.wire) > 0 {
			kern = 100 * float64(s.kernelReplies) / float64(len(s.wire))
		}
		fmt.Printf("  %-34s all:        %s  lost=%d/%d  kernel-made replies=%.1f%%\n", labels[v], s.wire.summary(3), s.lost, total, kern)
		fmt.Printf("  %-34s while stopped: %s  lost=%d\n", "", s.wireStall.summary(3), s.lostStall)
		if s.captureDrops > 0 || s.unstamped > 0 {
			fmt.Printf("  %-34s capture: %d packets dropped by the kernel, %d without a kernel timestamp\n", "", s.captureDrops, s.unstamped)
		}
	}
	fmt.Println("  daemon: the standby's vigil_lane_rtt_seconds{peer=stopped node}, bucket deltas between scrapes, quantiles interpolated linearly within a bucket")
	fmt.Println("          (bucket bounds 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 25 50 100 250 500 1000 ms; a reply after 4 intervals = 20 ms is dropped as late, not observed)")
	for _, v := range []string{varEBPF, varUser} {
		s := r.stall[v]
		if s == nil {
			continue
		}
		var parts []string
		for _, q := range []float64{0.5, 0.9, 0.99} {
			x, inf := s.hist.quantile(q)
			lo, hi := s.hist.bucketOf(x)
			val := fmtFloat(x*1000, 3)
			if inf {
				val = ">" + val
			}
			parts = append(parts, fmt.Sprintf("p%.0f=%s (bucket %s-%s)", q*100, val, fmtFloat(lo*1000, 3), fmtFloat(hi*1000, 3)))
		}
		fmt.Printf("  %-34s n=%.0f %s ms; misses=%.0f late replies=%.0f", labels[v], s.hist.count(), strings.Join(parts, " "), s.misses, s.late)
		if s.scrapesMissed > 0 {
			fmt.Printf(" (%d cycles without a scrape)", s.scrapesMissed)
		}
		fmt.Println()
	}
}

// printSummary writes the summary and goal lines.
func (r *results) printSummary() {
	eb, us, ka := r.takeover[varEBPF].pct(99), r.takeover[varUser].pct(99), r.takeover[varKeepalived].pct(99)
	se, su := r.stall[varEBPF], r.stall[varUser]
	fmt.Println()
	fmt.Printf("bench-heartbeat: takeover-p99 ebpf=%s user=%s keepalived=%s\n", fig(eb), fig(us), fig(ka))
	fmt.Printf("bench-heartbeat: false-failovers ebpf=%d user=%d\n", se.takeovers, su.takeovers)
	fmt.Printf("bench-heartbeat: rtt-p99 ebpf=%s user=%s\n", fig(se.wire.pct(99)), fig(su.wire.pct(99)))
	ratio := ka / eb
	var missed []string
	if !(eb <= 50) {
		missed = append(missed, fmt.Sprintf("ebpf takeover p99 %s ms > 50 ms", fig(eb)))
	}
	if !(ratio >= 6) {
		missed = append(missed, fmt.Sprintf("keepalived/ebpf %.1fx < 6x", ratio))
	}
	if se.takeovers != 0 {
		missed = append(missed, fmt.Sprintf("%d ebpf false failovers", se.takeovers))
	}
	verdict := "MET"
	detail := fmt.Sprintf("ebpf p99 %s ms, keepalived p99 %s ms = %.1fx, ebpf false failovers %d", fig(eb), fig(ka), ratio, se.takeovers)
	if len(missed) > 0 {
		verdict = "NOT MET"
		detail = "missed: " + strings.Join(missed, ", ") + "; " + detail
	}
	fmt.Printf("bench-heartbeat: goal ebpf takeover p99 <= 50 ms and >= 6x faster than keepalived, zero false failovers: %s (%s)\n", verdict, detail)
}
