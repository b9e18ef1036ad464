package awsemu

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
)

// World is the AWS state the emulator serves: one region, its credentials,
// availability zones, VPC objects, Elastic IPs and Route 53 hosted zones.
// It is loaded from YAML with snake_case keys; unknown keys are errors.
type World struct {
	// Region is the region of every EC2 object (ap-northeast-1). EC2 and
	// STS requests must be signed for it.
	Region string `yaml:"region" json:"region"`
	// ChangeDelay is how long a Route 53 change stays PENDING before it is
	// INSYNC and visible to ServeDNS; 0 means INSYNC at once.
	ChangeDelay time.Duration `yaml:"change_delay" json:"change_delay"`
	// Credentials are the access keys requests may be signed with.
	Credentials []Credential `yaml:"credentials" json:"credentials"`
	// AvailabilityZones are the region's zones.
	AvailabilityZones []AZ `yaml:"availability_zones" json:"availability_zones"`
	// VPCs are the region's VPCs.
	VPCs []VPC `yaml:"vpcs" json:"vpcs"`
	// Subnets are the VPCs' subnets.
	Subnets []Subnet `yaml:"subnets" json:"subnets"`
	// Instances are the EC2 instances; each one has its own IMDS.
	Instances []Instance `yaml:"instances" json:"instances"`
	// NetworkInterfaces are the ENIs, attached or not.
	NetworkInterfaces []ENI `yaml:"network_interfaces" json:"network_interfaces"`
	// RouteTables are the VPCs' route tables.
	RouteTables []RouteTable `yaml:"route_tables" json:"route_tables"`
	// Addresses are the Elastic IP allocations.
	Addresses []Address `yaml:"addresses" json:"addresses"`
	// HostedZones are the Route 53 hosted zones.
	HostedZones []HostedZone `yaml:"hosted_zones" json:"hosted_zones"`
}

// Credential is an access key pair and the actions it may not perform.
type Credential struct {
	// AccessKeyID is the access key ID (AKIA...).
	AccessKeyID string `yaml:"access_key_id" json:"access_key_id"`
	// SecretAccessKey is the secret the signatures are computed with.
	SecretAccessKey string `yaml:"secret_access_key" json:"secret_access_key"`
	// User names the IAM user in GetCallerIdentity's ARN; empty means
	// "emu-user".
	User string `yaml:"user,omitempty" json:"user,omitempty"`
	// Deny lists the actions refused with UnauthorizedOperation (EC2) or
	// AccessDenied (Route 53): "ReplaceRoute", "ec2:ReplaceRoute",
	// "route53:*" or "*".
	Deny []string `yaml:"deny,omitempty" json:"deny,omitempty"`
}

// AZ is an availability zone.
type AZ struct {
	// Name is the zone name (ap-northeast-1a).
	Name string `yaml:"name" json:"name"`
	// ID is the zone ID (apne1-az4); optional.
	ID string `yaml:"id,omitempty" json:"id,omitempty"`
	// State is "available" (the default), "information", "impaired",
	// "unavailable" or "constrained".
	State string `yaml:"state,omitempty" json:"state,omitempty"`
}

// VPC is a virtual private cloud.
type VPC struct {
	// ID is the VPC ID (vpc-1234abcd).
	ID string `yaml:"id" json:"id"`
	// CIDRs are its IPv4 CIDR blocks; the first is the primary one.
	CIDRs []string `yaml:"cidrs" json:"cidrs"`
}

// Subnet is a subnet of a VPC in one availability zone.
type Subnet struct {
	// ID is the subnet ID.
	ID string `yaml:"id" json:"id"`
	// VPCID is the VPC it belongs to.
	VPCID string `yaml:"vpc_id" json:"vpc_id"`
	// CIDR is its IPv4 CIDR block, inside one of the VPC's.
	CIDR string `yaml:"cidr" json:"cidr"`
	// AZ is its availability zone's name.
	AZ string `yaml:"availability_zone" json:"availability_zone"`
}

// Instance is a running EC2 instance.
type Instance struct {
	// ID is the instance ID (i-0123456789abcdef0).
	ID string `yaml:"id" json:"id"`
	// AZ is its availability zone's name.
	AZ string `yaml:"availability_zone" json:"availability_zone"`
	// ENIs are its network interfaces, the primary one first.
	ENIs []string `yaml:"enis" json:"enis"`
}

