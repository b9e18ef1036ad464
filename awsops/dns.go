package awsops

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
)

// DefaultTTL is the TTL of a record set whose Record.TTL is 0.
const DefaultTTL = 300

// Bounds of the GetChange polling interval while waiting for INSYNC.
const (
	pollStart = 200 * time.Millisecond
	pollCap   = time.Second
)

// Record is an A record set in a Route 53 hosted zone.
type Record struct {
	ZoneID string     // the hosted zone ID (Z0123), without "/hostedzone/"
	Name   string     // the FQDN with its final dot
	IP     netip.Addr // the one address it holds
	TTL    int        // seconds; 0 means DefaultTTL
}

// zoneID strips the "/hostedzone/" prefix Route 53 puts on zone IDs.
func zoneID(id string) string { return strings.TrimPrefix(id, "/hostedzone/") }

// fqdn returns name with its final dot.
func fqdn(name string) string {
	if name == "" || strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}

// sameName compares two DNS names the way Route 53 stores them: without
// regard to case or the final dot, with its \DDD escapes undone.
func sameName(a, b string) bool {
	return strings.EqualFold(unescapeName(fqdn(a)), unescapeName(fqdn(b)))
}

// unescapeName undoes Route 53's octal escapes ("\052" is "*").
func unescapeName(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func (r Record) check(op string) error {
	switch {
	case zoneID(r.ZoneID) == "":
		return invalid(op, r.Name, "No hosted zone ID given for %s.", r.Name)
	case r.Name == "":
		return invalid(op, r.ZoneID, "No record set name given.")
	}
	return nil
}

// lookupRecord returns the A record set named name in the zone, or nil
// when there is none: one ListResourceRecordSets call starting at the name.
func (c *Client) lookupRecord(ctx context.Context, zone, name string) (*types.ResourceRecordSet, error) {
	var out *route53.ListResourceRecordSetsOutput
	err := c.run.call(ctx, "route53", "ListResourceRecordSets", zone, func(ctx context.Context) error {
		var err error
		out, err = c.r53.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{
			HostedZoneId:    aws.String(zone),
			StartRecordName: aws.String(fqdn(name)),
			StartRecordType: types.RRTypeA,
			MaxItems:        aws.Int32(1),
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, rs := range out.ResourceRecordSets {
		if rs.Type == types.RRTypeA && sameName(aws.ToString(rs.Name), name) {
			return &rs, nil
		}
	}
	return nil, nil
}

// recordIPs returns the addresses a record set holds, as text.
func recordIPs(rs *types.ResourceRecordSet) []string {
	var ips []string
	for _, v := range rs.ResourceRecords {
		ips = append(ips, aws.ToString(v.Value))
	}
	if rs.AliasTarget != nil {
		ips = append(ips, "alias "+aws.ToString(rs.AliasTarget.DNSName))
	}
	return ips
}

// holdsOnly reports whether the record set holds ip and nothing else.
func holdsOnly(rs *types.ResourceRecordSet, ip netip.Addr) bool {
	if rs.AliasTarget != nil || len(rs.ResourceRecords) != 1 {
		return false
	}
	got, err := netip.ParseAddr(aws.ToString(rs.ResourceRecords[0].Value))
	return err == nil && got == ip.Unmap()
}

// UpsertRecord creates or replaces the record set (UPSERT of an A record
// holding r.IP); with waitInSync it then polls GetChange, every 200 ms
// growing to 1 s, until INSYNC or ctx's deadline (CodeTimeout).
func (c *Client) UpsertRecord(ctx context.Context, r Record, waitInSync bool) error {
	if err := r.check("upsert record"); err != nil {
		return err
	}
	if !r.IP.Unmap().Is4() {
		return invalid("upsert record", r.Name, "The address %q of %s is not an IPv4 address.", r.IP.String(), r.Name)
	}
	ttl := r.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	zone := zoneID(r.ZoneID)
	var out *route53.ChangeResourceRecordSetsOutput
	err := c.run.call(ctx, "route53", "ChangeResourceRecordSets", zone, func(ctx context.Context) error {
		var err error
		out, err = c.r53.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{
			HostedZoneId: aws.String(zone),
			ChangeBatch: &types.ChangeBatch{
				Comment: aws.String("vigil: " + fqdn(r.Name) + " -> " + r.IP.Unmap().String()),
				Changes: []types.Change{{
					Action: types.ChangeActionUpsert,
					ResourceRecordSet: &types.ResourceRecordSet{
						Name:            aws.String(fqdn(r.Name)),
						Type:            types.RRTypeA,
						TTL:             aws.Int64(int64(ttl)),
						ResourceRecords: []types.ResourceRecord{{Value: aws.String(r.IP.Unmap().String())}},
					},
				}},
			},
		})
		return err
	})
	if err != nil || !waitInSync || out.ChangeInfo == nil {
		return err
	}
	return c.waitInSync(ctx, zone, fqdn(r.Name), out.ChangeInfo)
}

// waitInSync polls GetChange until the change is INSYNC or ctx ends.
func (c *Client) waitInSync(ctx context.Context, zone, name string, info *types.ChangeInfo) error {
	id := strings.TrimPrefix(aws.ToString(info.Id), "/change/")
	status := info.Status
	interval := pollStart
	for status != types.ChangeStatusInsync {
		if !sleep(ctx, interval) {
			return &Error{Code: CodeTimeout, Op: "wait for INSYNC", Target: zone,
				Message: fmt.Sprintf("%s (the change of %s is not in sync yet)", MsgTimeout, name), Err: ctx.Err()}
		}
		interval = min(interval*3/2, pollCap)
		var out *route53.GetChangeOutput
		err := c.run.call(ctx, "route53", "GetChange", id, func(ctx context.Context) error {
			var err error
			out, err = c.r53.GetChange(ctx, &route53.GetChangeInput{Id: aws.String(id)})
			return err
		})
		if err != nil {
			var e *Error
			if errors.As(err, &e) && e.Code == CodeTimeout {
				e.Message = fmt.Sprintf("%s (the change of %s is not in sync yet)", MsgTimeout, name)
			}
			return err
		}
		if out.ChangeInfo != nil {
			status = out.ChangeInfo.Status
		}
	}
	return nil
}

// DeleteRecord deletes the record set; an absent record set is success.
// DELETE must carry the record set exactly as it is, so it is read first.
// When r.IP is valid and the record set holds anything else, it belongs to
// another node now and is left alone: DeleteRecord succeeds.
func (c *Client) DeleteRecord(ctx context.Context, r Record) error {
	if err := r.check("delete record"); err != nil {
		return err
	}
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	zone := zoneID(r.ZoneID)
	rs, err := c.lookupRecord(ctx, zone, r.Name)
	if err != nil || rs == nil {
		return err
	}
	if r.IP.IsValid() && !holdsOnly(rs, r.IP) {
		return nil
	}
	err = c.run.call(ctx, "route53", "ChangeResourceRecordSets", zone, func(ctx context.Context) error {
		_, err := c.r53.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{
			HostedZoneId: aws.String(zone),
			ChangeBatch: &types.ChangeBatch{
				Comment: aws.String("vigil: delete " + fqdn(r.Name)),
				Changes: []types.Change{{Action: types.ChangeActionDelete, ResourceRecordSet: rs}},
			},
		})
		return err
	})
	if AWSCodeOf(err) == "InvalidChangeBatch" {
		// An attempt that timed out may have deleted it already, or
		// someone changed it meanwhile: absent now is success.
		again, lerr := c.lookupRecord(ctx, zone, r.Name)
		if lerr == nil && again == nil {
			return nil
		}
	}
	return err
}

// CheckRecord fails with CodeRecordMissing when the record set does not
// exist and CodeRecordOtherIP when it holds anything but r.IP.
func (c *Client) CheckRecord(ctx context.Context, r Record) error {
	if err := r.check("check record"); err != nil {
		return err
	}
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	zone := zoneID(r.ZoneID)
	rs, err := c.lookupRecord(ctx, zone, r.Name)
	if err != nil {
		return err
	}
	if rs == nil {
		return &Error{Code: CodeRecordMissing, Op: "check record", Target: fqdn(r.Name),
			Message: fmt.Sprintf("The record set does not exist. (%s)", fqdn(r.Name))}
	}
	if !holdsOnly(rs, r.IP) {
		got := strings.Join(recordIPs(rs), ", ")
		return &Error{Code: CodeRecordOtherIP, Op: "check record", Target: fqdn(r.Name),
			Message: fmt.Sprintf("The record set holds an IP address other than the setting. (%s: %s, expected %s)",
				fqdn(r.Name), got, r.IP.Unmap())}
	}
	return nil
}

// Resolver looks up a name's IPv4 and IPv6 addresses; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// CheckResolves resolves name with res and fails with CodeResolveFailed when
// it does not resolve and CodeResolvesOther when no answer is ip.
func CheckResolves(ctx context.Context, res Resolver, name string, ip netip.Addr) error {
	ip = ip.Unmap()
	network := "ip"
	if ip.Is4() {
		network = "ip4"
	}
	addrs, err := res.LookupNetIP(ctx, network, fqdn(name))
	if err != nil || len(addrs) == 0 {
		why := "no address"
		if err != nil {
			why = err.Error()
		}
		return &Error{Code: CodeResolveFailed, Op: "resolve", Target: fqdn(name),
			Message: fmt.Sprintf("Name resolution failed. (%s: %s)", fqdn(name), why), Err: err}
	}
	got := make([]string, len(addrs))
	for i, a := range addrs {
		if a.Unmap() == ip {
			return nil
		}
		got[i] = a.Unmap().String()
	}
	return &Error{Code: CodeResolvesOther, Op: "resolve", Target: fqdn(name),
		Message: fmt.Sprintf("The name resolves to an IP address other than the setting. (%s: %s, expected %s)",
			fqdn(name), strings.Join(got, ", "), ip)}
}
