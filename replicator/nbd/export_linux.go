package nbd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// AnyIndex as Options.Index lets the kernel pick a free device.
const AnyIndex = -1

// MaxConnections bounds Options.Connections.
const MaxConnections = 64

// Export errors.
var (
	// ErrNoDriver is a kernel without the nbd driver (or its module not
	// loaded: modprobe nbd).
	ErrNoDriver = errors.New("the kernel has no nbd driver (modprobe nbd)")
	// ErrInUse is a device index already connected: by this process, or
	// by the kernel for another owner (a crashed predecessor's leftover
	// device needs CleanUp).
	ErrInUse = errors.New("nbd device in use")
	// ErrBusy is a Close while the device is mounted or otherwise held
	// exclusively: nothing was changed; unmount and Close again.
	ErrBusy = errors.New("nbd device busy (mounted or held exclusively)")
	// ErrStillOpen is a device disconnected but still held open by some
	// process when the context ended; its server side is gone and its I/O
	// fails. Close (or CleanUp) again once it is closed.
	ErrStillOpen = errors.New("nbd device disconnected but still open")
)

// Options configure Expose. The zero value exposes /dev/nbd0.
type Options struct {
	// Index is the device, N of /dev/nbdN; AnyIndex lets the kernel pick
	// a free one (creating it if every existing device is in use).
	Index int
	// Connections is the number of sockets, one per kernel queue: default
	// min(4, NumCPU), at most MaxConnections.
	Connections int
	// Timeout is the kernel's per-request timeout; past it the kernel
	// gives up on the socket and fails the request. Zero (the default)
	// never times out: the kernel logs a stuck request every 30 s and
	// waits, which suits a device behind a replication engine that has
	// its own peer timeout.
	Timeout time.Duration
	// Backend identifies the export to the kernel (NBD_ATTR_BACKEND_IDENTIFIER,
	// shown in /sys/block/nbdN/backend): a daemon names its disks so that
	// after a crash it can find and clean up what it left behind
	// (CleanUpBackend). At most 255 bytes.
	Backend string
	// Server tunes the server side (read-only, limits, log).
	Server ServerOptions
}

// Export is a Device exposed as a kernel block device, /dev/nbdN, served by
// this process. Its caller owns the device: it unmounts any file system on
// it before Close.
type Export struct {
	index int
	path  string
	dev   Device
	srv   *Server
	conns []net.Conn

	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}

	closeMu      sync.Mutex
	disconnected bool // the kernel was told to disconnect
	drained      bool // every connection ended and the device was flushed
	closed       bool // Close completed
	closeErrs    []error
}

// exports are this process's exports by index, so that a second Expose of
// an index is refused before the kernel is asked.
var exports = struct {
	sync.Mutex
	m map[int]*Export
}{m: map[int]*Export{}}

func reserve(index int, e *Export) error {
	exports.Lock()
	defer exports.Unlock()
	if _, ok := exports.m[index]; ok {
		return fmt.Errorf("nbd%d: %w: exported by this process", index, ErrInUse)
	}
	exports.m[index] = e
	return nil
}

func unreserve(index int, e *Export) {
	exports.Lock()
	defer exports.Unlock()
	if exports.m[index] == e {
		delete(exports.m, index)
	}
}

func exportedHere(index int) bool {
	exports.Lock()
	defer exports.Unlock()
	_, ok := exports.m[index]
	return ok
}

