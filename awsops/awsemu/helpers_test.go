package awsemu_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/vigil-ha/vigil/awsops/awsemu"
	"github.com/vigil-ha/vigil/awsops/awsemu/awsemutest"
)

// testWorldYAML is the World most tests run against: the guides' VIP
// topology plus the odd objects the error cases need.
const testWorldYAML = `
region: ap-northeast-1
credentials:
  - {access_key_id: AKIDEMUTEST1, secret_access_key: secret/one, user: vigil}
  - access_key_id: AKIDEMUREADONLY
    secret_access_key: secret/two
    deny: [ReplaceRoute, ec2:CreateRoute, DescribeAddresses, "route53:ChangeResourceRecordSets"]
availability_zones:
  - {name: ap-northeast-1a, id: apne1-az4}
  - {name: ap-northeast-1c, id: apne1-az1, state: impaired}
vpcs:
  - {id: vpc-1234abcd, cidrs: [10.0.0.0/16, 10.2.0.0/16]}
  - {id: vpc-other000, cidrs: [172.16.0.0/16]}
subnets:
  - {id: subnet-a, vpc_id: vpc-1234abcd, cidr: 10.0.110.0/24, availability_zone: ap-northeast-1a}
  - {id: subnet-c, vpc_id: vpc-1234abcd, cidr: 10.0.120.0/24, availability_zone: ap-northeast-1c}
  - {id: subnet-o, vpc_id: vpc-other000, cidr: 172.16.0.0/24, availability_zone: ap-northeast-1a}
instances:
  - {id: i-server1, availability_zone: ap-northeast-1a, enis: [eni-12345678]}
  - {id: i-server2, availability_zone: ap-northeast-1c, enis: [eni-87654321, eni-second]}
network_interfaces:
  - {id: eni-12345678, subnet_id: subnet-a, private_ip: 10.0.110.10, mac: "06:00:00:00:01:10"}
  - {id: eni-87654321, subnet_id: subnet-c, private_ip: 10.0.120.10, mac: "06:00:00:00:01:20", source_dest_check: true}
  - {id: eni-second, subnet_id: subnet-c, private_ip: 10.0.120.11}
  - {id: eni-spare, subnet_id: subnet-a, private_ip: 10.0.110.99}
  - {id: eni-other, subnet_id: subnet-o, private_ip: 172.16.0.10}
route_tables:
  - id: rtb-1
    vpc_id: vpc-1234abcd
    routes:
      - {destination: 10.0.0.0/16, gateway_id: local}
      - {destination: 10.1.0.20/32, eni_id: eni-12345678}
  - id: rtb-2
    vpc_id: vpc-1234abcd
    routes:
      - {destination: 10.0.0.0/16, gateway_id: local}
      - {destination: 0.0.0.0/0, gateway_id: igw-1}
      - {destination: 10.1.0.20/32, eni_id: eni-12345678}
  - id: rtb-3
    vpc_id: vpc-1234abcd
    routes:
      - {destination: 10.0.0.0/16, gateway_id: local}
  - id: rtb-other
    vpc_id: vpc-other000
    routes:
      - {destination: 172.16.0.0/16, gateway_id: local}
addresses:
  - {allocation_id: eipalloc-01234567, public_ip: 203.0.113.10}
  - {allocation_id: eipalloc-assoc, public_ip: 203.0.113.11, eni_id: eni-87654321, association_id: eipassoc-existing}
hosted_zones:
  - id: ABCDEFGHIJK123
    name: hz1.local
    private: true
    records:
      - {name: srv.hz1.local, type: A, ttl: 60, values: [10.0.110.10]}
      - {name: txt.hz1.local., type: TXT, ttl: 300, values: ['"hello"']}
  - {id: ZPUBLIC, name: example.test.}
`

// Credentials of testWorldYAML.
const (
	akid     = "AKIDEMUTEST1"
	secret   = "secret/one"
	roAKID   = "AKIDEMUREADONLY"
	roSecret = "secret/two"
)

// testWorld returns a fresh parsed testWorldYAML.
func testWorld(t testing.TB) *awsemu.World {
	t.Helper()
	w, err := awsemu.ParseWorld([]byte(testWorldYAML))
	if err != nil {
		t.Fatalf("test world: %v", err)
	}
	return w
}

// start runs the emulator over the test world, changed by the edits.
func start(t testing.TB, edits ...func(*awsemu.World)) *awsemutest.Emulator {
	t.Helper()
	w := testWorld(t)
	for _, edit := range edits {
		edit(w)
	}
	return awsemutest.Start(t, w)
}

// noRetry turns the SDK's retries off, so every call is one attempt.
func noRetry(o *aws.Config) { o.Retryer = func() aws.Retryer { return aws.NopRetryer{} } }

// fastRetry keeps the SDK's retries but drops their backoff.
func fastRetry(o *aws.Config) {
	o.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(so *retry.StandardOptions) {
			so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		})
	}
}

// asUser signs with another credential.
func asUser(id, key string) func(*aws.Config) {
	return func(o *aws.Config) {
		o.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: id, SecretAccessKey: key}, nil
		})
	}
}

func config(e *awsemutest.Emulator, opts ...func(*aws.Config)) aws.Config {
	cfg := e.Config()
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

func ec2Client(e *awsemutest.Emulator, opts ...func(*aws.Config)) *ec2.Client {
	return ec2.NewFromConfig(config(e, opts...))
}

func r53Client(e *awsemutest.Emulator, opts ...func(*aws.Config)) *route53.Client {
	return route53.NewFromConfig(config(e, opts...))
}

func stsClient(e *awsemutest.Emulator, opts ...func(*aws.Config)) *sts.Client {
	return sts.NewFromConfig(config(e, opts...))
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantAPIError checks that err is AWS's error code with the message
// (compared whole unless msg ends with "...", then as a prefix).
func wantAPIError(t testing.TB, err error, code, msg string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error = %v, want API error %s", err, code)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("error code = %q (%s), want %q", ae.ErrorCode(), ae.ErrorMessage(), code)
	}
	if p, ok := strings.CutSuffix(msg, "..."); ok {
		if !strings.HasPrefix(ae.ErrorMessage(), p) {
			t.Fatalf("error message = %q, want prefix %q", ae.ErrorMessage(), p)
		}
	} else if msg != "" && ae.ErrorMessage() != msg {
		t.Fatalf("error message = %q, want %q", ae.ErrorMessage(), msg)
	}
}

func mustOK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// signedRequest returns a request to the emulator signed with SigV4 by the
// SDK's own signer, for bodies the SDK would never send.
func signedRequest(t testing.TB, e *awsemutest.Emulator, method, path, service, body string) *http.Request {
	t.Helper()
	return signedRequestAt(t, e, method, path, service, body, time.Now())
}

// signedRequestAt is signedRequest with the signing time given.
func signedRequestAt(t testing.TB, e *awsemutest.Emulator, method, path, service, body string, at time.Time) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, e.Endpoint+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	}
	region := e.Region
	err = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret},
		req, sha256Hex(body), service, region, at)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
