// Package api is the node's local control API: an HTTP/JSON protocol spoken
// over a root-only unix socket, its server, its client, and the status model
// that vigilctl renders.
package api

import (
	"context"
	"time"
)

// Service states of a node.
const (
	ServiceStarting = "starting" // waiting for peers before starting groups
	ServiceRunning  = "running"
	ServiceStopped  = "stopped"  // cluster service stopped by the operator or a final action
	ServiceRefused  = "refused"  // configuration differs from a peer's: will not join
	ServiceIsolated = "isolated" // lost its peers and its NP targets
)

// Node states as seen from the reporting node.
const (
	NodeUp       = "up"
	NodeDown     = "down"
	NodeMismatch = "mismatch" // answers, but with another configuration
	// NodeStalled is a peer whose kernel answers heartbeats while its
	// daemon's liveness epoch stands still; it is still up until the stall
	// timeout, then down with that reason.
	NodeStalled = "stalled"
)

// Group and resource states.
const (
	StateOffline        = "offline"
	StateStarting       = "starting"
	StateOnline         = "online"
	StateStopping       = "stopping"
	StateOnlineFailure  = "online-failure"
	StateOfflineFailure = "offline-failure"
)

// Monitor states.
const (
	MonitorOK        = "ok"
	MonitorWarning   = "warning"
	MonitorError     = "error"
	MonitorSuspended = "suspended"
	MonitorInactive  = "inactive" // an "active" monitor whose target is not online here
)

// Status is everything `vigilctl status` shows.
type Status struct {
	Cluster    string    `json:"cluster"`
	Server     string    `json:"server"`
	ConfigHash string    `json:"config_hash"`
	Service    string    `json:"service"`
	Reason     string    `json:"reason,omitempty"`
	Heartbeat  string    `json:"heartbeat"` // "ebpf (xdp generic)", "userspace", ...
	Nodes      []Node    `json:"nodes"`
	Groups     []Group   `json:"groups"`
	Monitors   []Monitor `json:"monitors"`
	// VIPs is the traffic each VIP of this node received, counted in the
	// kernel (empty without eBPF).
	VIPs []VIPTraffic `json:"vips,omitempty"`
	// Mirrors are the node's mirror disks.
	Mirrors []Mirror `json:"mirrors,omitempty"`
	// LastFailover is the timeline of the most recent failover this node
	// took part in, or nil.
	LastFailover *Timeline `json:"last_failover,omitempty"`
}

// Node is one server of the cluster.
type Node struct {
	Name    string `json:"name"`
	Self    bool   `json:"self"`
	State   string `json:"state"`
	Service string `json:"service,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Lanes   []Lane `json:"lanes,omitempty"`
}

// Lane is one interconnect lane to a peer.
type Lane struct {
	Name     string        `json:"name"`
	Up       bool          `json:"up"`
	RTT      time.Duration `json:"rtt_ns"`
	LastSeen time.Time     `json:"last_seen"`
	Misses   uint64        `json:"misses"`
}

// Group is one failover group.
type Group struct {
	Name       string     `json:"name"`
	State      string     `json:"state"`
	Owner      string     `json:"owner,omitempty"`
	Generation uint32     `json:"generation"`
	Stopped    bool       `json:"stopped"` // stopped by the operator: nobody starts it
	FailedOn   []string   `json:"failed_on,omitempty"`
	Resources  []Resource `json:"resources"`
}

// Resource is one group resource, as the reporting node knows it.
type Resource struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	State     string `json:"state"`
	LastError string `json:"last_error,omitempty"`
}

// Monitor is one monitor resource on the reporting node.
type Monitor struct {
	Name          string `json:"name"`
	Type          string `json:"type"`
	State         string `json:"state"`
	Code          int    `json:"code,omitempty"`
	Message       string `json:"message,omitempty"`
	Reactivations int    `json:"reactivations"`
	Failovers     int    `json:"failovers"`
}

// VIPTraffic is what one VIP received on this node since it was last bound
// here.
type VIPTraffic struct {
	Address   string `json:"address"`
	Interface string `json:"interface"`
	Packets   uint64 `json:"packets"`
	Bytes     uint64 `json:"bytes"`
	// Bound says whether the VIP is bound here now.
	Bound bool `json:"bound"`
	// FirstPacketAfter is, when the VIP was bound here and a packet has
	// arrived since, the time from binding to that first packet: the proof
	// that traffic reached the new owner.
	FirstPacketAfter *time.Duration `json:"first_packet_after,omitempty"`
}

// Timeline is the story of one failover, event by event.
type Timeline struct {
	Group  string  `json:"group"`
	From   string  `json:"from,omitempty"`
	To     string  `json:"to"`
	Events []Event `json:"events"`
}

// Event is one step of a timeline.
type Event struct {
	At   time.Time `json:"at"`
	What string    `json:"what"`
}

// Backend is what the API server drives: the node's control core.
type Backend interface {
	Status() Status
	ClusterStart(ctx context.Context) error
	ClusterStop(ctx context.Context) error
	// GroupStart starts a stopped group on server, or on the highest-priority
	// eligible server when server is empty.
	GroupStart(ctx context.Context, group, server string) error
	GroupStop(ctx context.Context, group string) error
	// GroupMove stops the group where it runs and starts it on server, or on
	// the next eligible server when server is empty.
	GroupMove(ctx context.Context, group, server string) error
	MonitorSuspend(ctx context.Context, monitor string) error
	MonitorResume(ctx context.Context, monitor string) error
}
