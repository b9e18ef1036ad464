package awsops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// Instance is what IMDSv2 tells about the instance Vigil runs on.
type Instance struct {
	InstanceID       string
	Region           string
	AvailabilityZone string
	MAC              string // of the primary network interface
	ENIID            string // the primary network interface
	VPCID            string
	PrivateIP        netip.Addr
}

// maxMetadata bounds one metadata value read from IMDS.
const maxMetadata = 64 << 10

// Discover reads the instance's identity from IMDSv2 at endpoint (empty
// means the standard 169.254.169.254, or AWS_EC2_METADATA_SERVICE_ENDPOINT).
// Each read is one call bounded by callTimeout (0 means 5 s) and retried
// like the other AWS calls until ctx's deadline. IMDSv1 is never used. The
// SDK's IMDS client caches the session token and, when IMDS answers 401,
// drops it; the retry then fetches a new one.
func Discover(ctx context.Context, endpoint string, callTimeout time.Duration) (Instance, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	client := imds.New(imds.Options{
		Endpoint:                 endpoint,
		Retryer:                  aws.NopRetryer{},
		EnableFallback:           aws.FalseTernary,
		DisableDefaultTimeout:    true,
		DisableDefaultMaxBackoff: true,
	})
	r := runner{callTimeout: callTimeout, retry: imdsRetryable}
	get := func(path string) (string, error) {
		var val string
		err := r.call(ctx, "imds", "GetMetadata", path, func(ctx context.Context) error {
			out, err := client.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
			if err != nil {
				return err
			}
			defer out.Content.Close()
			b, err := io.ReadAll(io.LimitReader(out.Content, maxMetadata))
			if err != nil {
				return fmt.Errorf("read %s: %w", path, err)
			}
			val = strings.TrimSpace(string(b))
			return nil
		})
		if err == nil && val == "" {
			err = &Error{Code: CodeAWSFailed, Op: "GetMetadata", Target: path,
				Message: fmt.Sprintf("IMDS returned nothing for %s.", path)}
		}
		return val, err
	}
	var in Instance
	for _, f := range []struct {
		path string
		dst  *string
	}{
		{"instance-id", &in.InstanceID},
		{"placement/region", &in.Region},
		{"placement/availability-zone", &in.AvailabilityZone},
		{"mac", &in.MAC},
	} {
		v, err := get(f.path)
		if err != nil {
			return Instance{}, err
		}
		*f.dst = v
	}
	var err error
	prefix := "network/interfaces/macs/" + in.MAC + "/"
	if in.ENIID, err = get(prefix + "interface-id"); err != nil {
		return Instance{}, err
	}
	if in.VPCID, err = get(prefix + "vpc-id"); err != nil {
		return Instance{}, err
	}
	ip, err := get("local-ipv4")
	if err != nil {
		return Instance{}, err
	}
	if in.PrivateIP, err = netip.ParseAddr(ip); err != nil {
		return Instance{}, &Error{Code: CodeAWSFailed, Op: "GetMetadata", Target: "local-ipv4",
			Message: fmt.Sprintf("IMDS returned a bad local-ipv4 %q.", ip), Err: err}
	}
	return in, nil
}

// imdsRetryable is retryable, plus the failures to get a session token:
// the SDK's IMDS client marks them final and hides their HTTP status, but
// an IMDS that cannot hand out a token yet (instance booting, 5xx) is worth
// asking again until the deadline.
func imdsRetryable(err error) bool {
	if retryable(err) {
		return true
	}
	var rt interface{ RetryableError() bool }
	return errors.As(err, &rt) && !rt.RetryableError()
}
