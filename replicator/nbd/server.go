package nbd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server limits.
const (
	// MaxRequestSize is the largest READ or WRITE a server accepts: the
	// kernel's nbd driver never sends more (max_hw_sectors 65536).
	MaxRequestSize = 32 << 20
	// DefaultMaxBuffered is ServerOptions.MaxBuffered's default.
	DefaultMaxBuffered = 256 << 20
	// DefaultMaxInFlight is ServerOptions.MaxInFlight's default; the
	// kernel keeps at most 128 requests in flight per socket.
	DefaultMaxInFlight = 256
)

// ServerOptions tune a Server. The zero value is ready to use.
type ServerOptions struct {
	// ReadOnly refuses WRITE, TRIM and WRITE_ZEROES with EPERM.
	ReadOnly bool
	// MaxRequest is the largest READ or WRITE length served; a longer one
	// gets EINVAL (a WRITE's data is read and dropped). At most and by
	// default MaxRequestSize.
	MaxRequest int
	// MaxBuffered bounds the bytes of request buffers held at once by all
	// of the server's connections (each buffer counted at its pool size,
	// the length rounded up to a power of two); a connection stops reading
	// requests while the next one's buffer does not fit. Default
	// DefaultMaxBuffered; at least the buffer size of MaxRequest.
	MaxBuffered int64
	// MaxInFlight bounds the requests in progress on one connection;
	// default DefaultMaxInFlight.
	MaxInFlight int
	// Log receives connection errors and, at most once a second, device
	// errors; nil discards them.
	Log *slog.Logger
}

// Stats are a server's counters since it was made, summed over its
// connections.
type Stats struct {
	// Requests served by the device, by command.
	Reads, Writes, FUAWrites, Flushes, Trims, WriteZeroes uint64
	// ReadBytes and WrittenBytes count data of successful requests.
	ReadBytes, WrittenBytes uint64
	// Rejected requests were answered with an error without reaching the
	// device (range, length, flags, read-only, unsupported command).
	Rejected uint64
	// Failed requests reached the device, which returned an error.
	Failed uint64
	// InFlight requests are in progress now; Connections are being served.
	InFlight, Connections int64
	// Buffered is the bytes of request buffers held now.
	Buffered int64
}

// Server serves the NBD transmission phase for one Device on any number of
// connections (the kernel uses one per queue). Requests of a connection
// are read in order and served concurrently, each in its own goroutine;
// replies go back as they complete, in any order, one at a time.
type Server struct {
	dev    Device
	trim   Trimmer
	size   uint64
	opts   ServerOptions
	budget *budget
	log    *slog.Logger

	reads, writes, fuaWrites, flushes, trims, zeroes atomic.Uint64
	readBytes, writtenBytes, rejected, failed        atomic.Uint64
	inFlight, conns                                  atomic.Int64

	errLogMu   sync.Mutex
	errLogLast time.Time
	errLogSkip int
}

// NewServer returns a server for dev. A dev that implements Trimmer is
// served with TRIM.
func NewServer(dev Device, opts ServerOptions) (*Server, error) {
	if err := checkGeometry(dev.Size(), dev.BlockSize()); err != nil {
		return nil, fmt.Errorf("nbd server: %w", err)
	}
	if opts.MaxRequest == 0 {
		opts.MaxRequest = MaxRequestSize
	}
	if opts.MaxRequest < 0 || opts.MaxRequest > MaxRequestSize {
		return nil, fmt.Errorf("nbd server: max request %d: not in [1, %d]", opts.MaxRequest, MaxRequestSize)
	}
	if opts.MaxBuffered == 0 {
		opts.MaxBuffered = max(DefaultMaxBuffered, classSize(opts.MaxRequest))
	}
	if opts.MaxBuffered < classSize(opts.MaxRequest) {
		return nil, fmt.Errorf("nbd server: max buffered %d: below the buffer of the largest request (%d)", opts.MaxBuffered, classSize(opts.MaxRequest))
	}
	if opts.MaxInFlight == 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.MaxInFlight < 0 {
		return nil, fmt.Errorf("nbd server: max in flight %d: negative", opts.MaxInFlight)
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{dev: dev, size: uint64(dev.Size()), opts: opts, budget: newBudget(opts.MaxBuffered), log: log}
	if t, ok := dev.(Trimmer); ok {
		s.trim = t
	}
	return s, nil
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Reads: s.reads.Load(), Writes: s.writes.Load(), FUAWrites: s.fuaWrites.Load(),
		Flushes: s.flushes.Load(), Trims: s.trims.Load(), WriteZeroes: s.zeroes.Load(),
		ReadBytes: s.readBytes.Load(), WrittenBytes: s.writtenBytes.Load(),
		Rejected: s.rejected.Load(), Failed: s.failed.Load(),
		InFlight: s.inFlight.Load(), Connections: s.conns.Load(), Buffered: s.budget.inUse(),
	}
}

