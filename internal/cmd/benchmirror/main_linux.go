package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/replicator/engine"
)

// options are the command-line flags.
type options struct {
	size          int64
	dir           string
	seqQD         int
	rounds        int
	randDur       time.Duration
	tcpDur        time.Duration
	rttPings      int
	engineTimeout time.Duration
	seed          uint64
	quick         bool
	keep          bool
	verbose       bool
	timeout       time.Duration
}

// Quick-run sizes, for -quick and the test.
const (
	quickSize    = 64 << 20
	quickRand    = time.Second
	quickTCP     = time.Second
	quickPings   = 300
	quickRounds  = 1
	minSize      = 8 << 20 // 128 regions: 1 % is at least 2
	maxSeqQD     = 256
	defaultSize  = 1 << 30
	defaultRand  = 5 * time.Second
	defaultTCP   = 3 * time.Second
	defaultPings = 2000
	defaultRnds  = 3
	maxRounds    = 100
)

func main() {
	o, err := parseFlags(flag.CommandLine, os.Args[1:])
	if err != nil {
		os.Exit(fail(err))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if _, err := run(ctx, o, os.Stdout); err != nil {
		if errors.Is(err, context.Canceled) {
			err = fmt.Errorf("interrupted: %w", err)
		}
		os.Exit(fail(err))
	}
}

// fail prints the error with the prefix every line of this program
// shares.
func fail(err error) int {
	fmt.Fprintf(os.Stderr, "bench-mirror: FAILED: %v\n", err)
	return 1
}

// parseFlags reads the flags of args into options, applying -quick's
// defaults to what was not given.
func parseFlags(fs *flag.FlagSet, args []string) (options, error) {
	var o options
	size := fs.String("size", "1GiB", "size of each data `partition` (K, M, G, T: powers of 1024); a multiple of 1 MiB, at least 8 MiB")
	fs.StringVar(&o.dir, "dir", "", "`directory` on a real disk for the work directory (default: the module's bin/, else /var/tmp)")
	fs.IntVar(&o.seqQD, "seq-qd", 4, "sequential writes in flight at once (the same for every variant)")
	fs.IntVar(&o.rounds, "rounds", defaultRnds, "interleaved rounds of raw, sync and async runs (a noisy machine spreads its noise over all variants)")
	fs.DurationVar(&o.randDur, "rand-time", defaultRand, "random 4 KiB sync writes per variant, split over the rounds")
	fs.DurationVar(&o.tcpDur, "tcp-time", defaultTCP, "length of the raw TCP throughput run")
	fs.IntVar(&o.rttPings, "pings", defaultPings, "TCP ping-pongs for the link's RTT")
	fs.DurationVar(&o.engineTimeout, "engine-timeout", 30*time.Second,
		"the engine's Timeout: a peer silent this long is lost (generous: a flush of a large dirty page cache on one disk takes seconds)")
	seed := fs.Uint64("seed", 1, "seed of the random offsets")
	fs.BoolVar(&o.quick, "quick", false, fmt.Sprintf("a short run: %d MiB partitions, %d round, %v of random writes, %v TCP run, %d pings (unless given)",
		quickSize>>20, quickRounds, quickRand, quickTCP, quickPings))
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory")
	fs.BoolVar(&o.verbose, "v", false, "print each figure as it is measured")
	fs.DurationVar(&o.timeout, "timeout", 0, "overall deadline (default 15m, 3m with -quick)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.seed = *seed
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	if o.size, err = parseSize(*size); err != nil {
		return o, fmt.Errorf("-size: %w", err)
	}
	if o.quick {
		if !set["size"] {
			o.size = quickSize
		}
		if !set["rand-time"] {
			o.randDur = quickRand
		}
		if !set["tcp-time"] {
			o.tcpDur = quickTCP
		}
		if !set["pings"] {
			o.rttPings = quickPings
		}
		if !set["rounds"] {
			o.rounds = quickRounds
		}
	}
	if o.timeout == 0 {
		o.timeout = 15 * time.Minute
		if o.quick {
			o.timeout = 3 * time.Minute
		}
	}
	return o, o.check()
}

// check validates the options.
func (o options) check() error {
	switch {
	case o.size < minSize || o.size%(1<<20) != 0:
		return fmt.Errorf("-size %d: want a multiple of 1 MiB, at least %d MiB", o.size, minSize>>20)
	case o.seqQD < 1 || o.seqQD > maxSeqQD:
		return fmt.Errorf("-seq-qd %d: want 1 to %d", o.seqQD, maxSeqQD)
	case o.rounds < 1 || o.rounds > maxRounds:
		return fmt.Errorf("-rounds %d: want 1 to %d", o.rounds, maxRounds)
	case o.randDur < time.Duration(o.rounds)*time.Millisecond || o.tcpDur <= 0:
		return errors.New("-rand-time (at least 1ms per round) and -tcp-time must be positive")
	case o.rttPings < 1:
		return fmt.Errorf("-pings %d: want at least 1", o.rttPings)
	case o.engineTimeout < time.Second:
		return fmt.Errorf("-engine-timeout %v: want at least 1s", o.engineTimeout)
	case o.timeout < 0:
		return fmt.Errorf("-timeout %v: negative", o.timeout)
	}
	return nil
}

// parseSize parses a byte count with an optional K, M, G or T suffix
// (powers of 1024; "KiB", "MB" and the like mean the same).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	num := strings.TrimRight(t, "KMGTkmgtiIbB")
	unit := strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(t[len(num):], "B"), "b"))
	unit = strings.TrimSuffix(unit, "I")
	shift := map[string]uint{"": 0, "K": 10, "M": 20, "G": 30, "T": 40}
	sh, ok := shift[unit]
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if !ok || err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size such as 1GiB or 256M", s)
	}
	if n > (1<<62)>>sh {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n << sh, nil
}

