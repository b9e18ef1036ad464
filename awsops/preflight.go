package awsops

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Plan lists the AWS objects a configuration uses, for Preflight and
// IAMPolicy.
type Plan struct {
	VIPs    []VIPPlan
	EIPs    []EIPPlan
	Records []RecordPlan
	AZs     []string
}

// VIPPlan is one aws_vip resource.
type VIPPlan struct {
	VIP         netip.Addr
	VPCID       string
	ENIIDs      []string // every server's ENI
	RouteTables []string // empty: every table of the VPC with a VIP/32 route
}

// EIPPlan is one aws_eip resource.
type EIPPlan struct {
	AllocationID string
	ENIIDs       []string
}

// RecordPlan is one aws_dns resource.
type RecordPlan struct {
	ZoneID string
	Name   string
}

// Finding is one result of Preflight.
type Finding struct {
	Check  string // what was checked ("route table rtb-1 holds 10.1.0.20/32")
	OK     bool
	Detail string // what was found
	Fix    string // what to do when not OK
}

// Fixes Preflight proposes.
const (
	fixNetwork = "Check that this node reaches the regional endpoint: the NAT instance (or VPC endpoint) runs, " +
		"the route tables lead to it, and no security group or network ACL drops the packets."
	fixCredentials = "Attach an IAM role to the instance (recommended), or give the user running vigild credentials " +
		"in its environment or ~/.aws/credentials."
	fixPolicy = "Allow the action in the IAM policy of the instance role; vigilctl prints a least-privilege policy for the configuration."
	fixID     = "Correct the ID in the configuration."
)

// preflight collects findings.
type preflight struct {
	c    *Client
	ctx  context.Context
	out  []Finding
	seen map[string]bool
	enis map[string]*eniResult
	vpcs map[string]*vpcResult
}

type vpcResult struct {
	cidrs []netip.Prefix
	err   error
}

type eniResult struct {
	eni ec2types.NetworkInterface
	err error
}

// add records a finding once: a check repeated for a second resource of
// the plan (an ENI shared by a VIP and an EIP) gives the same answer.
func (p *preflight) add(f Finding) {
	if p.seen[f.Check] {
		return
	}
	p.seen[f.Check] = true
	p.out = append(p.out, f)
}

func (p *preflight) ok(check, detail string) {
	p.add(Finding{Check: check, OK: true, Detail: detail})
}

func (p *preflight) fail(check, detail, fix string) {
	p.add(Finding{Check: check, Detail: detail, Fix: fix})
}

// failErr records a failed AWS call with AWS's message and a fix that suits
// its error.
func (p *preflight) failErr(check string, err error, fix string) {
	switch code := AWSCodeOf(err); {
	case CodeOf(err) == CodeTimeout:
		fix = fixNetwork
	case isDenied(code):
		fix = fixPolicy
	case isCredentialError(code):
		fix = fixCredentials
	}
	p.fail(check, err.Error(), fix)
}

// isDenied reports whether an AWS error code means the policy denied it.
func isDenied(code string) bool {
	switch code {
	case "UnauthorizedOperation", "AccessDenied", "AccessDeniedException":
		return true
	}
	return false
}

// isCredentialError reports whether an AWS error code means the
// credentials themselves are wrong.
func isCredentialError(code string) bool {
	switch code {
	case "AuthFailure", "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken",
		"InvalidAccessKeyId", "UnrecognizedClientException", "MissingAuthenticationToken":
		return true
	}
	return false
}

// call runs fn with its own default deadline when ctx has none.
func (p *preflight) call(fn func(ctx context.Context) error) error {
	ctx, cancel := withDeadline(p.ctx)
	defer cancel()
	return fn(ctx)
}

