package kernel

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestParseDepends(t *testing.T) {
	out := []byte("linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-56-cloud-amd64\n")
	if got, err := parseDepends(out, "linux-image-cloud-amd64"); err != nil || got != "linux-image-6.1.0-56-cloud-amd64" {
		t.Errorf("parseDepends = %q, %v", got, err)
	}
	if _, err := parseDepends([]byte("linux-image-cloud-amd64\n  Depends: libc6\n"), "m"); err == nil {
		t.Error("no linux-image dependency accepted")
	}
}

// TestGetUsesTheCache finds an unpacked package in the cache without
// asking apt.
func TestGetUsesTheCache(t *testing.T) {
	cache := t.TempDir()
	pkg := "linux-image-6.1.0-0-test"
	root := filepath.Join(cache, "kernels", pkg)
	for p, text := range map[string]string{
		"boot/vmlinuz-6.1.0-0-test":                 "image",
		"lib/modules/6.1.0-0-test/modules.builtin":  "",
		"lib/modules/6.1.0-0-test/kernel/x/veth.ko": "",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(cache, "kernels", "default"), []byte(pkg+"\n"), 0o644)
	k, err := Get(context.Background(), cache, "", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if k.Package != pkg || k.Release != "6.1.0-0-test" || k.Image != filepath.Join(root, "boot/vmlinuz-6.1.0-0-test") ||
		k.ModulesDir != filepath.Join(root, "lib/modules/6.1.0-0-test") {
		t.Errorf("Get = %+v", k)
	}
	if _, err := Get(context.Background(), cache, "not a package; rm -rf /", io.Discard); err == nil {
		t.Error("a bad package name accepted")
	}
}
