package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/vmtests/internal/kernel"
	"github.com/vigil-ha/vigil/vmtests/internal/proto"
)

// SuiteOptions tune RunSuites.
type SuiteOptions struct {
	// Run, when set, is every package's -test.run.
	Run string
	// CI makes an unexpected skip fail its suite (CI=true).
	CI bool
	// Out receives the tests' output and the report.
	Out io.Writer
}

// RunResult is one package's test binary in one VM.
type RunResult struct {
	VM      int
	Package Package
	// Code is the exit status; Reported says the guest sent it.
	Code     int
	Reported bool
	Duration time.Duration
	// Counts of tests and subtests by outcome.
	Passed, Failed, Skipped int
	// Expected and Unexpected are its skips, sorted by the package's
	// expectations; Excluded the tests the harness left out.
	Expected, Unexpected []skipped
	Excluded             []Skip
}

// SuiteResult is one suite's boot.
type SuiteResult struct {
	Suite     Suite
	Kernel    string
	VMs       []vmResult
	Runs      []RunResult
	Build     time.Duration
	ImageSize int64
	// Elapsed runs from starting qemu to the last VM's exit.
	Elapsed time.Duration
	// Err is what kept the suite from running or finishing.
	Err error
	// LogDir holds the console logs and the tests' JSON events.
	LogDir string
}

// Passed reports whether every run exited 0 and, under ci, skipped only
// as expected.
func (r *SuiteResult) Passed(ci bool) bool {
	if r.Err != nil {
		return false
	}
	for _, vm := range r.VMs {
		if vm.Err != nil || len(vm.Errors) > 0 {
			return false
		}
	}
	for _, run := range r.Runs {
		if !run.Reported || run.Code != 0 || ci && len(run.Unexpected) > 0 {
			return false
		}
	}
	return true
}