// transmissionFlags are the server flags the kernel is given at connect.
func (s *Server) transmissionFlags() uint64 {
	f := uint64(serverHasFlags | serverSendFlush | serverSendFUA | serverSendWriteZeroes | serverCanMultiConn)
	if s.opts.ReadOnly {
		f |= serverReadOnly
	}
	if s.trim != nil {
		f |= serverSendTrim
	}
	return f
}

// Serve serves requests from conn until the client disconnects (DISC, or
// the stream ends between requests: nil), the stream breaks or carries a
// request it cannot parse (a bad magic or an unknown command: the error,
// also logged), or ctx ends (ctx's error). It waits for the requests in
// progress and closes conn before it returns. A request the server can
// parse but not serve (out of range, too long, bad flags, read-only,
// unsupported) gets an error reply and the connection goes on.
func (s *Server) Serve(ctx context.Context, conn io.ReadWriteCloser) error {
	ctx, cancel := context.WithCancelCause(ctx)
	c := &serverConn{
		s: s, rw: conn, br: bufio.NewReaderSize(conn, 64<<10),
		ctx: ctx, cancel: cancel, slots: make(chan struct{}, s.opts.MaxInFlight),
		replies: make(chan outReply, s.opts.MaxInFlight), writerDone: make(chan struct{}),
	}
	s.conns.Add(1)
	defer s.conns.Add(-1)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	go c.writeLoop()
	err := c.readLoop()
	c.wg.Wait()
	close(c.replies)
	<-c.writerDone
	if cause := context.Cause(ctx); err != nil && cause != nil {
		// The stream broke because ctx ended or a reply could not be
		// written: that is the error.
		err = cause
	}
	stop()
	conn.Close()
	cancel(nil)
	switch {
	case err == nil:
	case errors.Is(err, ErrBadMagic), errors.Is(err, ErrUnknownCommand):
		s.log.Error("nbd connection ended: protocol error", "err", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
	default:
		s.log.Warn("nbd connection ended", "err", err)
	}
	return err
}

// errWrite wraps a failed reply write, which ends the connection.
type errWrite struct{ err error }

func (e *errWrite) Error() string { return "write reply: " + e.err.Error() }
func (e *errWrite) Unwrap() error { return e.err }

// serverConn is one connection being served.
type serverConn struct {
	s      *Server
	rw     io.ReadWriteCloser
	br     *bufio.Reader
	ctx    context.Context
	cancel context.CancelCauseFunc
	slots  chan struct{}
	wg     sync.WaitGroup

	// replies go to the connection's one writer, writeLoop.
	replies    chan outReply
	writerDone chan struct{}
}

// outReply is a reply for the writer, which owns buf (if any) from then
// on: it returns it to its pool and cost to the budget once data, part of
// it, is written.
type outReply struct {
	hdr  [ReplySize]byte
	data []byte
	buf  *[]byte
	cost int64
}

// Reply batches: the writer sends the replies that are ready together, in
// one writev, up to these bounds.
const (
	maxBatch      = 64
	maxBatchBytes = 4 << 20
)

// queueReply hands a reply to the writer, with the buffer that holds data.
func (c *serverConn) queueReply(errno uint32, cookie uint64, data []byte, buf *[]byte, cost int64) {
	r := outReply{data: data, buf: buf, cost: cost}
	putReply(r.hdr[:], errno, cookie)
	c.replies <- r
}

// writeLoop writes replies as they come, those ready at once in one
// batch, until replies is closed. After a failed write it drops what
// comes (releasing the buffers) and cancels the connection.
func (c *serverConn) writeLoop() {
	defer close(c.writerDone)
	var batch []outReply
	var bufs net.Buffers
	failed := false
	for r := range c.replies {
		batch = append(batch[:0], r)
		size := len(r.data)
	more:
		for len(batch) < maxBatch && size < maxBatchBytes {
			select {
			case r, ok := <-c.replies:
				if !ok {
					break more
				}
				batch = append(batch, r)
				size += len(r.data)
			default:
				break more
			}
		}
		if !failed {
			bufs = bufs[:0]
			for i := range batch {
				bufs = append(bufs, batch[i].hdr[:])
				if len(batch[i].data) > 0 {
					bufs = append(bufs, batch[i].data)
				}
			}
			w := bufs // WriteTo consumes its receiver
			if _, err := w.WriteTo(c.rw); err != nil {
				failed = true
				c.cancel(&errWrite{err})
			}
		}
		for i := range batch {
			if batch[i].buf != nil {
				putBuf(batch[i].buf)
				c.s.budget.release(batch[i].cost)
			}
			batch[i] = outReply{}
		}
		clear(bufs)
	}
}

// readLoop reads requests and starts each one; it returns nil on DISC or a
// clean end of stream.
func (c *serverConn) readLoop() error {
	s := c.s
	var hdr [RequestSize]byte
	for {
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("read request: %w", err)
		}
		req, err := ParseRequest(hdr[:])
		if err != nil {
			return fmt.Errorf("request cookie %#x: %w", req.Cookie, err)
		}
		if req.Type == CmdDisc {
			return nil
		}
		if errno := s.check(req); errno != 0 {
			s.rejected.Add(1)
			if req.Type == CmdWrite {
				if _, err := io.CopyN(io.Discard, c.br, int64(req.Length)); err != nil {
					return fmt.Errorf("read write data: %w", err)
				}
			}
			c.queueReply(errno, req.Cookie, nil, nil, 0)
			continue
		}
		var buf *[]byte
		var cost int64
		if req.Type == CmdRead || req.Type == CmdWrite {
			cost = classSize(int(req.Length))
			if err := s.budget.acquire(c.ctx, cost); err != nil {
				return err
			}
			buf = getBuf(int(req.Length))
			if req.Type == CmdWrite {
				if _, err := io.ReadFull(c.br, *buf); err != nil {
					putBuf(buf)
					s.budget.release(cost)
					return fmt.Errorf("read write data: %w", err)
				}
			}
		}
		select {
		case c.slots <- struct{}{}:
		case <-c.ctx.Done():
			if buf != nil {
				putBuf(buf)
				s.budget.release(cost)
			}
			return context.Cause(c.ctx)
		}
		c.wg.Add(1)
		s.inFlight.Add(1)
		go c.serve(req, buf, cost)
	}
}

