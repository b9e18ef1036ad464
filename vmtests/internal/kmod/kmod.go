// Package kmod resolves kernel module names to the files to load, in
// order, from a kernel's modules.dep and modules.builtin, as modprobe
// does, so that a VM's init can load them with finit_module alone.
package kmod

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// ErrUnknown is returned for a module the kernel neither builds in nor
// ships.
var ErrUnknown = errors.New("no such module")

// Index is a kernel's module dependency table.
type Index struct {
	// deps maps a module's file, relative to the modules directory, to
	// the files it depends on.
	deps map[string][]string
	// files maps a module name to its file.
	files map[string]string
	// builtin holds the names of modules built into the kernel.
	builtin map[string]bool
}

// Load reads modules.dep and modules.builtin from a kernel's modules
// directory (/lib/modules/RELEASE). A kernel package ships no modules.dep
// (depmod writes it when the package is installed): Load then writes one
// from the modules' own dependency lists (see Generate).
func Load(dir string) (*Index, error) {
	depPath := filepath.Join(dir, "modules.dep")
	if _, err := os.Stat(depPath); errors.Is(err, os.ErrNotExist) {
		text, err := Generate(dir)
		if err != nil {
			return nil, err
		}
		if err := writeAtomic(depPath, text); err != nil {
			return nil, fmt.Errorf("write modules.dep: %w", err)
		}
	}
	dep, err := os.Open(depPath)
	if err != nil {
		return nil, err
	}
	defer dep.Close()
	builtin, err := os.Open(filepath.Join(dir, "modules.builtin"))
	if err != nil {
		return nil, err
	}
	defer builtin.Close()
	return Parse(dep, builtin)
}

// writeAtomic writes data to p through a temporary file, so a reader
// sees the old file or the whole new one.
func writeAtomic(p string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), ".modules.dep-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}

// Parse reads an index from the contents of modules.dep and
// modules.builtin.
func Parse(dep, builtin io.Reader) (*Index, error) {
	ix := &Index{deps: map[string][]string{}, files: map[string]string{}, builtin: map[string]bool{}}
	sc := bufio.NewScanner(dep)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		file, rest, ok := strings.Cut(text, ":")
		if !ok || file == "" {
			return nil, fmt.Errorf("modules.dep:%d: no colon in %q", line, text)
		}
		ix.deps[file] = strings.Fields(rest)
		ix.files[Name(file)] = file
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules.dep: %w", err)
	}
	sc = bufio.NewScanner(builtin)
	for sc.Scan() {
		if f := strings.TrimSpace(sc.Text()); f != "" {
			ix.builtin[Name(f)] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules.builtin: %w", err)
	}
	return ix, nil
}

// Name is a module's canonical name: the file's base name without its
// .ko (and compression) suffix, with dashes as underscores, as the
// kernel spells it.
func Name(s string) string {
	s = path.Base(s)
	if i := strings.Index(s, ".ko"); i >= 0 {
		s = s[:i]
	}
	return strings.ReplaceAll(s, "-", "_")
}

// Builtin reports whether the kernel has module name built in.
func (ix *Index) Builtin(name string) bool { return ix.builtin[Name(name)] }

// Resolve returns the files (relative to the modules directory) to load
// for the named modules, every dependency before the modules that need
// it, each once. Built-in modules need no file and are left out.
func (ix *Index) Resolve(names ...string) ([]string, error) {
	var out []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(file string, chain []string) error
	visit = func(file string, chain []string) error {
		switch state[file] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("dependency cycle: %s", strings.Join(append(chain, Name(file)), " -> "))
		}
		deps, ok := ix.deps[file]
		if !ok {
			return fmt.Errorf("%s: %w in modules.dep (needed by %s)", file, ErrUnknown, strings.Join(chain, " -> "))
		}
		state[file] = 1
		for _, d := range deps {
			if err := visit(d, append(chain, Name(file))); err != nil {
				return err
			}
		}
		state[file] = 2
		out = append(out, file)
		return nil
	}
	for _, n := range names {
		n = Name(n)
		if ix.builtin[n] {
			continue
		}
		file, ok := ix.files[n]
		if !ok {
			return nil, fmt.Errorf("module %s: %w", n, ErrUnknown)
		}
		if err := visit(file, nil); err != nil {
			return nil, fmt.Errorf("module %s: %w", n, err)
		}
	}
	return out, nil
}

// Generate returns a modules.dep for the modules under dir, from the
// "depends=" entry the kernel build writes into each module's .modinfo
// section. Each line lists a module's direct dependencies; Resolve
// follows them further.
func Generate(dir string) ([]byte, error) {
	files := map[string]string{}  // name -> relative file
	deps := map[string][]string{} // relative file -> dependency names
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".ko") {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		names, err := modinfoDepends(p)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		files[Name(rel)] = rel
		deps[rel] = names
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("generate modules.dep: %w", err)
	}
	rels := make([]string, 0, len(deps))
	for r := range deps {
		rels = append(rels, r)
	}
	sort.Strings(rels)
	var b bytes.Buffer
	for _, r := range rels {
		b.WriteString(r + ":")
		for _, n := range deps[r] {
			f, ok := files[Name(n)]
			if !ok {
				return nil, fmt.Errorf("generate modules.dep: %s depends on %s, which is not there", r, n)
			}
			b.WriteString(" " + f)
		}
		b.WriteString("\n")
	}
	return b.Bytes(), nil
}

// modinfoDepends returns the names in a module file's depends= entry.
func modinfoDepends(p string) ([]string, error) {
	f, err := elf.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return nil, errors.New("no .modinfo section")
	}
	data, err := s.Data()
	if err != nil {
		return nil, err
	}
	return ParseModinfoDepends(data), nil
}

// ParseModinfoDepends returns the module names of the depends= entry of a
// .modinfo section (NUL-separated key=value strings).
func ParseModinfoDepends(modinfo []byte) []string {
	for _, kv := range bytes.Split(modinfo, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			var out []string
			for _, n := range strings.Split(string(v), ",") {
				if n = strings.TrimSpace(n); n != "" {
					out = append(out, n)
				}
			}
			return out
		}
	}
	return nil
}
