package awsops_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/vigil-ha/vigil/awsops"
	"github.com/vigil-ha/vigil/awsops/awsemu"
	"github.com/vigil-ha/vigil/awsops/awsemu/awsemutest"
)

// worldYAML is the guides' topology: a VPC over two AZs, a server in each,
// three route tables holding the VIP route and one without it, an EIP
// associated with server 1, a free EIP, and a private hosted zone.
const worldYAML = `
region: ap-northeast-1
credentials:
  - {access_key_id: AKIAVIGILTEST0000001, secret_access_key: vigil/test/secret, user: vigil}
  - access_key_id: AKIAVIGILDENIED00001
    secret_access_key: vigil/denied/secret
    user: vigil-readonly
    deny: [ReplaceRoute, AssociateAddress]
availability_zones:
  - {name: ap-northeast-1a, id: apne1-az4}
  - {name: ap-northeast-1c, id: apne1-az1}
  - {name: ap-northeast-1d, id: apne1-az2, state: impaired}
vpcs:
  - {id: vpc-1234abcd, cidrs: [10.0.0.0/16, 10.2.0.0/16]}
  - {id: vpc-other000, cidrs: [172.16.0.0/16]}
subnets:
  - {id: subnet-a, vpc_id: vpc-1234abcd, cidr: 10.0.110.0/24, availability_zone: ap-northeast-1a}
  - {id: subnet-c, vpc_id: vpc-1234abcd, cidr: 10.0.120.0/24, availability_zone: ap-northeast-1c}
  - {id: subnet-o, vpc_id: vpc-other000, cidr: 172.16.0.0/24, availability_zone: ap-northeast-1a}
instances:
  - {id: i-server1, availability_zone: ap-northeast-1a, enis: [eni-server1]}
  - {id: i-server2, availability_zone: ap-northeast-1c, enis: [eni-server2]}
network_interfaces:
  - {id: eni-server1, subnet_id: subnet-a, private_ip: 10.0.110.10, mac: "06:00:00:00:01:10", source_dest_check: false}
  - {id: eni-server2, subnet_id: subnet-c, private_ip: 10.0.120.10, mac: "06:00:00:00:01:20", source_dest_check: false}
  - {id: eni-checked, subnet_id: subnet-c, private_ip: 10.0.120.11, source_dest_check: true}
route_tables:
  - id: rtb-1
    vpc_id: vpc-1234abcd
    routes:
      - {destination: 10.0.0.0/16, gateway_id: local}
      - {destination: 10.1.0.20/32, eni_id: eni-server1}
  - id: rtb-2
    vpc_id: vpc-1234abcd
    routes:
      - {destination: 10.0.0.0/16, gateway_id: local}
      - {destination: 0.0.0.0/0, gateway_id: igw-1}
      - {destination: 10.1.0.20/32, eni_id: eni-server1}
  - id: rtb-3
    vpc_id: vpc-1234abcd
    routes:
      - {destination: 10.0.0.0/16, gateway_id: local}
      - {destination: 10.1.0.20/32, eni_id: eni-server1}
  - id: rtb-4
    vpc_id: vpc-1234abcd
    routes:
      - {destination: 10.0.0.0/16, gateway_id: local}
  - id: rtb-other
    vpc_id: vpc-other000
    routes:
      - {destination: 172.16.0.0/16, gateway_id: local}
addresses:
  - {allocation_id: eipalloc-1, public_ip: 203.0.113.10, eni_id: eni-server1}
  - {allocation_id: eipalloc-2, public_ip: 203.0.113.11}
hosted_zones:
  - id: ZVIGILTEST
    name: vigil.test.
    private: true
    records:
      - {name: srv.vigil.test., type: A, ttl: 60, values: [10.0.110.10]}
`

var (
	vip    = netip.MustParseAddr("10.1.0.20")
	ip1    = netip.MustParseAddr("10.0.110.10")
	ip2    = netip.MustParseAddr("10.0.120.10")
	vpcID  = "vpc-1234abcd"
	zoneID = "ZVIGILTEST"
)

// env is one test's emulator and client, with every call the client
// reported.
type env struct {
	emu    *awsemutest.Emulator
	client *awsops.Client

	mu    sync.Mutex
	calls []awsops.Call
}

type envOption func(*awsops.Options)

func withCallTimeout(d time.Duration) envOption {
	return func(o *awsops.Options) { o.CallTimeout = d }
}

