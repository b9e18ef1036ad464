package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Mirror is one mirror disk on the reporting node, as `vigilctl mirror
// status` shows it (like the guides' clpmdstat).
type Mirror struct {
	Name string `json:"name"`
	// Role is "primary" or "secondary"; PeerRole the connected peer's.
	Role     string `json:"role"`
	PeerRole string `json:"peer_role,omitempty"`
	// State is the connection: standalone, connecting, resyncing,
	// connected, split-brain.
	State      string `json:"state"`
	Mode       string `json:"mode"`
	Consistent bool   `json:"consistent"`
	// Verdict is the last generation comparison ("in-sync",
	// "local-newer", ...); LastError why the last connection ended.
	Verdict       string  `json:"verdict,omitempty"`
	LastError     string  `json:"last_error,omitempty"`
	SizeBytes     uint64  `json:"size_bytes"`
	DirtyBytes    uint64  `json:"dirty_bytes"`
	InSyncPercent float64 `json:"in_sync_percent"`
	// LagBytes and Lag are the async writes not yet acked by the peer
	// and the age of the oldest.
	LagBytes uint64        `json:"lag_bytes"`
	Lag      time.Duration `json:"lag_ns"`
	// ResyncTotal and ResyncDone are the bytes of the current or last
	// resync; ResyncRate its speed (bytes/s) and ResyncETA the time left.
	ResyncTotal uint64        `json:"resync_total_bytes"`
	ResyncDone  uint64        `json:"resync_done_bytes"`
	ResyncRate  float64       `json:"resync_rate_bytes_per_second"`
	ResyncETA   time.Duration `json:"resync_eta_ns"`
	// HotExtents is how many activity extents are hot (a crash of this
	// node resyncs them whole); BitmapSyncs how many writes waited for a
	// bitmap sync, their extent being cold.
	HotExtents  int    `json:"hot_extents"`
	BitmapSyncs uint64 `json:"bitmap_syncs"`
	// Frontend is "nbd" or "none"; Device and MountPoint are set while the
	// disk is exposed and mounted here.
	Frontend   string `json:"frontend"`
	Device     string `json:"device,omitempty"`
	MountPoint string `json:"mount_point,omitempty"`
}

// MirrorRequest is the optional body of the mirror operations.
type MirrorRequest struct {
	// Full makes a resync copy the whole disk, not only dirty regions.
	Full bool `json:"full,omitempty"`
	// Force promotes data known to be older or inconsistent.
	Force bool `json:"force,omitempty"`
	// Resync makes a verify resync the regions that differ.
	Resync bool `json:"resync,omitempty"`
}

// VerifyResult is the answer of a verify.
type VerifyResult struct {
	CheckedBytes    uint64 `json:"checked_bytes"`
	MismatchedBytes uint64 `json:"mismatched_bytes"`
	// Mismatches are the first differing ranges.
	Mismatches []ByteRange `json:"mismatches,omitempty"`
	// Resynced says the differing ranges were resynced.
	Resynced bool          `json:"resynced"`
	Took     time.Duration `json:"took_ns"`
}

// ByteRange is a range of a disk.
type ByteRange struct {
	Offset uint64 `json:"offset"`
	Length uint64 `json:"length"`
}

// MirrorBackend is what the API drives for mirror disks. A Backend that
// does not implement it answers the mirror operations with 404.
type MirrorBackend interface {
	// MirrorResync resyncs the disk's dirty regions now, or all of it.
	MirrorResync(ctx context.Context, name string, full bool) error
	// MirrorVerify compares both nodes' data online.
	MirrorVerify(ctx context.Context, name string, resync bool) (VerifyResult, error)
	// MirrorPromote makes this node's side primary without starting its
	// group; force accepts older or inconsistent data.
	MirrorPromote(ctx context.Context, name string, force bool) error
	// MirrorDiscard resolves a split brain by discarding this node's
	// changes: the next connection resyncs from the peer.
	MirrorDiscard(ctx context.Context, name string) error
}

// verifyTimeout bounds a verify, which reads the whole disk on both nodes.
const verifyTimeout = 24 * time.Hour

// mirrorRoutes adds the mirror operations to mux.
func (s *Server) mirrorRoutes(route func(method, path string, h http.HandlerFunc)) {
	mb, _ := s.b.(MirrorBackend)
	call := func(name string, do func(ctx context.Context, mb MirrorBackend, disk string, req MirrorRequest) (any, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var req MirrorRequest
			if code, err := decodeBody(w, r, &req); err != nil {
				writeError(w, code, err.Error())
				return
			}
			if mb == nil {
				writeError(w, http.StatusNotFound, "this node has no mirror disks")
				return
			}
			start := time.Now()
			out, err := do(r.Context(), mb, r.PathValue("name"), req)
			p, _ := r.Context().Value(peerKey{}).(peer)
			attrs := []any{"event", "api_op", "op", name, "name", r.PathValue("name"), "uid", p.uid, "pid", p.pid, "took", time.Since(start)}
			if err != nil {
				s.log.Warn("control api: operation failed", append(attrs, "err", err)...)
				writeError(w, statusFor(err), err.Error())
				return
			}
			s.log.Info("control api: operation done", attrs...)
			if out == nil {
				out = struct{}{}
			}
			writeJSON(w, http.StatusOK, out)
		}
	}
	bounded := func(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, d)
	}
	route(http.MethodPost, "/v1/mirrors/{name}/resync", call("mirror resync", func(ctx context.Context, mb MirrorBackend, n string, req MirrorRequest) (any, error) {
		ctx, cancel := bounded(ctx, opTimeout)
		defer cancel()
		return nil, mb.MirrorResync(ctx, n, req.Full)
	}))
	route(http.MethodPost, "/v1/mirrors/{name}/verify", call("mirror verify", func(ctx context.Context, mb MirrorBackend, n string, req MirrorRequest) (any, error) {
		ctx, cancel := bounded(ctx, verifyTimeout)
		defer cancel()
		return mb.MirrorVerify(ctx, n, req.Resync)
	}))
	route(http.MethodPost, "/v1/mirrors/{name}/promote", call("mirror promote", func(ctx context.Context, mb MirrorBackend, n string, req MirrorRequest) (any, error) {
		ctx, cancel := bounded(ctx, opTimeout)
		defer cancel()
		return nil, mb.MirrorPromote(ctx, n, req.Force)
	}))
	route(http.MethodPost, "/v1/mirrors/{name}/discard", call("mirror discard", func(ctx context.Context, mb MirrorBackend, n string, _ MirrorRequest) (any, error) {
		ctx, cancel := bounded(ctx, opTimeout)
		defer cancel()
		return nil, mb.MirrorDiscard(ctx, n)
	}))
}

