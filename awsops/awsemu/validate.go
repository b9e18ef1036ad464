package awsemu

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// fieldError is a validation failure at a path of the World ("subnets", 0,
// "vpc_id"), so ParseWorld can name the YAML line.
type fieldError struct {
	path []any
	msg  string
}

func (e fieldError) pathString() string {
	var b strings.Builder
	for _, p := range e.path {
		switch p := p.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", p)
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p)
		}
	}
	return b.String()
}

// joinFieldErrors turns the failures into one error, each line prefixed
// with its YAML line when root is not nil.
func joinFieldErrors(errs []fieldError, root *yaml.Node) error {
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		prefix := e.pathString()
		if n := nodeAt(root, e.path); n != nil {
			prefix = fmt.Sprintf("line %d: %s", n.Line, prefix)
		}
		out = append(out, fmt.Errorf("%s: %s", prefix, e.msg))
	}
	return errors.Join(out...)
}

// nodeAt walks the YAML tree along path and returns the deepest node found,
// so a missing key still yields its parent's line.
func nodeAt(root *yaml.Node, path []any) *yaml.Node {
	if root == nil {
		return nil
	}
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, p := range path {
		var next *yaml.Node
		switch p := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == p {
						next = n.Content[i+1]
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && p >= 0 && p < len(n.Content) {
				next = n.Content[p]
			}
		}
		if next == nil {
			return n
		}
		n = next
	}
	return n
}

// validator collects failures while checking and normalizing a World.
type validator struct {
	errs []fieldError
}

func (v *validator) fail(msg string, path ...any) {
	v.errs = append(v.errs, fieldError{path: path, msg: msg})
}

// unique reports a duplicate of key in seen under path.
func (v *validator) unique(seen map[string]bool, key, what string, path ...any) {
	if key == "" {
		return
	}
	if seen[key] {
		v.fail(fmt.Sprintf("duplicate %s %q", what, key), path...)
	}
	seen[key] = true
}

// AZ states EC2 reports in DescribeAvailabilityZones.
var azStates = []string{"available", "information", "impaired", "unavailable", "constrained"}

// Record types Route 53 accepts.
var recordTypes = []string{"A", "AAAA", "CAA", "CNAME", "DS", "MX", "NAPTR", "NS", "PTR", "SOA", "SPF", "SRV", "TXT"}

