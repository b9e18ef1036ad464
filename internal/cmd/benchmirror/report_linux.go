package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/blockbench"
)

// Variant names.
const (
	varRaw      = "raw"
	varRawBoth  = "raw-both"
	varRawPair  = "raw-pair"
	varSync     = "sync"
	varSyncCold = "sync-cold"
	varAsync    = "async"
)

// seqFig is one sequential run's figures.
type seqFig struct {
	mbps           float64
	bytes          int64
	elapsed, flush time.Duration
	lat            *blockbench.Histogram
	fallbacks      uint64        // async: queue overflows
	cpu            time.Duration // the machine's busy CPU time during the run
}

func seqFigOf(r blockbench.SeqResult) seqFig {
	return seqFig{mbps: r.MBps(), bytes: r.Bytes, elapsed: r.Elapsed, flush: r.Flush, lat: r.Latency}
}

// randAgg adds up one variant's random sync write runs.
type randAgg struct {
	writes    int
	elapsed   time.Duration
	lat       blockbench.Histogram
	fallbacks uint64 // async: queue overflows
	// Through the engine: the first write to each region since the last
	// flush (its bit is set) and the later ones.
	first, later blockbench.Histogram
}

// iops returns the writes per second over all runs.
func (a *randAgg) iops() float64 { return blockbench.PerSecond(a.writes, a.elapsed) }

// resyncFig is one resync's figures.
type resyncFig struct {
	connectTimes
	regions int    // regions resynced
	dirty   uint64 // bytes dirty before it
}

// results holds every figure of a run; what did not run stays empty.
type results struct {
	size    int64
	seqQD   int
	rounds  int
	randDur time.Duration
	tcpDur  time.Duration
	dir, fs string
	mtu     int
	// direct is set when every partition takes aligned writes around
	// the page cache (engine.NewDataFile found direct I/O).
	direct bool

	rtt        blockbench.Summary
	tcpBytes   int64
	tcpElapsed time.Duration
	tcpCPU     time.Duration // the machine's busy CPU time during the TCP run
	cpus       int
	// wire is the stream of the mirror connect's frames alone
	// (measureWire), with the machine's busy CPU time during it.
	wire    streamResult
	wireCPU time.Duration
	// codec is the CPU time the frames' sealing and checking take per
	// MiB (codecPerMiB).
	codec time.Duration

	seq  map[string][]seqFig // variant -> one per round
	rand map[string]*randAgg

	full, diff []resyncFig // one per round
	// reconnects are reconnections with nothing to resync: the fixed
	// cost in a resync's time.
	reconnects []time.Duration
	gran       uint64
	dataOK     bool
}

func newResults(o options) *results {
	return &results{size: o.size, seqQD: o.seqQD, rounds: o.rounds, randDur: o.randDur, tcpDur: o.tcpDur,
		seq: map[string][]seqFig{}, rand: map[string]*randAgg{}}
}

// addSeq records a sequential run of variant v.
func (r *results) addSeq(v string, f seqFig) { r.seq[v] = append(r.seq[v], f) }

// addRand records a random sync write run of variant v.
func (r *results) addRand(v string, rr blockbench.RandResult, fallbacks uint64) {
	a := r.rand[v]
	if a == nil {
		a = &randAgg{}
		r.rand[v] = a
	}
	a.writes += rr.Writes
	a.elapsed += rr.Elapsed
	a.lat.Merge(rr.Latency)
	a.fallbacks += fallbacks
}

// seqMBps returns the median throughput of variant v's rounds, 0 if
// none ran.
func (r *results) seqMBps(v string) float64 {
	xs := make([]float64, len(r.seq[v]))
	for i, f := range r.seq[v] {
		xs[i] = f.mbps
	}
	return median(xs)
}

// randP99 returns variant v's p99 latency over all its runs.
func (r *results) randP99(v string) time.Duration {
	if a := r.rand[v]; a != nil {
		return a.lat.Percentile(99)
	}
	return 0
}

