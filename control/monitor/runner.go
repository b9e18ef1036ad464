package monitor

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Monitor states, as the API reports them.
const (
	StateOK        = "ok"
	StateWarning   = "warning"
	StateError     = "error"
	StateSuspended = "suspended" // by the operator
	StateInactive  = "inactive"  // an "active" monitor whose target is not online here
	StateUnknown   = "unknown"   // not checked yet, resumed, or re-armed
)

// overrunGrace is how long a check may run past its timeout before the
// Runner stops waiting for it and reports a timeout itself.
const overrunGrace = time.Second

// Options configure a Runner.
type Options struct {
	// Name names the monitor in OnChange calls.
	Name string
	// Checker is what is checked. A nil Checker makes every check an
	// internal error.
	Checker Checker
	// Interval is the time from the start of one check to the start of
	// the next; zero or less means one second.
	Interval time.Duration
	// Timeout bounds one check; zero or less means Interval.
	Timeout time.Duration
	// Retry is how many failed checks in a row are tolerated: the monitor
	// reports Error after Retry+1. Less than zero means zero.
	Retry int
	// Active gates the monitor: while it returns false the monitor is
	// inactive, runs no checks and its failure count is reset. Nil means
	// always active. It is called from Run's goroutine before each check.
	Active func() bool
	// OnChange, if not nil, is called on every transition of the State's
	// Status (ok to error, error to unknown on Rearm, ...), from Run's
	// goroutine, one call at a time, in order. It may call the Runner's
	// methods; it should return quickly, as no check starts meanwhile.
	OnChange func(name string, prev, cur State)
	// Clock returns the time stamped in State.Since; nil means time.Now.
	// Scheduling always uses the real clock.
	Clock func() time.Time
}

// State is what a monitor reports.
type State struct {
	// Status is one of the State* constants.
	Status string
	// Code and Message are those of the latest check (zero while
	// suspended or inactive); while failures are still tolerated they
	// describe the failure although Status has not changed yet.
	Code    int
	Message string
	// Since is when Status last changed.
	Since time.Time
	// Failures is the number of consecutive failed checks.
	Failures int
}

// Runner checks a Checker on a schedule and keeps its State: Error only
// after Retry+1 consecutive failures, Warning and OK as soon as a check
// says so. Suspend, Resume, Rearm and CheckNow never block and may be
// called from any goroutine, including OnChange; Run applies them at once
// (canceling a check in flight when its result no longer matters).
type Runner struct {
	opts Options
	wake chan struct{}
	// running guards against two Runs at once.
	running atomic.Bool

	mu        sync.Mutex
	state     State
	suspended bool
	rearm     bool
	checkNow  bool
}

// NewRunner returns a Runner in state "unknown"; call Run to start it.
func NewRunner(opts Options) *Runner {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = opts.Interval
	}
	if opts.Retry < 0 {
		opts.Retry = 0
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Checker == nil {
		opts.Checker = CheckerFunc(func(context.Context) Result {
			return Result{Status: Error, Code: CodeInternal, Message: "Internal error. No checker."}
		})
	}
	return &Runner{
		opts:  opts,
		wake:  make(chan struct{}, 1),
		state: State{Status: StateUnknown, Since: opts.Clock()},
	}
}

// Name returns the monitor's name.
func (r *Runner) Name() string { return r.opts.Name }

// State returns the current state.
func (r *Runner) State() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

// Suspend stops checking: a check in flight is canceled and its result
// ignored, the state becomes "suspended" and the failure count zero.
func (r *Runner) Suspend() {
	r.mu.Lock()
	r.suspended = true
	r.mu.Unlock()
	r.poke()
}

// Resume ends a suspension: the state becomes "unknown" and a check runs
// at once.
func (r *Runner) Resume() {
	r.mu.Lock()
	r.suspended = false
	r.mu.Unlock()
	r.poke()
}

// Rearm is what the recovery layer calls after it acted on an error: when
// the state is "error" it becomes "unknown", keeping the failure count, so
// that the next failing check reports the error again. A check in flight
// is canceled and its result, from before the recovery, ignored; the next
// check runs at the usual interval (call CheckNow for one at once).
func (r *Runner) Rearm() {
	r.mu.Lock()
	r.rearm = true
	r.mu.Unlock()
	r.poke()
}

// CheckNow makes a check run at once, or right after the one in flight.
// It does nothing while the monitor is suspended.
func (r *Runner) CheckNow() {
	r.mu.Lock()
	r.checkNow = true
	r.mu.Unlock()
	r.poke()
}

