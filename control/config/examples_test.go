package config

import (
	"path/filepath"
	"testing"
)

var exampleFiles = []string{"vip-cluster.yaml", "eip-cluster.yaml", "dns-cluster.yaml"}

func examplePath(name string) string { return filepath.Join("..", "..", "examples", name) }

func TestLoadExamples(t *testing.T) {
	for _, name := range exampleFiles {
		t.Run(name, func(t *testing.T) {
			c, err := Load(examplePath(name))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if len(c.Key) < MinKeyLen {
				t.Errorf("key is %d bytes", len(c.Key))
			}
			if c.Hash == ([32]byte{}) {
				t.Error("hash not set")
			}
			t.Logf("\n%s", Summary(c))
		})
	}
}
