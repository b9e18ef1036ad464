package awsops_test

import (
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/awsops"
	"github.com/vigil-ha/vigil/awsops/awsemu"
)

const vipDest = "10.1.0.20/32"

func TestCheckVIPOutsideVPC(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	if err := e.client.CheckVIPOutsideVPC(ctx, vpcID, vip); err != nil {
		t.Fatalf("VIP outside the VPC: %v", err)
	}
	// The guide's code 7, for the primary and for an additional CIDR block.
	for _, in := range []string{"10.0.0.5", "10.2.3.4"} {
		err := e.client.CheckVIPOutsideVPC(ctx, vpcID, netip.MustParseAddr(in))
		wantErr(t, err, awsops.CodeVIPInVPC, "The VIP address "+in+" belongs to a VPC subnet.", vpcID)
	}
	// The guide's code 5 with AWS's message.
	err := e.client.CheckVIPOutsideVPC(ctx, "vpc-nothere", vip)
	ae := wantErr(t, err, awsops.CodeAWSFailed, "The vpc ID 'vpc-nothere' does not exist", "vpc-nothere")
	if ae.AWSCode != "InvalidVpcID.NotFound" {
		t.Fatalf("AWSCode = %q", ae.AWSCode)
	}
	if n := len(e.emuCalls("DescribeVpcs")); n != 3+1 {
		t.Fatalf("%d DescribeVpcs calls, want 4: a NotFound is not retried", n)
	}
}

func TestVIPRouteTables(t *testing.T) {
	e := newEnv(t)
	got, err := e.client.VIPRouteTables(testCtx(t), vpcID, vip)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"rtb-1", "rtb-2", "rtb-3"}; !slices.Equal(got, want) {
		t.Fatalf("tables = %v, want %v", got, want)
	}
	got, err = e.client.VIPRouteTables(testCtx(t), "vpc-other000", vip)
	if err != nil || len(got) != 0 {
		t.Fatalf("other VPC: %v, %v", got, err)
	}
}

// TestPointVIPRoutesParallel is a failover: three route tables switched to
// server 2, in parallel. The client's transport lets the ReplaceRoute calls
// through only once all three are in flight, and the emulator holds each
// one, so their records overlap.
func TestPointVIPRoutesParallel(t *testing.T) {
	b := newBarrier("ReplaceRoute", 3)
	e := newEnv(t, withHTTPClient(t, &http.Client{Transport: b}))
	e.emu.Server.SetFault("ReplaceRoute", awsemu.Fault{Latency: 200 * time.Millisecond})
	tables := []string{"rtb-3", "rtb-1", "rtb-2"}
	if err := e.client.PointVIPRoutes(testCtx(t), vip, "eni-server2", tables); err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if got := e.routeTarget(t, tb, vipDest); got != "eni-server2" {
			t.Errorf("%s targets %q", tb, got)
		}
	}
	recs := e.emuCalls("ReplaceRoute")
	if len(recs) != 3 {
		t.Fatalf("%d ReplaceRoute calls, want 3 (one per table, no Describe first)", len(recs))
	}
	if n := len(e.emu.Server.Calls()); n != 3 {
		t.Fatalf("%d calls in all, want the 3 ReplaceRoute", n)
	}
	var lastStart, firstEnd time.Time
	for i, r := range recs {
		if i == 0 || r.Start.After(lastStart) {
			lastStart = r.Start
		}
		if i == 0 || r.End.Before(firstEnd) {
			firstEnd = r.End
		}
	}
	if !lastStart.Before(firstEnd) {
		t.Fatalf("the ReplaceRoute calls did not overlap: the last began at %v, the first ended at %v", lastStart, firstEnd)
	}
	obs := e.observed("ReplaceRoute")
	if len(obs) != 3 {
		t.Fatalf("observed %d ReplaceRoute calls, want 3", len(obs))
	}
	var targets []string
	for _, c := range obs {
		if c.Service != "ec2" || c.Attempts != 1 || c.Err != nil || c.Start.IsZero() || c.Latency <= 0 {
			t.Errorf("observed %+v", c)
		}
		targets = append(targets, c.Target)
	}
	slices.Sort(targets)
	if !slices.Equal(targets, []string{"rtb-1", "rtb-2", "rtb-3"}) {
		t.Fatalf("observed targets %v", targets)
	}
}