// MirrorResync resyncs disk's dirty regions now, or all of it.
func (c *Client) MirrorResync(ctx context.Context, disk string, full bool) error {
	return c.do(ctx, http.MethodPost, mirrorPath(disk, "resync"), MirrorRequest{Full: full}, nil)
}

// MirrorVerify compares both nodes' copies of disk; resync mends the
// differences.
func (c *Client) MirrorVerify(ctx context.Context, disk string, resync bool) (VerifyResult, error) {
	var out VerifyResult
	err := c.do(ctx, http.MethodPost, mirrorPath(disk, "verify"), MirrorRequest{Resync: resync}, &out)
	return out, err
}

// MirrorPromote makes this node's side of disk primary.
func (c *Client) MirrorPromote(ctx context.Context, disk string, force bool) error {
	return c.do(ctx, http.MethodPost, mirrorPath(disk, "promote"), MirrorRequest{Force: force}, nil)
}

// MirrorDiscard discards this node's side of a split brain.
func (c *Client) MirrorDiscard(ctx context.Context, disk string) error {
	return c.do(ctx, http.MethodPost, mirrorPath(disk, "discard"), nil, nil)
}

func mirrorPath(disk, op string) string {
	return "/v1/mirrors/" + url.PathEscape(disk) + "/" + op
}
