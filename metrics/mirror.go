package metrics

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// mirrorStates are the values of vigil_mirror_state's state label, the
// connection states of a mirror disk.
var mirrorStates = []string{"standalone", "connecting", "resyncing", "connected", "splitbrain"}

// mirrorWriteBuckets spans a write acknowledged by a fast local disk
// (~20µs) to one stuck behind a peer about to be declared lost (1s).
var mirrorWriteBuckets = []float64{
	20e-6, 50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1,
}

// MirrorSample is one mirror disk's state at a scrape, as its replication
// engine reports it. Fields documented as counters only grow while the
// engine runs; a smaller value (the engine was reopened) is a counter reset,
// which Prometheus handles.
type MirrorSample struct {
	// Disk is the mirror_disk resource's name, the disk label.
	Disk string
	// State is the connection state: standalone, connecting, resyncing,
	// connected or split-brain (case, "-" and "_" do not matter). Another
	// value sets every state of vigil_mirror_state to 0.
	State string
	// Primary is true on the node that writes the disk.
	Primary bool
	// Connected is true while the mirror connect to the peer is up.
	Connected bool
	// Consistent is false on a secondary whose resync was interrupted: its
	// data must not be used until a resync completes.
	Consistent bool
	// SizeBytes is the size of the replicated volume.
	SizeBytes uint64
	// DirtyBytes is the volume the dirty bitmap marks as differing from the
	// peer.
	DirtyBytes uint64
	// ReplicatedBytes counts the bytes of writes sent to the peer (counter).
	ReplicatedBytes uint64
	// ResyncBytes counts the bytes copied by resyncs (counter).
	ResyncBytes uint64
	// ResyncRemaining is what the current resync still has to copy, 0 when
	// none runs.
	ResyncRemaining uint64
	// LagBytes is the async writes queued to the peer or not yet
	// acknowledged by it.
	LagBytes uint64
	// ResyncRate is the current resync's copy rate in bytes per second.
	ResyncRate float64
	// LagSeconds is the age of the oldest async write the peer has not yet
	// acknowledged, 0 when none.
	LagSeconds float64
	// Rejected counts the frames from the peer refused, by reason
	// (counters). The reasons must be a small fixed set.
	Rejected map[string]uint64
	// SplitBrains counts the connections that found diverged data
	// (counter).
	SplitBrains uint64
	// BitmapSyncs counts the writes that waited for a write-ahead sync of
	// the dirty bitmap, their activity extent being cold (counter).
	BitmapSyncs uint64
	// HotExtents is how many activity extents are hot: a crash resyncs
	// them whole.
	HotExtents int
}

// mirrorCollector reads the mirror disks' samples at each scrape.
type mirrorCollector struct {
	primary, connected, state, consistent, size, dirty, inSync *prometheus.Desc
	replicated, resync, resyncRemaining, resyncRate, lagBytes  *prometheus.Desc
	lagSeconds, rejected, splitBrains, bitmapSyncs, hotExtents *prometheus.Desc

	read   func() []MirrorSample
	writes *prometheus.HistogramVec

	// mu serializes reads: two scrapes at once ask the engines once each.
	mu sync.Mutex
}

// RegisterMirrors exports the mirror disks as read by read at each scrape:
// the vigil_mirror_* families but vigil_mirror_write_duration_seconds,
// which ObserveMirrorWrite feeds. read must return quickly and list each
// disk once; a disk listed again is ignored. Call it once.
func (m *Metrics) RegisterMirrors(read func() []MirrorSample) {
	if m == nil {
		return
	}
	cl := prometheus.Labels{"cluster": m.cluster, "server": m.server}
	disk := []string{"disk"}
	desc := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, cl)
	}
	m.register(m.reg, &mirrorCollector{
		primary:         desc("vigil_mirror_primary", "Whether this node is the mirror disk's primary, the one that writes it (1), or its secondary (0).", disk),
		connected:       desc("vigil_mirror_connected", "Whether the mirror connect to the peer is up (1) or not (0).", disk),
		state:           desc("vigil_mirror_state", "The mirror disk's connection state: 1 for the current state (standalone, connecting, resyncing, connected, splitbrain), 0 for the others.", []string{"disk", "state"}),
		consistent:      desc("vigil_mirror_consistent", "Whether this node's copy of the data is consistent (1), or a resync into it was interrupted (0).", disk),
		size:            desc("vigil_mirror_size_bytes", "Size of the replicated volume.", disk),
		dirty:           desc("vigil_mirror_dirty_bytes", "Volume the dirty bitmap marks as differing from the peer: what a resync will copy.", disk),
		inSync:          desc("vigil_mirror_in_sync_ratio", "Share of the volume in sync with the peer, from 0 to 1.", disk),
		replicated:      desc("vigil_mirror_replicated_bytes_total", "Bytes of writes sent to the peer.", disk),
		resync:          desc("vigil_mirror_resync_bytes_total", "Bytes copied to or from the peer by resyncs.", disk),
		resyncRemaining: desc("vigil_mirror_resync_remaining_bytes", "Bytes the current resync still has to copy; 0 when none runs.", disk),
		resyncRate:      desc("vigil_mirror_resync_rate_bytes_per_second", "The current resync's copy rate.", disk),
		lagBytes:        desc("vigil_mirror_lag_bytes", "Async writes queued to the peer or not yet acknowledged by it.", disk),
		lagSeconds:      desc("vigil_mirror_lag_seconds", "Age of the oldest async write the peer has not yet acknowledged; 0 when none.", disk),
		rejected:        desc("vigil_mirror_frames_rejected_total", "Frames from the peer the mirror connect refused, by reason.", []string{"disk", "reason"}),
		splitBrains:     desc("vigil_mirror_splitbrain_total", "Connections to the peer that found diverged data (split brain): nothing was merged.", disk),
		bitmapSyncs:     desc("vigil_mirror_bitmap_syncs_total", "Writes that waited for a write-ahead sync of the dirty bitmap: their 4 MiB activity extent was cold (DRBD's al-writes).", disk),
		hotExtents:      desc("vigil_mirror_hot_extents", "Activity extents kept hot on the cluster partition, whose writes need no bitmap sync: a crash of this node resyncs them whole.", disk),
		read:            read,
		writes:          m.mirrorWrites,
	})
}

