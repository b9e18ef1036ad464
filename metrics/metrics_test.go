package metrics

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// series returns one line of the text format: name with the constant labels
// and pairs (a="x",b="y"), sorted as the registry sorts them, and value.
func series(name, pairs, value string) string {
	all := append(strings.Split(pairs, ","), `cluster="prod"`, `server="ip-1"`)
	sort.Strings(all)
	return name + "{" + strings.Join(all, ",") + "} " + value
}

func compare(t *testing.T, m *Metrics, expected string, names ...string) {
	t.Helper()
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(expected), names...); err != nil {
		t.Error(err)
	}
}

func TestOneHotSwitching(t *testing.T) {
	m := New("prod", "ip-1")
	m.SetGroupState("db", "starting")
	m.SetGroupState("db", "online")
	compare(t, m, `
# HELP vigil_group_state A failover group's state as this node knows it: 1 for the current state, 0 for the others.
# TYPE vigil_group_state gauge
`+series("vigil_group_state", `group="db",state="offline"`, "0")+`
`+series("vigil_group_state", `group="db",state="starting"`, "0")+`
`+series("vigil_group_state", `group="db",state="online"`, "1")+`
`+series("vigil_group_state", `group="db",state="stopping"`, "0")+`
`+series("vigil_group_state", `group="db",state="online-failure"`, "0")+`
`+series("vigil_group_state", `group="db",state="offline-failure"`, "0")+`
`, "vigil_group_state")

	m.SetMonitorState("ipw", "ok")
	m.SetMonitorState("ipw", "error")
	for state, want := range map[string]float64{"ok": 0, "warning": 0, "error": 1, "suspended": 0, "inactive": 0, "unknown": 0} {
		if got := testutil.ToFloat64(m.monitorState.vec.WithLabelValues("ipw", state)); got != want {
			t.Errorf("monitor ipw state %s = %v, want %v", state, got, want)
		}
	}

	m.SetResourceState("db", "vip", "online-failure")
	m.SetResourceState("db", "vip", "offline")
	if got := testutil.ToFloat64(m.resourceState.vec.WithLabelValues("db", "vip", "offline")); got != 1 {
		t.Errorf("resource offline = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.resourceState.vec.WithLabelValues("db", "vip", "online-failure")); got != 0 {
		t.Errorf("resource online-failure = %v, want 0", got)
	}
}

func TestServiceStateSeenStates(t *testing.T) {
	m := New("prod", "ip-1")
	m.SetServiceState("starting")
	m.SetServiceState("running")
	m.SetServiceState("isolated")
	m.SetServiceState("running")
	compare(t, m, `
# HELP vigil_service_state The node's cluster service state: 1 for the current state, 0 for the others.
# TYPE vigil_service_state gauge
`+series("vigil_service_state", `state="isolated"`, "0")+`
`+series("vigil_service_state", `state="running"`, "1")+`
`+series("vigil_service_state", `state="starting"`, "0")+`
`, "vigil_service_state")
}

func TestUnknownStateKeptOneHot(t *testing.T) {
	m := New("prod", "ip-1")
	m.SetGroupState("db", "weird")
	m.SetGroupState("db", "online")
	if got := testutil.ToFloat64(m.groupState.vec.WithLabelValues("db", "weird")); got != 0 {
		t.Errorf("old unknown state = %v, want 0", got)
	}
	if n := testutil.CollectAndCount(m.groupState.vec); n != 7 {
		t.Errorf("%d series, want 7", n)
	}
}

func TestHeartbeatAndLanes(t *testing.T) {
	m := New("prod", "ip-1")
	m.SetPeerUp("ip-2", true)
	m.SetLaneUp("ip-2", "lan0", true)
	m.SetLaneUp("ip-2", "lan1", false)
	m.AddLaneMisses("ip-2", "lan1", 3)
	m.AddLaneMisses("ip-2", "lan1", 2)
	for _, d := range []time.Duration{15 * time.Microsecond, 40 * time.Microsecond, 2 * time.Millisecond} {
		m.ObserveLaneRTT("ip-2", "lan0", d)
	}
	m.SetHeartbeatDrops("bad_mac", 4)
	m.SetHeartbeatDrops("replay", 1)
	m.SetHeartbeatDrops("bad_mac", 9)
	compare(t, m, `
# HELP vigil_heartbeat_dropped_total Heartbeat packets the data plane dropped, by reason.
# TYPE vigil_heartbeat_dropped_total counter
`+series("vigil_heartbeat_dropped_total", `reason="bad_mac"`, "9")+`
`+series("vigil_heartbeat_dropped_total", `reason="replay"`, "1")+`
# HELP vigil_lane_misses_total Heartbeat probes to a peer on a lane that got no answer in time.
# TYPE vigil_lane_misses_total counter
`+series("vigil_lane_misses_total", `lane="lan0",peer="ip-2"`, "0")+`
`+series("vigil_lane_misses_total", `lane="lan1",peer="ip-2"`, "5")+`
# HELP vigil_lane_up Whether the peer answers heartbeats on the lane (1) or not (0).
# TYPE vigil_lane_up gauge
`+series("vigil_lane_up", `lane="lan0",peer="ip-2"`, "1")+`
`+series("vigil_lane_up", `lane="lan1",peer="ip-2"`, "0")+`
# HELP vigil_peer_up Whether the peer answers heartbeats on at least one lane (1) or not (0).
# TYPE vigil_peer_up gauge
`+series("vigil_peer_up", `peer="ip-2"`, "1")+`
`, "vigil_heartbeat_dropped_total", "vigil_lane_misses_total", "vigil_lane_up", "vigil_peer_up")

	h := histogram(t, m, "vigil_lane_rtt_seconds")
	if h.GetSampleCount() != 3 {
		t.Errorf("rtt count = %d, want 3", h.GetSampleCount())
	}
	// 15µs and 40µs are under 50µs; 2ms is not.
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() == 50e-6 && b.GetCumulativeCount() != 2 {
			t.Errorf("rtt bucket le=50µs = %d, want 2", b.GetCumulativeCount())
		}
	}
	if first := h.GetBucket()[0].GetUpperBound(); first != 10e-6 {
		t.Errorf("first rtt bucket %v, want 10µs", first)
	}
}

