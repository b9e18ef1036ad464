package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The stall load: SIGSTOP for stallFor, then SIGCONT, once a period.
const (
	stallPeriod = time.Second
	stallFor    = 150 * time.Millisecond
	// scrapeLead is how long before each SIGSTOP both nodes' metrics are
	// scraped: every daemon runs then.
	scrapeLead = 50 * time.Millisecond
)

// cycle is one SIGSTOP/SIGCONT of the node holding the floating IP.
type cycle struct {
	stop, cont      time.Time
	target, standby int
}

// stallResult is what one stall phase measured.
type stallResult struct {
	mode      string
	cycles    []cycle
	takeovers int // RTM_NEWADDR of the floating IP on either node
	// byCause splits the takeovers: the standby took over while the holder
	// was stopped; the node just resumed took the group (back) within
	// resumeWindow of its SIGCONT; neither.
	byCause [3]int
	// preTakeovers happened after the cluster was steady and before the
	// first stall, while the captures and subscriptions were set up.
	preTakeovers int
	// failovers is the sum over both nodes of vigil_failovers_total.
	failovers float64
	// dualActive counts the periods the floating IP was bound on both
	// nodes at once, dualFor their total length.
	dualActive int
	dualFor    time.Duration
	peerLost   [2]int // "peer lost" lines in each daemon's log
	// cpu is the CPU time the benchmark and each daemon used during the
	// stalls, as a share of one CPU; load is /proc/loadavg after them.
	cpu  [3]float64
	load string
	// details explain takeovers that the stall of the peer does not:
	// every one with the eBPF heartbeat, those of cause "other" in
	// userspace (at most maxDetails).
	details []string

	// Wire round trips from the capture, probes of the standby to the
	// stopped node: all of them, and those sent while it was stopped.
	wire, wireStall dist
	lost, lostStall int
	kernelReplies   int
	captureDrops    uint32
	unstamped       int

	// The standby's own histogram of the same probes (bucket deltas),
	// with its misses and late replies.
	hist          histogram
	misses, late  float64
	scrapesMissed int
}

// stallPhase starts a fresh cluster and, for seconds, SIGSTOPs the daemon
// of the node holding the floating IP for 150 ms once a second, following
// the group if it moves. It counts takeovers and measures the standby's
// round trips to the stopped node.
func (c *vigilCluster) stallPhase(ctx context.Context, seconds int) (*stallResult, error) {
	if err := c.startBoth(ctx); err != nil {
		return nil, err
	}
	r := &stallResult{mode: c.mode}
	var watches [2]*addrWatch
	var caps [2]*capture
	defer func() {
		for i := range watches {
			if watches[i] != nil {
				watches[i].close()
			}
			if caps[i] != nil {
				caps[i].close()
			}
		}
	}()
	for i := range nodeNames {
		var err error
		if watches[i], err = c.e.watchVIP(i); err != nil {
			return nil, err
		}
		if caps[i], err = c.e.startCapture(i); err != nil {
			return nil, err
		}
	}
	// Opening the captures and subscriptions must not have moved the
	// group; whatever did is counted apart, before the load.
	err := waitFor(ctx, "vigil "+c.mode+": steady before the stall phase", settleLimit, time.Second, func() (bool, string) {
		owner := holder(watches)
		for i := range c.procs {
			if ok, why := c.sees(ctx, i, owner); !ok {
				return false, why
			}
		}
		return c.vipOnlyOn(owner)
	})
	if err != nil {
		return nil, c.withLogs(err)
	}
	r.preTakeovers = countAdds(watches)
	var logFrom [2]int64
	for i := range nodeNames {
		if st, err := os.Stat(c.logPath(i)); err == nil {
			logFrom[i] = st.Size()
		}
	}
	first, err := c.scrapeBoth()
	if err != nil {
		return nil, c.withLogs(err)
	}

	pids := [3]int{os.Getpid(), c.procs[0].pid(), c.procs[1].pid()}
	cpu0, wall0 := cpuTimes(pids), time.Now()
	cycles, err := c.stallLoop(ctx, r, watches, first, seconds)
	if err != nil {
		return nil, err
	}
	r.cycles = cycles
	cpu1, wall := cpuTimes(pids), time.Since(wall0)
	for j := range cpu1 {
		r.cpu[j] = float64(cpu1[j]-cpu0[j]) / float64(wall)
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		r.load = strings.Join(strings.Fields(string(b))[:3], " ")
	}

	// Let a takeover the last stall started finish, then take stock.
	var owner int
	err = waitFor(ctx, "vigil "+c.mode+": one owner after the stall phase", settleLimit, steadyHold, func() (bool, string) {
		owner = holder(watches)
		for i := range c.procs {
			if ok, why := c.sees(ctx, i, owner); !ok {
				return false, why
			}
		}
		return c.vipOnlyOn(owner)
	})
	if err != nil {
		return nil, c.withLogs(err)
	}
	last, err := c.scrapeBoth()
	if err != nil {
		return nil, c.withLogs(err)
	}
	for i := range nodeNames {
		r.failovers += sumOf(last[i], "vigil_failovers_total", nil) - sumOf(first[i], "vigil_failovers_total", nil)
		r.peerLost[i] = countLines(c.logPath(i), logFrom[i], `msg="peer lost"`)
	}
	for i := range watches {
		watches[i].close()
		if err := watches[i].err(); err != nil {
			return nil, err
		}
		caps[i].close()
	}
	r.addressTimeline(watches)
	if err := r.wireRTTs(caps); err != nil {
		return nil, err
	}
	r.explain(watches, caps, [2]string{c.logPath(0), c.logPath(1)})
	return r, nil
}

