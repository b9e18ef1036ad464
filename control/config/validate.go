package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// validator checks a decoded configuration with defaults applied. It reports
// through the decoder, which knows the line of every path.
type validator struct {
	*decoder
	c *Config
	// names holds the group and resource names, one namespace, with the
	// path that declares each.
	names map[string]decl
	// mirrorPorts holds the mirror disks' ports, with the disk of each.
	mirrorPorts map[int]string
}

// decl is where a name was declared.
type decl struct {
	what string // "group" or "resource"
	path string
}

// validate records every problem of c.
func (d *decoder) validate(c *Config) {
	v := &validator{decoder: d, c: c, names: map[string]decl{}}
	v.cluster()
	v.servers()
	v.lanes()
	for gi := range c.Groups {
		v.group(gi)
	}
	v.monitors()
	if len(d.errs) == 0 {
		v.addAutomaticMonitors()
	}
}

// check records problem, if any, about path, unless the value at path could
// not be decoded (that error is already recorded).
func (v *validator) check(path, problem string) {
	if problem != "" && !v.bad[path] {
		v.errorf(path, "%s", problem)
	}
}

// required records a missing or empty required value; it reports whether
// the value is there.
func (v *validator) required(path string, empty bool) bool {
	switch {
	case !empty:
		return true
	case v.bad[path] || v.bad[parentPath(path)]:
	case v.has(path):
		v.errorf(path, "must not be empty")
	default:
		v.errorf(path, "missing required key")
	}
	return false
}

func (v *validator) positive(path string, n int) {
	if n <= 0 {
		v.check(path, fmt.Sprintf("must be greater than 0, not %d", n))
	}
}

func (v *validator) notNegative(path string, n int) {
	if n < 0 {
		v.check(path, fmt.Sprintf("must not be negative, not %d", n))
	}
}

// name checks a required, unique name within seen.
func (v *validator) name(path, name, what string, seen map[string]string) {
	if !v.required(path, name == "") {
		return
	}
	if p := checkName(name); p != "" {
		v.check(path, p)
		return
	}
	if first, dup := seen[name]; dup {
		v.errorf(path, "duplicate %s name %q (first at line %d)", what, name, v.line(first))
		return
	}
	seen[name] = path
}

// declare checks a group or resource name in their shared namespace.
func (v *validator) declare(path, name, what string) {
	if !v.required(path, name == "") {
		return
	}
	switch {
	case checkName(name) != "":
		v.check(path, checkName(name))
		return
	case name == LocalServer:
		v.errorf(path, "%q is reserved: it names the node itself as a recovery target", name)
		return
	}
	first, dup := v.names[name]
	switch {
	case !dup:
		v.names[name] = decl{what, path}
	case first.what == what:
		v.errorf(path, "duplicate %s name %q (first at line %d)", what, name, v.line(first.path))
	default:
		v.errorf(path, "duplicate name %q: the %s at line %d has it (group and resource names share one namespace)", name, first.what, v.line(first.path))
	}
}

