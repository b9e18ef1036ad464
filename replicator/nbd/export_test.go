package nbd

import (
	"context"
	"strings"
	"testing"
)

// TestExposeOptions checks what Expose refuses before asking the kernel.
func TestExposeOptions(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		dev  Device
		opts Options
		want string
	}{
		{"negative index", newMemDevice(1 << 20), Options{Index: -2}, "negative"},
		{"too many connections", newMemDevice(1 << 20), Options{Index: AnyIndex, Connections: MaxConnections + 1}, "connections"},
		{"negative connections", newMemDevice(1 << 20), Options{Index: AnyIndex, Connections: -1}, "connections"},
		{"long backend", newMemDevice(1 << 20), Options{Index: AnyIndex, Backend: strings.Repeat("x", 256)}, "backend"},
		{"bad geometry", &memDevice{data: make([]byte, 1000), bs: 512}, Options{Index: AnyIndex}, "multiple of the block size"},
		{"bad block size", &memDevice{data: make([]byte, 16384), bs: 8192}, Options{Index: AnyIndex}, "block size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Expose(ctx, tc.dev, tc.opts)
			if err == nil {
				e.Close(ctx)
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}