// stallLoop runs the stalls on a real-time pacing thread: every second it
// SIGSTOPs the daemon of the node that bound the floating IP last, and
// SIGCONTs it 150 ms later. Between two stalls, 50 ms before the next, it
// scrapes both nodes and adds the standby's figures for the stopped peer
// to r.
func (c *vigilCluster) stallLoop(ctx context.Context, r *stallResult, watches [2]*addrWatch, first [2][]sample, seconds int) ([]cycle, error) {
	pc := newPacer()
	defer pc.stop()
	if !pc.realtime {
		fmt.Println("bench-heartbeat: note: no SCHED_FIFO for the pacing thread; stall lengths may stretch on a busy machine")
	}
	var cycles []cycle
	prev := first
	scrape := func(k int, at time.Time) error {
		if err := pc.sleepUntil(ctx, at.Add(-scrapeLead)); err != nil {
			return err
		}
		cur, err := c.scrapeBoth()
		r.attribute(&cycles[k], prev, cur, err)
		if err == nil {
			prev = cur
		}
		return nil
	}
	begin := time.Now().Add(200 * time.Millisecond)
	for k := range seconds {
		at := begin.Add(time.Duration(k) * stallPeriod)
		if k > 0 {
			if err := scrape(k-1, at); err != nil {
				return nil, err
			}
		}
		if err := pc.sleepUntil(ctx, at); err != nil {
			return nil, err
		}
		target := holder(watches)
		p := c.procs[target]
		if !p.alive() {
			return nil, c.withLogs(fmt.Errorf("vigild %s exited during the stall phase", nodeNames[target]))
		}
		stopAt := time.Now()
		if err := p.signal(syscall.SIGSTOP); err != nil {
			return nil, err
		}
		slept := pc.sleepUntil(ctx, stopAt.Add(stallFor))
		// SIGCONT whatever happened: a stopped daemon must not outlive this.
		if err := p.signal(syscall.SIGCONT); err != nil {
			return nil, err
		}
		cycles = append(cycles, cycle{stop: stopAt, cont: time.Now(), target: target, standby: 1 - target})
		if slept != nil {
			return nil, slept
		}
		if c.e.verbose && (k+1)%10 == 0 {
			c.e.logf("%s: %d/%d stalls, %d takeovers so far", c.mode, k+1, seconds, countAdds(watches))
		}
	}
	if err := scrape(seconds-1, begin.Add(time.Duration(seconds)*stallPeriod)); err != nil {
		return nil, err
	}
	return cycles, nil
}

