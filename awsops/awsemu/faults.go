package awsemu

import (
	"context"
	"maps"
	"time"
)

// Fault is injected into calls of one action: a latency, an error, or both.
type Fault struct {
	// Latency delays the answer. Each call sleeps on its own, so
	// concurrent calls are not serialized.
	Latency time.Duration
	// ErrorCode, when set, makes the call fail with this AWS error code
	// (RequestLimitExceeded, InternalError, ...), after the latency.
	ErrorCode string
	// Message is the error message; empty means AWS's for the code.
	Message string
	// HTTPStatus is the error's HTTP status; 0 means AWS's for the code.
	HTTPStatus int
	// Count limits the fault to the next Count calls; 0 means every call.
	Count int
}

// SetFault injects f into the calls of action: an API action name
// ("ReplaceRoute", "ChangeResourceRecordSets"), "*" for every EC2, STS and
// Route 53 action without a fault of its own, or an IMDS action
// ("IMDSGetToken", "IMDSGetMetadata", "IMDSGetDynamicData"), which "*"
// does not cover. It replaces the action's previous fault.
func (s *Server) SetFault(action string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.ErrorCode != "" {
		if f.Message == "" {
			f.Message = defaultMessage(f.ErrorCode)
		}
		if f.HTTPStatus == 0 {
			f.HTTPStatus = defaultStatus(f.ErrorCode)
		}
	}
	s.faults[action] = &f
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.faults)
}

// Faults returns the injected faults by action; Count is what remains.
func (s *Server) Faults() map[string]Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Fault, len(s.faults))
	for k, f := range maps.All(s.faults) {
		out[k] = *f
	}
	return out
}

// takeFault returns the fault for one call of action and uses up one of
// its counted calls. isAPI says whether "*" applies.
func (s *Server) takeFault(action string, isAPI bool) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := action
	f := s.faults[key]
	if f == nil && isAPI {
		key = "*"
		f = s.faults[key]
	}
	if f == nil {
		return Fault{}, false
	}
	out := *f
	if f.Count > 0 {
		f.Count--
		if f.Count == 0 {
			delete(s.faults, key)
		}
	}
	return out, true
}

// sleep waits d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// apiError returns the error an injected fault answers with, or nil.
func (f Fault) apiError() *apiError {
	if f.ErrorCode == "" {
		return nil
	}
	status := f.HTTPStatus
	if status == 0 {
		status = defaultStatus(f.ErrorCode)
	}
	msg := f.Message
	if msg == "" {
		msg = defaultMessage(f.ErrorCode)
	}
	return &apiError{Status: status, Code: f.ErrorCode, Message: msg}
}

// Throttling: EC2's token buckets per credential, one for mutating calls and
// one for the others.
const (
	mutatingBucket    = 50
	mutatingRefill    = 5 // per second
	nonMutatingBucket = 100
	nonMutatingRefill = 20 // per second
)

type bucket struct {
	tokens float64
	last   time.Time
}

type bucketPair struct {
	mutating, other bucket
}

// take refills the bucket for the time passed and takes one token.
func (b *bucket) take(now time.Time, capacity, rate float64) bool {
	if b.last.IsZero() {
		b.tokens, b.last = capacity, now
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(capacity, b.tokens+d.Seconds()*rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// SetThrottling turns EC2-like request throttling on or off. Each
// credential gets a bucket of 50 tokens refilled at 5 per second for
// mutating calls and one of 100 refilled at 20 per second for the others;
// a call finding its bucket empty fails with RequestLimitExceeded (503).
// Turning it on starts with full buckets.
func (s *Server) SetThrottling(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle = on
	clear(s.buckets)
}

// allow takes a token for one EC2 call, or reports the call throttled.
func (s *Server) allow(accessKeyID string, mutating bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.throttle {
		return true
	}
	p := s.buckets[accessKeyID]
	if p == nil {
		p = &bucketPair{}
		s.buckets[accessKeyID] = p
	}
	now := s.now()
	if mutating {
		return p.mutating.take(now, mutatingBucket, mutatingRefill)
	}
	return p.other.take(now, nonMutatingBucket, nonMutatingRefill)
}