func (v *validator) cluster() {
	c := &v.c.Cluster
	if !v.mentions("cluster") {
		v.errorf("cluster", "missing required key")
	} else if !v.bad["cluster"] {
		if v.required("cluster.name", c.Name == "") {
			v.check("cluster.name", checkName(c.Name))
		}
		v.required("cluster.key_file", c.KeyFile == "")
	}

	hb := c.Heartbeat
	if hb.Port < 1 || hb.Port > 65535 {
		v.check("cluster.heartbeat.port", fmt.Sprintf("port %d is out of range 1-65535", hb.Port))
	}
	v.check("cluster.heartbeat.profile", oneOf(hb.Profile, ProfileFast.Name, ProfileCrossAZ.Name, ProfileConservative.Name))
	v.check("cluster.heartbeat.mode", oneOf(hb.Mode, HeartbeatAuto, HeartbeatEBPF, HeartbeatUserspace))
	v.positive("cluster.heartbeat.interval_ms", hb.IntervalMS)
	v.positive("cluster.heartbeat.timeout_ms", hb.TimeoutMS)
	v.positive("cluster.heartbeat.stall_timeout_ms", hb.StallTimeoutMS)
	if hb.IntervalMS > 0 && hb.TimeoutMS > 0 && hb.TimeoutMS < hb.IntervalMS {
		v.check("cluster.heartbeat.timeout_ms", fmt.Sprintf("must not be shorter than interval_ms (%d < %d)", hb.TimeoutMS, hb.IntervalMS))
	}
	if hb.TimeoutMS > 0 && hb.StallTimeoutMS > 0 && hb.StallTimeoutMS < hb.TimeoutMS {
		v.check("cluster.heartbeat.stall_timeout_ms", fmt.Sprintf("must not be shorter than timeout_ms (%d < %d)", hb.StallTimeoutMS, hb.TimeoutMS))
	}
	v.notNegative("cluster.startup_wait_ms", c.StartupWaitMS)

	np := c.NPResolution
	for i, t := range np.Targets {
		p := indexPath("cluster.np_resolution.targets", i)
		switch {
		case t.Ping != "" && t.TCP != "":
			v.check(p, "set one of ping and tcp, not both")
		case t.Ping != "":
			v.check(p+".ping", checkIP(t.Ping))
		case t.TCP != "":
			v.check(p+".tcp", checkHostPort(t.TCP, false))
		default:
			v.check(p, "set one of ping (an IP address) or tcp (host:port)")
		}
	}
	v.positive("cluster.np_resolution.timeout_ms", np.TimeoutMS)
	v.check("cluster.np_resolution.action", oneOf(np.Action, NPActionStopGroups, NPActionStopClusterService, NPActionStopClusterServiceAndOff))

	if len(c.ShutdownCommand) == 0 || c.ShutdownCommand[0] == "" {
		v.check("cluster.shutdown_command", "must not be empty")
	} else {
		v.check("cluster.shutdown_command[0]", checkAbsPath(c.ShutdownCommand[0]))
	}
	if c.MetricsAddress != "" {
		v.check("cluster.metrics_address", checkHostPort(c.MetricsAddress, true))
	}
	aws := c.AWS
	if aws.Region != "" {
		v.check("cluster.aws.region", checkRegion(aws.Region))
	}
	if aws.Endpoint != "" {
		v.check("cluster.aws.endpoint", checkHTTPURL(aws.Endpoint))
	}
	if aws.IMDSEndpoint != "" {
		v.check("cluster.aws.imds_endpoint", checkHTTPURL(aws.IMDSEndpoint))
	}
	v.positive("cluster.aws.call_timeout_ms", aws.CallTimeoutMS)
	if aws.DNSResolver != "" {
		v.check("cluster.aws.dns_resolver", checkHostPort(aws.DNSResolver, false))
	}
}

func (v *validator) servers() {
	c := v.c
	if len(c.Servers) == 0 {
		v.required("servers", true)
		return
	}
	seen := map[string]string{}
	owner := map[[2]string]string{} // (lane, address) → server name
	for i := range c.Servers {
		s := &c.Servers[i]
		p := indexPath("servers", i)
		v.name(p+".name", s.Name, "server", seen)
		if s.AvailabilityZone != "" {
			v.check(p+".availability_zone", checkAZ(s.AvailabilityZone))
		}
		ip := p + ".interconnects"
		for _, lane := range slices.Sorted(maps.Keys(s.Interconnects)) {
			lp := childPath(ip, lane)
			addr := s.Interconnects[lane]
			if c.LaneByName(lane) == nil {
				v.check(lp, fmt.Sprintf("unknown lane %q", lane))
			}
			if p := checkIP(addr); p != "" {
				v.check(lp, p)
				continue
			}
			if other, dup := owner[[2]string{lane, addr}]; dup {
				v.check(lp, fmt.Sprintf("address %s is also server %s's on lane %s", addr, other, lane))
				continue
			}
			owner[[2]string{lane, addr}] = s.Name
		}
		if !v.bad[ip] {
			for _, l := range c.Lanes {
				if _, ok := s.Interconnects[l.Name]; !ok && l.Name != "" {
					v.errorf(ip, "no address on lane %q", l.Name)
				}
			}
		}
		if s.MetricsAddress != "" {
			v.check(p+".metrics_address", checkHostPort(s.MetricsAddress, true))
		}
	}
}

