package nbd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestReadWrite(t *testing.T) {
	dev := newMemDevice(1 << 20)
	srv, c, _ := startServer(t, dev, ServerOptions{})
	for i, w := range []struct {
		off uint64
		n   int
	}{{0, 4096}, {4096, 65536}, {1<<20 - 512, 512}, {12345, 777}, {100000, 300000}} {
		data := pattern(byte(i+1), w.n)
		if r := c.write(w.off, data, 0); r.errno != 0 {
			t.Fatalf("write %d+%d: errno %d", w.off, w.n, r.errno)
		}
		r := c.read(w.off, uint32(w.n))
		if r.errno != 0 || !bytes.Equal(r.data, data) {
			t.Fatalf("read %d+%d: errno %d, data equal %v", w.off, w.n, r.errno, bytes.Equal(r.data, data))
		}
	}
	st := srv.Stats()
	if st.Writes != 5 || st.Reads != 5 || st.WrittenBytes != st.ReadBytes || st.Rejected != 0 || st.Failed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestFlushAndFUA checks durability: a write is durable once its FUA reply
// arrives, and every write completed before a FLUSH is durable once the
// FLUSH's reply arrives.
func TestFlushAndFUA(t *testing.T) {
	dev := newMemDevice(1 << 20)
	srv, c, _ := startServer(t, dev, ServerOptions{})
	a, b := pattern(1, 8192), pattern(2, 8192)
	c.write(0, a, 0)
	if _, durable := dev.snapshot(); bytes.Equal(durable[:8192], a) {
		t.Fatal("a write without FUA is durable before any flush: the device model is wrong")
	}
	if r := c.write(8192, b, FlagFUA); r.errno != 0 {
		t.Fatalf("FUA write: errno %d", r.errno)
	}
	if _, durable := dev.snapshot(); !bytes.Equal(durable[8192:16384], b) {
		t.Fatal("FUA write replied before it was durable")
	}
	if r := c.do(Request{Type: CmdFlush}, nil); r.errno != 0 {
		t.Fatalf("flush: errno %d", r.errno)
	}
	if _, durable := dev.snapshot(); !bytes.Equal(durable[:8192], a) {
		t.Fatal("flush replied before a completed write was durable")
	}
	if st := srv.Stats(); st.FUAWrites != 1 || st.Flushes != 1 || st.Writes != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestFlushCoversCompletedWrites runs writes and flushes concurrently: when
// a flush replies, every write whose reply came before the flush was sent
// is durable.
func TestFlushCoversCompletedWrites(t *testing.T) {
	dev := newMemDevice(4 << 20)
	_, c, _ := startServer(t, dev, ServerOptions{})
	var mu sync.Mutex
	completed := map[uint64]byte{} // offset -> seed of writes replied to
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				off := uint64((w*50 + i) * 4096)
				seed := byte(w*50 + i + 1)
				if r := c.write(off, pattern(seed, 4096), 0); r.errno != 0 {
					t.Errorf("write: errno %d", r.errno)
					return
				}
				mu.Lock()
				completed[off] = seed
				mu.Unlock()
			}
		})
	}
	for range 20 {
		mu.Lock()
		before := maps(completed)
		mu.Unlock()
		if r := c.do(Request{Type: CmdFlush}, nil); r.errno != 0 {
			t.Fatalf("flush: errno %d", r.errno)
		}
		_, durable := dev.snapshot()
		for off, seed := range before {
			if !bytes.Equal(durable[off:off+4096], pattern(seed, 4096)) {
				t.Fatalf("write at %d completed before a flush was sent, not durable after its reply", off)
			}
		}
	}
	wg.Wait()
}

