// Package proto is what the host and a test VM's init say to each other.
//
// The host hands the guest a Manifest, a JSON file in the initramfs. The
// guest answers on two virtio-serial ports:
//
//   - the output port carries the test binaries' stdout and stderr, byte
//     for byte, cut into frames that name the run and the stream (Frame);
//   - the status port carries one text line per event (Event): the guest
//     is ready, a run starts, a run exits with a code, init failed, all
//     done.
//
// Test output never travels on the status port, so nothing a test prints
// can be taken for an exit status.
package proto

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Port names, as qemu's virtserialport name= and the guest's
// /sys/class/virtio-ports/*/name show them.
const (
	OutputPort = "vigil.output"
	StatusPort = "vigil.status"
)

// ManifestPath is where the manifest is in the guest.
const ManifestPath = "/vigil/manifest.json"

// Manifest tells the guest's init what to do.
type Manifest struct {
	// Modules are the kernel modules to load, guest paths in load order.
	Modules []string `json:"modules"`
	// Env is added to every run's environment.
	Env []string `json:"env"`
	// Runs are run one after the other.
	Runs []Run `json:"runs"`
	// Hostname is the guest's host name.
	Hostname string `json:"hostname"`
	// Links configures network interfaces other than lo (two-VM mode).
	Links []Link `json:"links,omitempty"`
}

// Run is one program the guest runs.
type Run struct {
	// Name names the run in reports (a package path).
	Name string `json:"name"`
	// Path is the program, a guest path.
	Path string `json:"path"`
	// Args are its arguments, without the program name.
	Args []string `json:"args"`
	// Env is added to its environment.
	Env []string `json:"env"`
	// Dir is its working directory.
	Dir string `json:"dir"`
	// MakeDirs are directories to create before it starts (for files
	// the go command asks a test binary to write, such as
	// -test.testlogfile).
	MakeDirs []string `json:"make_dirs,omitempty"`
}

// Link is a network interface to bring up with an address.
type Link struct {
	// Name is the interface ("eth0").
	Name string `json:"name"`
	// Address is its address with prefix length ("198.18.250.1/24").
	Address string `json:"address"`
}

// Streams of a frame.
const (
	Stdout byte = 1
	Stderr byte = 2
)

const frameMagic = 'V'

// MaxFrame is the largest payload of one frame.
const MaxFrame = 1 << 16

// Frame is a piece of one run's output.
type Frame struct {
	Run    int
	Stream byte
	Data   []byte
}

// FrameWriter writes frames to the output port; it is safe for concurrent
// use.
type FrameWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// NewFrameWriter returns a FrameWriter on w.
func NewFrameWriter(w io.Writer) *FrameWriter { return &FrameWriter{w: w} }

