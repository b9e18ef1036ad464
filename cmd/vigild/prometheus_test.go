//go:build linux && !vmtest

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/netnstest"
)

// promServer is Debian's Prometheus server, run in a test's network
// namespace and queried over its HTTP API.
type promServer struct {
	t      *testing.T
	ns     *netnstest.NS
	addr   string
	client *http.Client
	cmd    *exec.Cmd
	log    *syncBuffer
}

// startPrometheus starts prometheus in ns, listening on 127.0.0.1 there,
// with config (prometheus.yml text), a fresh storage directory and its log
// kept for failures. It returns once the server is ready.
func startPrometheus(t *testing.T, ns *netnstest.NS, config string) *promServer {
	t.Helper()
	bin := requireTool(t, "prometheus")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &promServer{t: t, ns: ns, addr: "127.0.0.1:9090", log: &syncBuffer{}}
	p.cmd = exec.Command("ip", "netns", "exec", ns.Name(), bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr,
		"--log.level=warn",
	)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", p.log)
		}
	})
	// The API lives in the namespace: dial there, use the socket anywhere.
	p.client = &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := ns.Run(func() (err error) {
				var d net.Dialer
				conn, err = d.DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		}},
	}
	t.Cleanup(p.client.CloseIdleConnections)
	p.waitFor("prometheus ready", func() (bool, string) {
		resp, err := p.client.Get("http://" + p.addr + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return p
}

// waitFor polls cond, generously, until it holds; cond says what it saw.
func (p *promServer) waitFor(what string, cond func() (bool, string)) {
	p.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		if p.cmd.ProcessState != nil {
			p.t.Fatalf("prometheus exited: %v", p.cmd.ProcessState)
		}
		ok, saw := cond()
		if ok {
			return
		}
		last = saw
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("timed out waiting for %s; last saw: %s", what, last)
}

// apiGet calls the HTTP API at path with the query values and decodes its
// data into out.
func (p *promServer) apiGet(path string, q url.Values, out any) error {
	resp, err := p.client.Get("http://" + p.addr + path + "?" + q.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s: %s: %w", path, resp.Status, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s: %s", path, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

// promSample is one element of an instant vector.
type promSample struct {
	Metric map[string]string
	Value  float64
}

// query evaluates expr now and returns its instant vector.
func (p *promServer) query(expr string) ([]promSample, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := p.apiGet("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("%s: a %s, want a vector", expr, data.ResultType)
	}
	out := make([]promSample, 0, len(data.Result))
	for _, r := range data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: value %v: %w", expr, r.Value[1], err)
		}
		out = append(out, promSample{Metric: r.Metric, Value: v})
	}
	return out, nil
}

// waitValue waits until expr returns exactly one sample, equal to want.
func (p *promServer) waitValue(expr string, want float64) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("%s == %v", expr, want), func() (bool, string) {
		v, err := p.query(expr)
		if err != nil {
			return false, err.Error()
		}
		return len(v) == 1 && v[0].Value == want, fmt.Sprint(v)
	})
}

