package nbd

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseRequest(t *testing.T) {
	r := Request{Magic: RequestMagic, Flags: FlagFUA, Type: CmdWrite, Cookie: 0x0102030405060708, Offset: 1 << 40, Length: 4096}
	b := AppendRequest(nil, r)
	if len(b) != RequestSize {
		t.Fatalf("request of %d bytes", len(b))
	}
	// The layout the kernel writes (struct nbd_request, big-endian).
	want := []byte{0x25, 0x60, 0x95, 0x13, 0, 1, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x10, 0}
	if !bytes.Equal(b, want) {
		t.Fatalf("encoded % x, want % x", b, want)
	}
	got, err := ParseRequest(b)
	if err != nil || got != r {
		t.Fatalf("parsed %+v, %v", got, err)
	}
	if _, err := ParseRequest(b[:27]); err == nil {
		t.Fatal("short request parsed")
	}
	rep := AppendReply(nil, Reply{Magic: ReplyMagic, Error: ErrnoInval, Cookie: 42})
	if gr, err := ParseReply(rep); err != nil || gr.Error != ErrnoInval || gr.Cookie != 42 {
		t.Fatalf("reply %+v, %v", gr, err)
	}
}

func TestBufferPool(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want int64
	}{{1, 4096}, {4096, 4096}, {4097, 8192}, {1 << 20, 1 << 20}, {1<<20 + 1, 2 << 20}, {MaxRequestSize, MaxRequestSize}} {
		if got := classSize(tc.n); got != tc.want {
			t.Errorf("classSize(%d) = %d, want %d", tc.n, got, tc.want)
		}
		b := getBuf(tc.n)
		if len(*b) != tc.n || int64(cap(*b)) != tc.want {
			t.Errorf("getBuf(%d): len %d cap %d", tc.n, len(*b), cap(*b))
		}
		putBuf(b)
	}
}

func TestBudget(t *testing.T) {
	b := newBudget(100)
	ctx := context.Background()
	if err := b.acquire(ctx, 60); err != nil {
		t.Fatal(err)
	}
	// A large request waits; a small one behind it waits its turn even
	// though it would fit.
	big := make(chan error, 1)
	go func() { big <- b.acquire(ctx, 80) }()
	for {
		b.mu.Lock()
		n := len(b.waiters)
		b.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	small := make(chan error, 1)
	go func() { small <- b.acquire(ctx, 10) }()
	for {
		b.mu.Lock()
		n := len(b.waiters)
		b.mu.Unlock()
		if n == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.release(60)
	if err := <-big; err != nil {
		t.Fatal(err)
	}
	if err := <-small; err != nil {
		t.Fatal(err)
	}
	if b.inUse() != 90 {
		t.Fatalf("in use %d, want 90", b.inUse())
	}
	// A cancelled wait takes nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancelled := make(chan error, 1)
	go func() { cancelled <- b.acquire(cctx, 50) }()
	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled acquire: %v", err)
	}
	b.release(90)
	if b.inUse() != 0 || len(b.waiters) != 0 {
		t.Fatalf("in use %d, %d waiters", b.inUse(), len(b.waiters))
	}
}

func TestFileDevice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(path, pattern(5, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := OpenFile(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Size() != 1<<20 || d.BlockSize() != DefaultBlockSize {
		t.Fatalf("size %d block size %d", d.Size(), d.BlockSize())
	}
	a, b := pattern(1, 8192), pattern(2, 4096)
	if err := d.WriteAt(a, 4096, false); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteAt(b, 65536+100, true); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := d.Trim(128<<10, 64<<10); err != nil {
		t.Fatal(err)
	}
	want := pattern(5, 1<<20)
	copy(want[4096:], a)
	copy(want[65536+100:], b)
	clear(want[128<<10 : 192<<10])
	got := make([]byte, 1<<20)
	if n, err := d.ReadAt(got, 0); n != len(got) || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("file contents differ")
	}
	onDisk, _ := os.ReadFile(path)
	if !bytes.Equal(onDisk, want) {
		t.Fatal("file contents on disk differ")
	}

	if err := os.WriteFile(path+"-odd", make([]byte, 5000), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFile(path+"-odd", 4096); err == nil {
		t.Fatal("a file of 5000 bytes opened with block size 4096")
	}
	if _, err := OpenFile(path, 1024+512); err == nil {
		t.Fatal("block size 1536 accepted")
	}
	if _, err := OpenFile("/dev/null", 512); err == nil {
		t.Fatal("a character device opened")
	}
	if _, err := OpenFile(filepath.Join(t.TempDir(), "missing"), 512); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// TestFileDeviceServed serves a file through the server.
func TestFileDeviceServed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(4 << 20)
	f.Close()
	d, err := OpenFile(path, 512)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	srv, c, _ := startServer(t, d, ServerOptions{})
	if srv.transmissionFlags()&serverSendTrim == 0 {
		t.Fatal("FileDevice served without TRIM")
	}
	data := pattern(3, 1<<20)
	if r := c.write(512, data, FlagFUA); r.errno != 0 {
		t.Fatal(r.errno)
	}
	if r := c.do(Request{Type: CmdTrim, Offset: 4096, Length: 4096}, nil); r.errno != 0 {
		t.Fatal(r.errno)
	}
	if r := c.do(Request{Type: CmdFlush}, nil); r.errno != 0 {
		t.Fatal(r.errno)
	}
	clear(data[4096-512 : 8192-512])
	onDisk, _ := os.ReadFile(path)
	if !bytes.Equal(onDisk[512:512+1<<20], data) {
		t.Fatal("file differs")
	}
}
