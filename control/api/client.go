package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
)

// DefaultSocket is where vigild listens by default.
const DefaultSocket = "/run/vigil/vigild.sock"

// maxResponseBytes caps an answer the client reads.
const maxResponseBytes = 16 << 20

// Client speaks the control API to a vigild over its unix socket.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client of the vigild listening at socketPath. Each call
// uses its own connection, so an idle client holds no resources.
func NewClient(socketPath string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socketPath)
		},
		DisableKeepAlives:  true,
		DisableCompression: true,
	}
	return &Client{path: socketPath, hc: &http.Client{Transport: tr}}
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
	return s, err
}

// ClusterStart starts the cluster service on the node.
func (c *Client) ClusterStart(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/cluster/start", nil, nil)
}

// ClusterStop stops the cluster service on the node.
func (c *Client) ClusterStop(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/cluster/stop", nil, nil)
}

// GroupStart starts group on server, or on the highest-priority eligible
// server when server is empty.
func (c *Client) GroupStart(ctx context.Context, group, server string) error {
	return c.do(ctx, http.MethodPost, "/v1/groups/"+url.PathEscape(group)+"/start", GroupRequest{Server: server}, nil)
}

// GroupStop stops group.
func (c *Client) GroupStop(ctx context.Context, group string) error {
	return c.do(ctx, http.MethodPost, "/v1/groups/"+url.PathEscape(group)+"/stop", nil, nil)
}

// GroupMove moves group to server, or to the next eligible server when server
// is empty.
func (c *Client) GroupMove(ctx context.Context, group, server string) error {
	return c.do(ctx, http.MethodPost, "/v1/groups/"+url.PathEscape(group)+"/move", GroupRequest{Server: server}, nil)
}

// MonitorSuspend suspends monitor.
func (c *Client) MonitorSuspend(ctx context.Context, monitor string) error {
	return c.do(ctx, http.MethodPost, "/v1/monitors/"+url.PathEscape(monitor)+"/suspend", nil, nil)
}

// MonitorResume resumes monitor.
func (c *Client) MonitorResume(ctx context.Context, monitor string) error {
	return c.do(ctx, http.MethodPost, "/v1/monitors/"+url.PathEscape(monitor)+"/resume", nil, nil)
}

// do sends one request with body (if not nil) as JSON and decodes the answer
// into out (if not nil). An error answer becomes an *Error.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	// The host is a placeholder: the transport always dials the socket.
	req, err := http.NewRequestWithContext(ctx, method, "http://vigild"+path, rd)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("read answer of vigild: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var er ErrorResponse
		if json.Unmarshal(data, &er) != nil {
			er.Error = ""
		}
		return &Error{StatusCode: resp.StatusCode, Message: er.Error}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode answer of vigild: %w", err)
		}
	}
	return nil
}

// transportError explains why a request did not get an answer.
func (c *Client) transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("vigild at %s: %w", c.path, ctx.Err())
	}
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		return &unreachableError{path: c.path, hint: "is it running?", err: err}
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return &unreachableError{path: c.path, hint: "permission denied (run as root)", err: err}
	}
	return fmt.Errorf("vigild at %s: %w", c.path, err)
}

// unreachableError says vigild's socket could not be connected to.
type unreachableError struct {
	path, hint string
	err        error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach vigild at %s: %s", e.path, e.hint)
}

func (e *unreachableError) Unwrap() error { return e.err }
