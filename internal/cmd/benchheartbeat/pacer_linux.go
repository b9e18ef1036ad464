package main

import (
	"context"
	"errors"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// pacerPriority is the SCHED_FIFO priority of the pacing thread: above
// every ordinary task, so that a busy machine does not stretch the stalls.
// The thread sleeps all but a few microseconds of each cycle.
const pacerPriority = 10

// schedOther is SCHED_OTHER (SCHED_NORMAL), the ordinary policy.
const schedOther = 0

// pacer keeps the SIGSTOP/SIGCONT timing: it locks the calling goroutine to
// its OS thread, gives the thread real-time priority (best effort) and
// sleeps with clock_nanosleep on it, without the Go scheduler's wakeup
// latency in between.
type pacer struct {
	realtime bool
}

// newPacer locks the calling goroutine to its thread; call stop from the
// same goroutine.
func newPacer() *pacer {
	runtime.LockOSThread()
	attr := unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: pacerPriority}
	return &pacer{realtime: unix.SchedSetAttr(0, &attr, 0) == nil}
}

// stop gives the thread its ordinary policy back and unlocks it.
func (p *pacer) stop() {
	if p.realtime {
		attr := unix.SchedAttr{Policy: schedOther}
		if unix.SchedSetAttr(0, &attr, 0) != nil {
			return // keep the thread locked: it dies with its goroutine
		}
	}
	runtime.UnlockOSThread()
}

// sleepUntil sleeps on the thread until at (wall clock), then reports
// whether ctx ended meanwhile. A cancellation is noticed at the latest
// when the sleep ends, so sleeps are kept short (at most a stall period).
func (p *pacer) sleepUntil(ctx context.Context, at time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ts := unix.NsecToTimespec(at.UnixNano())
	for {
		err := unix.ClockNanosleep(unix.CLOCK_REALTIME, unix.TIMER_ABSTIME, &ts, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	return ctx.Err()
}
