package metrics

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// requireTool returns the path of a program a test runs (promtool, from
// Debian's prometheus package, which make deps installs). Without it the
// test skips, or fails under CI=true.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found (make deps installs it), and CI=true forbids skipping", name)
	}
	t.Skipf("%s not found: run make deps", name)
	return ""
}

// gatherText returns what /metrics serves, in the text format.
func gatherText(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d: %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// sample returns the value of the one series of name whose labels contain
// every fragment.
func sample(t *testing.T, m *Metrics, name string, fragments ...string) float64 {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(gatherText(t, m)))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for _, f := range fragments {
			ok = ok && strings.Contains(line, f)
		}
		if !ok {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		return v
	}
	t.Fatalf("no %s with %v", name, fragments)
	return 0
}

// promtoolCheck runs promtool check metrics on text and fails the test with
// every problem it finds.
func promtoolCheck(t *testing.T, text string) {
	t.Helper()
	cmd := exec.Command(requireTool(t, "promtool"), "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestPromtoolCheckMetrics lints every family, each with samples, with
// Prometheus's own linter.
func TestPromtoolCheckMetrics(t *testing.T) {
	m := New("prod", "ip-1")
	fill(m)
	text := gatherText(t, m)
	for _, want := range []string{"vigil_mirror_state{", "vigil_vip_packets_total{", "vigil_aws_call_throttles_total{", "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(text, want) {
			t.Errorf("the scrape lacks %s", want)
		}
	}
	promtoolCheck(t, text)
}

// families returns every family of a registry whose every setter ran once,
// by name.
func families(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	m := New("prod", "ip-1")
	fill(m)
	m.SetPeerStalled("ip-2", true)
	m.SetHeartbeatDrops("bad_mac", 1)
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// TestConventions checks what promtool does not: every vigil_* family has
// help text that is a sentence, its unit suffix matches its type, and its
// labels are among the bounded ones documented in the README.
func TestConventions(t *testing.T) {
	bounded := []string{
		"cluster", "server", "peer", "lane", "reason", "cause", "state", "mode", "group", "resource",
		"monitor", "action", "result", "service", "code", "hash", "vip", "interface", "disk",
	}
	for name, mf := range families(t) {
		if !strings.HasPrefix(name, "vigil_") {
			continue
		}
		help := mf.GetHelp()
		if help == "" || !strings.HasSuffix(help, ".") || strings.ToUpper(help[:1]) != help[:1] {
			t.Errorf("%s: help %q is not a sentence", name, help)
		}
		isCounter := mf.GetType() == dto.MetricType_COUNTER
		if strings.HasSuffix(name, "_total") != isCounter {
			t.Errorf("%s: a %v; only counters, and every counter, end in _total", name, mf.GetType())
		}
		if mf.GetType() == dto.MetricType_HISTOGRAM && !strings.HasSuffix(name, "_seconds") {
			t.Errorf("%s: a histogram of something other than seconds", name)
		}
		for _, unit := range []string{"_ms", "_milliseconds", "_microseconds", "_kb", "_mb", "_percent"} {
			if strings.Contains(name, unit) {
				t.Errorf("%s: not a base unit", name)
			}
		}
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if !slices.Contains(bounded, lp.GetName()) {
					t.Errorf("%s: label %s is not one of the bounded labels", name, lp.GetName())
				}
			}
		}
	}
}

// readmeMetrics returns the vigil_* names the README's metrics tables list,
// from the section that starts at heading.
func readmeMetrics(t *testing.T, heading string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README has no %q section", heading)
	}
	text = text[i+1:]
	if j := strings.Index(text[len(heading):], "\n## "); j >= 0 {
		text = text[:len(heading)+j]
	}
	out := map[string]bool{}
	re := regexp.MustCompile("(?m)^\\| `(vigil_[a-z0-9_]+)`")
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		out[m[1]] = true
	}
	return out
}

// TestREADMEListsEveryMetric keeps the README's list and the registry the
// same.
func TestREADMEListsEveryMetric(t *testing.T) {
	documented := readmeMetrics(t, "## Observability")
	have := families(t)
	for name := range have {
		if strings.HasPrefix(name, "vigil_") && !documented[name] {
			t.Errorf("%s is not in the README's metrics tables", name)
		}
	}
	for name := range documented {
		if have[name] == nil {
			t.Errorf("the README lists %s, which vigild does not expose", name)
		}
	}
}

