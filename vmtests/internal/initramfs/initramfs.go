// Package initramfs builds the archive a test VM boots from: a newc cpio
// the kernel unpacks into its root file system. A Builder keeps a small
// view of the tree it has written, so parent directories are created
// before their contents (the kernel does not create them) and paths that
// pass through a symbolic link already in the archive land where the link
// points.
package initramfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/vigil-ha/vigil/vmtests/internal/cpio"
)

// maxLinks bounds symbolic link chains, as the kernel does.
const maxLinks = 40

// ErrExists is returned when a path is added twice with different contents.
var ErrExists = errors.New("already in the archive")

// Builder writes an initramfs. Paths are absolute guest paths.
type Builder struct {
	w *cpio.Writer
	// nodes maps each cleaned, resolved path to what is there.
	nodes map[string]node
	// hostRoot is the host directory host paths are read under ("/"
	// unless a test says otherwise).
	hostRoot string
}

type node struct {
	typ    cpio.Type
	target string // symbolic links
	source string // host files, to tell duplicates apart
}

// New returns a Builder writing to w.
func New(w io.Writer) *Builder {
	return &Builder{w: cpio.NewWriter(w), nodes: map[string]node{"/": {typ: cpio.TypeDir}}, hostRoot: "/"}
}

// SetHostRoot makes host paths resolve under dir instead of "/" (tests).
func (b *Builder) SetHostRoot(dir string) { b.hostRoot = dir }

// Close writes the trailer.
func (b *Builder) Close() error { return b.w.Close() }

// Written is the archive's size so far.
func (b *Builder) Written() int64 { return b.w.Written() }

// Has reports whether p (resolved through the archive's links) exists.
func (b *Builder) Has(p string) bool {
	r, err := b.resolve(p, true)
	if err != nil {
		return false
	}
	_, ok := b.nodes[r]
	return ok
}

// resolve cleans p and follows the archive's symbolic links in every
// component but, unless followLast, the last one.
func (b *Builder) resolve(p string, followLast bool) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("%s: not an absolute path", p)
	}
	parts := strings.Split(path.Clean(p), "/")[1:]
	cur := "/"
	links := 0
	for i := 0; i < len(parts); i++ {
		if parts[i] == "" {
			continue
		}
		next := path.Join(cur, parts[i])
		n, ok := b.nodes[next]
		if ok && n.typ == cpio.TypeSymlink && (i < len(parts)-1 || followLast) {
			if links++; links > maxLinks {
				return "", fmt.Errorf("%s: too many links", p)
			}
			t := n.target
			if !path.IsAbs(t) {
				t = path.Join(cur, t)
			}
			rest := append(strings.Split(path.Clean(t), "/")[1:], parts[i+1:]...)
			parts, cur, i = rest, "/", -1
			continue
		}
		cur = next
	}
	return cur, nil
}

// Dir adds directory p and its missing parents.
func (b *Builder) Dir(p string, perm uint32) error {
	r, err := b.resolve(p, true)
	if err != nil {
		return err
	}
	return b.dir(r, perm)
}

func (b *Builder) dir(r string, perm uint32) error {
	if n, ok := b.nodes[r]; ok {
		if n.typ != cpio.TypeDir {
			return fmt.Errorf("dir %s: %w as another kind", r, ErrExists)
		}
		return nil
	}
	if err := b.dir(path.Dir(r), 0o755); err != nil {
		return err
	}
	if err := b.w.WriteHeader(&cpio.Entry{Name: r[1:], Type: cpio.TypeDir, Perm: perm}); err != nil {
		return err
	}
	b.nodes[r] = node{typ: cpio.TypeDir}
	return nil
}

// parent resolves p's directory, creating it, and returns the resolved
// path of p itself (its last component not followed).
func (b *Builder) parent(p string) (string, error) {
	r, err := b.resolve(p, false)
	if err != nil {
		return "", err
	}
	if r == "/" {
		return "", fmt.Errorf("%s: is the root", p)
	}
	if err := b.dir(path.Dir(r), 0o755); err != nil {
		return "", err
	}
	return r, nil
}

// Symlink adds a symbolic link at p pointing to target. Adding the same
// link twice is fine.
func (b *Builder) Symlink(p, target string) error {
	r, err := b.parent(p)
	if err != nil {
		return err
	}
	if n, ok := b.nodes[r]; ok {
		if n.typ == cpio.TypeSymlink && n.target == target {
			return nil
		}
		return fmt.Errorf("symlink %s: %w", r, ErrExists)
	}
	if err := b.w.WriteHeader(&cpio.Entry{Name: r[1:], Type: cpio.TypeSymlink, Perm: 0o777, Linkname: target}); err != nil {
		return err
	}
	b.nodes[r] = node{typ: cpio.TypeSymlink, target: target}
	return nil
}

