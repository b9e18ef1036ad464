package config

import "fmt"

// Defaults of the cluster-wide settings. README.md's configuration reference lists them
// with every other default.
const (
	DefaultHeartbeatPort = 29001
	DefaultStartupWaitMS = 5000
	DefaultNPTimeoutMS   = 1000
	DefaultNPAction      = NPActionStopGroups
	// DefaultMonitorRetry tolerates one failed check: a single lost ping
	// must not shut a node down.
	DefaultMonitorRetry = 1
	// DefaultReactivationCount and DefaultFailoverCount are the recovery
	// counts for a group or resource target; a LocalServer target has 0.
	DefaultReactivationCount = 3
	DefaultFailoverCount     = 1
	// DefaultDNSTTL is the aws_dns record's TTL in seconds.
	DefaultDNSTTL = 300
	// DefaultAWSCallTimeoutMS bounds one attempt of one AWS call.
	DefaultAWSCallTimeoutMS = 5000
)

// DefaultShutdownCommand is the default of Cluster.ShutdownCommand.
var DefaultShutdownCommand = []string{"/sbin/poweroff"}

// Actions of an isolated node (NPResolution.Action).
const (
	NPActionStopGroups               = "stop_groups"
	NPActionStopClusterService       = "stop_cluster_service"
	NPActionStopClusterServiceAndOff = "stop_cluster_service_and_shutdown"
)

// Mirror disk modes (MirrorDisk.Mode).
const (
	MirrorSync  = "sync"
	MirrorAsync = "async"
)

// Mirror disk frontends (MirrorDisk.Frontend) and defaults.
const (
	FrontendAuto = "auto"
	FrontendNBD  = "nbd"
	FrontendNone = "none"

	DefaultMirrorPort = 29051
	// DefaultMetricsAddress serves /metrics on loopback only.
	DefaultMetricsAddress  = "127.0.0.1:9750"
	DefaultMirrorTimeoutMS = 5000
	// DefaultMirrorHotExtents is DRBD's default al-extents, as
	// replicator/meta.HotExtents.
	DefaultMirrorHotExtents = 1237
	// MaxMirrorHotExtents is the most activity extents kept hot.
	MaxMirrorHotExtents = 65534
	DefaultMirrorFSType = "ext4"
)

// What a failed AWS call means to an aws_az monitor (AWSAZMonitor.OnAPIFailure).
const (
	OnAPIFailureWarning = "warning"
	OnAPIFailureError   = "error"
	OnAPIFailureNone    = "none"
)

// resourceTimeouts are the default start and stop timeouts of each resource
// kind, in milliseconds.
var resourceTimeouts = map[string][2]int{
	KindFloatingIP: {10000, 10000},
	KindExec:       {60000, 60000},
	KindAWSVIP:     {30000, 30000},
	KindAWSEIP:     {30000, 30000},
	KindAWSDNS:     {30000, 30000},
	KindMirrorDisk: {60000, 60000},
}

// monitorTimings are the default interval and timeout of each monitor kind,
// in milliseconds. An AWS API call every few seconds from every node would
// eat into the account's request quota, hence aws_az's longer interval.
var monitorTimings = map[string][2]int{
	MonitorIP:     {3000, 2000},
	MonitorTCP:    {3000, 2000},
	MonitorExec:   {3000, 2000},
	MonitorAWSAZ:  {15000, 10000},
	MonitorAWSVIP: {15000, 10000},
	MonitorAWSEIP: {15000, 10000},
	MonitorAWSDNS: {15000, 10000},
	// The engine's state is in memory: checking it is free.
	MonitorMirrorDisk: {5000, 5000},
}

