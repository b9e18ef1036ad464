package engine

import "golang.org/x/sys/unix"

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