func (r *results) tcpMBps() float64 { return blockbench.MBps(r.tcpBytes, r.tcpElapsed) }

func (r *results) wireMBps() float64 { return blockbench.MBps(r.wire.bytes, r.wire.elapsed) }

// cpuPerMiB returns the machine's busy CPU time per MiB written by the
// sequential runs of variant v ("tcp", "wire": per MiB sent), 0 when
// unmeasured.
func (r *results) cpuPerMiB(v string) time.Duration {
	var cpu time.Duration
	var n int64
	switch v {
	case "tcp":
		cpu, n = r.tcpCPU, r.tcpBytes
	case "wire":
		cpu, n = r.wireCPU, r.wire.bytes
	}
	for _, f := range r.seq[v] {
		cpu += f.cpu
		n += f.bytes
	}
	if cpu <= 0 || n <= 0 {
		return 0
	}
	return time.Duration(float64(cpu) * (1 << 20) / float64(n))
}

// complete reports whether every figure of the summary lines was measured.
func (r *results) complete() bool {
	for _, v := range []string{varRaw, varSync, varAsync} {
		if len(r.seq[v]) == 0 || r.rand[v] == nil || r.rand[v].writes == 0 {
			return false
		}
	}
	return r.tcpElapsed > 0 && r.rtt.N > 0 && len(r.full) > 0 && len(r.diff) > 0
}

// median returns the median of xs (the mean of the middle two for an
// even count), 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	xs = slices.Sorted(slices.Values(xs))
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// medianTime returns the median of one phase's time (pick) over the
// resyncs.
func medianTime(fs []resyncFig, pick func(connectTimes) time.Duration) time.Duration {
	xs := make([]float64, len(fs))
	for i, f := range fs {
		xs[i] = float64(pick(f.connectTimes))
	}
	return time.Duration(median(xs))
}

// Phases of a connect, for medianTime.
func inSync(c connectTimes) time.Duration    { return c.inSync }
func connected(c connectTimes) time.Duration { return c.connected }
func copied(c connectTimes) time.Duration    { return c.copied }

// mib formats a byte count in MiB.
func mib[T int64 | uint64](n T) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// us formats a duration as whole microseconds.
func us(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond)) }

// secs formats a duration in seconds with three decimals.
func secs(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }

// labels describe the variants in the report.
var labels = map[string]string{
	varRaw:      "raw    a partition file alone",
	varRawBoth:  "raw x2 two partition files at once, each",
	varRawPair:  "raw pair both partition files per write",
	varSync:     "vigil  sync mode",
	varSyncCold: "vigil  sync mode, cold activity extents",
	varAsync:    "vigil  async mode",
}

