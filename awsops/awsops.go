// Package awsops performs the AWS side of Vigil's failovers — EC2 route
// tables, Elastic IP associations, Route 53 record sets, availability zone
// state and IMDSv2 discovery — on aws-sdk-go-v2. Every failure is an *Error
// carrying the code of the EXPRESSCLUSTER guides' troubleshooting tables, and
// every AWS call is reported to Options.Observe.
//
// Each AWS call is retried by this package, not by the SDK: every attempt is
// bounded by Options.CallTimeout, throttling, 5xx answers and transport
// errors are retried with a jittered exponential backoff, and the whole
// operation ends at the context's deadline with CodeTimeout. Other AWS errors
// fail at once with CodeAWSFailed and AWS's own message.
package awsops

import (
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Call is one AWS call as the failover timeline and metrics show it.
type Call struct {
	Service  string        // "ec2", "route53", "sts", "imds"
	Action   string        // "ReplaceRoute"
	Target   string        // "rtb-1"
	Start    time.Time     // when the first attempt began
	Latency  time.Duration // from the first attempt to the final answer
	Attempts int           // attempts made, retries included
	// Throttles counts the attempts AWS refused with a throttling code.
	Throttles int
	Err       error // nil on success
}

// Options configure a Client.
type Options struct {
	// Region is the AWS region (ap-northeast-1). Empty means the region of
	// the SDK's default chain (AWS_REGION, the shared config file).
	Region string
	// Endpoint is the base endpoint for EC2, STS and Route 53; empty means
	// the SDK's own resolution, AWS's regional endpoints. Only tests and the
	// demo set it (the emulator).
	Endpoint string
	// CallTimeout bounds one attempt of one AWS call; 0 means 5 s. The
	// operation's overall deadline comes from the context; a context without
	// a deadline gets DefaultDeadline.
	CallTimeout time.Duration
	// Credentials overrides the SDK's default chain (environment, shared
	// files, IMDSv2 instance role) when not nil.
	Credentials aws.CredentialsProvider
	// HTTPClient overrides the SDK's HTTP client when not nil. The SDK
	// cannot add AWS_CA_BUNDLE's roots to it, so New fails when both are
	// set.
	HTTPClient *http.Client
	// Observe, when not nil, is called once per AWS call after its final
	// answer, from the goroutine that made it: concurrently while
	// PointVIPRoutes switches several tables. Dry runs of Preflight show as
	// "ReplaceRoute (dry run)" and the like.
	Observe func(Call)
}

// DefaultCallTimeout bounds one attempt when Options.CallTimeout is 0.
const DefaultCallTimeout = 5 * time.Second

// DefaultDeadline bounds an operation whose context has no deadline, so that
// retries always end.
const DefaultDeadline = 30 * time.Second