// RunSuites runs suites one after the other and reports on opts.Out. It
// returns the results; a suite failed unless its Passed says otherwise.
func (e *Env) RunSuites(ctx context.Context, suites []Suite, opts SuiteOptions) ([]*SuiteResult, error) {
	start := time.Now()
	init, err := os.Executable()
	if err != nil {
		return nil, err
	}
	k, accel, err := e.setup(ctx, init)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(opts.Out, "vmtest: kernel %s (%s), qemu accelerator %s", k.Release, k.Package, accel.Name)
	if accel.Note != "" {
		fmt.Fprintf(opts.Out, " (%s)", accel.Note)
	}
	fmt.Fprintf(opts.Out, " (setup %v)\n", time.Since(start).Round(time.Millisecond))

	work, err := os.MkdirTemp("", "vigil-vm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	built := map[string]string{}
	var results []*SuiteResult
	for _, s := range suites {
		r := e.runSuite(ctx, k, accel.Name, init, s, opts, work, built)
		results = append(results, r)
		printSuite(opts.Out, r, opts.CI)
		if ctx.Err() != nil {
			break
		}
	}
	printSummary(opts.Out, results, opts.CI, time.Since(start))
	return results, nil
}

func (e *Env) runSuite(ctx context.Context, k *kernel.Kernel, accel, init string, s Suite, opts SuiteOptions, work string, built map[string]string) *SuiteResult {
	r := &SuiteResult{Suite: s, Kernel: k.Release, LogDir: filepath.Join(e.Cache, "logs", s.Name)}
	vms := max(1, s.VMs)
	fmt.Fprintf(opts.Out, "vmtest: suite %s (%d VM): %s\n", s.Name, vms, s.Doc)
	buildStart := time.Now()
	dir := filepath.Join(work, s.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.Err = err
		return r
	}
	files := map[string]string{}
	var env []string
	var builds []func() error
	for i, p := range s.Packages {
		out := filepath.Join(dir, fmt.Sprintf("%d.test", i))
		files[path.Join(guestBin, fmt.Sprintf("%d.test", i))] = out
		builds = append(builds, func() error { return e.BuildTest(ctx, p.Path, out) })
		for _, b := range p.Binaries {
			name := path.Base(b.Path)
			env = append(env, b.Env+"="+path.Join(guestBin, name))
			if _, ok := built[b.Path]; ok {
				files[path.Join(guestBin, name)] = built[b.Path]
				continue
			}
			out := filepath.Join(work, "bin", name)
			built[b.Path] = out
			files[path.Join(guestBin, name)] = out
			builds = append(builds, func() error { return e.BuildBinary(ctx, b.Path, out) })
		}
	}
	if err := parallel(cpusPerVM(1), builds); err != nil {
		r.Err = err
		return r
	}
	r.Build = time.Since(buildStart)

	testTimeout := s.Timeout - time.Minute
	var runs []proto.Run
	for i, p := range s.Packages {
		args := []string{"-test.v=test2json", "-test.count=1", "-test.paniconexit0", "-test.timeout=" + testTimeout.String()}
		if opts.Run != "" {
			args = append(args, "-test.run="+opts.Run)
		}
		if ex := applicable(p.Exclude, k.Release); len(ex) > 0 {
			pat, err := skipPattern(ex)
			if err != nil {
				r.Err = fmt.Errorf("%s: %w", p.Path, err)
				return r
			}
			args = append(args, "-test.skip="+pat)
		}
		runs = append(runs, proto.Run{
			Name: p.Path, Path: path.Join(guestBin, fmt.Sprintf("%d.test", i)), Args: args,
			Env: append(dedupe(env), p.Env...), Dir: path.Join(guestSrc, p.Path),
		})
	}
	img, err := e.packageImage(k, init, s.Packages, vms, func(int) []proto.Run { return runs })
	if err != nil {
		r.Err = err
		return r
	}
	img.files = mergeMaps(img.files, files)
	initrd := filepath.Join(dir, "initrd")
	if r.ImageSize, err = writeImage(k, img, initrd); err != nil {
		r.Err = err
		return r
	}
	fmt.Fprintf(opts.Out, "vmtest: %s: built in %v, initramfs %.1f MiB\n", s.Name, r.Build.Round(time.Millisecond), float64(r.ImageSize)/(1<<20))

	os.RemoveAll(r.LogDir)
	if err := os.MkdirAll(r.LogDir, 0o755); err != nil {
		r.Err = err
		return r
	}
	var manifests []string
	for i := range vms {
		manifests = append(manifests, manifestPath(i))
	}
	sk := newSuiteSink(e, s, opts.Out, r.LogDir, vms)
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	var console io.Writer
	if os.Getenv(EnvConsole) == "1" {
		console = e.Log
	}
	mem := s.MemoryMB
	if mem == 0 {
		mem = 1024
	}
	bootStart := time.Now()
	r.VMs = boot(ctx, bootConfig{kernel: k, initrd: initrd, accel: accel, manifests: manifests, memoryMB: mem, dir: dir, console: console}, sk)
	r.Elapsed = time.Since(bootStart)
	sk.wait()
	for i, vm := range r.VMs {
		if vm.ConsoleLog != "" {
			copyFile(vm.ConsoleLog, filepath.Join(r.LogDir, fmt.Sprintf("vm%d-console.log", i)))
			r.VMs[i].ConsoleLog = filepath.Join(r.LogDir, fmt.Sprintf("vm%d-console.log", i))
		}
		for j, p := range s.Packages {
			rr := RunResult{VM: i, Package: p, Excluded: applicable(p.Exclude, k.Release)}
			if ev, ok := vm.Exits[j]; ok {
				rr.Code, rr.Reported, rr.Duration = ev.Code, true, ev.Duration
			}
			if st := sk.stats(i, j); st != nil {
				rr.Passed, rr.Failed, rr.Skipped = st.passed, st.failed, len(st.skips)
				rr.Expected, rr.Unexpected = classifySkips(p, k.Release, st.skips)
			}
			r.Runs = append(r.Runs, rr)
		}
	}
	return r
}

// parallel runs fns, n at a time, and returns their errors.
func parallel(n int, fns []func() error) error {
	sem := make(chan struct{}, n)
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = fn()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// testEvent is a go test -json event (cmd/test2json).
type testEvent struct {
	Action string
	Test   string
	Output string
}

// runStats is what one run's events add up to.
type runStats struct {
	passed, failed int
	skips          []skipped
	output         map[string]*strings.Builder
}

// suiteSink turns each run's output into go test -json events with
// go tool test2json, prints their output as go test -v would (prefixed
// with the VM in multi-VM suites), keeps the events in the log directory
// and counts outcomes.
type suiteSink struct {
	env    *Env
	suite  Suite
	out    io.Writer
	logDir string
	multi  bool

	mu        sync.Mutex
	convs     map[[2]int]*converter
	lineStart map[int]bool
	wg        sync.WaitGroup
}

// converter is one run's go tool test2json; without one (it failed to
// start) the run's output is printed as it comes.
type converter struct {
	in    io.WriteCloser
	stats *runStats
}

func newSuiteSink(e *Env, s Suite, out io.Writer, logDir string, vms int) *suiteSink {
	return &suiteSink{env: e, suite: s, out: out, logDir: logDir, multi: vms > 1, convs: map[[2]int]*converter{}, lineStart: map[int]bool{}}
}

func (s *suiteSink) converter(vm, run int) *converter {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := [2]int{vm, run}
	if c, ok := s.convs[key]; ok {
		return c
	}
	c := &converter{stats: &runStats{output: map[string]*strings.Builder{}}}
	s.convs[key] = c
	p := s.suite.Packages[run]
	cmd := exec.Command(s.env.Go, "tool", "test2json", "-t", "-p", path.Join(ModulePath, strings.TrimPrefix(p.Path, "./")))
	in, err := cmd.StdinPipe()
	if err != nil {
		fmt.Fprintf(s.env.Log, "vmtest: go tool test2json: %v\n", err)
		return c
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintf(s.env.Log, "vmtest: go tool test2json: %v\n", err)
		return c
	}
	cmd.Stderr = s.env.Log
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(s.env.Log, "vmtest: go tool test2json: %v; printing the output as it is, without counting skips\n", err)
		return c
	}
	c.in = in
	logf, err := os.OpenFile(filepath.Join(s.logDir, fmt.Sprintf("vm%d.json", vm)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		logf = nil
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if logf != nil {
			defer logf.Close()
		}
		sc := bufio.NewScanner(outPipe)
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if logf != nil {
				logf.Write(append(line, '\n'))
			}
			var ev testEvent
			if json.Unmarshal(line, &ev) != nil {
				continue
			}
			s.handle(vm, c.stats, ev)
		}
		cmd.Wait()
	}()
	return c
}

func (s *suiteSink) handle(vm int, st *runStats, ev testEvent) {
	if ev.Output != "" {
		s.print(vm, ev.Output)
		if ev.Test != "" {
			b := st.output[ev.Test]
			if b == nil {
				b = &strings.Builder{}
				st.output[ev.Test] = b
			}
			if b.Len() < 16<<10 {
				b.WriteString(ev.Output)
			}
		}
	}
	if ev.Test == "" {
		return
	}
	switch ev.Action {
	case "pass":
		st.passed++
	case "fail":
		st.failed++
	case "skip":
		msg := ""
		if b := st.output[ev.Test]; b != nil {
			msg = skipMessage(b.String())
		}
		st.skips = append(st.skips, skipped{Test: ev.Test, Message: msg})
	}
}

func (s *suiteSink) print(vm int, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.multi {
		io.WriteString(s.out, text)
		return
	}
	for text != "" {
		if start, ok := s.lineStart[vm]; start || !ok {
			fmt.Fprintf(s.out, "vm%d| ", vm)
		}
		line, rest, nl := strings.Cut(text, "\n")
		io.WriteString(s.out, line)
		if nl {
			io.WriteString(s.out, "\n")
		}
		s.lineStart[vm] = nl
		text = rest
	}
}

func (s *suiteSink) output(vm, run int, _ byte, p []byte) {
	c := s.converter(vm, run)
	if c.in == nil {
		s.print(vm, string(p))
		return
	}
	c.in.Write(p)
}

func (s *suiteSink) endRun(vm, run int) {
	if c := s.converter(vm, run); c.in != nil {
		c.in.Close()
	}
}

func (s *suiteSink) event(vm int, e proto.Event, at time.Time) {
	switch e.Kind {
	case proto.KindReady:
		s.print(vm, fmt.Sprintf("vmtest: %s: vm%d ready (guest kernel up %v)\n", s.suite.Name, vm, e.Uptime.Round(time.Millisecond)))
	case proto.KindStart:
		s.print(vm, fmt.Sprintf("vmtest: %s: vm%d: %s\n", s.suite.Name, vm, s.suite.Packages[e.Run].Path))
	case proto.KindError:
		s.print(vm, fmt.Sprintf("vmtest: %s: vm%d init: %s\n", s.suite.Name, vm, e.Message))
	}
}

// wait waits for the converters to finish.
func (s *suiteSink) wait() {
	s.mu.Lock()
	for _, c := range s.convs {
		if c.in != nil {
			c.in.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *suiteSink) stats(vm, run int) *runStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.convs[[2]int{vm, run}]; ok {
		return c.stats
	}
	return nil
}

func printSuite(w io.Writer, r *SuiteResult, ci bool) {
	verdict := "PASS"
	if !r.Passed(ci) {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "\nvmtest: suite %s: %s\n", r.Suite.Name, verdict)
	if r.Err != nil {
		fmt.Fprintf(w, "  error: %v\n", r.Err)
	}
	for i, vm := range r.VMs {
		fmt.Fprintf(w, "  vm%d: boot to init %v (guest kernel %v), VM ran %v", i,
			vm.Boot.Round(time.Millisecond), vm.Uptime.Round(time.Millisecond), vm.Elapsed.Round(time.Millisecond))
		if vm.ConsoleLog != "" {
			fmt.Fprintf(w, ", console log %s", vm.ConsoleLog)
		}
		fmt.Fprintln(w)
		for _, m := range vm.Errors {
			fmt.Fprintf(w, "    init error: %s\n", m)
		}
		if vm.Err != nil {
			fmt.Fprintf(w, "    error: %v\n", vm.Err)
		}
	}
	for _, run := range r.Runs {
		status := "ok  "
		if !run.Reported || run.Code != 0 {
			status = "FAIL"
		}
		vm := ""
		if len(r.VMs) > 1 {
			vm = fmt.Sprintf("vm%d ", run.VM)
		}
		code := "no exit status"
		if run.Reported {
			code = fmt.Sprintf("exit %d", run.Code)
		}
		fmt.Fprintf(w, "  %s %s%-28s %8v  %s, %d passed, %d failed, %d skipped\n", status, vm, run.Package.Path,
			run.Duration.Round(10*time.Millisecond), code, run.Passed, run.Failed, run.Skipped)
		for _, s := range run.Expected {
			fmt.Fprintf(w, "       expected skip on %s: %s: %s\n", r.Kernel, s.Test, s.Message)
		}
		for _, s := range run.Unexpected {
			what := "unexpected skip (a failure under CI=true)"
			if !ci {
				what = "unexpected skip (a failure under CI=true; not set)"
			}
			fmt.Fprintf(w, "       %s: %s: %s\n", what, s.Test, s.Message)
		}
		for _, s := range run.Excluded {
			fmt.Fprintf(w, "       not run on %s: %s: %s\n", r.Kernel, s.Test, s.Because)
		}
	}
	fmt.Fprintf(w, "  build %v, initramfs %.1f MiB, boot and tests %v; logs in %s\n",
		r.Build.Round(time.Millisecond), float64(r.ImageSize)/(1<<20), r.Elapsed.Round(time.Millisecond), r.LogDir)
}

func printSummary(w io.Writer, results []*SuiteResult, ci bool, total time.Duration) {
	fmt.Fprintf(w, "\nvmtest: %-8s %-6s %10s %10s %10s\n", "suite", "result", "build", "boot", "run")
	failed := 0
	for _, r := range results {
		v := "PASS"
		if !r.Passed(ci) {
			v = "FAIL"
			failed++
		}
		var bootTime time.Duration
		for _, vm := range r.VMs {
			bootTime = max(bootTime, vm.Boot)
		}
		fmt.Fprintf(w, "vmtest: %-8s %-6s %10v %10v %10v\n", r.Suite.Name, v,
			r.Build.Round(100*time.Millisecond), bootTime.Round(10*time.Millisecond), r.Elapsed.Round(100*time.Millisecond))
	}
	verdict := "PASS"
	if failed > 0 {
		verdict = fmt.Sprintf("FAIL (%d of %d suites)", failed, len(results))
	}
	fmt.Fprintf(w, "vmtest: %s, VM stage %v\n", verdict, total.Round(100*time.Millisecond))
}
