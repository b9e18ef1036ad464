package nbd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memDevice is an in-memory Device that models a volatile cache: writes
// land in data, and become durable (copied to durable) on Flush, or at
// once with fua. Hooks let a test hold or fail requests.
type memDevice struct {
	mu      sync.Mutex
	data    []byte
	durable []byte
	bs      int

	// before, if set, runs before each operation ("read", "write",
	// "flush", "trim") outside the lock; an error fails the operation.
	before func(op string, off, n int64) error
	// after, if set, runs after each operation, outside the lock.
	after func(op string, off, n int64)
	// ops counts operations. Every access is checked against the size:
	// out of range panics.
	ops atomic.Int64
}

func newMemDevice(size int64) *memDevice {
	return &memDevice{data: make([]byte, size), durable: make([]byte, size), bs: 512}
}

func (d *memDevice) hook(op string, off, n int64) error {
	d.ops.Add(1)
	if d.before != nil {
		return d.before(op, off, n)
	}
	return nil
}

func (d *memDevice) done(op string, off, n int64) {
	if d.after != nil {
		d.after(op, off, n)
	}
}

func (d *memDevice) check(off, n int64) {
	if off < 0 || n <= 0 || off+n > int64(len(d.data)) {
		panic(fmt.Sprintf("memDevice: access out of range: %d+%d of %d", off, n, len(d.data)))
	}
}

func (d *memDevice) ReadAt(p []byte, off int64) (int, error) {
	d.check(off, int64(len(p)))
	if err := d.hook("read", off, int64(len(p))); err != nil {
		return 0, err
	}
	d.mu.Lock()
	copy(p, d.data[off:])
	d.mu.Unlock()
	d.done("read", off, int64(len(p)))
	return len(p), nil
}

func (d *memDevice) WriteAt(p []byte, off int64, fua bool) error {
	d.check(off, int64(len(p)))
	op := "write"
	if fua {
		op = "write-fua"
	}
	if err := d.hook(op, off, int64(len(p))); err != nil {
		return err
	}
	d.mu.Lock()
	copy(d.data[off:], p)
	if fua {
		copy(d.durable[off:], p)
	}
	d.mu.Unlock()
	d.done(op, off, int64(len(p)))
	return nil
}

func (d *memDevice) Flush() error {
	if err := d.hook("flush", 0, 0); err != nil {
		return err
	}
	d.mu.Lock()
	copy(d.durable, d.data)
	d.mu.Unlock()
	d.done("flush", 0, 0)
	return nil
}

func (d *memDevice) Size() int64    { return int64(len(d.data)) }
func (d *memDevice) BlockSize() int { return d.bs }

// snapshot returns copies of the data and its durable part.
func (d *memDevice) snapshot() (data, durable []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return bytes.Clone(d.data), bytes.Clone(d.durable)
}

// trimDevice is a memDevice that can trim (zeroing the range).
type trimDevice struct{ *memDevice }

func (d trimDevice) Trim(off, n int64) error {
	d.check(off, n)
	if err := d.hook("trim", off, n); err != nil {
		return err
	}
	d.mu.Lock()
	clear(d.data[off : off+n])
	d.mu.Unlock()
	d.done("trim", off, n)
	return nil
}

// result is a reply as the test client received it.
type result struct {
	errno uint32
	data  []byte
}

// client is a minimal NBD client for tests: it writes requests and matches
// replies to them by cookie, as the kernel does.
type client struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader

	wmu     sync.Mutex
	mu      sync.Mutex
	pending map[uint64]pendingCall
	cookie  atomic.Uint64
	order   []uint64 // cookies in the order their replies came
	done    chan struct{}
	err     error // why the reader stopped
}

type pendingCall struct {
	req Request
	ch  chan result
	dst []byte // where a READ's data goes, if set
}

// startServer serves dev on one end of a net.Pipe and returns a client on
// the other, and a channel that receives Serve's result.
func startServer(t testing.TB, dev Device, opts ServerOptions) (*Server, *client, <-chan error) {
	t.Helper()
	if opts.Log == nil {
		opts.Log = testLogger(t)
	}
	srv, err := NewServer(dev, opts)
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), a) }()
	c := newClient(t, b)
	t.Cleanup(func() {
		c.conn.Close()
		<-c.done
	})
	return srv, c, served
}

func newClient(t testing.TB, conn net.Conn) *client {
	c := &client{t: t, conn: conn, br: bufio.NewReaderSize(conn, 64<<10), pending: map[uint64]pendingCall{}, done: make(chan struct{})}
	go c.readLoop()
	return c
}

