package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/control/api"
	"github.com/vigil-ha/vigil/control/api/apitest"
)

func sampleStatus() api.Status {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	return api.Status{
		Cluster: "prod", Server: "ip-1", ConfigHash: "ab12", Service: api.ServiceRunning, Heartbeat: "xdp",
		Nodes: []api.Node{
			{Name: "ip-1", Self: true, State: api.NodeUp, Service: api.ServiceRunning},
			{Name: "ip-2", State: api.NodeUp, Service: api.ServiceRunning, Lanes: []api.Lane{
				{Name: "lan0", Up: true, RTT: 42 * time.Microsecond, LastSeen: t0, Misses: 1},
			}},
		},
		Groups: []api.Group{{Name: "db", State: api.StateOnline, Owner: "ip-1", Generation: 3,
			Resources: []api.Resource{{Name: "vip", Type: "aws_vip", State: api.StateOnline}}}},
		Monitors: []api.Monitor{{Name: "vipw", Type: "aws_vip", State: api.MonitorOK}},
		LastFailover: &api.Timeline{Group: "db", From: "ip-2", To: "ip-1", Events: []api.Event{
			{At: t0, What: "peer ip-2 lost on all lanes"},
			{At: t0.Add(3 * time.Millisecond), What: "group db online"},
		}},
	}
}

func TestStatus(t *testing.T) {
	b := &apitest.Backend{State: sampleStatus()}
	s := apitest.Serve(t, b)
	got, err := api.NewClient(s.Path()).Status(context.Background())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if want := sampleStatus(); !reflect.DeepEqual(got, want) {
		t.Errorf("Status = %+v, want %+v", got, want)
	}
}

func TestOperations(t *testing.T) {
	b := &apitest.Backend{}
	s := apitest.Serve(t, b)
	c := api.NewClient(s.Path())
	ctx := context.Background()
	steps := []struct {
		do   func() error
		want apitest.Call
	}{
		{func() error { return c.ClusterStart(ctx) }, apitest.Call{Op: "ClusterStart"}},
		{func() error { return c.ClusterStop(ctx) }, apitest.Call{Op: "ClusterStop"}},
		{func() error { return c.GroupStart(ctx, "db", "") }, apitest.Call{Op: "GroupStart", Name: "db"}},
		{func() error { return c.GroupStart(ctx, "db", "ip-2") }, apitest.Call{Op: "GroupStart", Name: "db", Server: "ip-2"}},
		{func() error { return c.GroupStop(ctx, "db") }, apitest.Call{Op: "GroupStop", Name: "db"}},
		{func() error { return c.GroupMove(ctx, "db", "") }, apitest.Call{Op: "GroupMove", Name: "db"}},
		{func() error { return c.GroupMove(ctx, "web/app x", "ip-3") }, apitest.Call{Op: "GroupMove", Name: "web/app x", Server: "ip-3"}},
		{func() error { return c.MonitorSuspend(ctx, "ipw") }, apitest.Call{Op: "MonitorSuspend", Name: "ipw"}},
		{func() error { return c.MonitorResume(ctx, "ipw") }, apitest.Call{Op: "MonitorResume", Name: "ipw"}},
	}
	var want []apitest.Call
	for i, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("step %d (%s): %v", i, st.want.Op, err)
		}
		want = append(want, st.want)
	}
	if got := b.Calls(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls = %+v\nwant %+v", got, want)
	}
}

