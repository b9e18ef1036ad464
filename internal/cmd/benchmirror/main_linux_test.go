package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/internal/testutil"
)

// TestQuickRun runs the quick benchmark end to end (namespaces, veth,
// files, both engines) and checks that it ends with the three summary
// lines, that they parse, and that every figure is positive. Speeds are
// not asserted: goals are the benchmark's business, not the test's.
func TestQuickRun(t *testing.T) {
	testutil.RequireRoot(t)
	defer goleak.VerifyNone(t)
	o, err := parseFlags(flag.NewFlagSet("test", flag.ContinueOnError), []string{"-quick", "-size", "16M", "-pings", "100", "-rand-time", "300ms", "-tcp-time", "300ms"})
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	if _, _, err := fsInfo(parent); err != nil {
		parent = "" // a tmpfs TMPDIR: the module's bin/, as make runs it
	}
	o.dir = parent
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := run(ctx, o, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if !res.complete() || !res.dataOK {
		t.Fatalf("incomplete results: %+v", res)
	}
	if res.wire.bytes <= 0 || res.wire.elapsed <= 0 || !strings.Contains(out.String(), "\nlink wire  ") {
		t.Errorf("no wire stream: %+v", res.wire)
	}
	if res.codec <= 0 || !strings.Contains(out.String(), "  the frames' codec: ") {
		t.Errorf("no codec figure: %v", res.codec)
	}

	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) < 3 {
		t.Fatalf("%d output lines", len(lines))
	}
	patterns := []*regexp.Regexp{
		regexp.MustCompile(`^bench-mirror: seq-MBps raw=(\d+) tcp=(\d+) sync=(\d+) async=(\d+)$`),
		regexp.MustCompile(`^bench-mirror: rand4k-p99-us raw=(\d+) sync=(\d+) async=(\d+)$`),
		regexp.MustCompile(`^bench-mirror: resync-1pct-vs-full ratio=(\d+\.\d+)$`),
	}
	for i, re := range patterns {
		line := lines[len(lines)-3+i]
		m := re.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("summary line %d %q does not match %s", i+1, line, re)
		}
		for _, f := range m[1:] {
			if v, err := strconv.ParseFloat(f, 64); err != nil || !(v > 0) {
				t.Errorf("summary line %q: figure %q is not positive", line, f)
			}
		}
	}
	goals := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "bench-mirror: goal ") {
			goals++
			if !strings.Contains(l, ": MET (") && !strings.Contains(l, ": NOT MET (") {
				t.Errorf("goal line without a verdict: %q", l)
			}
		}
	}
	if goals != 3 {
		t.Errorf("%d goal lines, want 3", goals)
	}
	// Everything made is gone.
	if o.dir != "" {
		if ents, _ := os.ReadDir(o.dir); len(ents) != 0 {
			t.Errorf("work directory left behind: %v", ents)
		}
	}
}

// TestBadFlags: bad input gets a clear error before anything is made.
func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-size", "100"},
		{"-size", "7M"},
		{"-size", "1000000KiB"}, // not a multiple of 1 MiB
		{"-size", "lots"},
		{"-size", "-1G"},
		{"-size", "99999999T"},
		{"-seq-qd", "0"},
		{"-rand-time", "0s"},
		{"-pings", "0"},
		{"-engine-timeout", "1ms"},
		{"extra"},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		if _, err := parseFlags(fs, args); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1GiB": 1 << 30, "1G": 1 << 30, "1g": 1 << 30, "256M": 256 << 20, "256MiB": 256 << 20,
		"64MB": 64 << 20, "4096": 4096, "8k": 8 << 10, "2T": 2 << 40, " 16M ": 16 << 20,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "1.5G", "1X", "0", "-5M", "1GiBB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

