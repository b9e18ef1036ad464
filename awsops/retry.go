package awsops

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/aws/smithy-go"
)

// Backoff bounds between the attempts of one call.
const (
	backoffStart = 50 * time.Millisecond
	backoffCap   = time.Second
)

// runner makes AWS calls: one attempt at a time, each bounded by
// callTimeout, retried while the error is retryable and the context's
// deadline has not passed, and reported once at the end to observe and to
// the observer WithObserver put in the context.
type runner struct {
	callTimeout time.Duration
	observe     func(Call)
	// retry decides whether an error is retried; nil means retryable.
	retry func(error) bool
}

// call runs attempt until it succeeds, fails with an error that is not
// retryable, or ctx ends. The error is an *Error.
func (r runner) call(ctx context.Context, service, action, target string, attempt func(context.Context) error) error {
	start := time.Now()
	attempts, throttles := 0, 0
	var last error
	for {
		if ctx.Err() != nil {
			break
		}
		attempts++
		actx, cancel := context.WithTimeout(ctx, r.timeout())
		err := attempt(actx)
		timedOut := actx.Err() != nil // before cancel, which sets it too
		cancel()
		if err == nil {
			r.report(ctx, service, action, target, start, attempts, throttles, nil)
			return nil
		}
		last = err
		var ae smithy.APIError
		if errors.As(err, &ae) && throttleCodes[ae.ErrorCode()] {
			throttles++
		}
		if ctx.Err() != nil {
			break
		}
		if !timedOut && !r.retryable(err) {
			e := awsError(ctx, action, target, err)
			r.report(ctx, service, action, target, start, attempts, throttles, e)
			return e
		}
		if !sleep(ctx, backoff(attempts)) {
			break
		}
	}
	e := ctxError(ctx, action, target, last)
	r.report(ctx, service, action, target, start, attempts, throttles, e)
	return e
}

func (r runner) retryable(err error) bool {
	if r.retry != nil {
		return r.retry(err)
	}
	return retryable(err)
}

func (r runner) timeout() time.Duration {
	if r.callTimeout > 0 {
		return r.callTimeout
	}
	return DefaultCallTimeout
}

func (r runner) report(ctx context.Context, service, action, target string, start time.Time, attempts, throttles int, err *Error) {
	fromCtx := observerFrom(ctx)
	if r.observe == nil && fromCtx == nil {
		return
	}
	c := Call{
		Service:   service,
		Action:    action,
		Target:    target,
		Start:     start,
		Latency:   time.Since(start),
		Attempts:  attempts,
		Throttles: throttles,
	}
	if err != nil {
		c.Err = err
	}
	if r.observe != nil {
		r.observe(c)
	}
	if fromCtx != nil {
		fromCtx(c)
	}
}

// backoff returns the pause after the n-th failed attempt: exponential from
// backoffStart, capped at backoffCap, with its upper half jittered.
func backoff(n int) time.Duration {
	d := backoffStart
	for i := 1; i < n && d < backoffCap; i++ {
		d *= 2
	}
	d = min(d, backoffCap)
	half := d / 2
	return half + rand.N(half+1)
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// withDeadline gives ctx DefaultDeadline when it has no deadline of its own.
func withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultDeadline)
}
