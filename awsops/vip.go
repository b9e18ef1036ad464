package awsops

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// vipRoute returns the destination of vip's host route ("10.1.0.20/32").
func vipRoute(op string, vip netip.Addr) (string, error) {
	vip = vip.Unmap()
	if !vip.Is4() {
		return "", invalid(op, vip.String(), "The VIP address %q is not an IPv4 address.", vip.String())
	}
	return netip.PrefixFrom(vip, 32).String(), nil
}

// vpcCIDRs returns every IPv4 CIDR block of the VPC: the primary one and
// the associated additional ones.
func (c *Client) vpcCIDRs(ctx context.Context, vpcID string) ([]netip.Prefix, error) {
	var out *ec2.DescribeVpcsOutput
	err := c.run.call(ctx, "ec2", "DescribeVpcs", vpcID, func(ctx context.Context) error {
		var err error
		out, err = c.ec2.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{vpcID}})
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(out.Vpcs) == 0 {
		return nil, &Error{Code: CodeAWSFailed, Op: "DescribeVpcs", Target: vpcID, AWSCode: "InvalidVpcID.NotFound",
			Message: fmt.Sprintf("The vpc ID '%s' does not exist", vpcID)}
	}
	var cidrs []netip.Prefix
	seen := map[netip.Prefix]bool{}
	add := func(s *string) {
		p, err := netip.ParsePrefix(aws.ToString(s))
		if err == nil && !seen[p] {
			seen[p] = true
			cidrs = append(cidrs, p)
		}
	}
	for _, v := range out.Vpcs {
		add(v.CidrBlock)
		for _, a := range v.CidrBlockAssociationSet {
			if a.CidrBlockState != nil {
				switch a.CidrBlockState.State {
				case types.VpcCidrBlockStateCodeDisassociated, types.VpcCidrBlockStateCodeFailed:
					continue
				}
			}
			add(a.CidrBlock)
		}
	}
	return cidrs, nil
}

// CheckVIPOutsideVPC fails with CodeVIPInVPC ("The VIP address X belongs to
// a VPC subnet.") when vip lies in a CIDR block of the VPC, primary or
// additional, and with CodeAWSFailed when the VPC does not exist.
func (c *Client) CheckVIPOutsideVPC(ctx context.Context, vpcID string, vip netip.Addr) error {
	if _, err := vipRoute("check VIP", vip); err != nil {
		return err
	}
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	cidrs, err := c.vpcCIDRs(ctx, vpcID)
	if err != nil {
		return err
	}
	for _, p := range cidrs {
		if p.Contains(vip.Unmap()) {
			return &Error{Code: CodeVIPInVPC, Op: "check VIP", Target: vpcID,
				Message: fmt.Sprintf("The VIP address %s belongs to a VPC subnet.", vip.Unmap()),
				Err:     fmt.Errorf("%s lies in %s of %s", vip.Unmap(), p, vpcID)}
		}
	}
	return nil
}

// describeRouteTables returns the route tables matching in, following
// NextToken; each page is one call.
func (c *Client) describeRouteTables(ctx context.Context, target string, in *ec2.DescribeRouteTablesInput) ([]types.RouteTable, error) {
	var tables []types.RouteTable
	for {
		var out *ec2.DescribeRouteTablesOutput
		err := c.run.call(ctx, "ec2", "DescribeRouteTables", target, func(ctx context.Context) error {
			var err error
			out, err = c.ec2.DescribeRouteTables(ctx, in)
			return err
		})
		if err != nil {
			return nil, err
		}
		tables = append(tables, out.RouteTables...)
		if aws.ToString(out.NextToken) == "" {
			return tables, nil
		}
		next := *in
		next.NextToken = out.NextToken
		in = &next
	}
}

// vipTables returns the route tables of the VPC holding a route for dest.
func (c *Client) vipTables(ctx context.Context, vpcID, dest string) ([]types.RouteTable, error) {
	return c.describeRouteTables(ctx, vpcID, &ec2.DescribeRouteTablesInput{
		Filters: []types.Filter{
			{Name: aws.String("vpc-id"), Values: []string{vpcID}},
			{Name: aws.String("route.destination-cidr-block"), Values: []string{dest}},
		},
	})
}