// Preflight checks from this node that the plan can work: credentials,
// availability zones, VPCs and VIPs outside their CIDR blocks, route tables
// and their VIP/32 routes, the ENIs and their source/destination check, EIP
// allocations, hosted zones and record sets, and the permissions of the
// changing EC2 actions, proven with DryRun. Every failure, AWS's included,
// becomes a Finding; the order follows the plan.
func (c *Client) Preflight(ctx context.Context, p Plan) (findings []Finding) {
	pf := &preflight{c: c, ctx: ctx, seen: map[string]bool{}, enis: map[string]*eniResult{}, vpcs: map[string]*vpcResult{}}
	defer func() {
		if r := recover(); r != nil {
			pf.fail("preflight", fmt.Sprintf("internal error: %v", r), "Report this as a bug of Vigil.")
			findings = pf.out
		}
	}()
	pf.identity()
	for _, az := range uniq(p.AZs) {
		pf.az(az)
	}
	for _, v := range p.VIPs {
		pf.vip(v)
	}
	for _, e := range p.EIPs {
		pf.eip(e)
	}
	zones := map[string]*r53types.HostedZone{}
	for _, r := range p.Records {
		pf.record(r, zones)
	}
	return pf.out
}

func (p *preflight) identity() {
	const check = "AWS credentials work (sts:GetCallerIdentity)"
	var out *sts.GetCallerIdentityOutput
	err := p.call(func(ctx context.Context) error {
		return p.c.run.call(ctx, "sts", "GetCallerIdentity", "", func(ctx context.Context) error {
			var err error
			out, err = p.c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			return err
		})
	})
	if err != nil {
		p.failErr(check, err, fixCredentials)
		return
	}
	p.ok(check, fmt.Sprintf("account %s, %s", aws.ToString(out.Account), aws.ToString(out.Arn)))
}

func (p *preflight) az(az string) {
	check := fmt.Sprintf("availability zone %s is valid", az)
	var state string
	err := p.call(func(ctx context.Context) error {
		var err error
		state, err = p.c.AZState(ctx, az)
		return err
	})
	switch {
	case err != nil:
		p.failErr(check, err, "Specify a correct availability zone.")
	case state != string(ec2types.AvailabilityZoneStateAvailable):
		p.fail(check, "state "+state, "Wait until AWS reports the zone available, or run the node in another zone.")
	default:
		p.ok(check, "state "+state)
	}
}

func (p *preflight) vip(v VIPPlan) {
	dest, err := vipRoute("preflight", v.VIP)
	if err != nil {
		p.fail(fmt.Sprintf("VIP %s is an IPv4 address", v.VIP), err.Error(), "Specify an IPv4 address as the VIP.")
		return
	}
	vip := v.VIP.Unmap()
	vpcOK := p.vpc(v.VPCID, vip)
	for _, eni := range uniq(v.ENIIDs) {
		p.eniForVIP(eni, v.VPCID)
	}
	var tables []string
	if len(v.RouteTables) > 0 {
		for _, t := range uniq(v.RouteTables) {
			if p.routeTable(t, v, dest) {
				tables = append(tables, t)
			}
		}
	} else if vpcOK {
		tables = p.vpcRouteTables(v, dest)
	}
	if len(v.ENIIDs) == 0 {
		p.fail(fmt.Sprintf("VIP %s has the servers' ENIs", vip), "no ENI ID configured", "Set the ENI ID of every server.")
		return
	}
	eni := v.ENIIDs[0]
	for _, t := range tables {
		p.dryRun("ReplaceRoute", t, func(ctx context.Context) error {
			_, err := p.c.ec2.ReplaceRoute(ctx, &ec2.ReplaceRouteInput{DryRun: aws.Bool(true),
				RouteTableId: aws.String(t), DestinationCidrBlock: aws.String(dest), NetworkInterfaceId: aws.String(eni)})
			return err
		})
		p.dryRun("CreateRoute", t, func(ctx context.Context) error {
			_, err := p.c.ec2.CreateRoute(ctx, &ec2.CreateRouteInput{DryRun: aws.Bool(true),
				RouteTableId: aws.String(t), DestinationCidrBlock: aws.String(dest), NetworkInterfaceId: aws.String(eni)})
			return err
		})
	}
}

