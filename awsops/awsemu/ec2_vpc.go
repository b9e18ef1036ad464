package awsemu

// EC2 actions on VPCs, subnets and route tables.

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
)

var vpcFilters = filterDefs[VPC]{
	"vpc-id":                            func(v VPC) []string { return one(v.ID) },
	"cidr":                              func(v VPC) []string { return v.CIDRs[:1] },
	"cidr-block-association.cidr-block": func(v VPC) []string { return v.CIDRs },
	"state":                             func(VPC) []string { return one("available") },
	"is-default":                        func(VPC) []string { return one("false") },
	"owner-id":                          func(VPC) []string { return one(Account) },
}

func (s *Server) describeVpcs(q query) (ec2Body, *apiError) {
	fs, e := q.filters()
	if e != nil {
		return nil, e
	}
	ids := q.list("VpcId")
	for _, id := range ids {
		if e := malformedID(id, "vpc-", "InvalidVpcID.Malformed"); e != nil {
			return nil, e
		}
	}
	vpcs, e := selectByID(s.world.VPCs, ids, func(v VPC) string { return v.ID }, errVpcNotFound)
	if e != nil {
		return nil, e
	}
	if vpcs, e = applyFilters(vpcs, fs, vpcFilters); e != nil {
		return nil, e
	}
	body := &describeVpcsBody{}
	for _, v := range vpcs {
		x := xmlVpc{
			VpcID: v.ID, OwnerID: Account, State: "available", CidrBlock: v.CIDRs[0],
			DhcpOptionsID: "dopt-" + hexHash(v.ID, 8), InstanceTenancy: "default",
		}
		for _, c := range v.CIDRs {
			x.CidrBlockAssociationSet.Items = append(x.CidrBlockAssociationSet.Items, xmlCidrBlockAssoc{
				AssociationID:  "vpc-cidr-assoc-" + hexHash(v.ID+c, 17),
				CidrBlock:      c,
				CidrBlockState: xmlState{State: "associated"},
			})
		}
		body.VpcSet.Items = append(body.VpcSet.Items, x)
	}
	return body, nil
}

func (s *Server) azID(name string) string {
	if az := s.world.az(name); az != nil {
		return az.ID
	}
	return ""
}

func (s *Server) describeSubnets(q query) (ec2Body, *apiError) {
	fs, e := q.filters()
	if e != nil {
		return nil, e
	}
	ids := q.list("SubnetId")
	for _, id := range ids {
		if e := malformedID(id, "subnet-", "InvalidSubnetID.Malformed"); e != nil {
			return nil, e
		}
	}
	subnets, e := selectByID(s.world.Subnets, ids, func(v Subnet) string { return v.ID }, errSubnetNotFound)
	if e != nil {
		return nil, e
	}
	defs := filterDefs[Subnet]{
		"subnet-id":            func(v Subnet) []string { return one(v.ID) },
		"vpc-id":               func(v Subnet) []string { return one(v.VPCID) },
		"availability-zone":    func(v Subnet) []string { return one(v.AZ) },
		"availability-zone-id": func(v Subnet) []string { return one(s.azID(v.AZ)) },
		"cidr-block":           func(v Subnet) []string { return one(v.CIDR) },
		"cidr":                 func(v Subnet) []string { return one(v.CIDR) },
		"cidrBlock":            func(v Subnet) []string { return one(v.CIDR) },
		"state":                func(Subnet) []string { return one("available") },
		"default-for-az":       func(Subnet) []string { return one("false") },
		"owner-id":             func(Subnet) []string { return one(Account) },
	}
	if subnets, e = applyFilters(subnets, fs, defs); e != nil {
		return nil, e
	}
	body := &describeSubnetsBody{}
	for _, v := range subnets {
		free := 0
		if p, err := netip.ParsePrefix(v.CIDR); err == nil {
			free = max(0, 1<<(32-p.Bits())-5) // AWS reserves five addresses per subnet
			for _, eni := range s.world.NetworkInterfaces {
				if eni.SubnetID == v.ID && free > 0 {
					free--
				}
			}
		}
		body.SubnetSet.Items = append(body.SubnetSet.Items, xmlSubnet{
			SubnetID: v.ID, SubnetArn: fmt.Sprintf("arn:aws:ec2:%s:%s:subnet/%s", s.world.Region, Account, v.ID),
			State: "available", VpcID: v.VPCID, OwnerID: Account, CidrBlock: v.CIDR,
			AvailableIPAddressCount: free, AvailabilityZone: v.AZ, AvailabilityZoneID: s.azID(v.AZ),
		})
	}
	return body, nil
}

