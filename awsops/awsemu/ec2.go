package awsemu

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// ec2Action is one EC2 API action the emulator serves. run is called with
// s.mu held.
type ec2Action struct {
	mutating bool
	params   []string // allowed parameters besides Action, Version and DryRun
	target   func(query) string
	run      func(s *Server, q query) (ec2Body, *apiError)
}

var describeParams = []string{"Filter.#.Name", "Filter.#.Value.#", "MaxResults", "NextToken"}

func withDescribe(p ...string) []string { return append(p, describeParams...) }

var routeParams = []string{"RouteTableId", "DestinationCidrBlock", "NetworkInterfaceId", "GatewayId", "InstanceId"}

var ec2Actions = map[string]ec2Action{
	"DescribeVpcs": {
		params: withDescribe("VpcId.#"),
		target: listTarget("VpcId"),
		run:    (*Server).describeVpcs,
	},
	"DescribeSubnets": {
		params: withDescribe("SubnetId.#"),
		target: listTarget("SubnetId"),
		run:    (*Server).describeSubnets,
	},
	"DescribeRouteTables": {
		params: withDescribe("RouteTableId.#"),
		target: listTarget("RouteTableId"),
		run:    (*Server).describeRouteTables,
	},
	"CreateRoute": {
		mutating: true,
		params:   routeParams,
		target:   paramTarget("RouteTableId"),
		run:      (*Server).createRoute,
	},
	"ReplaceRoute": {
		mutating: true,
		params:   routeParams,
		target:   paramTarget("RouteTableId"),
		run:      (*Server).replaceRoute,
	},
	"DeleteRoute": {
		mutating: true,
		params:   []string{"RouteTableId", "DestinationCidrBlock"},
		target:   paramTarget("RouteTableId"),
		run:      (*Server).deleteRoute,
	},
	"DescribeNetworkInterfaces": {
		params: withDescribe("NetworkInterfaceId.#", "IncludeManagedResources"),
		target: listTarget("NetworkInterfaceId"),
		run:    (*Server).describeNetworkInterfaces,
	},
	"DescribeInstances": {
		params: withDescribe("InstanceId.#", "IncludeManagedResources"),
		target: listTarget("InstanceId"),
		run:    (*Server).describeInstances,
	},
	"DescribeAddresses": {
		params: []string{"AllocationId.#", "PublicIp.#", "Filter.#.Name", "Filter.#.Value.#"},
		target: func(q query) string {
			return strings.Join(append(q.list("AllocationId"), q.list("PublicIp")...), ",")
		},
		run: (*Server).describeAddresses,
	},
	"AssociateAddress": {
		mutating: true,
		params:   []string{"AllocationId", "PublicIp", "NetworkInterfaceId", "InstanceId", "PrivateIpAddress", "AllowReassociation"},
		target: func(q query) string {
			if v := q["AllocationId"]; v != "" {
				return v
			}
			return q["PublicIp"]
		},
		run: (*Server).associateAddress,
	},
	"DisassociateAddress": {
		mutating: true,
		params:   []string{"AssociationId", "PublicIp"},
		target: func(q query) string {
			if v := q["AssociationId"]; v != "" {
				return v
			}
			return q["PublicIp"]
		},
		run: (*Server).disassociateAddress,
	},
	"DescribeAvailabilityZones": {
		params: []string{"ZoneName.#", "ZoneId.#", "AllAvailabilityZones", "Filter.#.Name", "Filter.#.Value.#"},
		target: listTarget("ZoneName"),
		run:    (*Server).describeAvailabilityZones,
	},
}

func listTarget(name string) func(query) string {
	return func(q query) string { return strings.Join(q.list(name), ",") }
}

func paramTarget(name string) func(query) string {
	return func(q query) string { return q[name] }
}

// Not-found errors with AWS's codes and messages.
func errVpcNotFound(id string) *apiError {
	return newError(http.StatusBadRequest, "InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
}

func errSubnetNotFound(id string) *apiError {
	return newError(http.StatusBadRequest, "InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
}

func errRouteTableNotFound(id string) *apiError {
	return newError(http.StatusBadRequest, "InvalidRouteTableID.NotFound", "The routeTable ID '%s' does not exist", id)
}

func errENINotFound(id string) *apiError {
	return newError(http.StatusBadRequest, "InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", id)
}

func errInstanceNotFound(id string) *apiError {
	return newError(http.StatusBadRequest, "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
}

func errAllocationNotFound(id string) *apiError {
	return newError(http.StatusBadRequest, "InvalidAllocationID.NotFound", "The allocation ID '%s' does not exist", id)
}

func errAddressNotFound(ip string) *apiError {
	return newError(http.StatusBadRequest, "InvalidAddress.NotFound", "Address '%s' not found.", ip)
}

func errAssociationNotFound(id string) *apiError {
	return newError(http.StatusBadRequest, "InvalidAssociationID.NotFound", "The association ID '%s' does not exist", id)
}

// malformedID checks an ID's prefix as EC2 does before looking it up.
func malformedID(id, prefix, code string) *apiError {
	if strings.HasPrefix(id, prefix) && len(id) > len(prefix) {
		return nil
	}
	return newError(http.StatusBadRequest, code, "Invalid id: \"%s\"", id)
}

// selectByID returns the items named by ids in request order, all items
// when ids is empty, and notFound's error for the first unknown ID.
func selectByID[T any](items []T, ids []string, idOf func(T) string, notFound func(string) *apiError) ([]T, *apiError) {
	if len(ids) == 0 {
		return slices.Clone(items), nil
	}
	var out []T
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		i := slices.IndexFunc(items, func(it T) bool { return idOf(it) == id })
		if i < 0 {
			return nil, notFound(id)
		}
		out = append(out, items[i])
	}
	return out, nil
}

func one(s string) []string { return []string{s} }

func boolString(b bool) string { return strconv.FormatBool(b) }
