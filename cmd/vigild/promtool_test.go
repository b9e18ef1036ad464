//go:build linux && !vmtest

package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// liveFamilies are the families a live daemon of the test cluster exposes
// once it has run a move: it has no AWS resource and no mirror disk.
var liveFamilies = []string{
	"vigil_service_state", "vigil_config_info", "vigil_heartbeat_mode", "vigil_heartbeat_fallback",
	"vigil_peer_up", "vigil_peer_stalled", "vigil_peer_lost_total", "vigil_lane_up", "vigil_lane_rtt_seconds",
	"vigil_lane_misses_total", "vigil_group_state", "vigil_group_active", "vigil_resource_state",
	"vigil_failovers_total", "vigil_failover_duration_seconds", "vigil_monitor_state", "vigil_monitor_code",
	"vigil_monitor_checks_total", "vigil_monitor_check_duration_seconds", "vigil_monitor_recovery_total",
	"vigil_vip_packets_total", "vigil_vip_bytes_total", "vigil_vip_first_packet_after_seconds",
	"go_goroutines", "process_cpu_seconds_total",
}

// TestLiveMetricsPassPromtool lints what live daemons serve on /metrics,
// after a move, with promtool check metrics.
func TestLiveMetricsPassPromtool(t *testing.T) {
	promtool := requireTool(t, "promtool")
	c := newTestCluster(t)
	c.startBoth()
	c.onlineOn(0, 0, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.client(0).GroupMove(ctx, "failover1", "node2"); err != nil {
		t.Fatalf("move: %v", err)
	}
	c.onlineOn(1, 0, 1)
	// The move is over on both nodes; the monitor ran on node2 and the VIP
	// saw its first packet there once something sends to it.
	c.nat.Do(t, func() error { return exec.Command("ping", "-c", "3", "-i", "0.2", "-W", "1", "198.18.0.100").Run() })
	c.eventually("node2's metrics complete", func() bool {
		text := c.scrape(1)
		for _, f := range liveFamilies {
			if !strings.Contains(text, "\n# TYPE "+f+" ") {
				return false
			}
		}
		return metric(text, "vigil_failovers_total", `group="failover1"`) == 1 &&
			metric(text, "vigil_monitor_checks_total", `result="ok"`) > 0
	})
	for i, name := range c.names {
		text := c.scrape(i)
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		out, err := cmd.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("promtool check metrics on %s's /metrics: %v\n%s", name, err, out)
		}
		if !strings.Contains(text, "# HELP vigil_") {
			t.Errorf("%s serves no vigil_* family:\n%s", name, text)
		}
	}
}
