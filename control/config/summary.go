package config

import (
	"encoding/hex"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"text/tabwriter"
)

// Summary returns a short human description of c for "vigilctl config
// check": the cluster, its hash prefix, the servers with their AZ and lane
// addresses, the lanes, the groups with their resources in start order, and
// the monitors with their recovery.
func Summary(c *Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster %s (hash %s)\n", c.Cluster.Name, hex.EncodeToString(c.Hash[:6]))
	hb := c.Cluster.Heartbeat
	fmt.Fprintf(&b, "heartbeat: %s profile, %s mode, udp port %d, every %d ms, timeout %d ms, stall timeout %d ms; startup wait %d ms\n",
		hb.Profile, hb.Mode, hb.Port, hb.IntervalMS, hb.TimeoutMS, hb.StallTimeoutMS, c.Cluster.StartupWaitMS)
	np := c.Cluster.NPResolution
	if len(np.Targets) == 0 {
		b.WriteString("np resolution: none\n")
	} else {
		var ts []string
		for _, t := range np.Targets {
			if t.Ping != "" {
				ts = append(ts, "ping "+t.Ping)
			} else {
				ts = append(ts, "tcp "+t.TCP)
			}
		}
		fmt.Fprintf(&b, "np resolution: %s within %d ms, else %s\n", strings.Join(ts, ", "), np.TimeoutMS, np.Action)
	}

	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "servers:")
	for _, s := range c.Servers {
		az := s.AvailabilityZone
		if az == "" {
			az = "-"
		}
		var addrs []string
		for _, lane := range slices.Sorted(maps.Keys(s.Interconnects)) {
			addrs = append(addrs, lane+"="+s.Interconnects[lane])
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\n", s.Name, az, strings.Join(addrs, " "))
	}
	fmt.Fprintln(w, "lanes:")
	lanes := slices.Clone(c.Lanes)
	slices.SortStableFunc(lanes, func(a, b Lane) int { return a.Priority - b.Priority })
	for _, l := range lanes {
		mirror := ""
		if l.Mirror {
			mirror = "mirror"
		}
		fmt.Fprintf(w, "  %s\tpriority %d\t%s\n", l.Name, l.Priority, mirror)
	}
	w.Flush()

	b.WriteString("groups:\n")
	for i := range c.Groups {
		g := &c.Groups[i]
		fmt.Fprintf(&b, "  %s on %s\n", g.Name, strings.Join(c.GroupServers(g), ", "))
		order, err := StartOrder(g)
		if err != nil {
			fmt.Fprintf(&b, "    (%v)\n", err)
			continue
		}
		w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for n, r := range order {
			fmt.Fprintf(w, "    %d. %s\t%s\t%s\n", n+1, r.Name, r.Type, resourceDetail(r))
		}
		w.Flush()
	}

	b.WriteString("monitors:\n")
	w = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for i := range c.Monitors {
		m := &c.Monitors[i]
		timing := m.Timing
		if m.Timing == TimingActive {
			timing += " on " + m.ActiveOn
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\tevery %d ms\t-> %s\t%s\n", m.Name, m.Type, timing, m.IntervalMS, recoveryDetail(m.Recovery), monitorDetail(m))
	}
	w.Flush()
	return b.String()
}

func resourceDetail(r *Resource) string {
	var s string
	switch {
	case r.FloatingIP != nil:
		s = fmt.Sprintf("%s on %s", r.FloatingIP.Address, orDash(r.FloatingIP.Interface))
	case r.Exec != nil:
		s = fmt.Sprintf("start %s, stop %s", orDash(r.Exec.Start), orDash(r.Exec.Stop))
	case r.AWSVIP != nil:
		s = fmt.Sprintf("%s in %s via %s", r.AWSVIP.IP, orDash(r.AWSVIP.VPCID), orDash(r.AWSVIP.ENIID))
	case r.AWSEIP != nil:
		s = fmt.Sprintf("%s to %s", r.AWSEIP.AllocationID, orDash(r.AWSEIP.ENIID))
	case r.AWSDNS != nil:
		s = fmt.Sprintf("%s A %s in zone %s, ttl %d", r.AWSDNS.RecordName, orDash(r.AWSDNS.IP), r.AWSDNS.HostedZoneID, r.AWSDNS.TTL)
	case r.MirrorDisk != nil:
		s = fmt.Sprintf("%s (cluster partition %s), %s", orDash(r.MirrorDisk.DataPartition), orDash(r.MirrorDisk.ClusterPartition), r.MirrorDisk.Mode)
	}
	if len(r.DependsOn) > 0 {
		s += "; after " + strings.Join(r.DependsOn, ", ")
	}
	if spec, ok := resourceKinds[r.Type]; ok && len(r.perServer) > 0 {
		s += perServerDetail(spec, slices.Sorted(maps.Keys(r.perServer)), func(srv string) reflect.Value {
			return reflect.ValueOf(r.For(srv)).Elem().FieldByName(spec.field)
		})
	}
	return s
}

func monitorDetail(m *Monitor) string {
	var s string
	switch {
	case m.IP != nil:
		s = strings.Join(m.IP.Addresses, " ")
	case m.TCP != nil:
		s = m.TCP.Address
	case m.Exec != nil:
		s = m.Exec.Script
	case m.AWSAZ != nil:
		s = m.AWSAZ.AvailabilityZone
	}
	if spec, ok := monitorKinds[m.Type]; ok && len(m.perServer) > 0 {
		s += perServerDetail(spec, slices.Sorted(maps.Keys(m.perServer)), func(srv string) reflect.Value {
			return reflect.ValueOf(m.For(srv)).Elem().FieldByName(spec.field)
		})
	}
	return s
}

// perServerDetail lists, for each individually settable key, the value of
// each server that has its own, as "; eni_id on node2: eni-5678abcd".
func perServerDetail(spec kindSpec, servers []string, kind func(server string) reflect.Value) string {
	var b strings.Builder
	fields := fieldsOf(spec.typ)
	for _, key := range spec.settable {
		common := formatValue(kind("").Elem().Field(fields[key]))
		for _, srv := range servers {
			k := kind(srv)
			if k.IsNil() {
				continue
			}
			if v := formatValue(k.Elem().Field(fields[key])); v != common {
				fmt.Fprintf(&b, "; %s on %s: %s", key, srv, orDash(v))
			}
		}
	}
	return b.String()
}

func formatValue(v reflect.Value) string {
	if v.Kind() == reflect.Slice {
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(v.Index(i).Interface())
		}
		return strings.Join(parts, " ")
	}
	return fmt.Sprint(v.Interface())
}

func recoveryDetail(r Recovery) string {
	if r.Target == LocalServer && r.ReactivationCount == 0 && r.FailoverCount == 0 {
		return fmt.Sprintf("%s: %s", r.Target, r.FinalAction)
	}
	return fmt.Sprintf("%s: reactivate %d, fail over %d, then %s", r.Target, r.ReactivationCount, r.FailoverCount, r.FinalAction)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
