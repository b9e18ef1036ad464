package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/vmtests/internal/proto"
)

// execMargin is added to a test binary's own -test.timeout for booting
// and shutting down the VM.
const execMargin = 3 * time.Minute

// pathFlags maps the test flags whose value is a path the test binary
// writes to whether that path is a directory (else a file). The guest
// creates the directories; what is written there stays in the VM.
var pathFlags = map[string]bool{
	"test.testlogfile": false, "test.coverprofile": false, "test.cpuprofile": false,
	"test.memprofile": false, "test.blockprofile": false, "test.mutexprofile": false,
	"test.trace": false, "test.outputdir": true, "test.gocoverdir": true, "test.fuzzcachedir": true,
}

// forwardEnv returns the host environment a test in the VM gets: CI, the
// Go runtime's settings, and the module's VIGIL_ variables except the
// harness's own (VIGIL_VM...).
func forwardEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "CI", k == "GOTRACEBACK", k == "GODEBUG", k == "GOMAXPROCS":
		case strings.HasPrefix(k, "VIGIL_") && !strings.HasPrefix(k, "VIGIL_VM"):
		default:
			continue
		}
		out = append(out, kv)
	}
	return out
}

// Exec runs the test binary with args in a VM, the way go test -exec
// does: dir is the package's directory (go test's working directory for
// the binary), the binary's stdout and stderr are copied to stdout and
// stderr unchanged, and the returned code is the binary's exit status.
func (e *Env) Exec(ctx context.Context, binary string, args []string, dir string, stdout, stderr io.Writer) (int, error) {
	rel, err := e.RelPackage(dir)
	if err != nil {
		return 1, err
	}
	pkg := FindPackage(rel)
	init, err := os.Executable()
	if err != nil {
		return 1, err
	}
	k, accel, err := e.setup(ctx, init)
	if err != nil {
		return 1, err
	}
	if accel.Probed && accel.Note != "" {
		fmt.Fprintf(e.Log, "vigil-vmexec: %s\n", accel.Note)
	}
	work, err := os.MkdirTemp("", "vigil-vm-")
	if err != nil {
		return 1, err
	}
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(work)
		}
	}()

	guestTest := path.Join(guestBin, filepath.Base(binary))
	files := map[string]string{guestTest: binary}
	var env []string
	for _, b := range pkg.Binaries {
		name := path.Base(b.Path)
		out := filepath.Join(work, name)
		if err := e.BuildBinary(ctx, b.Path, out); err != nil {
			return 1, err
		}
		files[path.Join(guestBin, name)] = out
		env = append(env, b.Env+"="+path.Join(guestBin, name))
	}
	makeDirs := writeDirs(args)
	if ex := applicable(pkg.Exclude, k.Release); len(ex) > 0 {
		if hasFlag(args, "test.skip") {
			fmt.Fprintf(e.Log, "vigil-vmexec: -test.skip given: not adding the harness's exclusions for %s\n", rel)
		} else {
			pat, err := skipPattern(ex)
			if err != nil {
				return 1, err
			}
			for _, s := range ex {
				fmt.Fprintf(e.Log, "vigil-vmexec: not running %s on %s: %s\n", s.Test, k.Release, s.Because)
			}
			args = append(args, "-test.skip="+pat)
		}
	}
	run := proto.Run{
		Name: rel, Path: guestTest, Args: args,
		Env: append(env, pkg.Env...), Dir: path.Join(guestSrc, rel), MakeDirs: makeDirs,
	}
	img, err := e.packageImage(k, init, []Package{pkg}, 1, func(int) []proto.Run { return []proto.Run{run} })
	if err != nil {
		return 1, err
	}
	img.files = mergeMaps(img.files, files)
	// go test builds with cgo where there is a C compiler: such a binary
	// needs the host's libc in the VM.
	img.libsFor = []string{binary}
	initrd := filepath.Join(work, "initrd")
	if _, err := writeImage(k, img, initrd); err != nil {
		return 1, err
	}
	ctx, cancel := context.WithTimeout(ctx, testTimeout(args)+execMargin)
	defer cancel()
	var console io.Writer
	if os.Getenv(EnvConsole) == "1" {
		console = e.Log
	}
	res := boot(ctx, bootConfig{
		kernel: k, initrd: initrd, accel: accel.Name, manifests: []string{manifestPath(0)},
		memoryMB: 1024, dir: work, console: console,
	}, &execSink{stdout: stdout, stderr: stderr})
	r := res[0]
	ev, ok := r.Exits[0]
	if r.Err != nil || !ok {
		keep = true
		for _, m := range r.Errors {
			fmt.Fprintf(stderr, "vigil-vmexec: guest: %s\n", m)
		}
		err := r.Err
		if err == nil {
			err = errors.New("the guest reported no exit status")
		}
		fmt.Fprintf(stderr, "vigil-vmexec: %v\nvigil-vmexec: console log %s; last lines:\n%s", err, r.ConsoleLog, tail(r.ConsoleLog, 30))
		return 1, nil
	}
	return ev.Code, nil
}

// writeDirs returns the directories the paths that args ask the test
// binary to write need.
func writeDirs(args []string) []string {
	var dirs []string
	for _, a := range args {
		name, val, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !ok || !strings.HasPrefix(a, "-") {
			continue
		}
		isDir, known := pathFlags[name]
		if !known || val == "" || !path.IsAbs(val) {
			continue
		}
		if isDir {
			dirs = append(dirs, val)
		} else {
			dirs = append(dirs, path.Dir(val))
		}
	}
	return dirs
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		n, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && n == name {
			return true
		}
	}
	return false
}

// testTimeout is the binary's -test.timeout, or an hour when unset or 0.
func testTimeout(args []string) time.Duration {
	for _, a := range args {
		n, v, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if ok && n == "test.timeout" {
			if d, err := time.ParseDuration(v); err == nil && d > 0 {
				return d
			}
		}
	}
	return time.Hour
}

// execSink copies a single run's output to the caller's streams.
type execSink struct {
	mu             sync.Mutex
	stdout, stderr io.Writer
}

func (s *execSink) output(_, _ int, stream byte, p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stream == proto.Stderr {
		s.stderr.Write(p)
	} else {
		s.stdout.Write(p)
	}
}

func (s *execSink) endRun(int, int)                   {}
func (s *execSink) event(int, proto.Event, time.Time) {}

// tail returns the last n lines of the file at p.
func tail(p string, n int) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return err.Error() + "\n"
	}
	lines := strings.SplitAfter(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

func mergeMaps(a, b map[string]string) map[string]string {
	if a == nil {
		a = map[string]string{}
	}
	for k, v := range b {
		a[k] = v
	}
	return a
}