// routeFilterValues returns the values of a route attribute across a
// table's routes, for the route.* filters.
func routeFilterValues(rt RouteTable, f func(Route) string) []string {
	var out []string
	for _, r := range rt.Routes {
		if v := f(r); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (s *Server) describeRouteTables(q query) (ec2Body, *apiError) {
	fs, e := q.filters()
	if e != nil {
		return nil, e
	}
	ids := q.list("RouteTableId")
	for _, id := range ids {
		if e := malformedID(id, "rtb-", "InvalidRouteTableID.Malformed"); e != nil {
			return nil, e
		}
	}
	tables, e := selectByID(s.world.RouteTables, ids, func(v RouteTable) string { return v.ID }, errRouteTableNotFound)
	if e != nil {
		return nil, e
	}
	defs := filterDefs[RouteTable]{
		"route-table-id": func(v RouteTable) []string { return one(v.ID) },
		"vpc-id":         func(v RouteTable) []string { return one(v.VPCID) },
		"owner-id":       func(RouteTable) []string { return one(Account) },
		"route.destination-cidr-block": func(v RouteTable) []string {
			return routeFilterValues(v, func(r Route) string { return r.Destination })
		},
		"route.network-interface-id": func(v RouteTable) []string {
			return routeFilterValues(v, func(r Route) string { return r.ENIID })
		},
		"route.gateway-id": func(v RouteTable) []string {
			return routeFilterValues(v, func(r Route) string { return r.GatewayID })
		},
		"route.instance-id": func(v RouteTable) []string {
			return routeFilterValues(v, func(r Route) string { return s.instanceOfENI(r.ENIID) })
		},
		"route.state": func(v RouteTable) []string {
			return routeFilterValues(v, func(r Route) string { return s.routeState(r) })
		},
		"route.origin": func(v RouteTable) []string {
			return routeFilterValues(v, func(r Route) string { return routeOrigin(r) })
		},
	}
	if tables, e = applyFilters(tables, fs, defs); e != nil {
		return nil, e
	}
	body := &describeRouteTablesBody{}
	for _, rt := range tables {
		x := xmlRouteTable{RouteTableID: rt.ID, VpcID: rt.VPCID, OwnerID: Account}
		for _, r := range rt.Routes {
			xr := xmlRoute{
				DestinationCidrBlock: r.Destination, GatewayID: r.GatewayID,
				NetworkInterfaceID: r.ENIID, State: s.routeState(r), Origin: routeOrigin(r),
			}
			if inst := s.instanceOfENI(r.ENIID); inst != "" {
				xr.InstanceID, xr.InstanceOwnerID = inst, Account
			}
			x.RouteSet.Items = append(x.RouteSet.Items, xr)
		}
		body.RouteTableSet.Items = append(body.RouteTableSet.Items, x)
	}
	return body, nil
}

func (s *Server) instanceOfENI(eniID string) string {
	if eniID == "" {
		return ""
	}
	if e := s.world.eni(eniID); e != nil {
		return e.InstanceID
	}
	return ""
}

// routeState is "blackhole" for a route to a detached or deleted ENI.
func (s *Server) routeState(r Route) string {
	if r.ENIID != "" && s.instanceOfENI(r.ENIID) == "" {
		return "blackhole"
	}
	return "active"
}

func routeOrigin(r Route) string {
	if r.GatewayID == "local" {
		return "CreateRouteTable"
	}
	return "CreateRoute"
}

// routeRequest is the decoded input of CreateRoute and ReplaceRoute.
type routeRequest struct {
	table *RouteTable
	dest  string
	route Route // the new target
}

func (s *Server) parseRouteRequest(q query, needTarget bool) (routeRequest, *apiError) {
	var rr routeRequest
	rtID, e := q.required("RouteTableId")
	if e != nil {
		return rr, e
	}
	dest, e := q.required("DestinationCidrBlock")
	if e != nil {
		return rr, e
	}
	p, err := parseCIDR4(dest)
	if err != nil {
		return rr, errInvalidParameterValue("Value (%s) for parameter destinationCidrBlock is invalid. This is not a valid CIDR block.", dest)
	}
	rr.dest = p.String()
	if e := malformedID(rtID, "rtb-", "InvalidRouteTableID.Malformed"); e != nil {
		return rr, e
	}
	if rr.table = s.world.routeTable(rtID); rr.table == nil {
		return rr, errRouteTableNotFound(rtID)
	}
	if !needTarget {
		return rr, nil
	}
	eniID, gw, instID := q["NetworkInterfaceId"], q["GatewayId"], q["InstanceId"]
	n := 0
	for _, v := range []string{eniID, gw, instID} {
		if v != "" {
			n++
		}
	}
	switch {
	case n == 0:
		return rr, newError(http.StatusBadRequest, "MissingParameter",
			"The request must contain exactly one of gatewayId, networkInterfaceId or instanceId")
	case n > 1:
		return rr, newError(http.StatusBadRequest, "InvalidParameterCombination",
			"Only one of gatewayId, networkInterfaceId or instanceId may be given")
	case instID != "":
		inst := s.world.instance(instID)
		if inst == nil {
			return rr, errInstanceNotFound(instID)
		}
		if len(inst.ENIs) > 1 {
			return rr, newError(http.StatusBadRequest, "InvalidInstanceID",
				"There are multiple interfaces attached to instance '%s'. Please specify an interface ID for the operation instead.", instID)
		}
		eniID = inst.ENIs[0]
	case gw == "local":
		return rr, errInvalidParameterValue("Route table %s already has a local route; the local target cannot be set", rtID)
	case gw != "":
		rr.route = Route{Destination: rr.dest, GatewayID: gw}
		return rr, nil
	}
	if e := malformedID(eniID, "eni-", "InvalidNetworkInterfaceID.Malformed"); e != nil {
		return rr, e
	}
	eni := s.world.eni(eniID)
	if eni == nil {
		return rr, errENINotFound(eniID)
	}
	if eni.VPCID != rr.table.VPCID {
		return rr, errInvalidParameterValue("Route table %s and network interface %s belong to different networks", rtID, eniID)
	}
	rr.route = Route{Destination: rr.dest, ENIID: eniID}
	return rr, nil
}

// routeIndex returns the index of the route to dest, or -1.
func routeIndex(rt *RouteTable, dest string) int {
	return slices.IndexFunc(rt.Routes, func(r Route) bool {
		p, err := netip.ParsePrefix(r.Destination)
		return err == nil && p.String() == dest
	})
}

func (s *Server) createRoute(q query) (ec2Body, *apiError) {
	rr, e := s.parseRouteRequest(q, true)
	if e != nil {
		return nil, e
	}
	if routeIndex(rr.table, rr.dest) >= 0 {
		return nil, newError(http.StatusBadRequest, "RouteAlreadyExists", "The route identified by %s already exists.", rr.dest)
	}
	rr.table.Routes = append(rr.table.Routes, rr.route)
	return &returnBody{Return: true}, nil
}

func (s *Server) replaceRoute(q query) (ec2Body, *apiError) {
	rr, e := s.parseRouteRequest(q, true)
	if e != nil {
		return nil, e
	}
	i := routeIndex(rr.table, rr.dest)
	if i < 0 {
		return nil, errInvalidParameterValue("There is no route defined for '%s' in the route table. Use CreateRoute instead.", rr.dest)
	}
	if rr.table.Routes[i].GatewayID == "local" {
		return nil, errInvalidParameterValue("Cannot replace the local route %s in route table %s", rr.dest, rr.table.ID)
	}
	rr.table.Routes[i] = rr.route
	return &returnBody{Return: true}, nil
}

func (s *Server) deleteRoute(q query) (ec2Body, *apiError) {
	rr, e := s.parseRouteRequest(q, false)
	if e != nil {
		return nil, e
	}
	i := routeIndex(rr.table, rr.dest)
	if i < 0 {
		return nil, newError(http.StatusBadRequest, "InvalidRoute.NotFound",
			"no route with destination-cidr-block %s in route table %s", rr.dest, rr.table.ID)
	}
	if rr.table.Routes[i].GatewayID == "local" {
		return nil, errInvalidParameterValue("cannot remove local route %s in route table %s", rr.dest, rr.table.ID)
	}
	rr.table.Routes = slices.Delete(rr.table.Routes, i, i+1)
	return &returnBody{Return: true}, nil
}
