package resource

import (
	"net/netip"
	"slices"

	"github.com/vigil-ha/vigil/awsops"
	"github.com/vigil-ha/vigil/control/config"
)

// AWSPlan lists the AWS objects cfg uses, for the preflight and the IAM
// policy. IDs the configuration leaves to IMDSv2 are filled in for server
// self from inst when it is not nil; other servers' discovered IDs are not
// known from here and are left out.
func AWSPlan(cfg *config.Config, self string, inst *awsops.Instance) awsops.Plan {
	var p awsops.Plan
	servers := func(g *config.Group) []string { return cfg.GroupServers(g) }
	discovered := func(s, v string, pick func(awsops.Instance) string) string {
		if v == "" && s == self && inst != nil {
			return pick(*inst)
		}
		return v
	}
	vpcOf := func(i awsops.Instance) string { return i.VPCID }
	eniOf := func(i awsops.Instance) string { return i.ENIID }
	addUnique := func(list []string, v string) []string {
		if v == "" || slices.Contains(list, v) {
			return list
		}
		return append(list, v)
	}
	for gi := range cfg.Groups {
		g := &cfg.Groups[gi]
		for ri := range g.Resources {
			r := &g.Resources[ri]
			switch {
			case r.AWSVIP != nil:
				ip, err := netip.ParseAddr(r.AWSVIP.IP)
				if err != nil {
					continue
				}
				vp := awsops.VIPPlan{VIP: ip, RouteTables: slices.Clone(r.AWSVIP.RouteTables)}
				for _, s := range servers(g) {
					v := r.For(s).AWSVIP
					if vp.VPCID == "" {
						vp.VPCID = discovered(s, v.VPCID, vpcOf)
					}
					vp.ENIIDs = addUnique(vp.ENIIDs, discovered(s, v.ENIID, eniOf))
				}
				p.VIPs = append(p.VIPs, vp)
			case r.AWSEIP != nil:
				ep := awsops.EIPPlan{AllocationID: r.AWSEIP.AllocationID}
				for _, s := range servers(g) {
					ep.ENIIDs = addUnique(ep.ENIIDs, discovered(s, r.For(s).AWSEIP.ENIID, eniOf))
				}
				p.EIPs = append(p.EIPs, ep)
			case r.AWSDNS != nil:
				p.Records = append(p.Records, awsops.RecordPlan{ZoneID: r.AWSDNS.HostedZoneID, Name: r.AWSDNS.RecordName})
			}
		}
	}
	for _, s := range cfg.Servers {
		p.AZs = addUnique(p.AZs, discovered(s.Name, s.AvailabilityZone, func(i awsops.Instance) string { return i.AvailabilityZone }))
	}
	for mi := range cfg.Monitors {
		m := &cfg.Monitors[mi]
		if m.AWSAZ == nil {
			continue
		}
		for _, s := range cfg.Servers {
			p.AZs = addUnique(p.AZs, m.For(s.Name).AWSAZ.AvailabilityZone)
		}
	}
	return p
}