// validateWorld checks w and fills in the defaults the field docs promise.
// It returns every failure found.
func validateWorld(w *World) []fieldError {
	v := &validator{}
	if w.Region == "" {
		v.fail("is required", "region")
	}
	if w.ChangeDelay < 0 {
		v.fail("must not be negative", "change_delay")
	}

	seen := map[string]bool{}
	for i := range w.Credentials {
		c := &w.Credentials[i]
		if c.AccessKeyID == "" {
			v.fail("is required", "credentials", i, "access_key_id")
		}
		if c.SecretAccessKey == "" {
			v.fail("is required", "credentials", i, "secret_access_key")
		}
		v.unique(seen, c.AccessKeyID, "access key", "credentials", i, "access_key_id")
	}

	names, ids := map[string]bool{}, map[string]bool{}
	for i := range w.AvailabilityZones {
		az := &w.AvailabilityZones[i]
		if az.Name == "" {
			v.fail("is required", "availability_zones", i, "name")
		} else if w.Region != "" && !strings.HasPrefix(az.Name, w.Region) {
			v.fail(fmt.Sprintf("zone %q is not in region %q", az.Name, w.Region), "availability_zones", i, "name")
		}
		v.unique(names, az.Name, "zone name", "availability_zones", i, "name")
		v.unique(ids, az.ID, "zone ID", "availability_zones", i, "id")
		if az.State == "" {
			az.State = "available"
		} else if !slices.Contains(azStates, az.State) {
			v.fail(fmt.Sprintf("unknown state %q (want one of %s)", az.State, strings.Join(azStates, ", ")), "availability_zones", i, "state")
		}
	}

	ids = map[string]bool{}
	for i := range w.VPCs {
		vpc := &w.VPCs[i]
		requireID(v, vpc.ID, "vpc-", "vpcs", i)
		v.unique(ids, vpc.ID, "VPC ID", "vpcs", i, "id")
		if len(vpc.CIDRs) == 0 {
			v.fail("at least one CIDR block is required", "vpcs", i, "cidrs")
		}
		for j, c := range vpc.CIDRs {
			if _, err := parseCIDR4(c); err != nil {
				v.fail(err.Error(), "vpcs", i, "cidrs", j)
			}
		}
	}

	ids = map[string]bool{}
	for i := range w.Subnets {
		s := &w.Subnets[i]
		requireID(v, s.ID, "subnet-", "subnets", i)
		v.unique(ids, s.ID, "subnet ID", "subnets", i, "id")
		vpc := w.vpc(s.VPCID)
		if vpc == nil {
			v.fail(fmt.Sprintf("VPC %q does not exist", s.VPCID), "subnets", i, "vpc_id")
		}
		p, err := parseCIDR4(s.CIDR)
		if err != nil {
			v.fail(err.Error(), "subnets", i, "cidr")
		} else if vpc != nil && !vpcContainsPrefix(vpc, p) {
			v.fail(fmt.Sprintf("%s is outside the CIDR blocks of %s", s.CIDR, vpc.ID), "subnets", i, "cidr")
		}
		if w.az(s.AZ) == nil {
			v.fail(fmt.Sprintf("availability zone %q does not exist", s.AZ), "subnets", i, "availability_zone")
		}
	}

	ids = map[string]bool{}
	for i := range w.NetworkInterfaces {
		e := &w.NetworkInterfaces[i]
		requireID(v, e.ID, "eni-", "network_interfaces", i)
		v.unique(ids, e.ID, "ENI ID", "network_interfaces", i, "id")
		s := w.subnet(e.SubnetID)
		if s == nil {
			v.fail(fmt.Sprintf("subnet %q does not exist", e.SubnetID), "network_interfaces", i, "subnet_id")
		} else if e.VPCID == "" {
			e.VPCID = s.VPCID
		} else if e.VPCID != s.VPCID {
			v.fail(fmt.Sprintf("subnet %s belongs to %s, not %s", s.ID, s.VPCID, e.VPCID), "network_interfaces", i, "vpc_id")
		}
		ip, err := netip.ParseAddr(e.PrivateIP)
		switch {
		case err != nil || !ip.Is4():
			v.fail(fmt.Sprintf("%q is not an IPv4 address", e.PrivateIP), "network_interfaces", i, "private_ip")
		case s != nil:
			if p, err := parseCIDR4(s.CIDR); err == nil && !p.Contains(ip) {
				v.fail(fmt.Sprintf("%s is outside subnet %s (%s)", e.PrivateIP, s.ID, s.CIDR), "network_interfaces", i, "private_ip")
			}
		}
		if e.MAC == "" {
			e.MAC = derivedMAC(e.ID)
		} else if hw, err := net.ParseMAC(e.MAC); err != nil || len(hw) != 6 {
			v.fail(fmt.Sprintf("%q is not a MAC address", e.MAC), "network_interfaces", i, "mac")
		} else {
			e.MAC = hw.String()
		}
	}

	ids = map[string]bool{}
	attached := map[string]string{} // ENI ID → instance ID
	for i := range w.Instances {
		in := &w.Instances[i]
		requireID(v, in.ID, "i-", "instances", i)
		v.unique(ids, in.ID, "instance ID", "instances", i, "id")
		if w.az(in.AZ) == nil {
			v.fail(fmt.Sprintf("availability zone %q does not exist", in.AZ), "instances", i, "availability_zone")
		}
		if len(in.ENIs) == 0 {
			v.fail("at least one ENI is required", "instances", i, "enis")
		}
		for j, id := range in.ENIs {
			e := w.eni(id)
			switch {
			case e == nil:
				v.fail(fmt.Sprintf("ENI %q does not exist", id), "instances", i, "enis", j)
				continue
			case attached[id] != "":
				v.fail(fmt.Sprintf("ENI %s is already attached to %s", id, attached[id]), "instances", i, "enis", j)
				continue
			}
			attached[id] = in.ID
			if s := w.subnet(e.SubnetID); s != nil && s.AZ != in.AZ {
				v.fail(fmt.Sprintf("ENI %s is in %s, the instance in %s", id, s.AZ, in.AZ), "instances", i, "enis", j)
			}
		}
	}
	for i := range w.NetworkInterfaces {
		e := &w.NetworkInterfaces[i]
		switch {
		case e.InstanceID == "":
			e.InstanceID = attached[e.ID]
		case attached[e.ID] != e.InstanceID:
			v.fail(fmt.Sprintf("instance %q does not list ENI %s in its enis", e.InstanceID, e.ID), "network_interfaces", i, "instance_id")
		}
	}

	ids = map[string]bool{}
	for i := range w.RouteTables {
		rt := &w.RouteTables[i]
		requireID(v, rt.ID, "rtb-", "route_tables", i)
		v.unique(ids, rt.ID, "route table ID", "route_tables", i, "id")
		if w.vpc(rt.VPCID) == nil {
			v.fail(fmt.Sprintf("VPC %q does not exist", rt.VPCID), "route_tables", i, "vpc_id")
		}
		dests := map[string]bool{}
		for j := range rt.Routes {
			r := &rt.Routes[j]
			p, err := parseCIDR4(r.Destination)
			if err != nil {
				v.fail(err.Error(), "route_tables", i, "routes", j, "destination")
			} else {
				v.unique(dests, p.String(), "destination", "route_tables", i, "routes", j, "destination")
			}
			switch {
			case (r.ENIID == "") == (r.GatewayID == ""):
				v.fail("exactly one of eni_id and gateway_id is required", "route_tables", i, "routes", j)
			case r.ENIID != "":
				e := w.eni(r.ENIID)
				if e == nil {
					v.fail(fmt.Sprintf("ENI %q does not exist", r.ENIID), "route_tables", i, "routes", j, "eni_id")
				} else if e.VPCID != rt.VPCID {
					v.fail(fmt.Sprintf("ENI %s is in %s, the route table in %s", e.ID, e.VPCID, rt.VPCID), "route_tables", i, "routes", j, "eni_id")
				}
			}
		}
	}

	ids = map[string]bool{}
	ips, assocs := map[string]bool{}, map[string]bool{}
	for i := range w.Addresses {
		a := &w.Addresses[i]
		requireID(v, a.AllocationID, "eipalloc-", "addresses", i, "allocation_id")
		v.unique(ids, a.AllocationID, "allocation ID", "addresses", i, "allocation_id")
		if ip, err := netip.ParseAddr(a.PublicIP); err != nil || !ip.Is4() {
			v.fail(fmt.Sprintf("%q is not an IPv4 address", a.PublicIP), "addresses", i, "public_ip")
		}
		v.unique(ips, a.PublicIP, "public IP", "addresses", i, "public_ip")
		if a.ENIID == "" {
			if a.AssociationID != "" || a.PrivateIP != "" {
				v.fail("association_id and private_ip need an eni_id", "addresses", i)
			}
			continue
		}
		e := w.eni(a.ENIID)
		if e == nil {
			v.fail(fmt.Sprintf("ENI %q does not exist", a.ENIID), "addresses", i, "eni_id")
			continue
		}
		if a.PrivateIP == "" {
			a.PrivateIP = e.PrivateIP
		} else if a.PrivateIP != e.PrivateIP {
			v.fail(fmt.Sprintf("%s is not an address of %s", a.PrivateIP, e.ID), "addresses", i, "private_ip")
		}
		if a.AssociationID == "" {
			a.AssociationID = "eipassoc-" + hexHash(a.AllocationID, 17)
		}
		v.unique(assocs, a.AssociationID, "association ID", "addresses", i, "association_id")
	}
	for i := range w.Addresses {
		a := &w.Addresses[i]
		for j := range i {
			b := &w.Addresses[j]
			if a.ENIID != "" && a.ENIID == b.ENIID && a.PrivateIP == b.PrivateIP {
				v.fail(fmt.Sprintf("%s %s already has %s", a.ENIID, a.PrivateIP, b.AllocationID), "addresses", i, "eni_id")
			}
		}
	}

	ids = map[string]bool{}
	for i := range w.HostedZones {
		z := &w.HostedZones[i]
		z.ID = strings.TrimPrefix(z.ID, "/hostedzone/")
		if z.ID == "" {
			v.fail("is required", "hosted_zones", i, "id")
		}
		v.unique(ids, z.ID, "hosted zone ID", "hosted_zones", i, "id")
		name, err := canonicalName(z.Name)
		if err != nil {
			v.fail(err.Error(), "hosted_zones", i, "name")
			continue
		}
		z.Name = name
		keys := map[string]bool{}
		for j := range z.Records {
			r := &z.Records[j]
			if msg := normalizeRecordSet(r, z.Name); msg != "" {
				v.fail(msg, "hosted_zones", i, "records", j)
				continue
			}
			v.unique(keys, r.Name+" "+r.Type, "record set", "hosted_zones", i, "records", j)
		}
	}
	return v.errs
}

