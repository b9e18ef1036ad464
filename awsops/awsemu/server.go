package awsemu

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Account is the AWS account ID every emulated object belongs to.
const Account = "123456789012"

// maxCalls bounds the call log; older records are dropped first.
const maxCalls = 100_000

// maxBody bounds a request body.
const maxBody = 1 << 20

// Server serves a World over the AWS wire protocols. It is safe for
// concurrent use.
type Server struct {
	mu       sync.Mutex
	world    *World
	changes  map[string]*change // Route 53 changes by ID
	pending  []*change          // changes that may still be PENDING, oldest first
	tokens   map[string]imdsToken
	faults   map[string]*Fault
	buckets  map[string]*bucketPair // by access key ID
	calls    []CallRecord
	now      func() time.Time
	logger   *slog.Logger
	throttle bool
}

// CallRecord is one request the emulator answered.
type CallRecord struct {
	// Service is "ec2", "sts", "route53" or "imds".
	Service string
	// Action is the API action ("ReplaceRoute"), or for IMDS
	// "IMDSGetToken", "IMDSGetMetadata" or "IMDSGetDynamicData".
	Action string
	// Target is what the call acted on (rtb-1, eipalloc-1, a zone ID,
	// comma-separated IDs of a Describe call, an IMDS path).
	Target string
	// AccessKeyID is the credential that signed the request, if any.
	AccessKeyID string
	// Start is when the request arrived; End when its answer was written.
	Start, End time.Time
	// Status is the HTTP status of the answer.
	Status int
	// ErrorCode is the AWS error code of a failed call.
	ErrorCode string
}

// New returns a server for a deep copy of w. A World from ParseWorld is
// always valid; a World built in Go is normalized like one, and New panics
// when it is invalid (check it first with Validate).
func New(w *World) *Server {
	if w == nil {
		w = &World{}
	}
	c := w.Clone()
	if errs := validateWorld(c); len(errs) > 0 {
		panic(fmt.Sprintf("awsemu.New: invalid world: %v", joinFieldErrors(errs, nil)))
	}
	return &Server{
		world:   c,
		changes: map[string]*change{},
		tokens:  map[string]imdsToken{},
		faults:  map[string]*Fault{},
		buckets: map[string]*bucketPair{},
		now:     time.Now,
	}
}

// Validate checks w as ParseWorld does and fills in the documented defaults
// (ENI MACs and VPCs, association IDs, canonical DNS names).
func (w *World) Validate() error {
	if errs := validateWorld(w); len(errs) > 0 {
		return fmt.Errorf("validate world: %w", joinFieldErrors(errs, nil))
	}
	return nil
}

// Handler returns the handler of the EC2, STS and Route 53 APIs, and of the
// emulator's own unsigned /_emu/ admin paths.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/_emu/"):
			s.serveAdmin(w, r)
		case strings.HasPrefix(r.URL.Path, "/2013-04-01/"):
			s.serveRoute53(w, r)
		default:
			s.serveQuery(w, r)
		}
	})
}

// Snapshot returns a deep copy of the current World.
func (s *Server) Snapshot() *World {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.world.Clone()
}

// Update calls fn with a copy of the World and installs the copy when fn
// returns nil and the result is still a valid World; otherwise the World is
// unchanged. Calls see either the old or the new World, never a mix.
func (s *Server) Update(fn func(w *World) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.world.Clone()
	if err := fn(c); err != nil {
		return err
	}
	if errs := validateWorld(c); len(errs) > 0 {
		return fmt.Errorf("update world: %w", joinFieldErrors(errs, nil))
	}
	s.world = c
	return nil
}

// SetClock replaces the clock behind IMDS token lifetimes, Route 53 change
// delays and the throttling buckets; nil restores time.Now. Signatures and
// call records always use the real time.
func (s *Server) SetClock(now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	s.mu.Lock()
	s.now = now
	s.mu.Unlock()
}

// SetLogger makes the server log one line per request (service, action,
// target, status, error code, latency); nil stops logging.
func (s *Server) SetLogger(l *slog.Logger) {
	s.mu.Lock()
	s.logger = l
	s.mu.Unlock()
}

// Calls returns a copy of the call log, oldest first. The log keeps the
// last 100000 calls.
func (s *Server) Calls() []CallRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]CallRecord(nil), s.calls...)
}

// ResetCalls empties the call log.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	s.calls = nil
	s.mu.Unlock()
}

// record appends a finished call to the log and logs it.
func (s *Server) record(rec CallRecord) {
	s.mu.Lock()
	if len(s.calls) >= maxCalls {
		n := copy(s.calls, s.calls[len(s.calls)-maxCalls+1:])
		s.calls = s.calls[:n]
	}
	s.calls = append(s.calls, rec)
	l := s.logger
	s.mu.Unlock()
	if l != nil {
		l.Info("aws call", "service", rec.Service, "action", rec.Action, "target", rec.Target,
			"status", rec.Status, "error_code", rec.ErrorCode, "latency", rec.End.Sub(rec.Start))
	}
}

// newRequestID returns a request ID in AWS's UUID format.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// randomID returns n random characters from alphabet.
func randomID(alphabet string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}
