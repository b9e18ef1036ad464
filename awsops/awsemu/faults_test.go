package awsemu_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/vigil-ha/vigil/awsops/awsemu"
)

func replaceVIP(t *testing.T, c *ec2.Client, eni string) error {
	t.Helper()
	_, err := c.ReplaceRoute(ctxT(t), &ec2.ReplaceRouteInput{
		RouteTableId: aws.String("rtb-1"), DestinationCidrBlock: aws.String("10.1.0.20/32"), NetworkInterfaceId: aws.String(eni),
	})
	return err
}

func TestAnInjectedErrorHitsTheNextCountCallsOnly(t *testing.T) {
	e := start(t)
	c := ec2Client(e, noRetry)
	e.Server.SetFault("ReplaceRoute", awsemu.Fault{ErrorCode: "InternalError", Count: 2})
	for range 2 {
		err := replaceVIP(t, c, "eni-87654321")
		wantAPIError(t, err, "InternalError", "An internal error has occurred")
		var re interface{ HTTPStatusCode() int }
		if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusInternalServerError {
			t.Errorf("status of %v is not 500", err)
		}
	}
	mustOK(t, replaceVIP(t, c, "eni-87654321"))
	if len(e.Server.Faults()) != 0 {
		t.Errorf("faults left: %v", e.Server.Faults())
	}
	_, err := c.DescribeVpcs(ctxT(t), &ec2.DescribeVpcsInput{})
	mustOK(t, err)
}

func TestAnInjectedErrorTakesTheGivenCodeMessageAndStatus(t *testing.T) {
	e := start(t)
	e.Server.SetFault("ChangeResourceRecordSets", awsemu.Fault{
		ErrorCode: "PriorRequestNotComplete", Message: "try later", HTTPStatus: http.StatusBadRequest,
	})
	_, err := changeRecords(t, r53Client(e, noRetry), aChange("UPSERT", "srv.hz1.local.", "10.0.0.1", 60))
	wantAPIError(t, err, "PriorRequestNotComplete", "try later")
}

func TestTheWildcardFaultCoversEveryAPIActionButNotIMDS(t *testing.T) {
	e := start(t)
	e.Server.SetFault("*", awsemu.Fault{ErrorCode: "Unavailable"})
	e.Server.SetFault("DescribeVpcs", awsemu.Fault{})
	_, err := ec2Client(e, noRetry).DescribeSubnets(ctxT(t), &ec2.DescribeSubnetsInput{})
	wantAPIError(t, err, "Unavailable", "The server is overloaded or unable to handle the request.")
	_, err = stsClient(e, noRetry).GetCallerIdentity(ctxT(t), &sts.GetCallerIdentityInput{})
	wantAPIError(t, err, "Unavailable", "")
	_, err = r53Client(e, noRetry).GetHostedZone(ctxT(t), &route53.GetHostedZoneInput{Id: aws.String(zoneID)})
	wantAPIError(t, err, "Unavailable", "")
	_, err = ec2Client(e, noRetry).DescribeVpcs(ctxT(t), &ec2.DescribeVpcsInput{})
	mustOK(t, err) // an action's own fault wins over "*"
	if got := metadata(t, imdsClient(emuIMDS{e.IMDS}, "i-server1"), "instance-id"); got != "i-server1" {
		t.Errorf("IMDS answered %q under the wildcard fault", got)
	}
	e.Server.ClearFaults()
	_, err = ec2Client(e, noRetry).DescribeSubnets(ctxT(t), &ec2.DescribeSubnetsInput{})
	mustOK(t, err)
}

func TestAnIMDSFaultFailsTheMetadataReads(t *testing.T) {
	e := start(t)
	e.Server.SetFault("IMDSGetMetadata", awsemu.Fault{ErrorCode: "InternalError", HTTPStatus: http.StatusServiceUnavailable})
	base := e.IMDS["i-server1"]
	status, tok := imdsDo(t, http.MethodPut, base+"/latest/api/token", map[string]string{ttlHeader: "60"})
	if status != http.StatusOK {
		t.Fatalf("token: %d", status)
	}
	if status, _ := imdsDo(t, http.MethodGet, base+"/latest/meta-data/instance-id",
		map[string]string{"X-aws-ec2-metadata-token": tok}); status != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", status)
	}
}

