package main

import (
	"context"
	"fmt"
	"time"
)

// pollEvery is how often conditions are polled.
const pollEvery = 10 * time.Millisecond

// waitFor polls cond until it has held without interruption for hold, and
// fails after limit with cond's last explanation. cond returns whether it
// holds and, when it does not, why.
func waitFor(ctx context.Context, what string, limit, hold time.Duration, cond func() (bool, string)) error {
	deadline := time.Now().Add(limit)
	var since time.Time
	why := "not checked yet"
	for {
		ok, w := cond()
		now := time.Now()
		switch {
		case !ok:
			since, why = time.Time{}, w
		case since.IsZero():
			since = now
		}
		if ok && now.Sub(since) >= hold {
			return nil
		}
		if now.After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s: %s", limit, what, why)
		}
		if err := sleepCtx(ctx, pollEvery); err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
	}
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
