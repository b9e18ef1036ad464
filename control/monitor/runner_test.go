package monitor

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitTimeout is how long a test waits for something that should happen
// within milliseconds; only a broken Runner gets near it.
const waitTimeout = 10 * time.Second

var (
	okResult   = Result{Status: OK, Message: "fine"}
	warnResult = Result{Status: Warning, Code: 106, Message: "Timeout occurred."}
	errResult  = Result{Status: Error, Code: CodeTimeout, Message: "Timeout occurred."}
)

// feeder is a Checker whose every check waits for the test to hand it its
// result, so that a test steps a Runner one check at a time.
type feeder struct {
	results chan Result
	calls   atomic.Int32
}

func newFeeder() *feeder { return &feeder{results: make(chan Result)} }

func (f *feeder) Check(ctx context.Context) Result {
	f.calls.Add(1)
	select {
	case r := <-f.results:
		return r
	case <-ctx.Done():
		return Result{Status: Error, Code: CodeTimeout, Message: "canceled: " + ctx.Err().Error()}
	}
}

// feed hands res to the next check, failing if none starts in time.
func (f *feeder) feed(t *testing.T, res Result) {
	t.Helper()
	select {
	case f.results <- res:
	case <-time.After(waitTimeout):
		t.Fatalf("no check started to take %+v", res)
	}
}

// transitions records OnChange calls as "prev>cur" strings.
type transitions struct {
	mu   sync.Mutex
	list []string
	last State
}

func (tr *transitions) record(_ string, prev, cur State) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.list = append(tr.list, prev.Status+">"+cur.Status)
	tr.last = cur
}

// expect waits until the recorded transitions are want: OnChange runs
// just after the state changes, so a test that saw the new state may get
// there first.
func (tr *transitions) expect(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		got := tr.get()
		if equal(got, want) {
			return
		}
		if len(got) > len(want) || time.Now().After(deadline) {
			t.Fatalf("transitions %v, want %v", got, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func (tr *transitions) get() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.list...)
}

// start runs r until the test ends, and checks that Run returns.
func start(t *testing.T, r *Runner) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Error("Run did not return after its context was canceled")
		}
	})
}

func waitState(t *testing.T, r *Runner, what string, cond func(State) bool) State {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		s := r.State()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: state is %+v", what, s)
		}
		time.Sleep(time.Millisecond)
	}
}

func status(want string, failures int) func(State) bool {
	return func(s State) bool { return s.Status == want && s.Failures == failures }
}

func isError(s State) bool { return s.Status == StateError }

func newStepped(retry int, active func() bool) (*Runner, *feeder, *transitions) {
	f := newFeeder()
	tr := &transitions{}
	r := NewRunner(Options{
		Name: "mon1", Checker: f, Interval: time.Millisecond, Timeout: time.Minute,
		Retry: retry, Active: active, OnChange: tr.record,
	})
	return r, f, tr
}

