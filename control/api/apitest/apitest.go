// Package apitest provides a fake control API backend and a helper that
// serves it on a temporary socket, for tests of the API's users.
package apitest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/control/api"
)

// Call is one operation a Backend received.
type Call struct {
	// Op is the Backend method's name, e.g. "GroupMove".
	Op string
	// Name is the group or monitor, empty for cluster operations.
	Name string
	// Server is the requested server, empty when none was given.
	Server string
}

// Backend is an in-memory api.Backend: it answers Status with State, records
// every operation, and fails the operations Errors names.
type Backend struct {
	mu sync.Mutex
	// State is what Status returns.
	State api.Status
	// Errors maps an operation ("GroupMove") or an operation and its name
	// ("GroupMove db") to the error it returns.
	Errors map[string]error
	calls  []Call
}

// Calls returns the operations received so far, in order.
func (b *Backend) Calls() []Call {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Call(nil), b.calls...)
}

// Status returns b.State.
func (b *Backend) Status() api.Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.State
}

// ClusterStart records the call.
func (b *Backend) ClusterStart(ctx context.Context) error { return b.record("ClusterStart", "", "") }

// ClusterStop records the call.
func (b *Backend) ClusterStop(ctx context.Context) error { return b.record("ClusterStop", "", "") }

// GroupStart records the call.
func (b *Backend) GroupStart(ctx context.Context, group, server string) error {
	return b.record("GroupStart", group, server)
}

// GroupStop records the call.
func (b *Backend) GroupStop(ctx context.Context, group string) error {
	return b.record("GroupStop", group, "")
}

// GroupMove records the call.
func (b *Backend) GroupMove(ctx context.Context, group, server string) error {
	return b.record("GroupMove", group, server)
}

// MonitorSuspend records the call.
func (b *Backend) MonitorSuspend(ctx context.Context, monitor string) error {
	return b.record("MonitorSuspend", monitor, "")
}

// MonitorResume records the call.
func (b *Backend) MonitorResume(ctx context.Context, monitor string) error {
	return b.record("MonitorResume", monitor, "")
}

func (b *Backend) record(op, name, server string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, Call{Op: op, Name: name, Server: server})
	if err, ok := b.Errors[op+" "+name]; ok && name != "" {
		return err
	}
	return b.Errors[op]
}

// Serve serves b on a socket in a fresh temporary folder, to the test's own
// uid, until the test ends; it returns the running server. The folder's name
// is kept short: a unix socket path holds at most 107 bytes.
func Serve(t testing.TB, b api.Backend) *api.Server {
	t.Helper()
	dir, err := os.MkdirTemp("", "vigil-api")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	tl := &testLog{t: t}
	t.Cleanup(tl.stop) // registered first, runs last
	s, err := api.Listen(filepath.Join(dir, "vigild.sock"), b, slog.New(&testHandler{log: tl}))
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s.AllowUID(uint32(os.Getuid()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("serve did not return after its context ended")
		}
	})
	return s
}

// NotFound returns an error wrapping api.ErrNotFound with msg.
func NotFound(msg string) error { return &wrapped{msg: msg, err: api.ErrNotFound} }

// Conflict returns an error wrapping api.ErrConflict with msg.
func Conflict(msg string) error { return &wrapped{msg: msg, err: api.ErrConflict} }

type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }

// testLog is the test's log, closed when the test ends: a server goroutine
// logging later must not call t.Log.
type testLog struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (l *testLog) log(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.t.Log(line)
	}
}

func (l *testLog) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done = true
}

// testHandler is a slog.Handler writing to a testLog.
type testHandler struct {
	log   *testLog
	attrs []slog.Attr
}

func (h *testHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *testHandler) Handle(_ context.Context, r slog.Record) error {
	var sb strings.Builder
	sb.WriteString(r.Level.String() + " " + r.Message)
	add := func(a slog.Attr) bool {
		sb.WriteString(" " + a.String())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.log.log(sb.String())
	return nil
}

func (h *testHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &testHandler{log: h.log, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *testHandler) WithGroup(string) slog.Handler { return h }

var _ api.Backend = (*Backend)(nil)