func (v *validator) lanes() {
	c := v.c
	if len(c.Lanes) == 0 {
		v.required("lanes", true)
		return
	}
	seen := map[string]string{}
	prios := map[int]string{}
	mirror := ""
	for i, l := range c.Lanes {
		p := indexPath("lanes", i)
		v.name(p+".name", l.Name, "lane", seen)
		if l.Priority < 1 {
			v.check(p+".priority", fmt.Sprintf("must be 1 or more, not %d", l.Priority))
		} else if other, dup := prios[l.Priority]; dup {
			v.check(p+".priority", fmt.Sprintf("duplicate priority %d: lane %s has it too", l.Priority, other))
		} else {
			prios[l.Priority] = l.Name
		}
		if l.Mirror {
			if mirror != "" {
				v.check(p+".mirror", fmt.Sprintf("only one lane may carry the mirror connect; lane %s already does", mirror))
			} else {
				mirror = l.Name
			}
		}
	}
}

func (v *validator) group(gi int) {
	c := v.c
	g := &c.Groups[gi]
	p := indexPath("groups", gi)
	v.declare(p+".name", g.Name, "group")

	if v.has(p + ".servers") {
		seen := map[string]bool{}
		for i, s := range g.Servers {
			sp := indexPath(p+".servers", i)
			switch {
			case s == "":
				v.check(sp, "must not be empty")
			case c.Server(s) == nil:
				v.check(sp, fmt.Sprintf("unknown server %q", s))
			case seen[s]:
				v.check(sp, fmt.Sprintf("server %q is listed twice", s))
			}
			seen[s] = true
		}
	}
	var servers []string
	for _, s := range c.GroupServers(g) {
		if c.Server(s) != nil && !slices.Contains(servers, s) {
			servers = append(servers, s)
		}
	}

	idx := make(map[string]int, len(g.Resources))
	for ri := range g.Resources {
		r := &g.Resources[ri]
		v.declare(indexPath(p+".resources", ri)+".name", r.Name, "resource")
		if _, dup := idx[r.Name]; !dup {
			idx[r.Name] = ri
		}
	}
	for ri := range g.Resources {
		v.resource(g, indexPath(p+".resources", ri), &g.Resources[ri], idx, servers)
	}
	for _, cyc := range findCycles(g, idx) {
		v.errorf(indexPath(p+".resources", cyc[0])+".depends_on", "dependency cycle: %s", cycleString(g, cyc))
	}
}