// vpc checks that the VPC exists and the VIP lies outside its CIDR blocks;
// it reports whether the VPC exists.
func (p *preflight) vpc(vpcID string, vip netip.Addr) bool {
	r, ok := p.vpcs[vpcID]
	if !ok {
		r = &vpcResult{}
		r.err = p.call(func(ctx context.Context) error {
			var err error
			r.cidrs, err = p.c.vpcCIDRs(ctx, vpcID)
			return err
		})
		p.vpcs[vpcID] = r
	}
	cidrs, err := r.cidrs, r.err
	check := fmt.Sprintf("VPC %s exists", vpcID)
	if err != nil {
		p.failErr(check, err, "Specify a correct VPC ID.")
		return false
	}
	list := make([]string, len(cidrs))
	for i, c := range cidrs {
		list[i] = c.String()
	}
	p.ok(check, "CIDR blocks "+strings.Join(list, ", "))
	check = fmt.Sprintf("VIP %s lies outside the CIDR blocks of %s", vip, vpcID)
	for _, c := range cidrs {
		if c.Contains(vip) {
			p.fail(check, fmt.Sprintf("The VIP address %s belongs to a VPC subnet. (%s)", vip, c),
				"Specify an address outside every CIDR block of the VPC as the VIP: the VPC routes its own blocks itself.")
			return true
		}
	}
	p.ok(check, "outside "+strings.Join(list, ", "))
	return true
}

func (p *preflight) describeENI(id string) (ec2types.NetworkInterface, error) {
	if r, ok := p.enis[id]; ok {
		return r.eni, r.err
	}
	r := &eniResult{}
	r.err = p.call(func(ctx context.Context) error {
		var out *ec2.DescribeNetworkInterfacesOutput
		err := p.c.run.call(ctx, "ec2", "DescribeNetworkInterfaces", id, func(ctx context.Context) error {
			var err error
			out, err = p.c.ec2.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{id}})
			return err
		})
		if err != nil {
			return err
		}
		for _, n := range out.NetworkInterfaces {
			if aws.ToString(n.NetworkInterfaceId) == id {
				r.eni = n
				return nil
			}
		}
		return &Error{Code: CodeAWSFailed, Op: "DescribeNetworkInterfaces", Target: id, AWSCode: "InvalidNetworkInterfaceID.NotFound",
			Message: fmt.Sprintf("The networkInterface ID '%s' does not exist", id)}
	})
	p.enis[id] = r
	return r.eni, r.err
}

// eni checks that the ENI exists (and lies in vpcID when set); it returns
// the ENI and whether it exists.
func (p *preflight) eni(id, vpcID string) (ec2types.NetworkInterface, bool) {
	check := fmt.Sprintf("network interface %s exists", id)
	n, err := p.describeENI(id)
	if err != nil {
		p.failErr(check, err, "Specify a correct ENI ID.")
		return n, false
	}
	detail := fmt.Sprintf("in %s, %s, private IP %s", aws.ToString(n.VpcId), aws.ToString(n.SubnetId), aws.ToString(n.PrivateIpAddress))
	if n.Attachment != nil && aws.ToString(n.Attachment.InstanceId) != "" {
		detail += ", attached to " + aws.ToString(n.Attachment.InstanceId)
	}
	if vpcID != "" && aws.ToString(n.VpcId) != vpcID {
		p.fail(check, detail, fmt.Sprintf("Specify an ENI of %s: the VIP's route tables can only target ENIs of their VPC.", vpcID))
		return n, true
	}
	p.ok(check, detail)
	return n, true
}

func (p *preflight) eniForVIP(id, vpcID string) {
	n, ok := p.eni(id, vpcID)
	if !ok {
		return
	}
	check := fmt.Sprintf("source/destination check disabled on %s", id)
	if aws.ToBool(n.SourceDestCheck) {
		p.fail(check, "Source/Dest. Check is enabled: the ENI drops packets addressed to the VIP.",
			fmt.Sprintf("Disable Source/Dest. Check on %s: EC2 console → Network interfaces → Actions → Change source/dest. check", id))
		return
	}
	p.ok(check, "disabled")
}

// describeTable returns one route table.
func (p *preflight) describeTable(id string) (ec2types.RouteTable, error) {
	var rts []ec2types.RouteTable
	err := p.call(func(ctx context.Context) error {
		var err error
		rts, err = p.c.describeRouteTables(ctx, id, &ec2.DescribeRouteTablesInput{RouteTableIds: []string{id}})
		return err
	})
	if err != nil {
		return ec2types.RouteTable{}, err
	}
	for _, rt := range rts {
		if aws.ToString(rt.RouteTableId) == id {
			return rt, nil
		}
	}
	return ec2types.RouteTable{}, &Error{Code: CodeAWSFailed, Op: "DescribeRouteTables", Target: id, AWSCode: "InvalidRouteTableID.NotFound",
		Message: fmt.Sprintf("The routeTable ID '%s' does not exist", id)}
}