func equal(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func TestRetry(t *testing.T) {
	r, f, tr := newStepped(2, nil)
	if s := r.State(); s.Status != StateUnknown || s.Since.IsZero() {
		t.Fatalf("initial state %+v", s)
	}
	start(t, r)

	f.feed(t, okResult)
	waitState(t, r, "ok", status(StateOK, 0))
	f.feed(t, errResult)
	s := waitState(t, r, "1 failure", status(StateOK, 1))
	if s.Code != CodeTimeout || s.Message != "Timeout occurred." {
		t.Errorf("Code/Message should describe the latest check: %+v", s)
	}
	f.feed(t, errResult)
	waitState(t, r, "2 failures", status(StateOK, 2))
	f.feed(t, errResult)
	waitState(t, r, "error after Retry+1 failures", status(StateError, 3))
	f.feed(t, errResult)
	waitState(t, r, "error persists", status(StateError, 4))
	f.feed(t, warnResult)
	s = waitState(t, r, "warning at once", status(StateWarning, 0))
	if s.Code != 106 {
		t.Errorf("warning code %d", s.Code)
	}
	f.feed(t, errResult)
	waitState(t, r, "1 failure after warning", status(StateWarning, 1))
	f.feed(t, okResult)
	waitState(t, r, "ok again", status(StateOK, 0))

	want := []string{"unknown>ok", "ok>error", "error>warning", "warning>ok"}
	tr.expect(t, want...)
}

func TestRetryZeroFailsAtOnce(t *testing.T) {
	r, f, tr := newStepped(0, nil)
	start(t, r)
	f.feed(t, errResult)
	waitState(t, r, "error", status(StateError, 1))
	tr.expect(t, "unknown>error")
	if tr.last.Since.IsZero() || tr.last.Code != CodeTimeout {
		t.Errorf("OnChange cur = %+v", tr.last)
	}
}

func TestSuspendResume(t *testing.T) {
	r, f, tr := newStepped(1, nil)
	start(t, r)
	f.feed(t, okResult)
	waitState(t, r, "ok", status(StateOK, 0))
	f.feed(t, errResult)
	waitState(t, r, "1 failure", status(StateOK, 1))

	// A check is in flight now, waiting for its result: Suspend cancels it
	// and its (failed) result does not count.
	r.Suspend()
	s := waitState(t, r, "suspended", status(StateSuspended, 0))
	if s.Code != 0 || s.Message != "" {
		t.Errorf("suspended state %+v", s)
	}
	calls := f.calls.Load()
	select {
	case f.results <- okResult:
		t.Fatal("a check ran while suspended")
	case <-time.After(50 * time.Millisecond):
	}
	if f.calls.Load() != calls {
		t.Errorf("checks started while suspended")
	}
	r.Suspend() // twice is harmless
	r.CheckNow()

	r.Resume()
	f.feed(t, errResult) // a check runs at once
	waitState(t, r, "1 failure after resume", status(StateUnknown, 1))
	f.feed(t, okResult)
	waitState(t, r, "ok", status(StateOK, 0))

	want := []string{"unknown>ok", "ok>suspended", "suspended>unknown", "unknown>ok"}
	tr.expect(t, want...)
}

func TestSuspendBeforeRun(t *testing.T) {
	r, f, _ := newStepped(0, nil)
	r.Suspend()
	start(t, r)
	waitState(t, r, "suspended", status(StateSuspended, 0))
	if n := f.calls.Load(); n != 0 {
		t.Errorf("%d checks ran although suspended before Run", n)
	}
	r.Resume()
	f.feed(t, okResult)
	waitState(t, r, "ok", status(StateOK, 0))
}

func TestInactiveResetsFailures(t *testing.T) {
	var active atomic.Bool
	r, f, tr := newStepped(2, active.Load)
	start(t, r)
	waitState(t, r, "inactive", status(StateInactive, 0))
	if n := f.calls.Load(); n != 0 {
		t.Errorf("%d checks while inactive", n)
	}

	active.Store(true)
	f.feed(t, errResult)
	waitState(t, r, "1 failure", status(StateUnknown, 1))
	waitState(t, r, "the next check in flight", func(State) bool { return f.calls.Load() == 2 })
	active.Store(false)
	f.feed(t, errResult) // the check in flight still counts...
	waitState(t, r, "inactive, failures reset", status(StateInactive, 0))

	active.Store(true)
	f.feed(t, errResult) // ...but the count starts over: 1, not 3 (an error)
	waitState(t, r, "1 failure", status(StateUnknown, 1))
	f.feed(t, okResult)
	waitState(t, r, "ok", status(StateOK, 0))

	want := []string{"unknown>inactive", "inactive>unknown", "unknown>inactive", "inactive>unknown", "unknown>ok"}
	tr.expect(t, want...)
}

func TestRearmReportsPersistingError(t *testing.T) {
	r, f, tr := newStepped(1, nil)
	start(t, r)
	f.feed(t, errResult)
	f.feed(t, errResult)
	waitState(t, r, "error", status(StateError, 2))
	f.feed(t, errResult)
	waitState(t, r, "error persists", status(StateError, 3))
	tr.expect(t, "unknown>error") // a persisting error is not reported again by itself

	// The recovery layer acted and re-arms; a check is in flight, started
	// before the recovery: it is canceled and does not count.
	r.Rearm()
	waitState(t, r, "unknown, failures kept", status(StateUnknown, 3))
	f.feed(t, errResult)
	waitState(t, r, "error again", status(StateError, 4))
	f.feed(t, okResult)
	waitState(t, r, "ok", status(StateOK, 0))
	r.Rearm() // not in error: nothing happens
	f.feed(t, okResult)
	waitState(t, r, "still ok", status(StateOK, 0))

	want := []string{"unknown>error", "error>unknown", "unknown>error", "error>ok"}
	tr.expect(t, want...)
}

func TestRearmFromOnChange(t *testing.T) {
	// A recovery layer that re-arms from inside OnChange must not deadlock.
	var r *Runner
	var errors atomic.Int32
	r = NewRunner(Options{
		Name: "self-rearm", Interval: time.Millisecond, Timeout: time.Minute,
		Checker: CheckerFunc(func(context.Context) Result { return errResult }),
		OnChange: func(_ string, _, cur State) {
			if cur.Status == StateError && errors.Add(1) < 3 {
				r.Rearm()
				r.CheckNow()
			}
		},
	})
	start(t, r)
	waitState(t, r, "three error reports", func(State) bool { return errors.Load() >= 3 })
}

func TestCheckNow(t *testing.T) {
	f := newFeeder()
	r := NewRunner(Options{Name: "slow", Checker: f, Interval: time.Hour, Timeout: time.Minute})
	start(t, r)
	f.feed(t, okResult) // the first check runs at once
	waitState(t, r, "ok", status(StateOK, 0))
	r.CheckNow()
	f.feed(t, errResult) // without CheckNow the next check would be an hour away
	waitState(t, r, "error", status(StateError, 1))
}

func TestTimeoutBoundsEachCheck(t *testing.T) {
	var deadlines atomic.Int32
	r := NewRunner(Options{
		Name: "slow", Interval: time.Millisecond, Timeout: 20 * time.Millisecond,
		Checker: CheckerFunc(func(ctx context.Context) Result {
			if _, ok := ctx.Deadline(); ok {
				deadlines.Add(1)
			}
			<-ctx.Done()
			return Result{Status: Error, Code: CodeTimeout, Message: "Timeout occurred."}
		}),
	})
	start(t, r)
	waitState(t, r, "error after a timeout", isError)
	if deadlines.Load() == 0 {
		t.Error("the check's context had no deadline")
	}
}

func TestOverrunningCheck(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	r := NewRunner(Options{
		Name: "stuck", Interval: 20 * time.Millisecond, Timeout: 20 * time.Millisecond, Retry: 1,
		Checker: CheckerFunc(func(ctx context.Context) Result {
			if calls.Add(1) == 1 {
				<-release // ignores ctx
			}
			return okResult
		}),
	})
	start(t, r)
	s := waitState(t, r, "error while the check is stuck", status(StateError, 2))
	if s.Code != CodeTimeout || !strings.HasPrefix(s.Message, "Timeout occurred.") {
		t.Errorf("state %+v", s)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d checks started while one was stuck, want 1", n)
	}
	close(release)
	waitState(t, r, "ok once the stuck check returned", status(StateOK, 0))
}

func TestPanickingChecker(t *testing.T) {
	r := NewRunner(Options{
		Name: "panics", Interval: time.Millisecond,
		Checker: CheckerFunc(func(context.Context) Result { panic("boom") }),
	})
	start(t, r)
	s := waitState(t, r, "error", isError)
	if s.Code != CodeInternal || !strings.Contains(s.Message, "boom") {
		t.Errorf("state %+v", s)
	}
}

func TestDefaultsAndNilChecker(t *testing.T) {
	r := NewRunner(Options{Name: "nil", Interval: time.Millisecond, Retry: -1})
	if r.Name() != "nil" || r.opts.Timeout != time.Millisecond || r.opts.Retry != 0 {
		t.Errorf("defaults: %+v", r.opts)
	}
	start(t, r)
	s := waitState(t, r, "error", isError)
	if s.Code != CodeInternal {
		t.Errorf("state %+v", s)
	}
	if d := NewRunner(Options{}); d.opts.Interval != time.Second || d.opts.Timeout != time.Second {
		t.Errorf("zero options: %+v", d.opts)
	}
}

func TestClockStampsSince(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	f := newFeeder()
	r := NewRunner(Options{Name: "clock", Checker: f, Interval: time.Millisecond, Timeout: time.Minute,
		Clock: func() time.Time { return at }})
	start(t, r)
	f.feed(t, okResult)
	if s := waitState(t, r, "ok", status(StateOK, 0)); !s.Since.Equal(at) {
		t.Errorf("Since = %v, want %v", s.Since, at)
	}
}

func TestSecondRunReturns(t *testing.T) {
	r, f, _ := newStepped(0, nil)
	start(t, r)
	f.feed(t, okResult)
	waitState(t, r, "ok", status(StateOK, 0))
	done := make(chan struct{})
	go func() {
		r.Run(context.Background())
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("a second Run did not return")
	}
}

func TestStatusString(t *testing.T) {
	for s, want := range map[Status]string{OK: "ok", Warning: "warning", Error: "error", 7: "status(7)"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", s, s.String(), want)
		}
	}
}
