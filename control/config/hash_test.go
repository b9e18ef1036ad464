package config

import (
	"os"
	"strings"
	"testing"
)

func parseFile(t *testing.T, path string) *Config {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(path, data)
	if err != nil {
		t.Fatalf("Parse(%s): %v", path, err)
	}
	return c
}

func TestHashIgnoresFormatting(t *testing.T) {
	a := parseFile(t, examplePath("vip-cluster.yaml"))
	b := parseFile(t, "testdata/vip-cluster-reordered.yaml")
	if a.Hash != b.Hash {
		t.Errorf("hashes differ: %x vs %x", a.Hash, b.Hash)
	}
}

func TestHashChangesWithEveryValue(t *testing.T) {
	data, err := os.ReadFile(examplePath("vip-cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	orig := string(data)
	ref, err := Parse("a.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, old, new string }{
		{"cluster name", "name: cluster", "name: cluster2"},
		{"key file name", "key_file: cluster.key", "key_file: other.key"},
		{"heartbeat interval", "interval_ms: 100", "interval_ms: 101"},
		{"np target", "ping: 10.0.20.100", "ping: 10.0.20.101"},
		{"availability zone", "availability_zone: ap-northeast-1b\n    interconnects", "availability_zone: ap-northeast-1c\n    interconnects"},
		{"interconnect address", "lan1: 10.0.120.10", "lan1: 10.0.120.11"},
		{"mirror mode", "mode: sync", "mode: async"},
		{"vip", "ip: 10.1.0.20", "ip: 10.1.0.21"},
		{"common eni", "eni_id: eni-1234abcd", "eni_id: eni-1234abce"},
		{"per-server eni", "eni_id: eni-5678abcd", "eni_id: eni-5678abce"},
		{"dependency", "depends_on: [md]", "depends_on: []"},
		{"monitor timing", "timing: always", "timing: always\n    interval_ms: 2999"},
		{"ip monitor address order", "addresses: [10.0.10.100, 10.0.20.100]", "addresses: [10.0.20.100, 10.0.10.100]"},
		{"per-server zone", "availability_zone: ap-northeast-1b\n    recovery", "availability_zone: ap-northeast-1c\n    recovery"},
		{"final action", "final_action: none", "final_action: stop_cluster_service"},
		{"group servers order", "  - name: failover1 ", "  - servers: [ip-10-0-120-10, ip-10-0-110-10]\n    name: failover1 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Count(orig, tt.old) != 1 {
				t.Fatalf("%q occurs %d times in the example", tt.old, strings.Count(orig, tt.old))
			}
			c, err := Parse("b.yaml", []byte(strings.Replace(orig, tt.old, tt.new, 1)))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if c.Hash == ref.Hash {
				t.Errorf("changing %q to %q leaves the hash unchanged", tt.old, tt.new)
			}
		})
	}
}

func TestHashIgnoresKeyAndPath(t *testing.T) {
	a, err := Load(examplePath("vip-cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(examplePath("vip-cluster.yaml"))
	b, err := Parse("elsewhere/cluster.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if a.Hash != b.Hash {
		t.Error("the hash depends on the key or the file's path")
	}
}