func TestErrorMapping(t *testing.T) {
	b := &apitest.Backend{Errors: map[string]error{
		"GroupStop nope":    fmt.Errorf("group stop: %w", apitest.NotFound(`group "nope" does not exist`)),
		"GroupMove db":      apitest.Conflict("group db is stopping"),
		"MonitorSuspend m1": errors.New("monitor m1: boom"),
		"MonitorResume":     fmt.Errorf("resume: %w", api.ErrNotFound),
	}}
	s := apitest.Serve(t, b)
	c := api.NewClient(s.Path())
	ctx := context.Background()
	tests := []struct {
		name     string
		err      error
		code     int
		msg      string
		sentinel error
	}{
		{"not found", c.GroupStop(ctx, "nope"), 404, `group stop: group "nope" does not exist`, api.ErrNotFound},
		{"conflict", c.GroupMove(ctx, "db", "ip-2"), 409, "group db is stopping", api.ErrConflict},
		{"internal", c.MonitorSuspend(ctx, "m1"), 500, "monitor m1: boom", nil},
		{"bare sentinel", c.MonitorResume(ctx, "m2"), 404, "resume: not found", api.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ae *api.Error
			if !errors.As(tt.err, &ae) {
				t.Fatalf("err = %v (%T), want *api.Error", tt.err, tt.err)
			}
			if ae.StatusCode != tt.code || ae.Message != tt.msg || tt.err.Error() != tt.msg {
				t.Errorf("err = %d %q, want %d %q", ae.StatusCode, ae.Message, tt.code, tt.msg)
			}
			for _, s := range []error{api.ErrNotFound, api.ErrConflict} {
				if errors.Is(tt.err, s) != (s == tt.sentinel) {
					t.Errorf("errors.Is(err, %v) = %v", s, !(s == tt.sentinel))
				}
			}
		})
	}
}

// rawClient returns an HTTP client dialing the socket at path.
func rawClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// send sends one raw request and returns the status and the error message.
func send(t *testing.T, hc *http.Client, method, path, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://vigild"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	var er api.ErrorResponse
	if err := json.Unmarshal(data, &er); err != nil {
		t.Errorf("%s %s: answer %q is not JSON: %v", method, path, data, err)
	}
	return resp.StatusCode, resp.Header, er.Error
}

func TestRequestValidation(t *testing.T) {
	b := &apitest.Backend{}
	s := apitest.Serve(t, b)
	hc := rawClient(s.Path())
	big := `{"server":"` + strings.Repeat("x", 70<<10) + `"}`
	tests := []struct {
		name, method, path, body string
		code                     int
		msg                      string
	}{
		{"unknown field", "POST", "/v1/groups/db/move", `{"server":"ip-2","force":true}`, 400, `unknown field "force"`},
		{"malformed", "POST", "/v1/groups/db/move", `{"server":`, 400, "bad request body"},
		{"wrong type", "POST", "/v1/groups/db/start", `{"server":7}`, 400, "bad request body"},
		{"trailing data", "POST", "/v1/groups/db/move", `{"server":"ip-2"} {}`, 400, "data after the JSON value"},
		{"oversized", "POST", "/v1/groups/db/move", big, 413, "larger than 65536 bytes"},
		{"server on stop", "POST", "/v1/groups/db/stop", `{"server":"ip-2"}`, 400, `unknown field "server"`},
		{"wrong method", "GET", "/v1/cluster/stop", "", 405, "method GET not allowed"},
		{"status by POST", "POST", "/v1/status", "", 405, "not allowed"},
		{"unknown path", "GET", "/v1/nodes", "", 404, "no such endpoint /v1/nodes"},
		{"unknown op", "POST", "/v1/groups/db/restart", "", 404, "no such endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, hdr, msg := send(t, hc, tt.method, tt.path, tt.body)
			if code != tt.code || !strings.Contains(msg, tt.msg) {
				t.Errorf("%s %s = %d %q, want %d containing %q", tt.method, tt.path, code, msg, tt.code, tt.msg)
			}
			if code == 405 && hdr.Get("Allow") == "" {
				t.Errorf("405 without Allow header")
			}
		})
	}
	if calls := b.Calls(); len(calls) != 0 {
		t.Errorf("rejected requests reached the backend: %+v", calls)
	}
	// Empty bodies and {} are fine.
	for _, body := range []string{"", "{}", " {} \n"} {
		if code, _, msg := send(t, hc, "POST", "/v1/groups/db/stop", body); code != 200 {
			t.Errorf("stop with body %q = %d %q, want 200", body, code, msg)
		}
	}
}

// deadlineBackend records the deadline an operation got.
type deadlineBackend struct {
	apitest.Backend
	left time.Duration
}

func (b *deadlineBackend) ClusterStop(ctx context.Context) error {
	if d, ok := ctx.Deadline(); ok {
		b.left = time.Until(d)
	}
	return nil
}

