package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vigil-ha/vigil/vmtests/internal/initramfs"
	"github.com/vigil-ha/vigil/vmtests/internal/kernel"
	"github.com/vigil-ha/vigil/vmtests/internal/kmod"
	"github.com/vigil-ha/vigil/vmtests/internal/proto"
	"github.com/vigil-ha/vigil/vmtests/vmenv"
)

// baseModules are what every VM loads: the virtio-serial ports the host
// talks through and the entropy source.
var baseModules = []string{"virtio_pci", "virtio_console", "virtio_rng"}

// netModules are added in multi-VM topologies.
var netModules = []string{"virtio_net"}

// Guest paths.
const (
	guestBin = "/vigil/bin"
	guestSrc = "/vigil/src"
)

// image is what goes into one initramfs.
type image struct {
	// init is the host program that becomes /init (a static build of
	// the harness itself).
	init string
	// modules are module files relative to the kernel's modules
	// directory, in load order (see moduleFiles).
	modules []string
	// tools are host programs, by name.
	tools []string
	// libsFor are host executables (the test binaries) whose shared
	// libraries, if they have any, go in too.
	libsFor []string
	// files maps guest paths to host files.
	files map[string]string
	// trees maps guest directories to host directories.
	trees map[string]string
	// dirs are empty directories to create.
	dirs []string
	// manifests maps guest paths to the manifests to write there.
	manifests map[string]any
}

// moduleFiles resolves module names for k and returns the files relative
// to its modules directory and the guest paths init loads them from.
func moduleFiles(k *kernel.Kernel, names []string) (rel, guest []string, err error) {
	ix, err := kmod.Load(k.ModulesDir)
	if err != nil {
		return nil, nil, fmt.Errorf("kernel %s: %w", k.Release, err)
	}
	rel, err = ix.Resolve(names...)
	if err != nil {
		return nil, nil, fmt.Errorf("kernel %s: %w", k.Release, err)
	}
	for _, r := range rel {
		guest = append(guest, path.Join("/lib/modules", k.Release, r))
	}
	return rel, guest, nil
}

// writeImage writes img's initramfs to out for kernel k and returns its
// size.
func writeImage(k *kernel.Kernel, img *image, out string) (int64, error) {
	f, err := os.Create(out)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	b := initramfs.New(f)
	if err := fillImage(b, k, img); err != nil {
		return 0, fmt.Errorf("initramfs: %w", err)
	}
	if err := b.Close(); err != nil {
		return 0, fmt.Errorf("initramfs: %w", err)
	}
	return b.Written(), f.Close()
}