// print writes the detailed figures of what ran.
func (r *results) print(w io.Writer) {
	fmt.Fprintln(w)
	fmt.Fprintf(w, "work directory %s (%s); veth %s/%d (namespace a, primary) - %s/%d (namespace b, secondary), MTU %d\n",
		r.dir, r.fs, addrA, linkPfx, addrB, linkPfx, r.mtu)
	if r.rtt.N > 0 {
		fmt.Fprintf(w, "link rtt   TCP ping-pong of %d bytes, a to b: %s\n", pingSize, r.rtt)
	}
	if r.tcpElapsed > 0 {
		fmt.Fprintf(w, "link tcp   one TCP stream of 1 MiB writes, a to b, %v: %.0f MB/s (%s in %s)\n",
			r.tcpDur, r.tcpMBps(), mib(r.tcpBytes), secs(r.tcpElapsed))
	}
	if r.wire.elapsed > 0 {
		fmt.Fprintf(w, "link wire  the mirror connect's 1 MiB Write frames alone (replicator/wire after its handshake: CRC32C and a GMAC tag each, sealed by one sender, checked by one reader; no disk), a to b, %v: %.0f MB/s = %.0f %% of tcp (%s in %s)\n",
			r.tcpDur, r.wireMBps(), 100*r.wireMBps()/r.tcpMBps(), mib(r.wire.bytes), secs(r.wire.elapsed))
	}
	if len(r.seq) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "sequential 1 MiB writes over the whole %s volume, %d in flight, %s, ending with a timed flush; median of %d interleaved rounds (MB = 10^6 bytes)\n",
			mib(r.size), r.seqQD, r.ioPath(), r.rounds)
		for _, v := range []string{varRaw, varRawBoth, varSync, varSyncCold, varAsync} {
			fs := r.seq[v]
			if len(fs) == 0 {
				continue
			}
			var lat blockbench.Histogram
			var flush, elapsed time.Duration
			var fallbacks uint64
			rounds := make([]string, len(fs))
			for i, f := range fs {
				lat.Merge(f.lat)
				flush += f.flush
				elapsed += f.elapsed
				fallbacks += f.fallbacks
				rounds[i] = fmt.Sprintf("%.0f", f.mbps)
			}
			fmt.Fprintf(w, "  %-42s %6.0f MB/s  rounds %s; flush %.0f %% of the time; per write p50=%s p99=%s µs",
				labels[v], r.seqMBps(v), strings.Join(rounds, " "), 100*flush.Seconds()/elapsed.Seconds(), us(lat.Percentile(50)), us(lat.Percentile(99)))
			if v == varAsync {
				fmt.Fprintf(w, "; queue overflows to the bitmap %d", fallbacks)
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, "  raw: a third partition file, alike in size, fill and disk, written as the engine writes its backing file; \"raw x2\" ran once, before the mirror existed")
		fmt.Fprintln(w, "  both mirror partitions live on this one disk: a mirror writes every byte to it twice, as \"raw x2\" does; the goal compares with \"raw\", as the issue asks")
		var cpus []string
		for _, v := range []string{"tcp", "wire", varRaw, varSync, varSyncCold, varAsync} {
			if d := r.cpuPerMiB(v); d > 0 {
				cpus = append(cpus, fmt.Sprintf("%s %.2f", v, float64(d)/float64(time.Millisecond)))
			}
		}
		if len(cpus) > 0 {
			fmt.Fprintf(w, "  CPU busy per MiB, in ms (the whole machine's, /proc/stat; %d CPUs): %s\n", r.cpus, strings.Join(cpus, ", "))
		}
		if r.codec > 0 {
			fmt.Fprintf(w, "  the frames' codec: %.2f ms per MiB to seal (copy, CRC32C, GMAC tag) and check (CRC32C, tag) a 1 MiB Write, timed alone in this process\n", ms(r.codec))
		}
		if g := r.goalCPU(); g.floor > 0 {
			fmt.Fprintf(w, "  90 %% of tcp is %.0f MB/s; a sync-mirrored MiB takes here at the least the link's TCP %.2f + the codec %.2f + two disk writes 2 x %.2f (raw) = %.2f ms: %.1f CPUs' work at that rate, and %.1f at the sync runs' own %.2f ms (this machine has %d)\n",
				0.9*r.tcpMBps(), ms(r.cpuPerMiB("tcp")), ms(r.codec), ms(r.cpuPerMiB(varRaw)), ms(g.floor), g.floorCPUs, g.syncCPUs, ms(r.cpuPerMiB(varSync)), r.cpus)
		}
		fmt.Fprintln(w, "  vigil runs start in steady use, with every activity extent hot (as after earlier writes to it); \"cold activity extents\": all cooled first, as after a clean start, so the first write to each 4 MiB extent waits for a bitmap sync (a diagnostic)")
	}
	if len(r.rand) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "random 4 KiB sync (FUA) writes, queue depth 1, aligned, over the whole volume, %v per variant in %d interleaved slices; a sync write is one write with RWF_DSYNC, as the engine's local FUA write\n",
			r.randDur, r.rounds)
		for _, v := range []string{varRaw, varRawBoth, varRawPair, varSync, varAsync} {
			a := r.rand[v]
			if a == nil {
				continue
			}
			fmt.Fprintf(w, "  %-42s iops=%-6.0f %s", labels[v], a.iops(), a.lat.Summarize())
			if v == varAsync {
				fmt.Fprintf(w, "; queue overflows %d", a.fallbacks)
			}
			fmt.Fprintln(w)
			if v == varSync || v == varAsync {
				fmt.Fprintf(w, "  %-42s   %-48s %s\n", "", fmt.Sprintf("first write to a clean %d KiB region:", r.gran>>10), a.first.Summarize())
				fmt.Fprintf(w, "  %-42s   %-48s %s\n", "", "later writes to a region:", a.later.Summarize())
			}
		}
		if r.rand[varRawBoth] != nil {
			fmt.Fprintln(w, "  raw x2: both partition files at once, one slice each, before the mirror existed: a sync write on one waits for the other's cache flushes, as a sync mirror's two sides on one disk do; the goal compares with \"raw\"")
		}
		if r.rand[varRawPair] != nil {
			fmt.Fprintln(w, "  raw pair: each write to both partition files at once, done when both hold it, one slice before the mirror existed: the disk work of one sync mirror write on this disk, without the network (its floor)")
		}
	}
	if len(r.full) > 0 || len(r.diff) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "resync, timed from the dial until the primary is in sync, the data partitions' pages dropped from the cache first; median of %d rounds, then its phases: connected (handshake, bitmap exchange), data sent, end (the target's fsync, both sides' metadata), polled every 0.2-1 ms\n", r.rounds)
		line := func(what string, fs []resyncFig) {
			if len(fs) == 0 {
				return
			}
			f := fs[len(fs)-1]
			ts := make([]string, len(fs))
			for i, f := range fs {
				ts[i] = fmt.Sprintf("%.3f", f.inSync.Seconds())
			}
			tc, td, ti := medianTime(fs, connected), medianTime(fs, copied), medianTime(fs, inSync)
			fmt.Fprintf(w, "  %-30s %6d regions, %s: %s (rounds %s), sent %s; connected %s, data %s, end %s\n",
				what, f.regions, mib(f.dirty), secs(ti), strings.Join(ts, " "), mib(f.sent), secs(tc), secs(td-tc), secs(ti-td))
		}
		line("full sync to a fresh secondary", r.full)
		line("1 % of the regions dirty", r.diff)
		if n := len(r.reconnects); n > 0 {
			fs := make([]resyncFig, n)
			for i, d := range r.reconnects {
				fs[i].inSync = d
			}
			fmt.Fprintf(w, "  %-30s %6d regions: %s (median of %d reconnects for a mode change: the fixed cost)\n",
				"nothing dirty", 0, secs(medianTime(fs, inSync)), n)
		}
	}
	if r.dataOK {
		fmt.Fprintf(w, "data check: after the last flush the secondary's partition equals the primary's (%s compared)\n", mib(r.size))
	}
}

