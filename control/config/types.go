// Package config loads and validates the Vigil cluster configuration: one
// YAML file, the same on every node, holding everything the guides' cluster
// generation wizard sets.
package config

import "time"

// Config is a whole, validated cluster configuration.
type Config struct {
	Cluster  Cluster   `yaml:"cluster"`
	Servers  []Server  `yaml:"servers"`
	Lanes    []Lane    `yaml:"lanes"`
	Groups   []Group   `yaml:"groups"`
	Monitors []Monitor `yaml:"monitors"`

	// Path is the file the configuration was read from.
	Path string `yaml:"-"`
	// Hash is the SHA-256 of the canonical form of the configuration: two
	// files that decode to the same configuration have the same hash, whatever
	// their comments, key order or white space.
	Hash [32]byte `yaml:"-"`
	// Key is the cluster key read from Cluster.KeyFile. It never appears in
	// logs, status output or the hash.
	Key []byte `yaml:"-"`
}

// Cluster holds the cluster-wide settings.
type Cluster struct {
	// Name is the cluster name.
	Name string `yaml:"name"`
	// KeyFile is the path of the cluster key (at least 32 bytes), relative to
	// the configuration file's folder unless absolute.
	KeyFile string `yaml:"key_file"`
	// Heartbeat sets the heartbeat timing.
	Heartbeat Heartbeat `yaml:"heartbeat"`
	// StartupWaitMS is how long a starting node waits to see its peers before
	// it starts groups on its own (EXPRESSCLUSTER's server sync wait time).
	StartupWaitMS int `yaml:"startup_wait_ms"`
	// NPResolution is the network partition resolution.
	NPResolution NPResolution `yaml:"np_resolution"`
	// ShutdownCommand is the command run by the final action
	// "stop_cluster_service_and_shutdown"; the default is ["/sbin/poweroff"].
	ShutdownCommand []string `yaml:"shutdown_command"`
	// MetricsAddress is where vigild serves /metrics (default
	// DefaultMetricsAddress, loopback only); set to "" it is off. A server
	// may override it.
	MetricsAddress string `yaml:"metrics_address"`
	// AWS sets how the aws_* resources and monitors reach AWS.
	AWS AWS `yaml:"aws"`
}

// AWS sets how the aws_* resources and monitors reach AWS. Credentials come
// from the AWS SDK's default chain: environment, shared files, or the
// instance role through IMDSv2.
type AWS struct {
	// Region is the AWS region; empty means the instance's region from
	// IMDSv2.
	Region string `yaml:"region"`
	// Endpoint replaces AWS's EC2, STS and Route 53 endpoints with one URL.
	// Only tests and the demo set it (vigil-awsemu); leave it empty on AWS.
	Endpoint string `yaml:"endpoint"`
	// IMDSEndpoint replaces the instance metadata service's address; empty
	// means the standard one.
	IMDSEndpoint string `yaml:"imds_endpoint"`
	// CallTimeoutMS bounds one attempt of one AWS call; throttled and failed
	// attempts are retried within the resource's or monitor's timeout.
	CallTimeoutMS int `yaml:"call_timeout_ms"`
	// DNSResolver is the DNS server (host:port) aws_dns monitors ask when
	// they check name resolution; empty means the system's resolver.
	DNSResolver string `yaml:"dns_resolver"`
}

// Heartbeat sets the heartbeat timing.
type Heartbeat struct {
	// Profile names a preset of interval, timeout and stall timeout:
	// "fast" (same AZ), "cross-az" or "conservative" (the default). Keys set
	// beside it override the preset's values.
	Profile string `yaml:"profile"`
	// Mode is "auto" (the kernel fast path where eBPF can load, else
	// userspace, said once in the log), "ebpf" (refuse to start without the
	// kernel fast path) or "userspace".
	Mode string `yaml:"mode"`
	// Port is the UDP port heartbeats use on every lane.
	Port int `yaml:"port"`
	// IntervalMS is the time between two probes on a lane.
	IntervalMS int `yaml:"interval_ms"`
	// TimeoutMS is how long a lane may go without a valid answer before it
	// is down; a peer is down only when all its lanes are down.
	TimeoutMS int `yaml:"timeout_ms"`
	// StallTimeoutMS is how long a peer whose kernel still answers but whose
	// daemon's liveness epoch stands still (a stalled daemon: GC pause, CPU
	// starvation, SIGSTOP) is waited for before it counts as down. Only
	// kernel-answered heartbeats can tell a stall from a death.
	StallTimeoutMS int `yaml:"stall_timeout_ms"`
}

