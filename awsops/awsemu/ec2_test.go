package awsemu_test

import (
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/vigil-ha/vigil/awsops/awsemu"
)

func filter(name string, values ...string) types.Filter {
	return types.Filter{Name: aws.String(name), Values: values}
}

func TestDescribeVpcsReturnsEveryCIDRBlock(t *testing.T) {
	e := start(t)
	out, err := ec2Client(e).DescribeVpcs(ctxT(t), &ec2.DescribeVpcsInput{VpcIds: []string{"vpc-1234abcd"}})
	mustOK(t, err)
	if len(out.Vpcs) != 1 {
		t.Fatalf("got %d VPCs, want 1", len(out.Vpcs))
	}
	v := out.Vpcs[0]
	if aws.ToString(v.VpcId) != "vpc-1234abcd" || aws.ToString(v.CidrBlock) != "10.0.0.0/16" || v.State != types.VpcStateAvailable {
		t.Errorf("VPC = %s %s %s", aws.ToString(v.VpcId), aws.ToString(v.CidrBlock), v.State)
	}
	var cidrs []string
	for _, a := range v.CidrBlockAssociationSet {
		cidrs = append(cidrs, aws.ToString(a.CidrBlock))
	}
	if !slices.Equal(cidrs, []string{"10.0.0.0/16", "10.2.0.0/16"}) {
		t.Errorf("CIDR blocks = %v", cidrs)
	}
}

func TestDescribeVpcsUnknownIDIsInvalidVpcIDNotFound(t *testing.T) {
	e := start(t)
	_, err := ec2Client(e).DescribeVpcs(ctxT(t), &ec2.DescribeVpcsInput{VpcIds: []string{"vpc-xxxxxxx"}})
	wantAPIError(t, err, "InvalidVpcID.NotFound", "The vpc ID 'vpc-xxxxxxx' does not exist")
}

func TestDescribeVpcsMalformedIDIsInvalidVpcIDMalformed(t *testing.T) {
	e := start(t)
	_, err := ec2Client(e).DescribeVpcs(ctxT(t), &ec2.DescribeVpcsInput{VpcIds: []string{"1234abcd"}})
	wantAPIError(t, err, "InvalidVpcID.Malformed", `Invalid id: "1234abcd"`)
}

func TestDescribeVpcsFilterValuesTakeWildcards(t *testing.T) {
	e := start(t)
	out, err := ec2Client(e).DescribeVpcs(ctxT(t), &ec2.DescribeVpcsInput{
		Filters: []types.Filter{filter("cidr-block-association.cidr-block", "10.2.*")},
	})
	mustOK(t, err)
	if len(out.Vpcs) != 1 || aws.ToString(out.Vpcs[0].VpcId) != "vpc-1234abcd" {
		t.Fatalf("got %d VPCs, want vpc-1234abcd", len(out.Vpcs))
	}
}

func TestDescribeSubnetsFiltersByVPCAndZone(t *testing.T) {
	e := start(t)
	out, err := ec2Client(e).DescribeSubnets(ctxT(t), &ec2.DescribeSubnetsInput{
		Filters: []types.Filter{filter("vpc-id", "vpc-1234abcd"), filter("availability-zone", "ap-northeast-1c")},
	})
	mustOK(t, err)
	if len(out.Subnets) != 1 || aws.ToString(out.Subnets[0].SubnetId) != "subnet-c" {
		t.Fatalf("subnets = %+v", out.Subnets)
	}
	s := out.Subnets[0]
	if aws.ToString(s.CidrBlock) != "10.0.120.0/24" || aws.ToString(s.AvailabilityZoneId) != "apne1-az1" || aws.ToInt32(s.AvailableIpAddressCount) != 249 {
		t.Errorf("subnet = %s %s %d", aws.ToString(s.CidrBlock), aws.ToString(s.AvailabilityZoneId), aws.ToInt32(s.AvailableIpAddressCount))
	}
	_, err = ec2Client(e).DescribeSubnets(ctxT(t), &ec2.DescribeSubnetsInput{SubnetIds: []string{"subnet-gone"}})
	wantAPIError(t, err, "InvalidSubnetID.NotFound", "The subnet ID 'subnet-gone' does not exist")
}

func tableIDs(tables []types.RouteTable) []string {
	var ids []string
	for _, rt := range tables {
		ids = append(ids, aws.ToString(rt.RouteTableId))
	}
	return ids
}