// withObserver adds fn to the client's Observe.
func withObserver(fn func(awsops.Call)) envOption {
	return func(o *awsops.Options) {
		prev := o.Observe
		o.Observe = func(c awsops.Call) {
			prev(c)
			fn(c)
		}
	}
}

// withHTTPClient makes the client send through c. The SDK refuses a
// plain *http.Client when AWS_CA_BUNDLE is set, so the test unsets it.
func withHTTPClient(t *testing.T, c *http.Client) envOption {
	t.Setenv("AWS_CA_BUNDLE", "")
	return func(o *awsops.Options) { o.HTTPClient = c }
}

// barrier is an HTTP transport that holds the requests of one action until
// n of them are in flight at once: calls made one after the other never
// get through, calls made in parallel all do.
type barrier struct {
	action  string
	n       int
	mu      sync.Mutex
	waiting int
	release chan struct{}
}

func newBarrier(action string, n int) *barrier {
	return &barrier{action: action, n: n, release: make(chan struct{})}
}

func (b *barrier) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		if strings.Contains(string(body), "Action="+b.action+"&") {
			b.mu.Lock()
			if b.waiting++; b.waiting == b.n {
				close(b.release)
			}
			b.mu.Unlock()
			select {
			case <-b.release:
			case <-req.Context().Done():
				return nil, req.Context().Err()
			}
		}
	}
	return http.DefaultTransport.RoundTrip(req)
}

func withKey(id, secret string) envOption {
	return func(o *awsops.Options) { o.Credentials = credentials.NewStaticCredentialsProvider(id, secret, "") }
}

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	w, err := awsemu.ParseWorld([]byte(worldYAML))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{emu: awsemutest.Start(t, w)}
	o := awsops.Options{
		Region:      e.emu.Region,
		Endpoint:    e.emu.Endpoint,
		Credentials: e.emu.Credentials,
		Observe: func(c awsops.Call) {
			e.mu.Lock()
			e.calls = append(e.calls, c)
			e.mu.Unlock()
		},
	}
	for _, opt := range opts {
		opt(&o)
	}
	e.client, err = awsops.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// observed returns the calls the client reported, optionally of one action.
func (e *env) observed(action string) []awsops.Call {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []awsops.Call
	for _, c := range e.calls {
		if action == "" || c.Action == action {
			out = append(out, c)
		}
	}
	return out
}

// emuCalls returns the emulator's records of one action.
func (e *env) emuCalls(action string) []awsemu.CallRecord {
	var out []awsemu.CallRecord
	for _, c := range e.emu.Server.Calls() {
		if c.Action == action {
			out = append(out, c)
		}
	}
	return out
}

// routeTarget returns the ENI the table's route for dest targets.
func (e *env) routeTarget(t *testing.T, table, dest string) string {
	t.Helper()
	for _, rt := range e.emu.Server.Snapshot().RouteTables {
		if rt.ID != table {
			continue
		}
		for _, r := range rt.Routes {
			if r.Destination == dest {
				return r.ENIID
			}
		}
		return ""
	}
	t.Fatalf("no route table %s", table)
	return ""
}

// resolver asks the emulator's DNS server.
func (e *env) resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", e.emu.DNSAddr)
		},
	}
}

// ctx returns a context with a generous deadline: tests that need the
// deadline to pass use expiringCtx instead of a short timeout.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// wantErr checks err's code, message and target.
func wantErr(t *testing.T, err error, code int, msg, target string) *awsops.Error {
	t.Helper()
	var e *awsops.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *awsops.Error", err, err)
	}
	if e.Code != code || e.Message != msg || (target != "" && e.Target != target) {
		t.Fatalf("err = {Code: %d, Message: %q, Target: %q}, want {%d, %q, %q}", e.Code, e.Message, e.Target, code, msg, target)
	}
	return e
}

// expiringCtx is a context whose deadline passes when the test says so,
// not at a wall-clock instant: Err is then context.DeadlineExceeded.
type expiringCtx struct {
	context.Context
	once sync.Once
	done chan struct{}
}

func newExpiringCtx() *expiringCtx {
	return &expiringCtx{Context: context.Background(), done: make(chan struct{})}
}

func (c *expiringCtx) Deadline() (time.Time, bool) { return time.Now().Add(time.Hour), true }
func (c *expiringCtx) Done() <-chan struct{}       { return c.done }

func (c *expiringCtx) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

func (c *expiringCtx) expire() { c.once.Do(func() { close(c.done) }) }

// fakeClock drives the emulator's clock (token lifetimes, change delays).
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// newFakeClock returns a clock standing at a fixed, non-zero instant.
func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