// HeartbeatProfile is a named preset of heartbeat timings.
type HeartbeatProfile struct {
	Name                                  string
	IntervalMS, TimeoutMS, StallTimeoutMS int
}

// Heartbeat profiles, named like memberlist's presets.
var (
	// ProfileFast suits nodes in one AZ: a dead node is detected in 25 ms.
	ProfileFast = HeartbeatProfile{"fast", 5, 25, 500}
	// ProfileCrossAZ suits nodes in different AZs of one region (RTTs of
	// about a millisecond, rarer spikes of tens).
	ProfileCrossAZ = HeartbeatProfile{"cross-az", 20, 150, 2000}
	// ProfileConservative suits loaded or distant nodes: one second.
	ProfileConservative = HeartbeatProfile{"conservative", 100, 1000, 5000}
	// HeartbeatProfiles lists the profiles by name.
	HeartbeatProfiles = map[string]HeartbeatProfile{
		ProfileFast.Name: ProfileFast, ProfileCrossAZ.Name: ProfileCrossAZ, ProfileConservative.Name: ProfileConservative,
	}
)

// Heartbeat modes.
const (
	HeartbeatAuto      = "auto"
	HeartbeatEBPF      = "ebpf"
	HeartbeatUserspace = "userspace"
)

// NPResolution decides, when a node loses its peers, whether it was isolated
// (network partition) or they are down.
type NPResolution struct {
	// Targets are the acknowledgement devices: the node is not isolated if
	// any of them answers.
	Targets []NPTarget `yaml:"targets"`
	// TimeoutMS bounds one check of all targets.
	TimeoutMS int `yaml:"timeout_ms"`
	// Action is what an isolated node does: "stop_groups",
	// "stop_cluster_service" or "stop_cluster_service_and_shutdown".
	Action string `yaml:"action"`
}

// NPTarget is one acknowledgement device. Exactly one field is set.
type NPTarget struct {
	// Ping is an address answered with ICMP echo (the guides' NAT instance).
	Ping string `yaml:"ping"`
	// TCP is a host:port that accepts a connection (the guides' regional
	// endpoint :443).
	TCP string `yaml:"tcp"`
}

// Server is one cluster node.
type Server struct {
	// Name is the server's host name, as in the guides (ip-10-0-110-10).
	Name string `yaml:"name"`
	// AvailabilityZone is the server's AZ (ap-northeast-1a).
	AvailabilityZone string `yaml:"availability_zone"`
	// Interconnects maps a lane name to this server's address on that lane.
	Interconnects map[string]string `yaml:"interconnects"`
	// MetricsAddress overrides Cluster.MetricsAddress for this server.
	MetricsAddress string `yaml:"metrics_address"`
}

// Lane is one interconnect path between the servers.
type Lane struct {
	// Name names the lane (lan1).
	Name string `yaml:"name"`
	// Priority orders the lanes, 1 first; priorities are unique.
	Priority int `yaml:"priority"`
	// Mirror marks the lane that carries the mirror connect (MDC); at most
	// one lane has it.
	Mirror bool `yaml:"mirror"`
}

// Group is a failover group.
type Group struct {
	// Name is the group name (failover1).
	Name string `yaml:"name"`
	// Servers lists the servers that may run the group, highest priority
	// first; empty means every server in the order of Config.Servers.
	Servers []string `yaml:"servers"`
	// Resources are the group's resources.
	Resources []Resource `yaml:"resources"`
}

// Resource kinds.
const (
	KindFloatingIP = "floating_ip"
	KindExec       = "exec"
	KindAWSVIP     = "aws_vip"
	KindAWSEIP     = "aws_eip"
	KindAWSDNS     = "aws_dns"
	KindMirrorDisk = "mirror_disk"
)