func TestDescribeRouteTablesFindsTheTablesHoldingTheVIPRoute(t *testing.T) {
	e := start(t)
	out, err := ec2Client(e).DescribeRouteTables(ctxT(t), &ec2.DescribeRouteTablesInput{
		Filters: []types.Filter{filter("vpc-id", "vpc-1234abcd"), filter("route.destination-cidr-block", "10.1.0.20/32")},
	})
	mustOK(t, err)
	if got := tableIDs(out.RouteTables); !slices.Equal(got, []string{"rtb-1", "rtb-2"}) {
		t.Fatalf("tables = %v, want [rtb-1 rtb-2]", got)
	}
	var vip types.Route
	for _, r := range out.RouteTables[1].Routes {
		if aws.ToString(r.DestinationCidrBlock) == "10.1.0.20/32" {
			vip = r
		}
	}
	if aws.ToString(vip.NetworkInterfaceId) != "eni-12345678" || aws.ToString(vip.InstanceId) != "i-server1" ||
		vip.State != types.RouteStateActive || vip.Origin != types.RouteOriginCreateRoute {
		t.Errorf("VIP route = eni %s instance %s state %s origin %s", aws.ToString(vip.NetworkInterfaceId),
			aws.ToString(vip.InstanceId), vip.State, vip.Origin)
	}
	if r := out.RouteTables[1].Routes[0]; aws.ToString(r.GatewayId) != "local" || r.Origin != types.RouteOriginCreateRouteTable {
		t.Errorf("local route = %s %s", aws.ToString(r.GatewayId), r.Origin)
	}
}

func TestDescribeRouteTablesByIDAndByRouteTarget(t *testing.T) {
	e := start(t)
	c := ec2Client(e)
	out, err := c.DescribeRouteTables(ctxT(t), &ec2.DescribeRouteTablesInput{RouteTableIds: []string{"rtb-3", "rtb-1"}})
	mustOK(t, err)
	if got := tableIDs(out.RouteTables); !slices.Equal(got, []string{"rtb-3", "rtb-1"}) {
		t.Errorf("tables = %v, want the order asked", got)
	}
	out, err = c.DescribeRouteTables(ctxT(t), &ec2.DescribeRouteTablesInput{
		Filters: []types.Filter{filter("route.network-interface-id", "eni-12345678"), filter("route-table-id", "rtb-2", "rtb-3")},
	})
	mustOK(t, err)
	if got := tableIDs(out.RouteTables); !slices.Equal(got, []string{"rtb-2"}) {
		t.Errorf("tables = %v, want [rtb-2]", got)
	}
	_, err = c.DescribeRouteTables(ctxT(t), &ec2.DescribeRouteTablesInput{RouteTableIds: []string{"rtb-1", "rtb-gone"}})
	wantAPIError(t, err, "InvalidRouteTableID.NotFound", "The routeTable ID 'rtb-gone' does not exist")
	_, err = c.DescribeRouteTables(ctxT(t), &ec2.DescribeRouteTablesInput{Filters: []types.Filter{filter("colour", "blue")}})
	wantAPIError(t, err, "InvalidParameterValue", "The filter 'colour' is invalid")
}

func vipTarget(t *testing.T, e interface{ Snapshot() *awsemu.World }, table string) string {
	t.Helper()
	for _, rt := range e.Snapshot().RouteTables {
		if rt.ID != table {
			continue
		}
		for _, r := range rt.Routes {
			if r.Destination == "10.1.0.20/32" {
				return r.ENIID
			}
		}
	}
	return ""
}

func TestReplaceRoutePointsTheVIPAtAnotherENI(t *testing.T) {
	e := start(t)
	_, err := ec2Client(e).ReplaceRoute(ctxT(t), &ec2.ReplaceRouteInput{
		RouteTableId: aws.String("rtb-1"), DestinationCidrBlock: aws.String("10.1.0.20/32"),
		NetworkInterfaceId: aws.String("eni-87654321"),
	})
	mustOK(t, err)
	if got := vipTarget(t, e.Server, "rtb-1"); got != "eni-87654321" {
		t.Errorf("rtb-1 VIP route targets %q, want eni-87654321", got)
	}
	if got := vipTarget(t, e.Server, "rtb-2"); got != "eni-12345678" {
		t.Errorf("rtb-2 VIP route targets %q, want it untouched", got)
	}
}