func (v *validator) resource(g *Group, p string, r *Resource, idx map[string]int, servers []string) {
	c := v.c
	v.required(p+".type", r.Type == "")
	seen := map[string]bool{}
	for i, dep := range r.DependsOn {
		dp := indexPath(p+".depends_on", i)
		if dep == "" {
			v.check(dp, "must not be empty")
			continue
		}
		if _, ok := idx[dep]; ok {
			if seen[dep] {
				v.check(dp, fmt.Sprintf("resource %q is listed twice", dep))
			}
			seen[dep] = true
			continue
		}
		if og, _ := c.Resource(dep); og != nil {
			v.check(dp, fmt.Sprintf("resource %q is in group %s; a resource depends only on resources of its own group", dep, og.Name))
		} else {
			v.check(dp, fmt.Sprintf("unknown resource %q", dep))
		}
	}
	if _, ok := resourceKinds[r.Type]; ok {
		v.positive(p+".start_timeout_ms", r.StartTimeoutMS)
		v.positive(p+".stop_timeout_ms", r.StopTimeoutMS)
	}
	over := slices.Sorted(maps.Keys(r.perServer))
	for _, s := range over {
		if c.Server(s) == nil {
			v.check(childPath(p+".servers", s), fmt.Sprintf("unknown server %q", s))
		}
	}
	ps := perServer{v: v, base: p, servers: servers, overridden: over}
	str := func(key string, get func(*Resource) string, check func(string) string, required bool) {
		ps.field(key, func(s string) string {
			if s == "" {
				return get(r)
			}
			return get(r.For(s))
		}, check, required)
	}

	switch {
	case r.FloatingIP != nil:
		if v.required(p+".address", r.FloatingIP.Address == "") {
			v.check(p+".address", checkCIDR(r.FloatingIP.Address))
		}
		str("interface", func(r *Resource) string { return r.FloatingIP.Interface }, checkInterface, true)
	case r.Exec != nil:
		str("start", func(r *Resource) string { return r.Exec.Start }, checkAbsPath, true)
		str("stop", func(r *Resource) string { return r.Exec.Stop }, checkAbsPath, false)
		v.env(p+".env", r.Exec.Env)
	case r.AWSVIP != nil:
		if v.required(p+".ip", r.AWSVIP.IP == "") {
			v.check(p+".ip", checkIPv4(r.AWSVIP.IP))
		}
		str("vpc_id", func(r *Resource) string { return r.AWSVIP.VPCID }, func(s string) string { return checkID(vpcRE, s, "a VPC ID (vpc-1234abcd)") }, false)
		str("eni_id", func(r *Resource) string { return r.AWSVIP.ENIID }, func(s string) string { return checkID(eniRE, s, "an ENI ID (eni-1234abcd)") }, false)
		str("interface", func(r *Resource) string { return r.AWSVIP.Interface }, checkInterface, false)
		seen := map[string]bool{}
		for i, t := range r.AWSVIP.RouteTables {
			tp := indexPath(p+".route_tables", i)
			v.check(tp, checkID(rtbRE, t, "a route table ID (rtb-1234abcd)"))
			if seen[t] {
				v.check(tp, fmt.Sprintf("route table %s is listed twice", t))
			}
			seen[t] = true
		}
	case r.AWSEIP != nil:
		if v.required(p+".allocation_id", r.AWSEIP.AllocationID == "") {
			v.check(p+".allocation_id", checkID(eipallocRE, r.AWSEIP.AllocationID, "an EIP allocation ID (eipalloc-01234567)"))
		}
		str("eni_id", func(r *Resource) string { return r.AWSEIP.ENIID }, func(s string) string { return checkID(eniRE, s, "an ENI ID (eni-1234abcd)") }, false)
	case r.AWSDNS != nil:
		if v.required(p+".hosted_zone_id", r.AWSDNS.HostedZoneID == "") {
			v.check(p+".hosted_zone_id", checkID(zoneRE, r.AWSDNS.HostedZoneID, "a hosted zone ID (ABCDEFGHIJK123)"))
		}
		if v.required(p+".record_name", r.AWSDNS.RecordName == "") {
			v.check(p+".record_name", checkRecordName(r.AWSDNS.RecordName))
		}
		str("ip", func(r *Resource) string { return r.AWSDNS.IP }, checkIPv4, false)
		v.positive(p+".ttl", r.AWSDNS.TTL)
	case r.MirrorDisk != nil:
		str("data_partition", func(r *Resource) string { return r.MirrorDisk.DataPartition }, checkAbsPath, true)
		str("cluster_partition", func(r *Resource) string { return r.MirrorDisk.ClusterPartition }, checkAbsPath, true)
		for _, s := range servers {
			md := r.For(s).MirrorDisk
			if md.DataPartition != "" && md.DataPartition == md.ClusterPartition {
				v.errorf(p+".cluster_partition", "on server %s the cluster partition is the data partition (%s)", s, md.DataPartition)
			}
		}
		md := r.MirrorDisk
		v.check(p+".mode", oneOf(md.Mode, MirrorSync, MirrorAsync))
		v.check(p+".frontend", oneOf(md.Frontend, FrontendAuto, FrontendNBD, FrontendNone))
		v.check(p+".fs_type", oneOf(md.FSType, "ext4", "xfs"))
		if md.Port < 1 || md.Port > 65535 {
			v.check(p+".port", fmt.Sprintf("%d is not a TCP port", md.Port))
		} else if md.Port == c.Cluster.Heartbeat.Port {
			v.check(p+".port", fmt.Sprintf("%d is the heartbeat's port", md.Port))
		} else if other, dup := v.mirrorPorts[md.Port]; dup {
			v.check(p+".port", fmt.Sprintf("%d is already the port of mirror disk %s", md.Port, other))
		} else {
			if v.mirrorPorts == nil {
				v.mirrorPorts = map[int]string{}
			}
			v.mirrorPorts[md.Port] = r.Name
		}
		str("mount_point", func(r *Resource) string { return r.MirrorDisk.MountPoint }, checkAbsPath, false)
		mounts := md.MountPoint != ""
		for _, s := range servers {
			mounts = mounts || r.For(s).MirrorDisk.MountPoint != ""
		}
		if mounts {
			if md.Frontend == FrontendNone {
				v.check(p+".mount_point", "needs a frontend to mount; frontend is none")
			}
		} else if md.Mkfs {
			v.check(p+".mkfs", "needs a mount_point")
		}
		v.positive(p+".timeout_ms", md.TimeoutMS)
		v.notNegative(p+".resync_rate_mbps", md.ResyncRateMBps)
		if md.HotExtents < 0 || md.HotExtents > MaxMirrorHotExtents {
			v.check(p+".hot_extents", fmt.Sprintf("must be 0 to %d, not %d", MaxMirrorHotExtents, md.HotExtents))
		}
		if md.TLS != nil {
			for _, f := range []struct{ key, path string }{{"cert", md.TLS.Cert}, {"key", md.TLS.Key}, {"ca", md.TLS.CA}} {
				if v.required(p+".tls."+f.key, f.path == "") {
					v.check(p+".tls."+f.key, checkAbsPath(f.path))
				}
			}
		}
		if !slices.ContainsFunc(c.Lanes, func(l Lane) bool { return l.Mirror }) {
			v.errorf(p+".type", "a mirror_disk needs a lane with mirror: true")
		}
		if len(c.GroupServers(g)) != 2 {
			v.errorf(p+".type", "a mirror_disk needs a group of exactly two servers, not %d", len(c.GroupServers(g)))
		}
	}
}