// scrapeBoth scrapes both nodes at once.
func (c *vigilCluster) scrapeBoth() ([2][]sample, error) {
	var out [2][]sample
	var errs [2]error
	var wg sync.WaitGroup
	for i := range nodeNames {
		wg.Go(func() {
			text, err := c.scrape(i)
			out[i], errs[i] = parseProm(text), err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// attribute adds the standby's RTT histogram, misses and late replies for
// the stopped peer between two scrapes to the result.
func (r *stallResult) attribute(cy *cycle, before, after [2][]sample, err error) {
	if err != nil {
		r.scrapesMissed++
		return
	}
	s, peer := cy.standby, map[string]string{"peer": nodeNames[cy.target]}
	h := histogramOf(after[s], "vigil_lane_rtt_seconds", peer).sub(histogramOf(before[s], "vigil_lane_rtt_seconds", peer))
	r.hist = r.hist.add(h)
	r.misses += sumOf(after[s], "vigil_lane_misses_total", peer) - sumOf(before[s], "vigil_lane_misses_total", peer)
	late := map[string]string{"reason": "late_reply"}
	r.late += sumOf(after[s], "vigil_heartbeat_dropped_total", late) - sumOf(before[s], "vigil_heartbeat_dropped_total", late)
}

// holder returns the node that bound the floating IP last (node1 before any
// event: the watches start with the group there).
func holder(ws [2]*addrWatch) int {
	var last addrEvent
	for _, w := range ws {
		for _, ev := range w.snapshot() {
			if ev.add && ev.at.After(last.at) {
				last = ev
			}
		}
	}
	return last.node
}

// countAdds counts the floating IP's RTM_NEWADDR on both nodes.
func countAdds(ws [2]*addrWatch) int {
	n := 0
	for _, w := range ws {
		for _, ev := range w.snapshot() {
			if ev.add {
				n++
			}
		}
	}
	return n
}

// Takeover causes, indexes of stallResult.byCause.
const (
	causeDuringStall = iota
	causeAfterResume
	causeOther
)

// resumeWindow is how soon after its own SIGCONT a node taking the group
// counts as acting on its own stall.
const resumeWindow = 50 * time.Millisecond

// addressTimeline counts the takeovers from the first stall on, by cause,
// and the periods with the floating IP on both nodes.
func (r *stallResult) addressTimeline(ws [2]*addrWatch) {
	if len(r.cycles) == 0 {
		return
	}
	from := r.cycles[0].stop
	var evs []addrEvent
	for _, w := range ws {
		evs = append(evs, w.snapshot()...)
	}
	sort.SliceStable(evs, func(a, b int) bool { return evs[a].at.Before(evs[b].at) })
	bound := [2]bool{true, false} // the steady state the watches began in
	var since time.Time
	for _, ev := range evs {
		both := bound[0] && bound[1]
		bound[ev.node] = ev.add
		counted := !ev.at.Before(from)
		switch {
		case !both && bound[0] && bound[1]:
			since = ev.at
			if counted {
				r.dualActive++
			}
		case both && !(bound[0] && bound[1]) && !since.Before(from):
			r.dualFor += ev.at.Sub(since)
		}
		if ev.add && counted {
			r.takeovers++
			r.byCause[r.cause(ev)]++
		}
	}
}

// cause tells why node ev.node bound the floating IP at ev.at.
func (r *stallResult) cause(ev addrEvent) int {
	k := sort.Search(len(r.cycles), func(k int) bool { return r.cycles[k].stop.After(ev.at) }) - 1
	if k < 0 {
		return causeOther
	}
	cy := r.cycles[k]
	switch {
	case cy.target != ev.node && !ev.at.After(cy.cont.Add(5*time.Millisecond)):
		return causeDuringStall
	case cy.target == ev.node && ev.at.After(cy.cont) && ev.at.Sub(cy.cont) <= resumeWindow:
		return causeAfterResume
	}
	return causeOther
}

// wireRTTs takes each node's captured probes to its stopped peer, in the
// cycles where it was the standby.
func (r *stallResult) wireRTTs(caps [2]*capture) error {
	if len(r.cycles) == 0 {
		return nil
	}
	starts := make([]time.Time, len(r.cycles))
	for k, cy := range r.cycles {
		starts[k] = cy.stop
	}
	end := r.cycles[len(r.cycles)-1].stop.Add(stallPeriod)
	for i, cp := range caps {
		rs, err := cp.rtts()
		if err != nil {
			return err
		}
		r.captureDrops += cp.kernDrop
		r.unstamped += cp.noStamp
		for _, w := range rs {
			if w.sent.Before(starts[0]) || !w.sent.Before(end) {
				continue
			}
			k, found := slices.BinarySearchFunc(starts, w.sent, func(a, b time.Time) int { return a.Compare(b) })
			if !found {
				k--
			}
			cy := r.cycles[k]
			if cy.standby != i {
				continue
			}
			inStall := !w.sent.After(cy.cont)
			if w.lost {
				r.lost++
				if inStall {
					r.lostStall++
				}
				continue
			}
			v := ms(w.rtt)
			r.wire = append(r.wire, v)
			if inStall {
				r.wireStall = append(r.wireStall, v)
			}
			if w.kernel {
				r.kernelReplies++
			}
		}
	}
	return nil
}

// maxDetails bounds the takeovers explained in the report.
const maxDetails = 10

// explain describes the takeovers the holder's stall does not account for:
// when they happened against the stalls, how the peer's replies reached
// the taker's interface just before, and what the taker's log said.
func (r *stallResult) explain(ws [2]*addrWatch, caps [2]*capture, logs [2]string) {
	if len(r.cycles) == 0 {
		return
	}
	from := r.cycles[0].stop
	rel := func(t time.Time) string { return fmt.Sprintf("+%.3f s", t.Sub(from).Seconds()) }
	var evs []addrEvent
	for _, w := range ws {
		evs = append(evs, w.snapshot()...)
	}
	sort.SliceStable(evs, func(a, b int) bool { return evs[a].at.Before(evs[b].at) })
	for _, ev := range evs {
		if !ev.add || ev.at.Before(from) {
			continue
		}
		cause := r.cause(ev)
		if r.mode != varEBPF && cause != causeOther {
			continue
		}
		if len(r.details) == maxDetails {
			r.details = append(r.details, "...")
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s bound the floating IP (%s)", rel(ev.at), nodeNames[ev.node], causeNames[cause])
		k := sort.Search(len(r.cycles), func(k int) bool { return r.cycles[k].stop.After(ev.at) }) - 1
		if k >= 0 {
			cy := r.cycles[k]
			fmt.Fprintf(&b, "; last stall: %s %s..%s", nodeNames[cy.target], rel(cy.stop), rel(cy.cont))
		}
		// On the taker's wire: did the peer's replies stop, or did the
		// taker itself stop probing (its daemon not running)?
		if _, pgap, ok := caps[ev.node].gaps(ev.at, 100*time.Millisecond, true); ok {
			_, rgap, _ := caps[ev.node].gaps(ev.at, 100*time.Millisecond, false)
			fmt.Fprintf(&b, "; on its eth0 in the 100 ms before: longest gap between its own probes %.1f ms, between the peer's replies %.1f ms", ms(pgap), ms(rgap))
		}
		if line := lastLogLine(logs[ev.node], `msg="peer lost"`, ev.at.Add(5*time.Millisecond)); line != "" {
			fmt.Fprintf(&b, "; log: %s", line)
		}
		r.details = append(r.details, b.String())
	}
}

// causeNames describe the takeover causes.
var causeNames = [3]string{
	causeDuringStall: "during the holder's stall",
	causeAfterResume: "right after its own SIGCONT",
	causeOther:       "no stall of its peer at the time",
}

// lastLogLine returns the part after "level=" of the last line of a slog
// text log containing s and stamped at or before t.
func lastLogLine(path, s string, t time.Time) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var found string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, s) || !strings.HasPrefix(line, "time=") {
			continue
		}
		stamp, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil || at.After(t) {
			continue
		}
		found = line
	}
	if i := strings.Index(found, "msg="); i >= 0 {
		return found[i:]
	}
	return found
}

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on Linux).
const clockTick = 10 * time.Millisecond

// cpuTimes returns the user+system CPU time of each process (0 when it
// cannot be read).
func cpuTimes(pids [3]int) [3]time.Duration {
	var out [3]time.Duration
	for j, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		k := strings.LastIndexByte(s, ')')
		if k < 0 {
			continue
		}
		f := strings.Fields(s[k+1:])
		// After the command: state is field 3 of stat, utime 14, stime 15.
		if len(f) < 13 {
			continue
		}
		var u, st int64
		fmt.Sscan(f[11], &u)
		fmt.Sscan(f[12], &st)
		out[j] = time.Duration(u+st) * clockTick
	}
	return out
}

// countLines counts the lines of a file from offset that contain s.
func countLines(path string, from int64, s string) int {
	b, err := os.ReadFile(path)
	if err != nil || from > int64(len(b)) {
		return 0
	}
	return strings.Count(string(b[from:]), s)
}