func TestPointVIPRoutesCreatesMissingRoute(t *testing.T) {
	e := newEnv(t)
	if err := e.client.PointVIPRoutes(testCtx(t), vip, "eni-server2", []string{"rtb-1", "rtb-4"}); err != nil {
		t.Fatal(err)
	}
	for _, tb := range []string{"rtb-1", "rtb-4"} {
		if got := e.routeTarget(t, tb, vipDest); got != "eni-server2" {
			t.Errorf("%s targets %q", tb, got)
		}
	}
	if c := e.emuCalls("CreateRoute"); len(c) != 1 || c[0].Target != "rtb-4" {
		t.Fatalf("CreateRoute calls %+v, want one on rtb-4", c)
	}
}

func TestPointVIPRoutesThrottled(t *testing.T) {
	e := newEnv(t)
	e.emu.Server.SetFault("ReplaceRoute", awsemu.Fault{ErrorCode: "RequestLimitExceeded", HTTPStatus: 503, Count: 3})
	tables := []string{"rtb-1", "rtb-2", "rtb-3"}
	if err := e.client.PointVIPRoutes(testCtx(t), vip, "eni-server2", tables); err != nil {
		t.Fatalf("throttling was not recovered: %v", err)
	}
	for _, tb := range tables {
		if got := e.routeTarget(t, tb, vipDest); got != "eni-server2" {
			t.Errorf("%s targets %q", tb, got)
		}
	}
	attempts, throttles := 0, 0
	for _, c := range e.observed("ReplaceRoute") {
		attempts += c.Attempts
		throttles += c.Throttles
	}
	throttled := 0
	for _, r := range e.emuCalls("ReplaceRoute") {
		if r.ErrorCode == "RequestLimitExceeded" {
			throttled++
		}
	}
	if throttled != 3 || throttles != 3 || attempts != 6 || len(e.emuCalls("ReplaceRoute")) != 6 {
		t.Fatalf("throttled %d, throttles observed %d, attempts observed %d, calls %d; want 3, 3, 6, 6",
			throttled, throttles, attempts, len(e.emuCalls("ReplaceRoute")))
	}
}

func TestPointVIPRoutesBucketThrottling(t *testing.T) {
	e := newEnv(t)
	// The emulator's clock stands still, so the bucket of 50 empties; each
	// time a call is throttled a watcher moves the clock one second (five
	// tokens): the buckets refill with the calls made, not with the
	// seconds passed.
	clock := newFakeClock()
	e.emu.Server.SetClock(clock.Now)
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		seen := 0
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			n := 0
			for _, r := range e.emuCalls("ReplaceRoute") {
				if r.ErrorCode == "RequestLimitExceeded" {
					n++
				}
			}
			for ; seen < n; seen++ {
				clock.Add(time.Second)
			}
		}
	}()
	defer func() {
		close(stop)
		<-watched
	}()
	e.emu.Server.SetThrottling(true)
	// Far more mutating calls than the bucket holds: some are throttled,
	// all end switched within the deadline.
	ctx := testCtx(t)
	for i := range 25 {
		eni := "eni-server1"
		if i%2 == 0 {
			eni = "eni-server2"
		}
		if err := e.client.PointVIPRoutes(ctx, vip, eni, []string{"rtb-1", "rtb-2", "rtb-3"}); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	if got := e.routeTarget(t, "rtb-2", vipDest); got != "eni-server2" {
		t.Fatalf("rtb-2 targets %q after the last round", got)
	}
	throttled := 0
	for _, r := range e.emuCalls("ReplaceRoute") {
		if r.ErrorCode == "RequestLimitExceeded" {
			throttled++
		}
	}
	if throttled == 0 {
		t.Fatal("no call was throttled: the test proves nothing")
	}
}