// run measures everything, writes the report to w and returns the
// figures. Everything it made is removed before it returns (the work
// directory stays with -keep).
func run(ctx context.Context, o options, w io.Writer) (res *results, err error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("needs root: it creates network namespaces and a veth pair")
	}
	ctx, cancel := context.WithTimeoutCause(ctx, o.timeout, fmt.Errorf("overall deadline of %v passed", o.timeout))
	defer cancel()

	logf := func(format string, args ...any) { fmt.Fprintf(w, "bench-mirror: "+format+"\n", args...) }
	vlogf := func(format string, args ...any) {
		if o.verbose {
			fmt.Fprintf(w, format+"\n", args...)
		}
	}
	stderr := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench-mirror: "+format+"\n", args...) }
	parent := o.dir
	if parent == "" {
		parent = defaultParent()
	}
	if parent, err = filepath.Abs(parent); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("-dir: %w", err)
	}
	fsName, free, err := fsInfo(parent)
	if err != nil {
		return nil, err
	}
	if need := 3*o.size + 64<<20; free < need {
		return nil, fmt.Errorf("%s has %s free, the run needs %s", parent, mib(free), mib(need))
	}

	res = newResults(o)
	res.fs = fsName
	b := &bench{o: o, logf: logf, vlogf: vlogf}
	if b.work, err = makeWorkDir(parent, stderr); err != nil {
		return nil, err
	}
	res.dir = b.work
	defer func() {
		if cerr := b.close(o.keep); cerr != nil && err == nil {
			err = fmt.Errorf("clean up: %w", cerr)
		}
		if o.keep {
			stderr("work directory kept: %s", b.work)
		}
	}()

	// The engines run here as in vigild, which spares Ps for them.
	procs := engine.SpareProcs()
	logf("two network namespaces over veth, %s partitions in %s (%s), %d rounds, sequential queue depth %d, %v of random writes per variant, GOMAXPROCS %d",
		mib(o.size), b.work, fsName, o.rounds, o.seqQD, o.randDur, procs)
	if b.topo, err = newTopology(); err != nil {
		return res, err
	}
	res.mtu = b.topo.mtu
	err = measureAll(ctx, b, res)
	if ctx.Err() != nil && err != nil {
		err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
	}
	res.print(w)
	if err != nil {
		return res, err
	}
	res.printSummary(w)
	return res, nil
}

// measureAll runs every measurement in order.
func measureAll(ctx context.Context, b *bench, res *results) error {
	b.logf("link: RTT and TCP throughput ...")
	rtt, err := measureRTT(ctx, b.topo, b.o.rttPings)
	if err != nil {
		return fmt.Errorf("link rtt: %w", err)
	}
	res.rtt = rtt.Summarize()
	cm := startCPU()
	tr, err := measureTCP(ctx, b.topo, b.o.tcpDur)
	if err != nil {
		return fmt.Errorf("link tcp: %w", err)
	}
	res.tcpBytes, res.tcpElapsed, res.tcpCPU, res.cpus = tr.bytes, tr.elapsed, cm.busy(), cm.start.cpus
	b.logf("link: the mirror connect's frames alone ...")
	cm = startCPU()
	if res.wire, err = measureWire(ctx, b.topo, b.o.tcpDur); err != nil {
		return fmt.Errorf("link wire: %w", err)
	}
	res.wireCPU = cm.busy()
	if res.codec, err = codecPerMiB(); err != nil {
		return fmt.Errorf("codec: %w", err)
	}

	b.logf("partitions: filling three ...")
	if err := b.createPartitions(ctx); err != nil {
		return err
	}
	res.direct = b.p.Direct() && b.s.Direct() && b.r.Direct()
	if err := b.measureRawBoth(ctx, res); err != nil {
		return err
	}
	// A round: a full sync to a fresh secondary (the first one creates
	// the mirror), both workloads on the raw partition, through the
	// engine in sync mode and in async mode, then a 1 %-dirty resync.
	for round := range b.o.rounds {
		if err := b.measureFullSync(ctx, res, round); err != nil {
			return err
		}
		if err := b.measureRaw(ctx, res, round); err != nil {
			return err
		}
		for _, v := range []string{varSync, varAsync} {
			if err := b.measureEngine(ctx, res, v, round); err != nil {
				return err
			}
		}
		if err := b.measureDiffResync(ctx, res, round); err != nil {
			return err
		}
	}
	if err := b.clean(ctx); err != nil {
		return err
	}
	if err := b.closeEngines(); err != nil {
		return fmt.Errorf("close engines: %w", err)
	}
	b.logf("data check: comparing the partitions ...")
	if err := b.compareData(ctx); err != nil {
		return err
	}
	res.dataOK = true
	return nil
}