func (r *Runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// flight is a check running in its own goroutine.
type flight struct {
	done   chan Result // buffered: the goroutine never blocks
	cancel context.CancelFunc
	start  time.Time
	// wanted is false once the result no longer matters (suspended,
	// re-armed, or overran and already reported).
	wanted bool
	// overran is set once the check ran past Timeout+overrunGrace.
	overran bool
}

// Run checks every Interval until ctx is done. Each check is bounded by
// Timeout; a check that ignores its context and overruns is reported as a
// timeout, and while it still has not returned no other check starts and
// every interval reports another failure. Run returns once ctx is done
// (waiting briefly for a check in flight); a second Run while one is
// running returns at once.
func (r *Runner) Run(ctx context.Context) {
	if !r.running.CompareAndSwap(false, true) {
		return
	}
	defer r.running.Store(false)

	timer := time.NewTimer(0) // the first check at once
	defer timer.Stop()
	overrun := time.NewTimer(time.Hour)
	overrun.Stop()
	defer overrun.Stop()
	var (
		cur *flight
		due bool
	)
	for {
		select {
		case <-ctx.Done():
			if cur != nil {
				cur.cancel()
				select {
				case <-cur.done:
				case <-time.After(overrunGrace):
				}
			}
			return

		case <-timer.C:
			due = true

		case <-r.wake:
			// Handled below, as on every turn.

		case res := <-doneOf(cur):
			cur.cancel()
			overrun.Stop()
			if cur.wanted {
				r.apply(res)
			}
			timer.Reset(max(0, r.opts.Interval-time.Since(cur.start)))
			cur = nil

		case <-overrun.C:
			if cur == nil {
				break
			}
			cur.overran = true
			if cur.wanted {
				cur.wanted = false
				r.apply(Result{Status: Error, Code: CodeTimeout,
					Message: fmt.Sprintf("Timeout occurred. The check did not return within %s.", r.opts.Timeout)})
			}
			timer.Reset(r.opts.Interval)
		}

		// Apply Suspend, Resume, Rearm and CheckNow.
		r.mu.Lock()
		suspended, rearm, now := r.suspended, r.rearm, r.checkNow
		r.rearm, r.checkNow = false, false
		r.mu.Unlock()
		switch status := r.State().Status; {
		case suspended && status != StateSuspended:
			if cur != nil {
				cur.cancel()
				cur.wanted = false
			}
			timer.Stop()
			due = false
			r.update(func(s *State) { *s = State{Status: StateSuspended} })
		case !suspended && status == StateSuspended:
			r.update(func(s *State) { s.Status = StateUnknown })
			due = true
		}
		if rearm && r.State().Status == StateError {
			if cur != nil && cur.wanted {
				cur.cancel()
				cur.wanted = false
			}
			r.update(func(s *State) { s.Status = StateUnknown })
		}
		if now && !suspended {
			due = true
		}

		if !due {
			continue
		}
		if cur != nil {
			if cur.overran {
				// Still stuck: every interval is one more failure.
				due = false
				if r.State().Status != StateSuspended {
					r.apply(Result{Status: Error, Code: CodeTimeout,
						Message: fmt.Sprintf("Timeout occurred. A check started %s ago has not returned.", time.Since(cur.start).Round(time.Second))})
				}
				timer.Reset(r.opts.Interval)
			}
			continue // otherwise, check again once this one is done
		}
		due = false
		status := r.State().Status
		if status == StateSuspended {
			continue
		}
		if r.opts.Active != nil && !r.opts.Active() {
			r.update(func(s *State) { *s = State{Status: StateInactive} })
			timer.Reset(r.opts.Interval)
			continue
		}
		if status == StateInactive {
			r.update(func(s *State) { s.Status = StateUnknown })
		}
		timer.Stop()
		cur = r.start(ctx)
		overrun.Reset(r.opts.Timeout + overrunGrace)
	}
}

// doneOf returns f's result channel, or nil (blocking forever in a select)
// when no check is in flight.
func doneOf(f *flight) <-chan Result {
	if f == nil {
		return nil
	}
	return f.done
}

// start runs one check in its own goroutine.
func (r *Runner) start(ctx context.Context) *flight {
	cctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	f := &flight{done: make(chan Result, 1), cancel: cancel, start: time.Now(), wanted: true}
	go func() {
		defer func() {
			if v := recover(); v != nil {
				f.done <- Result{Status: Error, Code: CodeInternal, Message: fmt.Sprintf("Internal error. The check panicked: %v", v)}
			}
		}()
		f.done <- r.opts.Checker.Check(cctx)
	}()
	return f
}

// apply folds one check's result into the state.
func (r *Runner) apply(res Result) {
	r.update(func(s *State) {
		s.Code, s.Message = res.Code, res.Message
		switch res.Status {
		case OK:
			s.Status, s.Failures = StateOK, 0
		case Warning:
			s.Status, s.Failures = StateWarning, 0
		default:
			s.Failures++
			if s.Failures > r.opts.Retry {
				s.Status = StateError
			}
		}
	})
}

// update changes the state with f, stamps Since on a change of Status and
// reports the transition. Only Run's goroutine calls it.
func (r *Runner) update(f func(s *State)) {
	r.mu.Lock()
	prev := r.state
	cur := prev
	f(&cur)
	changed := cur.Status != prev.Status
	if changed {
		cur.Since = r.opts.Clock()
	} else {
		cur.Since = prev.Since
	}
	r.state = cur
	r.mu.Unlock()
	if changed && r.opts.OnChange != nil {
		r.opts.OnChange(r.opts.Name, prev, cur)
	}
}