// findRoute returns the route of rt whose destination is dest, or nil.
func findRoute(rt types.RouteTable, dest string) *types.Route {
	for i := range rt.Routes {
		if aws.ToString(rt.Routes[i].DestinationCidrBlock) == dest {
			return &rt.Routes[i]
		}
	}
	return nil
}

// VIPRouteTables returns the route tables of the VPC holding a route for
// vip/32, sorted by ID.
func (c *Client) VIPRouteTables(ctx context.Context, vpcID string, vip netip.Addr) ([]string, error) {
	dest, err := vipRoute("list VIP route tables", vip)
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	tables, err := c.vipTables(ctx, vpcID, dest)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(tables))
	for _, t := range tables {
		if findRoute(t, dest) != nil {
			ids = append(ids, aws.ToString(t.RouteTableId))
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// PointVIPRoutes points vip/32 at eniID in every table, all tables in
// parallel, each retried until ctx's deadline (ReplaceRoute, or CreateRoute
// when the table lacks the route). The error names every table that was not
// switched: its Target lists them, its Message is "Timeout occurred. (route
// tables not switched: rtb-2, rtb-3)" when only the deadline stopped them,
// AWS's message followed by the same list otherwise.
func (c *Client) PointVIPRoutes(ctx context.Context, vip netip.Addr, eniID string, tables []string) error {
	dest, err := vipRoute("switch routes", vip)
	if err != nil {
		return err
	}
	if eniID == "" {
		return invalid("switch routes", "", "No ENI ID given for VIP %s.", vip)
	}
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	tables = slices.Clone(tables)
	slices.Sort(tables)
	tables = slices.Compact(tables)
	errs := make([]error, len(tables))
	var wg sync.WaitGroup
	for i, t := range tables {
		wg.Go(func() { errs[i] = c.pointRoute(ctx, t, dest, eniID) })
	}
	wg.Wait()
	return routesError(tables, errs)
}

// pointRoute points dest at eniID in one table: ReplaceRoute, and
// CreateRoute when the table has no such route.
func (c *Client) pointRoute(ctx context.Context, table, dest, eniID string) error {
	replace := func() error {
		return c.run.call(ctx, "ec2", "ReplaceRoute", table, func(ctx context.Context) error {
			_, err := c.ec2.ReplaceRoute(ctx, &ec2.ReplaceRouteInput{
				RouteTableId:         aws.String(table),
				DestinationCidrBlock: aws.String(dest),
				NetworkInterfaceId:   aws.String(eniID),
			})
			return err
		})
	}
	err := replace()
	if !noSuchRoute(err) {
		return err
	}
	err = c.run.call(ctx, "ec2", "CreateRoute", table, func(ctx context.Context) error {
		_, err := c.ec2.CreateRoute(ctx, &ec2.CreateRouteInput{
			RouteTableId:         aws.String(table),
			DestinationCidrBlock: aws.String(dest),
			NetworkInterfaceId:   aws.String(eniID),
		})
		return err
	})
	if AWSCodeOf(err) == "RouteAlreadyExists" {
		// Created meanwhile: by an attempt of ours that timed out, or by
		// someone else. Either way it must now point at eniID.
		return replace()
	}
	return err
}

// routesError folds the per-table errors of PointVIPRoutes into one.
func routesError(tables []string, errs []error) error {
	var failed []string
	var first *Error
	for i, err := range errs {
		if err == nil {
			continue
		}
		failed = append(failed, tables[i])
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Code: CodeInternal, Message: err.Error(), Err: err}
		}
		if first == nil && e.Code != CodeTimeout {
			first = e
		}
	}
	if len(failed) == 0 {
		return nil
	}
	list := strings.Join(failed, ", ")
	out := &Error{Code: CodeTimeout, Op: "switch routes", Target: strings.Join(failed, ","),
		Message: MsgTimeout + " (route tables not switched: " + list + ")", Err: errors.Join(errs...)}
	if first != nil {
		out.Code = first.Code
		out.AWSCode = first.AWSCode
		out.Message = first.Message + " (route tables not switched: " + list + ")"
	}
	return out
}

