package harness

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
	"strings"
)

// ModulePath is the module whose packages the harness tests.
const ModulePath = "github.com/vigil-ha/vigil"

// Environment variables the harness reads.
const (
	// EnvCache overrides the cache directory.
	EnvCache = "VIGIL_VMTEST_CACHE"
	// EnvKernel pins the kernel package (linux-image-6.1.0-56-cloud-amd64).
	EnvKernel = "VIGIL_VMTEST_KERNEL"
	// EnvAccel forces the accelerator, "kvm" or "tcg", without probing.
	EnvAccel = "VIGIL_VMTEST_ACCEL"
	// EnvConsole, when "1", copies the VMs' serial consoles to stderr.
	EnvConsole = "VIGIL_VMTEST_CONSOLE"
)

// Env is where the harness works.
type Env struct {
	// Root is the module's directory.
	Root string
	// Cache holds the kernels, the accelerator probe's verdict and the
	// logs; by default Root/vmtests/.cache.
	Cache string
	// Go is the go command.
	Go string
	// Log receives the harness's own messages.
	Log io.Writer
}

// NewEnv finds the module containing dir and the cache.
func NewEnv(dir string, log io.Writer) (*Env, error) {
	root, err := findModule(dir)
	if err != nil {
		return nil, err
	}
	cache := os.Getenv(EnvCache)
	if cache == "" {
		cache = filepath.Join(root, "vmtests", ".cache")
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, err
	}
	goCmd := "go"
	if gr := os.Getenv("GOROOT"); gr != "" {
		if p := filepath.Join(gr, "bin", "go"); fileExists(p) {
			goCmd = p
		}
	}
	return &Env{Root: root, Cache: cache, Go: goCmd, Log: log}, nil
}

// findModule returns the directory of ModulePath's go.mod at or above dir.
func findModule(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil {
			if modulePath(b) == ModulePath {
				return d, nil
			}
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("no go.mod of %s at or above %s", ModulePath, dir)
		}
	}
}

func modulePath(gomod []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// RelPackage returns the module-relative path ("./x/y") of directory dir.
func (e *Env) RelPackage(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(e.Root, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%s is outside %s", dir, e.Root)
	}
	if rel == "." {
		return ".", nil
	}
	return "./" + filepath.ToSlash(rel), nil
}

// goBuild runs the go command in the module with args, static (no cgo)
// and stripped, for the VM.
func (e *Env) goBuild(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, e.Go, args...)
	cmd.Dir = e.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// BuildTest builds pkg's test binary at out, with the build tag vmtest
// that the VM-only suites (vmtests/netem, vmtests/twovm) need.
func (e *Env) BuildTest(ctx context.Context, pkg, out string) error {
	return e.goBuild(ctx, "test", "-c", "-tags", "vmtest", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
}

// BuildBinary builds the program pkg at out.
func (e *Env) BuildBinary(ctx context.Context, pkg, out string) error {
	return e.goBuild(ctx, "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
}

// lookTool finds a host program by name (or absolute path).
func lookTool(name string) (string, error) {
	if filepath.IsAbs(name) {
		if !fileExists(name) {
			return "", fmt.Errorf("tool %s: %w", name, os.ErrNotExist)
		}
		return name, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		// Not every PATH holds /usr/sbin.
		for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
			if c := filepath.Join(d, name); fileExists(c) {
				return c, nil
			}
		}
		return "", fmt.Errorf("tool %s: %w (scripts/install-deps.sh installs the VM tests' tools)", name, err)
	}
	return filepath.Abs(p)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

var errNotStatic = errors.New("not a static executable")