func (v *validator) env(p string, env map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(env)) {
		v.check(childPath(p, k), checkEnvName(k))
	}
}

// perServer checks an individually settable key of a resource or monitor:
// the common value, each server's own, and that every server that runs it
// has one when it is required.
type perServer struct {
	v          *validator
	base       string   // the resource's or monitor's path
	servers    []string // the servers that run it
	overridden []string // the servers with a "servers:" block
}

// field checks key; get returns the common value for "" and a server's
// effective value otherwise.
func (ps perServer) field(key string, get func(server string) string, check func(string) string, required bool) {
	v := ps.v
	p := ps.base + "." + key
	if val := get(""); val != "" {
		v.check(p, check(val))
	}
	badServer := map[string]bool{}
	for _, s := range ps.overridden {
		op := childPath(childPath(ps.base+".servers", s), key)
		if v.bad[op] {
			badServer[s] = true
		}
		if !v.has(op) {
			continue
		}
		if val := get(s); val != "" {
			v.check(op, check(val))
		} else {
			v.check(op, "must not be empty")
			badServer[s] = true
		}
	}
	if !required || v.bad[p] {
		return
	}
	var missing []string
	for _, s := range ps.servers {
		if get(s) == "" && !badServer[s] {
			missing = append(missing, s)
		}
	}
	switch {
	case len(missing) == 0:
	case len(ps.overridden) == 0 && !v.mentions(p):
		v.errorf(p, "missing required key")
	default:
		v.errorf(p, "missing for server %s: set it here or under servers: <name>: %s:", strings.Join(missing, ", "), key)
	}
}

