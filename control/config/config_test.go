package config

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// writeConfig writes a configuration and a key with the given mode to a
// temporary folder and returns the configuration's path.
func writeConfig(t *testing.T, yaml string, key []byte, mode os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if key != nil {
		kp := filepath.Join(dir, "k")
		if err := os.WriteFile(kp, key, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(kp, mode); err != nil { // not subject to the umask
			t.Fatal(err)
		}
	}
	return path
}

func TestLoadKey(t *testing.T) {
	key := bytes.Repeat([]byte("k"), 32)
	tests := []struct {
		name string
		key  []byte
		mode os.FileMode
		want string // a fragment of the error; "" for success
	}{
		{"0600", key, 0o600, ""},
		{"0644 as after a git clone", key, 0o644, ""},
		{"0640", key, 0o640, ""},
		{"group writable", key, 0o660, "is writable by others (mode 0660): chmod 600"},
		{"world writable", key, 0o606, "is writable by others (mode 0606): chmod 600"},
		{"short", key[:31], 0o600, "is too short (31 bytes, need at least 32)"},
		{"missing", nil, 0, "key file: open "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, base, tt.key, tt.mode)
			c, err := Load(path)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if !bytes.Equal(c.Key, tt.key) || c.Path != path {
					t.Errorf("Key = %q, Path = %q", c.Key, c.Path)
				}
				return
			}
			if err == nil {
				t.Fatal("Load succeeded")
			}
			checkErrors(t, path, err, e(1, "cluster.key_file", tt.want))
		})
	}
}