// Resource is one group resource. Exactly one of the kind-specific pointers
// is set, the one that matches Type. In YAML the kind-specific keys stand
// beside the common ones, and "servers:" maps a server name to the values
// set up individually for it.
type Resource struct {
	Name           string   `yaml:"name"`
	Type           string   `yaml:"type"`
	DependsOn      []string `yaml:"depends_on"`
	StartTimeoutMS int      `yaml:"start_timeout_ms"`
	StopTimeoutMS  int      `yaml:"stop_timeout_ms"`

	FloatingIP *FloatingIP `yaml:"-"`
	Exec       *Exec       `yaml:"-"`
	AWSVIP     *AWSVIP     `yaml:"-"`
	AWSEIP     *AWSEIP     `yaml:"-"`
	AWSDNS     *AWSDNS     `yaml:"-"`
	MirrorDisk *MirrorDisk `yaml:"-"`

	// perServer holds, for each server with individual values, a copy of the
	// resource with those values merged in.
	perServer map[string]*Resource
}

// For returns the resource as server sees it: its individually set values
// merged over the common ones. It never returns nil.
func (r *Resource) For(server string) *Resource {
	if p, ok := r.perServer[server]; ok {
		return p
	}
	return r
}

// StartTimeout is the start timeout as a duration.
func (r *Resource) StartTimeout() time.Duration { return ms(r.StartTimeoutMS) }

// StopTimeout is the stop timeout as a duration.
func (r *Resource) StopTimeout() time.Duration { return ms(r.StopTimeoutMS) }

// FloatingIP is an address bound to an interface with netlink.
type FloatingIP struct {
	// Address is the address with its prefix length (198.18.100.10/24).
	Address string `yaml:"address"`
	// Interface is the interface to bind it to (individually settable).
	Interface string `yaml:"interface"`
	// GratuitousARP announces an IPv4 address with gratuitous ARP (RFC
	// 5227) when it is bound, so switches and neighbours learn its new
	// place at once.
	GratuitousARP bool `yaml:"gratuitous_arp"`
}

// Exec runs the clustered application's start and stop scripts.
type Exec struct {
	// Start is the start script's path (individually settable).
	Start string `yaml:"start"`
	// Stop is the stop script's path (individually settable).
	Stop string `yaml:"stop"`
	// Env adds environment variables for both scripts.
	Env map[string]string `yaml:"env"`
}

// AWSVIP is the guides' AWS virtual ip resource.
type AWSVIP struct {
	// IP is the VIP, outside the VPC's CIDR (10.1.0.20).
	IP string `yaml:"ip"`
	// VPCID is the VPC (individually settable); empty means the instance's
	// VPC from IMDSv2.
	VPCID string `yaml:"vpc_id"`
	// ENIID is the server's network interface (individually settable);
	// empty means the instance's primary interface from IMDSv2.
	ENIID string `yaml:"eni_id"`
	// Interface is the local interface the VIP is bound to (individually
	// settable); empty means the interface of the default route.
	Interface string `yaml:"interface"`
	// RouteTables lists the route tables to switch; empty means every route
	// table of the VPC that holds a route for the VIP/32.
	RouteTables []string `yaml:"route_tables"`
}

// AWSEIP is the guides' AWS elastic ip resource.
type AWSEIP struct {
	// AllocationID is the EIP allocation (eipalloc-01234567).
	AllocationID string `yaml:"allocation_id"`
	// ENIID is the server's network interface (individually settable);
	// empty means the instance's primary interface from IMDSv2.
	ENIID string `yaml:"eni_id"`
}

