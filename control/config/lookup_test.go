package config

import (
	"reflect"
	"testing"
)

func TestLookup(t *testing.T) {
	c, err := Parse("cluster.yaml", []byte(`cluster: {name: c, key_file: k, metrics_address: ':9464'}
servers:
  - {name: n1, interconnects: {lan1: 198.18.0.1, lan2: 198.18.1.1}, metrics_address: '198.18.0.1:9100'}
  - {name: n2, interconnects: {lan1: 198.18.0.2, lan2: 198.18.1.2}}
lanes:
  - {name: lan1}
  - {name: lan2, priority: 5}
groups:
  - name: g1
    servers: [n2, n1]
    resources: [{name: a, type: exec, start: /bin/true}]
  - name: g2
    resources: [{name: b, type: exec, start: /bin/true}]
monitors:
  - {name: m, type: tcp, address: "a:1"}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.ServerIndex("n2") != 1 || c.ServerIndex("n3") != -1 {
		t.Error("ServerIndex")
	}
	if c.Server("n1") != &c.Servers[0] || c.Server("x") != nil {
		t.Error("Server")
	}
	if c.LaneByName("lan2") != &c.Lanes[1] || c.LaneByName("lan2").Priority != 5 || c.LaneByName("x") != nil {
		t.Error("LaneByName")
	}
	if c.Group("g2") != &c.Groups[1] || c.Group("a") != nil {
		t.Error("Group")
	}
	if g, r := c.Resource("b"); g != &c.Groups[1] || r != &c.Groups[1].Resources[0] {
		t.Error("Resource")
	}
	if g, r := c.Resource("g1"); g != nil || r != nil {
		t.Error("Resource of a group name")
	}
	if c.Monitor("m") != &c.Monitors[0] || c.Monitor("x") != nil {
		t.Error("Monitor")
	}
	if got := c.MetricsAddressFor("n1"); got != "198.18.0.1:9100" {
		t.Errorf("MetricsAddressFor(n1) = %q", got)
	}
	if got := c.MetricsAddressFor("n2"); got != ":9464" {
		t.Errorf("MetricsAddressFor(n2) = %q", got)
	}
	if got := c.GroupServers(c.Group("g1")); !reflect.DeepEqual(got, []string{"n2", "n1"}) {
		t.Errorf("GroupServers(g1) = %v", got)
	}
	if got := c.GroupServers(&Group{}); !reflect.DeepEqual(got, []string{"n1", "n2"}) {
		t.Errorf("GroupServers of a group without servers = %v", got)
	}
}
