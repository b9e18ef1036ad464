package resource

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/awsops"
	"github.com/vigil-ha/vigil/awsops/awsemu"
	"github.com/vigil-ha/vigil/awsops/awsemu/awsemutest"
	"github.com/vigil-ha/vigil/control/config"
	"github.com/vigil-ha/vigil/control/monitor"
	"github.com/vigil-ha/vigil/dataplane/vip"
)

// The guides' VIP topology, as examples/awsemu-world.yaml holds it.
const (
	instanceA = "i-0123456789abcde10" // ip-10-0-110-10, eni-12345678
	eniA      = "eni-12345678"
	eniB      = "eni-87654321"
	vpcID     = "vpc-1234abcd"
)

var theVIP = netip.MustParseAddr("10.1.0.20")

// awsWorld starts the emulator over the example world and returns it with
// an AWSEnv of server A that discovers what the configuration leaves out.
func awsWorld(t *testing.T) (*awsemutest.Emulator, *AWSEnv) {
	t.Helper()
	w, err := awsemu.LoadWorld("../../examples/awsemu-world.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w.ChangeDelay = 100 * time.Millisecond
	emu := awsemutest.Start(t, w)
	env := &AWSEnv{
		Settings: config.AWS{
			Endpoint:      emu.Endpoint,
			IMDSEndpoint:  emu.IMDS[instanceA],
			CallTimeoutMS: 2000,
			DNSResolver:   emu.DNSAddr,
		},
		Credentials: emu.Credentials,
	}
	return emu, env
}

// notes collects the timeline notes of one operation.
type notes struct {
	mu    sync.Mutex
	lines []string
}

func (n *notes) ctx(timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx := WithNotes(context.Background(), func(_ time.Time, what string) {
		n.mu.Lock()
		n.lines = append(n.lines, what)
		n.mu.Unlock()
	})
	return context.WithTimeout(ctx, timeout)
}

func (n *notes) count(substr string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, l := range n.lines {
		if strings.Contains(l, substr) {
			c++
		}
	}
	return c
}

// routeTargets returns each table's target for the VIP/32 route.
func routeTargets(emu *awsemutest.Emulator) map[string]string {
	out := map[string]string{}
	for _, rt := range emu.Server.Snapshot().RouteTables {
		for _, r := range rt.Routes {
			if r.Destination == "10.1.0.20/32" {
				out[rt.ID] = r.ENIID
			}
		}
	}
	return out
}

func newVIP(env *AWSEnv, ip netip.Addr) (*AWSVIP, *vip.Fake) {
	b := AWSVIPBinding(ip, "eth0")
	fake := vip.NewFake([]vip.Binding{b})
	return &AWSVIP{Name: "awsvip1", VIP: ip, Binding: b, Addrs: NewAddrSet(fake), AWS: env}, fake
}

func wantCode(t *testing.T, what string, err error, code int, msg string) {
	t.Helper()
	if got := awsops.CodeOf(err); got != code || err == nil || !strings.Contains(err.Error(), msg) {
		t.Fatalf("%s: error %v (code %d), want code %d with %q", what, err, got, code, msg)
	}
}

func wantResult(t *testing.T, what string, r monitor.Result, status monitor.Status, code int, msg string) {
	t.Helper()
	if r.Status != status || r.Code != code || !strings.Contains(r.Message, msg) {
		t.Fatalf("%s: result %+v, want %v code %d with %q", what, r, status, code, msg)
	}
}

// TestAWSVIPSwitchesEveryTable takes the VIP over from server B: the VPC,
// ENI and tables come from IMDSv2 and DescribeRouteTables, the three tables
// are switched at once, and each call lands in the timeline.
func TestAWSVIPSwitchesEveryTable(t *testing.T) {
	emu, env := awsWorld(t)
	emu.Server.Update(func(w *awsemu.World) error {
		for i := range w.RouteTables {
			for j := range w.RouteTables[i].Routes {
				if w.RouteTables[i].Routes[j].Destination == "10.1.0.20/32" {
					w.RouteTables[i].Routes[j].ENIID = eniB
				}
			}
		}
		return nil
	})
	v, fake := newVIP(env, theVIP)
	var n notes
	ctx, cancel := n.ctx(10 * time.Second)
	defer cancel()
	if err := v.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	targets := routeTargets(emu)
	if len(targets) != 3 {
		t.Fatalf("route targets %v, want 3 tables", targets)
	}
	for rt, eni := range targets {
		if eni != eniA {
			t.Errorf("%s targets %s, want %s", rt, eni, eniA)
		}
	}
	if !slices.Equal(fake.Bound(), []vip.Binding{v.Binding}) {
		t.Errorf("bound %v, want the VIP", fake.Bound())
	}
	if got := n.count("aws ec2 ReplaceRoute rtb-"); got != 3 {
		t.Errorf("%d ReplaceRoute notes, want 3: %q", got, n.lines)
	}
	if r := v.Check(context.Background()); r.Status != monitor.OK {
		t.Fatalf("check after start: %+v", r)
	}

	// Someone points a route elsewhere: the monitor says code 8, and a
	// restart (the recovery) puts it back.
	emu.Server.Update(func(w *awsemu.World) error {
		w.RouteTables[1].Routes[2].ENIID = eniB
		return nil
	})
	wantResult(t, "route changed", v.Check(context.Background()), monitor.Error, awsops.CodeRoutingChanged, "The routing for VIP 10.1.0.20 was changed.")
	if err := v.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	wantResult(t, "stopped", v.Check(context.Background()), monitor.Error, awsops.CodeRoutingChanged, "is not bound on eth0")
	if err := v.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if r := v.Check(context.Background()); r.Status != monitor.OK {
		t.Fatalf("check after the restart: %+v", r)
	}
}

func TestAWSVIPInsideTheVPC(t *testing.T) {
	_, env := awsWorld(t)
	v, fake := newVIP(env, netip.MustParseAddr("10.0.0.5"))
	err := v.Start(context.Background())
	wantCode(t, "VIP in the VPC", err, awsops.CodeVIPInVPC, "The VIP address 10.0.0.5 belongs to a VPC subnet.")
	if len(fake.Bound()) != 0 {
		t.Fatalf("a refused start left %v bound", fake.Bound())
	}
}

func TestAWSVIPUnknownIDs(t *testing.T) {
	_, env := awsWorld(t)
	v, _ := newVIP(env, theVIP)
	v.VPCID = "vpc-0000dead"
	wantCode(t, "unknown VPC", v.Start(context.Background()), awsops.CodeAWSFailed, "The vpc ID 'vpc-0000dead' does not exist")

	v, fake := newVIP(env, theVIP)
	v.ENIID = "eni-0000dead"
	v.Tables = []string{"rtb-0a1b0000"}
	wantCode(t, "unknown ENI", v.Start(context.Background()), awsops.CodeAWSFailed, "eni-0000dead")
	if len(fake.Bound()) != 0 {
		t.Fatalf("a failed start left %v bound", fake.Bound())
	}
}

// TestAWSVIPDeadlineNamesTheTable lets one table's ReplaceRoute hang past
// the start timeout: the error is a timeout naming that table.
func TestAWSVIPDeadlineNamesTheTable(t *testing.T) {
	emu, env := awsWorld(t)
	v, fake := newVIP(env, theVIP)
	v.Tables = []string{"rtb-0a1b0000", "rtb-0a2a0000"}
	emu.Server.SetFault("ReplaceRoute", awsemu.Fault{ErrorCode: "RequestLimitExceeded", Message: "Request limit exceeded.", HTTPStatus: 503})
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	err := v.Start(ctx)
	wantCode(t, "throttled until the deadline", err, awsops.CodeTimeout, "rtb-0a1b0000")
	if !strings.Contains(err.Error(), "rtb-0a2a0000") {
		t.Errorf("error %q does not name rtb-0a2a0000", err)
	}
	if len(fake.Bound()) != 0 {
		t.Fatalf("a failed start left %v bound", fake.Bound())
	}
}

func TestAWSEIP(t *testing.T) {
	emu, env := awsWorld(t)
	e := &AWSEIP{Name: "awseip1", AllocationID: "eipalloc-01234567", AWS: env}
	wantResult(t, "before start", e.Check(context.Background()), monitor.Error, awsops.CodeEIPNotAssociated,
		"The EIP address does not exist. (EIP ALLOCATION ID=eipalloc-01234567)")
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := e.Check(context.Background()); r.Status != monitor.OK {
		t.Fatalf("check after start: %+v", r)
	}
	// The other server takes it: our stop must leave its association.
	other := &AWSEIP{Name: "awseip1", AllocationID: "eipalloc-01234567", ENIID: eniB, AWS: env}
	if err := other.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a := emu.Server.Snapshot().Addresses[0]; a.ENIID != eniB {
		t.Fatalf("after our stop the EIP is on %q, want %s", a.ENIID, eniB)
	}
	bad := &AWSEIP{Name: "awseip1", AllocationID: "eipalloc-0000dead", AWS: env}
	wantCode(t, "unknown allocation", bad.Start(context.Background()), awsops.CodeAWSFailed, "The allocation ID 'eipalloc-0000dead' does not exist")
}

func TestAWSDNS(t *testing.T) {
	_, env := awsWorld(t)
	d := &AWSDNS{Name: "awsdns1", ZoneID: "ABCDEFGHIJK123", RecordName: "db.hz1.local.", TTL: 30,
		DeleteOnStop: true, WaitInSync: true, CheckResolution: true, AWS: env}
	wantResult(t, "before start", d.Check(context.Background()), monitor.Error, awsops.CodeRecordMissing, "db.hz1.local.")
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The address came from IMDSv2; the change was INSYNC when Start
	// returned, so the emulator's DNS answers it.
	if r := d.Check(context.Background()); r.Status != monitor.OK {
		t.Fatalf("check after start: %+v", r)
	}
	other := &AWSDNS{Name: "awsdns1", ZoneID: "ABCDEFGHIJK123", RecordName: "db.hz1.local.", IP: "10.0.120.10", TTL: 30, WaitInSync: true, AWS: env}
	if err := other.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantResult(t, "record moved", d.Check(context.Background()), monitor.Error, awsops.CodeRecordOtherIP, "")
	if err := other.Stop(context.Background()); err != nil { // DeleteOnStop false: stays
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantResult(t, "deleted on stop", d.Check(context.Background()), monitor.Error, awsops.CodeRecordMissing, "")

	// A record the name server does not know: resolution fails (9).
	nx := &AWSDNS{Name: "x", ZoneID: "ABCDEFGHIJK123", RecordName: "nx.hz1.local.", TTL: 30, CheckResolution: true, AWS: env}
	if err := nx.Start(context.Background()); err != nil { // no wait: still PENDING
		t.Fatal(err)
	}
	if r := nx.Check(context.Background()); r.Status == monitor.Error && r.Code != awsops.CodeResolveFailed {
		t.Fatalf("pending record: %+v, want OK or code 9", r)
	}
	bad := &AWSDNS{Name: "x", ZoneID: "NOSUCHZONE", RecordName: "a.hz1.local.", IP: "10.0.0.1", TTL: 30, AWS: env}
	wantCode(t, "unknown zone", bad.Start(context.Background()), awsops.CodeAWSFailed, "No hosted zone found with ID: NOSUCHZONE")
}

func TestAWSAZMonitor(t *testing.T) {
	emu, env := awsWorld(t)
	state := func(ctx context.Context, az string) (string, error) {
		c, err := env.Client(ctx)
		if err != nil {
			return "", err
		}
		return c.AZState(ctx, az)
	}
	ctx := context.Background()
	if r := monitor.NewAWSAZ("ap-northeast-1a", config.OnAPIFailureWarning, state).Check(ctx); r.Status != monitor.OK {
		t.Fatalf("available zone: %+v", r)
	}
	emu.Server.Update(func(w *awsemu.World) error {
		w.AvailabilityZones[0].State = "impaired"
		return nil
	})
	wantResult(t, "impaired", monitor.NewAWSAZ("ap-northeast-1a", config.OnAPIFailureWarning, state).Check(ctx),
		monitor.Error, monitor.CodeFailed, "The availability zone ap-northeast-1a is impaired.")
	wantResult(t, "unknown zone, warning", monitor.NewAWSAZ("ap-northeast-1x", config.OnAPIFailureWarning, state).Check(ctx),
		monitor.Warning, 105, "Invalid availability zone: [ap-northeast-1x]")
	wantResult(t, "unknown zone, error", monitor.NewAWSAZ("ap-northeast-1x", config.OnAPIFailureError, state).Check(ctx),
		monitor.Error, 5, "Invalid availability zone: [ap-northeast-1x]")
	if r := monitor.NewAWSAZ("ap-northeast-1x", config.OnAPIFailureNone, state).Check(ctx); r.Status != monitor.OK {
		t.Fatalf("unknown zone, none: %+v", r)
	}
}

// TestAutomaticMonitorsCheckTheirResource builds the monitors a
// configuration gets with its aws_* resources through the factory.
func TestAutomaticMonitorsCheckTheirResource(t *testing.T) {
	_, env := awsWorld(t)
	cfg, err := config.Parse("c.yaml", []byte(`
cluster: {name: c, key_file: k}
servers:
  - {name: a, interconnects: {lan1: 198.18.0.1}}
  - {name: b, interconnects: {lan1: 198.18.0.2}}
lanes: [{name: lan1}]
groups:
  - name: g
    resources:
      - {name: awseip1, type: aws_eip, allocation_id: eipalloc-01234567}
      - {name: awsdns1, type: aws_dns, hosted_zone_id: ABCDEFGHIJK123, record_name: srv.hz1.local., check_resolution: false}
`))
	if err != nil {
		t.Fatal(err)
	}
	f := &Factory{AWS: env, Addrs: NewAddrSet(vip.NewFake(nil))}
	for _, tt := range []struct {
		monitor string
		code    int
	}{{"awseip1-mon", awsops.CodeEIPNotAssociated}, {"awsdns1-mon", 0}} {
		m := cfg.Monitor(tt.monitor)
		if m == nil {
			t.Fatalf("no monitor %s", tt.monitor)
		}
		ch, err := f.Checker(cfg, m, "a")
		if err != nil {
			t.Fatal(err)
		}
		if r := ch.Check(context.Background()); r.Code != tt.code {
			t.Errorf("%s: %+v, want code %d", tt.monitor, r, tt.code)
		}
	}
}

// TestAWSVIPPreparedStartIsOneRound: after Prepare, a start makes only the
// ReplaceRoute calls, one per table.
func TestAWSVIPPreparedStartIsOneRound(t *testing.T) {
	emu, env := awsWorld(t)
	v, _ := newVIP(env, theVIP)
	v.Prepare(context.Background())
	before := len(emu.Server.Calls())
	if err := v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, c := range emu.Server.Calls()[before:] {
		actions = append(actions, c.Action)
	}
	if want := []string{"ReplaceRoute", "ReplaceRoute", "ReplaceRoute"}; !slices.Equal(actions, want) {
		t.Fatalf("prepared start called %v, want %v", actions, want)
	}
}