// requireID checks that an ID is present and has AWS's prefix.
func requireID(v *validator, id, prefix string, path ...any) {
	if len(path) > 0 {
		if _, ok := path[len(path)-1].(int); ok {
			path = append(path, "id")
		}
	}
	switch {
	case id == "":
		v.fail("is required", path...)
	case !strings.HasPrefix(id, prefix) || len(id) == len(prefix):
		v.fail(fmt.Sprintf("%q does not look like %s...", id, prefix), path...)
	}
}

// parseCIDR4 parses an IPv4 CIDR block in canonical form (no host bits).
func parseCIDR4(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 CIDR block", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set (want %s)", s, p.Masked())
	}
	return p, nil
}

func vpcContainsPrefix(vpc *VPC, p netip.Prefix) bool {
	for _, c := range vpc.CIDRs {
		if vp, err := parseCIDR4(c); err == nil && vp.Bits() <= p.Bits() && vp.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// canonicalName returns a DNS name lower case with its final dot, or an
// error when it is not a valid Route 53 name.
func canonicalName(s string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(s, "."))
	if n == "" {
		return "", fmt.Errorf("%q is not a domain name", s)
	}
	if len(n) > 253 {
		return "", fmt.Errorf("domain name %q is longer than 253 characters", s)
	}
	for i, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("%q is not a domain name", s)
		}
		if label == "*" && i == 0 {
			continue
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("%q is not a domain name: bad character %q", s, c)
			}
		}
	}
	return n + ".", nil
}