func TestReplaceRouteByInstanceUsesItsOnlyENI(t *testing.T) {
	e := start(t)
	c := ec2Client(e)
	_, err := c.ReplaceRoute(ctxT(t), &ec2.ReplaceRouteInput{
		RouteTableId: aws.String("rtb-2"), DestinationCidrBlock: aws.String("10.1.0.20/32"), InstanceId: aws.String("i-server1"),
	})
	mustOK(t, err)
	_, err = c.ReplaceRoute(ctxT(t), &ec2.ReplaceRouteInput{
		RouteTableId: aws.String("rtb-2"), DestinationCidrBlock: aws.String("10.1.0.20/32"), InstanceId: aws.String("i-server2"),
	})
	wantAPIError(t, err, "InvalidInstanceID", "There are multiple interfaces attached to instance 'i-server2'. Please specify an interface ID for the operation instead.")
}

func TestRouteChangesAnswerAWSErrors(t *testing.T) {
	e := start(t)
	c := ec2Client(e)
	tests := []struct {
		name      string
		table     string
		dest      string
		eni       string
		code, msg string
	}{
		{"unknown route table", "rtb-gone", "10.1.0.20/32", "eni-87654321",
			"InvalidRouteTableID.NotFound", "The routeTable ID 'rtb-gone' does not exist"},
		{"unknown ENI", "rtb-1", "10.1.0.20/32", "eni-xxxxxxx",
			"InvalidNetworkInterfaceID.NotFound", "The networkInterface ID 'eni-xxxxxxx' does not exist"},
		{"ENI of another VPC", "rtb-1", "10.1.0.20/32", "eni-other",
			"InvalidParameterValue", "Route table rtb-1 and network interface eni-other belong to different networks"},
		{"no such route", "rtb-3", "10.1.0.20/32", "eni-87654321",
			"InvalidParameterValue", "There is no route defined for '10.1.0.20/32' in the route table. Use CreateRoute instead."},
		{"not a CIDR block", "rtb-1", "10.1.0.300/32", "eni-87654321",
			"InvalidParameterValue", "Value (10.1.0.300/32) for parameter destinationCidrBlock is invalid. This is not a valid CIDR block."},
		{"no target", "rtb-1", "10.1.0.20/32", "",
			"MissingParameter", "The request must contain exactly one of gatewayId, networkInterfaceId or instanceId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &ec2.ReplaceRouteInput{RouteTableId: aws.String(tt.table), DestinationCidrBlock: aws.String(tt.dest)}
			if tt.eni != "" {
				in.NetworkInterfaceId = aws.String(tt.eni)
			}
			_, err := c.ReplaceRoute(ctxT(t), in)
			wantAPIError(t, err, tt.code, tt.msg)
		})
	}
	if got := vipTarget(t, e.Server, "rtb-1"); got != "eni-12345678" {
		t.Errorf("a failed ReplaceRoute changed the route to %q", got)
	}
}

func TestCreateRouteAddsARouteOnceThenReportsRouteAlreadyExists(t *testing.T) {
	e := start(t)
	c := ec2Client(e)
	in := &ec2.CreateRouteInput{
		RouteTableId: aws.String("rtb-3"), DestinationCidrBlock: aws.String("10.1.0.20/32"),
		NetworkInterfaceId: aws.String("eni-87654321"),
	}
	out, err := c.CreateRoute(ctxT(t), in)
	mustOK(t, err)
	if !aws.ToBool(out.Return) {
		t.Error("CreateRoute returned false")
	}
	if got := vipTarget(t, e.Server, "rtb-3"); got != "eni-87654321" {
		t.Errorf("rtb-3 VIP route targets %q", got)
	}
	_, err = c.CreateRoute(ctxT(t), in)
	wantAPIError(t, err, "RouteAlreadyExists", "The route identified by 10.1.0.20/32 already exists.")
}

