// Package metrics is Vigil's Prometheus instrumentation: a registry of its
// own (never the global one) holding the Go and process collectors and the
// vigil_* metrics the control core reports, and a server for /metrics.
//
// States arrive as plain strings: metrics imports nothing from control.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The states a one-hot metric always exposes, so a dashboard sees a 0 for
// every state the object is not in. A state outside these lists is exposed
// too, from the first time it is set.
var (
	// groupStates are the group and resource states.
	groupStates = []string{"offline", "starting", "online", "stopping", "online-failure", "offline-failure"}
	// monitorStates are the monitor states.
	monitorStates = []string{"ok", "warning", "error", "suspended", "inactive", "unknown"}
	// recoveryActions are the steps of a monitor's recovery.
	recoveryActions = []string{"reactivate", "failover", "final"}
)

// Buckets of the histograms.
var (
	// rttBuckets spans a same-AZ kernel-answered probe (~10µs) to a lane
	// about to be declared dead (1s).
	rttBuckets = []float64{
		10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
		1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1,
	}
	// failoverBuckets spans a VIP move (tens of ms) to a slow application
	// start (minutes).
	failoverBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	// awsCallBuckets spans a same-region API call (~10ms) to a call retried
	// until a resource's timeout (30s).
	awsCallBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	// monitorCheckBuckets spans a ping on the same link (~100µs) to a
	// script that runs into a long timeout (a minute).
	monitorCheckBuckets = []float64{100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5, 10, 30, 60}
)

// The bounded values of some labels, exposed at 0 from the start so that
// rate() and alerts see a series before its first event.
var (
	// heartbeatModes are the values of vigil_heartbeat_mode's mode label.
	heartbeatModes = []string{"ebpf", "userspace"}
	// peerLostCauses are the values of vigil_peer_lost_total's cause label.
	peerLostCauses = []string{"no_replies", "daemon_dead", "daemon_stalled", "config_mismatch"}
	// checkResults are the values of vigil_monitor_checks_total's result
	// label.
	checkResults = []string{"ok", "warning", "error"}
)

// Metrics owns a registry with the Go and process collectors and every
// vigil_* metric. Its methods are safe for concurrent use, and its Set, Add,
// Inc and Observe methods do nothing on a nil *Metrics, so a node without
// metrics passes nil.
type Metrics struct {
	reg             *prometheus.Registry
	cluster, server string

	peerUp          *prometheus.GaugeVec
	laneRTT         *prometheus.HistogramVec
	laneUp          *prometheus.GaugeVec
	laneMisses      *prometheus.CounterVec
	heartbeatDrops  *dropCollector
	serviceState    *oneHot
	groupState      *oneHot
	groupActive     *prometheus.GaugeVec
	resourceState   *oneHot
	monitorState    *oneHot
	monitorRecovery *prometheus.CounterVec
	failoverSeconds *prometheus.HistogramVec
	failovers       *prometheus.CounterVec
	awsCalls        *prometheus.HistogramVec
	awsAttempts     *prometheus.CounterVec
	awsRetries      *prometheus.CounterVec
	awsThrottles    *prometheus.CounterVec
	monitorCode     *prometheus.GaugeVec
	monitorChecks   *prometheus.CounterVec
	monitorCheckDur *prometheus.HistogramVec
	heartbeatMode   *oneHot
	hbFallback      prometheus.Gauge
	peerLost        *prometheus.CounterVec
	peerStalled     *prometheus.GaugeVec
	mirrorWrites    *prometheus.HistogramVec
	// mirrorObs caches each disk's write histogram, by disk name.
	mirrorObs sync.Map

	configMu   sync.Mutex
	configInfo *prometheus.GaugeVec
}

