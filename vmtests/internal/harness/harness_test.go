package harness

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/vmtests/internal/kernel"
	"github.com/vigil-ha/vigil/vmtests/internal/proto"
	"github.com/vigil-ha/vigil/vmtests/internal/qemu"
	"github.com/vigil-ha/vigil/vmtests/internal/qemu/qemutest"
)

func TestMain(m *testing.M) {
	qemutest.MaybeFake()
	os.Exit(m.Run())
}

// matches applies a -test.skip pattern to a test name the way the testing
// package does for simple patterns: level by level, split at slashes.
func matches(t *testing.T, pattern, name string) bool {
	t.Helper()
	pats, parts := strings.Split(pattern, "/"), strings.Split(name, "/")
	if len(parts) < len(pats) {
		return false
	}
	for i, p := range pats {
		ok, err := regexp.MatchString(p, parts[i])
		if err != nil {
			t.Fatalf("pattern %q: %v", p, err)
		}
		if !ok {
			return false
		}
	}
	return true
}

func TestSkipPattern(t *testing.T) {
	pat, err := skipPattern([]Skip{{Test: "TestDaemonNPResolution/active's_link_lost"}})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"TestDaemonNPResolution/active's_link_lost":   true,
		"TestDaemonNPResolution/active_cut_off":       false,
		"TestDaemonNPResolution/active's_link_lost_2": false,
		"TestDaemonNPResolutionX/active's_link_lost":  false,
	} {
		if got := matches(t, pat, name); got != want {
			t.Errorf("pattern %q on %q = %v, want %v", pat, name, got, want)
		}
	}
	pat, err = skipPattern([]Skip{{Test: "TestA/x.y"}, {Test: "TestA/z"}})
	if err != nil {
		t.Fatal(err)
	}
	if !matches(t, pat, "TestA/x.y") || !matches(t, pat, "TestA/z") || matches(t, pat, "TestA/xzy") {
		t.Errorf("pattern %q", pat)
	}
	if _, err := skipPattern([]Skip{{Test: "TestA/x"}, {Test: "TestB/y"}}); err == nil {
		t.Error("tests differing at two levels accepted: (A|B)/(x|y) would leave out A/y too")
	}
	if _, err := skipPattern([]Skip{{Test: "TestA/x"}, {Test: "TestB"}}); err == nil {
		t.Error("tests of different depths accepted")
	}
	if pat, _ := skipPattern(nil); pat != "" {
		t.Errorf("no exclusions gave %q", pat)
	}
}

func TestKernelConditions(t *testing.T) {
	s := Skip{Test: "TestLinkLoss", Because: "has no tcx (6.6+)", KernelBelow: "6.6"}
	for release, want := range map[string]bool{
		"6.1.0-56-cloud-amd64": true, "5.10.0-30-cloud-amd64": true, "6.6.0": false, "6.12.48+deb13-cloud-amd64": false, "7.0": false, "garbage": false,
	} {
		if got := s.holds(release); got != want {
			t.Errorf("KernelBelow 6.6 on %s = %v, want %v", release, got, want)
		}
	}
	if !(Skip{}).holds("anything") {
		t.Error("a skip without KernelBelow does not hold")
	}
}

func TestClassifySkips(t *testing.T) {
	pkg := Package{Skips: []Skip{tcxSkip("TestLinkLoss")}}
	got := []skipped{
		{Test: "TestLinkLoss", Message: "fastpath_linux_test.go:393: kernel 6.1 has no tcx (6.6+)"},
		{Test: "TestOther", Message: "kernel 6.1 has no tcx (6.6+)"},        // not listed
		{Test: "TestLinkLoss/sub", Message: "kernel 6.1 has no tcx (6.6+)"}, // not listed either
	}
	exp, unexp := classifySkips(pkg, "6.1.0-56-cloud-amd64", got)
	if len(exp) != 1 || exp[0].Test != "TestLinkLoss" || len(unexp) != 2 {
		t.Errorf("on 6.1: expected %v, unexpected %v", exp, unexp)
	}
	// On a kernel with tcx the same skip is a regression.
	exp, unexp = classifySkips(pkg, "6.12.0", got[:1])
	if len(exp) != 0 || len(unexp) != 1 {
		t.Errorf("on 6.12: expected %v, unexpected %v", exp, unexp)
	}
	// The reason must match, not just the name.
	exp, _ = classifySkips(pkg, "6.1.0", []skipped{{Test: "TestLinkLoss", Message: "needs root"}})
	if len(exp) != 0 {
		t.Errorf("a skip for another reason counted as expected: %v", exp)
	}
}

