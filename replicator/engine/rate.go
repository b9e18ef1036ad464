package engine

import (
	"context"
	"sync"
	"time"
)

// limiter paces resync and verify traffic to a rate in bytes per second.
// Each caller reserves its bytes on a virtual clock and sleeps until its
// reservation starts, so a burst is at most one chunk; a rate change
// drops the reservations and wakes the sleepers to plan again.
type limiter struct {
	mu      sync.Mutex
	rate    int64
	next    time.Time     // when the next reservation may start
	changed chan struct{} // closed and replaced by set
}

func newLimiter(rate int64) *limiter {
	return &limiter{rate: rate, changed: make(chan struct{})}
}

func (l *limiter) set(rate int64) {
	l.mu.Lock()
	l.rate = rate
	l.next = time.Time{}
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

func (l *limiter) get() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rate
}

// wait returns when n more bytes may go at the current rate, or false when
// done is closed or ctx ends first.
func (l *limiter) wait(ctx context.Context, done <-chan struct{}, n int) bool {
	for {
		l.mu.Lock()
		rate, changed := l.rate, l.changed
		if rate <= 0 {
			l.mu.Unlock()
			return true
		}
		now := time.Now()
		if l.next.Before(now) {
			l.next = now
		}
		at := l.next
		l.next = at.Add(time.Duration(float64(n) / float64(rate) * float64(time.Second)))
		l.mu.Unlock()
		d := at.Sub(now)
		if d <= 0 {
			return true
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
			return true
		case <-changed:
			t.Stop()
		case <-done:
			t.Stop()
			return false
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
}

// rateMeter measures a byte counter's rate over the last few seconds from
// samples taken at most every sampleEvery.
type rateMeter struct {
	samples [16]rateSample
	n, i    int
}

type rateSample struct {
	t     time.Time
	bytes uint64
}

const (
	sampleEvery = 250 * time.Millisecond
	rateWindow  = 4 * time.Second
)

// reset forgets every sample: a new run starts at bytes.
func (m *rateMeter) reset(now time.Time, bytes uint64) {
	m.n, m.i = 0, 0
	m.add(now, bytes)
}

// add records the counter's value, if the last sample is old enough.
func (m *rateMeter) add(now time.Time, bytes uint64) {
	if m.n > 0 {
		last := m.samples[(m.i+len(m.samples)-1)%len(m.samples)]
		if now.Sub(last.t) < sampleEvery {
			return
		}
	}
	m.samples[m.i] = rateSample{now, bytes}
	m.i = (m.i + 1) % len(m.samples)
	m.n = min(m.n+1, len(m.samples))
}

// rate returns the bytes per second between the oldest sample inside the
// window and (now, bytes); 0 without such a sample.
func (m *rateMeter) rate(now time.Time, bytes uint64) float64 {
	for k := m.n; k > 0; k-- {
		s := m.samples[(m.i+len(m.samples)-k)%len(m.samples)]
		if now.Sub(s.t) > rateWindow {
			continue
		}
		dt := now.Sub(s.t).Seconds()
		if dt <= 0 || bytes < s.bytes {
			return 0
		}
		return float64(bytes-s.bytes) / dt
	}
	return 0
}