func TestPointVIPRoutesCallTimeoutThenSuccess(t *testing.T) {
	e := newEnv(t, withCallTimeout(100*time.Millisecond))
	// The first ReplaceRoute hangs far beyond the call timeout; the retry
	// succeeds.
	e.emu.Server.SetFault("ReplaceRoute", awsemu.Fault{Latency: time.Minute, Count: 1})
	if err := e.client.PointVIPRoutes(testCtx(t), vip, "eni-server2", []string{"rtb-1"}); err != nil {
		t.Fatal(err)
	}
	obs := e.observed("ReplaceRoute")
	if len(obs) != 1 || obs[0].Attempts != 2 || obs[0].Err != nil {
		t.Fatalf("observed %+v, want one call of 2 attempts", obs)
	}
	if got := e.routeTarget(t, "rtb-1", vipDest); got != "eni-server2" {
		t.Fatalf("rtb-1 targets %q", got)
	}
}

// TestPointVIPRoutesDeadline: two of three ReplaceRoute calls hang, the
// third succeeds, then the deadline passes. The error names exactly the
// two tables left on the old ENI.
func TestPointVIPRoutesDeadline(t *testing.T) {
	ctx := newExpiringCtx()
	// The call that succeeds arrived after the two hanging ones took the
	// fault, so once it is observed the deadline may pass.
	e := newEnv(t, withCallTimeout(time.Minute), withObserver(func(c awsops.Call) {
		if c.Action == "ReplaceRoute" && c.Err == nil {
			ctx.expire()
		}
	}))
	e.emu.Server.SetFault("ReplaceRoute", awsemu.Fault{Latency: time.Hour, Count: 2})
	err := e.client.PointVIPRoutes(ctx, vip, "eni-server2", []string{"rtb-1", "rtb-2", "rtb-3"})
	var stale []string
	for _, tb := range []string{"rtb-1", "rtb-2", "rtb-3"} {
		if e.routeTarget(t, tb, vipDest) != "eni-server2" {
			stale = append(stale, tb)
		}
	}
	if len(stale) != 2 {
		t.Fatalf("unswitched tables %v, want 2 (err %v)", stale, err)
	}
	ae := wantErr(t, err, awsops.CodeTimeout,
		"Timeout occurred. (route tables not switched: "+strings.Join(stale, ", ")+")", strings.Join(stale, ","))
	if ae.Op != "switch routes" {
		t.Fatalf("Op = %q", ae.Op)
	}
	for _, c := range e.observed("ReplaceRoute") {
		if c.Err != nil && awsops.CodeOf(c.Err) != awsops.CodeTimeout {
			t.Fatalf("observed %+v", c)
		}
	}
}

func TestPointVIPRoutesNotFound(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	err := e.client.PointVIPRoutes(ctx, vip, "eni-nothere", []string{"rtb-1"})
	ae := wantErr(t, err, awsops.CodeAWSFailed,
		"The networkInterface ID 'eni-nothere' does not exist (route tables not switched: rtb-1)", "rtb-1")
	if ae.AWSCode != "InvalidNetworkInterfaceID.NotFound" {
		t.Fatalf("AWSCode = %q", ae.AWSCode)
	}
	err = e.client.PointVIPRoutes(ctx, vip, "eni-server2", []string{"rtb-1", "rtb-nothere"})
	wantErr(t, err, awsops.CodeAWSFailed,
		"The routeTable ID 'rtb-nothere' does not exist (route tables not switched: rtb-nothere)", "rtb-nothere")
	if got := e.routeTarget(t, "rtb-1", vipDest); got != "eni-server2" {
		t.Fatalf("rtb-1 was not switched beside the missing table: %q", got)
	}
	if err := e.client.PointVIPRoutes(ctx, netip.MustParseAddr("fd00::1"), "eni-server2", []string{"rtb-1"}); awsops.CodeOf(err) != awsops.CodeInternal {
		t.Fatalf("IPv6 VIP: %v", err)
	}
}