// check returns the error a request gets without reaching the device, or 0.
func (s *Server) check(r Request) uint32 {
	if r.Flags&^(FlagFUA|FlagNoHole) != 0 {
		return ErrnoInval
	}
	inRange := r.Offset <= s.size && uint64(r.Length) <= s.size-r.Offset
	switch r.Type {
	case CmdRead, CmdWrite:
		switch {
		case r.Length == 0, int64(r.Length) > int64(s.opts.MaxRequest), !inRange:
			return ErrnoInval
		case r.Type == CmdWrite && s.opts.ReadOnly:
			return ErrnoPerm
		}
	case CmdTrim, CmdWriteZeroes:
		switch {
		case r.Length == 0, !inRange:
			return ErrnoInval
		case s.opts.ReadOnly:
			return ErrnoPerm
		case r.Type == CmdTrim && s.trim == nil:
			return ErrnoNotSup
		}
	case CmdFlush:
	default: // CACHE, BLOCK_STATUS
		return ErrnoNotSup
	}
	return 0
}

// serve runs one request on the device and replies.
func (c *serverConn) serve(req Request, buf *[]byte, cost int64) {
	s := c.s
	defer func() {
		s.inFlight.Add(-1)
		<-c.slots
		c.wg.Done()
	}()
	off := int64(req.Offset)
	fua := req.Flags&FlagFUA != 0
	var err error
	switch req.Type {
	case CmdRead:
		var n int
		n, err = s.dev.ReadAt(*buf, off)
		if err == io.EOF && n == len(*buf) {
			err = nil
		}
		if err == nil && n < len(*buf) {
			err = io.ErrUnexpectedEOF
		}
		if err == nil {
			s.reads.Add(1)
			s.readBytes.Add(uint64(n))
			// The writer sends the data and releases the buffer.
			c.queueReply(0, req.Cookie, *buf, buf, cost)
			return
		}
	case CmdWrite:
		err = s.dev.WriteAt(*buf, off, fua)
		if err == nil {
			s.writes.Add(1)
			s.writtenBytes.Add(uint64(len(*buf)))
			if fua {
				s.fuaWrites.Add(1)
			}
		}
	case CmdFlush:
		err = s.dev.Flush()
		if err == nil {
			s.flushes.Add(1)
		}
	case CmdTrim:
		err = s.trim.Trim(off, int64(req.Length))
		if err == nil && fua {
			err = s.dev.Flush()
		}
		if err == nil {
			s.trims.Add(1)
		}
	case CmdWriteZeroes:
		err = s.writeZeroes(off, int64(req.Length), fua)
		if err == nil {
			s.zeroes.Add(1)
		}
	}
	if buf != nil {
		putBuf(buf)
		s.budget.release(cost)
	}
	errno := uint32(0)
	if err != nil {
		errno = errnoOf(err)
		s.failed.Add(1)
		s.logDeviceError(req, err)
	}
	c.queueReply(errno, req.Cookie, nil, nil, 0)
}