// routeTable checks one configured route table; it reports whether the
// table exists.
func (p *preflight) routeTable(id string, v VIPPlan, dest string) bool {
	check := fmt.Sprintf("route table %s holds %s", id, dest)
	rt, err := p.describeTable(id)
	if err != nil {
		p.failErr(check, err, "Specify a correct route table ID.")
		return false
	}
	if got := aws.ToString(rt.VpcId); got != v.VPCID {
		p.fail(check, fmt.Sprintf("%s belongs to %s, not %s", id, got, v.VPCID), "List only route tables of the VIP's VPC.")
		return true
	}
	p.route(check, rt, v, dest)
	return true
}

// route checks the VIP route of one table: present, and pointing at one
// of the servers' ENIs.
func (p *preflight) route(check string, rt ec2types.RouteTable, v VIPPlan, dest string) {
	id := aws.ToString(rt.RouteTableId)
	r := findRoute(rt, dest)
	if r == nil {
		p.fail(check, fmt.Sprintf("%s has no %s route", id, dest),
			fmt.Sprintf("Add a route %s → %s (a server's ENI) to %s: VPC console → Route tables → %s → Routes → Edit routes.",
				dest, firstOr(v.ENIIDs, "eni-…"), id, id))
		return
	}
	target := routeTarget(*r)
	if !slices.Contains(v.ENIIDs, aws.ToString(r.NetworkInterfaceId)) {
		p.fail(check, fmt.Sprintf("the route targets %s, not one of the servers' ENIs (%s)", target, strings.Join(v.ENIIDs, ", ")),
			fmt.Sprintf("Check that no other cluster uses VIP %s, and point the route at a server's ENI.", v.VIP.Unmap()))
		return
	}
	p.ok(check, "targets "+target)
}

// vpcRouteTables checks that some route table of the VPC holds the VIP
// route, checks each of them, and returns their IDs.
func (p *preflight) vpcRouteTables(v VIPPlan, dest string) []string {
	check := fmt.Sprintf("route tables of %s hold %s", v.VPCID, dest)
	var rts []ec2types.RouteTable
	err := p.call(func(ctx context.Context) error {
		var err error
		rts, err = p.c.vipTables(ctx, v.VPCID, dest)
		return err
	})
	if err != nil {
		p.failErr(check, err, fixNetwork)
		return nil
	}
	if len(rts) == 0 {
		p.fail(check, fmt.Sprintf("no route table of %s has a %s route", v.VPCID, dest),
			fmt.Sprintf("Add a route %s → a server's ENI to every route table of %s whose clients use the VIP, or list the tables in the configuration.",
				dest, v.VPCID))
		return nil
	}
	slices.SortFunc(rts, func(a, b ec2types.RouteTable) int {
		return strings.Compare(aws.ToString(a.RouteTableId), aws.ToString(b.RouteTableId))
	})
	ids := make([]string, len(rts))
	for i, rt := range rts {
		ids[i] = aws.ToString(rt.RouteTableId)
	}
	p.ok(check, strings.Join(ids, ", "))
	for _, rt := range rts {
		p.route(fmt.Sprintf("route table %s holds %s", aws.ToString(rt.RouteTableId), dest), rt, v, dest)
	}
	return ids
}

// dryRun proves a permission with a DryRun call: DryRunOperation means
// allowed, UnauthorizedOperation denied.
func (p *preflight) dryRun(action, target string, fn func(ctx context.Context) error) {
	check := fmt.Sprintf("permission ec2:%s on %s", action, target)
	err := p.call(func(ctx context.Context) error {
		return p.c.run.call(ctx, "ec2", action+" (dry run)", target, fn)
	})
	code := AWSCodeOf(err)
	switch {
	case err == nil, code == "DryRunOperation":
		p.ok(check, "allowed (dry run)")
	case isDenied(code):
		on := ""
		if strings.HasPrefix(target, "rtb-") {
			on = " on arn:aws:ec2:*:*:route-table/" + target
		}
		p.fail(check, err.Error(), fmt.Sprintf("Allow ec2:%s%s in the IAM policy of the instance role; vigilctl prints a least-privilege policy.",
			action, on))
	case CodeOf(err) == CodeTimeout:
		p.fail(check, err.Error(), fixNetwork)
	default:
		p.ok(check, "not proven: AWS answered the dry run with "+err.Error())
	}
}