func TestDeleteRouteRemovesTheRouteAndKeepsTheLocalOne(t *testing.T) {
	e := start(t)
	c := ec2Client(e)
	del := func(table, dest string) error {
		_, err := c.DeleteRoute(ctxT(t), &ec2.DeleteRouteInput{RouteTableId: aws.String(table), DestinationCidrBlock: aws.String(dest)})
		return err
	}
	mustOK(t, del("rtb-1", "10.1.0.20/32"))
	if got := vipTarget(t, e.Server, "rtb-1"); got != "" {
		t.Errorf("route still targets %q", got)
	}
	wantAPIError(t, del("rtb-1", "10.1.0.20/32"), "InvalidRoute.NotFound",
		"no route with destination-cidr-block 10.1.0.20/32 in route table rtb-1")
	wantAPIError(t, del("rtb-1", "10.0.0.0/16"), "InvalidParameterValue",
		"cannot remove local route 10.0.0.0/16 in route table rtb-1")
}

func TestDescribeNetworkInterfacesReportsAttachmentCheckAndEIP(t *testing.T) {
	e := start(t)
	c := ec2Client(e)
	out, err := c.DescribeNetworkInterfaces(ctxT(t), &ec2.DescribeNetworkInterfacesInput{
		NetworkInterfaceIds: []string{"eni-87654321", "eni-12345678"},
	})
	mustOK(t, err)
	if len(out.NetworkInterfaces) != 2 {
		t.Fatalf("got %d ENIs", len(out.NetworkInterfaces))
	}
	n := out.NetworkInterfaces[0]
	if aws.ToString(n.NetworkInterfaceId) != "eni-87654321" || !aws.ToBool(n.SourceDestCheck) ||
		aws.ToString(n.Attachment.InstanceId) != "i-server2" || aws.ToInt32(n.Attachment.DeviceIndex) != 0 ||
		aws.ToString(n.PrivateIpAddress) != "10.0.120.10" || aws.ToString(n.MacAddress) != "06:00:00:00:01:20" ||
		aws.ToString(n.VpcId) != "vpc-1234abcd" || aws.ToString(n.AvailabilityZone) != "ap-northeast-1c" {
		t.Errorf("eni-87654321 = %+v", n)
	}
	if n.Association == nil || aws.ToString(n.Association.PublicIp) != "203.0.113.11" || aws.ToString(n.Association.AllocationId) != "eipalloc-assoc" {
		t.Errorf("eni-87654321 association = %+v", n.Association)
	}
	if aws.ToBool(out.NetworkInterfaces[1].SourceDestCheck) {
		t.Error("eni-12345678 source/dest check is on, the world has it off")
	}

	out, err = c.DescribeNetworkInterfaces(ctxT(t), &ec2.DescribeNetworkInterfacesInput{
		Filters: []types.Filter{filter("vpc-id", "vpc-1234abcd"), filter("attachment.instance-id", "i-server2")},
	})
	mustOK(t, err)
	var ids []string
	for _, n := range out.NetworkInterfaces {
		ids = append(ids, aws.ToString(n.NetworkInterfaceId))
	}
	if !slices.Equal(ids, []string{"eni-87654321", "eni-second"}) {
		t.Errorf("ENIs of i-server2 = %v", ids)
	}
	_, err = c.DescribeNetworkInterfaces(ctxT(t), &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{"eni-xxxxxxx"}})
	wantAPIError(t, err, "InvalidNetworkInterfaceID.NotFound", "The networkInterface ID 'eni-xxxxxxx' does not exist")
}

func TestDescribeInstancesReportsPlacementAndInterfaces(t *testing.T) {
	e := start(t)
	c := ec2Client(e)
	out, err := c.DescribeInstances(ctxT(t), &ec2.DescribeInstancesInput{InstanceIds: []string{"i-server2"}})
	mustOK(t, err)
	if len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
		t.Fatalf("reservations = %+v", out.Reservations)
	}
	in := out.Reservations[0].Instances[0]
	if aws.ToString(in.Placement.AvailabilityZone) != "ap-northeast-1c" || in.State.Name != types.InstanceStateNameRunning ||
		aws.ToString(in.PrivateIpAddress) != "10.0.120.10" || aws.ToString(in.PublicIpAddress) != "203.0.113.11" ||
		len(in.NetworkInterfaces) != 2 || aws.ToInt32(in.NetworkInterfaces[1].Attachment.DeviceIndex) != 1 {
		t.Errorf("instance = %+v", in)
	}
	out, err = c.DescribeInstances(ctxT(t), &ec2.DescribeInstancesInput{Filters: []types.Filter{filter("availability-zone", "ap-northeast-1a")}})
	mustOK(t, err)
	if len(out.Reservations) != 1 || aws.ToString(out.Reservations[0].Instances[0].InstanceId) != "i-server1" {
		t.Errorf("instances in 1a = %+v", out.Reservations)
	}
	_, err = c.DescribeInstances(ctxT(t), &ec2.DescribeInstancesInput{InstanceIds: []string{"i-gone"}})
	wantAPIError(t, err, "InvalidInstanceID.NotFound", "The instance ID 'i-gone' does not exist")
}

