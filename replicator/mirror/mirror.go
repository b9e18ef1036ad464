// Package mirror runs one mirror disk on a node for the daemon: it opens
// the data and cluster partitions (creating the metadata on first use),
// runs the replication engine, keeps the mirror connect up (dialling or
// accepting over the mirror lane, redialling after any break), and on the
// primary exposes the disk through a kernel frontend and mounts it.
//
// It imports nothing from control/: the daemon hands it plain settings.
//
// # Connection
//
// Of the two nodes, the one with the lower node index dials the other's
// mirror address and the other listens; both redial or re-accept after
// any break, every RedialInterval. The listener accepts only connections
// from the peer's address, so that nobody else can replace a running
// connection; the engine's handshake then proves the cluster key. After
// a split brain the dialler keeps trying at a slower pace, and each try is
// refused until an operator resolves it.
//
// # Volume identity
//
// Both nodes must agree on the volume's UUID without talking: it is
// derived from the cluster and disk names (VolumeUUID), so two nodes
// initialising their metadata independently still recognise each other's
// volume, and a disk of another cluster or of another name is refused.
package mirror

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/replicator/engine"
	"github.com/vigil-ha/vigil/replicator/meta"
	"github.com/vigil-ha/vigil/replicator/wire"
)

// Config configures one mirror disk.
type Config struct {
	// Name is the disk's (resource's) name, in logs and errors.
	Name string
	// DataPath is the data partition (block device or file); MetaPath the
	// cluster partition holding the metadata.
	DataPath, MetaPath string
	// VolumeUUID identifies the volume on both nodes (see VolumeUUID).
	VolumeUUID [16]byte
	// Node is this node's index, Peer the other's.
	Node, Peer uint8
	// Local is this node's mirror address (the mirror lane's address and
	// the disk's port); PeerAddr the peer's.
	Local, PeerAddr netip.AddrPort
	// ClusterKey authenticates the mirror connect; ConfigHash must match
	// the peer's.
	ClusterKey []byte
	ConfigHash [16]byte
	// Mode is the replication mode.
	Mode engine.Mode
	// Timeout is the engine's peer timeout (default 5 s).
	Timeout time.Duration
	// ResyncRate limits resync and verify traffic in bytes/s, 0 unlimited.
	ResyncRate int64
	// HotExtents is how many activity extents stay hot at most: 0 is
	// meta.HotExtents, a negative value none.
	HotExtents int
	// Compress compresses replicated data when the peer agrees.
	Compress bool
	// TLS, if set, wraps the connection: Client for the dialler, Server
	// for the listener.
	TLS *TLSConfigs
	// Frontend exposes the disk on the primary; nil exposes nothing.
	Frontend Frontend
	// Mount, if set, mounts the exposed device on the primary.
	Mount *MountSpec
	// RedialInterval is the pause between connection attempts (default
	// 1 s).
	RedialInterval time.Duration
	// ObserveWrite is called with every completed write's latency.
	ObserveWrite func(time.Duration)
	// Log receives one line per event.
	Log *slog.Logger
}

// TLSConfigs holds the mirror connect's TLS settings for both ends.
type TLSConfigs struct {
	Client, Server *tls.Config
}

// MountSpec says where and how the exposed disk is mounted.
type MountSpec struct {
	// Point is the mount point, FSType the filesystem.
	Point, FSType string
	// Mkfs makes a filesystem on a disk that holds none.
	Mkfs bool
}

// Frontend exposes a primary's disk as a kernel block device.
type Frontend interface {
	// Expose makes dev available and returns the exposed device.
	Expose(ctx context.Context, name string, dev *Device) (Exposed, error)
}

// CleanUpper is a Frontend that can remove what a crashed predecessor
// exposed; Open calls it.
type CleanUpper interface {
	// CleanUp returns what it removed, in words.
	CleanUp(ctx context.Context, name string) ([]string, error)
}

// Exposed is a disk exposed by a Frontend.
type Exposed interface {
	// Path is the block device's path, e.g. /dev/nbd0.
	Path() string
	// Close flushes and removes the device; the caller unmounted it.
	Close(ctx context.Context) error
}

// VolumeUUID derives a mirror disk's volume UUID from the cluster's and
// the disk's names.
func VolumeUUID(cluster, disk string) [16]byte {
	h := sha256.Sum256([]byte("vigil mirror volume\x00" + cluster + "\x00" + disk))
	var u [16]byte
	copy(u[:], h[:16])
	u[6] = u[6]&0x0f | 0x80 // version 8: custom
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return u
}