func TestSkipMessage(t *testing.T) {
	out := "=== RUN   TestLinkLoss\n    fastpath_linux_test.go:393: kernel 6.1 has no tcx (6.6+)\n--- SKIP: TestLinkLoss (0.01s)\n"
	if got := skipMessage(out); got != "fastpath_linux_test.go:393: kernel 6.1 has no tcx (6.6+)" {
		t.Errorf("skipMessage = %q", got)
	}
}

func TestTestFlags(t *testing.T) {
	args := []string{"-test.paniconexit0", "-test.timeout=10m0s", "-test.testlogfile=/tmp/go-build1/b001/testlog.txt", "-test.outputdir=/tmp/out", "-test.coverprofile=rel.out", "-test.v=test2json"}
	dirs := writeDirs(args)
	if want := []string{"/tmp/go-build1/b001", "/tmp/out"}; !slices.Equal(dirs, want) {
		t.Errorf("dirs = %v, want %v", dirs, want)
	}
	if d := testTimeout(args); d != 10*time.Minute {
		t.Errorf("testTimeout = %v", d)
	}
	if d := testTimeout([]string{"-test.timeout=0s"}); d != time.Hour {
		t.Errorf("testTimeout without a limit = %v", d)
	}
	if !hasFlag([]string{"-test.skip=x"}, "test.skip") || !hasFlag([]string{"--test.skip=x"}, "test.skip") || hasFlag(args, "test.skip") {
		t.Error("hasFlag")
	}
}

func TestForwardEnv(t *testing.T) {
	t.Setenv("CI", "true")
	t.Setenv("VIGIL_NETEM_DURATION", "5s")
	t.Setenv("VIGIL_VMTEST_ACCEL", "tcg")
	t.Setenv("VIGIL_VM_INDEX", "3")
	t.Setenv("HOME", "/home/x")
	env := forwardEnv()
	for _, want := range []string{"CI=true", "VIGIL_NETEM_DURATION=5s"} {
		if !slices.Contains(env, want) {
			t.Errorf("%s not forwarded: %v", want, env)
		}
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "VIGIL_VM") || strings.HasPrefix(kv, "HOME=") {
			t.Errorf("%s forwarded", kv)
		}
	}
}

// TestSuites checks the suite table: unique names, packages that exist,
// exclusions that make a pattern, reasons for every skip.
func TestSuites(t *testing.T) {
	root, err := findModule(".")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, s := range Suites {
		if names[s.Name] || s.Name == "" || s.Doc == "" || s.Timeout <= time.Minute {
			t.Errorf("suite %q: duplicate, unnamed, undocumented or too short a timeout", s.Name)
		}
		names[s.Name] = true
		for _, p := range s.Packages {
			if fi, err := os.Stat(filepath.Join(root, p.Path)); err != nil || !fi.IsDir() {
				t.Errorf("suite %s: package %s: %v", s.Name, p.Path, err)
			}
			if _, err := skipPattern(p.Exclude); err != nil {
				t.Errorf("suite %s: %v", s.Name, err)
			}
			for _, sk := range append(append([]Skip(nil), p.Skips...), p.Exclude...) {
				if sk.Test == "" || sk.Because == "" {
					t.Errorf("suite %s: %s: skip without a test or a reason: %+v", s.Name, p.Path, sk)
				}
			}
			for _, b := range p.Binaries {
				if b.Env == "" {
					t.Errorf("suite %s: binary %s without its variable", s.Name, b.Path)
				}
			}
		}
	}
	if got := FindPackage("./cmd/vigild"); len(got.Binaries) == 0 {
		t.Error("FindPackage(./cmd/vigild) lost its vigild")
	}
	if _, err := FindSuite("nope"); err == nil {
		t.Error("FindSuite(nope) succeeded")
	}
}

// recordSink keeps what a boot said.
type recordSink struct {
	mu     sync.Mutex
	out    map[byte]*bytes.Buffer
	ended  []int
	events []proto.Kind
}

func (s *recordSink) output(_, _ int, stream byte, p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		s.out = map[byte]*bytes.Buffer{proto.Stdout: {}, proto.Stderr: {}}
	}
	s.out[stream].Write(p)
}

func (s *recordSink) endRun(_, run int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = append(s.ended, run)
}

func (s *recordSink) event(_ int, e proto.Event, _ time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e.Kind)
}