// Expose serves dev as a kernel block device: it makes one socketpair per
// connection, serves one end of each and hands the other ends to the
// kernel with NBD_CMD_CONNECT (size, block size, flags, timeout), then
// waits until /dev/nbdN shows dev's size. ctx bounds the setup only. It
// needs root (CAP_SYS_ADMIN) and the nbd driver (ErrNoDriver); an index
// already connected gives ErrInUse.
func Expose(ctx context.Context, dev Device, opts Options) (*Export, error) {
	if opts.Index < AnyIndex {
		return nil, fmt.Errorf("nbd expose: index %d: negative", opts.Index)
	}
	conns := opts.Connections
	if conns == 0 {
		conns = min(4, runtime.NumCPU())
	}
	if conns < 1 || conns > MaxConnections {
		return nil, fmt.Errorf("nbd expose: %d connections: not in [1, %d]", conns, MaxConnections)
	}
	if len(opts.Backend) > 255 {
		return nil, fmt.Errorf("nbd expose: backend identifier of %d bytes: longer than 255", len(opts.Backend))
	}
	srv, err := NewServer(dev, opts.Server)
	if err != nil {
		return nil, fmt.Errorf("nbd expose: %w", err)
	}
	e := &Export{index: opts.Index, dev: dev, srv: srv, done: make(chan struct{})}
	if opts.Index != AnyIndex {
		if err := reserve(opts.Index, e); err != nil {
			return nil, fmt.Errorf("nbd expose: %w", err)
		}
	}
	if err := e.start(ctx, opts, conns); err != nil {
		if opts.Index != AnyIndex {
			unreserve(opts.Index, e)
		}
		return nil, fmt.Errorf("nbd expose: %w", err)
	}
	srv.log.Info("nbd export up", "device", e.path, "size", dev.Size(), "block_size", dev.BlockSize(),
		"connections", conns, "backend", opts.Backend, "trim", srv.trim != nil, "read_only", srv.opts.ReadOnly)
	return e, nil
}

// start connects the device and waits for it; on error nothing is left.
func (e *Export) start(ctx context.Context, opts Options, n int) error {
	g, err := dialGenl()
	if err != nil {
		return err
	}
	defer g.Close()

	var kernelFDs []int
	defer func() {
		for _, fd := range kernelFDs {
			unix.Close(fd)
		}
	}()
	for range n {
		kfd, c, err := socketPair()
		if err != nil {
			e.closeConns()
			return err
		}
		kernelFDs = append(kernelFDs, kfd)
		e.conns = append(e.conns, c)
	}
	serveCtx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	for _, c := range e.conns {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.srv.Serve(serveCtx, c)
		}()
	}
	go func() {
		e.wg.Wait()
		close(e.done)
	}()
	// fail undoes what was done, disconnecting the device if connected.
	connected := false
	fail := func(err error) error {
		if connected {
			if derr := g.disconnect(e.index); derr != nil {
				err = errors.Join(err, fmt.Errorf("disconnect nbd%d: %w", e.index, derr))
			}
		}
		cancel()
		e.closeConns()
		<-e.done
		return err
	}

	index, err := g.connect(connectConfig{
		index: opts.Index, size: e.dev.Size(), blockSize: e.dev.BlockSize(),
		flags: e.srv.transmissionFlags(), timeout: opts.Timeout, fds: kernelFDs, backend: opts.Backend,
	})
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			err = fmt.Errorf("connect nbd%d: %w (%w); a leftover device needs CleanUp", opts.Index, ErrInUse, err)
		} else {
			err = fmt.Errorf("connect: %w", err)
		}
		return fail(err)
	}
	connected = true
	e.index = index
	e.path = fmt.Sprintf("/dev/nbd%d", index)
	if opts.Index == AnyIndex {
		if err := reserve(index, e); err != nil {
			return fail(err)
		}
	}
	if err := waitUsable(ctx, index, e.path, e.dev.Size()); err != nil {
		err = fail(err)
		if opts.Index == AnyIndex {
			unreserve(index, e)
		}
		return err
	}
	return nil
}

func (e *Export) closeConns() {
	for _, c := range e.conns {
		c.Close()
	}
}

// socketPair returns a connected pair of stream sockets: the descriptor to
// hand to the kernel, and the server's end.
func socketPair() (int, net.Conn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("socketpair: %w", err)
	}
	for _, fd := range fds {
		setBuffers(fd)
	}
	f := os.NewFile(uintptr(fds[1]), "nbd-server")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		unix.Close(fds[0])
		return -1, nil, fmt.Errorf("socketpair: %w", err)
	}
	return fds[0], c, nil
}

// socketBuffer is each socket's send and receive buffer: room for a few
// large requests or replies in flight (the default, about 200 KiB, makes a
// 1 MiB reply cross in several steps).
const socketBuffer = 4 << 20

// setBuffers enlarges fd's buffers; with CAP_NET_ADMIN past the system's
// limits (net.core.wmem_max), else up to them.
func setBuffers(fd int) {
	for _, o := range [][2]int{{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}, {unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}} {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, o[0], socketBuffer) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, o[1], socketBuffer)
		}
	}
}

