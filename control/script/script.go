// Package script is the one place where Vigil runs external programs: the
// start and stop scripts of exec resources and the scripts of exec
// monitors.
//
// A program runs in its own process group with a minimal environment, its
// output (stdout and stderr together) is kept up to its last 4 KiB, and a
// timeout ends the whole group: SIGTERM first, SIGKILL after a grace
// period, so a script cannot leave children behind when it is cut short.
package script

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

// Sentinel errors, wrapped by what Run returns.
var (
	// ErrTimeout means the program did not finish within its timeout (or
	// before its context's deadline) and its process group was killed.
	ErrTimeout = errors.New("timed out")
	// ErrExit means the program exited with a non-zero code or was killed
	// by a signal; Result.ExitCode says which.
	ErrExit = errors.New("failed")
)

const (
	// OutputLimit is how much output Result keeps: the last bytes.
	OutputLimit = 4096
	// basePath is the PATH of every program, and where a Path without a
	// slash is looked up.
	basePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// lastLineLimit bounds the line LastLine returns.
	lastLineLimit = 200
)

// Timing of a kill; variables so that tests can shorten them.
var (
	// killGrace is how long the process group has between SIGTERM and
	// SIGKILL.
	killGrace = 2 * time.Second
	// pipeGrace bounds how long Run keeps reading output after the program
	// exited while processes it left running still hold the pipe open.
	pipeGrace = 500 * time.Millisecond
)

// Spec says what to run.
type Spec struct {
	// Path is the program, absolute or looked up in the base PATH.
	Path string
	// Args are the arguments after the program's name.
	Args []string
	// Env holds KEY=VALUE entries added to the minimal base environment
	// (PATH and HOME=/); an entry overrides a base one with the same key.
	Env []string
	// Dir is the working directory; empty means "/".
	Dir string
	// Timeout bounds the run; zero means only ctx bounds it.
	Timeout time.Duration
}

// Result is what a run produced.
type Result struct {
	// ExitCode is the program's exit code, or -1 when it did not exit on
	// its own (killed by a signal, or never started).
	ExitCode int
	// Output is the combined stdout and stderr, its last OutputLimit bytes.
	Output string
	// Duration is how long the run took.
	Duration time.Duration
}

// Runner runs programs. Exec is the real one, Fake the one for tests.
type Runner interface {
	Run(ctx context.Context, s Spec) (Result, error)
}

// Exec is the real Runner; it calls Run.
type Exec struct{}

// Run implements Runner.
func (Exec) Run(ctx context.Context, s Spec) (Result, error) { return Run(ctx, s) }

// Run runs s.Path and waits for it. It returns an error when the program
// cannot be started, when it times out (the error wraps ErrTimeout; its
// process group was sent SIGTERM, then SIGKILL after a 2 s grace), when
// ctx is canceled (same kill, the error wraps context.Canceled), or when it
// exits with a code other than 0 (the error wraps ErrExit). Errors name the
// path and end with the last line of output. The Result is filled in as
// far as known, errors or not.
//
// Processes the program leaves running after a normal exit (daemons that a
// start script launched) are left alone.
func Run(ctx context.Context, s Spec) (Result, error) {
	res := Result{ExitCode: -1}
	path, err := resolve(s.Path)
	if err != nil {
		return res, fmt.Errorf("run %s: %w", s.Path, err)
	}
	env := []string{"PATH=" + basePath, "HOME=/"}
	for _, kv := range s.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return res, fmt.Errorf("run %s: env entry %q is not KEY=VALUE", s.Path, kv)
		}
		env = append(env, kv)
	}
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Timeout)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("run %s: not started: %w", s.Path, err)
	}

	out := &tail{}
	cmd := exec.Command(path, s.Args...)
	cmd.Args[0] = s.Path
	cmd.Env = env
	cmd.Dir = s.Dir
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	cmd.Stdout = out // the same writer: one pipe for both
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = pipeGrace

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("run %s: %w", s.Path, err)
	}
	pgid := cmd.Process.Pid // Setpgid: the program leads its own group
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	var waitErr, stopped error
	select {
	case waitErr = <-waited:
	case <-ctx.Done():
		stopped = ctx.Err()
		waitErr = killGroup(pgid, waited)
	}
	res.Duration = time.Since(start)
	res.Output = out.String()
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}

	switch {
	case errors.Is(stopped, context.DeadlineExceeded):
		return res, withLastLine(fmt.Errorf("run %s: %w after %s, process group killed", s.Path, ErrTimeout, res.Duration.Round(time.Millisecond)), res.Output)
	case stopped != nil:
		return res, withLastLine(fmt.Errorf("run %s: %w, process group killed", s.Path, stopped), res.Output)
	case cmd.ProcessState == nil:
		return res, fmt.Errorf("run %s: %w", s.Path, waitErr)
	}
	return res, exitError(s.Path, res)
}

