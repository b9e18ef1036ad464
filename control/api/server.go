package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// maxBodyBytes caps a request body.
	maxBodyBytes = 64 << 10
	// opTimeout bounds one operation: stopping a group runs its scripts.
	opTimeout = 2 * time.Minute
	// shutdownGrace is how long Serve waits for requests in flight when its
	// context ends, before it closes their connections.
	shutdownGrace = 5 * time.Second
	// probeTimeout bounds the connect that tells a live socket from a stale one.
	probeTimeout = time.Second
)

// Server serves the control API on a unix socket to root only.
type Server struct {
	path string
	ln   *net.UnixListener
	b    Backend
	log  *slog.Logger
	hs   *http.Server

	allowedUID atomic.Uint32
	closeOnce  sync.Once
	closeErr   error
}

// Listen prepares the control socket at path and listens on it: it creates
// the socket's folder (0700) if missing, removes a stale socket nobody
// answers on, refuses when another vigild answers, and makes the socket 0600.
// Only peers with uid 0 are served; a nil log discards the server's log.
func Listen(path string, b Backend, log *slog.Logger) (*Server, error) {
	if b == nil {
		return nil, errors.New("control api: nil backend")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket folder: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket listen: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket chmod: %w", err)
	}
	s := &Server{path: path, ln: ln, b: b, log: log}
	s.hs = &http.Server{
		Handler:           s.handler(),
		ConnContext:       connContext,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    maxBodyBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// removeStale removes a socket file left by a dead vigild. It refuses to
// touch anything that is not a socket, and a socket someone still answers on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("control socket %s exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, probeTimeout)
	if err == nil {
		c.Close()
		return fmt.Errorf("control socket %s is in use by another vigild", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("control socket %s: probe: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("control socket remove stale: %w", err)
	}
	return nil
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// AllowUID sets the only peer uid the server serves, 0 (root) unless changed.
// Tests use it to serve their own uid.
func (s *Server) AllowUID(uid uint32) { s.allowedUID.Store(uid) }

// Serve answers requests until ctx ends or Close is called. When ctx ends it
// lets requests in flight finish for a few seconds, then closes their
// connections. It returns nil after a clean stop.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.hs.Serve(s.ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("control api serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := s.hs.Shutdown(sctx); err != nil {
		s.hs.Close()
	}
	<-errc
	return nil
}

// Close stops the server at once, closing every connection, and removes the
// socket file.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.hs.Close()
		// The listener is closed too when Serve never ran.
		if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) && s.closeErr == nil {
			s.closeErr = err
		}
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("control api close: %w", s.closeErr)
		}
	})
	return s.closeErr
}

// handler routes the API's requests, behind the peer credentials check.
func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	route := func(method, path string, h http.HandlerFunc) {
		mux.HandleFunc(method+" "+path, h)
		// Same path, any other method: a JSON 405 rather than the mux's text.
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path))
		})
	}
	route(http.MethodGet, "/v1/status", s.status)
	route(http.MethodPost, "/v1/cluster/start", s.op("cluster start", false,
		func(ctx context.Context, _ *http.Request, _ string) error { return s.b.ClusterStart(ctx) }))
	route(http.MethodPost, "/v1/cluster/stop", s.op("cluster stop", false,
		func(ctx context.Context, _ *http.Request, _ string) error { return s.b.ClusterStop(ctx) }))
	route(http.MethodPost, "/v1/groups/{name}/start", s.op("group start", true,
		func(ctx context.Context, r *http.Request, server string) error {
			return s.b.GroupStart(ctx, r.PathValue("name"), server)
		}))
	route(http.MethodPost, "/v1/groups/{name}/stop", s.op("group stop", false,
		func(ctx context.Context, r *http.Request, _ string) error {
			return s.b.GroupStop(ctx, r.PathValue("name"))
		}))
	route(http.MethodPost, "/v1/groups/{name}/move", s.op("group move", true,
		func(ctx context.Context, r *http.Request, server string) error {
			return s.b.GroupMove(ctx, r.PathValue("name"), server)
		}))
	route(http.MethodPost, "/v1/monitors/{name}/suspend", s.op("monitor suspend", false,
		func(ctx context.Context, r *http.Request, _ string) error {
			return s.b.MonitorSuspend(ctx, r.PathValue("name"))
		}))
	route(http.MethodPost, "/v1/monitors/{name}/resume", s.op("monitor resume", false,
		func(ctx context.Context, r *http.Request, _ string) error {
			return s.b.MonitorResume(ctx, r.PathValue("name"))
		}))
	s.mirrorRoutes(route)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %s", r.URL.Path))
	})
	return s.authorize(mux)
}

// authorize serves only peers whose uid is the allowed one.
func (s *Server) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := r.Context().Value(peerKey{}).(peer)
		if p.err != nil {
			s.log.Warn("control api: peer credentials unavailable", "err", p.err)
			writeError(w, http.StatusForbidden, "peer credentials unavailable")
			return
		}
		if want := s.allowedUID.Load(); p.uid != want {
			s.log.Warn("control api: peer denied", "uid", p.uid, "pid", p.pid, "path", r.URL.Path)
			writeError(w, http.StatusForbidden, fmt.Sprintf("permission denied: uid %d may not use the control API (root only)", p.uid))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// status answers GET /v1/status.
func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.b.Status())
}

// op builds the handler of one operation. withServer says the body may hold
// a GroupRequest; any other operation accepts only an empty body or {}.
func (s *Server) op(name string, withServer bool, do func(ctx context.Context, r *http.Request, server string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req GroupRequest
		var dst any = &struct{}{}
		if withServer {
			dst = &req
		}
		if code, err := decodeBody(w, r, dst); err != nil {
			writeError(w, code, err.Error())
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
		defer cancel()
		start := time.Now()
		err := do(ctx, r, req.Server)
		p, _ := r.Context().Value(peerKey{}).(peer)
		attrs := []any{"op", name, "uid", p.uid, "pid", p.pid, "took", time.Since(start)}
		if n := r.PathValue("name"); n != "" {
			attrs = append(attrs, "name", n)
		}
		if req.Server != "" {
			attrs = append(attrs, "target", req.Server)
		}
		if err != nil {
			s.log.Warn("control api: operation failed", append(attrs, "err", err)...)
			writeError(w, statusFor(err), err.Error())
			return
		}
		s.log.Info("control api: operation done", attrs...)
		writeJSON(w, http.StatusOK, struct{}{})
	}
}

// decodeBody strictly decodes a JSON body of at most maxBodyBytes into dst;
// an empty body leaves dst as it is. It returns the status to answer with on
// error.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any) (int, error) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		// Exactly one JSON value: anything after it is malformed.
		if _, err = dec.Token(); err == nil {
			return http.StatusBadRequest, errors.New("bad request body: data after the JSON value")
		}
	}
	if errors.Is(err, io.EOF) {
		return 0, nil
	}
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, fmt.Errorf("request body larger than %d bytes", mbe.Limit)
	}
	return http.StatusBadRequest, fmt.Errorf("bad request body: %w", err)
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	// The status line is gone: a failed write can only be a closed peer.
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers with an ErrorResponse.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, ErrorResponse{Error: msg})
}

// peerKey is the context key of a connection's peer.
type peerKey struct{}

// peer is the credentials of a connection's peer, or why they are missing.
type peer struct {
	uid, pid uint32
	err      error
}

// connContext records the peer credentials of a new connection.
func connContext(ctx context.Context, c net.Conn) context.Context {
	var p peer
	p.uid, p.pid, p.err = peerCred(c)
	return context.WithValue(ctx, peerKey{}, p)
}
