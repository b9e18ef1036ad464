package awsops_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/awsops"
	"github.com/vigil-ha/vigil/awsops/awsemu"
)

func TestDiscover(t *testing.T) {
	e := newEnv(t)
	got, err := awsops.Discover(testCtx(t), e.emu.IMDS["i-server2"], time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := awsops.Instance{
		InstanceID:       "i-server2",
		Region:           "ap-northeast-1",
		AvailabilityZone: "ap-northeast-1c",
		MAC:              "06:00:00:00:01:20",
		ENIID:            "eni-server2",
		VPCID:            vpcID,
		PrivateIP:        netip.MustParseAddr("10.0.120.10"),
	}
	if got != want {
		t.Fatalf("Discover = %+v\nwant       %+v", got, want)
	}
	// One session token serves every read.
	tokens, gets := 0, 0
	for _, c := range e.emu.Server.Calls() {
		switch c.Action {
		case "IMDSGetToken":
			tokens++
		case "IMDSGetMetadata":
			gets++
			if c.Status != 200 {
				t.Errorf("GET %s: %d", c.Target, c.Status)
			}
		}
	}
	if tokens != 1 || gets != 7 {
		t.Fatalf("%d token PUTs for %d GETs, want 1 for 7", tokens, gets)
	}
}

// TestDiscoverTokenRefresh: the session token expires between two reads
// (the emulator's clock jumps past its TTL). IMDS answers 401, the SDK's
// client drops the token, and the retry fetches a new one.
func TestDiscoverTokenRefresh(t *testing.T) {
	e := newEnv(t)
	clock := newFakeClock()
	e.emu.Server.SetClock(clock.Now)
	reads := 0
	var observed []awsops.Call
	ctx := awsops.WithObserver(testCtx(t), func(c awsops.Call) {
		observed = append(observed, c)
		if reads++; reads == 2 {
			clock.Add(7 * time.Hour) // past any token's TTL (at most 6 h)
		}
	})
	got, err := awsops.Discover(ctx, e.emu.IMDS["i-server1"], time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got.ENIID != "eni-server1" || got.PrivateIP != ip1 {
		t.Fatalf("Discover = %+v", got)
	}
	var tokens, unauthorized, gets int
	for _, c := range e.emu.Server.Calls() {
		switch {
		case c.Action == "IMDSGetToken":
			tokens++
		case c.Action == "IMDSGetMetadata" && c.Status == 401:
			unauthorized++
		case c.Action == "IMDSGetMetadata":
			gets++
		}
	}
	if tokens != 2 || unauthorized != 1 || gets != 7 {
		t.Fatalf("%d token PUTs, %d 401s, %d good GETs; want 2, 1, 7", tokens, unauthorized, gets)
	}
	if len(observed) != 7 || observed[2].Attempts != 2 || observed[2].Service != "imds" || observed[2].Target != "placement/availability-zone" {
		t.Fatalf("observed %+v", observed)
	}
}

func TestDiscoverFailures(t *testing.T) {
	e := newEnv(t)
	// An IMDS that keeps failing ends at the deadline with code 6, however
	// fast or slow the machine.
	e.emu.Server.SetFault("IMDSGetToken", awsemu.Fault{ErrorCode: "InternalError", HTTPStatus: 500})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := awsops.Discover(ctx, e.emu.IMDS["i-server1"], time.Second)
	wantErr(t, err, awsops.CodeTimeout, "Timeout occurred.", "instance-id")
	if n := len(e.emu.Server.Calls()); n < 2 {
		t.Fatalf("%d IMDS calls: a 500 was not retried", n)
	}

	// IMDS answering 404 (here: the instance is gone) is not retried.
	e.emu.Server.ClearFaults()
	e.emu.Server.ResetCalls()
	err = e.emu.Server.Update(func(w *awsemu.World) error {
		w.Instances = w.Instances[1:]
		for i := range w.NetworkInterfaces {
			if w.NetworkInterfaces[i].InstanceID == "i-server1" {
				w.NetworkInterfaces[i].InstanceID = ""
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = awsops.Discover(testCtx(t), e.emu.IMDS["i-server1"], time.Second)
	if awsops.CodeOf(err) != awsops.CodeAWSFailed {
		t.Fatalf("gone instance: %v (code %d)", err, awsops.CodeOf(err))
	}
	if n := len(e.emu.Server.Calls()); n != 2 {
		t.Fatalf("%d IMDS calls, want 2: a token, one 404", n)
	}
}