func maps(m map[uint64]byte) map[uint64]byte {
	out := make(map[uint64]byte, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestTrimAndWriteZeroes(t *testing.T) {
	dev := trimDevice{newMemDevice(1 << 20)}
	srv, c, _ := startServer(t, dev, ServerOptions{})
	if srv.transmissionFlags()&serverSendTrim == 0 {
		t.Fatal("a Trimmer is served without SEND_TRIM")
	}
	c.write(0, pattern(9, 1<<20), 0)
	if r := c.do(Request{Type: CmdTrim, Offset: 4096, Length: 8192}, nil); r.errno != 0 {
		t.Fatalf("trim: errno %d", r.errno)
	}
	if r := c.do(Request{Type: CmdWriteZeroes, Flags: FlagFUA, Offset: 65536, Length: 3 << 17}, nil); r.errno != 0 {
		t.Fatalf("write zeroes: errno %d", r.errno)
	}
	data, durable := dev.snapshot()
	want := pattern(9, 1<<20)
	clear(want[4096 : 4096+8192])
	clear(want[65536 : 65536+3<<17])
	if !bytes.Equal(data, want) {
		t.Fatal("data after trim and write zeroes differs")
	}
	if !bytes.Equal(durable[65536:65536+3<<17], want[65536:65536+3<<17]) {
		t.Fatal("FUA write zeroes not durable")
	}
	for _, r := range []Request{
		{Type: CmdTrim, Offset: 1 << 20, Length: 1},
		{Type: CmdTrim, Offset: 0, Length: 0},
		{Type: CmdWriteZeroes, Offset: math.MaxUint64 - 10, Length: 4096},
	} {
		if got := c.do(r, nil); got.errno != ErrnoInval {
			t.Errorf("%v %d+%d: errno %d, want EINVAL", r.Type, r.Offset, r.Length, got.errno)
		}
	}
	if st := srv.Stats(); st.Trims != 1 || st.WriteZeroes != 1 || st.Rejected != 3 {
		t.Fatalf("stats %+v", st)
	}

	// Without Trimmer: no SEND_TRIM, and a TRIM anyway gets ENOTSUP.
	srv2, c2, _ := startServer(t, newMemDevice(1<<20), ServerOptions{})
	if srv2.transmissionFlags()&serverSendTrim != 0 {
		t.Fatal("a device without Trim is served with SEND_TRIM")
	}
	if r := c2.do(Request{Type: CmdTrim, Offset: 0, Length: 4096}, nil); r.errno != ErrnoNotSup {
		t.Fatalf("trim without Trimmer: errno %d, want ENOTSUP", r.errno)
	}
}

// TestOutOfOrder holds each read until the one sent after it has replied:
// the replies come back in reverse order, each with its own cookie and
// data.
func TestOutOfOrder(t *testing.T) {
	const n = 32
	dev := newMemDevice(n * 4096)
	for i := range n {
		copy(dev.data[i*4096:], pattern(byte(i), 4096))
	}
	released := make([]chan struct{}, n+1)
	for i := range released {
		released[i] = make(chan struct{})
	}
	close(released[n])
	dev.before = func(op string, off, _ int64) error {
		if op == "read" {
			<-released[off/4096+1] // wait for the next read's reply
		}
		return nil
	}
	_, c, _ := startServer(t, dev, ServerOptions{})
	var chans []<-chan result
	var cookies []uint64
	for i := range n {
		ck, ch := c.send(Request{Type: CmdRead, Offset: uint64(i * 4096), Length: 4096, Cookie: uint64(0xfeed0000 + i)}, nil)
		cookies = append(cookies, ck)
		chans = append(chans, ch)
	}
	for i := n - 1; i >= 0; i-- {
		r := c.wait(chans[i])
		if r.errno != 0 || !bytes.Equal(r.data, pattern(byte(i), 4096)) {
			t.Fatalf("read %d: errno %d, wrong data %v", i, r.errno, !bytes.Equal(r.data, pattern(byte(i), 4096)))
		}
		close(released[i])
	}
	c.mu.Lock()
	order := slices.Clone(c.order)
	c.mu.Unlock()
	slices.Reverse(cookies)
	if !slices.Equal(order, cookies) {
		t.Fatalf("replies in order %x, want %x", order, cookies)
	}
}

// TestConcurrent runs many overlapping-free requests from several
// goroutines and checks every reply against a model.
func TestConcurrent(t *testing.T) {
	dev := newMemDevice(8 << 20)
	_, c, _ := startServer(t, dev, ServerOptions{MaxInFlight: 16})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			base := uint64(w) << 20
			for i := range 40 {
				n := 512 * (1 + (i*7+w)%64)
				off := base + uint64((i*4096)%((1<<20)-n))
				data := pattern(byte(w*40+i), n)
				if r := c.write(off, data, uint16(i%2)*FlagFUA); r.errno != 0 {
					t.Errorf("write: errno %d", r.errno)
					return
				}
				if r := c.read(off, uint32(n)); r.errno != 0 || !bytes.Equal(r.data, data) {
					t.Errorf("read back at %d: errno %d", off, r.errno)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestRejected(t *testing.T) {
	const size = 1 << 20
	dev := newMemDevice(size)
	srv, c, _ := startServer(t, dev, ServerOptions{MaxRequest: 64 << 10})
	before, _ := dev.snapshot()
	for _, tc := range []struct {
		name    string
		req     Request
		payload int
		errno   uint32
	}{
		{"read past the end", Request{Type: CmdRead, Offset: size - 512, Length: 4096}, 0, ErrnoInval},
		{"read at the end", Request{Type: CmdRead, Offset: size, Length: 512}, 0, ErrnoInval},
		{"read far out", Request{Type: CmdRead, Offset: math.MaxUint64 - 100, Length: 4096}, 0, ErrnoInval},
		{"read empty", Request{Type: CmdRead, Offset: 0, Length: 0}, 0, ErrnoInval},
		{"read too long", Request{Type: CmdRead, Offset: 0, Length: 64<<10 + 1}, 0, ErrnoInval},
		{"read huge", Request{Type: CmdRead, Offset: 0, Length: math.MaxUint32}, 0, ErrnoInval},
		{"write past the end", Request{Type: CmdWrite, Offset: size - 512, Length: 4096}, 4096, ErrnoInval},
		{"write overflowing", Request{Type: CmdWrite, Offset: math.MaxUint64 - 511, Length: 1024}, 1024, ErrnoInval},
		{"write too long", Request{Type: CmdWrite, Offset: 0, Length: 128 << 10}, 128 << 10, ErrnoInval},
		{"write unknown flag", Request{Type: CmdWrite, Flags: 1 << 7, Offset: 0, Length: 512}, 512, ErrnoInval},
		{"write DF flag", Request{Type: CmdWrite, Flags: FlagDF, Offset: 0, Length: 512}, 512, ErrnoInval},
		{"cache", Request{Type: CmdCache, Offset: 0, Length: 512}, 0, ErrnoNotSup},
		{"block status", Request{Type: CmdBlockStatus, Offset: 0, Length: 512}, 0, ErrnoNotSup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do(tc.req, pattern(0xee, tc.payload))
			if r.errno != tc.errno || r.data != nil {
				t.Fatalf("errno %d, %d bytes of data; want errno %d and none", r.errno, len(r.data), tc.errno)
			}
			// The connection goes on, in step.
			if r := c.read(0, 512); r.errno != 0 {
				t.Fatalf("read after: errno %d", r.errno)
			}
		})
	}
	after, _ := dev.snapshot()
	if !bytes.Equal(before, after) {
		t.Fatal("a rejected write was applied")
	}
	if st := srv.Stats(); st.Rejected != 13 || st.Buffered != 0 || st.Writes != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestReadOnly(t *testing.T) {
	dev := trimDevice{newMemDevice(1 << 20)}
	srv, c, _ := startServer(t, dev, ServerOptions{ReadOnly: true})
	if srv.transmissionFlags()&serverReadOnly == 0 {
		t.Fatal("READ_ONLY not among the flags")
	}
	for _, r := range []Request{
		{Type: CmdWrite, Offset: 0, Length: 512},
		{Type: CmdTrim, Offset: 0, Length: 512},
		{Type: CmdWriteZeroes, Offset: 0, Length: 512},
	} {
		var payload []byte
		if r.Type == CmdWrite {
			payload = make([]byte, 512)
		}
		if got := c.do(r, payload); got.errno != ErrnoPerm {
			t.Fatalf("%v on a read-only server: errno %d, want EPERM", r.Type, got.errno)
		}
	}
	if r := c.read(0, 4096); r.errno != 0 {
		t.Fatalf("read: errno %d", r.errno)
	}
	if dev.ops.Load() != 1 {
		t.Fatalf("device saw %d operations, want the read only", dev.ops.Load())
	}
}

func TestDeviceErrors(t *testing.T) {
	dev := newMemDevice(1 << 20)
	dev.before = func(op string, off, _ int64) error {
		switch {
		case op == "write" && off == 0:
			return syscall.ENOSPC
		case op == "write" && off == 4096:
			return errInjected
		case op == "read" && off == 0:
			return io.ErrUnexpectedEOF
		case op == "flush":
			return ErrReadOnly
		}
		return nil
	}
	srv, c, _ := startServer(t, dev, ServerOptions{})
	if r := c.write(0, make([]byte, 512), 0); r.errno != ErrnoNoSpc {
		t.Errorf("ENOSPC write: errno %d", r.errno)
	}
	if r := c.write(4096, make([]byte, 512), 0); r.errno != ErrnoIO {
		t.Errorf("failed write: errno %d, want EIO", r.errno)
	}
	if r := c.read(0, 512); r.errno != ErrnoIO || r.data != nil {
		t.Errorf("failed read: errno %d with %d bytes, want EIO and no data", r.errno, len(r.data))
	}
	if r := c.do(Request{Type: CmdFlush}, nil); r.errno != ErrnoPerm {
		t.Errorf("failed flush: errno %d, want EPERM", r.errno)
	}
	if r := c.read(4096, 512); r.errno != 0 {
		t.Errorf("read after errors: errno %d", r.errno)
	}
	if st := srv.Stats(); st.Failed != 4 {
		t.Fatalf("stats %+v", st)
	}
}

// TestProtocolErrors sends requests the server cannot parse: it replies to
// what came before, logs the error, ends the connection and returns the
// error.
func TestProtocolErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  Request
		want error
	}{
		{"bad magic", Request{Magic: 0x12345678, Type: CmdRead, Length: 512}, ErrBadMagic},
		{"reply magic", Request{Magic: ReplyMagic, Type: CmdRead, Length: 512}, ErrBadMagic},
		{"unknown command", Request{Type: 8, Length: 512}, ErrUnknownCommand},
		{"unknown command 0xffff", Request{Type: 0xffff, Length: 512}, ErrUnknownCommand},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := newMemDevice(1 << 20)
			rec := &logRecorder{}
			srv, c, served := startServer(t, dev, ServerOptions{Log: slog.New(rec)})
			block := make(chan struct{})
			dev.before = func(op string, _, _ int64) error {
				if op == "write" {
					<-block
				}
				return nil
			}
			_, wch := c.send(Request{Type: CmdWrite, Length: 512}, make([]byte, 512))
			c.send(tc.req, nil)
			close(block)
			if r := c.wait(wch); r.errno != 0 {
				t.Fatalf("write before the bad request: errno %d", r.errno)
			}
			if err := waitServe(t, served); !errors.Is(err, tc.want) {
				t.Fatalf("Serve: %v, want %v", err, tc.want)
			}
			<-c.done
			if c.err != io.EOF {
				t.Fatalf("client: %v, want the connection closed (EOF)", c.err)
			}
			if !slices.ContainsFunc(rec.lines(), func(l string) bool { return strings.HasPrefix(l, "ERROR") && strings.Contains(l, "protocol error") }) {
				t.Fatalf("no error logged: %q", rec.lines())
			}
			if st := srv.Stats(); st.Connections != 0 || st.InFlight != 0 || st.Buffered != 0 {
				t.Fatalf("stats after the connection %+v", st)
			}
		})
	}
}

// TestDisconnect sends DISC behind a write still in progress: the write
// completes and is replied to, then Serve returns nil and closes the
// connection.
func TestDisconnect(t *testing.T) {
	dev := newMemDevice(1 << 20)
	block := make(chan struct{})
	var writes sync.WaitGroup
	writes.Add(1)
	dev.before = func(op string, _, _ int64) error {
		if op == "write" {
			<-block
		}
		return nil
	}
	dev.after = func(op string, _, _ int64) {
		if op == "write" {
			writes.Done()
		}
	}
	_, c, served := startServer(t, dev, ServerOptions{})
	_, wch := c.send(Request{Type: CmdWrite, Length: 4096}, pattern(3, 4096))
	c.send(Request{Type: CmdDisc}, nil)
	// Nothing after DISC is read: this send blocks (net.Pipe does not
	// buffer) until Serve closes the connection.
	after := make(chan struct{})
	go func() {
		defer close(after)
		c.send(Request{Type: CmdRead, Length: 512}, nil)
	}()
	close(block)
	if err := waitServe(t, served); err != nil {
		t.Fatalf("Serve after DISC: %v", err)
	}
	writes.Wait() // returns at once: Serve waited for the write
	if r := c.wait(wch); r.errno != 0 {
		t.Fatalf("write before DISC: errno %d", r.errno)
	}
	<-c.done
	<-after
	if dev.ops.Load() != 1 {
		t.Fatalf("device saw %d operations, want 1 (the read after DISC must not run)", dev.ops.Load())
	}
}

func TestEndOfStream(t *testing.T) {
	t.Run("between requests", func(t *testing.T) {
		_, c, served := startServer(t, newMemDevice(1<<20), ServerOptions{})
		c.read(0, 512)
		c.conn.Close()
		if err := waitServe(t, served); err != nil {
			t.Fatalf("Serve: %v, want nil", err)
		}
	})
	t.Run("inside a request", func(t *testing.T) {
		_, c, served := startServer(t, newMemDevice(1<<20), ServerOptions{})
		b := AppendRequest(nil, Request{Magic: RequestMagic, Type: CmdWrite, Length: 4096})
		c.conn.Write(append(b, make([]byte, 100)...))
		c.conn.Close()
		if err := waitServe(t, served); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("Serve: %v, want unexpected EOF", err)
		}
	})
	t.Run("context", func(t *testing.T) {
		srv, err := NewServer(newMemDevice(1<<20), ServerOptions{Log: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		a, b := net.Pipe()
		defer b.Close()
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ctx, a) }()
		cancel()
		if err := waitServe(t, served); !errors.Is(err, context.Canceled) {
			t.Fatalf("Serve: %v, want context.Canceled", err)
		}
	})
}