func (p *preflight) eip(e EIPPlan) {
	check := fmt.Sprintf("EIP allocation %s exists", e.AllocationID)
	var a ec2types.Address
	err := p.call(func(ctx context.Context) error {
		var err error
		a, err = p.c.describeAddress(ctx, e.AllocationID)
		return err
	})
	if err != nil {
		p.failErr(check, err, "Specify a correct EIP allocation ID.")
	} else {
		detail := "public IP " + aws.ToString(a.PublicIp)
		if n := aws.ToString(a.NetworkInterfaceId); n != "" {
			detail += ", associated with " + n
		} else {
			detail += ", not associated"
		}
		p.ok(check, detail)
	}
	for _, id := range uniq(e.ENIIDs) {
		p.eni(id, "")
	}
	if err != nil || len(e.ENIIDs) == 0 {
		return
	}
	eni := e.ENIIDs[0]
	p.dryRun("AssociateAddress", e.AllocationID, func(ctx context.Context) error {
		_, err := p.c.ec2.AssociateAddress(ctx, &ec2.AssociateAddressInput{DryRun: aws.Bool(true),
			AllocationId: aws.String(e.AllocationID), NetworkInterfaceId: aws.String(eni), AllowReassociation: aws.Bool(true)})
		return err
	})
	if assoc := aws.ToString(a.AssociationId); assoc != "" {
		p.dryRun("DisassociateAddress", e.AllocationID, func(ctx context.Context) error {
			_, err := p.c.ec2.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{DryRun: aws.Bool(true), AssociationId: aws.String(assoc)})
			return err
		})
	} else {
		p.ok(fmt.Sprintf("permission ec2:DisassociateAddress on %s", e.AllocationID),
			"not proven: the EIP is not associated, so there is no association to dry-run")
	}
}

func (p *preflight) record(r RecordPlan, zones map[string]*r53types.HostedZone) {
	zone := zoneID(r.ZoneID)
	hz, seen := zones[zone]
	if !seen {
		check := fmt.Sprintf("hosted zone %s exists", zone)
		err := p.call(func(ctx context.Context) error {
			return p.c.run.call(ctx, "route53", "GetHostedZone", zone, func(ctx context.Context) error {
				out, err := p.c.r53.GetHostedZone(ctx, &route53.GetHostedZoneInput{Id: aws.String(zone)})
				if err == nil {
					hz = out.HostedZone
				}
				return err
			})
		})
		zones[zone] = hz
		switch {
		case err != nil:
			p.failErr(check, err, "Specify a correct hosted zone ID.")
		case hz == nil:
			p.fail(check, "Route 53 returned no zone", "Specify a correct hosted zone ID.")
		default:
			kind := "public"
			if hz.Config != nil && hz.Config.PrivateZone {
				kind = "private"
			}
			p.ok(check, fmt.Sprintf("%s (%s)", aws.ToString(hz.Name), kind))
		}
	}
	if hz == nil {
		return
	}
	name := fqdn(r.Name)
	zname := fqdn(aws.ToString(hz.Name))
	check := fmt.Sprintf("record set %s lies in zone %s", name, zname)
	lname, lz := strings.ToLower(unescapeName(name)), strings.ToLower(unescapeName(zname))
	if lname != lz && !strings.HasSuffix(lname, "."+lz) {
		p.fail(check, fmt.Sprintf("%s is not a name of %s", name, zname), "Specify a record set name ending in the zone's name, with its final dot.")
		return
	}
	p.ok(check, "yes")
	check = fmt.Sprintf("record set %s can be read (route53:ListResourceRecordSets)", name)
	var rs *r53types.ResourceRecordSet
	err := p.call(func(ctx context.Context) error {
		var err error
		rs, err = p.c.lookupRecord(ctx, zone, name)
		return err
	})
	switch {
	case err != nil:
		p.failErr(check, err, fixPolicy)
	case rs == nil:
		p.ok(check, "absent: the aws_dns resource creates it on start")
	default:
		p.ok(check, "holds "+strings.Join(recordIPs(rs), ", "))
	}
}

// uniq returns the non-empty strings of s, sorted, without duplicates.
func uniq(s []string) []string {
	out := make([]string, 0, len(s))
	for _, v := range s {
		if v != "" {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}