func TestCheckVIPRoutes(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	if err := e.client.CheckVIPRoutes(ctx, vpcID, vip, "eni-server1", nil); err != nil {
		t.Fatalf("discovered tables: %v", err)
	}
	if err := e.client.CheckVIPRoutes(ctx, vpcID, vip, "eni-server1", []string{"rtb-1", "rtb-3"}); err != nil {
		t.Fatalf("listed tables: %v", err)
	}
	// Another cluster took rtb-2's route.
	err := e.emu.Server.Update(func(w *awsemu.World) error {
		for i := range w.RouteTables {
			if w.RouteTables[i].ID == "rtb-2" {
				for j := range w.RouteTables[i].Routes {
					if w.RouteTables[i].Routes[j].Destination == vipDest {
						w.RouteTables[i].Routes[j].ENIID = "eni-server2"
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	msg := "The routing for VIP 10.1.0.20 was changed."
	err = e.client.CheckVIPRoutes(ctx, vpcID, vip, "eni-server1", nil)
	ae := wantErr(t, err, awsops.CodeRoutingChanged, msg, "rtb-2")
	if !strings.Contains(errors.Unwrap(ae).Error(), "eni-server2") {
		t.Fatalf("detail %q does not name the other ENI", errors.Unwrap(ae))
	}
	// A listed table without the route has changed too.
	err = e.client.CheckVIPRoutes(ctx, vpcID, vip, "eni-server1", []string{"rtb-1", "rtb-2", "rtb-4"})
	wantErr(t, err, awsops.CodeRoutingChanged, msg, "rtb-2,rtb-4")
	// So has a VPC where no table routes the VIP.
	err = e.client.CheckVIPRoutes(ctx, "vpc-other000", vip, "eni-server1", nil)
	wantErr(t, err, awsops.CodeRoutingChanged, msg, "vpc-other000")
	// A listed table that does not exist is AWS's error.
	err = e.client.CheckVIPRoutes(ctx, vpcID, vip, "eni-server1", []string{"rtb-nothere"})
	wantErr(t, err, awsops.CodeAWSFailed, "The routeTable ID 'rtb-nothere' does not exist", "")
}

// TestObserveSeesEveryAttempt runs a mix of operations with injected
// throttling and checks that the attempts the client reported are exactly
// the calls the emulator received.
func TestObserveSeesEveryAttempt(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	e.emu.Server.SetFault("*", awsemu.Fault{ErrorCode: "RequestLimitExceeded", HTTPStatus: 503, Count: 4})
	e.emu.Server.SetFault("ChangeResourceRecordSets", awsemu.Fault{ErrorCode: "Throttling", HTTPStatus: 400, Count: 2})
	_ = e.client.CheckVIPOutsideVPC(ctx, vpcID, vip)
	_ = e.client.PointVIPRoutes(ctx, vip, "eni-server2", []string{"rtb-1", "rtb-2", "rtb-4"})
	_ = e.client.CheckVIPRoutes(ctx, vpcID, vip, "eni-server2", nil)
	_ = e.client.AssociateEIP(ctx, "eipalloc-2", "eni-server2")
	_ = e.client.CheckEIP(ctx, "eipalloc-nothere", "eni-server2")
	_, _ = e.client.AZState(ctx, "ap-northeast-1x")
	_ = e.client.UpsertRecord(ctx, awsops.Record{ZoneID: zoneID, Name: "srv.vigil.test", IP: ip2}, true)
	_ = e.client.DeleteRecord(ctx, awsops.Record{ZoneID: zoneID, Name: "srv.vigil.test", IP: ip2})

	want := map[string]int{}
	for _, r := range e.emu.Server.Calls() {
		want[r.Action]++
	}
	got := map[string]int{}
	for _, c := range e.observed("") {
		got[c.Action] += c.Attempts
		if c.Start.IsZero() || c.Service == "" {
			t.Errorf("observed %+v", c)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("observed actions %v, emulator saw %v", got, want)
	}
	for a, n := range want {
		if got[a] != n {
			t.Errorf("%s: observed %d attempts, emulator saw %d calls", a, got[a], n)
		}
	}
	if want["ChangeResourceRecordSets"] < 3 {
		t.Errorf("Route 53's 400 Throttling was not retried: %v", want)
	}
}

func TestBadCredentials(t *testing.T) {
	e := newEnv(t, withKey("AKIAVIGILTEST0000001", "wrong/secret"))
	err := e.client.CheckVIPOutsideVPC(testCtx(t), vpcID, vip)
	if awsops.CodeOf(err) != awsops.CodeAWSFailed || strings.Contains(err.Error(), "wrong/secret") {
		t.Fatalf("err = %v (code %d)", err, awsops.CodeOf(err))
	}
	if n := len(e.emu.Server.Calls()); n != 1 {
		t.Fatalf("%d calls, want 1: a signature failure is not retried", n)
	}
}