// Disk is one mirror disk on this node.
type Disk struct {
	cfg  Config
	log  *slog.Logger
	data engine.DataFile
	meta *meta.Store
	eng  *engine.Engine

	// mu guards the exposure and the mount.
	mu      sync.Mutex
	exposed Exposed
	mounted string
	// gate is held for writing while a role change must not race a new
	// connection, and for reading around each connection attempt.
	gate sync.RWMutex
	kick chan struct{}
	// splitBrain is set while the last connect found a split brain;
	// splitBrains counts how often one was found after anything else.
	sbMu        sync.Mutex
	splitBrain  bool
	splitBrains uint64
	connectErr  string
}

// Open opens (or initialises) the partitions and starts the engine as
// secondary, standing alone; Run keeps the mirror connect up.
func Open(cfg Config) (*Disk, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.RedialInterval <= 0 {
		cfg.RedialInterval = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	f, size, err := openData(cfg.DataPath)
	if err != nil {
		return nil, fmt.Errorf("mirror %s: %w", cfg.Name, err)
	}
	data, err := engine.NewDataFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("mirror %s: %w", cfg.Name, err)
	}
	ms, err := openMeta(cfg, size)
	if err != nil {
		data.Close()
		return nil, fmt.Errorf("mirror %s: %w", cfg.Name, err)
	}
	if cfg.HotExtents != 0 {
		ms.Bitmap().SetHotExtents(max(cfg.HotExtents, 0))
	}
	ping := max(cfg.Timeout/5, 10*time.Millisecond)
	eng, err := engine.New(engine.Config{
		Role: engine.Secondary, Node: cfg.Node,
		ClusterKey: cfg.ClusterKey, ConfigHash: cfg.ConfigHash,
		Data: data, Meta: ms,
		PingInterval: ping, Timeout: cfg.Timeout,
		Mode: cfg.Mode, ResyncRate: cfg.ResyncRate,
		ObserveWrite: cfg.ObserveWrite,
	})
	if err != nil {
		ms.Close()
		data.Close()
		return nil, fmt.Errorf("mirror %s: %w", cfg.Name, err)
	}
	if cu, ok := cfg.Frontend.(CleanUpper); ok {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
		done, err := cu.CleanUp(ctx, cfg.Name)
		cancel()
		if len(done) > 0 {
			cfg.Log.Warn("mirror frontend: leftovers of a previous run removed", "event", "mirror_cleanup", "disk", cfg.Name, "done", strings.Join(done, "; "))
		}
		if err != nil {
			cfg.Log.Warn("mirror frontend: leftovers of a previous run not cleaned up", "event", "mirror_cleanup_failed", "disk", cfg.Name, "err", err)
		}
	}
	return &Disk{
		cfg: cfg, log: cfg.Log.With("disk", cfg.Name),
		data: data, meta: ms, eng: eng,
		kick: make(chan struct{}, 1),
	}, nil
}

// openData opens the data partition and returns its size, rounded down
// to 4 KiB.
func openData(path string) (*os.File, uint64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("open data partition: %w", err)
	}
	n, err := f.Seek(0, 2)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("size of data partition %s: %w", path, err)
	}
	size := uint64(n) &^ 4095
	if size == 0 {
		f.Close()
		return nil, 0, fmt.Errorf("data partition %s is smaller than 4 KiB", path)
	}
	return f, size, nil
}

// openMeta opens the metadata, creating it when the cluster partition
// holds none, and checks that it describes this volume.
func openMeta(cfg Config, size uint64) (*meta.Store, error) {
	ms, err := meta.Open(cfg.MetaPath)
	// A missing file is created, a missing device is not: a typo must not
	// leave metadata in a regular file under /dev.
	missing := errors.Is(err, fs.ErrNotExist) && !strings.HasPrefix(filepath.Clean(cfg.MetaPath), "/dev/")
	if errors.Is(err, meta.ErrNoSuperblock) || missing {
		cfg.Log.Info("mirror metadata initialised", "event", "mirror_meta_created", "disk", cfg.Name, "cluster_partition", cfg.MetaPath, "size", size)
		ms, err = meta.Create(cfg.MetaPath, meta.Superblock{VolumeUUID: cfg.VolumeUUID, Size: size, BlockSize: 4096})
	}
	if err != nil {
		return nil, fmt.Errorf("cluster partition %s: %w", cfg.MetaPath, err)
	}
	sb := ms.Superblock()
	switch {
	case sb.VolumeUUID != cfg.VolumeUUID:
		ms.Close()
		return nil, fmt.Errorf("cluster partition %s holds the metadata of another volume", cfg.MetaPath)
	case sb.Size != size:
		ms.Close()
		return nil, fmt.Errorf("cluster partition %s describes %d data bytes, the data partition has %d", cfg.MetaPath, sb.Size, size)
	}
	return ms, nil
}