func TestDescribeAddressesByAllocationAndFilter(t *testing.T) {
	e := start(t)
	c := ec2Client(e)
	out, err := c.DescribeAddresses(ctxT(t), &ec2.DescribeAddressesInput{AllocationIds: []string{"eipalloc-assoc"}})
	mustOK(t, err)
	if len(out.Addresses) != 1 {
		t.Fatalf("addresses = %+v", out.Addresses)
	}
	a := out.Addresses[0]
	if aws.ToString(a.PublicIp) != "203.0.113.11" || aws.ToString(a.AssociationId) != "eipassoc-existing" ||
		aws.ToString(a.NetworkInterfaceId) != "eni-87654321" || aws.ToString(a.PrivateIpAddress) != "10.0.120.10" ||
		aws.ToString(a.InstanceId) != "i-server2" || a.Domain != types.DomainTypeVpc {
		t.Errorf("address = %+v", a)
	}
	out, err = c.DescribeAddresses(ctxT(t), &ec2.DescribeAddressesInput{Filters: []types.Filter{filter("public-ip", "203.0.113.10")}})
	mustOK(t, err)
	if len(out.Addresses) != 1 || aws.ToString(out.Addresses[0].AllocationId) != "eipalloc-01234567" || out.Addresses[0].AssociationId != nil {
		t.Errorf("addresses = %+v", out.Addresses)
	}
	_, err = c.DescribeAddresses(ctxT(t), &ec2.DescribeAddressesInput{AllocationIds: []string{"eipalloc-xxxxxxx"}})
	wantAPIError(t, err, "InvalidAllocationID.NotFound", "The allocation ID 'eipalloc-xxxxxxx' does not exist")
}

func addressOf(t *testing.T, w *awsemu.World, alloc string) awsemu.Address {
	t.Helper()
	for _, a := range w.Addresses {
		if a.AllocationID == alloc {
			return a
		}
	}
	t.Fatalf("no address %s", alloc)
	return awsemu.Address{}
}

func TestAssociateAddressMovesTheEIPOnlyWhenReassociationIsAllowed(t *testing.T) {
	e := start(t)
	c := ec2Client(e)
	out, err := c.AssociateAddress(ctxT(t), &ec2.AssociateAddressInput{
		AllocationId: aws.String("eipalloc-01234567"), NetworkInterfaceId: aws.String("eni-12345678"),
	})
	mustOK(t, err)
	assoc := aws.ToString(out.AssociationId)
	if !strings.HasPrefix(assoc, "eipassoc-") {
		t.Fatalf("association ID = %q", assoc)
	}
	if a := addressOf(t, e.Server.Snapshot(), "eipalloc-01234567"); a.ENIID != "eni-12345678" || a.PrivateIP != "10.0.110.10" || a.AssociationID != assoc {
		t.Errorf("address = %+v", a)
	}

	_, err = c.AssociateAddress(ctxT(t), &ec2.AssociateAddressInput{
		AllocationId: aws.String("eipalloc-01234567"), NetworkInterfaceId: aws.String("eni-spare"),
	})
	wantAPIError(t, err, "Resource.AlreadyAssociated", "resource eipalloc-01234567 is already associated with associationId "+assoc)

	out, err = c.AssociateAddress(ctxT(t), &ec2.AssociateAddressInput{
		AllocationId: aws.String("eipalloc-01234567"), NetworkInterfaceId: aws.String("eni-spare"),
		AllowReassociation: aws.Bool(true), PrivateIpAddress: aws.String("10.0.110.99"),
	})
	mustOK(t, err)
	if a := addressOf(t, e.Server.Snapshot(), "eipalloc-01234567"); a.ENIID != "eni-spare" || a.AssociationID != aws.ToString(out.AssociationId) || a.AssociationID == assoc {
		t.Errorf("after reassociation address = %+v", a)
	}
}