func (v *validator) monitors() {
	c := v.c
	seen := map[string]string{}
	var all []string
	for _, s := range c.Servers {
		if s.Name != "" {
			all = append(all, s.Name)
		}
	}
	for mi := range c.Monitors {
		m := &c.Monitors[mi]
		p := indexPath("monitors", mi)
		v.name(p+".name", m.Name, "monitor", seen)
		v.required(p+".type", m.Type == "")
		if _, ok := monitorKinds[m.Type]; ok {
			v.positive(p+".interval_ms", m.IntervalMS)
			v.positive(p+".timeout_ms", m.TimeoutMS)
		}
		v.notNegative(p+".retry", m.Retry)

		servers := all
		v.check(p+".timing", oneOf(m.Timing, TimingAlways, TimingActive))
		switch {
		case m.Timing == TimingActive && m.ActiveOn == "":
			v.check(p+".active_on", "required when timing is active: the group or resource whose activity gates the monitor")
		case m.Timing == TimingAlways && m.ActiveOn != "":
			v.check(p+".active_on", "only used with timing: active")
		case m.ActiveOn != "":
			if g := c.Group(m.ActiveOn); g != nil {
				servers = c.GroupServers(g)
			} else if g, _ := c.Resource(m.ActiveOn); g != nil {
				servers = c.GroupServers(g)
			} else {
				v.check(p+".active_on", fmt.Sprintf("unknown group or resource %q", m.ActiveOn))
			}
		}

		rp := p + ".recovery"
		rec := m.Recovery
		local := rec.Target == LocalServer
		if !local && rec.Target != "" && c.Group(rec.Target) == nil {
			if g, _ := c.Resource(rec.Target); g == nil {
				v.check(rp+".target", fmt.Sprintf("unknown recovery target %q: name a group, a resource or LocalServer", rec.Target))
			}
		}
		v.required(rp+".target", rec.Target == "")
		v.notNegative(rp+".reactivation_count", rec.ReactivationCount)
		v.notNegative(rp+".failover_count", rec.FailoverCount)
		if local && rec.ReactivationCount > 0 {
			v.check(rp+".reactivation_count", "must be 0 when the target is LocalServer: a server is not reactivated, only its final action applies")
		}
		if local && rec.FailoverCount > 0 {
			v.check(rp+".failover_count", "must be 0 when the target is LocalServer: a server does not fail over, only its final action applies")
		}
		v.check(rp+".final_action", oneOf(rec.FinalAction, ActionNone, ActionStopGroup, ActionStopClusterService, ActionStopClusterServiceAndOff))
		if local && rec.FinalAction == ActionStopGroup {
			v.check(rp+".final_action", "stop_group needs a group or resource target, not LocalServer")
		}

		over := slices.Sorted(maps.Keys(m.perServer))
		for _, s := range over {
			if c.Server(s) == nil {
				v.check(childPath(p+".servers", s), fmt.Sprintf("unknown server %q", s))
			}
		}
		ps := perServer{v: v, base: p, servers: servers, overridden: over}
		switch {
		case m.IP != nil:
			v.addresses(p, m, ps)
		case m.TCP != nil:
			if v.required(p+".address", m.TCP.Address == "") {
				v.check(p+".address", checkHostPort(m.TCP.Address, false))
			}
		case m.Exec != nil:
			ps.field("script", func(s string) string {
				if s == "" {
					return m.Exec.Script
				}
				return m.For(s).Exec.Script
			}, checkAbsPath, true)
			v.env(p+".env", m.Exec.Env)
		case m.AWSAZ != nil:
			ps.field("availability_zone", func(s string) string {
				if s == "" {
					return m.AWSAZ.AvailabilityZone
				}
				return m.For(s).AWSAZ.AvailabilityZone
			}, checkAZ, false)
			v.check(p+".on_api_failure", oneOf(m.AWSAZ.OnAPIFailure, OnAPIFailureWarning, OnAPIFailureError, OnAPIFailureNone))
		}
	}
}