// ms returns d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// goalCPU is the CPU that sync-mirroring at the sequential goal's rate
// (90 % of the link's TCP rate) would take.
type goalCPU struct {
	// floor is the least CPU time a sync-mirrored MiB takes here: the
	// link's TCP stream, the codec, and two disk writes of the raw runs.
	floor time.Duration
	// floorCPUs and syncCPUs are the CPUs busy at the goal's rate, at
	// floor and at the sync runs' own CPU time per MiB.
	floorCPUs, syncCPUs float64
}

// goalCPU returns what mirroring at the goal's rate would take, from this
// run's figures; its floor is 0 when a figure is missing.
func (r *results) goalCPU() goalCPU {
	tcp, raw := r.cpuPerMiB("tcp"), r.cpuPerMiB(varRaw)
	if tcp <= 0 || raw <= 0 || r.codec <= 0 {
		return goalCPU{}
	}
	mibps := 0.9 * r.tcpMBps() * 1e6 / (1 << 20)
	g := goalCPU{floor: tcp + r.codec + 2*raw}
	g.floorCPUs = mibps * g.floor.Seconds()
	g.syncCPUs = mibps * r.cpuPerMiB(varSync).Seconds()
	return g
}

// goal is one of the goals, evaluated.
type goal struct {
	text   string
	met    bool
	detail string
}