func TestAssociateAddressAnswersAWSErrors(t *testing.T) {
	e := start(t)
	c := ec2Client(e)
	_, err := c.AssociateAddress(ctxT(t), &ec2.AssociateAddressInput{
		AllocationId: aws.String("eipalloc-xxxxxxx"), NetworkInterfaceId: aws.String("eni-12345678"),
	})
	wantAPIError(t, err, "InvalidAllocationID.NotFound", "The allocation ID 'eipalloc-xxxxxxx' does not exist")
	_, err = c.AssociateAddress(ctxT(t), &ec2.AssociateAddressInput{
		AllocationId: aws.String("eipalloc-01234567"), NetworkInterfaceId: aws.String("eni-xxxxxxx"),
	})
	wantAPIError(t, err, "InvalidNetworkInterfaceID.NotFound", "The networkInterface ID 'eni-xxxxxxx' does not exist")
	_, err = c.AssociateAddress(ctxT(t), &ec2.AssociateAddressInput{AllocationId: aws.String("eipalloc-01234567")})
	wantAPIError(t, err, "MissingParameter", "Either instance ID or network interface ID must be specified.")
	// eni-87654321 already holds eipalloc-assoc on its primary address.
	_, err = c.AssociateAddress(ctxT(t), &ec2.AssociateAddressInput{
		AllocationId: aws.String("eipalloc-01234567"), NetworkInterfaceId: aws.String("eni-87654321"),
	})
	wantAPIError(t, err, "Resource.AlreadyAssociated", "resource eipalloc-assoc is already associated with associationId eipassoc-existing")
}

func TestDisassociateAddressFreesTheEIP(t *testing.T) {
	e := start(t)
	c := ec2Client(e)
	_, err := c.DisassociateAddress(ctxT(t), &ec2.DisassociateAddressInput{AssociationId: aws.String("eipassoc-existing")})
	mustOK(t, err)
	if a := addressOf(t, e.Server.Snapshot(), "eipalloc-assoc"); a.ENIID != "" || a.AssociationID != "" {
		t.Errorf("address still associated: %+v", a)
	}
	_, err = c.DisassociateAddress(ctxT(t), &ec2.DisassociateAddressInput{AssociationId: aws.String("eipassoc-existing")})
	wantAPIError(t, err, "InvalidAssociationID.NotFound", "The association ID 'eipassoc-existing' does not exist")
}

func TestDescribeAvailabilityZonesReportsStateAndRefusesUnknownZones(t *testing.T) {
	e := start(t)
	c := ec2Client(e)
	out, err := c.DescribeAvailabilityZones(ctxT(t), &ec2.DescribeAvailabilityZonesInput{ZoneNames: []string{"ap-northeast-1c"}})
	mustOK(t, err)
	if len(out.AvailabilityZones) != 1 || out.AvailabilityZones[0].State != types.AvailabilityZoneStateImpaired ||
		aws.ToString(out.AvailabilityZones[0].ZoneId) != "apne1-az1" || aws.ToString(out.AvailabilityZones[0].RegionName) != "ap-northeast-1" {
		t.Fatalf("zones = %+v", out.AvailabilityZones)
	}
	out, err = c.DescribeAvailabilityZones(ctxT(t), &ec2.DescribeAvailabilityZonesInput{Filters: []types.Filter{filter("zone-name", "ap-northeast-1a")}})
	mustOK(t, err)
	if len(out.AvailabilityZones) != 1 || out.AvailabilityZones[0].State != types.AvailabilityZoneStateAvailable {
		t.Fatalf("zones = %+v", out.AvailabilityZones)
	}
	_, err = c.DescribeAvailabilityZones(ctxT(t), &ec2.DescribeAvailabilityZonesInput{ZoneNames: []string{"ap-northeast-1x"}})
	wantAPIError(t, err, "InvalidParameterValue", "Invalid availability zone: [ap-northeast-1x]")
}

func TestUpdateImpairsAZForTheNextCall(t *testing.T) {
	e := start(t)
	mustOK(t, e.Server.Update(func(w *awsemu.World) error {
		w.AvailabilityZones[0].State = "unavailable"
		return nil
	}))
	out, err := ec2Client(e).DescribeAvailabilityZones(ctxT(t), &ec2.DescribeAvailabilityZonesInput{ZoneNames: []string{"ap-northeast-1a"}})
	mustOK(t, err)
	if out.AvailabilityZones[0].State != types.AvailabilityZoneStateUnavailable || len(out.AvailabilityZones[0].Messages) != 1 {
		t.Errorf("zone = %+v", out.AvailabilityZones[0])
	}
}

