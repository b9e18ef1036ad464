package script

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func sh(script string, args ...string) Spec {
	return Spec{Path: "/bin/sh", Args: append([]string{"-c", script, "sh"}, args...), Timeout: 30 * time.Second}
}

func TestExitZero(t *testing.T) {
	res, err := Run(context.Background(), sh("echo hello; echo world >&2"))
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || res.Output != "hello\nworld\n" || res.Duration <= 0 {
		t.Errorf("Result = %+v", res)
	}
}

func TestExitThree(t *testing.T) {
	res, err := Run(context.Background(), sh(`echo one; echo "  last words  " >&2; echo; exit 3`))
	if !errors.Is(err, ErrExit) {
		t.Fatalf("error = %v, want one wrapping ErrExit", err)
	}
	if want := "run /bin/sh: failed with exit code 3: last words"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if res.ExitCode != 3 || res.Output != "one\n  last words  \n\n" {
		t.Errorf("Result = %+v", res)
	}
}

func TestKilledBySignal(t *testing.T) {
	res, err := Run(context.Background(), sh("echo bye; kill -KILL $$"))
	if !errors.Is(err, ErrExit) || !strings.Contains(err.Error(), "killed by a signal: bye") {
		t.Errorf("error = %v", err)
	}
	if res.ExitCode != -1 {
		t.Errorf("ExitCode = %d, want -1", res.ExitCode)
	}
}

// gone reports whether pid has exited (a zombie counts: init may be slow to
// reap orphans).
func gone(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	state, _, ok := parseStat(string(stat))
	return ok && (state == 'Z' || state == 'X')
}

func readPID(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	return pid
}

func TestTimeoutKillsGrandchild(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	s := sh(`sleep 1000 & echo $! > "$1"; echo started; wait`, pidFile)
	s.Timeout = 300 * time.Millisecond
	res, err := Run(context.Background(), s)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("error = %v, want one wrapping ErrTimeout", err)
	}
	if !strings.HasPrefix(err.Error(), "run /bin/sh: timed out after ") || !strings.HasSuffix(err.Error(), ", process group killed: started") {
		t.Errorf("error = %q", err)
	}
	if res.ExitCode != -1 {
		t.Errorf("ExitCode = %d, want -1", res.ExitCode)
	}
	if pid := readPID(t, pidFile); !gone(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("grandchild %d survived the timeout", pid)
	}
}

func TestTimeoutEscalatesToSIGKILL(t *testing.T) {
	saved := killGrace
	killGrace = 300 * time.Millisecond
	t.Cleanup(func() { killGrace = saved })

	pidFile := filepath.Join(t.TempDir(), "pid")
	// The grandchild ignores SIGTERM and does not hold the output pipe.
	s := sh(`sh -c 'trap "" TERM; exec sleep 1000' >/dev/null 2>&1 & echo $! > "$1"; wait`, pidFile)
	s.Timeout = 200 * time.Millisecond
	_, err := Run(context.Background(), s)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("error = %v, want one wrapping ErrTimeout", err)
	}
	if pid := readPID(t, pidFile); !gone(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("grandchild %d ignoring SIGTERM survived", pid)
	}
}

func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := Run(ctx, sh("sleep 1000"))
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Errorf("error = %v, want one wrapping context.Canceled", err)
	}
	if _, err := Run(ctx, sh("exit 0")); err == nil || !strings.Contains(err.Error(), "not started") {
		t.Errorf("Run with a done ctx: %v", err)
	}
}

