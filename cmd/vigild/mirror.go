package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/vigil-ha/vigil/control/api"
	"github.com/vigil-ha/vigil/control/config"
	"github.com/vigil-ha/vigil/control/node"
	"github.com/vigil-ha/vigil/metrics"
	"github.com/vigil-ha/vigil/replicator/engine"
	"github.com/vigil-ha/vigil/replicator/mirror"
	"github.com/vigil-ha/vigil/replicator/wire"
)

// mirrors are the node's mirror disks, opened for the daemon's life.
type mirrors struct {
	disks map[string]*mirror.Disk
	order []string
}

// openMirrors opens every mirror disk of the groups this server belongs
// to. On error it closes what it opened.
func openMirrors(cfg *config.Config, server string, log *slog.Logger, mt *metrics.Metrics) (*mirrors, error) {
	m := &mirrors{disks: map[string]*mirror.Disk{}}
	self := cfg.ServerIndex(server)
	lane := ""
	for _, l := range cfg.Lanes {
		if l.Mirror {
			lane = l.Name
		}
	}
	for gi := range cfg.Groups {
		g := &cfg.Groups[gi]
		servers := cfg.GroupServers(g)
		if !slices.Contains(servers, server) {
			continue
		}
		for ri := range g.Resources {
			r := &g.Resources[ri]
			if r.Type != config.KindMirrorDisk {
				continue
			}
			mc, err := mirrorConfig(cfg, r, server, self, servers, lane, log, mt)
			if err == nil {
				var d *mirror.Disk
				if d, err = mirror.Open(mc); err == nil {
					m.disks[r.Name] = d
					m.order = append(m.order, r.Name)
					continue
				}
			}
			m.close(log)
			return nil, fmt.Errorf("mirror disk %s: %w", r.Name, err)
		}
	}
	if len(m.disks) > 0 {
		log.Info("mirror disks: spare scheduler Ps for their blocking disk writes", "event", "mirror_procs", "gomaxprocs", engine.SpareProcs())
	}
	return m, nil
}

// mirrorConfig derives one disk's settings on server.
func mirrorConfig(cfg *config.Config, r *config.Resource, server string, self int, servers []string, lane string, log *slog.Logger, mt *metrics.Metrics) (mirror.Config, error) {
	md := r.For(server).MirrorDisk
	peerName := servers[0]
	if peerName == server {
		peerName = servers[1]
	}
	peer := cfg.ServerIndex(peerName)
	addr := func(s string) (netip.AddrPort, error) {
		a, err := netip.ParseAddr(cfg.Servers[cfg.ServerIndex(s)].Interconnects[lane])
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("mirror lane %s address of %s: %w", lane, s, err)
		}
		return netip.AddrPortFrom(a, uint16(md.Port)), nil
	}
	local, err := addr(server)
	if err != nil {
		return mirror.Config{}, err
	}
	remote, err := addr(peerName)
	if err != nil {
		return mirror.Config{}, err
	}
	mc := mirror.Config{
		Name: r.Name, DataPath: md.DataPartition, MetaPath: md.ClusterPartition,
		VolumeUUID: mirror.VolumeUUID(cfg.Cluster.Name, r.Name),
		Node:       uint8(self), Peer: uint8(peer),
		Local: local, PeerAddr: remote,
		ClusterKey: cfg.Key,
		Timeout:    time.Duration(md.TimeoutMS) * time.Millisecond,
		ResyncRate: int64(md.ResyncRateMBps) * 1_000_000,
		HotExtents: md.HotExtents,
		Compress:   md.Compress,
		Log:        log,
	}
	if mt != nil {
		name := r.Name
		mc.ObserveWrite = func(d time.Duration) { mt.ObserveMirrorWrite(name, d) }
	}
	copy(mc.ConfigHash[:], cfg.Hash[:16])
	if md.Mode == config.MirrorAsync {
		mc.Mode = engine.AsyncMode
	}
	if md.HotExtents == 0 {
		mc.HotExtents = -1 // none
	}
	if mc.Frontend, err = mirrorFrontend(md.Frontend, cfg.Cluster.Name, server, log); err != nil {
		return mirror.Config{}, err
	}
	if md.MountPoint != "" {
		mc.Mount = &mirror.MountSpec{Point: md.MountPoint, FSType: md.FSType, Mkfs: md.Mkfs}
	}
	if md.TLS != nil {
		if mc.TLS, err = mirrorTLS(md.TLS); err != nil {
			return mirror.Config{}, err
		}
	}
	return mc, nil
}

// run keeps every disk's mirror connect up until ctx ends.
func (m *mirrors) run(ctx context.Context) error {
	errs := make(chan error, len(m.disks))
	for _, name := range m.order {
		d := m.disks[name]
		go func() { errs <- d.Run(ctx) }()
	}
	var err error
	for range m.disks {
		err = errors.Join(err, <-errs)
	}
	return err
}

// close closes every disk; the node stopped its groups first.
func (m *mirrors) close(log *slog.Logger) {
	for _, name := range m.order {
		if err := m.disks[name].Close(); err != nil {
			log.Error("mirror disk close", "event", "mirror_close_failed", "disk", name, "err", err)
		}
	}
}