func fillImage(b *initramfs.Builder, k *kernel.Kernel, img *image) error {
	// The host's layout of /bin, /sbin, /lib and /lib64: on Debian 12
	// links into /usr, so host programs' paths work as they are.
	for _, d := range []string{"/bin", "/sbin", "/lib", "/lib64"} {
		fi, err := os.Lstat(d)
		switch {
		case err == nil && fi.Mode()&os.ModeSymlink != 0:
			t, err := os.Readlink(d)
			if err != nil {
				return err
			}
			if err := b.Symlink(d, t); err != nil {
				return err
			}
		default:
			if err := b.Dir(d, 0o755); err != nil {
				return err
			}
		}
	}
	for _, d := range []string{"/usr/bin", "/usr/sbin", "/root", "/etc", "/vigil"} {
		if err := b.Dir(d, 0o755); err != nil {
			return err
		}
	}
	for name, text := range map[string]string{
		"/etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
		"/etc/group":  "root:x:0:\n",
		"/etc/hosts":  "127.0.0.1\tlocalhost\n::1\tlocalhost\n",
	} {
		if err := b.Bytes(name, 0o644, []byte(text)); err != nil {
			return err
		}
	}
	if err := b.File("/init", img.init); err != nil {
		return err
	}
	for _, t := range img.tools {
		p, err := lookTool(t)
		if err != nil {
			return err
		}
		if err := b.Program(p); err != nil {
			return err
		}
	}
	for _, p := range img.libsFor {
		libs, err := initramfs.Libraries("/", p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for _, l := range libs {
			if _, err := b.HostPath(l); err != nil {
				return err
			}
		}
	}
	if err := addBusybox(b); err != nil {
		return err
	}
	for _, rel := range img.modules {
		if err := b.File(path.Join("/lib/modules", k.Release, rel), filepath.Join(k.ModulesDir, rel)); err != nil {
			return err
		}
	}
	for _, g := range slices.Sorted(maps.Keys(img.files)) {
		if err := b.File(g, img.files[g]); err != nil {
			return err
		}
	}
	for _, d := range img.dirs {
		if err := b.Dir(d, 0o755); err != nil {
			return err
		}
	}
	for _, g := range slices.Sorted(maps.Keys(img.trees)) {
		if err := b.Tree(g, img.trees[g]); err != nil {
			return err
		}
	}
	for _, g := range slices.Sorted(maps.Keys(img.manifests)) {
		j, err := json.MarshalIndent(img.manifests[g], "", "\t")
		if err != nil {
			return err
		}
		if err := b.Bytes(g, 0o644, j); err != nil {
			return err
		}
	}
	return nil
}

// addBusybox adds the host's static busybox and a link for each of its
// applets that no tool already provides.
func addBusybox(b *initramfs.Builder) error {
	bb, err := lookTool("busybox")
	if err != nil {
		return err
	}
	if err := requireStatic(bb); err != nil {
		return fmt.Errorf("%s: %w (install busybox-static)", bb, err)
	}
	dst, err := b.HostPath(bb)
	if err != nil {
		return err
	}
	out, err := exec.CommandContext(context.Background(), bb, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("%s --list-full: %w", bb, err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		applet := "/" + strings.TrimSpace(sc.Text())
		if applet == "/" || path.Base(applet) == "init" || path.Base(applet) == "linuxrc" || b.Has(applet) {
			continue
		}
		if err := b.Symlink(applet, dst); err != nil {
			return err
		}
	}
	return sc.Err()
}

// requireStatic fails if the executable at p needs a dynamic loader.
func requireStatic(p string) error {
	libs, err := initramfs.Libraries("/", p)
	if err != nil {
		return err
	}
	if len(libs) > 0 {
		return fmt.Errorf("%w: needs %s", errNotStatic, strings.Join(libs, ", "))
	}
	return nil
}

// manifestPath is VM vm's manifest in the guest.
func manifestPath(vm int) string { return fmt.Sprintf("/vigil/manifest-%d.json", vm) }

// packageImage returns the image for testing pkgs in vms VMs, VM i doing
// runs(i): the modules and tools the packages need, their source
// directories with any testdata, and one manifest per VM. The caller adds
// the test binaries.
func (e *Env) packageImage(k *kernel.Kernel, init string, pkgs []Package, vms int, runs func(vm int) []proto.Run) (*image, error) {
	names := append([]string(nil), baseModules...)
	if vms > 1 {
		names = append(names, netModules...)
	}
	var tools []string
	img := &image{init: init, files: map[string]string{}, trees: map[string]string{}, manifests: map[string]any{}}
	for _, p := range pkgs {
		names = append(names, p.Modules...)
		tools = append(tools, p.Tools...)
		img.dirs = append(img.dirs, path.Join(guestSrc, p.Path))
		if td := filepath.Join(e.Root, filepath.FromSlash(p.Path), "testdata"); fileExists(td) {
			img.trees[path.Join(guestSrc, p.Path, "testdata")] = td
		}
	}
	img.tools = dedupe(tools)
	rel, guest, err := moduleFiles(k, dedupe(names))
	if err != nil {
		return nil, err
	}
	img.modules = rel
	for i := range vms {
		m := proto.Manifest{
			Modules:  guest,
			Env:      append(forwardEnv(), fmt.Sprintf("%s=%d", vmenv.EnvIndex, i), fmt.Sprintf("%s=%d", vmenv.EnvCount, vms)),
			Runs:     runs(i),
			Hostname: fmt.Sprintf("vm%d", i),
		}
		if vms > 1 {
			m.Links = []proto.Link{{Name: "eth0", Address: vmenv.Address(i).String()}}
		}
		img.manifests[manifestPath(i)] = m
	}
	return img, nil
}