func TestBackgroundDaemonSurvivesNormalExit(t *testing.T) {
	// A start script that launches a daemon holding the output pipe: Run
	// returns once the script exits, and the daemon keeps running.
	res, err := Run(context.Background(), sh("sleep 1000 & echo $!"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(res.Output))
	if err != nil {
		t.Fatalf("output %q: %v", res.Output, err)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	if gone(pid) {
		t.Errorf("the daemon %d was killed by a normal exit", pid)
	}
}

func TestEnv(t *testing.T) {
	t.Setenv("VIGIL_TEST_LEAK", "leaked")
	s := sh(`echo "foo=$FOO home=$HOME path=$PATH leak=$VIGIL_TEST_LEAK"`)
	s.Env = []string{"FOO=bar baz", "PATH=/usr/bin:/bin"}
	res, err := Run(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if want := "foo=bar baz home=/ path=/usr/bin:/bin leak=\n"; res.Output != want {
		t.Errorf("output %q, want %q", res.Output, want)
	}

	s.Env = []string{"NOEQUALS"}
	if _, err := Run(context.Background(), s); err == nil || !strings.Contains(err.Error(), `"NOEQUALS" is not KEY=VALUE`) {
		t.Errorf("bad env entry: %v", err)
	}
}

func TestDirAndLookup(t *testing.T) {
	res, err := Run(context.Background(), Spec{Path: "pwd"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Output != "/\n" {
		t.Errorf("default dir: %q, want /", res.Output)
	}
	dir := t.TempDir()
	res, err = Run(context.Background(), Spec{Path: "pwd", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(res.Output) != dir {
		t.Errorf("dir: %q, want %q", res.Output, dir)
	}
}

func TestNotStartable(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/nonexistent/prog", "run /nonexistent/prog: "},
		{"vigil-no-such-program", "run vigil-no-such-program: not found in "},
		{"", "run : no program"},
	} {
		res, err := Run(context.Background(), Spec{Path: tc.path})
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Run(%q) error = %v, want prefix %q", tc.path, err, tc.want)
		}
		if res.ExitCode != -1 {
			t.Errorf("Run(%q) ExitCode = %d, want -1", tc.path, res.ExitCode)
		}
	}
}

func TestOutputTruncation(t *testing.T) {
	res, err := Run(context.Background(), sh(`i=0; while [ $i -lt 1000 ]; do echo "line $i é"; i=$((i+1)); done; echo END`))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Output) > OutputLimit || len(res.Output) < OutputLimit-3 {
		t.Errorf("output is %d bytes, want the last %d", len(res.Output), OutputLimit)
	}
	if !strings.HasSuffix(res.Output, "line 999 é\nEND\n") {
		t.Errorf("output ends %q", res.Output[len(res.Output)-20:])
	}
	if !strings.Contains(res.Output, "line 700 é") || strings.Contains(res.Output, "line 1 é") {
		t.Errorf("output does not hold the tail")
	}
}

func TestTail(t *testing.T) {
	var tl tail
	tl.Write([]byte(strings.Repeat("a", OutputLimit-1)))
	tl.Write([]byte("é")) // two bytes: the first 'a' goes
	if s := tl.String(); len(s) != OutputLimit || !strings.HasSuffix(s, "aé") {
		t.Errorf("len %d, suffix %q", len(s), s[len(s)-3:])
	}
	tl.Write([]byte("x")) // drops the first 'a' again, not half of é
	tl.Write([]byte(strings.Repeat("é", OutputLimit)))
	if s := tl.String(); !strings.HasPrefix(s, "é") || len(s) != OutputLimit {
		t.Errorf("big write: len %d, prefix %q", len(s), s[:2])
	}
	var odd tail
	odd.Write([]byte("xé"))
	odd.Write([]byte(strings.Repeat("b", OutputLimit-1))) // leaves the second byte of é first
	if s := odd.String(); strings.HasPrefix(s, "\xa9") || len(s) != OutputLimit-1 {
		t.Errorf("partial rune kept: len %d prefix %q", len(s), s[:1])
	}
}

func TestLastLine(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "",
		"one\ntwo\n":             "two",
		"one\n  two  \n\n \n":    "two",
		"single":                 "single",
		strings.Repeat("é", 150): strings.Repeat("é", 100) + "…",
		"a\r\nb\r\n":             "b",
	} {
		if got := LastLine(in); got != want {
			t.Errorf("LastLine(%.20q) = %q, want %q", in, got, want)
		}
	}
}

func TestFake(t *testing.T) {
	f := &Fake{Func: func(_ context.Context, s Spec) (Result, error) {
		if s.Path == "/fail" {
			return Result{ExitCode: 2, Output: "bad\n"}, nil
		}
		return Result{Output: "ok\n"}, nil
	}}
	var r Runner = f
	if res, err := r.Run(context.Background(), Spec{Path: "/ok", Args: []string{"a"}}); err != nil || res.Output != "ok\n" {
		t.Errorf("ok: %+v %v", res, err)
	}
	_, err := r.Run(context.Background(), Spec{Path: "/fail"})
	if !errors.Is(err, ErrExit) || err.Error() != "run /fail: failed with exit code 2: bad" {
		t.Errorf("fail: %v", err)
	}
	calls := f.Calls()
	if len(calls) != 2 || calls[0].Path != "/ok" || calls[0].Args[0] != "a" || calls[1].Path != "/fail" {
		t.Errorf("Calls = %+v", calls)
	}
	var zero Fake
	if _, err := zero.Run(context.Background(), Spec{Path: "/x"}); err != nil {
		t.Errorf("zero Fake: %v", err)
	}
	var _ Runner = Exec{}
}

func TestParseStat(t *testing.T) {
	state, pgrp, ok := parseStat("123 (a (weird) name) S 1 456 456 0 -1")
	if !ok || state != 'S' || pgrp != 456 {
		t.Errorf("parseStat = %c %d %v", state, pgrp, ok)
	}
	if _, _, ok := parseStat("garbage"); ok {
		t.Error("parseStat(garbage) ok")
	}
}