// dryRunCalls makes one call of every EC2 action, DryRun set.
var dryRunCalls = map[string]func(c *ec2.Client, t *testing.T) error{
	"DescribeVpcs": func(c *ec2.Client, t *testing.T) error {
		_, err := c.DescribeVpcs(ctxT(t), &ec2.DescribeVpcsInput{DryRun: aws.Bool(true)})
		return err
	},
	"DescribeSubnets": func(c *ec2.Client, t *testing.T) error {
		_, err := c.DescribeSubnets(ctxT(t), &ec2.DescribeSubnetsInput{DryRun: aws.Bool(true)})
		return err
	},
	"DescribeRouteTables": func(c *ec2.Client, t *testing.T) error {
		_, err := c.DescribeRouteTables(ctxT(t), &ec2.DescribeRouteTablesInput{DryRun: aws.Bool(true)})
		return err
	},
	"CreateRoute": func(c *ec2.Client, t *testing.T) error {
		_, err := c.CreateRoute(ctxT(t), &ec2.CreateRouteInput{DryRun: aws.Bool(true), RouteTableId: aws.String("rtb-3"),
			DestinationCidrBlock: aws.String("10.1.0.20/32"), NetworkInterfaceId: aws.String("eni-12345678")})
		return err
	},
	"ReplaceRoute": func(c *ec2.Client, t *testing.T) error {
		_, err := c.ReplaceRoute(ctxT(t), &ec2.ReplaceRouteInput{DryRun: aws.Bool(true), RouteTableId: aws.String("rtb-1"),
			DestinationCidrBlock: aws.String("10.1.0.20/32"), NetworkInterfaceId: aws.String("eni-87654321")})
		return err
	},
	"DeleteRoute": func(c *ec2.Client, t *testing.T) error {
		_, err := c.DeleteRoute(ctxT(t), &ec2.DeleteRouteInput{DryRun: aws.Bool(true), RouteTableId: aws.String("rtb-1"),
			DestinationCidrBlock: aws.String("10.1.0.20/32")})
		return err
	},
	"DescribeNetworkInterfaces": func(c *ec2.Client, t *testing.T) error {
		_, err := c.DescribeNetworkInterfaces(ctxT(t), &ec2.DescribeNetworkInterfacesInput{DryRun: aws.Bool(true)})
		return err
	},
	"DescribeInstances": func(c *ec2.Client, t *testing.T) error {
		_, err := c.DescribeInstances(ctxT(t), &ec2.DescribeInstancesInput{DryRun: aws.Bool(true)})
		return err
	},
	"DescribeAddresses": func(c *ec2.Client, t *testing.T) error {
		_, err := c.DescribeAddresses(ctxT(t), &ec2.DescribeAddressesInput{DryRun: aws.Bool(true)})
		return err
	},
	"AssociateAddress": func(c *ec2.Client, t *testing.T) error {
		_, err := c.AssociateAddress(ctxT(t), &ec2.AssociateAddressInput{DryRun: aws.Bool(true),
			AllocationId: aws.String("eipalloc-01234567"), NetworkInterfaceId: aws.String("eni-12345678")})
		return err
	},
	"DisassociateAddress": func(c *ec2.Client, t *testing.T) error {
		_, err := c.DisassociateAddress(ctxT(t), &ec2.DisassociateAddressInput{DryRun: aws.Bool(true),
			AssociationId: aws.String("eipassoc-existing")})
		return err
	},
	"DescribeAvailabilityZones": func(c *ec2.Client, t *testing.T) error {
		_, err := c.DescribeAvailabilityZones(ctxT(t), &ec2.DescribeAvailabilityZonesInput{DryRun: aws.Bool(true)})
		return err
	},
}

