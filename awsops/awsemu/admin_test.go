package awsemu_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/vigil-ha/vigil/awsops/awsemu"
)

// admin sends an unsigned admin request and returns the status and body.
func admin(t *testing.T, base, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	mustOK(t, err)
	resp, err := http.DefaultClient.Do(req)
	mustOK(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	mustOK(t, err)
	return resp.StatusCode, string(b)
}

func TestAdminFaultsAreSetAndClearedOverHTTP(t *testing.T) {
	e := start(t)
	c := ec2Client(e, noRetry)
	status, body := admin(t, e.Endpoint, http.MethodPost, "/_emu/faults", `{"action":"ReplaceRoute","error_code":"RequestLimitExceeded","count":1}`)
	if status != http.StatusOK {
		t.Fatalf("POST /_emu/faults: %d %s", status, body)
	}
	wantAPIError(t, replaceVIP(t, c, "eni-87654321"), "RequestLimitExceeded", "Request limit exceeded.")
	mustOK(t, replaceVIP(t, c, "eni-87654321"))

	admin(t, e.Endpoint, http.MethodPost, "/_emu/faults", `{"action":"*","error_code":"InternalError"}`)
	admin(t, e.Endpoint, http.MethodPost, "/_emu/faults", `{"action":"DescribeVpcs","latency_ms":5}`)
	_, body = admin(t, e.Endpoint, http.MethodGet, "/_emu/faults", "")
	var listed []map[string]any
	if err := json.Unmarshal([]byte(body), &listed); err != nil || len(listed) != 2 ||
		listed[0]["action"] != "*" || listed[0]["http_status"] != 500.0 || listed[1]["latency_ms"] != 5.0 {
		t.Errorf("GET /_emu/faults = %s", body)
	}
	if status, _ := admin(t, e.Endpoint, http.MethodDelete, "/_emu/faults", ""); status != http.StatusOK {
		t.Fatalf("DELETE /_emu/faults: %d", status)
	}
	mustOK(t, replaceVIP(t, c, "eni-12345678"))
}

func TestAdminRouteFlipsTheVIPRouteToAnotherENI(t *testing.T) {
	e := start(t)
	status, body := admin(t, e.Endpoint, http.MethodPost, "/_emu/route", `{"route_table_id":"rtb-2","destination":"10.1.0.20/32","eni_id":"eni-87654321"}`)
	if status != http.StatusOK {
		t.Fatalf("POST /_emu/route: %d %s", status, body)
	}
	out, err := ec2Client(e).DescribeRouteTables(ctxT(t), &ec2.DescribeRouteTablesInput{RouteTableIds: []string{"rtb-2"}})
	mustOK(t, err)
	if got := *out.RouteTables[0].Routes[2].NetworkInterfaceId; got != "eni-87654321" {
		t.Errorf("VIP route targets %s", got)
	}
}

func TestAdminStateIsTheWorldAsJSON(t *testing.T) {
	e := start(t)
	status, body := admin(t, e.Endpoint, http.MethodGet, "/_emu/state", "")
	var w awsemu.World
	if status != http.StatusOK || json.Unmarshal([]byte(body), &w) != nil {
		t.Fatalf("GET /_emu/state: %d %s", status, body)
	}
	if w.Region != "ap-northeast-1" || len(w.RouteTables) != 4 || w.NetworkInterfaces[2].InstanceID != "i-server2" {
		t.Errorf("state = %+v", w)
	}
}

func TestAdminAZAndThrottleEndpoints(t *testing.T) {
	e := start(t)
	if status, body := admin(t, e.Endpoint, http.MethodPost, "/_emu/az", `{"name":"ap-northeast-1a","state":"impaired"}`); status != http.StatusOK {
		t.Fatalf("POST /_emu/az: %d %s", status, body)
	}
	if got := e.Server.Snapshot().AvailabilityZones[0].State; got != "impaired" {
		t.Errorf("zone state = %s", got)
	}
	if status, body := admin(t, e.Endpoint, http.MethodPost, "/_emu/throttle", `{"on":true}`); status != http.StatusOK {
		t.Fatalf("POST /_emu/throttle: %d %s", status, body)
	}
}

func TestAdminRefusesBadRequestsWithoutChangingTheWorld(t *testing.T) {
	e := start(t)
	tests := []struct {
		method, path, body string
		status             int
	}{
		{http.MethodPost, "/_emu/route", `{"route_table_id":"rtb-gone","destination":"10.1.0.20/32","eni_id":"eni-87654321"}`, 400},
		{http.MethodPost, "/_emu/route", `{"route_table_id":"rtb-1","destination":"10.1.0.20/32","eni_id":"eni-other"}`, 400},
		{http.MethodPost, "/_emu/route", `{"route_table_id":"rtb-1","destination":"nonsense","eni_id":"eni-87654321"}`, 400},
		{http.MethodPost, "/_emu/az", `{"name":"ap-northeast-1a","state":"on fire"}`, 400},
		{http.MethodPost, "/_emu/faults", `{"action":"ReplaceRoute","colour":"blue"}`, 400},
		{http.MethodPost, "/_emu/faults", `{"latency_ms":10}`, 400},
		{http.MethodPost, "/_emu/faults", `not json`, 400},
		{http.MethodGet, "/_emu/nothing", ``, 404},
	}
	for _, tt := range tests {
		status, body := admin(t, e.Endpoint, tt.method, tt.path, tt.body)
		if status != tt.status || !strings.Contains(body, `"error"`) {
			t.Errorf("%s %s %s: %d %s, want %d and an error", tt.method, tt.path, tt.body, status, body, tt.status)
		}
	}
	if got := vipTarget(t, e.Server, "rtb-1"); got != "eni-12345678" {
		t.Errorf("route changed to %q", got)
	}
	if len(e.Server.Faults()) != 0 {
		t.Errorf("faults = %v", e.Server.Faults())
	}
}