// Engine returns the disk's replication engine.
func (d *Disk) Engine() *engine.Engine { return d.eng }

// Name returns the disk's name.
func (d *Disk) Name() string { return d.cfg.Name }

// dials reports whether this node dials the peer (the lower index does).
func (d *Disk) dials() bool { return d.cfg.Node < d.cfg.Peer }

// Run keeps the mirror connect up until ctx ends.
func (d *Disk) Run(ctx context.Context) error {
	if d.dials() {
		return d.dialLoop(ctx)
	}
	return d.acceptLoop(ctx)
}

// Reconnect breaks the current connection and makes the loop try again
// at once (after a split brain was resolved, for instance).
func (d *Disk) Reconnect() {
	d.eng.Disconnect()
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// dialLoop dials the peer whenever the engine stands alone.
func (d *Disk) dialLoop(ctx context.Context) error {
	var lastErr string
	for {
		st := d.eng.Status()
		wait := d.cfg.RedialInterval
		if st.State == engine.StandAlone || st.State == engine.SplitBrain {
			err := d.dial(ctx)
			d.noteConnect(err)
			switch {
			case err == nil:
				lastErr = ""
				d.log.Info("mirror connected", "event", "mirror_connected", "peer", d.cfg.PeerAddr.String(), "verdict", d.eng.Status().Verdict)
			case ctx.Err() != nil:
				return nil
			default:
				if errors.Is(err, engine.ErrSplitBrain) {
					wait = 5 * d.cfg.RedialInterval
				}
				if err.Error() != lastErr {
					d.log.Warn("mirror connect failed", "event", "mirror_connect_failed", "peer", d.cfg.PeerAddr.String(), "err", err)
					lastErr = err.Error()
				}
			}
		}
		if !sleep(ctx, d.kick, d.pollInterval(wait)) {
			return nil
		}
	}
}

// pollInterval is how often the loop looks at the engine's state: often
// while connected, so that a break is redialled quickly.
func (d *Disk) pollInterval(wait time.Duration) time.Duration {
	if st := d.eng.Status().State; st == engine.Connected || st == engine.Resyncing || st == engine.Connecting {
		return min(wait, 100*time.Millisecond)
	}
	return wait
}

func (d *Disk) dial(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	dl := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(d.cfg.Local.Addr(), 0))}
	nc, err := dl.DialContext(dctx, "tcp", d.cfg.PeerAddr.String())
	if err != nil {
		return fmt.Errorf("dial %s: %w", d.cfg.PeerAddr, err)
	}
	setNoDelay(nc)
	if d.cfg.TLS != nil {
		tc := tls.Client(nc, d.cfg.TLS.Client)
		if err := tc.HandshakeContext(dctx); err != nil {
			nc.Close()
			return fmt.Errorf("tls with %s: %w", d.cfg.PeerAddr, err)
		}
		nc = tc
	}
	d.gate.RLock()
	defer d.gate.RUnlock()
	return d.eng.Connect(ctx, nc, true)
}

// acceptLoop listens on the mirror address and hands the peer's
// connections to the engine.
func (d *Disk) acceptLoop(ctx context.Context) error {
	var ln net.Listener
	for {
		var err error
		lc := net.ListenConfig{}
		ln, err = lc.Listen(ctx, "tcp", d.cfg.Local.String())
		if err == nil {
			break
		}
		d.log.Warn("mirror listen failed; retrying", "event", "mirror_listen_failed", "addr", d.cfg.Local.String(), "err", err)
		if !sleep(ctx, d.kick, d.cfg.RedialInterval) {
			return nil
		}
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer ln.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("mirror accept on %s: %w", d.cfg.Local, err)
		}
		from, _ := netip.ParseAddrPort(nc.RemoteAddr().String())
		if from.Addr().Unmap() != d.cfg.PeerAddr.Addr() {
			d.log.Warn("mirror connection refused: not the peer's address", "event", "mirror_stranger", "from", from.String())
			nc.Close()
			continue
		}
		setNoDelay(nc)
		wg.Go(func() { d.serve(ctx, nc) })
	}
}

