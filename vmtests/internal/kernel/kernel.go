// Package kernel fetches a Debian kernel package with apt-get download and
// keeps it unpacked in a cache directory: the image to boot and its
// modules.
package kernel

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// DefaultMeta is the meta-package whose dependency names the kernel to use
// when none is pinned: Debian bookworm's cloud kernel, 6.1.
const DefaultMeta = "linux-image-cloud-amd64"

// Kernel is an unpacked kernel package.
type Kernel struct {
	// Package is the package name (linux-image-6.1.0-56-cloud-amd64).
	Package string
	// Release is the kernel release, as uname -r prints it.
	Release string
	// Image is the bootable image (vmlinuz).
	Image string
	// ModulesDir is /lib/modules/RELEASE of the package.
	ModulesDir string
}

var packageName = regexp.MustCompile(`^linux-image-[0-9][A-Za-z0-9.+-]*$`)

// Get returns the kernel package pkg unpacked under cacheDir, fetching it
// first if needed. An empty pkg means the package the meta-package
// DefaultMeta depends on, resolved once and remembered in the cache.
// Progress is written to log.
func Get(ctx context.Context, cacheDir, pkg string, log io.Writer) (*Kernel, error) {
	dir := filepath.Join(cacheDir, "kernels")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if pkg == "" {
		remembered := filepath.Join(dir, "default")
		if b, err := os.ReadFile(remembered); err == nil {
			pkg = strings.TrimSpace(string(b))
		} else {
			p, err := resolveMeta(ctx, DefaultMeta)
			if err != nil {
				return nil, err
			}
			pkg = p
			if err := os.WriteFile(remembered, []byte(pkg+"\n"), 0o644); err != nil {
				return nil, err
			}
		}
	}
	if !packageName.MatchString(pkg) {
		return nil, fmt.Errorf("kernel package %q: not a linux-image package name", pkg)
	}
	root := filepath.Join(dir, pkg)
	if k, err := open(pkg, root); err == nil {
		return k, nil
	}
	fmt.Fprintf(log, "vmtest: fetching %s with apt-get download\n", pkg)
	if err := fetch(ctx, dir, pkg, root); err != nil {
		return nil, err
	}
	return open(pkg, root)
}

// resolveMeta returns the linux-image package meta depends on.
func resolveMeta(ctx context.Context, meta string) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", "--no-recommends", "--no-suggests", meta).Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends %s: %w (is apt's package list up to date? apt-get update)", meta, err)
	}
	return parseDepends(out, meta)
}

// parseDepends picks the kernel image out of apt-cache depends output.
func parseDepends(out []byte, meta string) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") && packageName.MatchString(f[1]) {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("apt-cache depends %s: no linux-image dependency in %q", meta, out)
}

func fetch(ctx context.Context, dir, pkg, root string) error {
	tmp, err := os.MkdirTemp(dir, ".fetch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "apt-get", "download", "-q", pkg)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get download %s: %w: %s", pkg, err, bytes.TrimSpace(out))
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, pkg+"_*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("apt-get download %s: want one .deb, got %v", pkg, debs)
	}
	unpacked := filepath.Join(tmp, "root")
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], unpacked).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg-deb -x %s: %w: %s", filepath.Base(debs[0]), err, bytes.TrimSpace(out))
	}
	if err := os.Rename(debs[0], filepath.Join(unpacked, filepath.Base(debs[0]))); err != nil {
		return err
	}
	os.RemoveAll(root)
	return os.Rename(unpacked, root)
}

// open finds the image and the modules of the package unpacked at root.
func open(pkg, root string) (*Kernel, error) {
	images, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(images) != 1 {
		return nil, fmt.Errorf("%s: want one boot/vmlinuz-*, got %d", root, len(images))
	}
	release := strings.TrimPrefix(filepath.Base(images[0]), "vmlinuz-")
	var mods string
	for _, d := range []string{"lib/modules", "usr/lib/modules"} {
		p := filepath.Join(root, d, release)
		if _, err := os.Stat(filepath.Join(p, "modules.builtin")); err == nil {
			mods = p
			break
		}
	}
	if mods == "" {
		return nil, errors.New(root + ": no modules.builtin for " + release)
	}
	return &Kernel{Package: pkg, Release: release, Image: images[0], ModulesDir: mods}, nil
}
