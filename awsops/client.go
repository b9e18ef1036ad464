package awsops

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Client performs Vigil's AWS operations. It is safe for concurrent use.
type Client struct {
	opts Options
	run  runner
	ec2  *ec2.Client
	r53  *route53.Client
	sts  *sts.Client
}

// New returns a client; it loads the SDK's default configuration chain
// (environment, shared files, IMDSv2 instance role), overridden by o. The
// SDK's own retries are disabled: every attempt goes through this package's
// retry loop. New makes no AWS call.
func New(ctx context.Context, o Options) (*Client, error) {
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	load := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
	}
	if o.Region != "" {
		load = append(load, config.WithRegion(o.Region))
	}
	if o.Credentials != nil {
		load = append(load, config.WithCredentialsProvider(o.Credentials))
	}
	if o.HTTPClient != nil {
		load = append(load, config.WithHTTPClient(o.HTTPClient))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, &Error{Code: CodeAWSFailed, Op: "load AWS config", Message: fmt.Sprintf("load AWS config: %v", err), Err: err}
	}
	if cfg.Region == "" {
		return nil, &Error{Code: CodeAWSFailed, Op: "load AWS config", Message: "No AWS region configured (set the region in the configuration or AWS_REGION)."}
	}
	o.Region = cfg.Region
	c := &Client{
		opts: o,
		run:  runner{callTimeout: o.CallTimeout, observe: o.Observe},
		ec2: ec2.NewFromConfig(cfg, func(eo *ec2.Options) {
			if o.Endpoint != "" {
				eo.BaseEndpoint = aws.String(o.Endpoint)
			}
		}),
		r53: route53.NewFromConfig(cfg, func(ro *route53.Options) {
			if o.Endpoint != "" {
				ro.BaseEndpoint = aws.String(o.Endpoint)
			}
		}),
		sts: sts.NewFromConfig(cfg, func(so *sts.Options) {
			if o.Endpoint != "" {
				so.BaseEndpoint = aws.String(o.Endpoint)
			}
		}),
	}
	return c, nil
}

// Region returns the region the client talks to.
func (c *Client) Region() string { return c.opts.Region }