// pollInterval returns the wait before the next look at the kernel's
// state: short at first, up to 100 ms.
func pollInterval(try int) time.Duration {
	return min(time.Duration(1<<min(try, 7))*time.Millisecond, 100*time.Millisecond)
}

// waitUsable waits until device index shows size bytes through both sysfs
// and its device node.
func waitUsable(ctx context.Context, index int, path string, size int64) error {
	var last error
	for try := 0; ; try++ {
		last = checkUsable(index, path, size)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w (%w)", path, ctx.Err(), last)
		case <-time.After(pollInterval(try)):
		}
	}
}

func checkUsable(index int, path string, size int64) error {
	if got, err := sysfsSize(index); err != nil || got != size {
		return fmt.Errorf("sysfs size %d, want %d (%v)", got, size, err)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer unix.Close(fd)
	var got uint64
	if err := ioctlPtr(fd, unix.BLKGETSIZE64, &got); err != nil {
		return fmt.Errorf("BLKGETSIZE64: %w", err)
	}
	if int64(got) != size {
		return fmt.Errorf("device size %d, want %d", got, size)
	}
	return nil
}

// sysfsSize is device index's size in bytes as /sys/block shows it.
func sysfsSize(index int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/sys/block/nbd%d/size", index))
	if err != nil {
		return 0, err
	}
	sectors, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, err
	}
	return sectors * 512, nil
}

// Path is the block device, /dev/nbdN.
func (e *Export) Path() string { return e.path }

// Index is N of /dev/nbdN.
func (e *Export) Index() int { return e.index }

// Stats returns the server's counters.
func (e *Export) Stats() Stats { return e.srv.Stats() }

// Done is closed once every connection has ended: after Close, or if the
// kernel disconnected the device (CleanUp, another tool) or the sockets
// broke. The device then fails I/O; Close still tears it down.
func (e *Export) Done() <-chan struct{} { return e.done }

// Close tears the export down, in steps that a later Close resumes if one
// fails:
//
//   - It opens the device exclusively. If it is mounted (or held
//     exclusively by anyone) it returns ErrBusy and changes nothing: the
//     caller unmounts first. Otherwise it flushes the kernel's cache of
//     the device (fsync: dirty pages, then FLUSH) while holding it, so
//     that nothing mounts it meanwhile.
//   - It disconnects (NBD_CMD_DISCONNECT): the kernel sends DISC, shuts
//     the sockets down and fails requests that were still queued; a
//     process that still has the device open gets I/O errors from then on.
//   - It waits for the requests in flight to complete and the connections
//     to end, then flushes the Device.
//   - It waits until the kernel releases the device (no configuration, no
//     opener). While another process holds it open this lasts until that
//     process closes it; if ctx ends first, Close returns ErrStillOpen.
//
// Errors of the flushes are returned but do not stop the teardown. Once
// Close has succeeded it returns nil.
func (e *Export) Close(ctx context.Context) error {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	if e.closed {
		return nil
	}
	if !e.disconnected {
		if err := e.flushAndDisconnect(); err != nil {
			return err
		}
		e.disconnected = true
	}
	if !e.drained {
		select {
		case <-e.done:
		case <-ctx.Done():
			return fmt.Errorf("close %s: wait for requests in flight: %w", e.path, ctx.Err())
		}
		e.cancel()
		if err := e.dev.Flush(); err != nil {
			e.closeErrs = append(e.closeErrs, fmt.Errorf("close %s: flush device: %w", e.path, err))
		}
		e.drained = true
	}
	if err := waitReleased(ctx, e.index); err != nil {
		return errors.Join(append(e.closeErrs, fmt.Errorf("close %s: %w", e.path, err))...)
	}
	e.closed = true
	unreserve(e.index, e)
	err := errors.Join(e.closeErrs...)
	e.closeErrs = nil
	e.srv.log.Info("nbd export closed", "device", e.path, "err", err)
	return err
}