// exitError is the error of a run that ended on its own: nil for exit code
// 0, else one naming the code (or signal) and the last line of output.
func exitError(path string, res Result) error {
	if res.ExitCode == 0 {
		return nil
	}
	if res.ExitCode < 0 {
		return withLastLine(fmt.Errorf("run %s: %w: killed by a signal", path, ErrExit), res.Output)
	}
	return withLastLine(fmt.Errorf("run %s: %w with exit code %d", path, ErrExit, res.ExitCode), res.Output)
}

func withLastLine(err error, output string) error {
	if line := LastLine(output); line != "" {
		return fmt.Errorf("%w: %s", err, line)
	}
	return err
}

// killGroup ends process group pgid: SIGTERM, then SIGKILL to whatever is
// left of the group after killGrace. It returns once the group is gone (or
// another killGrace has passed) with what the wait on the group leader
// returned.
func killGroup(pgid int, waited <-chan error) error {
	syscall.Kill(-pgid, syscall.SIGTERM)
	grace := time.NewTimer(killGrace)
	defer grace.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	var waitErr error
	leaderDone := false
	for {
		select {
		case waitErr = <-waited:
			leaderDone = true
		case <-poll.C:
		case <-grace.C:
			// The group id stays reserved while any member lives, so
			// this cannot hit an unrelated process.
			syscall.Kill(-pgid, syscall.SIGKILL)
			if !leaderDone {
				waitErr = <-waited
			}
			// SIGKILL is delivered asynchronously; give the group a moment
			// to be gone (a process stuck in the kernel may take longer).
			for end := time.Now().Add(killGrace); groupAlive(pgid) && time.Now().Before(end); {
				time.Sleep(5 * time.Millisecond)
			}
			return waitErr
		}
		if leaderDone && !groupAlive(pgid) {
			return waitErr // the whole group is gone
		}
	}
}

// groupAlive reports whether process group pgid has a member that is not
// a zombie. Orphaned members are reparented to init, which may be slow to
// reap them (or, in some containers, never does); a zombie is dead enough.
func groupAlive(pgid int) bool {
	if errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) {
		return false
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true // cannot tell: assume alive, SIGKILL will follow
	}
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		state, pgrp, ok := parseStat(string(stat))
		if ok && pgrp == pgid && state != 'Z' && state != 'X' {
			return true
		}
	}
	return false
}

// parseStat returns the state and process group of a /proc/PID/stat line:
// "PID (COMM) STATE PPID PGRP ...", where COMM may hold spaces and
// parentheses.
func parseStat(stat string) (state byte, pgrp int, ok bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, false
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], pgrp, true
}

// resolve returns path itself when it has a slash, else the first
// executable of that name in the base PATH.
func resolve(path string) (string, error) {
	if path == "" {
		return "", errors.New("no program")
	}
	if strings.Contains(path, "/") {
		return path, nil
	}
	for _, dir := range filepath.SplitList(basePath) {
		p := filepath.Join(dir, path)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("not found in %s", basePath)
}

// LastLine returns the last non-empty line of output, trimmed of spaces and
// cut to 200 bytes: what an error message or a monitor's message quotes.
func LastLine(output string) string {
	output = strings.TrimRight(output, " \t\r\n")
	if i := strings.LastIndexByte(output, '\n'); i >= 0 {
		output = output[i+1:]
	}
	output = strings.TrimSpace(output)
	if len(output) > lastLineLimit {
		cut := lastLineLimit
		for cut > 0 && !utf8.RuneStart(output[cut]) {
			cut--
		}
		output = output[:cut] + "…"
	}
	return output
}

// tail is an io.Writer that keeps the last OutputLimit bytes written.
type tail struct {
	mu        sync.Mutex
	buf       []byte
	truncated bool
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= OutputLimit {
		t.buf = append(t.buf[:0], p[len(p)-OutputLimit:]...)
		t.truncated = true
		return n, nil
	}
	if over := len(t.buf) + len(p) - OutputLimit; over > 0 {
		t.buf = t.buf[:copy(t.buf, t.buf[over:])]
		t.truncated = true
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// String returns the kept bytes; when older output was dropped, it starts
// at the first whole UTF-8 character.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if t.truncated {
		for i := 0; i < utf8.UTFMax && len(b) > 0 && !utf8.RuneStart(b[0]); i++ {
			b = b[1:]
		}
	}
	return string(b)
}
