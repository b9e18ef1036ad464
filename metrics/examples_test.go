package metrics

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// The examples this package's families must keep working with.
const (
	promDir   = "../examples/prometheus"
	rulesFile = "vigil-alerts.yml"
	dashboard = "../examples/grafana/vigil-dashboard.json"
)

// promtool runs promtool with args in dir and fails the test on an error,
// showing its output.
func promtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(requireTool(t, "promtool"), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestAlertRulesCheck(t *testing.T) {
	out := promtool(t, promDir, "check", "rules", rulesFile)
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool check rules:\n%s", out)
	}
}

func TestAlertRulesUnitTests(t *testing.T) {
	promtool(t, promDir, "test", "rules", "vigil-alerts_test.yml")
}

func TestPrometheusExampleConfig(t *testing.T) {
	promtool(t, promDir, "check", "config", "prometheus.yml")
}

// TestAlertRulesNameTheAlerts checks that the rules cover what an operator
// must hear of.
func TestAlertRulesNameTheAlerts(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(promDir, rulesFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, alert := range []string{
		"VigilDaemonDown", "VigilNodeDown", "VigilGroupFailure", "VigilMirrorNotConnected",
		"VigilMirrorNotInSync", "VigilMirrorLagHigh", "VigilMirrorSplitBrain", "VigilAWSAPIErrors",
		"VigilAWSThrottled", "VigilHeartbeatUserspaceFallback",
	} {
		if !strings.Contains(string(b), "alert: "+alert+"\n") {
			t.Errorf("no alert %s", alert)
		}
	}
}

var metricName = regexp.MustCompile(`\bvigil_[a-z0-9_]+\b`)

// checkNames fails the test for every vigil_* name in text that is not a
// family, or a histogram's _bucket, _sum or _count series, and returns the
// families it names.
func checkNames(t *testing.T, where, text string, have map[string]*dto.MetricFamily) map[string]bool {
	t.Helper()
	used := map[string]bool{}
	for _, name := range metricName.FindAllString(text, -1) {
		family := name
		if have[name] == nil {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				base := strings.TrimSuffix(name, suffix)
				if base != name && have[base] != nil && have[base].GetType() == dto.MetricType_HISTOGRAM {
					family = base
				}
			}
		}
		if have[family] == nil {
			t.Errorf("%s: %s is not a metric vigild exposes", where, name)
			continue
		}
		used[family] = true
	}
	return used
}

func TestAlertRulesUseRealMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(promDir, rulesFile))
	if err != nil {
		t.Fatal(err)
	}
	checkNames(t, rulesFile, string(b), families(t))
}

// grafanaDashboard is the part of a dashboard's JSON the tests read.
type grafanaDashboard struct {
	UID         string         `json:"uid"`
	Title       string         `json:"title"`
	Panels      []grafanaPanel `json:"panels"`
	Annotations struct {
		List []struct {
			Expr string `json:"expr"`
		} `json:"list"`
	} `json:"annotations"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

func readDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	b, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboard, err)
	}
	return d
}

// grafanaVars replaces Grafana's variables by what they stand for in a
// plain PromQL query.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m", "$__range", "1h", "$cluster", ".+", "$server", ".+", "$disk", ".+",
)

func TestDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q", d.UID, d.Title)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	for _, v := range []string{"datasource", "cluster", "server", "disk"} {
		if !vars[v] {
			t.Errorf("no variable %s", v)
		}
	}
	ids := map[int]bool{}
	var exprs []string
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: grid position %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the datasource variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
			q, err := json.Marshal(grafanaVars.Replace(tg.Expr))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&rules, "      - record: dashboard:panel_%d:%s\n        expr: %s\n", p.ID, tg.RefID, q)
		}
	}
	for _, a := range d.Annotations.List {
		exprs = append(exprs, a.Expr)
	}
	for _, v := range d.Templating.List {
		exprs = append(exprs, v.Definition)
	}
	used := checkNames(t, dashboard, strings.Join(exprs, "\n"), families(t))

	// Every family has a panel, but those only alerts or status need.
	for name := range families(t) {
		if strings.HasPrefix(name, "vigil_") && !used[name] && !slices.Contains([]string{
			"vigil_config_info", "vigil_heartbeat_fallback", "vigil_aws_call_attempts_total", "vigil_mirror_size_bytes",
		}, name) {
			t.Errorf("no panel shows %s", name)
		}
	}

	// promtool parses every query, as recording rules.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard-rules.yml"), []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, dir, "check", "rules", "dashboard-rules.yml")
}
