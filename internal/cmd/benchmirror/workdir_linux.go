package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// workPrefix starts the work directory's name: bench-mirror.PID.RANDOM.
const workPrefix = "bench-mirror."

// File system magic numbers (statfs f_type) worth naming in the report,
// and those refused because they are not a disk.
var fsNames = map[int64]string{
	0xef53:     "ext4",
	0x58465342: "xfs",
	0x9123683e: "btrfs",
	0x794c7630: "overlay",
	0x2fc12fc1: "zfs",
	0x01021994: "tmpfs",
	0x858458f6: "ramfs",
}

var notDisk = map[int64]bool{0x01021994: true, 0x858458f6: true}

// moduleRoot finds the vigil module's root from the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/vigil-ha/vigil\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the vigil module")
		}
		dir = parent
	}
}

// defaultParent is where work directories go by default: the module's
// bin/ (make's output directory) when run inside the module, else
// /var/tmp (on disk on Debian, unlike a tmpfs /tmp).
func defaultParent() string {
	if root, err := moduleRoot(); err == nil {
		return filepath.Join(root, "bin")
	}
	return "/var/tmp"
}

// fsInfo returns the name of the file system holding dir and its free
// bytes, and refuses memory-backed ones.
func fsInfo(dir string) (string, int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "", 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	t := int64(st.Type)
	name, ok := fsNames[t]
	if !ok {
		name = fmt.Sprintf("fs 0x%x", t)
	}
	if notDisk[t] {
		return name, 0, fmt.Errorf("%s is on %s, not a disk: give -dir a directory on a real disk (e.g. /var/tmp)", dir, name)
	}
	return name, int64(st.Bavail) * st.Bsize, nil
}

// makeWorkDir removes work directories left in parent by runs that died
// and creates this run's.
func makeWorkDir(parent string, stderr func(string, ...any)) (string, error) {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("work dir: %w", err)
	}
	sweepStale(parent, stderr)
	dir, err := os.MkdirTemp(parent, fmt.Sprintf("%s%d.", workPrefix, os.Getpid()))
	if err != nil {
		return "", fmt.Errorf("work dir: %w", err)
	}
	return dir, nil
}

// sweepStale removes bench-mirror.PID.* directories of processes that no
// longer exist.
func sweepStale(parent string, stderr func(string, ...any)) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, workPrefix) {
			continue
		}
		pidStr, _, ok := strings.Cut(strings.TrimPrefix(name, workPrefix), ".")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
			continue
		}
		stderr("removing %s, left by an earlier run (pid %d) that did not clean up", filepath.Join(parent, name), pid)
		os.RemoveAll(filepath.Join(parent, name))
	}
}

// dropCache writes back f's dirty pages and drops its cached ones, so
// that every measurement starts from the same page cache state.
func dropCache(f *os.File) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("fadvise %s: %w", f.Name(), err)
	}
	return nil
}