// flushAndDisconnect is Close's first two steps.
func (e *Export) flushAndDisconnect() error {
	fd, err := unix.Open(e.path, unix.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("close %s: %w", e.path, ErrBusy)
	case err != nil:
		// No device node (removed by hand?): disconnect all the same.
		e.closeErrs = append(e.closeErrs, fmt.Errorf("close %s: open to flush: %w", e.path, err))
		fd = -1
	default:
		defer unix.Close(fd)
		if err := unix.Fsync(fd); err != nil {
			e.closeErrs = append(e.closeErrs, fmt.Errorf("close %s: flush kernel cache: %w", e.path, err))
		}
	}
	g, err := dialGenl()
	if err != nil {
		return fmt.Errorf("close %s: %w", e.path, err)
	}
	defer g.Close()
	if err := g.disconnect(e.index); err != nil {
		return fmt.Errorf("close %s: disconnect: %w", e.path, err)
	}
	return nil
}

// waitReleased waits until the kernel holds no configuration for device
// index: disconnected and closed by everyone.
func waitReleased(ctx context.Context, index int) error {
	g, err := dialGenl()
	if err != nil {
		return err
	}
	defer g.Close()
	for try := 0; ; try++ {
		st, err := g.status(index)
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		if len(st) == 0 || !st[0].inUse {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrStillOpen, ctx.Err())
		case <-time.After(pollInterval(try)):
		}
	}
}

// DeviceInfo is the kernel's view of one nbd device.
type DeviceInfo struct {
	// Index is N of /dev/nbdN.
	Index int
	// InUse says the kernel holds a configuration for it: it is connected,
	// or disconnected but still open, or merely open.
	InUse bool
	// Size is its size in bytes, 0 when not connected.
	Size int64
	// Backend is the backend identifier it was connected with, "" if none.
	Backend string
	// Here says this process exports it.
	Here bool
}

// List returns every nbd device the kernel has, by index.
func List() ([]DeviceInfo, error) {
	g, err := dialGenl()
	if err != nil {
		return nil, fmt.Errorf("nbd list: %w", err)
	}
	defer g.Close()
	st, err := g.status(AnyIndex)
	if err != nil {
		return nil, fmt.Errorf("nbd list: status: %w", err)
	}
	out := make([]DeviceInfo, 0, len(st))
	for _, s := range st {
		d := DeviceInfo{Index: s.index, InUse: s.inUse, Here: exportedHere(s.index)}
		d.Size, _ = sysfsSize(s.index)
		if b, err := os.ReadFile(filepath.Join("/sys/block", fmt.Sprintf("nbd%d", s.index), "backend")); err == nil {
			d.Backend = strings.TrimSpace(string(b))
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out, nil
}

// CleanUp disconnects device index, left connected by a crashed
// predecessor (its sockets' other ends are gone, so its I/O fails), and
// waits until the kernel releases it. A device not in use is left alone
// (nil). It refuses a device this process exports (ErrInUse: use Close).
// If the leftover device is still mounted, the kernel keeps it until it is
// unmounted: CleanUp returns ErrStillOpen when ctx ends.
//
// Only clean up devices this node owns: a device another process serves
// right now is disconnected all the same.
func CleanUp(ctx context.Context, index int) error {
	if index < 0 {
		return fmt.Errorf("nbd clean up: index %d: negative", index)
	}
	if exportedHere(index) {
		return fmt.Errorf("nbd clean up nbd%d: %w: exported by this process", index, ErrInUse)
	}
	g, err := dialGenl()
	if err != nil {
		return fmt.Errorf("nbd clean up nbd%d: %w", index, err)
	}
	defer g.Close()
	st, err := g.status(index)
	if err != nil {
		return fmt.Errorf("nbd clean up nbd%d: status: %w", index, err)
	}
	if len(st) == 0 || !st[0].inUse {
		return nil
	}
	if err := g.disconnect(index); err != nil {
		return fmt.Errorf("nbd clean up nbd%d: disconnect: %w", index, err)
	}
	if err := waitReleased(ctx, index); err != nil {
		return fmt.Errorf("nbd clean up nbd%d: %w", index, err)
	}
	return nil
}

// CleanUpBackend cleans up (CleanUp) every device connected with backend
// identifier backend that this process does not export, and returns their
// indexes.
func CleanUpBackend(ctx context.Context, backend string) ([]int, error) {
	if backend == "" {
		return nil, errors.New("nbd clean up: empty backend identifier")
	}
	devs, err := List()
	if err != nil {
		return nil, err
	}
	var done []int
	var errs []error
	for _, d := range devs {
		if d.Backend != backend || d.Here {
			continue
		}
		if err := CleanUp(ctx, d.Index); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, d.Index)
	}
	return done, errors.Join(errs...)
}