func TestInjectedLatencyDoesNotSerializeConcurrentCalls(t *testing.T) {
	e := start(t)
	const n, latency = 10, 200 * time.Millisecond
	e.Server.SetFault("DescribeRouteTables", awsemu.Fault{Latency: latency})
	c := ec2Client(e)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := c.DescribeRouteTables(ctxT(t), &ec2.DescribeRouteTablesInput{})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	calls := e.Server.Calls()
	if len(calls) != n {
		t.Fatalf("%d calls recorded, want %d", len(calls), n)
	}
	lastStart, firstEnd := calls[0].Start, calls[0].End
	for _, c := range calls {
		if d := c.End.Sub(c.Start); d < latency {
			t.Errorf("call took %v, less than the injected %v", d, latency)
		}
		if c.Start.After(lastStart) {
			lastStart = c.Start
		}
		if c.End.Before(firstEnd) {
			firstEnd = c.End
		}
	}
	if !lastStart.Before(firstEnd) {
		t.Errorf("the last call started %v after the first one ended: the calls did not overlap", lastStart.Sub(firstEnd))
	}
}

func TestInjectedLatencyEndsWhenTheClientGivesUp(t *testing.T) {
	e := start(t)
	e.Server.SetFault("ReplaceRoute", awsemu.Fault{Latency: time.Hour})
	ctx, cancel := context.WithTimeout(ctxT(t), 50*time.Millisecond)
	defer cancel()
	_, err := ec2Client(e, noRetry).ReplaceRoute(ctx, &ec2.ReplaceRouteInput{
		RouteTableId: aws.String("rtb-1"), DestinationCidrBlock: aws.String("10.1.0.20/32"), NetworkInterfaceId: aws.String("eni-87654321"),
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
	for len(e.Server.Calls()) == 0 { // the server notices the client left
		time.Sleep(5 * time.Millisecond)
	}
	if rec := e.Server.Calls()[0]; rec.ErrorCode != "RequestCanceled" {
		t.Errorf("call record = %+v", rec)
	}
	if got := vipTarget(t, e.Server, "rtb-1"); got != "eni-12345678" {
		t.Errorf("an abandoned call changed the route to %q", got)
	}
}

// burst makes calls until one fails and returns how many succeeded.
func burst(t *testing.T, call func() error) int {
	t.Helper()
	for n := 0; n < 1000; n++ {
		if err := call(); err != nil {
			wantAPIError(t, err, "RequestLimitExceeded", "Request limit exceeded.")
			var re interface{ HTTPStatusCode() int }
			if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusServiceUnavailable {
				t.Errorf("throttled call: %v, want status 503", err)
			}
			return n
		}
	}
	t.Fatal("1000 calls were not throttled")
	return 0
}

func TestThrottlingRefusesABurstPastTheBucketAndRefillsOverTime(t *testing.T) {
	e := start(t)
	clock := newFakeClock()
	e.Server.SetClock(clock.Now)
	e.Server.SetThrottling(true)
	c := ec2Client(e, noRetry)
	describe := func() error {
		_, err := c.DescribeVpcs(ctxT(t), &ec2.DescribeVpcsInput{})
		return err
	}
	if n := burst(t, describe); n != 100 {
		t.Errorf("%d describe calls passed, want the bucket's 100", n)
	}
	eni := []string{"eni-87654321", "eni-12345678"}
	i := 0
	mutate := func() error {
		i++
		return replaceVIP(t, c, eni[i%2])
	}
	if n := burst(t, mutate); n != 50 {
		t.Errorf("%d mutating calls passed, want the bucket's 50", n)
	}
	clock.Advance(time.Second)
	if n := burst(t, describe); n != 20 {
		t.Errorf("%d describe calls passed after 1 s, want the 20 refilled", n)
	}
	if n := burst(t, mutate); n != 5 {
		t.Errorf("%d mutating calls passed after 1 s, want the 5 refilled", n)
	}
	_, err := ec2Client(e, noRetry, asUser(roAKID, roSecret)).DescribeVpcs(ctxT(t), &ec2.DescribeVpcsInput{})
	mustOK(t, err) // another credential has buckets of its own
	e.Server.SetThrottling(false)
	mustOK(t, describe())
}

func TestTheSDKRetriesAThrottledCall(t *testing.T) {
	e := start(t)
	e.Server.SetFault("DescribeVpcs", awsemu.Fault{ErrorCode: "RequestLimitExceeded", Count: 1})
	_, err := ec2Client(e, fastRetry).DescribeVpcs(ctxT(t), &ec2.DescribeVpcsInput{})
	mustOK(t, err)
	var codes []string
	for _, c := range e.Server.Calls() {
		codes = append(codes, c.ErrorCode)
	}
	if len(codes) != 2 || codes[0] != "RequestLimitExceeded" || codes[1] != "" {
		t.Errorf("calls = %q, want a throttled one then a success", codes)
	}
}