func TestQuickDefaults(t *testing.T) {
	o, err := parseFlags(flag.NewFlagSet("test", flag.ContinueOnError), []string{"-quick", "-size", "32M"})
	if err != nil {
		t.Fatal(err)
	}
	if o.size != 32<<20 || o.randDur != quickRand || o.tcpDur != quickTCP || o.rttPings != quickPings || o.timeout != 3*time.Minute {
		t.Fatalf("quick options %+v", o)
	}
	o, err = parseFlags(flag.NewFlagSet("test", flag.ContinueOnError), nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.size != defaultSize || o.randDur != defaultRand || o.timeout != 15*time.Minute {
		t.Fatalf("default options %+v", o)
	}
}

// TestSweepStale: work directories of dead processes go, others stay.
func TestSweepStale(t *testing.T) {
	parent := t.TempDir()
	dead := filepath.Join(parent, workPrefix+"999999999.1")
	mine := filepath.Join(parent, workPrefix+strconv.Itoa(os.Getpid())+".2")
	other := filepath.Join(parent, "bench-mirrorless")
	for _, d := range []string{dead, mine, other} {
		if err := os.MkdirAll(filepath.Join(d, "x"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var said []string
	sweepStale(parent, func(f string, a ...any) { said = append(said, f) })
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("a dead run's directory is still there (%v)", err)
	}
	for _, d := range []string{mine, other} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was removed", d)
		}
	}
	if len(said) != 1 {
		t.Errorf("%d messages, want 1 about the removed directory", len(said))
	}
}

// synthetic returns results with the given figures, one round each.
func synthetic(raw, tcp, sync float64, rawP99, syncP99, rtt time.Duration, diff, full time.Duration) *results {
	r := newResults(options{rounds: 1})
	r.tcpBytes, r.tcpElapsed = int64(tcp*1e6), time.Second
	r.addSeq(varRaw, seqFig{mbps: raw})
	r.addSeq(varSync, seqFig{mbps: sync})
	r.addSeq(varAsync, seqFig{mbps: sync})
	for v, p99 := range map[string]time.Duration{varRaw: rawP99, varSync: syncP99, varAsync: syncP99} {
		r.rand[v] = &randAgg{writes: 100, elapsed: time.Second}
		for range 100 {
			r.rand[v].lat.Record(p99)
		}
	}
	r.rtt.P50 = rtt
	r.full = []resyncFig{{connectTimes: connectTimes{inSync: full}}}
	r.diff = []resyncFig{{connectTimes: connectTimes{inSync: diff}}}
	return r
}

func TestGoals(t *testing.T) {
	ms, us := time.Millisecond, time.Microsecond
	for _, c := range []struct {
		name string
		r    *results
		want [3]bool
	}{
		{"all met", synthetic(1000, 2000, 900, 200*us, 300*us, 20*us, 30*ms, 1000*ms), [3]bool{true, true, true}},
		{"tcp is the ceiling", synthetic(3000, 1000, 900, 200*us, 300*us, 20*us, 30*ms, 1000*ms), [3]bool{true, true, true}},
		{"all missed", synthetic(1000, 2000, 899, 200*us, 321*us, 20*us, 31*ms, 1000*ms), [3]bool{false, false, false}},
	} {
		gs := c.r.goals()
		for i, g := range gs {
			if g.met != c.want[i] {
				t.Errorf("%s: goal %q met=%v, want %v (%s)", c.name, g.text, g.met, c.want[i], g.detail)
			}
		}
		var out bytes.Buffer
		c.r.printSummary(&out)
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if n := len(lines); n != 6 || !strings.HasPrefix(lines[n-3], "bench-mirror: seq-MBps raw=") {
			t.Errorf("%s: summary:\n%s", c.name, out.String())
		}
	}
	r := synthetic(1000, 2000, 900, 200*us, 300*us, 20*us, 30*ms, 1000*ms)
	var out bytes.Buffer
	r.printSummary(&out)
	if !strings.HasSuffix(out.String(), "bench-mirror: seq-MBps raw=1000 tcp=2000 sync=900 async=900\n"+
		"bench-mirror: rand4k-p99-us raw=200 sync=300 async=300\n"+
		"bench-mirror: resync-1pct-vs-full ratio=0.0300\n") {
		t.Errorf("summary lines:\n%s", out.String())
	}
}

// TestSeqGoalDetail: the sequential goal's line gives the wire stream's
// share of tcp and the CPUs that the goal's rate takes at the least (the
// TCP stream's, the codec's and two raw writes' CPU per MiB).
func TestSeqGoalDetail(t *testing.T) {
	r := synthetic(4000, 2000, 1500, 0, 0, 0, time.Millisecond, time.Second)
	if d := r.goals()[0].detail; strings.Contains(d, "frames alone") || strings.Contains(d, "CPUs") {
		t.Errorf("detail without a wire stream or CPU figures: %q", d)
	}
	r.wire = streamResult{bytes: 1600e6, elapsed: time.Second}
	r.cpus = 2
	// 0.5 + 0.3 + 2 x 0.1 = 1 ms per MiB; 90 % of 2000 MB/s is 1716.6
	// MiB/s: 1.7 CPUs.
	r.tcpCPU = time.Duration(float64(r.tcpBytes) / (1 << 20) * float64(500*time.Microsecond))
	r.codec = 300 * time.Microsecond
	r.seq[varRaw][0].cpu, r.seq[varRaw][0].bytes = 100*time.Millisecond, 1000<<20
	d := r.goals()[0].detail
	for _, want := range []string{"the frames alone, without a disk: 1600 MB/s = 80 % of tcp", "90 % of tcp takes at the least 1.7 CPUs here, which has 2"} {
		if !strings.Contains(d, want) {
			t.Errorf("detail %q lacks %q", d, want)
		}
	}
}

func TestSeqMedian(t *testing.T) {
	r := newResults(options{rounds: 4})
	for _, v := range []float64{400, 100, 300} {
		r.addSeq(varSync, seqFig{mbps: v})
	}
	if got := r.seqMBps(varSync); got != 300 {
		t.Errorf("median of 400 100 300 = %v, want 300", got)
	}
	r.addSeq(varSync, seqFig{mbps: 200})
	if got := r.seqMBps(varSync); got != 250 {
		t.Errorf("median of 400 100 300 200 = %v, want 250", got)
	}
	if got := r.seqMBps(varAsync); got != 0 {
		t.Errorf("median of nothing = %v, want 0", got)
	}
}

// TestParseCPU: the busy time is every state of the cpu line but idle and
// iowait, in USER_HZ ticks; the CPUs are the cpuN lines; a file without
// them is an error.
func TestParseCPU(t *testing.T) {
	stat := "cpu  100 5 200 9000 40 10 30 15 0 0\ncpu0 50 2 100 4500 20 5 15 7 0 0\ncpu1 50 3 100 4500 20 5 15 8 0 0\nintr 12345\nctxt 999\n"
	u, err := parseCPU([]byte(stat))
	if err != nil || u.cpus != 2 || u.busy != 3600*time.Millisecond {
		t.Fatalf("parse: %+v %v, want 2 CPUs and 3.6 s busy", u, err)
	}
	for _, bad := range []string{"", "intr 1\n", "cpu  1 2 3\ncpu0 1 2 3 4 5 6 7 8\n", "cpu  1 2 3 x 5 6 7 8\ncpu0 1 2 3 4 5 6 7 8\n"} {
		if _, err := parseCPU([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	r := synthetic(5000, 2000, 1500, 0, 0, 0, 0, 0)
	r.tcpCPU, r.cpus = 2*time.Second, 2
	r.seq[varSync][0].cpu, r.seq[varSync][0].bytes = time.Second, 1<<30
	if got := r.cpuPerMiB("tcp"); got < 1040*time.Microsecond || got > 1060*time.Microsecond {
		t.Errorf("tcp: %v per MiB, want 2 s over 2000 MB", got)
	}
	if got := r.cpuPerMiB(varSync); got < 976*time.Microsecond || got > 977*time.Microsecond {
		t.Errorf("sync: %v per MiB, want 1 s over 1 GiB", got)
	}
	if got := r.cpuPerMiB(varAsync); got != 0 {
		t.Errorf("async, unmeasured: %v", got)
	}
}