// ENI is an elastic network interface with one private IPv4 address.
type ENI struct {
	// ID is the ENI ID (eni-12345678).
	ID string `yaml:"id" json:"id"`
	// VPCID is its VPC; empty means the subnet's.
	VPCID string `yaml:"vpc_id,omitempty" json:"vpc_id,omitempty"`
	// SubnetID is its subnet.
	SubnetID string `yaml:"subnet_id" json:"subnet_id"`
	// InstanceID is the instance it is attached to; empty means the
	// instance listing it in its enis, if any.
	InstanceID string `yaml:"instance_id,omitempty" json:"instance_id,omitempty"`
	// PrivateIP is its primary private IPv4 address, inside the subnet.
	PrivateIP string `yaml:"private_ip" json:"private_ip"`
	// MAC is its MAC address; empty means one derived from the ID.
	MAC string `yaml:"mac,omitempty" json:"mac,omitempty"`
	// SourceDestCheck is the source/destination check flag; a VIP needs
	// it off.
	SourceDestCheck bool `yaml:"source_dest_check" json:"source_dest_check"`
}

// RouteTable is a VPC route table.
type RouteTable struct {
	// ID is the route table ID (rtb-...).
	ID string `yaml:"id" json:"id"`
	// VPCID is its VPC.
	VPCID string `yaml:"vpc_id" json:"vpc_id"`
	// Routes are its IPv4 routes, one per destination.
	Routes []Route `yaml:"routes" json:"routes"`
}

// Route is one route: a destination and exactly one target.
type Route struct {
	// Destination is the destination CIDR block (10.1.0.20/32).
	Destination string `yaml:"destination" json:"destination"`
	// ENIID is the target network interface, if the target is an ENI.
	ENIID string `yaml:"eni_id,omitempty" json:"eni_id,omitempty"`
	// GatewayID is the target gateway ("local", igw-..., nat-...), if the
	// target is not an ENI.
	GatewayID string `yaml:"gateway_id,omitempty" json:"gateway_id,omitempty"`
}

// Address is an Elastic IP allocation, associated with an ENI or not.
type Address struct {
	// AllocationID is the allocation ID (eipalloc-01234567).
	AllocationID string `yaml:"allocation_id" json:"allocation_id"`
	// PublicIP is the Elastic IP address.
	PublicIP string `yaml:"public_ip" json:"public_ip"`
	// AssociationID is the association's ID when associated; empty with
	// an ENIID means one derived from the allocation ID.
	AssociationID string `yaml:"association_id,omitempty" json:"association_id,omitempty"`
	// ENIID is the associated network interface, empty when not associated.
	ENIID string `yaml:"eni_id,omitempty" json:"eni_id,omitempty"`
	// PrivateIP is the associated private address; empty with an ENIID
	// means the ENI's.
	PrivateIP string `yaml:"private_ip,omitempty" json:"private_ip,omitempty"`
}

// HostedZone is a Route 53 hosted zone.
type HostedZone struct {
	// ID is the zone ID without "/hostedzone/" (ABCDEFGHIJK123).
	ID string `yaml:"id" json:"id"`
	// Name is the zone's domain name; stored lower case with a final dot.
	Name string `yaml:"name" json:"name"`
	// Private marks a private hosted zone.
	Private bool `yaml:"private,omitempty" json:"private,omitempty"`
	// Records are its record sets.
	Records []RecordSet `yaml:"records,omitempty" json:"records,omitempty"`
}

// RecordSet is a simple (non-alias) resource record set.
type RecordSet struct {
	// Name is the FQDN; stored lower case with a final dot.
	Name string `yaml:"name" json:"name"`
	// Type is the record type (A, AAAA, CNAME, TXT, ...).
	Type string `yaml:"type" json:"type"`
	// TTL is the time to live in seconds.
	TTL int `yaml:"ttl" json:"ttl"`
	// Values are the resource records' values.
	Values []string `yaml:"values" json:"values"`
}

// ParseWorld decodes and validates a World from YAML. Unknown keys are
// errors, and every error names its line.
func ParseWorld(data []byte) (*World, error) {
	var w World
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&w); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("parse world: empty document")
		}
		return nil, fmt.Errorf("parse world: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("parse world: more than one YAML document")
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("parse world: %w", err)
	}
	if errs := validateWorld(&w); len(errs) > 0 {
		return nil, fmt.Errorf("parse world: %w", joinFieldErrors(errs, &root))
	}
	return &w, nil
}

