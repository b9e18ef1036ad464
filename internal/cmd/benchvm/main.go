// Command benchvm runs make bench-vm: it boots the VM harness's Debian 6.1
// kernel with go test -exec and runs vmtests/drbd's BenchmarkMirrorVM
// there, which measures DRBD 8.4 in protocol C and Vigil's mirror disk in
// sync mode with make bench-mirror's workloads, each on its kernel block
// device (/dev/drbd0, /dev/nbdN) with O_DIRECT. It copies the benchmark's
// output as it comes and ends with its two summary lines:
//
//	bench-vm: seq-MBps drbd=N vigil-sync=N
//	bench-vm: rand4k-p99-us drbd=N vigil-sync=N
//
// Usage, from the module's root:
//
//	benchvm [-exec bin/vigil-vmexec] [-timeout 30m] [-benchvm.mib N] [-benchvm.rounds N]
//	        [-benchvm.rand-time D] [-benchvm.seq-qd N] [-benchvm.seed N]
//
// The -benchvm.* flags go to the benchmark (vmtests/drbd/bench_linux_test.go
// says what they mean). vigil-vmexec must be built with CGO_ENABLED=0
// (make bench-vm builds it).
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The benchmark and its package.
const (
	benchPackage = "./vmtests/drbd/"
	benchName    = "^BenchmarkMirrorVM$"
)

// The summary lines' prefixes, in the order they end the output.
var summaryPrefixes = []string{"bench-vm: seq-MBps ", "bench-vm: rand4k-p99-us "}

func main() {
	ownArgs, benchArgs := splitArgs(os.Args[1:])
	fs := flag.NewFlagSet("benchvm", flag.ExitOnError)
	execPath := fs.String("exec", "bin/vigil-vmexec", "the go test -exec `wrapper` that runs the test binary in the VM")
	timeout := fs.Duration("timeout", 30*time.Minute, "the benchmark binary's -test.timeout (the VM gets 3 minutes more)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: benchvm [-exec PATH] [-timeout D] [-benchvm.FLAG=VALUE...]")
		fs.PrintDefaults()
	}
	fs.Parse(ownArgs)
	if fs.NArg() > 0 {
		fail(fmt.Errorf("unexpected arguments %q (the benchmark's flags start with -benchvm.)", fs.Args()))
	}
	wrapper, err := filepath.Abs(*execPath)
	if err != nil {
		fail(err)
	}
	if _, err := os.Stat(wrapper); err != nil {
		fail(fmt.Errorf("%w (make bench-vm builds it)", err))
	}
	args := []string{"test", "-tags", "vmtest", "-exec", wrapper, "-count=1", "-timeout", timeout.String(),
		"-run", "^$", "-bench", benchName, "-benchtime", "1x", benchPackage}
	if len(benchArgs) > 0 {
		args = append(append(args, "-args"), benchArgs...)
	}
	cmd := exec.Command("go", args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "benchvm: go %s\n", strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		fail(err)
	}
	lines, copyErr := copyLines(os.Stdout, out)
	runErr := cmd.Wait()
	if err := errors.Join(copyErr, runErr); err != nil {
		fail(fmt.Errorf("go test: %w", err))
	}
	sum, err := summary(lines)
	if err != nil {
		fail(err)
	}
	for _, l := range sum {
		fmt.Println(l)
	}
}

// splitArgs separates the benchmark's -benchvm.* flags from the command's
// own.
func splitArgs(args []string) (own, bench []string) {
	for _, a := range args {
		if strings.HasPrefix(strings.TrimLeft(a, "-"), "benchvm.") && strings.HasPrefix(a, "-") {
			bench = append(bench, a)
			continue
		}
		own = append(own, a)
	}
	return own, bench
}

// copyLines copies r to w line by line and returns the lines.
func copyLines(w io.Writer, r io.Reader) ([]string, error) {
	var lines []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if _, err := fmt.Fprintln(w, sc.Text()); err != nil {
			return lines, err
		}
	}
	return lines, sc.Err()
}

// summary returns the last line of each summary prefix, in order; it
// fails if one is missing.
func summary(lines []string) ([]string, error) {
	out := make([]string, len(summaryPrefixes))
	for _, l := range lines {
		for i, p := range summaryPrefixes {
			if strings.HasPrefix(l, p) {
				out[i] = l
			}
		}
	}
	for i, l := range out {
		if l == "" {
			return nil, fmt.Errorf("the benchmark printed no %q line", strings.TrimSpace(summaryPrefixes[i]))
		}
	}
	return out, nil
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "benchvm: %v\n", err)
	os.Exit(1)
}
