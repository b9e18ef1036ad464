package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/control/api"
)

// testStatus is a two-node cluster right after ip-2 died and db failed over
// to ip-1.
func testStatus() api.Status {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	return api.Status{
		Cluster:    "prod",
		Server:     "ip-1",
		ConfigHash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Service:    api.ServiceRunning,
		Reason:     "peer ip-2 down",
		Heartbeat:  "xdp",
		Nodes: []api.Node{
			{Name: "ip-1", Self: true, State: api.NodeUp, Service: api.ServiceRunning},
			{Name: "ip-2", State: api.NodeDown, Lanes: []api.Lane{
				{Name: "lan0", Up: false, Misses: 17},
				{Name: "lan1", Up: true, RTT: 42 * time.Microsecond, Misses: 0},
				{Name: "lan2", Up: true, RTT: 1500 * time.Microsecond, Misses: 3},
			}},
		},
		Groups: []api.Group{
			{Name: "db", State: api.StateOnline, Owner: "ip-1", Generation: 7, FailedOn: []string{"ip-2"},
				Resources: []api.Resource{
					{Name: "vip", Type: "aws_vip", State: api.StateOnline},
					{Name: "app", Type: "exec", State: api.StateOnlineFailure, LastError: "start.sh exited 3:\tline\nnext"},
				}},
			{Name: "batch", State: api.StateOffline, Stopped: true},
			{Name: "web", State: api.StateOnline, Owner: "ip-2", Generation: 3,
				Resources: []api.Resource{{Name: "fip", Type: "floating_ip", State: api.StateOffline}}},
		},
		Monitors: []api.Monitor{
			{Name: "vipw", Type: "aws_vip", State: api.MonitorOK},
			{Name: "natw", Type: "ip", State: api.MonitorError, Code: 5, Message: "AWS call failed", Reactivations: 2, Failovers: 1},
		},
		LastFailover: &api.Timeline{Group: "db", From: "ip-2", To: "ip-1", Events: []api.Event{
			{At: t0, What: "peer ip-2 lost on all lanes"},
			{At: t0.Add(1200 * time.Microsecond), What: "group db starting on ip-1"},
			{At: t0.Add(85*time.Millisecond + 300*time.Microsecond), What: "aws_vip vip: route tables updated"},
			{At: t0.Add(1234500 * time.Microsecond), What: "group db online on ip-1"},
		}},
	}
}

func render(s api.Status) string {
	var b bytes.Buffer
	renderStatus(&b, s)
	return b.String()
}

// fields returns the lines of out as their white-space separated fields, so
// that a test does not depend on column widths.
func fields(out string) map[string]bool {
	m := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		m[strings.Join(strings.Fields(l), " ")] = true
	}
	return m
}

func TestRenderStatus(t *testing.T) {
	out := render(testStatus())
	t.Logf("\n%s", out)
	got := fields(out)
	for _, want := range []string{
		"Cluster: prod",
		"Server: ip-1",
		"Service: running (peer ip-2 down)",
		"Heartbeat: xdp",
		"Config: 9f86d081884c",
		"NODES",
		"NAME STATE SERVICE RTT MISSES NOTE",
		"* ip-1 up running",
		"ip-2 down -",
		"lane lan0 down - 17",
		"lane lan1 up 42µs 0",
		"lane lan2 up 1.50ms 3",
		"GROUPS",
		"NAME STATE OWNER GEN NOTE",
		"db online ip-1 7 failed on ip-2",
		"vip (aws_vip) online",
		"app (exec) online-failure start.sh exited 3: line next",
		"batch offline - 0 stopped by operator",
		"web online ip-2 3",
		"fip (floating_ip) standby",
		"MONITORS",
		"NAME TYPE STATE REACTIVATIONS FAILOVERS MESSAGE",
		"vipw aws_vip ok 0 0",
		"natw ip error 2 1 5: AWS call failed",
		"LAST FAILOVER group db: ip-2 -> ip-1 at 2025-03-01 12:00:00.000Z",
		"+ 0.0 ms peer ip-2 lost on all lanes",
		"+ 1.2 ms group db starting on ip-1",
		"+ 85.3 ms aws_vip vip: route tables updated",
		"+1234.5 ms group db online on ip-1",
		"total 1234.5 ms",
	} {
		if !got[want] {
			t.Errorf("no line %q", want)
		}
	}
	// The exact layout of the timeline.
	for _, want := range []string{
		"  +   0.0 ms  peer ip-2 lost on all lanes\n",
		"  +  85.3 ms  aws_vip vip: route tables updated\n",
		"  +1234.5 ms  group db online on ip-1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no exact line %q", want)
		}
	}
	// Sections come in order, and the table is aligned.
	last := -1
	for _, sec := range []string{"\nNODES\n", "\nGROUPS\n", "\nMONITORS\n", "\nLAST FAILOVER"} {
		i := strings.Index(out, sec)
		if i <= last {
			t.Errorf("section %q out of order", strings.TrimSpace(sec))
		}
		last = i
	}
	lines := strings.Split(out, "\n")
	var header, lane string
	for _, l := range lines {
		if strings.HasPrefix(l, "  NAME  ") && strings.Contains(l, "RTT") {
			header = l
		}
		if strings.Contains(l, "lane lan1") {
			lane = l
		}
	}
	if strings.Index(header, "RTT") != strings.Index(lane, "42µs") {
		t.Errorf("RTT column not aligned:\n%s\n%s", header, lane)
	}
}

func TestRenderEmpty(t *testing.T) {
	out := render(api.Status{Cluster: "c", Server: "s", Service: api.ServiceStopped})
	got := fields(out)
	for _, want := range []string{"Service: stopped", "Heartbeat: -", "Config: -", "(none)", "LAST FAILOVER", "none"} {
		if !got[want] {
			t.Errorf("no line %q in\n%s", want, out)
		}
	}
	if strings.Count(out, "(none)") != 3 {
		t.Errorf("want three empty sections:\n%s", out)
	}
}

func TestFormatRTT(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                         "-",
		3500 * time.Nanosecond:    "3.5µs",
		42 * time.Microsecond:     "42µs",
		999 * time.Microsecond:    "999µs",
		1500 * time.Microsecond:   "1.50ms",
		250 * time.Millisecond:    "250.00ms",
		1200 * time.Millisecond:   "1.20s",
		42*time.Microsecond + 600: "43µs",
	} {
		if got := formatRTT(d); got != want {
			t.Errorf("formatRTT(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestCleanEscapes(t *testing.T) {
	if got := clean("a\x1b[31mb\tc\nd\u202ee"); got != "a [31mb c d e" {
		t.Errorf("clean = %q", got)
	}
}

func TestRenderNoTrailingSpace(t *testing.T) {
	for i, l := range strings.Split(render(testStatus()), "\n") {
		if strings.TrimRight(l, " ") != l {
			t.Errorf("line %d has trailing spaces: %q", i+1, l)
		}
	}
}
