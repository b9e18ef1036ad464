package resource

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/vigil-ha/vigil/awsops"
	"github.com/vigil-ha/vigil/control/config"
	"github.com/vigil-ha/vigil/control/monitor"
	"github.com/vigil-ha/vigil/dataplane/vip"
)

// AWSEnv is how this node reaches AWS: one client shared by every aws_*
// resource and monitor, made on first use, and the instance's identity read
// once from IMDSv2 when the configuration leaves a region, VPC, ENI, AZ or
// address to discover. Its methods are safe for concurrent use.
type AWSEnv struct {
	// Settings are the configuration's cluster.aws settings.
	Settings config.AWS
	// Credentials overrides the SDK's default chain when not nil (tests).
	Credentials aws.CredentialsProvider
	// Observe, when not nil, sees every AWS call (metrics).
	Observe func(awsops.Call)

	mu     sync.Mutex
	client *awsops.Client
	inst   *awsops.Instance
}

// Client returns the shared client, making it on first use. Without a
// configured region it first asks IMDSv2 for the instance's region.
func (e *AWSEnv) Client(ctx context.Context) (*awsops.Client, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.client != nil {
		return e.client, nil
	}
	region := e.Settings.Region
	if region == "" {
		inst, err := e.instanceLocked(ctx)
		if err != nil {
			return nil, err
		}
		region = inst.Region
	}
	c, err := awsops.New(ctx, awsops.Options{
		Region:      region,
		Endpoint:    e.Settings.Endpoint,
		CallTimeout: e.callTimeout(),
		Credentials: e.Credentials,
		Observe:     e.Observe,
	})
	if err != nil {
		return nil, err
	}
	e.client = c
	return c, nil
}

// Instance returns the instance's identity from IMDSv2, read once.
func (e *AWSEnv) Instance(ctx context.Context) (awsops.Instance, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.instanceLocked(ctx)
}

func (e *AWSEnv) instanceLocked(ctx context.Context) (awsops.Instance, error) {
	if e.inst != nil {
		return *e.inst, nil
	}
	inst, err := awsops.Discover(ctx, e.Settings.IMDSEndpoint, e.callTimeout())
	if err != nil {
		return awsops.Instance{}, fmt.Errorf("discover the instance from IMDSv2: %w", err)
	}
	e.inst = &inst
	return inst, nil
}

func (e *AWSEnv) callTimeout() time.Duration {
	return time.Duration(e.Settings.CallTimeoutMS) * time.Millisecond
}

