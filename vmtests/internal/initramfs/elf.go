package initramfs

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// DefaultLibraryPath is where the dynamic loader looks for libraries a
// program names without a path, after the program's own run path: Debian's
// multiarch directories first, then the traditional ones.
var DefaultLibraryPath = []string{
	"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
	"/lib64", "/usr/lib64", "/lib", "/usr/lib",
}

// Libraries returns, for the ELF executable at host path p (read under
// root), its interpreter and every shared library it needs, directly or
// through other libraries, as absolute paths in the order found. A static
// executable needs none.
func Libraries(root, p string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	var visit func(file string, isExe bool) error
	visit = func(file string, isExe bool) error {
		f, err := elf.Open(filepath.Join(root, file))
		if err != nil {
			return err
		}
		defer f.Close()
		if isExe {
			for _, prog := range f.Progs {
				if prog.Type != elf.PT_INTERP {
					continue
				}
				b := make([]byte, prog.Filesz)
				if _, err := prog.ReadAt(b, 0); err != nil {
					return fmt.Errorf("%s: interpreter: %w", file, err)
				}
				interp := strings.TrimRight(string(b), "\x00")
				if !seen[interp] {
					seen[interp] = true
					out = append(out, interp)
				}
			}
		}
		needed, err := f.ImportedLibraries()
		if err != nil {
			if errors.Is(err, elf.ErrNoSymbols) {
				return nil
			}
			return fmt.Errorf("%s: needed libraries: %w", file, err)
		}
		var runpath []string
		for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
			vals, _ := f.DynString(tag)
			for _, v := range vals {
				for _, d := range strings.Split(v, ":") {
					runpath = append(runpath, strings.ReplaceAll(d, "$ORIGIN", path.Dir(file)))
				}
			}
		}
		for _, lib := range needed {
			found, err := findLibrary(root, lib, append(runpath, DefaultLibraryPath...))
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			if seen[found] {
				continue
			}
			seen[found] = true
			out = append(out, found)
			if err := visit(found, false); err != nil {
				return err
			}
		}
		return nil
	}
	if err := visit(p, true); err != nil {
		return nil, err
	}
	return out, nil
}

func findLibrary(root, name string, dirs []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, d := range dirs {
		p := path.Join(d, name)
		if fi, err := os.Stat(filepath.Join(root, p)); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("library %s not found in %s", name, strings.Join(dirs, ":"))
}