func TestFailoversAndRecovery(t *testing.T) {
	m := New("prod", "ip-1")
	m.SetGroupState("db", "online")
	m.SetGroupOwner("db", true)
	if got := testutil.ToFloat64(m.failovers.WithLabelValues("db")); got != 0 {
		t.Errorf("failovers before any = %v", got)
	}
	m.ObserveFailover("db", 120*time.Millisecond)
	m.ObserveFailover("db", 2*time.Second)
	if got := testutil.ToFloat64(m.failovers.WithLabelValues("db")); got != 2 {
		t.Errorf("failovers = %v, want 2", got)
	}
	h := histogram(t, m, "vigil_failover_duration_seconds")
	if h.GetSampleCount() != 2 || h.GetSampleSum() != 2.12 {
		t.Errorf("failover histogram count %d sum %v, want 2 and 2.12", h.GetSampleCount(), h.GetSampleSum())
	}
	if got := testutil.ToFloat64(m.groupActive.WithLabelValues("db")); got != 1 {
		t.Errorf("group active = %v", got)
	}
	m.SetGroupOwner("db", false)
	if got := testutil.ToFloat64(m.groupActive.WithLabelValues("db")); got != 0 {
		t.Errorf("group active after move = %v", got)
	}

	m.SetMonitorState("ipw", "error")
	m.IncMonitorRecovery("ipw", "reactivate")
	m.IncMonitorRecovery("ipw", "reactivate")
	m.IncMonitorRecovery("ipw", "failover")
	compare(t, m, `
# HELP vigil_monitor_recovery_total Recovery actions a monitor's failures triggered: reactivate, failover or final.
# TYPE vigil_monitor_recovery_total counter
`+series("vigil_monitor_recovery_total", `action="failover",monitor="ipw"`, "1")+`
`+series("vigil_monitor_recovery_total", `action="final",monitor="ipw"`, "0")+`
`+series("vigil_monitor_recovery_total", `action="reactivate",monitor="ipw"`, "2")+`
`, "vigil_monitor_recovery_total")
}

func TestConfigInfo(t *testing.T) {
	m := New("prod", "ip-1")
	m.SetConfigInfo("aaaa")
	m.SetConfigInfo("bbbb")
	compare(t, m, `
# HELP vigil_config_info The hash of the loaded configuration, as a label; the value is always 1.
# TYPE vigil_config_info gauge
`+series("vigil_config_info", `hash="bbbb"`, "1")+`
`, "vigil_config_info")
}