// AWSDNS is the guides' AWS DNS resource (Route 53).
type AWSDNS struct {
	// HostedZoneID is the hosted zone (ABCDEFGHIJK123).
	HostedZoneID string `yaml:"hosted_zone_id"`
	// RecordName is the FQDN with its final dot (srv.hz1.local.).
	RecordName string `yaml:"record_name"`
	// IP is the address the record holds (individually settable); empty
	// means the instance's private IPv4 address from IMDSv2.
	IP string `yaml:"ip"`
	// TTL is the record's TTL in seconds.
	TTL int `yaml:"ttl"`
	// DeleteOnStop deletes the record set when the resource stops.
	DeleteOnStop bool `yaml:"delete_on_stop"`
	// WaitInSync makes start wait until Route 53 reports the change INSYNC
	// on all its name servers, within the start timeout.
	WaitInSync bool `yaml:"wait_insync"`
	// CheckResolution makes the resource's monitor also resolve the name
	// and compare the answer (the guides' "Check Name Resolution").
	CheckResolution bool `yaml:"check_resolution"`
}

// MirrorDisk is the guides' mirror disk resource.
type MirrorDisk struct {
	// DataPartition is the replicated data partition (individually settable).
	DataPartition string `yaml:"data_partition"`
	// ClusterPartition holds the mirror metadata (individually settable).
	ClusterPartition string `yaml:"cluster_partition"`
	// Mode is "sync" or "async".
	Mode string `yaml:"mode"`
	// Port is the TCP port of the mirror connect on the mirror lane
	// (default 29051); each mirror disk has its own.
	Port int `yaml:"port"`
	// Frontend is how the active node exposes the disk: "nbd" (a
	// /dev/nbdN block device), "none" (replicated but not exposed), or
	// "auto" (the default: nbd where the kernel has it, else none, said
	// in status).
	Frontend string `yaml:"frontend"`
	// MountPoint, if set, is where the active node mounts the exposed
	// disk (individually settable); FSType is its filesystem (default
	// ext4).
	MountPoint string `yaml:"mount_point"`
	FSType     string `yaml:"fs_type"`
	// Mkfs makes a filesystem of FSType on a disk that holds none yet,
	// the first time it is mounted (the guides' initial mkfs).
	Mkfs bool `yaml:"mkfs"`
	// TimeoutMS breaks the mirror connect when the peer sends nothing,
	// leaves a write unacked or blocks a send this long (default 5000,
	// like DRBD's ping-timeout × ko-count); in sync mode the primary then
	// goes on alone and tracks dirty regions.
	TimeoutMS int `yaml:"timeout_ms"`
	// ResyncRateMBps limits resync and verify traffic, in MB/s (0, the
	// default: unlimited). Application writes are never limited.
	ResyncRateMBps int `yaml:"resync_rate_mbps"`
	// HotExtents is how many 4 MiB activity extents stay hot at most
	// (DRBD's al-extents; default 1237, 0 none): a write to a hot one
	// never waits for a bitmap sync, and a crash of the node resyncs them
	// whole.
	HotExtents int `yaml:"hot_extents"`
	// Compress compresses replicated data on the wire (s2) when both
	// nodes have it on and it saves space.
	Compress bool `yaml:"compress"`
	// TLS, if set, runs the mirror connect inside mutually authenticated
	// TLS 1.3; the cluster-key handshake still runs inside it.
	TLS *MirrorTLS `yaml:"tls"`
}

// MirrorTLS names the PEM files of a mirror connect's TLS.
type MirrorTLS struct {
	// Cert and Key are this node's certificate and key: the same paths
	// on every node, each holding its own node's files.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// CA is the cluster CA both nodes' certificates are signed by.
	CA string `yaml:"ca"`
}

// Monitor kinds.
const (
	MonitorIP     = "ip"
	MonitorTCP    = "tcp"
	MonitorExec   = "exec"
	MonitorAWSAZ  = "aws_az"
	MonitorAWSVIP = "aws_vip"
	MonitorAWSEIP = "aws_eip"
	MonitorAWSDNS = "aws_dns"
	// MonitorMirrorDisk watches a mirror disk on both nodes (the guides'
	// mdw); added automatically with the resource.
	MonitorMirrorDisk = "mirror_disk"
)

// Monitor timings.
const (
	TimingAlways = "always"
	TimingActive = "active"
)

// Final actions, as on the guides' Recovery Action page.
const (
	ActionNone                     = "none"
	ActionStopGroup                = "stop_group"
	ActionStopClusterService       = "stop_cluster_service"
	ActionStopClusterServiceAndOff = "stop_cluster_service_and_shutdown"
)

