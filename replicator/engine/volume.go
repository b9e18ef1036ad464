package engine

import "os"

// DataFile is a data partition held in an *os.File, a block device or a
// preallocated file, as the engine's Volume. Its Sync makes written data
// durable, and the metadata needed to read it back, without the inode
// times that an fsync also commits: on a file-backed partition that is a
// journal commit per FUA write saved. On a block device both are the same
// cache flush.
type DataFile struct {
	*os.File
}

// Sync makes the data written so far durable (fdatasync where the system
// has it).
func (d DataFile) Sync() error {
	rc, err := d.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = datasync(fd) }); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: d.Name(), Err: serr}
	}
	return nil
}