// Write writes p as frames of run's stream.
func (fw *FrameWriter) Write(run int, stream byte, p []byte) error {
	if run < 0 || run > 0xffff {
		return fmt.Errorf("frame: run %d out of range", run)
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	for len(p) > 0 {
		n := min(len(p), MaxFrame)
		var h [8]byte
		h[0], h[1] = frameMagic, stream
		binary.BigEndian.PutUint16(h[2:], uint16(run))
		binary.BigEndian.PutUint32(h[4:], uint32(n))
		if _, err := fw.w.Write(append(h[:], p[:n]...)); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// Stream returns an io.Writer for one run's stream.
func (fw *FrameWriter) Stream(run int, stream byte) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		if err := fw.Write(run, stream, p); err != nil {
			return 0, err
		}
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// ErrBadFrame is returned for bytes that are not a frame.
var ErrBadFrame = errors.New("bad output frame")

// ReadFrame reads the next frame from r; io.EOF at a clean end.
func ReadFrame(r io.Reader) (Frame, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Frame{}, fmt.Errorf("%w: truncated header", ErrBadFrame)
		}
		return Frame{}, err
	}
	if h[0] != frameMagic || (h[1] != Stdout && h[1] != Stderr) {
		return Frame{}, fmt.Errorf("%w: header % x", ErrBadFrame, h)
	}
	n := binary.BigEndian.Uint32(h[4:])
	if n > MaxFrame {
		return Frame{}, fmt.Errorf("%w: %d bytes", ErrBadFrame, n)
	}
	f := Frame{Run: int(binary.BigEndian.Uint16(h[2:])), Stream: h[1], Data: make([]byte, n)}
	if _, err := io.ReadFull(r, f.Data); err != nil {
		return Frame{}, fmt.Errorf("%w: truncated data: %v", ErrBadFrame, err)
	}
	return f, nil
}

// Kind is the kind of a status event.
type Kind string

// Status events, in the order a healthy guest sends them: ready, then
// start and exit for each run, then done. error may come at any point.
const (
	// KindReady: init is up, modules loaded, ports open. Uptime is the
	// guest kernel's uptime.
	KindReady Kind = "ready"
	// KindStart: run Run started.
	KindStart Kind = "start"
	// KindExit: run Run ended with Code after Duration; Signal names the
	// signal that killed it, if one did.
	KindExit Kind = "exit"
	// KindError: init could not do something; Message says what.
	KindError Kind = "error"
	// KindDone: every run ended; the guest powers off.
	KindDone Kind = "done"
)

// Event is one line of the status port.
type Event struct {
	Kind     Kind
	Run      int
	Code     int
	Signal   string
	Duration time.Duration
	Uptime   time.Duration
	Message  string
}

// String is the event's line, without the newline.
func (e Event) String() string {
	switch e.Kind {
	case KindReady:
		return fmt.Sprintf("ready %d", e.Uptime.Milliseconds())
	case KindStart:
		return fmt.Sprintf("start %d", e.Run)
	case KindExit:
		s := fmt.Sprintf("exit %d %d %d", e.Run, e.Code, e.Duration.Milliseconds())
		if e.Signal != "" {
			s += " " + e.Signal
		}
		return s
	case KindError:
		return "error " + strconv.Quote(e.Message)
	case KindDone:
		return "done"
	}
	return "invalid"
}

// ParseEvent parses one status line.
func ParseEvent(line string) (Event, error) {
	verb, rest, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
	bad := func(why string) (Event, error) { return Event{}, fmt.Errorf("status line %q: %s", line, why) }
	ints := func(n int) ([]int64, bool) {
		f := strings.Fields(rest)
		if len(f) < n {
			return nil, false
		}
		out := make([]int64, n)
		for i := range n {
			v, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				return nil, false
			}
			out[i] = v
		}
		return out, true
	}
	switch Kind(verb) {
	case KindReady:
		v, ok := ints(1)
		if !ok || len(strings.Fields(rest)) != 1 || v[0] < 0 {
			return bad("want ready MS")
		}
		return Event{Kind: KindReady, Uptime: time.Duration(v[0]) * time.Millisecond}, nil
	case KindStart:
		v, ok := ints(1)
		if !ok || len(strings.Fields(rest)) != 1 || v[0] < 0 {
			return bad("want start RUN")
		}
		return Event{Kind: KindStart, Run: int(v[0])}, nil
	case KindExit:
		v, ok := ints(3)
		f := strings.Fields(rest)
		if !ok || len(f) > 4 || v[0] < 0 || v[2] < 0 {
			return bad("want exit RUN CODE MS [SIGNAL]")
		}
		e := Event{Kind: KindExit, Run: int(v[0]), Code: int(v[1]), Duration: time.Duration(v[2]) * time.Millisecond}
		if len(f) == 4 {
			e.Signal = f[3]
		}
		return e, nil
	case KindError:
		msg, err := strconv.Unquote(rest)
		if err != nil {
			return bad("want error \"MESSAGE\"")
		}
		return Event{Kind: KindError, Message: msg}, nil
	case KindDone:
		if rest != "" {
			return bad("want done")
		}
		return Event{Kind: KindDone}, nil
	}
	return bad("unknown event")
}

// StatusReader reads status events and checks that they come in an order
// a guest can send them in.
type StatusReader struct {
	sc      *bufio.Scanner
	ready   bool
	started int // runs started so far
	running bool
	done    bool
}

// NewStatusReader returns a StatusReader on r.
func NewStatusReader(r io.Reader) *StatusReader { return &StatusReader{sc: bufio.NewScanner(r)} }

// Next returns the next event, or io.EOF when the port closes.
func (s *StatusReader) Next() (Event, error) {
	if !s.sc.Scan() {
		if err := s.sc.Err(); err != nil {
			return Event{}, err
		}
		return Event{}, io.EOF
	}
	e, err := ParseEvent(s.sc.Text())
	if err != nil {
		return Event{}, err
	}
	if err := s.check(e); err != nil {
		return Event{}, fmt.Errorf("status %q: %w", s.sc.Text(), err)
	}
	return e, nil
}

func (s *StatusReader) check(e Event) error {
	if s.done {
		return errors.New("event after done")
	}
	switch e.Kind {
	case KindReady:
		if s.ready {
			return errors.New("second ready")
		}
		s.ready = true
	case KindStart:
		if !s.ready || s.running || e.Run != s.started {
			return fmt.Errorf("unexpected start of run %d (%d started, running %v)", e.Run, s.started, s.running)
		}
		s.started++
		s.running = true
	case KindExit:
		if !s.running || e.Run != s.started-1 {
			return fmt.Errorf("exit of run %d that is not running", e.Run)
		}
		s.running = false
	case KindDone:
		if s.running {
			return errors.New("done while a run is running")
		}
		s.done = true
	}
	return nil
}
