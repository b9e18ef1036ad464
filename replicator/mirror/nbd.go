package mirror

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/replicator/nbd"
)

// NBD is the frontend that exposes a primary's disk as /dev/nbdN, served
// by this process over socketpairs (replicator/nbd).
type NBD struct {
	// Cluster and Server name the exports to the kernel
	// ("vigil:CLUSTER:SERVER:DISK"), so that a crashed predecessor's
	// leftovers can be found, and only they (nodes under test share one
	// kernel).
	Cluster, Server string
}

// Expose serves dev as a kernel block device.
func (n NBD) Expose(ctx context.Context, name string, dev *Device) (Exposed, error) {
	ex, err := nbd.Expose(ctx, dev, nbd.Options{Index: nbd.AnyIndex, Backend: n.backend(name)})
	if err != nil {
		return nil, err
	}
	return ex, nil
}

// CleanUp disconnects the devices a crashed predecessor left exposed for
// the disk and says what it did. A file system it left mounted on one is
// detached first: the device no longer answers (its server died with the
// predecessor), so nothing on it can be saved, and the device is not
// released while mounted.
func (n NBD) CleanUp(ctx context.Context, name string) ([]string, error) {
	devs, err := nbd.List()
	if err != nil {
		return nil, err
	}
	var done []string
	var errs []error
	for _, d := range devs {
		if d.Backend != n.backend(name) || d.Here {
			continue
		}
		dev := fmt.Sprintf("/dev/nbd%d", d.Index)
		points, err := mountsOf(dev)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, p := range points {
			if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, fmt.Errorf("detach leftover mount %s of %s: %w", p, dev, err))
				continue
			}
			done = append(done, "detached "+p+" ("+dev+")")
		}
	}
	idx, err := nbd.CleanUpBackend(ctx, n.backend(name))
	if err != nil {
		errs = append(errs, err)
	}
	for _, i := range idx {
		done = append(done, fmt.Sprintf("disconnected /dev/nbd%d", i))
	}
	return done, errors.Join(errs...)
}

// mountsOf returns where block device dev is mounted (/proc/self/mountinfo,
// matched by device number), the most recent mount first.
func mountsOf(dev string) ([]string, error) {
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", dev, err)
	}
	want := fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("mounts of %s: %w", dev, err)
	}
	var points []string
	for line := range strings.Lines(string(b)) {
		// id parent major:minor root mount-point options ...
		f := strings.Fields(line)
		if len(f) > 4 && f[2] == want {
			points = append(points, unescapeMountinfo(f[4]))
		}
	}
	slices.Reverse(points)
	return points, nil
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func (n NBD) backend(name string) string {
	return "vigil:" + n.Cluster + ":" + n.Server + ":" + name
}

func (NBD) String() string { return "nbd" }

// NBDAvailable reports whether the kernel has the nbd driver.
func NBDAvailable() error {
	_, err := nbd.List()
	if errors.Is(err, nbd.ErrNoDriver) {
		return err
	}
	if err != nil {
		return fmt.Errorf("nbd: %w", err)
	}
	return nil
}

// BlockSize is the exposed device's logical block size.
func (v *Device) BlockSize() int { return 4096 }