// serve runs an accepted connection's TLS and engine handshake.
func (d *Disk) serve(ctx context.Context, nc net.Conn) {
	if d.cfg.TLS != nil {
		hctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
		tc := tls.Server(nc, d.cfg.TLS.Server)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			d.noteConnect(fmt.Errorf("tls with %s: %w", nc.RemoteAddr(), err))
			d.log.Warn("mirror tls handshake failed", "event", "mirror_connect_failed", "from", nc.RemoteAddr().String(), "err", err)
			nc.Close()
			return
		}
		nc = tc
	}
	d.gate.RLock()
	err := d.eng.Connect(ctx, nc, false)
	d.gate.RUnlock()
	d.noteConnect(err)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("mirror connect failed", "event", "mirror_connect_failed", "from", nc.RemoteAddr().String(), "err", err)
		}
		return
	}
	d.log.Info("mirror connected", "event", "mirror_connected", "peer", nc.RemoteAddr().String(), "verdict", d.eng.Status().Verdict)
}

// noteConnect counts the split brains that connection attempts found: a
// run of refused attempts is one.
func (d *Disk) noteConnect(err error) {
	sb := errors.Is(err, engine.ErrSplitBrain)
	d.sbMu.Lock()
	defer d.sbMu.Unlock()
	if sb && !d.splitBrain {
		d.splitBrains++
		d.log.Error("mirror split brain: both nodes wrote while apart; choose the side to discard", "event", "mirror_split_brain")
	}
	if sb || err == nil {
		d.splitBrain = sb
	}
	d.connectErr = ""
	if err != nil {
		d.connectErr = err.Error()
	}
}

func setNoDelay(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
}

// sleep waits for d, a kick or the end of ctx; it reports false when ctx
// ended.
func sleep(ctx context.Context, kick <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-kick:
		return true
	case <-t.C:
		return true
	}
}

// Close unexposes the disk if it is still exposed, stops the engine and
// closes the partitions. The caller ended Run first.
func (d *Disk) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := d.unexpose(ctx)
	err = errors.Join(err, d.eng.Close(), d.meta.Close(), d.data.Close())
	if err != nil {
		return fmt.Errorf("mirror %s close: %w", d.cfg.Name, err)
	}
	return nil
}

// Status returns the engine's status and the exposure.
func (d *Disk) Status() Status {
	d.mu.Lock()
	st := Status{Name: d.cfg.Name, Engine: d.eng.Status(), MountPoint: d.mounted}
	if d.exposed != nil {
		st.Device = d.exposed.Path()
	}
	d.mu.Unlock()
	d.sbMu.Lock()
	st.SplitBrains = d.splitBrains
	st.ConnectError = d.connectErr
	d.sbMu.Unlock()
	st.Frontend = "none"
	if d.cfg.Frontend != nil {
		st.Frontend = fmt.Sprint(d.cfg.Frontend)
	}
	return st
}

// Status is a mirror disk's state on this node.
type Status struct {
	Name   string
	Engine engine.Status
	// Frontend names the frontend ("nbd", "none").
	Frontend string
	// Device is the exposed block device, "" when not exposed.
	Device string
	// MountPoint is where the device is mounted, "" when not.
	MountPoint string
	// SplitBrains counts the split brains found since Open.
	SplitBrains uint64
	// ConnectError is why the last connection attempt failed, "" after
	// one succeeded.
	ConnectError string
}

// Device is what a frontend serves: the disk seen through the engine.
// Reads come from the local volume (a primary's is current); writes and
// flushes go through the engine.
type Device struct {
	d *Disk
}

// ReadAt reads from the local volume.
func (v *Device) ReadAt(p []byte, off int64) (int, error) { return v.d.data.ReadAt(p, off) }

// WriteAt replicates p at off, in engine-sized pieces; fua makes it
// durable before it completes.
func (v *Device) WriteAt(p []byte, off int64, fua bool) error {
	ctx := context.Background()
	for len(p) > 0 {
		n := min(len(p), wire.MaxData)
		if err := v.d.eng.Write(ctx, uint64(off), p[:n], fua); err != nil {
			return err
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// Flush makes every completed write durable on both nodes.
func (v *Device) Flush() error { return v.d.eng.Flush(context.Background()) }

// Size is the volume's size in bytes.
func (v *Device) Size() int64 { return int64(v.d.eng.Status().Size) }