// Resolver returns the resolver aws_dns monitors check names with.
func (e *AWSEnv) Resolver() awsops.Resolver {
	addr := e.Settings.DNSResolver
	if addr == "" {
		return net.DefaultResolver
	}
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

// orDiscover returns v, or when it is empty, pick's answer from the
// instance's identity.
func (e *AWSEnv) orDiscover(ctx context.Context, v, what string, pick func(awsops.Instance) string) (string, error) {
	if v != "" {
		return v, nil
	}
	inst, err := e.Instance(ctx)
	if err != nil {
		return "", err
	}
	if v = pick(inst); v == "" {
		return "", fmt.Errorf("IMDSv2 did not tell the instance's %s: set it in the configuration", what)
	}
	return v, nil
}

// observed returns ctx with every AWS call made through it noted in the
// operation's timeline as "ec2 ReplaceRoute rtb-1: ok in 23 ms".
func observed(ctx context.Context) context.Context {
	return awsops.WithObserver(ctx, func(c awsops.Call) {
		Note(ctx, c.Start, FormatCall(c))
	})
}

// FormatCall is the timeline's line for one AWS call.
func FormatCall(c awsops.Call) string {
	result := "ok"
	if c.Err != nil {
		result = fmt.Sprintf("code %d: %v", awsops.CodeOf(c.Err), c.Err)
	}
	s := fmt.Sprintf("aws %s %s", c.Service, c.Action)
	if c.Target != "" {
		s += " " + c.Target
	}
	s += fmt.Sprintf(": %s in %s", result, fmtMS(c.Latency))
	if c.Attempts > 1 {
		s += fmt.Sprintf(" (%d attempts)", c.Attempts)
	}
	return s
}

func fmtMS(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

// coded prefixes an error with its guide code, as the guides' messages
// read: "7: The VIP address 10.0.0.5 belongs to a VPC subnet.".
func coded(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%d: %w", awsops.CodeOf(err), err)
}

// awsResult turns an awsops error into a monitor result with its guide code.
func awsResult(err error) monitor.Result {
	if err == nil {
		return monitor.Result{Status: monitor.OK}
	}
	return monitor.Result{Status: monitor.Error, Code: awsops.CodeOf(err), Message: err.Error()}
}

// AWSVIP is the guides' AWS virtual IP: the VIP/32 bound on this node and
// every route table's route for it pointing at this node's ENI.
type AWSVIP struct {
	Name    string
	VIP     netip.Addr
	VPCID   string   // empty: the instance's VPC
	ENIID   string   // empty: the instance's primary ENI
	Tables  []string // empty: every table of the VPC with a VIP/32 route
	Binding vip.Binding
	Addrs   *AddrSet
	AWS     *AWSEnv

	mu        sync.Mutex
	outsideOK bool     // the VIP was found outside the VPC's CIDRs
	found     []string // route tables found holding the VIP/32 route
}

// NewAWSVIP builds the aws_vip resource r as server sees it. iface is the
// local interface the VIP goes on (the configured one, or the default
// route's, resolved by the caller).
func NewAWSVIP(r *config.Resource, iface string, addrs *AddrSet, env *AWSEnv) (*AWSVIP, error) {
	c := r.AWSVIP
	ip, err := netip.ParseAddr(c.IP)
	if err != nil || !ip.Is4() {
		return nil, fmt.Errorf("aws_vip %s: %q is not an IPv4 address", r.Name, c.IP)
	}
	return &AWSVIP{
		Name:    r.Name,
		VIP:     ip,
		VPCID:   c.VPCID,
		ENIID:   c.ENIID,
		Tables:  slices.Clone(c.RouteTables),
		Binding: AWSVIPBinding(ip, iface),
		Addrs:   addrs,
		AWS:     env,
	}, nil
}

// AWSVIPBinding is the local binding of an aws_vip: the VIP as a /32,
// without gratuitous ARP (the VPC routes by its route tables, not ARP).
func AWSVIPBinding(ip netip.Addr, iface string) vip.Binding {
	return vip.Binding{Interface: iface, Prefix: netip.PrefixFrom(ip, 32), Quiet: true}
}

func (v *AWSVIP) ids(ctx context.Context) (vpc, eni string, err error) {
	vpc, err = v.AWS.orDiscover(ctx, v.VPCID, "VPC ID", func(i awsops.Instance) string { return i.VPCID })
	if err != nil {
		return "", "", err
	}
	eni, err = v.AWS.orDiscover(ctx, v.ENIID, "ENI ID", func(i awsops.Instance) string { return i.ENIID })
	return vpc, eni, err
}

// tables returns the route tables to switch: the configured ones, else
// those found holding the VIP/32 route, asked once per process (a table
// added later is found after a restart, or listed in route_tables).
func (v *AWSVIP) tables(ctx context.Context, c *awsops.Client, vpc string) ([]string, error) {
	if len(v.Tables) > 0 {
		return v.Tables, nil
	}
	v.mu.Lock()
	found := v.found
	v.mu.Unlock()
	if len(found) > 0 {
		return found, nil
	}
	found, err := c.VIPRouteTables(ctx, vpc, v.VIP)
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, &awsops.Error{Code: awsops.CodeAWSFailed, Op: "find route tables", Target: vpc,
			Message: fmt.Sprintf("No route table of %s has a route for %s/32: add one to each route table the clients use, or list route_tables.", vpc, v.VIP)}
	}
	v.mu.Lock()
	v.found = found
	v.mu.Unlock()
	return found, nil
}

// Prepare does ahead of time what Start needs before it can switch routes:
// the instance's identity, the check that the VIP lies outside the VPC,
// and the route tables to switch. A standby that prepared fails over with
// one round of parallel ReplaceRoute calls. Errors are left for Start.
func (v *AWSVIP) Prepare(ctx context.Context) {
	c, err := v.AWS.Client(ctx)
	if err != nil {
		return
	}
	if vpc, _, err := v.ids(ctx); err == nil {
		if v.checkOutside(ctx, c, vpc) == nil {
			v.tables(ctx, c, vpc)
		}
	}
}

// checkOutside checks once that the VIP lies outside the VPC's CIDRs.
func (v *AWSVIP) checkOutside(ctx context.Context, c *awsops.Client, vpc string) error {
	v.mu.Lock()
	checked := v.outsideOK
	v.mu.Unlock()
	if checked {
		return nil
	}
	if err := c.CheckVIPOutsideVPC(ctx, vpc, v.VIP); err != nil {
		return err
	}
	v.mu.Lock()
	v.outsideOK = true
	v.mu.Unlock()
	return nil
}

// Start binds the VIP here and points its route in every table at this
// node's ENI, the tables in parallel. A failed start leaves the VIP unbound.
func (v *AWSVIP) Start(ctx context.Context) error { return coded(v.start(ctx)) }

func (v *AWSVIP) start(ctx context.Context) error {
	ctx = observed(ctx)
	c, err := v.AWS.Client(ctx)
	if err != nil {
		return err
	}
	vpc, eni, err := v.ids(ctx)
	if err != nil {
		return err
	}
	if err := v.checkOutside(ctx, c, vpc); err != nil {
		return err
	}
	tables, err := v.tables(ctx, c, vpc)
	if err != nil {
		return err
	}
	if err := v.Addrs.change(v.Binding, true); err != nil {
		return fmt.Errorf("aws_vip %s: %w", v.Name, err)
	}
	if err := c.PointVIPRoutes(ctx, v.VIP, eni, tables); err != nil {
		if uerr := v.Addrs.change(v.Binding, false); uerr != nil {
			return fmt.Errorf("%w (and unbinding the VIP failed: %v)", err, uerr)
		}
		return err
	}
	return nil
}

// Stop unbinds the VIP. The routes stay: the next owner points them at
// itself.
func (v *AWSVIP) Stop(ctx context.Context) error { return coded(v.stop(ctx)) }

func (v *AWSVIP) stop(ctx context.Context) error {
	if err := v.Addrs.change(v.Binding, false); err != nil {
		return fmt.Errorf("aws_vip %s: %w", v.Name, err)
	}
	return nil
}

// Check is the aws_vip monitor: the VIP is bound here and every route for
// it targets this node's ENI (else the guides' code 8).
func (v *AWSVIP) Check(ctx context.Context) monitor.Result {
	bound, err := v.Addrs.binder.IsBound(v.Binding)
	if err != nil {
		return monitor.Result{Status: monitor.Error, Code: monitor.CodeInternal, Message: err.Error()}
	}
	if !bound {
		return monitor.Result{Status: monitor.Error, Code: awsops.CodeRoutingChanged,
			Message: fmt.Sprintf("The VIP address %s is not bound on %s.", v.VIP, v.Binding.Interface)}
	}
	c, err := v.AWS.Client(ctx)
	if err != nil {
		return awsResult(err)
	}
	vpc, eni, err := v.ids(ctx)
	if err != nil {
		return awsResult(err)
	}
	return awsResult(c.CheckVIPRoutes(ctx, vpc, v.VIP, eni, v.Tables))
}

// AWSEIP is the guides' AWS Elastic IP: the allocation associated with this
// node's ENI.
type AWSEIP struct {
	Name         string
	AllocationID string
	ENIID        string // empty: the instance's primary ENI
	AWS          *AWSEnv
}

// call runs fn with the client and this node's ENI.
func (e *AWSEIP) call(ctx context.Context, fn func(c *awsops.Client, eni string) error) error {
	c, err := e.AWS.Client(ctx)
	if err != nil {
		return err
	}
	eni, err := e.AWS.orDiscover(ctx, e.ENIID, "ENI ID", func(i awsops.Instance) string { return i.ENIID })
	if err != nil {
		return err
	}
	return fn(c, eni)
}

// Start associates the EIP with this node's ENI, taking it from another.
func (e *AWSEIP) Start(ctx context.Context) error {
	ctx = observed(ctx)
	return coded(e.call(ctx, func(c *awsops.Client, eni string) error { return c.AssociateEIP(ctx, e.AllocationID, eni) }))
}

// Stop disassociates the EIP if it is still associated with this node.
func (e *AWSEIP) Stop(ctx context.Context) error {
	ctx = observed(ctx)
	return coded(e.call(ctx, func(c *awsops.Client, eni string) error { return c.DisassociateEIP(ctx, e.AllocationID, eni) }))
}

// Check is the aws_eip monitor: the EIP is associated with this node's ENI
// (else the guides' code 7).
func (e *AWSEIP) Check(ctx context.Context) monitor.Result {
	return awsResult(e.call(ctx, func(c *awsops.Client, eni string) error { return c.CheckEIP(ctx, e.AllocationID, eni) }))
}

// AWSDNS is the guides' AWS DNS resource: a Route 53 A record set naming
// this node.
type AWSDNS struct {
	Name            string
	ZoneID          string
	RecordName      string
	IP              string // empty: the instance's private IPv4 address
	TTL             int
	DeleteOnStop    bool
	WaitInSync      bool
	CheckResolution bool
	AWS             *AWSEnv
}

func (d *AWSDNS) record(ctx context.Context) (awsops.Record, error) {
	s, err := d.AWS.orDiscover(ctx, d.IP, "private IPv4 address", func(i awsops.Instance) string {
		if !i.PrivateIP.IsValid() {
			return ""
		}
		return i.PrivateIP.String()
	})
	if err != nil {
		return awsops.Record{}, err
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return awsops.Record{}, fmt.Errorf("aws_dns %s: %q is not an IP address", d.Name, s)
	}
	return awsops.Record{ZoneID: d.ZoneID, Name: d.RecordName, IP: ip, TTL: d.TTL}, nil
}

// call runs fn with the client and the record set as this node holds it.
func (d *AWSDNS) call(ctx context.Context, fn func(c *awsops.Client, r awsops.Record) error) error {
	c, err := d.AWS.Client(ctx)
	if err != nil {
		return err
	}
	r, err := d.record(ctx)
	if err != nil {
		return err
	}
	return fn(c, r)
}

// Start upserts the record set, waiting for INSYNC when configured.
func (d *AWSDNS) Start(ctx context.Context) error {
	ctx = observed(ctx)
	return coded(d.call(ctx, func(c *awsops.Client, r awsops.Record) error { return c.UpsertRecord(ctx, r, d.WaitInSync) }))
}

// Stop deletes the record set when configured to.
func (d *AWSDNS) Stop(ctx context.Context) error {
	if !d.DeleteOnStop {
		return nil
	}
	ctx = observed(ctx)
	return coded(d.call(ctx, func(c *awsops.Client, r awsops.Record) error { return c.DeleteRecord(ctx, r) }))
}

// Check is the aws_dns monitor: the record set exists (7) and holds this
// node's address (8); with CheckResolution the name also resolves (9) to
// this node's address (10).
func (d *AWSDNS) Check(ctx context.Context) monitor.Result {
	return awsResult(d.call(ctx, func(c *awsops.Client, r awsops.Record) error {
		if err := c.CheckRecord(ctx, r); err != nil || !d.CheckResolution {
			return err
		}
		return awsops.CheckResolves(ctx, d.AWS.Resolver(), r.Name, r.IP)
	}))
}