// LoadWorld reads and parses a World from a YAML file.
func LoadWorld(path string) (*World, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load world: %w", err)
	}
	w, err := ParseWorld(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return w, nil
}

// Clone returns a deep copy of w.
func (w *World) Clone() *World {
	if w == nil {
		return nil
	}
	c := *w
	c.Credentials = cloneSlice(w.Credentials, func(x Credential) Credential {
		x.Deny = cloneStrings(x.Deny)
		return x
	})
	c.AvailabilityZones = cloneSlice(w.AvailabilityZones, nil)
	c.VPCs = cloneSlice(w.VPCs, func(x VPC) VPC {
		x.CIDRs = cloneStrings(x.CIDRs)
		return x
	})
	c.Subnets = cloneSlice(w.Subnets, nil)
	c.Instances = cloneSlice(w.Instances, func(x Instance) Instance {
		x.ENIs = cloneStrings(x.ENIs)
		return x
	})
	c.NetworkInterfaces = cloneSlice(w.NetworkInterfaces, nil)
	c.RouteTables = cloneSlice(w.RouteTables, func(x RouteTable) RouteTable {
		x.Routes = cloneSlice(x.Routes, nil)
		return x
	})
	c.Addresses = cloneSlice(w.Addresses, nil)
	c.HostedZones = cloneSlice(w.HostedZones, func(x HostedZone) HostedZone {
		x.Records = cloneSlice(x.Records, func(r RecordSet) RecordSet {
			r.Values = cloneStrings(r.Values)
			return r
		})
		return x
	})
	return &c
}

func cloneSlice[T any](s []T, deep func(T) T) []T {
	if s == nil {
		return nil
	}
	c := make([]T, len(s))
	for i, x := range s {
		if deep != nil {
			x = deep(x)
		}
		c[i] = x
	}
	return c
}

func cloneStrings(s []string) []string { return cloneSlice(s, nil) }

// Lookups used by the handlers. They return pointers into w, valid until w
// changes.

func (w *World) vpc(id string) *VPC {
	for i := range w.VPCs {
		if w.VPCs[i].ID == id {
			return &w.VPCs[i]
		}
	}
	return nil
}

func (w *World) subnet(id string) *Subnet {
	for i := range w.Subnets {
		if w.Subnets[i].ID == id {
			return &w.Subnets[i]
		}
	}
	return nil
}

func (w *World) instance(id string) *Instance {
	for i := range w.Instances {
		if w.Instances[i].ID == id {
			return &w.Instances[i]
		}
	}
	return nil
}

func (w *World) eni(id string) *ENI {
	for i := range w.NetworkInterfaces {
		if w.NetworkInterfaces[i].ID == id {
			return &w.NetworkInterfaces[i]
		}
	}
	return nil
}

func (w *World) routeTable(id string) *RouteTable {
	for i := range w.RouteTables {
		if w.RouteTables[i].ID == id {
			return &w.RouteTables[i]
		}
	}
	return nil
}

func (w *World) address(allocationID string) *Address {
	for i := range w.Addresses {
		if w.Addresses[i].AllocationID == allocationID {
			return &w.Addresses[i]
		}
	}
	return nil
}

func (w *World) az(name string) *AZ {
	for i := range w.AvailabilityZones {
		if w.AvailabilityZones[i].Name == name {
			return &w.AvailabilityZones[i]
		}
	}
	return nil
}

func (w *World) hostedZone(id string) *HostedZone {
	for i := range w.HostedZones {
		if w.HostedZones[i].ID == id {
			return &w.HostedZones[i]
		}
	}
	return nil
}

func (w *World) credential(accessKeyID string) *Credential {
	for i := range w.Credentials {
		if w.Credentials[i].AccessKeyID == accessKeyID {
			return &w.Credentials[i]
		}
	}
	return nil
}

// addressOfENI returns the Elastic IP associated with the ENI's private IP.
func (w *World) addressOfENI(eniID, privateIP string) *Address {
	for i := range w.Addresses {
		a := &w.Addresses[i]
		if a.ENIID == eniID && (privateIP == "" || a.PrivateIP == privateIP) {
			return a
		}
	}
	return nil
}