func TestDryRunAnswersDryRunOperationWhenPermittedAndChangesNothing(t *testing.T) {
	e := start(t)
	c := ec2Client(e)
	before := e.Server.Snapshot()
	for action, call := range dryRunCalls {
		t.Run(action, func(t *testing.T) {
			wantAPIError(t, call(c, t), "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
		})
	}
	if got := vipTarget(t, e.Server, "rtb-1"); got != "eni-12345678" {
		t.Errorf("a DryRun ReplaceRoute changed the route to %q", got)
	}
	if got := e.Server.Snapshot(); len(got.RouteTables[2].Routes) != len(before.RouteTables[2].Routes) ||
		addressOf(t, got, "eipalloc-assoc").AssociationID != "eipassoc-existing" {
		t.Error("a DryRun call changed the world")
	}
}

func TestDryRunAnswersUnauthorizedOperationForDeniedActions(t *testing.T) {
	e := start(t)
	c := ec2Client(e, asUser(roAKID, roSecret))
	for action, call := range dryRunCalls {
		t.Run(action, func(t *testing.T) {
			err := call(c, t)
			switch action {
			case "ReplaceRoute", "CreateRoute", "DescribeAddresses":
				wantAPIError(t, err, "UnauthorizedOperation", "You are not authorized to perform this operation.")
			default:
				wantAPIError(t, err, "DryRunOperation", "")
			}
		})
	}
}

func TestDeniedActionIsUnauthorizedWithoutDryRunToo(t *testing.T) {
	e := start(t)
	_, err := ec2Client(e, asUser(roAKID, roSecret)).ReplaceRoute(ctxT(t), &ec2.ReplaceRouteInput{
		RouteTableId: aws.String("rtb-1"), DestinationCidrBlock: aws.String("10.1.0.20/32"), NetworkInterfaceId: aws.String("eni-87654321"),
	})
	wantAPIError(t, err, "UnauthorizedOperation", "You are not authorized to perform this operation.")
	if got := vipTarget(t, e.Server, "rtb-1"); got != "eni-12345678" {
		t.Errorf("a denied ReplaceRoute changed the route to %q", got)
	}
}

// ec2Raw posts a signed EC2 form and returns the status and body.
func ec2Raw(t *testing.T, body string) (int, string) {
	t.Helper()
	e := start(t)
	resp, err := http.DefaultClient.Do(signedRequest(t, e, http.MethodPost, "/", "ec2", body))
	mustOK(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	mustOK(t, err)
	return resp.StatusCode, string(b)
}

func TestMalformedEC2RequestsGetEC2ErrorDocuments(t *testing.T) {
	v := "&Version=2016-11-15"
	tests := []struct {
		name, body, code string
	}{
		{"bad percent escape", "Action=DescribeVpcs&VpcId.1=%zz" + v, "MalformedQueryString"},
		{"no action", "Version=2016-11-15", "MissingAction"},
		{"unknown action", "Action=TerminateInstances" + v, "InvalidAction"},
		{"unknown parameter", "Action=DescribeVpcs&Colour=blue" + v, "UnknownParameter"},
		{"index zero", "Action=DescribeVpcs&VpcId.0=vpc-1234abcd" + v, "InvalidParameterValue"},
		{"filter without name", "Action=DescribeVpcs&Filter.1.Value.1=x" + v, "InvalidParameterValue"},
		{"filter without value", "Action=DescribeVpcs&Filter.1.Name=vpc-id" + v, "InvalidParameterValue"},
		{"bad boolean", "Action=DescribeVpcs&DryRun=perhaps" + v, "InvalidParameterValue"},
		{"no version", "Action=DescribeVpcs", "MissingParameter"},
		{"missing route table", "Action=ReplaceRoute&DestinationCidrBlock=10.1.0.20/32&NetworkInterfaceId=eni-12345678" + v, "MissingParameter"},
		{"no association", "Action=DisassociateAddress" + v, "MissingParameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := ec2Raw(t, tt.body)
			if status != http.StatusBadRequest {
				t.Errorf("status = %d, want 400", status)
			}
			if !strings.Contains(body, "<Response><Errors><Error><Code>"+tt.code+"</Code>") || !strings.Contains(body, "<RequestID>") {
				t.Errorf("body = %s, want an EC2 error document with %s", body, tt.code)
			}
		})
	}
}

func TestEC2ResponsesCarryTheNamespaceAndRequestID(t *testing.T) {
	status, body := ec2Raw(t, url.Values{"Action": {"DescribeVpcs"}, "Version": {"2016-11-15"}}.Encode())
	if status != http.StatusOK || !strings.Contains(body, `<DescribeVpcsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>`) {
		t.Errorf("status %d body %s", status, body)
	}
}