func fakeBoot(t *testing.T, script string, timeout time.Duration) (vmResult, *recordSink) {
	t.Helper()
	t.Setenv(qemutest.EnvFake, script)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "vigil-harness-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s := &recordSink{}
	res := boot(ctx, bootConfig{
		qemu: exe, kernel: &kernel.Kernel{Image: "vmlinuz"}, initrd: "initrd", accel: qemu.TCG,
		manifests: []string{manifestPath(0)}, memoryMB: 64, dir: dir,
	}, s)
	return res[0], s
}

// TestBootReportsExitStatus boots a fake guest that runs one program,
// which exits 3: its output arrives stream by stream and its status on
// the other channel.
func TestBootReportsExitStatus(t *testing.T) {
	r, s := fakeBoot(t, "run", time.Minute)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if !r.Ready || !r.Done || r.Uptime != 1500*time.Millisecond || r.Boot <= 0 {
		t.Errorf("result %+v", r)
	}
	if ev, ok := r.Exits[0]; !ok || ev.Code != 3 || ev.Duration != 20*time.Millisecond {
		t.Errorf("exit of run 0: %+v, %v", ev, ok)
	}
	if s.out[proto.Stdout].String() != "hello\n" || s.out[proto.Stderr].String() != "oops\n" {
		t.Errorf("stdout %q, stderr %q", s.out[proto.Stdout], s.out[proto.Stderr])
	}
	if !slices.Equal(s.ended, []int{0}) {
		t.Errorf("ended runs %v", s.ended)
	}
	if want := []proto.Kind{proto.KindReady, proto.KindStart, proto.KindExit, proto.KindDone}; !slices.Equal(s.events, want) {
		t.Errorf("events %v, want %v", s.events, want)
	}
}

// TestBootWithoutExitStatus boots a guest that dies in the middle of a
// run: the output so far arrives, and the run has no status.
func TestBootWithoutExitStatus(t *testing.T) {
	r, s := fakeBoot(t, "crash", time.Minute)
	if r.Err == nil || !strings.Contains(r.Err.Error(), "before it was done") {
		t.Errorf("Err = %v", r.Err)
	}
	if _, ok := r.Exits[0]; ok {
		t.Error("an exit status from a guest that never sent one")
	}
	if s.out[proto.Stdout].String() != "partial\n" {
		t.Errorf("stdout %q", s.out[proto.Stdout])
	}
	if b, err := os.ReadFile(r.ConsoleLog); err != nil || !strings.Contains(string(b), "Kernel panic") {
		t.Errorf("console log %q, %v", b, err)
	}
}

// TestBootDeadline boots a guest that never finishes: it is killed at the
// deadline and its console log stays.
func TestBootDeadline(t *testing.T) {
	r, _ := fakeBoot(t, "hang", 300*time.Millisecond)
	if !errors.Is(r.Err, qemu.ErrDeadline) {
		t.Fatalf("Err = %v, want ErrDeadline", r.Err)
	}
	if b, err := os.ReadFile(r.ConsoleLog); err != nil || !strings.Contains(string(b), "fake: booting") {
		t.Errorf("console log %q, %v", b, err)
	}
}

// TestSuiteSinkCountsSkips feeds test output through go tool test2json
// as a suite does, and checks what it counts.
func TestSuiteSinkCountsSkips(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("go: %v", err)
	}
	var out bytes.Buffer
	e := &Env{Go: "go", Log: io.Discard}
	s := Suite{Name: "x", Packages: []Package{pkgXDPHeartbeat}}
	sk := newSuiteSink(e, s, &syncWriter{w: &out}, t.TempDir(), 1)
	sk.output(0, 0, proto.Stdout, []byte("=== RUN   TestA\n--- PASS: TestA (0.00s)\n=== RUN   TestLinkLoss\n"))
	sk.output(0, 0, proto.Stdout, []byte("    fastpath_linux_test.go:393: kernel 6.1 has no tcx (6.6+)\n--- SKIP: TestLinkLoss (0.01s)\nPASS\n"))
	sk.endRun(0, 0)
	sk.wait()
	st := sk.stats(0, 0)
	if st == nil || st.passed != 1 || len(st.skips) != 1 || st.skips[0].Message != "fastpath_linux_test.go:393: kernel 6.1 has no tcx (6.6+)" {
		t.Fatalf("stats %+v", st)
	}
	exp, unexp := classifySkips(pkgXDPHeartbeat, "6.1.0-56-cloud-amd64", st.skips)
	if len(exp) != 1 || len(unexp) != 0 {
		t.Errorf("expected %v, unexpected %v", exp, unexp)
	}
	if !strings.Contains(out.String(), "--- SKIP: TestLinkLoss") {
		t.Errorf("output not printed: %q", out.String())
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