// TestBufferBudget holds writes in the device: the server stops reading
// once the held buffers reach MaxBuffered, never holds more, and goes on
// once they are released.
func TestBufferBudget(t *testing.T) {
	const (
		reqSize  = 64 << 10
		budgetSz = 4 * reqSize
		n        = 32
	)
	dev := newMemDevice(n * reqSize)
	var srv *Server
	started := make(chan struct{}, n)
	release := make(chan struct{})
	var overBudget sync.Once
	dev.before = func(op string, _, _ int64) error {
		if op == "write" {
			if b := srv.Stats().Buffered; b > budgetSz {
				overBudget.Do(func() { t.Errorf("%d bytes buffered, budget %d", b, budgetSz) })
			}
			started <- struct{}{}
			<-release
		}
		return nil
	}
	srv, c, _ := startServer(t, dev, ServerOptions{MaxRequest: reqSize, MaxBuffered: budgetSz})
	var chans []<-chan result
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			_, ch := c.send(Request{Type: CmdWrite, Offset: uint64(i * reqSize), Length: reqSize}, pattern(byte(i), reqSize))
			chans = append(chans, ch)
		}
	}()
	for range 4 {
		<-started
	}
	if b := srv.Stats().Buffered; b != budgetSz {
		t.Fatalf("%d bytes buffered with 4 writes held, want %d", b, budgetSz)
	}
	close(release)
	<-done
	for _, ch := range chans {
		if r := c.wait(ch); r.errno != 0 {
			t.Fatalf("write: errno %d", r.errno)
		}
	}
	data, _ := dev.snapshot()
	for i := range n {
		if !bytes.Equal(data[i*reqSize:(i+1)*reqSize], pattern(byte(i), reqSize)) {
			t.Fatalf("write %d lost", i)
		}
	}
	if b := srv.Stats().Buffered; b != 0 {
		t.Fatalf("%d bytes still buffered", b)
	}
}

func TestNewServerOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		dev  Device
		opts ServerOptions
	}{
		{"size not a multiple of the block size", &memDevice{data: make([]byte, 1000), bs: 512}, ServerOptions{}},
		{"empty", &memDevice{bs: 512}, ServerOptions{}},
		{"block size 8192", &memDevice{data: make([]byte, 8192), bs: 8192}, ServerOptions{}},
		{"block size 1000", &memDevice{data: make([]byte, 8000), bs: 1000}, ServerOptions{}},
		{"max request too large", newMemDevice(4096), ServerOptions{MaxRequest: MaxRequestSize + 1}},
		{"budget below one request", newMemDevice(4096), ServerOptions{MaxRequest: 1 << 20, MaxBuffered: 1 << 19}},
		{"negative in flight", newMemDevice(4096), ServerOptions{MaxInFlight: -1}},
	} {
		if _, err := NewServer(tc.dev, tc.opts); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// TestRealSocket serves over a socketpair as Expose makes it, with the
// largest requests.
func TestRealSocket(t *testing.T) {
	dev := newMemDevice(64 << 20)
	srv, err := NewServer(dev, ServerOptions{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	kfd, conn, err := socketPair()
	if err != nil {
		t.Fatal(err)
	}
	cconn := fdConn(t, kfd)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), conn) }()
	c := newClient(t, cconn)
	data := pattern(7, MaxRequestSize)
	if r := c.write(1<<20, data, FlagFUA); r.errno != 0 {
		t.Fatalf("32 MiB write: errno %d", r.errno)
	}
	if r := c.read(1<<20, MaxRequestSize); r.errno != 0 || !bytes.Equal(r.data, data) {
		t.Fatalf("32 MiB read: errno %d", r.errno)
	}
	if r := c.read(0, MaxRequestSize+1); r.errno != ErrnoInval {
		t.Fatalf("32 MiB + 1 read: errno %d", r.errno)
	}
	c.send(Request{Type: CmdDisc}, nil)
	if err := waitServe(t, served); err != nil {
		t.Fatal(err)
	}
	<-c.done
	cconn.Close()
}

func TestErrnoOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want uint32
	}{
		{syscall.EIO, ErrnoIO},
		{syscall.ENOSPC, ErrnoNoSpc},
		{syscall.EOPNOTSUPP, ErrnoNotSup},
		{&net.OpError{Op: "write", Err: syscall.EPERM}, ErrnoPerm},
		{syscall.EBADF, ErrnoIO},
		{ErrNotSupported, ErrnoNotSup},
		{errInjected, ErrnoIO},
	} {
		if got := errnoOf(tc.err); got != tc.want {
			t.Errorf("errnoOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