// TestPrometheusScrapesCluster runs Debian's Prometheus beside a live
// two-node cluster, in the namespace of its NP target, scraping both
// daemons every 200 ms with the example alert rules loaded. It sees the
// group online on node1 and the heartbeat RTTs, then a SIGKILL of node1:
// the failover in node2's series, node1's target down and the node-down
// alert. Every dashboard query runs without error.
func TestPrometheusScrapesCluster(t *testing.T) {
	requireTool(t, "prometheus")
	rules, err := filepath.Abs("../../examples/prometheus/vigil-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	c := newTestCluster(t)
	c.startBoth()
	c.onlineOn(0, 0, 1)
	p := startPrometheus(t, c.nat, `
global:
  scrape_interval: 200ms
  scrape_timeout: 200ms
  evaluation_interval: 200ms
rule_files: [`+rules+`]
scrape_configs:
  - job_name: vigil
    static_configs:
      - targets: ['198.18.0.1:9750', '198.18.0.2:9750']
`)

	p.waitValue(`count(up{job="vigil"} == 1)`, 2)
	// The group, as both nodes report it, and who runs it.
	p.waitValue(`count(vigil_group_state{group="failover1",state="online"} == 1)`, 2)
	p.waitValue(`sum(vigil_group_active{group="failover1",server="node1"})`, 1)
	p.waitValue(`sum(vigil_group_active{group="failover1",server="node2"})`, 0)
	p.waitValue(`vigil_failovers_total{group="failover1",server="node2"}`, 0)
	// Heartbeat RTTs, each way, and a quantile Prometheus computes from the
	// buckets.
	for _, way := range [][2]string{{"node1", "node2"}, {"node2", "node1"}} {
		sel := fmt.Sprintf(`{server=%q,peer=%q,lane="lan1"}`, way[0], way[1])
		p.waitFor("RTT samples "+sel, func() (bool, string) {
			v, err := p.query("vigil_lane_rtt_seconds_count" + sel)
			if err != nil {
				return false, err.Error()
			}
			return len(v) == 1 && v[0].Value > 0, fmt.Sprint(v)
		})
		p.waitFor("RTT p99 "+sel, func() (bool, string) {
			v, err := p.query("histogram_quantile(0.99, sum by (le) (rate(vigil_lane_rtt_seconds_bucket" + sel + "[5s])))")
			if err != nil {
				return false, err.Error()
			}
			return len(v) == 1 && v[0].Value > 0 && v[0].Value <= 1 && !math.IsNaN(v[0].Value), fmt.Sprint(v)
		})
	}
	// The alert rules loaded and evaluate without error.
	p.waitFor("alert rules evaluated", func() (bool, string) {
		var data struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := p.apiGet("/api/v1/rules", nil, &data); err != nil {
			return false, err.Error()
		}
		n := 0
		for _, g := range data.Groups {
			for _, r := range g.Rules {
				if r.Health == "err" {
					t.Fatalf("rule %s: %s", r.Name, r.LastError)
				}
				if r.Health != "ok" {
					return false, r.Name + " " + r.Health
				}
				n++
			}
		}
		return n > 10, fmt.Sprintf("%d rules", n)
	})
	checkDashboardQueries(t, p)

	c.kill(0)
	c.onlineOn(1, 1)
	// The failover, in what Prometheus scraped from node2.
	p.waitValue(`vigil_failovers_total{group="failover1",server="node2"}`, 1)
	p.waitValue(`increase(vigil_failovers_total{group="failover1",server="node2"}[1m]) > bool 0`, 1)
	p.waitValue(`vigil_failover_duration_seconds_count{group="failover1",server="node2"}`, 1)
	p.waitValue(`sum(vigil_group_active{group="failover1",server="node2"})`, 1)
	p.waitValue(`vigil_group_state{group="failover1",server="node2",state="online"}`, 1)
	p.waitValue(`vigil_peer_up{server="node2",peer="node1"}`, 0)
	p.waitValue(`sum(vigil_peer_lost_total{server="node2",peer="node1"})`, 1)
	p.waitValue(`up{instance="198.18.0.1:9750"}`, 0)
	// The node-down alert, pending (its for: has not passed) or firing.
	p.waitFor("VigilNodeDown for node1", func() (bool, string) {
		v, err := p.query(`ALERTS{alertname="VigilNodeDown",server="node2",peer="node1"}`)
		if err != nil {
			return false, err.Error()
		}
		return len(v) == 1, fmt.Sprint(v)
	})
}

// checkDashboardQueries runs every query of the example dashboard, its
// variables replaced, and fails on any error Prometheus reports.
func checkDashboardQueries(t *testing.T, p *promServer) {
	t.Helper()
	b, err := os.ReadFile("../../examples/grafana/vigil-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer("$__rate_interval", "5s", "$__range", "1m", "$cluster", ".+", "$server", ".+", "$disk", ".+")
	n := 0
	for _, panel := range d.Panels {
		for _, tg := range panel.Targets {
			if _, err := p.query(vars.Replace(tg.Expr)); err != nil {
				t.Errorf("dashboard panel %q: %v", panel.Title, err)
			}
			n++
		}
	}
	// The heartbeat and group panels have data.
	for _, expr := range []string{
		`vigil_service_state{cluster=~".+", server=~".+"} == 1`,
		`vigil_lane_up{cluster=~".+", server=~".+"}`,
		`sum by (monitor, result) (rate(vigil_monitor_checks_total{cluster=~".+", server=~".+"}[5s]))`,
	} {
		v, err := p.query(expr)
		if err != nil || len(v) == 0 {
			t.Errorf("%s: %v %v", expr, v, err)
		}
	}
	if n < 20 {
		t.Errorf("only %d dashboard queries", n)
	}
}