// applyDefaults fills in every key the file leaves out (or sets to null).
func (d *decoder) applyDefaults(c *Config) {
	def := func(path string, p *int, v int) {
		if !d.has(path) {
			*p = v
		}
	}
	defStr := func(path string, p *string, v string) {
		if !d.has(path) {
			*p = v
		}
	}

	cl := &c.Cluster
	def("cluster.heartbeat.port", &cl.Heartbeat.Port, DefaultHeartbeatPort)
	defStr("cluster.heartbeat.profile", &cl.Heartbeat.Profile, ProfileConservative.Name)
	defStr("cluster.heartbeat.mode", &cl.Heartbeat.Mode, HeartbeatAuto)
	defStr("cluster.metrics_address", &cl.MetricsAddress, DefaultMetricsAddress)
	prof, ok := HeartbeatProfiles[cl.Heartbeat.Profile]
	if !ok {
		prof = ProfileConservative // the profile's own error is reported
	}
	def("cluster.heartbeat.interval_ms", &cl.Heartbeat.IntervalMS, prof.IntervalMS)
	def("cluster.heartbeat.timeout_ms", &cl.Heartbeat.TimeoutMS, prof.TimeoutMS)
	def("cluster.heartbeat.stall_timeout_ms", &cl.Heartbeat.StallTimeoutMS, prof.StallTimeoutMS)
	def("cluster.startup_wait_ms", &cl.StartupWaitMS, DefaultStartupWaitMS)
	def("cluster.np_resolution.timeout_ms", &cl.NPResolution.TimeoutMS, DefaultNPTimeoutMS)
	defStr("cluster.np_resolution.action", &cl.NPResolution.Action, DefaultNPAction)
	def("cluster.aws.call_timeout_ms", &cl.AWS.CallTimeoutMS, DefaultAWSCallTimeoutMS)
	if !d.has("cluster.shutdown_command") {
		cl.ShutdownCommand = append([]string(nil), DefaultShutdownCommand...)
	}

	for i := range c.Lanes {
		def(fmt.Sprintf("lanes[%d].priority", i), &c.Lanes[i].Priority, i+1)
	}

	all := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		all[i] = s.Name
	}
	for gi := range c.Groups {
		g := &c.Groups[gi]
		if len(g.Servers) == 0 {
			g.Servers = append([]string(nil), all...)
		}
		for ri := range g.Resources {
			r := &g.Resources[ri]
			p := fmt.Sprintf("groups[%d].resources[%d]", gi, ri)
			if t, ok := resourceTimeouts[r.Type]; ok {
				def(p+".start_timeout_ms", &r.StartTimeoutMS, t[0])
				def(p+".stop_timeout_ms", &r.StopTimeoutMS, t[1])
			}
			switch {
			case r.AWSDNS != nil:
				def(p+".ttl", &r.AWSDNS.TTL, DefaultDNSTTL)
				if !d.has(p + ".delete_on_stop") {
					r.AWSDNS.DeleteOnStop = true
				}
				if !d.has(p + ".check_resolution") {
					r.AWSDNS.CheckResolution = true
				}
			case r.MirrorDisk != nil:
				md := r.MirrorDisk
				defStr(p+".mode", &md.Mode, MirrorSync)
				def(p+".port", &md.Port, DefaultMirrorPort)
				defStr(p+".frontend", &md.Frontend, FrontendAuto)
				defStr(p+".fs_type", &md.FSType, DefaultMirrorFSType)
				def(p+".timeout_ms", &md.TimeoutMS, DefaultMirrorTimeoutMS)
				def(p+".hot_extents", &md.HotExtents, DefaultMirrorHotExtents)
			case r.FloatingIP != nil:
				if !d.has(p + ".gratuitous_arp") {
					r.FloatingIP.GratuitousARP = true
				}
			}
		}
	}

	for mi := range c.Monitors {
		m := &c.Monitors[mi]
		p := fmt.Sprintf("monitors[%d]", mi)
		if t, ok := monitorTimings[m.Type]; ok {
			def(p+".interval_ms", &m.IntervalMS, t[0])
			def(p+".timeout_ms", &m.TimeoutMS, t[1])
		}
		def(p+".retry", &m.Retry, DefaultMonitorRetry)
		if m.ActiveOn != "" {
			defStr(p+".timing", &m.Timing, TimingActive)
		} else {
			defStr(p+".timing", &m.Timing, TimingAlways)
		}
		if m.AWSAZ != nil {
			defStr(p+".on_api_failure", &m.AWSAZ.OnAPIFailure, OnAPIFailureWarning)
		}

		rp := p + ".recovery"
		if !d.has(rp + ".target") {
			switch {
			case m.ActiveOn == "":
				m.Recovery.Target = LocalServer
			case c.Group(m.ActiveOn) != nil:
				m.Recovery.Target = m.ActiveOn
			default:
				if g, _ := c.Resource(m.ActiveOn); g != nil {
					m.Recovery.Target = g.Name
				} else {
					// active_on is wrong; that is the error to report.
					d.bad[rp+".target"] = true
				}
			}
		}
		counts := [2]int{DefaultReactivationCount, DefaultFailoverCount}
		if m.Recovery.Target == LocalServer {
			counts = [2]int{0, 0}
		}
		def(rp+".reactivation_count", &m.Recovery.ReactivationCount, counts[0])
		def(rp+".failover_count", &m.Recovery.FailoverCount, counts[1])
		defStr(rp+".final_action", &m.Recovery.FinalAction, ActionNone)
	}
}