func TestLoadAbsoluteKeyPath(t *testing.T) {
	dir := t.TempDir()
	kp := filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(kp, bytes.Repeat([]byte{0xa5}, 48), 0o600); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, withCluster("cluster: {name: c, key_file: "+kp+"}", ""), nil, 0)
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(c.Key) != 48 {
		t.Errorf("key is %d bytes, want 48", len(c.Key))
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "load config: open ") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestParseDoesNotReadKey(t *testing.T) {
	c, err := Parse("cluster.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if c.Key != nil || c.Path != "cluster.yaml" {
		t.Errorf("Key = %q, Path = %q", c.Key, c.Path)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse("cluster.yaml", []byte(base+`groups:
  - name: g
    resources:
      - {name: fip1, type: floating_ip, address: 198.18.100.10/24, interface: eth0}
      - {name: app, type: exec, start: /bin/true}
      - {name: vip, type: aws_vip, ip: 10.1.0.20, vpc_id: vpc-1234abcd, eni_id: eni-1234abcd}
      - {name: eip, type: aws_eip, allocation_id: eipalloc-01234567, eni_id: eni-1234abcd}
      - {name: dns, type: aws_dns, hosted_zone_id: Z1, record_name: a.b., ip: 10.0.0.1}
monitors:
  - {name: ipw1, type: ip, addresses: [10.0.10.100]}
  - {name: azw, type: aws_az, availability_zone: ap-northeast-1a}
  - {name: appw, type: exec, script: /bin/true, active_on: app}
  - {name: gw, type: tcp, address: "a:1", active_on: g, recovery: {target: app}}
`))
	if err != nil {
		t.Fatal(err)
	}
	cl := c.Cluster
	wantCluster := Cluster{
		Name: "c", KeyFile: "k",
		Heartbeat:       Heartbeat{Profile: "conservative", Mode: "auto", Port: 29001, IntervalMS: 100, TimeoutMS: 1000, StallTimeoutMS: 5000},
		StartupWaitMS:   5000,
		NPResolution:    NPResolution{TimeoutMS: 1000, Action: "stop_groups"},
		ShutdownCommand: []string{"/sbin/poweroff"},
		MetricsAddress:  DefaultMetricsAddress,
		AWS:             AWS{CallTimeoutMS: DefaultAWSCallTimeoutMS},
	}
	if !reflect.DeepEqual(cl, wantCluster) {
		t.Errorf("cluster = %+v\nwant %+v", cl, wantCluster)
	}
	if got := c.Lanes[0].Priority; got != 1 {
		t.Errorf("lane priority = %d, want 1", got)
	}
	if got := c.Groups[0].Servers; !reflect.DeepEqual(got, []string{"n1", "n2"}) {
		t.Errorf("group servers = %v, want every server in order", got)
	}
	timeouts := map[string][2]int{"fip1": {10000, 10000}, "app": {60000, 60000}, "vip": {30000, 30000}, "eip": {30000, 30000}, "dns": {30000, 30000}}
	for name, want := range timeouts {
		_, r := c.Resource(name)
		if got := [2]int{r.StartTimeoutMS, r.StopTimeoutMS}; got != want {
			t.Errorf("%s timeouts = %v, want %v", name, got, want)
		}
	}
	if _, r := c.Resource("dns"); r.AWSDNS.TTL != 300 || !r.AWSDNS.DeleteOnStop {
		t.Errorf("dns = %+v, want ttl 300 and delete_on_stop", r.AWSDNS)
	}

	type mon struct {
		interval, timeout, retry int
		timing                   string
		rec                      Recovery
	}
	mons := map[string]mon{
		"ipw1": {3000, 2000, 1, "always", Recovery{Target: "LocalServer", FinalAction: "none"}},
		"azw":  {15000, 10000, 1, "always", Recovery{Target: "LocalServer", FinalAction: "none"}},
		"appw": {3000, 2000, 1, "active", Recovery{Target: "g", ReactivationCount: 3, FailoverCount: 1, FinalAction: "none"}},
		"gw":   {3000, 2000, 1, "active", Recovery{Target: "app", ReactivationCount: 3, FailoverCount: 1, FinalAction: "none"}},
	}
	for name, want := range mons {
		m := c.Monitor(name)
		got := mon{m.IntervalMS, m.TimeoutMS, m.Retry, m.Timing, m.Recovery}
		if got != want {
			t.Errorf("monitor %s = %+v, want %+v", name, got, want)
		}
	}
	if got := c.Monitor("azw").AWSAZ.OnAPIFailure; got != "warning" {
		t.Errorf("on_api_failure = %q, want warning", got)
	}
}

func TestExplicitZeroIsNotReplacedByDefault(t *testing.T) {
	c, err := Parse("cluster.yaml", []byte(withCluster("cluster: {name: c, key_file: k, startup_wait_ms: 0}", "monitors:\n  - {name: m, type: tcp, address: \"a:1\", retry: 0}\n")))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.StartupWaitMS != 0 || c.Monitors[0].Retry != 0 {
		t.Errorf("startup_wait_ms = %d, retry = %d, want 0 and 0", c.Cluster.StartupWaitMS, c.Monitors[0].Retry)
	}
}

func TestPerServer(t *testing.T) {
	c, err := Load(examplePath("vip-cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	g, r := c.Resource("awsvip1")
	if g == nil || g.Name != "failover1" {
		t.Fatalf("Resource(awsvip1) group = %v", g)
	}
	n1, n2 := r.For("ip-10-0-110-10"), r.For("ip-10-0-120-10")
	if n1 != r {
		t.Error("For a server without its own values is not the resource itself")
	}
	if n1.AWSVIP.ENIID != "eni-1234abcd" || n2.AWSVIP.ENIID != "eni-5678abcd" {
		t.Errorf("eni ids = %s, %s", n1.AWSVIP.ENIID, n2.AWSVIP.ENIID)
	}
	if n2.AWSVIP.IP != "10.1.0.20" || n2.AWSVIP.VPCID != "vpc-1234abcd" || n2.Name != "awsvip1" ||
		n2.StartTimeoutMS != 30000 || !reflect.DeepEqual(n2.DependsOn, []string{"md"}) {
		t.Errorf("common values not merged into the copy: %+v %+v", n2, n2.AWSVIP)
	}
	if n2.AWSVIP == r.AWSVIP {
		t.Error("per-server copy shares its kind struct with the common value")
	}
	if n2.For("ip-10-0-110-10") != n2 {
		t.Error("a per-server copy has per-server copies of its own")
	}
	if got := r.For("unknown"); got != r {
		t.Error("For an unknown server is not the resource itself")
	}

	m := c.Monitor("awsazw1")
	if a, b := m.For("ip-10-0-110-10").AWSAZ.AvailabilityZone, m.For("ip-10-0-120-10").AWSAZ.AvailabilityZone; a != "ap-northeast-1a" || b != "ap-northeast-1b" {
		t.Errorf("aws_az zones = %s, %s", a, b)
	}
	if got := m.For("ip-10-0-120-10"); got.AWSAZ.OnAPIFailure != "warning" || got.Recovery.Target != LocalServer {
		t.Errorf("common monitor values not merged: %+v", got)
	}
}

func TestPerServerListIsACopy(t *testing.T) {
	c, err := Parse("cluster.yaml", []byte(base+`monitors:
  - name: ipw1
    type: ip
    addresses: [10.0.10.100]
    servers:
      n2: {addresses: [10.0.20.100, 10.0.20.101]}
`))
	if err != nil {
		t.Fatal(err)
	}
	m := c.Monitors[0]
	if got := m.For("n1").IP.Addresses; !reflect.DeepEqual(got, []string{"10.0.10.100"}) {
		t.Errorf("n1 addresses = %v", got)
	}
	if got := m.For("n2").IP.Addresses; !reflect.DeepEqual(got, []string{"10.0.20.100", "10.0.20.101"}) {
		t.Errorf("n2 addresses = %v", got)
	}
}

func TestAliasesAreFollowed(t *testing.T) {
	c, err := Parse("cluster.yaml", []byte(base+`groups:
  - name: g
    resources:
      - {name: a, type: exec, start: &start /opt/app/start}
      - {name: b, type: exec, start: *start}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Groups[0].Resources[1].Exec.Start; got != "/opt/app/start" {
		t.Errorf("start = %q", got)
	}
}

func TestAliasBomb(t *testing.T) {
	// A small file whose aliases expand to 200 groups × 100 resources ×
	// 100 dependencies: the decoder must stop, not try.
	var b strings.Builder
	b.WriteString(base + "groups:\n  - name: g0\n    resources: &rs\n")
	b.WriteString("      - {name: r0, type: exec, start: /x, depends_on: &deps [" + strings.Repeat("r0, ", 99) + "r0]}\n")
	for i := 1; i < 100; i++ {
		b.WriteString("      - {name: r" + strconv.Itoa(i) + ", type: exec, start: /x, depends_on: *deps}\n")
	}
	for i := 1; i < 200; i++ {
		b.WriteString("  - {name: g" + strconv.Itoa(i) + ", resources: *rs}\n")
	}
	_, err := Parse("cluster.yaml", []byte(b.String()))
	checkErrors(t, "cluster.yaml", err, e(10, "", "document too large: aliases expand to more than 262144 nodes"))
}

func TestHeartbeatProfiles(t *testing.T) {
	for _, tt := range []struct {
		yaml string
		want Heartbeat
	}{
		{"{profile: fast}", Heartbeat{Profile: "fast", Mode: "auto", Port: 29001, IntervalMS: 5, TimeoutMS: 25, StallTimeoutMS: 500}},
		{"{profile: cross-az, mode: ebpf}", Heartbeat{Profile: "cross-az", Mode: "ebpf", Port: 29001, IntervalMS: 20, TimeoutMS: 150, StallTimeoutMS: 2000}},
		{"{profile: fast, timeout_ms: 40}", Heartbeat{Profile: "fast", Mode: "auto", Port: 29001, IntervalMS: 5, TimeoutMS: 40, StallTimeoutMS: 500}},
		{"{interval_ms: 50}", Heartbeat{Profile: "conservative", Mode: "auto", Port: 29001, IntervalMS: 50, TimeoutMS: 1000, StallTimeoutMS: 5000}},
	} {
		data := strings.Replace(base, "key_file: k}", "key_file: k, heartbeat: "+tt.yaml+"}", 1)
		c, err := Parse("cluster.yaml", []byte(data))
		if err != nil {
			t.Fatalf("%s: %v", tt.yaml, err)
		}
		if c.Cluster.Heartbeat != tt.want {
			t.Errorf("%s: heartbeat = %+v, want %+v", tt.yaml, c.Cluster.Heartbeat, tt.want)
		}
	}
	for yaml, want := range map[string]string{
		"{profile: turbo}":                      `cluster.heartbeat.profile: "turbo" is not one of fast, cross-az, conservative`,
		"{mode: xdp}":                           `cluster.heartbeat.mode: "xdp" is not one of auto, ebpf, userspace`,
		"{profile: fast, stall_timeout_ms: 10}": "cluster.heartbeat.stall_timeout_ms: must not be shorter than timeout_ms (10 < 25)",
	} {
		data := strings.Replace(base, "key_file: k}", "key_file: k, heartbeat: "+yaml+"}", 1)
		_, err := Parse("cluster.yaml", []byte(data))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", yaml, err, want)
		}
	}
}