// addresses checks an ip monitor's address list, common and per server.
func (v *validator) addresses(p string, m *Monitor, ps perServer) {
	check := func(base string, addrs []string) {
		for i, a := range addrs {
			v.check(indexPath(base, i), checkIP(a))
		}
	}
	check(p+".addresses", m.IP.Addresses)
	badServer := map[string]bool{}
	for _, s := range ps.overridden {
		op := childPath(p+".servers", s) + ".addresses"
		badServer[s] = v.bad[op]
		if v.has(op) {
			check(op, m.For(s).IP.Addresses)
		}
	}
	if v.bad[p+".addresses"] {
		return
	}
	var missing []string
	for _, s := range ps.servers {
		if len(m.For(s).IP.Addresses) == 0 && !badServer[s] {
			missing = append(missing, s)
		}
	}
	switch {
	case len(missing) == 0:
	case len(ps.overridden) == 0 && !v.mentions(p+".addresses"):
		v.errorf(p+".addresses", "missing required key")
	default:
		v.errorf(p+".addresses", "no address for server %s: list them here or under servers: <name>: addresses:", strings.Join(missing, ", "))
	}
}

// AutomaticMonitorSuffix makes the name of the monitor added with an aws_vip,
// aws_eip, aws_dns or mirror_disk resource: resource awsvip1 gets monitor
// awsvip1-mon.
const AutomaticMonitorSuffix = "-mon"

// addAutomaticMonitors appends the monitor each aws_vip, aws_eip and aws_dns
// resource comes with: checked while the resource is online here, its
// recovery restarting the resource (the guides' behaviour: a route changed
// by someone else is put back by reactivating the resource).
func (v *validator) addAutomaticMonitors() {
	c := v.c
	kindOf := map[string]string{}
	for mk, rk := range automaticMonitors {
		kindOf[rk] = mk
	}
	for gi := range c.Groups {
		for ri := range c.Groups[gi].Resources {
			r := &c.Groups[gi].Resources[ri]
			mk, ok := kindOf[r.Type]
			if !ok {
				continue
			}
			name := r.Name + AutomaticMonitorSuffix
			if c.Monitor(name) != nil {
				v.check(fmt.Sprintf("groups[%d].resources[%d].name", gi, ri),
					fmt.Sprintf("the monitor added with this resource would be named %q, which a configured monitor already uses", name))
				continue
			}
			t := monitorTimings[mk]
			if mk == MonitorMirrorDisk {
				// Like the guides' mdw: it watches the disk on every
				// node, primary or secondary, and reports; a failover
				// would not mend a split brain or a lost peer.
				c.Monitors = append(c.Monitors, Monitor{
					Name: name, Type: mk, IntervalMS: t[0], TimeoutMS: t[1],
					Timing: TimingAlways, Resource: r.Name,
					Recovery: Recovery{Target: r.Name, FinalAction: ActionNone},
				})
				continue
			}
			c.Monitors = append(c.Monitors, Monitor{
				Name:       name,
				Type:       mk,
				IntervalMS: t[0],
				TimeoutMS:  t[1],
				Retry:      DefaultMonitorRetry,
				Timing:     TimingActive,
				ActiveOn:   r.Name,
				Resource:   r.Name,
				Recovery: Recovery{
					Target:            r.Name,
					ReactivationCount: DefaultReactivationCount,
					FailoverCount:     DefaultFailoverCount,
					FinalAction:       ActionNone,
				},
			})
		}
	}
}
