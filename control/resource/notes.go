package resource

import (
	"context"
	"time"
)

// Notes receives the steps of a resource operation worth a line in the
// failover timeline, such as each AWS call with its latency. It must be safe
// to call from several goroutines at once.
type Notes func(at time.Time, what string)

type notesKey struct{}

// WithNotes returns a context whose resource operations report their steps to
// fn.
func WithNotes(ctx context.Context, fn Notes) context.Context {
	return context.WithValue(ctx, notesKey{}, fn)
}

// Note reports a step to the Notes in ctx, if any.
func Note(ctx context.Context, at time.Time, what string) {
	if fn, ok := ctx.Value(notesKey{}).(Notes); ok && fn != nil {
		fn(at, what)
	}
}
