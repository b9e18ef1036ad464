package awsops

import "context"

type observerKey struct{}

// WithObserver returns a context whose AWS calls are also reported to fn,
// after Options.Observe: a resource uses it to put each call of one
// failover into that failover's timeline.
func WithObserver(ctx context.Context, fn func(Call)) context.Context {
	return context.WithValue(ctx, observerKey{}, fn)
}

// observerFrom returns the observer WithObserver put in ctx, or nil.
func observerFrom(ctx context.Context) func(Call) {
	fn, _ := ctx.Value(observerKey{}).(func(Call))
	return fn
}