// New returns the metrics of server in cluster: every vigil_* metric carries
// them as the constant labels cluster and server.
func New(cluster, server string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), cluster: labelValue(cluster), server: labelValue(server)}
	cl := prometheus.Labels{"cluster": m.cluster, "server": m.server}
	m.peerUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name:        "vigil_peer_up",
		Help:        "Whether the peer answers heartbeats on at least one lane (1) or not (0).",
		ConstLabels: cl,
	}, []string{"peer"})
	m.laneRTT = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:        "vigil_lane_rtt_seconds",
		Help:        "Heartbeat round-trip time to a peer on one interconnect lane.",
		ConstLabels: cl,
		Buckets:     rttBuckets,
	}, []string{"peer", "lane"})
	m.laneUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name:        "vigil_lane_up",
		Help:        "Whether the peer answers heartbeats on the lane (1) or not (0).",
		ConstLabels: cl,
	}, []string{"peer", "lane"})
	m.laneMisses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "vigil_lane_misses_total",
		Help:        "Heartbeat probes to a peer on a lane that got no answer in time.",
		ConstLabels: cl,
	}, []string{"peer", "lane"})
	m.heartbeatDrops = &dropCollector{
		desc: prometheus.NewDesc("vigil_heartbeat_dropped_total",
			"Heartbeat packets the data plane dropped, by reason.", []string{"reason"}, cl),
		totals: map[string]uint64{},
	}
	m.serviceState = newOneHot(prometheus.GaugeOpts{
		Name:        "vigil_service_state",
		Help:        "The node's cluster service state: 1 for the current state, 0 for the others.",
		ConstLabels: cl,
	}, nil, "state", nil)
	m.groupState = newOneHot(prometheus.GaugeOpts{
		Name:        "vigil_group_state",
		Help:        "A failover group's state as this node knows it: 1 for the current state, 0 for the others.",
		ConstLabels: cl,
	}, []string{"group"}, "state", groupStates)
	m.groupActive = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name:        "vigil_group_active",
		Help:        "Whether the failover group runs on this node (1) or not (0).",
		ConstLabels: cl,
	}, []string{"group"})
	m.resourceState = newOneHot(prometheus.GaugeOpts{
		Name:        "vigil_resource_state",
		Help:        "A group resource's state on this node: 1 for the current state, 0 for the others.",
		ConstLabels: cl,
	}, []string{"group", "resource"}, "state", groupStates)
	m.monitorState = newOneHot(prometheus.GaugeOpts{
		Name:        "vigil_monitor_state",
		Help:        "A monitor resource's state on this node: 1 for the current state, 0 for the others.",
		ConstLabels: cl,
	}, []string{"monitor"}, "state", monitorStates)
	m.monitorRecovery = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "vigil_monitor_recovery_total",
		Help:        "Recovery actions a monitor's failures triggered: reactivate, failover or final.",
		ConstLabels: cl,
	}, []string{"monitor", "action"})
	m.failoverSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:        "vigil_failover_duration_seconds",
		Help:        "Time from the old owner's last sign of life (its last heartbeat reply, or the monitor error or operator command that started the move) to the group online on this node, its new owner.",
		ConstLabels: cl,
		Buckets:     failoverBuckets,
	}, []string{"group"})
	m.failovers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "vigil_failovers_total",
		Help:        "Failovers and moves of the group that completed on this node, the new owner.",
		ConstLabels: cl,
	}, []string{"group"})
	m.awsCalls = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:        "vigil_aws_call_duration_seconds",
		Help:        "AWS API calls from the first attempt to the final answer, retries included, by service, action and result code (0 success, 5 AWS error, 6 timeout, 99 internal).",
		ConstLabels: cl,
		Buckets:     awsCallBuckets,
	}, []string{"service", "action", "code"})
	m.awsAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "vigil_aws_call_attempts_total",
		Help:        "Attempts of AWS API calls, first tries and retries of throttled or failed calls.",
		ConstLabels: cl,
	}, []string{"service", "action"})
	m.awsRetries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "vigil_aws_call_retries_total",
		Help:        "Attempts of AWS API calls beyond the first: retries of throttled, failed or timed-out attempts.",
		ConstLabels: cl,
	}, []string{"service", "action"})
	m.awsThrottles = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "vigil_aws_call_throttles_total",
		Help:        "Attempts of AWS API calls that AWS throttled (RequestLimitExceeded, Throttling, ...).",
		ConstLabels: cl,
	}, []string{"service", "action"})
	m.monitorChecks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "vigil_monitor_checks_total",
		Help:        "Checks a monitor ran on this node, by result: ok, warning or error.",
		ConstLabels: cl,
	}, []string{"monitor", "result"})
	m.monitorCheckDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:        "vigil_monitor_check_duration_seconds",
		Help:        "Time one check of a monitor took, bounded by the monitor's timeout.",
		ConstLabels: cl,
		Buckets:     monitorCheckBuckets,
	}, []string{"monitor"})
	m.mirrorWrites = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:        "vigil_mirror_write_duration_seconds",
		Help:        "Time a write to the mirror disk took to complete on the primary: durable on both nodes in sync mode, locally in async mode.",
		ConstLabels: cl,
		Buckets:     mirrorWriteBuckets,
	}, []string{"disk"})
	m.monitorCode = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name:        "vigil_monitor_code",
		Help:        "The code of a monitor's last check, as in the guides' troubleshooting tables (0 healthy).",
		ConstLabels: cl,
	}, []string{"monitor"})
	m.peerLost = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "vigil_peer_lost_total",
		Help:        "Peers lost, by cause: no_replies (node or network down), daemon_dead (its kernel refuses heartbeats), daemon_stalled (its kernel answers, its daemon does not move), config_mismatch.",
		ConstLabels: cl,
	}, []string{"peer", "cause"})
	m.peerStalled = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name:        "vigil_peer_stalled",
		Help:        "Whether the peer's kernel answers heartbeats while its daemon's liveness epoch stands still (1) or not (0).",
		ConstLabels: cl,
	}, []string{"peer"})
	m.heartbeatMode = newOneHot(prometheus.GaugeOpts{
		Name:        "vigil_heartbeat_mode",
		Help:        "How this node answers heartbeats: 1 for the current mode, ebpf (the kernel answers through XDP) or userspace, 0 for the other.",
		ConstLabels: cl,
	}, nil, "mode", heartbeatModes)
	m.hbFallback = prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "vigil_heartbeat_fallback",
		Help:        "Whether heartbeat mode auto fell back to userspace because eBPF could not load (1) or not (0); the log says why.",
		ConstLabels: cl,
	})
	m.configInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name:        "vigil_config_info",
		Help:        "The hash of the loaded configuration, as a label; the value is always 1.",
		ConstLabels: cl,
	}, []string{"hash"})

	m.register(m.reg, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.register(m.reg,
		m.peerUp, m.laneRTT, m.laneUp, m.laneMisses, m.heartbeatDrops,
		m.serviceState.vec, m.groupState.vec, m.groupActive, m.resourceState.vec,
		m.monitorState.vec, m.monitorRecovery, m.failoverSeconds, m.failovers, m.configInfo,
		m.awsCalls, m.awsAttempts, m.awsRetries, m.awsThrottles,
		m.monitorCode, m.monitorChecks, m.monitorCheckDur,
		m.heartbeatMode.vec, m.hbFallback, m.peerLost, m.peerStalled, m.mirrorWrites,
	)
	return m
}