// TestLabelValuesBounded checks that a label whose values come from
// outside (the heartbeat mode's fallback reason, a monitor result) only
// takes values from its fixed set.
func TestLabelValuesBounded(t *testing.T) {
	m := New("prod", "ip-1")
	m.SetHeartbeatMode("userspace (fallback: load XDP program: operation not permitted, and more text 12345)")
	m.ObserveMonitorCheck("ipw", "status(7)", time.Millisecond)
	if v := sample(t, m, "vigil_heartbeat_mode", `mode="userspace"`); v != 1 {
		t.Errorf("userspace = %v, want 1", v)
	}
	if v := sample(t, m, "vigil_heartbeat_fallback"); v != 1 {
		t.Errorf("fallback = %v, want 1", v)
	}
	text := gatherText(t, m)
	if strings.Contains(text, "operation not permitted") || strings.Contains(text, "status(7)") {
		t.Errorf("free text became a label value:\n%s", text)
	}
	if v := sample(t, m, "vigil_monitor_checks_total", `monitor="ipw"`, `result="error"`); v != 1 {
		t.Errorf("an unknown result counts as error: %v", v)
	}

	m.SetHeartbeatMode("ebpf (xdp native)")
	if v := sample(t, m, "vigil_heartbeat_mode", `mode="ebpf"`); v != 1 {
		t.Errorf("ebpf = %v, want 1", v)
	}
	if v := sample(t, m, "vigil_heartbeat_mode", `mode="userspace"`); v != 0 {
		t.Errorf("userspace = %v after ebpf, want 0", v)
	}
	if v := sample(t, m, "vigil_heartbeat_fallback"); v != 0 {
		t.Errorf("fallback = %v in ebpf mode, want 0", v)
	}
	m.SetHeartbeatMode("userspace")
	if v := sample(t, m, "vigil_heartbeat_fallback"); v != 0 {
		t.Errorf("a configured userspace mode is no fallback: %v", v)
	}
}

func TestAWSRetriesAndThrottles(t *testing.T) {
	m := New("prod", "ip-1")
	m.ObserveAWSCall("ec2", "ReplaceRoute", 0, 1, 20*time.Millisecond)
	m.ObserveAWSCall("ec2", "ReplaceRoute", 0, 4, 900*time.Millisecond)
	m.ObserveAWSCall("ec2", "ReplaceRoute", 6, 2, 5*time.Second)
	m.AddAWSThrottles("ec2", "ReplaceRoute", 3)
	m.AddAWSThrottles("ec2", "ReplaceRoute", 0)
	m.ObserveAWSCall("route53", "ChangeResourceRecordSets", 0, 1, 30*time.Millisecond)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"vigil_aws_call_attempts_total", []string{`action="ReplaceRoute"`}, 7},
		{"vigil_aws_call_retries_total", []string{`action="ReplaceRoute"`}, 4},
		{"vigil_aws_call_throttles_total", []string{`action="ReplaceRoute"`}, 3},
		{"vigil_aws_call_throttles_total", []string{`action="ChangeResourceRecordSets"`}, 0},
		{"vigil_aws_call_retries_total", []string{`action="ChangeResourceRecordSets"`}, 0},
		{"vigil_aws_call_duration_seconds_count", []string{`action="ReplaceRoute"`, `code="0"`}, 2},
		{"vigil_aws_call_duration_seconds_count", []string{`action="ReplaceRoute"`, `code="6"`}, 1},
	} {
		if got := sample(t, m, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestMonitorChecks(t *testing.T) {
	m := New("prod", "ip-1")
	m.ObserveMonitorCheck("ipw", "ok", 300*time.Microsecond)
	m.ObserveMonitorCheck("ipw", "ok", 2*time.Millisecond)
	m.ObserveMonitorCheck("ipw", "error", 2*time.Second)
	for result, want := range map[string]float64{"ok": 2, "warning": 0, "error": 1} {
		if got := sample(t, m, "vigil_monitor_checks_total", `monitor="ipw"`, `result="`+result+`"`); got != want {
			t.Errorf("checks{result=%s} = %v, want %v", result, got, want)
		}
	}
	h := histogram(t, m, "vigil_monitor_check_duration_seconds")
	if h.GetSampleCount() != 3 {
		t.Errorf("check durations: %d, want 3", h.GetSampleCount())
	}
}

// TestPeerLostCausesExposed checks that every cause is there at 0 as soon
// as the peer is known, so increase() sees the first loss.
func TestPeerLostCausesExposed(t *testing.T) {
	m := New("prod", "ip-1")
	m.SetPeerUp("ip-2", true)
	for _, c := range peerLostCauses {
		if got := sample(t, m, "vigil_peer_lost_total", `peer="ip-2"`, `cause="`+c+`"`); got != 0 {
			t.Errorf("cause %s = %v", c, got)
		}
	}
	m.IncPeerLost("ip-2", "daemon_dead")
	if got := sample(t, m, "vigil_peer_lost_total", `peer="ip-2"`, `cause="daemon_dead"`); got != 1 {
		t.Errorf("daemon_dead = %v, want 1", got)
	}
}
