package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/replicator/engine"
)

// Promote makes this node the disk's primary, exposes the disk through
// the frontend and mounts it. takeover says that the cluster decided the
// peer is gone: a connection to a peer that is still primary on the mirror
// connect (its node died without closing it) is dropped first. force
// promotes data known to be older or inconsistent. A failed Promote leaves
// the disk secondary and unexposed.
func (d *Disk) Promote(ctx context.Context, takeover, force bool) error {
	if err := d.promoteEngine(takeover, force); err != nil {
		return err
	}
	d.log.Info("mirror promoted", "event", "mirror_promoted", "state", d.eng.Status().State.String(), "force", force)
	if err := d.expose(ctx); err != nil {
		if derr := d.eng.Demote(context.WithoutCancel(ctx)); derr != nil {
			err = errors.Join(err, fmt.Errorf("demote after the failed start: %w", derr))
		}
		return fmt.Errorf("mirror %s: %w", d.cfg.Name, err)
	}
	return nil
}

func (d *Disk) promoteEngine(takeover, force bool) error {
	d.gate.Lock()
	defer d.gate.Unlock()
	st := d.eng.Status()
	if takeover && st.State != engine.StandAlone && st.PeerRole == engine.Primary {
		d.log.Warn("mirror peer still primary on the mirror connect; the cluster says it is down: dropping the connection",
			"event", "mirror_takeover")
		d.eng.Disconnect()
	}
	if err := d.eng.Promote(force); err != nil {
		return fmt.Errorf("mirror %s promote: %w", d.cfg.Name, err)
	}
	return nil
}

// Demote unmounts and unexposes the disk, flushes it on both nodes and
// makes this node secondary.
func (d *Disk) Demote(ctx context.Context) error {
	if err := d.unexpose(ctx); err != nil {
		return fmt.Errorf("mirror %s: %w", d.cfg.Name, err)
	}
	if err := d.eng.Demote(ctx); err != nil {
		return fmt.Errorf("mirror %s demote: %w", d.cfg.Name, err)
	}
	d.log.Info("mirror demoted", "event", "mirror_demoted")
	return nil
}

// expose exposes and mounts the disk, undoing what it did on failure.
func (d *Disk) expose(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cfg.Frontend == nil {
		if d.cfg.Mount != nil {
			return errors.New("cannot mount: the disk has no frontend")
		}
		return nil
	}
	if d.exposed == nil {
		ex, err := d.cfg.Frontend.Expose(ctx, d.cfg.Name, &Device{d: d})
		if err != nil {
			return fmt.Errorf("expose: %w", err)
		}
		d.exposed = ex
		d.log.Info("mirror exposed", "event", "mirror_exposed", "device", ex.Path())
	}
	if d.cfg.Mount == nil || d.mounted != "" {
		return nil
	}
	if err := mount(ctx, d.exposed.Path(), d.cfg.Mount); err != nil {
		if cerr := d.exposed.Close(context.WithoutCancel(ctx)); cerr != nil {
			err = errors.Join(err, fmt.Errorf("unexpose after the failed mount: %w", cerr))
		} else {
			d.exposed = nil
		}
		return err
	}
	d.mounted = d.cfg.Mount.Point
	d.log.Info("mirror mounted", "event", "mirror_mounted", "device", d.exposed.Path(), "mount_point", d.mounted)
	return nil
}

// unexpose unmounts and unexposes the disk, if it is.
func (d *Disk) unexpose(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mounted != "" {
		if err := unmount(ctx, d.mounted); err != nil {
			return err
		}
		d.log.Info("mirror unmounted", "event", "mirror_unmounted", "mount_point", d.mounted)
		d.mounted = ""
	}
	if d.exposed != nil {
		if err := d.exposed.Close(ctx); err != nil {
			return fmt.Errorf("unexpose %s: %w", d.exposed.Path(), err)
		}
		d.log.Info("mirror unexposed", "event", "mirror_unexposed", "device", d.exposed.Path())
		d.exposed = nil
	}
	return nil
}

// mount mounts dev on m.Point, making the filesystem first if m.Mkfs and
// the device holds none.
func mount(ctx context.Context, dev string, m *MountSpec) error {
	if err := os.MkdirAll(m.Point, 0o755); err != nil {
		return fmt.Errorf("mount point: %w", err)
	}
	if m.Mkfs {
		has, err := hasFilesystem(dev)
		if err != nil {
			return err
		}
		if !has {
			args := []string{"-q", dev}
			if m.FSType == "ext4" {
				args = []string{"-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1", dev}
			}
			if out, err := exec.CommandContext(ctx, "mkfs."+m.FSType, args...).CombinedOutput(); err != nil {
				return fmt.Errorf("mkfs.%s %s: %w: %s", m.FSType, dev, err, bytes.TrimSpace(out))
			}
		}
	}
	if err := unix.Mount(dev, m.Point, m.FSType, 0, ""); err != nil {
		return fmt.Errorf("mount %s on %s (%s): %w", dev, m.Point, m.FSType, err)
	}
	return nil
}

// hasFilesystem reports whether dev starts with an ext2/3/4 or XFS
// superblock.
func hasFilesystem(dev string) (bool, error) {
	f, err := os.Open(dev)
	if err != nil {
		return false, fmt.Errorf("probe %s: %w", dev, err)
	}
	defer f.Close()
	b := make([]byte, 2048)
	if _, err := f.ReadAt(b, 0); err != nil {
		return false, fmt.Errorf("probe %s: %w", dev, err)
	}
	ext := b[1080] == 0x53 && b[1081] == 0xef
	xfs := string(b[:4]) == "XFSB"
	return ext || xfs, nil
}

// unmount unmounts point, retrying while it is busy until ctx ends.
func unmount(ctx context.Context, point string) error {
	for {
		err := unix.Unmount(point, 0)
		switch {
		case err == nil, errors.Is(err, unix.EINVAL):
			return nil // EINVAL: not mounted any more
		case !errors.Is(err, unix.EBUSY):
			return fmt.Errorf("unmount %s: %w", point, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("unmount %s: still in use: %w", point, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