// zeroes is what WRITE_ZEROES writes, a chunk at a time. Nothing writes
// into it: Device.WriteAt must not modify p.
var zeroes = make([]byte, 1<<20)

func (s *Server) writeZeroes(off, n int64, fua bool) error {
	for n > 0 {
		k := min(n, int64(len(zeroes)))
		if err := s.dev.WriteAt(zeroes[:k], off, false); err != nil {
			return err
		}
		off, n = off+k, n-k
	}
	if fua {
		return s.dev.Flush()
	}
	return nil
}

// errnoOf maps a device error to a reply's error value: the errno when it
// is one the protocol defines, EIO otherwise.
func errnoOf(err error) uint32 {
	switch {
	case errors.Is(err, ErrNotSupported):
		return ErrnoNotSup
	case errors.Is(err, ErrReadOnly):
		return ErrnoPerm
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		switch v := uint32(en); v {
		case ErrnoPerm, ErrnoIO, ErrnoNoMem, ErrnoInval, ErrnoNoSpc, ErrnoOverflow, ErrnoNotSup, ErrnoShutdown:
			return v
		}
	}
	return ErrnoIO
}

// logDeviceError logs a device error, at most once a second, saying how
// many were not logged since.
func (s *Server) logDeviceError(req Request, err error) {
	s.errLogMu.Lock()
	now := time.Now()
	if now.Sub(s.errLogLast) < time.Second {
		s.errLogSkip++
		s.errLogMu.Unlock()
		return
	}
	skipped := s.errLogSkip
	s.errLogLast, s.errLogSkip = now, 0
	s.errLogMu.Unlock()
	s.log.Warn("nbd device error", "cmd", req.Type.String(), "offset", req.Offset, "length", req.Length, "err", err, "not_logged_since", skipped)
}