func TestLint(t *testing.T) {
	m := New("prod", "ip-1")
	fill(m)
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
	// The Go and process collectors are there; every vigil_* series has the
	// constant labels.
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var goSeen, processSeen bool
	for _, mf := range mfs {
		name := mf.GetName()
		goSeen = goSeen || strings.HasPrefix(name, "go_")
		processSeen = processSeen || strings.HasPrefix(name, "process_")
		if !strings.HasPrefix(name, "vigil_") {
			continue
		}
		for _, mt := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range mt.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if got["cluster"] != "prod" || got["server"] != "ip-1" {
				t.Errorf("%s lacks the constant labels: %v", name, got)
			}
		}
	}
	if !goSeen || !processSeen {
		t.Errorf("go collector %v, process collector %v", goSeen, processSeen)
	}
}

func TestNilMetrics(t *testing.T) {
	var m *Metrics
	fill(m) // must not panic
}

func TestInvalidUTF8Labels(t *testing.T) {
	m := New("bad\xff", "ip-1")
	m.SetPeerUp("ip-2", true)
	if _, err := m.Registry().Gather(); err != nil {
		t.Errorf("gather: %v", err)
	}
}

func TestRegisterFailureReported(t *testing.T) {
	m := New("prod", "ip-1")
	m.register(m.reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_peer_up", Help: "again"}))
	if _, err := m.Registry().Gather(); err == nil {
		t.Errorf("gather hid a registration failure")
	}
}

// fill calls every setter once.
func fill(m *Metrics) {
	m.SetPeerUp("ip-2", true)
	m.ObserveLaneRTT("ip-2", "lan0", 30*time.Microsecond)
	m.SetLaneUp("ip-2", "lan0", true)
	m.AddLaneMisses("ip-2", "lan0", 1)
	m.SetHeartbeatDrops("bad_mac", 2)
	m.SetServiceState("running")
	m.SetGroupState("db", "online")
	m.SetGroupOwner("db", true)
	m.SetResourceState("db", "vip", "online")
	m.SetMonitorState("ipw", "ok")
	m.IncMonitorRecovery("ipw", "reactivate")
	m.ObserveFailover("db", 300*time.Millisecond)
	m.SetConfigInfo("abcd")
	m.SetPeerStalled("ip-2", false)
	m.IncPeerLost("ip-2", "daemon_dead")
	m.SetHeartbeatMode("userspace (fallback: no BTF)")
	m.SetMonitorCode("ipw", 0)
	m.ObserveMonitorCheck("ipw", "ok", 2*time.Millisecond)
	m.ObserveAWSCall("ec2", "ReplaceRoute", 0, 3, 80*time.Millisecond)
	m.AddAWSThrottles("ec2", "ReplaceRoute", 2)
	m.RegisterVIPTraffic(func() []VIPSample {
		return []VIPSample{{Address: "10.1.0.20", Interface: "eth0", Packets: 3, Bytes: 180, FirstPacketAfter: 4 * time.Millisecond}}
	})
	m.RegisterMirrors(mirrorSamples)
	m.ObserveMirrorWrite("md1", 120*time.Microsecond)
}

func histogram(t *testing.T, m *Metrics, name string) *dto.Histogram {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatalf("no single %s", name)
	return nil
}

// logAddr is a slog.Handler that reports the addr attribute of "metrics:
// serving".
type logAddr struct {
	once sync.Once
	addr chan string
}

func (l *logAddr) Enabled(context.Context, slog.Level) bool { return true }
func (l *logAddr) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logAddr) WithGroup(string) slog.Handler            { return l }
func (l *logAddr) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "addr" {
			l.once.Do(func() { l.addr <- a.Value.String() })
		}
		return true
	})
	return nil
}

func TestServe(t *testing.T) {
	m := New("prod", "ip-1")
	m.SetServiceState("running")
	la := &logAddr{addr: make(chan string, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, "127.0.0.1:0", m.Handler(), slog.New(la)) }()
	var addr string
	select {
	case addr = <-la.addr:
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not start")
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}
	if want := series("vigil_service_state", `state="running"`, "1"); !strings.Contains(string(body), want) {
		t.Errorf("scrape lacks %q:\n%s", want, body)
	}
	if !strings.Contains(string(body), "# TYPE go_goroutines gauge") {
		t.Errorf("scrape lacks the Go collector")
	}

	// A second server on the same address fails at once.
	if err := Serve(context.Background(), addr, m.Handler(), nil); err == nil || !strings.Contains(err.Error(), "metrics listen") {
		t.Errorf("Serve on a bound address: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not stop")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("still listening after stop")
	}
}