func TestOperationTimeout(t *testing.T) {
	b := &deadlineBackend{}
	s := apitest.Serve(t, b)
	if err := api.NewClient(s.Path()).ClusterStop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b.left < 100*time.Second || b.left > 2*time.Minute {
		t.Errorf("operation deadline in %v, want about 2m", b.left)
	}
}

// shortDir returns a temporary folder with a short path, for sockets.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestSocketModes(t *testing.T) {
	dir := filepath.Join(shortDir(t), "run", "vigil")
	path := filepath.Join(dir, "vigild.sock")
	s, err := api.Listen(path, &apitest.Backend{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want socket 0600", fi.Mode())
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("folder mode %v, want 0700", di.Mode().Perm())
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after Close: %v", err)
	}
}

func TestStaleSocketRemoved(t *testing.T) {
	path := filepath.Join(shortDir(t), "vigild.sock")
	// A dead daemon's socket: the file stays, nobody answers.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	s, err := api.Listen(path, &apitest.Backend{State: api.Status{Cluster: "c"}}, nil)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	s.AllowUID(uint32(os.Getuid()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	st, err := api.NewClient(path).Status(ctx)
	if err != nil || st.Cluster != "c" {
		t.Errorf("Status = %+v, %v", st, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestSocketInUse(t *testing.T) {
	path := filepath.Join(shortDir(t), "vigild.sock")
	s, err := api.Listen(path, &apitest.Backend{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = api.Listen(path, &apitest.Backend{}, nil)
	if want := "control socket " + path + " is in use by another vigild"; err == nil || err.Error() != want {
		t.Errorf("second Listen: %v, want %q", err, want)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("first daemon's socket was removed: %v", err)
	}
}

func TestNotASocket(t *testing.T) {
	path := filepath.Join(shortDir(t), "vigild.sock")
	if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := api.Listen(path, &apitest.Backend{}, nil)
	if err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("Listen over a file: %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "data" {
		t.Errorf("the file was touched")
	}
}

func TestPeerUID(t *testing.T) {
	b := &apitest.Backend{}
	s := apitest.Serve(t, b)
	c := api.NewClient(s.Path())
	uid := uint32(os.Getuid())

	s.AllowUID(uid + 1)
	err := c.ClusterStop(context.Background())
	var ae *api.Error
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusForbidden ||
		!strings.Contains(ae.Message, fmt.Sprintf("uid %d may not use the control API", uid)) {
		t.Errorf("mismatched uid: %v, want 403", err)
	}
	if _, err := c.Status(context.Background()); err == nil {
		t.Errorf("mismatched uid: Status succeeded")
	}
	if calls := b.Calls(); len(calls) != 0 {
		t.Errorf("denied request reached the backend: %+v", calls)
	}

	s.AllowUID(uid)
	if err := c.ClusterStop(context.Background()); err != nil {
		t.Errorf("matching uid: %v", err)
	}
}

func TestDefaultServesRootOnly(t *testing.T) {
	path := filepath.Join(shortDir(t), "vigild.sock")
	s, err := api.Listen(path, &apitest.Backend{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	_, err = api.NewClient(path).Status(ctx)
	if os.Getuid() == 0 {
		if err != nil {
			t.Errorf("root denied: %v", err)
		}
	} else if !errors.As(err, new(*api.Error)) {
		t.Errorf("uid %d: err = %v, want 403", os.Getuid(), err)
	}
}

func TestClientUnreachable(t *testing.T) {
	path := filepath.Join(shortDir(t), "vigild.sock")
	_, err := api.NewClient(path).Status(context.Background())
	if want := "cannot reach vigild at " + path + ": is it running?"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err does not wrap the dial error: %v", err)
	}
}

func TestCloseStopsServe(t *testing.T) {
	path := filepath.Join(shortDir(t), "vigild.sock")
	s, err := api.Listen(path, &apitest.Backend{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	// Wait until the server answers, then close it.
	s.AllowUID(uint32(os.Getuid()))
	if _, err := api.NewClient(path).Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
}