// ObserveMirrorWrite records one write to disk that took d to complete. It
// is cheap enough for every write: each disk's histogram is looked up once.
func (m *Metrics) ObserveMirrorWrite(disk string, d time.Duration) {
	if m == nil {
		return
	}
	o, ok := m.mirrorObs.Load(disk)
	if !ok {
		o, _ = m.mirrorObs.LoadOrStore(disk, m.mirrorWrites.WithLabelValues(labelValue(disk)))
	}
	o.(prometheus.Observer).Observe(d.Seconds())
}

// Describe implements prometheus.Collector.
func (c *mirrorCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.primary, c.connected, c.state, c.consistent, c.size, c.dirty, c.inSync,
		c.replicated, c.resync, c.resyncRemaining, c.resyncRate, c.lagBytes,
		c.lagSeconds, c.rejected, c.splitBrains, c.bitmapSyncs, c.hotExtents,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *mirrorCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	samples := c.read()
	c.mu.Unlock()
	seen := make(map[string]bool, len(samples))
	for _, s := range samples {
		disk := labelValue(s.Disk)
		if seen[disk] {
			continue
		}
		seen[disk] = true
		// A disk without writes yet still shows an empty histogram.
		c.writes.WithLabelValues(disk)

		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- constMetric(d, prometheus.GaugeValue, v, append([]string{disk}, labels...)...)
		}
		counter := func(d *prometheus.Desc, v uint64, labels ...string) {
			ch <- constMetric(d, prometheus.CounterValue, float64(v), append([]string{disk}, labels...)...)
		}
		gauge(c.primary, boolValue(s.Primary))
		gauge(c.connected, boolValue(s.Connected))
		state := normalizeMirrorState(s.State)
		for _, st := range mirrorStates {
			gauge(c.state, boolValue(st == state), st)
		}
		gauge(c.consistent, boolValue(s.Consistent))
		gauge(c.size, float64(s.SizeBytes))
		gauge(c.dirty, float64(s.DirtyBytes))
		gauge(c.inSync, inSyncRatio(s.SizeBytes, s.DirtyBytes))
		counter(c.replicated, s.ReplicatedBytes)
		counter(c.resync, s.ResyncBytes)
		gauge(c.resyncRemaining, float64(s.ResyncRemaining))
		gauge(c.resyncRate, max(s.ResyncRate, 0))
		gauge(c.lagBytes, float64(s.LagBytes))
		gauge(c.lagSeconds, max(s.LagSeconds, 0))
		reasons := make([]string, 0, len(s.Rejected))
		for r := range s.Rejected {
			reasons = append(reasons, r)
		}
		slices.Sort(reasons)
		for _, r := range reasons {
			counter(c.rejected, s.Rejected[r], labelValue(r))
		}
		counter(c.splitBrains, s.SplitBrains)
		counter(c.bitmapSyncs, s.BitmapSyncs)
		gauge(c.hotExtents, float64(s.HotExtents))
	}
}

// constMetric is prometheus.NewConstMetric, with an invalid metric that
// fails the scrape's gathering instead of a panic when it errs.
func constMetric(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) prometheus.Metric {
	mt, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(d, err)
	}
	return mt
}

// normalizeMirrorState maps an engine's state name to a value of
// mirrorStates ("split-brain" and "SplitBrain" to "splitbrain"), or "" when
// it is none of them.
func normalizeMirrorState(s string) string {
	s = strings.ToLower(strings.NewReplacer("-", "", "_", "", " ", "").Replace(s))
	if slices.Contains(mirrorStates, s) {
		return s
	}
	return ""
}

// inSyncRatio is the share of a volume of size bytes that is not dirty. An
// empty volume is in sync when nothing is dirty.
func inSyncRatio(size, dirty uint64) float64 {
	if size == 0 {
		return boolValue(dirty == 0)
	}
	return float64(size-min(dirty, size)) / float64(size)
}