// LocalServer is the recovery target that names the node itself.
const LocalServer = "LocalServer"

// Monitor is one monitor resource. Exactly one of the kind-specific pointers
// is set, the one that matches Type; as for resources, its keys stand beside
// the common ones and "servers:" holds individually set values.
type Monitor struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
	// IntervalMS is the time between two checks.
	IntervalMS int `yaml:"interval_ms"`
	// TimeoutMS bounds one check.
	TimeoutMS int `yaml:"timeout_ms"`
	// Retry is how many failed checks in a row are tolerated before the
	// monitor reports an error.
	Retry int `yaml:"retry"`
	// Timing is "always" or "active" (only while ActiveOn is online here).
	Timing string `yaml:"timing"`
	// ActiveOn names the group or resource whose activity gates an "active"
	// monitor.
	ActiveOn string `yaml:"active_on"`
	// Recovery is what a monitor error does.
	Recovery Recovery `yaml:"recovery"`

	IP    *IPMonitor    `yaml:"-"`
	TCP   *TCPMonitor   `yaml:"-"`
	Exec  *ExecMonitor  `yaml:"-"`
	AWSAZ *AWSAZMonitor `yaml:"-"`

	// Resource is the resource an automatically added monitor (aws_vip,
	// aws_eip, aws_dns) watches; empty for configured monitors.
	Resource string `yaml:"-"`

	perServer map[string]*Monitor
}

// For returns the monitor as server sees it. It never returns nil.
func (m *Monitor) For(server string) *Monitor {
	if p, ok := m.perServer[server]; ok {
		return p
	}
	return m
}

// Interval is the check interval as a duration.
func (m *Monitor) Interval() time.Duration { return ms(m.IntervalMS) }

// Timeout is the check timeout as a duration.
func (m *Monitor) Timeout() time.Duration { return ms(m.TimeoutMS) }

// Recovery is the guides' Recovery Action page.
type Recovery struct {
	// Target is a group name, a resource name, or "LocalServer".
	Target string `yaml:"target"`
	// ReactivationCount is the maximum reactivation count.
	ReactivationCount int `yaml:"reactivation_count"`
	// FailoverCount is the maximum failover count.
	FailoverCount int `yaml:"failover_count"`
	// FinalAction is one of the Action* constants.
	FinalAction string `yaml:"final_action"`
}

// IPMonitor pings a list of addresses; healthy if any answers.
type IPMonitor struct {
	Addresses []string `yaml:"addresses"`
}

// TCPMonitor connects to host:port within the timeout.
type TCPMonitor struct {
	Address string `yaml:"address"`
}

// ExecMonitor runs a script; exit code 0 is healthy.
type ExecMonitor struct {
	Script string            `yaml:"script"`
	Env    map[string]string `yaml:"env"`
}

// AWSAZMonitor watches the state of an availability zone.
type AWSAZMonitor struct {
	// AvailabilityZone is the AZ to watch (individually settable); empty
	// means the server's availability_zone, else the instance's AZ from
	// IMDSv2.
	AvailabilityZone string `yaml:"availability_zone"`
	// OnAPIFailure is what a failed AWS call means: "warning" (the guides'
	// "disable recovery action, display warning"), "error" or "none".
	OnAPIFailure string `yaml:"on_api_failure"`
}

// Interval is the heartbeat interval as a duration.
func (h Heartbeat) Interval() time.Duration { return ms(h.IntervalMS) }

// Timeout is the heartbeat timeout as a duration.
func (h Heartbeat) Timeout() time.Duration { return ms(h.TimeoutMS) }

// StallTimeout is the stall timeout as a duration.
func (h Heartbeat) StallTimeout() time.Duration { return ms(h.StallTimeoutMS) }

// StartupWait is the startup wait as a duration.
func (c Cluster) StartupWait() time.Duration { return ms(c.StartupWaitMS) }

// Timeout is the NP check timeout as a duration.
func (n NPResolution) Timeout() time.Duration { return ms(n.TimeoutMS) }

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }
