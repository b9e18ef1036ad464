package engine

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

func datasync(fd uintptr) error {
	for {
		err := unix.Fdatasync(int(fd))
		if err != unix.EINTR {
			return err
		}
	}
}

// Prefetch asks the kernel to read [off, off+n) into the page cache in
// the background (posix_fadvise WILLNEED).
func (d DataFile) Prefetch(off, n int64) {
	if rc, err := d.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { unix.Fadvise(int(fd), off, n, unix.FADV_WILLNEED) })
	}
}

// directAlign is the alignment used for direct I/O when the kernel does
// not tell (statx STATX_DIOALIGN, Linux 6.1 for files, later for block
// devices): 4 KiB suits any logical block size up to a page.
const directAlign = 4096

// openDirect opens f's file again with O_DIRECT and returns the new
// descriptor and the alignment its I/O needs, or nil when the file does
// not support direct I/O.
func openDirect(f *os.File) (*os.File, int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, 0, fmt.Errorf("direct I/O on %s: %w", f.Name(), err)
	}
	align := directAlign
	var fd uintptr
	rc.Control(func(x uintptr) { fd = x })
	var st unix.Statx_t
	err = unix.Statx(int(fd), "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN|unix.STATX_TYPE, &st)
	if err == nil && st.Mask&unix.STATX_DIOALIGN != 0 {
		if st.Dio_offset_align == 0 {
			return nil, 0, nil // the file system has no direct I/O
		}
		// Buffers from AlignedBuffer-like allocators are page aligned;
		// the larger of the two alignments keeps one rule for all three.
		align = max(int(st.Dio_offset_align), int(st.Dio_mem_align))
	}
	// A new open file description: O_DIRECT set on a dup would apply to
	// f's descriptor too.
	dfd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(int(fd)), unix.O_RDWR|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.EOPNOTSUPP):
		return nil, 0, nil
	case err != nil:
		return nil, 0, fmt.Errorf("open %s for direct I/O: %w", f.Name(), err)
	}
	return os.NewFile(uintptr(dfd), f.Name()), align, nil
}

// writeDSync writes all of p at off with RWF_DSYNC.
func writeDSync(f *os.File, p []byte, off int64) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	n := 0
	var werr error
	cerr := rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			k, err := unix.Pwritev2(int(fd), [][]byte{p[n:]}, off+int64(n), unix.RWF_DSYNC)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				werr = err
				return true
			}
			if k == 0 {
				werr = unix.EIO
				return true
			}
			n += k
		}
		return true
	})
	if cerr != nil {
		return n, cerr
	}
	if werr != nil {
		return n, &os.PathError{Op: "pwritev2", Path: f.Name(), Err: werr}
	}
	return n, nil
}