// CheckVIPRoutes fails with CodeRoutingChanged ("The routing for VIP X was
// changed.") unless every table's vip/32 route targets eniID; Target names
// the tables that differ. With no tables it checks every table of the VPC
// that holds a vip/32 route, and a VPC where none does has changed too.
func (c *Client) CheckVIPRoutes(ctx context.Context, vpcID string, vip netip.Addr, eniID string, tables []string) error {
	dest, err := vipRoute("check routes", vip)
	if err != nil {
		return err
	}
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	var rts []types.RouteTable
	if len(tables) == 0 {
		rts, err = c.vipTables(ctx, vpcID, dest)
	} else {
		ids := slices.Clone(tables)
		slices.Sort(ids)
		ids = slices.Compact(ids)
		rts, err = c.describeRouteTables(ctx, strings.Join(ids, ","), &ec2.DescribeRouteTablesInput{RouteTableIds: ids})
		if err == nil {
			rts = append(rts, missingTables(ids, rts)...)
		}
	}
	if err != nil {
		return err
	}
	changed := map[string]string{}
	for _, rt := range rts {
		id := aws.ToString(rt.RouteTableId)
		r := findRoute(rt, dest)
		switch {
		case r == nil:
			changed[id] = "no " + dest + " route"
		case aws.ToString(r.NetworkInterfaceId) != eniID:
			changed[id] = "targets " + routeTarget(*r)
		}
	}
	msg := fmt.Sprintf("The routing for VIP %s was changed.", vip.Unmap())
	if len(rts) == 0 {
		return &Error{Code: CodeRoutingChanged, Op: "check routes", Target: vpcID, Message: msg,
			Err: fmt.Errorf("no route table of %s holds %s", vpcID, dest)}
	}
	if len(changed) == 0 {
		return nil
	}
	ids := make([]string, 0, len(changed))
	for id := range changed {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	details := make([]string, len(ids))
	for i, id := range ids {
		details[i] = id + ": " + changed[id]
	}
	return &Error{Code: CodeRoutingChanged, Op: "check routes", Target: strings.Join(ids, ","), Message: msg,
		Err: fmt.Errorf("%s should target %s: %s", dest, eniID, strings.Join(details, "; "))}
}

// missingTables returns empty tables for the IDs AWS did not return, so
// that they count as changed.
func missingTables(ids []string, got []types.RouteTable) []types.RouteTable {
	var out []types.RouteTable
	for _, id := range ids {
		if !slices.ContainsFunc(got, func(rt types.RouteTable) bool { return aws.ToString(rt.RouteTableId) == id }) {
			out = append(out, types.RouteTable{RouteTableId: aws.String(id)})
		}
	}
	return out
}

// routeTarget names what a route points at.
func routeTarget(r types.Route) string {
	for _, s := range []*string{r.NetworkInterfaceId, r.InstanceId, r.GatewayId, r.NatGatewayId,
		r.TransitGatewayId, r.VpcPeeringConnectionId, r.LocalGatewayId, r.CarrierGatewayId} {
		if v := aws.ToString(s); v != "" {
			return v
		}
	}
	return "nothing"
}

// noSuchRoute reports whether ReplaceRoute failed because the table has no
// route for the destination: EC2 says InvalidParameterValue "There is no
// route defined for '10.1.0.20/32' in the route table. Use CreateRoute
// instead.", and InvalidRoute.NotFound in older answers.
func noSuchRoute(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.AWSCode {
	case "InvalidRoute.NotFound":
		return true
	case "InvalidParameterValue":
		return strings.Contains(e.Message, "no route defined") || strings.Contains(e.Message, "Use CreateRoute")
	}
	return false
}
