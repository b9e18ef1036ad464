// Package cpio writes and reads the "newc" cpio format (magic 070701), the
// format the Linux kernel unpacks as its initramfs. It knows regular files,
// directories and symbolic links, which is all an initramfs needs.
package cpio

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Type is the kind of an entry.
type Type uint32

// Entry types, as the file-type bits of a Unix mode.
const (
	TypeFile    Type = 0o100000
	TypeDir     Type = 0o040000
	TypeSymlink Type = 0o120000
)

const (
	magic     = "070701"
	headerLen = 110
	trailer   = "TRAILER!!!"
	typeMask  = 0o170000
)

var (
	// ErrFormat is returned for input that is not a newc archive.
	ErrFormat = errors.New("cpio: not a newc archive")
	// ErrTooLong is returned when a write exceeds the size in the header.
	ErrTooLong = errors.New("cpio: write too long")
)

// Entry is one member of an archive.
type Entry struct {
	// Name is the path inside the archive, without a leading slash.
	Name string
	// Type is a regular file, a directory or a symbolic link.
	Type Type
	// Perm holds the permission bits (0o755, 0o4755, ...); a link's
	// default to 0o777.
	Perm uint32
	// Size is the length of a file's data; for a symbolic link it is the
	// length of Linkname and is set by the Writer.
	Size int64
	// Linkname is a symbolic link's target.
	Linkname string
}

// Writer writes a newc archive. Owners are root, times are zero and inode
// numbers count up from 1, so the same entries give the same bytes.
type Writer struct {
	w       *bufio.Writer
	ino     uint32
	remain  int64 // data bytes still owed for the current entry
	pad     int64 // padding after them
	closed  bool
	written int64
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriterSize(w, 1<<16)} }

// WriteHeader starts a new entry. A regular file's Size bytes of data follow
// with Write; a symbolic link's target is written here.
func (w *Writer) WriteHeader(e *Entry) error {
	if w.closed {
		return errors.New("cpio: write after close")
	}
	if w.remain > 0 {
		return fmt.Errorf("cpio: %d bytes missing before %s", w.remain, e.Name)
	}
	if err := w.flushPad(); err != nil {
		return err
	}
	if e.Name == "" || e.Name[0] == '/' {
		return fmt.Errorf("cpio: bad name %q", e.Name)
	}
	size := e.Size
	switch e.Type {
	case TypeFile:
	case TypeDir:
		size = 0
	case TypeSymlink:
		size = int64(len(e.Linkname))
	default:
		return fmt.Errorf("cpio: %s: unsupported type %o", e.Name, e.Type)
	}
	perm := e.Perm & 0o7777
	if e.Type == TypeSymlink && perm == 0 {
		perm = 0o777
	}
	nlink := uint32(1)
	if e.Type == TypeDir {
		nlink = 2
	}
	w.ino++
	if err := w.header(w.ino, uint32(e.Type)|perm, nlink, size, e.Name); err != nil {
		return err
	}
	w.remain, w.pad = size, pad4(size)
	if e.Type == TypeSymlink {
		if _, err := w.Write([]byte(e.Linkname)); err != nil {
			return err
		}
	}
	return nil
}

func (w *Writer) header(ino, mode, nlink uint32, size int64, name string) error {
	if size > 0xffffffff {
		return fmt.Errorf("cpio: %s: %d bytes is too large for newc", name, size)
	}
	fields := []uint32{ino, mode, 0, 0, nlink, 0, uint32(size), 0, 0, 0, 0, uint32(len(name) + 1), 0}
	buf := make([]byte, 0, headerLen+len(name)+4)
	buf = append(buf, magic...)
	for _, f := range fields {
		buf = fmt.Appendf(buf, "%08x", f)
	}
	buf = append(buf, name...)
	buf = append(buf, 0)
	for len(buf)%4 != 0 {
		buf = append(buf, 0)
	}
	n, err := w.w.Write(buf)
	w.written += int64(n)
	return err
}

// Write writes data of the current file entry.
func (w *Writer) Write(p []byte) (int, error) {
	if int64(len(p)) > w.remain {
		return 0, ErrTooLong
	}
	n, err := w.w.Write(p)
	w.remain -= int64(n)
	w.written += int64(n)
	return n, err
}

func (w *Writer) flushPad() error {
	if w.pad == 0 {
		return nil
	}
	n, err := w.w.Write(make([]byte, w.pad))
	w.written += int64(n)
	w.pad = 0
	return err
}

// Close writes the trailer and flushes; it does not close the underlying
// writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	if w.remain > 0 {
		return fmt.Errorf("cpio: %d bytes missing before the trailer", w.remain)
	}
	if err := w.flushPad(); err != nil {
		return err
	}
	if err := w.header(0, 0, 1, 0, trailer); err != nil {
		return err
	}
	w.closed = true
	return w.w.Flush()
}

// Written is the number of bytes written so far.
func (w *Writer) Written() int64 { return w.written }

func pad4(n int64) int64 { return (4 - n%4) % 4 }

// Reader reads a newc archive.
type Reader struct {
	r      *bufio.Reader
	remain int64
	pad    int64
	done   bool
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReader(r)} }

// Next skips to the next entry and returns it, or io.EOF after the trailer.
// A symbolic link's Linkname is filled in.
func (r *Reader) Next() (*Entry, error) {
	if r.done {
		return nil, io.EOF
	}
	if _, err := r.r.Discard(int(r.remain + r.pad)); err != nil {
		return nil, fmt.Errorf("cpio: skip data: %w", err)
	}
	r.remain, r.pad = 0, 0
	var h [headerLen]byte
	if _, err := io.ReadFull(r.r, h[:]); err != nil {
		return nil, fmt.Errorf("cpio: header: %w", err)
	}
	if string(h[:6]) != magic {
		return nil, ErrFormat
	}
	var f [13]uint32
	for i := range f {
		v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
		if err != nil {
			return nil, ErrFormat
		}
		f[i] = uint32(v)
	}
	nameLen := int64(f[11])
	name := make([]byte, nameLen+pad4(headerLen+nameLen))
	if _, err := io.ReadFull(r.r, name); err != nil {
		return nil, fmt.Errorf("cpio: name: %w", err)
	}
	if nameLen == 0 || name[nameLen-1] != 0 {
		return nil, ErrFormat
	}
	e := &Entry{Name: string(name[:nameLen-1]), Type: Type(f[1] & typeMask), Perm: f[1] & 0o7777, Size: int64(f[6])}
	if e.Name == trailer {
		r.done = true
		return nil, io.EOF
	}
	r.remain, r.pad = e.Size, pad4(e.Size)
	if e.Type == TypeSymlink {
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("cpio: %s: link target: %w", e.Name, err)
		}
		e.Linkname = string(b)
	}
	return e, nil
}

// Read reads the current entry's data.
func (r *Reader) Read(p []byte) (int, error) {
	if r.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remain {
		p = p[:r.remain]
	}
	n, err := r.r.Read(p)
	r.remain -= int64(n)
	if err == io.EOF && r.remain > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
