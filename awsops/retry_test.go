package awsops

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func apiErr(code, msg string) error {
	return &smithy.GenericAPIError{Code: code, Message: msg}
}

func statusErr(status int) error {
	return &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
		Err:      errors.New("boom"),
	}
}

func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{apiErr("RequestLimitExceeded", ""), true},
		{apiErr("Throttling", "Rate exceeded"), true},
		{apiErr("ThrottlingException", ""), true},
		{apiErr("PriorRequestNotComplete", ""), true},
		{apiErr("InternalError", ""), true},
		{statusErr(503), true},
		{statusErr(500), true},
		{&smithyhttp.RequestSendError{Err: errors.New("connection refused")}, true},
		{apiErr("InvalidVpcID.NotFound", "The vpc ID 'vpc-x' does not exist"), false},
		{apiErr("UnauthorizedOperation", ""), false},
		{apiErr("InvalidParameterValue", ""), false},
		{statusErr(400), false},
		{errors.New("plain"), false},
	} {
		if got := retryable(tc.err); got != tc.want {
			t.Errorf("retryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	for n := 1; n < 20; n++ {
		for range 50 {
			d := backoff(n)
			lo := min(backoffStart<<(n-1), backoffCap) / 2
			if n > 6 {
				lo = backoffCap / 2
			}
			if d < lo || d > backoffCap {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, d, lo, backoffCap)
			}
		}
	}
}

func TestRunnerRetriesThrottlingThenSucceeds(t *testing.T) {
	var calls []Call
	r := runner{callTimeout: time.Second, observe: func(c Call) { calls = append(calls, c) }}
	n := 0
	err := r.call(context.Background(), "ec2", "ReplaceRoute", "rtb-1", func(context.Context) error {
		n++
		if n <= 3 {
			return apiErr("RequestLimitExceeded", "Request limit exceeded.")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls[0].Attempts != 4 || calls[0].Throttles != 3 || calls[0].Err != nil || calls[0].Target != "rtb-1" {
		t.Fatalf("observed %+v, want one call of 4 attempts, 3 throttled", calls)
	}
}

func TestRunnerFailsAtOnceOnClientError(t *testing.T) {
	r := runner{callTimeout: time.Second}
	n := 0
	err := r.call(context.Background(), "ec2", "DescribeVpcs", "vpc-x", func(context.Context) error {
		n++
		return apiErr("InvalidVpcID.NotFound", "The vpc ID 'vpc-x' does not exist")
	})
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeAWSFailed || e.AWSCode != "InvalidVpcID.NotFound" ||
		e.Message != "The vpc ID 'vpc-x' does not exist" || e.Target != "vpc-x" || e.Op != "DescribeVpcs" {
		t.Fatalf("err = %#v", err)
	}
	if n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
}

func TestRunnerRetriesAttemptTimeout(t *testing.T) {
	r := runner{callTimeout: 20 * time.Millisecond}
	n := 0
	err := r.call(context.Background(), "ec2", "ReplaceRoute", "rtb-1", func(ctx context.Context) error {
		n++
		if n == 1 {
			<-ctx.Done() // the first attempt hangs until its own timeout
			return fmt.Errorf("send: %w", ctx.Err())
		}
		return nil
	})
	if err != nil || n != 2 {
		t.Fatalf("err = %v after %d attempts, want success after 2", err, n)
	}
}

func TestRunnerDeadline(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := runner{callTimeout: time.Second}
	last := apiErr("RequestLimitExceeded", "Request limit exceeded.")
	// A deadline that passes while retrying ends in CodeTimeout, with the
	// last attempt's error still in the chain.
	dctx, dcancel := context.WithDeadline(context.Background(), time.Now())
	defer dcancel()
	<-dctx.Done()
	n := 0
	err := r.call(dctx, "ec2", "ReplaceRoute", "rtb-1", func(context.Context) error { n++; return last })
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeTimeout || e.Message != MsgTimeout || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %#v", err)
	}
	if n != 0 {
		t.Fatalf("%d attempts after the deadline, want 0", n)
	}
	// A canceled context is not a timeout.
	cancel()
	err = r.call(ctx, "ec2", "ReplaceRoute", "rtb-1", func(context.Context) error { return nil })
	if CodeOf(err) != CodeInternal || !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: err = %v (code %d)", err, CodeOf(err))
	}
}

func TestRunnerDeadlineWhileThrottled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := runner{callTimeout: time.Second}
	n := 0
	last := apiErr("RequestLimitExceeded", "Request limit exceeded.")
	err := r.call(ctx, "ec2", "ReplaceRoute", "rtb-1", func(context.Context) error {
		n++
		if n == 3 {
			cancel() // stands for the deadline passing during the backoff
		}
		return last
	})
	if n != 3 || !errors.Is(err, last) {
		t.Fatalf("err = %v after %d attempts", err, n)
	}
}

func TestCodeOf(t *testing.T) {
	if CodeOf(nil) != 0 || CodeOf(errors.New("x")) != CodeInternal {
		t.Fatal("CodeOf of nil or a plain error")
	}
	wrapped := fmt.Errorf("start awsvip1: %w", &Error{Code: CodeRoutingChanged, Message: "m"})
	if CodeOf(wrapped) != CodeRoutingChanged {
		t.Fatalf("CodeOf(wrapped) = %d", CodeOf(wrapped))
	}
	if AWSCodeOf(fmt.Errorf("x: %w", apiErr("DryRunOperation", ""))) != "DryRunOperation" {
		t.Fatal("AWSCodeOf of a wrapped API error")
	}
}

func TestRoutesError(t *testing.T) {
	timeout := &Error{Code: CodeTimeout, Message: MsgTimeout, Err: context.DeadlineExceeded}
	notFound := &Error{Code: CodeAWSFailed, AWSCode: "InvalidRouteTableID.NotFound", Message: "The routeTable ID 'rtb-3' does not exist"}
	tables := []string{"rtb-1", "rtb-2", "rtb-3"}

	if err := routesError(tables, make([]error, 3)); err != nil {
		t.Fatalf("no failures: %v", err)
	}
	err := routesError(tables, []error{nil, timeout, timeout})
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeTimeout || e.Target != "rtb-2,rtb-3" ||
		e.Message != "Timeout occurred. (route tables not switched: rtb-2, rtb-3)" {
		t.Fatalf("timeouts: %#v", err)
	}
	err = routesError(tables, []error{nil, timeout, notFound})
	if !errors.As(err, &e) || e.Code != CodeAWSFailed || e.AWSCode != "InvalidRouteTableID.NotFound" || e.Target != "rtb-2,rtb-3" ||
		e.Message != "The routeTable ID 'rtb-3' does not exist (route tables not switched: rtb-2, rtb-3)" {
		t.Fatalf("mixed: %#v", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("the per-table errors are not in the chain")
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"srv.hz1.local.", "srv.hz1.local", true},
		{"SRV.hz1.local.", "srv.HZ1.local.", true},
		{`\052.hz1.local.`, "*.hz1.local.", true},
		{"srv.hz1.local.", "srv2.hz1.local.", false},
	} {
		if got := sameName(tc.a, tc.b); got != tc.want {
			t.Errorf("sameName(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
	if zoneID("/hostedzone/Z1") != "Z1" || zoneID("Z1") != "Z1" {
		t.Error("zoneID")
	}
}