// goals evaluates the three goals.
func (r *results) goals() []goal {
	raw, tcp, sync := r.seqMBps(varRaw), r.tcpMBps(), r.seqMBps(varSync)
	ceil := math.Min(raw, tcp)
	seqG := goal{
		text: "sync sequential >= 90 % of min(raw, tcp)",
		met:  sync >= 0.9*ceil,
		detail: fmt.Sprintf("sync %.0f MB/s = %.0f %% of min(raw %.0f, tcp %.0f) = %.0f MB/s",
			sync, 100*sync/ceil, raw, tcp, ceil),
	}
	if wire := r.wireMBps(); wire > 0 {
		seqG.detail += fmt.Sprintf("; the frames alone, without a disk: %.0f MB/s = %.0f %% of tcp", wire, 100*wire/tcp)
	}
	if g := r.goalCPU(); g.floor > 0 && r.cpus > 0 {
		seqG.detail += fmt.Sprintf("; 90 %% of tcp takes at the least %.1f CPUs here, which has %d", g.floorCPUs, r.cpus)
	}
	rawP99, syncP99, rtt := r.randP99(varRaw), r.randP99(varSync), r.rtt.P50
	bound := rawP99 + rtt + 100*time.Microsecond
	randG := goal{
		text: "sync 4 KiB p99 <= raw p99 + one link RTT + 100 µs",
		met:  syncP99 <= bound,
		detail: fmt.Sprintf("sync p99 %s µs vs raw p99 %s + rtt p50 %s + 100 = %s µs",
			us(syncP99), us(rawP99), us(rtt), us(bound)),
	}
	if pair := r.randP99(varRawPair); pair > 0 {
		randG.detail += fmt.Sprintf("; the floor on this one disk, raw pair p99 %s + rtt %s = %s µs", us(pair), us(rtt), us(pair+rtt))
	}
	ratio := r.resyncRatio()
	resG := goal{
		text: "1 %-dirty resync <= 3 % of a full sync",
		met:  ratio <= 0.03,
		detail: fmt.Sprintf("median %s / median %s = %.2f %%",
			secs(medianTime(r.diff, inSync)), secs(medianTime(r.full, inSync)), 100*ratio),
	}
	return []goal{seqG, randG, resG}
}

// resyncRatio is the 1 %-dirty resync's median time over the full
// sync's.
func (r *results) resyncRatio() float64 {
	full := medianTime(r.full, inSync)
	if full <= 0 {
		return math.NaN()
	}
	return float64(medianTime(r.diff, inSync)) / float64(full)
}

// printSummary writes the goal lines, then the three summary lines that
// end the output.
func (r *results) printSummary(w io.Writer) {
	fmt.Fprintln(w)
	for _, g := range r.goals() {
		v := "MET"
		if !g.met {
			v = "NOT MET"
		}
		fmt.Fprintf(w, "bench-mirror: goal %s: %s (%s)\n", g.text, v, g.detail)
	}
	fmt.Fprintf(w, "bench-mirror: seq-MBps raw=%.0f tcp=%.0f sync=%.0f async=%.0f\n",
		r.seqMBps(varRaw), r.tcpMBps(), r.seqMBps(varSync), r.seqMBps(varAsync))
	fmt.Fprintf(w, "bench-mirror: rand4k-p99-us raw=%s sync=%s async=%s\n",
		us(r.randP99(varRaw)), us(r.randP99(varSync)), us(r.randP99(varAsync)))
	fmt.Fprintf(w, "bench-mirror: resync-1pct-vs-full ratio=%.4f\n", r.resyncRatio())
}

// ioPath says how the partitions are written, as the engine writes its
// volume.
func (r *results) ioPath() string {
	if r.direct {
		return "around the page cache (O_DIRECT), as the engine writes its volume"
	}
	return "through the page cache (no direct I/O on this file system), as the engine writes its volume"
}