func (c *client) readLoop() {
	defer close(c.done)
	var h [ReplySize]byte
	for {
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			c.stop(err)
			return
		}
		r, err := ParseReply(h[:])
		if err != nil {
			c.stop(err)
			return
		}
		c.mu.Lock()
		p, ok := c.pending[r.Cookie]
		delete(c.pending, r.Cookie)
		c.order = append(c.order, r.Cookie)
		c.mu.Unlock()
		if !ok {
			c.stop(fmt.Errorf("reply with unknown cookie %#x", r.Cookie))
			return
		}
		res := result{errno: r.Error}
		if p.req.Type == CmdRead && r.Error == 0 {
			res.data = p.dst
			if len(res.data) != int(p.req.Length) {
				res.data = make([]byte, p.req.Length)
			}
			if _, err := io.ReadFull(c.br, res.data); err != nil {
				c.stop(err)
				return
			}
		}
		p.ch <- res
	}
}

func (c *client) stop(err error) {
	c.mu.Lock()
	c.err = err
	for k, p := range c.pending {
		close(p.ch)
		delete(c.pending, k)
	}
	c.mu.Unlock()
}

// send writes a request (with payload for a WRITE) and returns the channel
// its reply arrives on; the channel is closed if the connection ends
// first. A zero cookie is replaced with a fresh one.
func (c *client) send(req Request, payload []byte) (uint64, <-chan result) {
	return c.sendInto(req, payload, nil)
}

// sendInto is send with dst to receive a READ's data.
func (c *client) sendInto(req Request, payload, dst []byte) (uint64, <-chan result) {
	if req.Magic == 0 {
		req.Magic = RequestMagic
	}
	if req.Cookie == 0 {
		req.Cookie = c.cookie.Add(1) * 0x1_0000_0001
	}
	ch := make(chan result, 1)
	c.mu.Lock()
	if c.err != nil {
		close(ch)
	} else if req.Type != CmdDisc {
		c.pending[req.Cookie] = pendingCall{req: req, ch: ch, dst: dst}
	}
	c.mu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := AppendRequest(nil, req)
	if _, err := c.conn.Write(append(b, payload...)); err != nil {
		c.mu.Lock()
		if p, ok := c.pending[req.Cookie]; ok {
			delete(c.pending, req.Cookie)
			close(p.ch)
		}
		c.mu.Unlock()
	}
	return req.Cookie, ch
}

// do sends a request and waits for its reply.
func (c *client) do(req Request, payload []byte) result {
	c.t.Helper()
	_, ch := c.send(req, payload)
	return c.wait(ch)
}

func (c *client) wait(ch <-chan result) result {
	c.t.Helper()
	select {
	case r, ok := <-ch:
		if !ok {
			c.mu.Lock()
			err := c.err
			c.mu.Unlock()
			c.t.Fatalf("connection ended before the reply: %v", err)
		}
		return r
	case <-time.After(time.Minute):
		c.t.Fatal("no reply in a minute")
	}
	return result{}
}

func (c *client) read(off uint64, n uint32) result {
	c.t.Helper()
	return c.do(Request{Type: CmdRead, Offset: off, Length: n}, nil)
}

func (c *client) write(off uint64, data []byte, flags uint16) result {
	c.t.Helper()
	return c.do(Request{Type: CmdWrite, Flags: flags, Offset: off, Length: uint32(len(data))}, data)
}

// waitServe waits for Serve's result.
func waitServe(t testing.TB, served <-chan error) error {
	t.Helper()
	select {
	case err := <-served:
		return err
	case <-time.After(time.Minute):
		t.Fatal("Serve did not return in a minute")
	}
	return nil
}

// testLogger logs to the test's log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// logRecorder is a slog handler that keeps records' messages and levels.
type logRecorder struct {
	mu   sync.Mutex
	recs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool {
		s += " " + a.String()
		return true
	})
	l.recs = append(l.recs, s)
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }
func (l *logRecorder) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.recs...)
}

// pattern returns n bytes that depend on seed and position.
func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed ^ byte(i) ^ byte(i>>8)*31
	}
	return b
}

var errInjected = errors.New("injected")

// fdConn wraps a socket descriptor, which it takes over, as a net.Conn.
func fdConn(t testing.TB, fd int) net.Conn {
	t.Helper()
	f := os.NewFile(uintptr(fd), "nbd-client")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