// samples reports every disk for the metrics.
func (m *mirrors) samples() []metrics.MirrorSample {
	var out []metrics.MirrorSample
	for _, name := range m.order {
		s := m.disks[name].Status()
		e := s.Engine
		ms := metrics.MirrorSample{
			Disk: name, State: e.State.String(),
			Primary: e.Role == engine.Primary, Connected: e.Peer >= 0 && e.State == engine.Connected,
			Consistent: e.Consistent, SizeBytes: e.Size, DirtyBytes: e.DirtyBytes,
			ReplicatedBytes: e.ReplicatedBytes, ResyncBytes: e.ResyncSent,
			LagBytes: e.QueuedBytes, ResyncRate: float64(e.ResyncRate),
			LagSeconds: e.OldestUnacked.Seconds(), SplitBrains: s.SplitBrains,
			BitmapSyncs: e.BitmapSyncs, HotExtents: e.HotExtents,
			Rejected: map[string]uint64{},
		}
		if e.State == engine.Resyncing && e.ResyncTotal > e.ResyncDone {
			ms.ResyncRemaining = e.ResyncTotal - e.ResyncDone
		}
		for r, n := range e.FramesRejected {
			ms.Rejected[wire.Reason(r).String()] = n
		}
		out = append(out, ms)
	}
	return out
}

// status reports every disk for vigilctl.
func (m *mirrors) status() []api.Mirror {
	var out []api.Mirror
	for _, name := range m.order {
		out = append(out, mirrorStatus(m.disks[name].Status()))
	}
	return out
}

func mirrorStatus(s mirror.Status) api.Mirror {
	e := s.Engine
	a := api.Mirror{
		Name: s.Name, Role: e.Role.String(), State: e.State.String(), Mode: e.Mode.String(),
		Consistent: e.Consistent, Verdict: e.Verdict, LastError: e.LastError,
		SizeBytes: e.Size, DirtyBytes: e.DirtyBytes, InSyncPercent: e.InSyncPercent,
		LagBytes: e.QueuedBytes, Lag: e.OldestUnacked,
		ResyncTotal: e.ResyncTotal, ResyncDone: e.ResyncDone,
		ResyncRate: float64(e.ResyncRate), ResyncETA: e.ResyncETA,
		HotExtents: e.HotExtents, BitmapSyncs: e.BitmapSyncs,
		Frontend: s.Frontend, Device: s.Device, MountPoint: s.MountPoint,
	}
	if a.LastError == "" {
		a.LastError = s.ConnectError
	}
	if e.Peer >= 0 {
		a.PeerRole = e.PeerRole.String()
	}
	return a
}

func (m *mirrors) disk(name string) (*mirror.Disk, error) {
	d := m.disks[name]
	if d == nil {
		return nil, fmt.Errorf("%w: no mirror disk %q on this node", api.ErrNotFound, name)
	}
	return d, nil
}

// backend adds the mirror disks to the node's control API.
type backend struct {
	*node.Node
	m *mirrors
}

var _ api.MirrorBackend = backend{}

// Status adds the mirror disks to the node's status.
func (b backend) Status() api.Status {
	s := b.Node.Status()
	s.Mirrors = b.m.status()
	return s
}

// MirrorResync resyncs the disk's dirty regions by reconnecting, or with
// full compares every region and copies those that differ.
func (b backend) MirrorResync(ctx context.Context, name string, full bool) error {
	d, err := b.m.disk(name)
	if err != nil {
		return err
	}
	if !full {
		d.Reconnect()
		return nil
	}
	_, err = d.Engine().Verify(ctx, engine.VerifyOptions{Resync: true})
	return err
}

// MirrorVerify compares both nodes' copies online.
func (b backend) MirrorVerify(ctx context.Context, name string, resync bool) (api.VerifyResult, error) {
	d, err := b.m.disk(name)
	if err != nil {
		return api.VerifyResult{}, err
	}
	start := time.Now()
	r, err := d.Engine().Verify(ctx, engine.VerifyOptions{Resync: resync})
	if err != nil {
		return api.VerifyResult{}, fmt.Errorf("verify %s: %w", name, err)
	}
	out := api.VerifyResult{CheckedBytes: r.Checked, MismatchedBytes: r.Mismatched, Resynced: r.Resynced, Took: time.Since(start)}
	for _, x := range r.Mismatches {
		out.Mismatches = append(out.Mismatches, api.ByteRange{Offset: x.Offset, Length: x.Length})
	}
	return out, nil
}

// MirrorPromote makes this node's side primary without exposing it.
func (b backend) MirrorPromote(_ context.Context, name string, force bool) error {
	d, err := b.m.disk(name)
	if err != nil {
		return err
	}
	if err := d.Engine().Promote(force); err != nil {
		return fmt.Errorf("%w: %w", api.ErrConflict, err)
	}
	return nil
}

// MirrorDiscard resolves a split brain by discarding this node's changes,
// then reconnects.
func (b backend) MirrorDiscard(_ context.Context, name string) error {
	d, err := b.m.disk(name)
	if err != nil {
		return err
	}
	if err := d.Engine().ResolveSplitBrain(true); err != nil {
		return fmt.Errorf("%w: %w", api.ErrConflict, err)
	}
	d.Reconnect()
	return nil
}