// Bytes adds a file at p holding data.
func (b *Builder) Bytes(p string, perm uint32, data []byte) error {
	r, err := b.parent(p)
	if err != nil {
		return err
	}
	if _, ok := b.nodes[r]; ok {
		return fmt.Errorf("file %s: %w", r, ErrExists)
	}
	if err := b.w.WriteHeader(&cpio.Entry{Name: r[1:], Type: cpio.TypeFile, Perm: perm, Size: int64(len(data))}); err != nil {
		return err
	}
	if _, err := b.w.Write(data); err != nil {
		return err
	}
	b.nodes[r] = node{typ: cpio.TypeFile}
	return nil
}

// File adds the host file src at guest path p, keeping src's permission
// bits. Adding the same source at the same path twice is fine.
func (b *Builder) File(p, src string) error {
	r, err := b.parent(p)
	if err != nil {
		return err
	}
	if n, ok := b.nodes[r]; ok {
		if n.typ == cpio.TypeFile && n.source == src {
			return nil
		}
		return fmt.Errorf("file %s: %w", r, ErrExists)
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", src)
	}
	if err := b.w.WriteHeader(&cpio.Entry{Name: r[1:], Type: cpio.TypeFile, Perm: unixPerm(fi.Mode()), Size: fi.Size()}); err != nil {
		return err
	}
	if n, err := io.Copy(b.w, f); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	} else if n != fi.Size() {
		return fmt.Errorf("copy %s: %d of %d bytes (file changed)", src, n, fi.Size())
	}
	b.nodes[r] = node{typ: cpio.TypeFile, source: src}
	return nil
}

// Tree adds the host directory src at guest path p, recursively: files,
// directories and symbolic links as they are.
func (b *Builder) Tree(p, src string) error {
	return filepath.WalkDir(src, func(hp string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, hp)
		if err != nil {
			return err
		}
		gp := path.Join(p, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			return b.Dir(gp, 0o755)
		case d.Type()&os.ModeSymlink != 0:
			t, err := os.Readlink(hp)
			if err != nil {
				return err
			}
			return b.Symlink(gp, t)
		case d.Type().IsRegular():
			return b.File(gp, hp)
		}
		return nil
	})
}

// HostPath adds the host file at absolute path p at the same place in the
// guest, reproducing every symbolic link met on the way, so that
// /lib/x86_64-linux-gnu/libc.so.6 on a merged-/usr Debian arrives as the
// link /lib -> usr/lib, the link libc.so.6 -> ..., and the file. It returns
// the resolved path of the file.
func (b *Builder) HostPath(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("%s: not an absolute path", p)
	}
	parts := strings.Split(path.Clean(p), "/")[1:]
	cur := "/"
	links := 0
	for i := 0; i < len(parts); i++ {
		next := path.Join(cur, parts[i])
		host := filepath.Join(b.hostRoot, next)
		fi, err := os.Lstat(host)
		if err != nil {
			return "", err
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			if links++; links > maxLinks {
				return "", fmt.Errorf("%s: too many links", p)
			}
			t, err := os.Readlink(host)
			if err != nil {
				return "", err
			}
			if err := b.Symlink(next, t); err != nil {
				return "", err
			}
			if !path.IsAbs(t) {
				t = path.Join(cur, t)
			}
			parts, cur, i = append(strings.Split(path.Clean(t), "/")[1:], parts[i+1:]...), "/", -1
			continue
		case fi.IsDir():
			if i == len(parts)-1 {
				return "", fmt.Errorf("%s: is a directory", p)
			}
			if err := b.Dir(next, unixPerm(fi.Mode())); err != nil {
				return "", err
			}
		default:
			if i != len(parts)-1 {
				return "", fmt.Errorf("%s: %s is not a directory", p, next)
			}
			if err := b.File(next, host); err != nil {
				return "", err
			}
		}
		cur = next
	}
	return cur, nil
}

// Program adds the host executable at p with everything its dynamic
// loader will need: the interpreter and the shared libraries it names,
// found as the loader would (see Libraries).
func (b *Builder) Program(p string) error {
	files, err := Libraries(b.hostRoot, p)
	if err != nil {
		return fmt.Errorf("program %s: %w", p, err)
	}
	for _, f := range append([]string{p}, files...) {
		if _, err := b.HostPath(f); err != nil {
			return fmt.Errorf("program %s: %w", p, err)
		}
	}
	return nil
}

func unixPerm(m os.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}