// inZone reports whether the canonical name lies in the canonical zone.
func inZone(name, zone string) bool {
	return name == zone || strings.HasSuffix(name, "."+zone)
}

// normalizeRecordSet canonicalizes r and returns why it is invalid, or "".
func normalizeRecordSet(r *RecordSet, zone string) string {
	name, err := canonicalName(r.Name)
	if err != nil {
		return err.Error()
	}
	r.Name = name
	if !inZone(name, zone) {
		return fmt.Sprintf("%s is not in zone %s", name, zone)
	}
	r.Type = strings.ToUpper(r.Type)
	if !slices.Contains(recordTypes, r.Type) {
		return fmt.Sprintf("unknown record type %q", r.Type)
	}
	if r.TTL < 0 || r.TTL > 2147483647 {
		return fmt.Sprintf("TTL %d is out of range", r.TTL)
	}
	if len(r.Values) == 0 {
		return "at least one value is required"
	}
	for _, val := range r.Values {
		if msg := checkRecordValue(r.Type, val); msg != "" {
			return msg
		}
	}
	if r.Type == "CNAME" && len(r.Values) > 1 {
		return "a CNAME record set holds one value"
	}
	return ""
}

// checkRecordValue returns why val is not a valid value of type typ, or "".
func checkRecordValue(typ, val string) string {
	switch typ {
	case "A":
		if ip, err := netip.ParseAddr(val); err != nil || !ip.Is4() {
			return fmt.Sprintf("%q is not a valid IPv4 address", val)
		}
	case "AAAA":
		if ip, err := netip.ParseAddr(val); err != nil || !ip.Is6() || ip.Is4In6() {
			return fmt.Sprintf("%q is not a valid IPv6 address", val)
		}
	default:
		if strings.TrimSpace(val) == "" {
			return "empty value"
		}
	}
	return ""
}

// derivedMAC returns a stable locally administered MAC for an ENI ID.
func derivedMAC(id string) string {
	h := fnv.New64a()
	h.Write([]byte(id))
	s := h.Sum64()
	hw := net.HardwareAddr{0x06, byte(s >> 32), byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)}
	return hw.String()
}

// hexHash returns n stable hex digits derived from s.
func hexHash(s string, n int) string {
	h := fnv.New64a()
	h.Write([]byte(s))
	out := strconv.FormatUint(h.Sum64(), 16)
	for len(out) < n {
		h.Write([]byte{byte(len(out))})
		out += strconv.FormatUint(h.Sum64(), 16)
	}
	return out[:n]
}
