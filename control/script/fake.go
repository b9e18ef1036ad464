package script

import (
	"context"
	"slices"
	"sync"
)

// Fake is a Runner for the tests of Run's callers: it records every Spec
// and answers with Func. Like Run, it turns a Result with a non-zero
// ExitCode and no error into an error wrapping ErrExit. Its methods are
// safe for concurrent use.
type Fake struct {
	// Func answers a call; nil answers every call with exit code 0. Set it
	// before the first call.
	Func func(ctx context.Context, s Spec) (Result, error)

	mu    sync.Mutex
	calls []Spec
}

var _ Runner = (*Fake)(nil)

// Run implements Runner.
func (f *Fake) Run(ctx context.Context, s Spec) (Result, error) {
	f.mu.Lock()
	f.calls = append(f.calls, cloneSpec(s))
	f.mu.Unlock()
	if f.Func == nil {
		return Result{}, nil
	}
	res, err := f.Func(ctx, s)
	if err == nil {
		err = exitError(s.Path, res)
	}
	return res, err
}

// Calls returns the Specs Run was called with, in order.
func (f *Fake) Calls() []Spec {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Spec, len(f.calls))
	for i, s := range f.calls {
		out[i] = cloneSpec(s)
	}
	return out
}

func cloneSpec(s Spec) Spec {
	s.Args = slices.Clone(s.Args)
	s.Env = slices.Clone(s.Env)
	return s
}
