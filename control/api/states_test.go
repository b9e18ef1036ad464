package api_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-ha/vigil/control/api"
	"github.com/vigil-ha/vigil/metrics"
)

// TestMetricsKnowTheStates checks that metrics, which cannot import this
// package, one-hot encodes exactly the group and monitor states defined here:
// a state it did not know would add a series.
func TestMetricsKnowTheStates(t *testing.T) {
	m := metrics.New("c", "s")
	for _, st := range []string{api.StateOffline, api.StateStarting, api.StateOnline,
		api.StateStopping, api.StateOnlineFailure, api.StateOfflineFailure} {
		m.SetGroupState("g", st)
		m.SetResourceState("g", "r", st)
	}
	for _, st := range []string{api.MonitorOK, api.MonitorWarning, api.MonitorError,
		api.MonitorSuspended, api.MonitorInactive} {
		m.SetMonitorState("m", st)
	}
	for name, want := range map[string]int{
		"vigil_group_state":    6,
		"vigil_resource_state": 6,
		"vigil_monitor_state":  6, // the five above and "unknown"
	} {
		n, err := testutil.GatherAndCount(m.Registry(), name)
		if err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("%s has %d series, want %d", name, n, want)
		}
	}
}