// register registers cs with r. A collector that cannot be registered, which
// only a bug causes, is replaced by one that fails every gathering with the
// reason, so /metrics and the tests show it instead of a panic.
func (m *Metrics) register(r prometheus.Registerer, cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			// An unchecked collector: Describe sends nothing.
			_ = m.reg.Register(failedCollector{err: fmt.Errorf("metrics register: %w", err)})
		}
	}
}

// failedCollector reports a registration error at every gathering.
type failedCollector struct{ err error }

func (failedCollector) Describe(chan<- *prometheus.Desc) {}

func (f failedCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(prometheus.NewInvalidDesc(f.err), f.err)
}

// labelValue makes s a valid label value.
func labelValue(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// Registry returns the registry, to gather from or to register more
// collectors with.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler returns the handler of /metrics, serving the registry.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// SetPeerUp sets whether peer answers on at least one lane.
func (m *Metrics) SetPeerUp(peer string, up bool) {
	if m == nil {
		return
	}
	m.peerUp.WithLabelValues(peer).Set(boolValue(up))
	for _, c := range peerLostCauses {
		m.peerLost.WithLabelValues(labelValue(peer), c).Add(0) // exposed from the start
	}
}

// ObserveLaneRTT records one heartbeat round trip to peer on lane.
func (m *Metrics) ObserveLaneRTT(peer, lane string, d time.Duration) {
	if m == nil {
		return
	}
	m.laneRTT.WithLabelValues(peer, lane).Observe(d.Seconds())
}

// SetLaneUp sets whether peer answers on lane.
func (m *Metrics) SetLaneUp(peer, lane string, up bool) {
	if m == nil {
		return
	}
	m.laneUp.WithLabelValues(peer, lane).Set(boolValue(up))
	m.laneMisses.WithLabelValues(peer, lane).Add(0) // exposed from the start
}

// AddLaneMisses counts n more unanswered probes to peer on lane.
func (m *Metrics) AddLaneMisses(peer, lane string, n uint64) {
	if m == nil {
		return
	}
	m.laneMisses.WithLabelValues(peer, lane).Add(float64(n))
}

// SetHeartbeatDrops sets the number of heartbeat packets dropped for reason
// since the data plane started: the data plane counts, this exposes its
// counter as it is.
func (m *Metrics) SetHeartbeatDrops(reason string, total uint64) {
	if m == nil {
		return
	}
	m.heartbeatDrops.set(reason, total)
}

// SetServiceState sets the node's cluster service state. Every state set
// once stays exposed, at 0 when it is not the current one.
func (m *Metrics) SetServiceState(state string) {
	if m == nil {
		return
	}
	m.serviceState.set(state)
}

// SetGroupState sets group's state, one of offline, starting, online,
// stopping, online-failure and offline-failure.
func (m *Metrics) SetGroupState(group, state string) {
	if m == nil {
		return
	}
	m.groupState.set(state, group)
	m.failovers.WithLabelValues(group).Add(0) // exposed from the start
}

// SetGroupOwner sets whether group runs on this node.
func (m *Metrics) SetGroupOwner(group string, ownedHere bool) {
	if m == nil {
		return
	}
	m.groupActive.WithLabelValues(group).Set(boolValue(ownedHere))
}

// SetResourceState sets the state of group's resource, one of the group
// states.
func (m *Metrics) SetResourceState(group, resource, state string) {
	if m == nil {
		return
	}
	m.resourceState.set(state, group, resource)
}

// SetMonitorState sets monitor's state, one of ok, warning, error,
// suspended, inactive and unknown.
func (m *Metrics) SetMonitorState(monitor, state string) {
	if m == nil {
		return
	}
	m.monitorState.set(state, monitor)
	for _, a := range recoveryActions {
		m.monitorRecovery.WithLabelValues(monitor, a).Add(0) // exposed from the start
	}
}

// IncMonitorRecovery counts one recovery action of monitor: reactivate,
// failover or final.
func (m *Metrics) IncMonitorRecovery(monitor, action string) {
	if m == nil {
		return
	}
	m.monitorRecovery.WithLabelValues(monitor, action).Inc()
}

// ObserveFailover records one completed failover of group that took d.
func (m *Metrics) ObserveFailover(group string, d time.Duration) {
	if m == nil {
		return
	}
	m.failoverSeconds.WithLabelValues(group).Observe(d.Seconds())
	m.failovers.WithLabelValues(group).Inc()
}

// ObserveAWSCall records one AWS call that ended with code (0 for success)
// after attempts tries and d in all: its duration, its attempts and its
// retries (the attempts beyond the first).
func (m *Metrics) ObserveAWSCall(service, action string, code, attempts int, d time.Duration) {
	if m == nil {
		return
	}
	m.awsCalls.WithLabelValues(service, action, strconv.Itoa(code)).Observe(d.Seconds())
	m.awsAttempts.WithLabelValues(service, action).Add(float64(max(attempts, 0)))
	m.awsRetries.WithLabelValues(service, action).Add(float64(max(attempts-1, 0)))
	m.awsThrottles.WithLabelValues(service, action).Add(0) // exposed from the start
}

// AddAWSThrottles counts n more attempts of service's action that AWS
// throttled.
func (m *Metrics) AddAWSThrottles(service, action string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.awsThrottles.WithLabelValues(service, action).Add(float64(n))
}

// ObserveMonitorCheck records one check of monitor that ended with result
// (ok, warning or error) after d.
func (m *Metrics) ObserveMonitorCheck(monitor, result string, d time.Duration) {
	if m == nil {
		return
	}
	monitor = labelValue(monitor)
	if !slices.Contains(checkResults, result) {
		result = "error"
	}
	m.monitorCheckDur.WithLabelValues(monitor).Observe(d.Seconds())
	for _, r := range checkResults {
		c := m.monitorChecks.WithLabelValues(monitor, r)
		if r == result {
			c.Inc()
		} else {
			c.Add(0) // exposed from the start
		}
	}
}

// VIPSample is one VIP's traffic at a scrape.
type VIPSample struct {
	Address, Interface string
	Packets, Bytes     uint64
	// FirstPacketAfter is the time from binding the VIP here to its first
	// packet; negative while none arrived.
	FirstPacketAfter time.Duration
}

// vipCollector reads the VIPs' kernel counters at each scrape.
type vipCollector struct {
	packets, bytes, first *prometheus.Desc
	read                  func() []VIPSample
}

func (c *vipCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.packets
	ch <- c.bytes
	ch <- c.first
}

func (c *vipCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.read() {
		ch <- constMetric(c.packets, prometheus.CounterValue, float64(s.Packets), s.Address, s.Interface)
		ch <- constMetric(c.bytes, prometheus.CounterValue, float64(s.Bytes), s.Address, s.Interface)
		if s.FirstPacketAfter >= 0 {
			ch <- constMetric(c.first, prometheus.GaugeValue, s.FirstPacketAfter.Seconds(), s.Address, s.Interface)
		}
	}
}

// RegisterVIPTraffic exports the VIPs' traffic as read by read at each
// scrape: vigil_vip_packets_total, vigil_vip_bytes_total and
// vigil_vip_first_packet_after_seconds. Call it once.
func (m *Metrics) RegisterVIPTraffic(read func() []VIPSample) {
	if m == nil {
		return
	}
	labels := []string{"vip", "interface"}
	cl := prometheus.Labels{"cluster": m.cluster, "server": m.server}
	m.register(m.reg, &vipCollector{
		packets: prometheus.NewDesc("vigil_vip_packets_total", "Packets to the VIP received on this node since it was last added to the managed set, counted by the TC ingress program.", labels, cl),
		bytes:   prometheus.NewDesc("vigil_vip_bytes_total", "Bytes of those packets, Ethernet headers included.", labels, cl),
		first:   prometheus.NewDesc("vigil_vip_first_packet_after_seconds", "Time from binding the VIP on this node to the first packet it received: the proof that traffic reached the new owner.", labels, cl),
		read:    read,
	})
}

// IncPeerLost counts one loss of peer for cause (no_replies, daemon_dead,
// daemon_stalled, config_mismatch).
func (m *Metrics) IncPeerLost(peer, cause string) {
	if m == nil {
		return
	}
	m.peerLost.WithLabelValues(labelValue(peer), cause).Inc()
}

// SetPeerStalled sets whether peer's daemon is stalled.
func (m *Metrics) SetPeerStalled(peer string, stalled bool) {
	if m == nil {
		return
	}
	m.peerStalled.WithLabelValues(labelValue(peer)).Set(boolValue(stalled))
}

// SetHeartbeatMode sets how this node answers heartbeats, as status shows
// it: "ebpf (xdp native)", "userspace", "userspace (fallback: why)". Only
// the kind, ebpf or userspace, becomes a label value; a fallback sets
// vigil_heartbeat_fallback.
func (m *Metrics) SetHeartbeatMode(mode string) {
	if m == nil {
		return
	}
	kind := "userspace"
	if strings.HasPrefix(mode, "ebpf") {
		kind = "ebpf"
	}
	m.heartbeatMode.set(kind)
	m.hbFallback.Set(boolValue(kind == "userspace" && strings.Contains(mode, "fallback")))
}

// SetMonitorCode sets the code of monitor's last check.
func (m *Metrics) SetMonitorCode(monitor string, code int) {
	if m == nil {
		return
	}
	m.monitorCode.WithLabelValues(labelValue(monitor)).Set(float64(code))
}

// SetConfigInfo sets the hash of the loaded configuration, replacing the
// previous one.
func (m *Metrics) SetConfigInfo(hash string) {
	if m == nil {
		return
	}
	m.configMu.Lock()
	defer m.configMu.Unlock()
	m.configInfo.Reset()
	m.configInfo.WithLabelValues(hash).Set(1)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// oneHot is a gauge with a state label that is 1 for the current state of an
// object and 0 for its other states.
type oneHot struct {
	vec    *prometheus.GaugeVec
	mu     sync.Mutex
	states []string // the known states, then every other state seen
}

// newOneHot returns a one-hot gauge labelled by labels and key, the label
// naming the state.
func newOneHot(opts prometheus.GaugeOpts, labels []string, key string, known []string) *oneHot {
	return &oneHot{
		vec:    prometheus.NewGaugeVec(opts, append(slices.Clip(labels), key)),
		states: slices.Clone(known),
	}
}

// set makes state the current state of the object that labels name.
func (o *oneHot) set(state string, labels ...string) {
	if state == "" {
		state = "unknown"
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !slices.Contains(o.states, state) {
		o.states = append(o.states, state)
	}
	for _, s := range o.states {
		v := 0.0
		if s == state {
			v = 1
		}
		o.vec.WithLabelValues(append(slices.Clip(labels), s)...).Set(v)
	}
}

// dropCollector exposes the data plane's drop counters, by reason.
type dropCollector struct {
	desc   *prometheus.Desc
	mu     sync.Mutex
	totals map[string]uint64
}

func (c *dropCollector) set(reason string, total uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.totals[reason] = total
}

// Describe implements prometheus.Collector.
func (c *dropCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *dropCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	reasons := make([]string, 0, len(c.totals))
	for r := range c.totals {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	values := make([]uint64, len(reasons))
	for i, r := range reasons {
		values[i] = c.totals[r]
	}
	c.mu.Unlock()
	for i, r := range reasons {
		mt, err := prometheus.NewConstMetric(c.desc, prometheus.CounterValue, float64(values[i]), r)
		if err != nil {
			mt = prometheus.NewInvalidMetric(c.desc, err)
		}
		ch <- mt
	}
}

// Serve serves h at /metrics on addr until ctx ends. It returns at once with
// an error if addr cannot be bound, and nil after a clean stop.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "vigild: metrics at /metrics")
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("metrics: serving", "event", "metrics_serving", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics serve: %w", err)
	}
	return nil
}
