package metrics

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// mirrorSamples is what a read function returns: a primary resyncing its
// peer, and a second disk in split brain.
func mirrorSamples() []MirrorSample {
	return []MirrorSample{
		{
			Disk: "md1", State: "resyncing", Primary: true, Connected: true, Consistent: true,
			SizeBytes: 1 << 30, DirtyBytes: 1 << 28, ReplicatedBytes: 5000, ResyncBytes: 3 << 20,
			ResyncRemaining: 1 << 28, LagBytes: 4096, ResyncRate: 2.5e8, LagSeconds: 0.125,
			Rejected: map[string]uint64{"replay": 2, "bad_mac": 1}, SplitBrains: 0,
			BitmapSyncs: 7, HotExtents: 256,
		},
		{Disk: "md2", State: "split-brain", Consistent: true, SizeBytes: 1 << 20, SplitBrains: 1},
	}
}

func TestMirrorFamilies(t *testing.T) {
	m := New("prod", "ip-1")
	m.RegisterMirrors(mirrorSamples)
	compare(t, m, `
# HELP vigil_mirror_primary Whether this node is the mirror disk's primary, the one that writes it (1), or its secondary (0).
# TYPE vigil_mirror_primary gauge
`+series("vigil_mirror_primary", `disk="md1"`, "1")+`
`+series("vigil_mirror_primary", `disk="md2"`, "0")+`
# HELP vigil_mirror_state The mirror disk's connection state: 1 for the current state (standalone, connecting, resyncing, connected, splitbrain), 0 for the others.
# TYPE vigil_mirror_state gauge
`+series("vigil_mirror_state", `disk="md1",state="standalone"`, "0")+`
`+series("vigil_mirror_state", `disk="md1",state="connecting"`, "0")+`
`+series("vigil_mirror_state", `disk="md1",state="resyncing"`, "1")+`
`+series("vigil_mirror_state", `disk="md1",state="connected"`, "0")+`
`+series("vigil_mirror_state", `disk="md1",state="splitbrain"`, "0")+`
`+series("vigil_mirror_state", `disk="md2",state="standalone"`, "0")+`
`+series("vigil_mirror_state", `disk="md2",state="connecting"`, "0")+`
`+series("vigil_mirror_state", `disk="md2",state="resyncing"`, "0")+`
`+series("vigil_mirror_state", `disk="md2",state="connected"`, "0")+`
`+series("vigil_mirror_state", `disk="md2",state="splitbrain"`, "1")+`
# HELP vigil_mirror_in_sync_ratio Share of the volume in sync with the peer, from 0 to 1.
# TYPE vigil_mirror_in_sync_ratio gauge
`+series("vigil_mirror_in_sync_ratio", `disk="md1"`, "0.75")+`
`+series("vigil_mirror_in_sync_ratio", `disk="md2"`, "1")+`
# HELP vigil_mirror_frames_rejected_total Frames from the peer the mirror connect refused, by reason.
# TYPE vigil_mirror_frames_rejected_total counter
`+series("vigil_mirror_frames_rejected_total", `disk="md1",reason="bad_mac"`, "1")+`
`+series("vigil_mirror_frames_rejected_total", `disk="md1",reason="replay"`, "2")+`
# HELP vigil_mirror_replicated_bytes_total Bytes of writes sent to the peer.
# TYPE vigil_mirror_replicated_bytes_total counter
`+series("vigil_mirror_replicated_bytes_total", `disk="md1"`, "5000")+`
`+series("vigil_mirror_replicated_bytes_total", `disk="md2"`, "0")+`
# HELP vigil_mirror_resync_rate_bytes_per_second The current resync's copy rate.
# TYPE vigil_mirror_resync_rate_bytes_per_second gauge
`+series("vigil_mirror_resync_rate_bytes_per_second", `disk="md1"`, "2.5e+08")+`
`+series("vigil_mirror_resync_rate_bytes_per_second", `disk="md2"`, "0")+`
# HELP vigil_mirror_lag_seconds Age of the oldest async write the peer has not yet acknowledged; 0 when none.
# TYPE vigil_mirror_lag_seconds gauge
`+series("vigil_mirror_lag_seconds", `disk="md1"`, "0.125")+`
`+series("vigil_mirror_lag_seconds", `disk="md2"`, "0")+`
# HELP vigil_mirror_splitbrain_total Connections to the peer that found diverged data (split brain): nothing was merged.
# TYPE vigil_mirror_splitbrain_total counter
`+series("vigil_mirror_splitbrain_total", `disk="md1"`, "0")+`
`+series("vigil_mirror_splitbrain_total", `disk="md2"`, "1")+`
# HELP vigil_mirror_bitmap_syncs_total Writes that waited for a write-ahead sync of the dirty bitmap: their 4 MiB activity extent was cold (DRBD's al-writes).
# TYPE vigil_mirror_bitmap_syncs_total counter
`+series("vigil_mirror_bitmap_syncs_total", `disk="md1"`, "7")+`
`+series("vigil_mirror_bitmap_syncs_total", `disk="md2"`, "0")+`
# HELP vigil_mirror_hot_extents Activity extents kept hot on the cluster partition, whose writes need no bitmap sync: a crash of this node resyncs them whole.
# TYPE vigil_mirror_hot_extents gauge
`+series("vigil_mirror_hot_extents", `disk="md1"`, "256")+`
`+series("vigil_mirror_hot_extents", `disk="md2"`, "0")+`
`, "vigil_mirror_primary", "vigil_mirror_state", "vigil_mirror_in_sync_ratio", "vigil_mirror_frames_rejected_total",
		"vigil_mirror_replicated_bytes_total", "vigil_mirror_resync_rate_bytes_per_second", "vigil_mirror_lag_seconds",
		"vigil_mirror_splitbrain_total", "vigil_mirror_bitmap_syncs_total", "vigil_mirror_hot_extents")

	// Every family the brief names, with its type.
	want := map[string]dto.MetricType{
		"vigil_mirror_primary":                      dto.MetricType_GAUGE,
		"vigil_mirror_connected":                    dto.MetricType_GAUGE,
		"vigil_mirror_state":                        dto.MetricType_GAUGE,
		"vigil_mirror_consistent":                   dto.MetricType_GAUGE,
		"vigil_mirror_size_bytes":                   dto.MetricType_GAUGE,
		"vigil_mirror_dirty_bytes":                  dto.MetricType_GAUGE,
		"vigil_mirror_in_sync_ratio":                dto.MetricType_GAUGE,
		"vigil_mirror_replicated_bytes_total":       dto.MetricType_COUNTER,
		"vigil_mirror_resync_bytes_total":           dto.MetricType_COUNTER,
		"vigil_mirror_resync_remaining_bytes":       dto.MetricType_GAUGE,
		"vigil_mirror_resync_rate_bytes_per_second": dto.MetricType_GAUGE,
		"vigil_mirror_lag_bytes":                    dto.MetricType_GAUGE,
		"vigil_mirror_lag_seconds":                  dto.MetricType_GAUGE,
		"vigil_mirror_write_duration_seconds":       dto.MetricType_HISTOGRAM,
		"vigil_mirror_frames_rejected_total":        dto.MetricType_COUNTER,
		"vigil_mirror_splitbrain_total":             dto.MetricType_COUNTER,
		"vigil_mirror_bitmap_syncs_total":           dto.MetricType_COUNTER,
		"vigil_mirror_hot_extents":                  dto.MetricType_GAUGE,
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]dto.MetricType{}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "vigil_mirror_") {
			got[mf.GetName()] = mf.GetType()
		}
	}
	for name, typ := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("%s missing", name)
		} else if g != typ {
			t.Errorf("%s is a %v, want a %v", name, g, typ)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s is not one of the mirror families", name)
		}
	}
	// The write histogram of a disk without writes is there, empty.
	if n := testutil.CollectAndCount(m.mirrorWrites); n != 2 {
		t.Errorf("%d write histograms, want one per disk", n)
	}
}

func TestMirrorWriteHistogram(t *testing.T) {
	m := New("prod", "ip-1")
	for _, d := range []time.Duration{15 * time.Microsecond, 30 * time.Microsecond, 3 * time.Millisecond, 2 * time.Second} {
		m.ObserveMirrorWrite("md1", d)
	}
	h := histogram(t, m, "vigil_mirror_write_duration_seconds")
	if h.GetSampleCount() != 4 {
		t.Errorf("count %d, want 4", h.GetSampleCount())
	}
	b := h.GetBucket()
	if first, last := b[0].GetUpperBound(), b[len(b)-1].GetUpperBound(); first != 20e-6 || last != 1 {
		t.Errorf("buckets from %v to %v, want 20µs to 1s", first, last)
	}
	for _, bk := range b {
		switch bk.GetUpperBound() {
		case 20e-6:
			if bk.GetCumulativeCount() != 1 {
				t.Errorf("le=20µs: %d, want 1", bk.GetCumulativeCount())
			}
		case 1:
			if bk.GetCumulativeCount() != 3 {
				t.Errorf("le=1s: %d, want 3 (2s is above)", bk.GetCumulativeCount())
			}
		}
	}
}

func TestMirrorStateNames(t *testing.T) {
	for in, want := range map[string]string{
		"standalone": "standalone", "StandAlone": "standalone", "connecting": "connecting",
		"resyncing": "resyncing", "connected": "connected", "split-brain": "splitbrain",
		"split_brain": "splitbrain", "SplitBrain": "splitbrain", "state(9)": "", "": "",
	} {
		if got := normalizeMirrorState(in); got != want {
			t.Errorf("normalizeMirrorState(%q) = %q, want %q", in, got, want)
		}
	}
	// A state outside the list sets every state to 0: no new series.
	m := New("prod", "ip-1")
	m.RegisterMirrors(func() []MirrorSample { return []MirrorSample{{Disk: "md1", State: "state(9)"}} })
	n, err := testutil.GatherAndCount(m.Registry(), "vigil_mirror_state")
	if err != nil {
		t.Fatal(err)
	}
	if n != len(mirrorStates) {
		t.Errorf("%d state series, want %d", n, len(mirrorStates))
	}
	for _, st := range mirrorStates {
		if v := sample(t, m, "vigil_mirror_state", `disk="md1"`, `state="`+st+`"`); v != 0 {
			t.Errorf("unknown state: %s = %v, want 0", st, v)
		}
	}
}

func TestMirrorInSyncRatio(t *testing.T) {
	for _, c := range []struct {
		size, dirty uint64
		want        float64
	}{
		{100, 0, 1}, {100, 25, 0.75}, {100, 100, 0}, {100, 300, 0}, {0, 0, 1}, {0, 5, 0},
	} {
		if got := inSyncRatio(c.size, c.dirty); got != c.want {
			t.Errorf("inSyncRatio(%d, %d) = %v, want %v", c.size, c.dirty, got, c.want)
		}
	}
}

func TestMirrorBadSamples(t *testing.T) {
	m := New("prod", "ip-1")
	m.RegisterMirrors(func() []MirrorSample {
		return []MirrorSample{
			{Disk: "md1", State: "connected", ResyncRate: -1, LagSeconds: -3},
			{Disk: "md1", State: "standalone"}, // listed twice: ignored
			{Disk: "bad\xff", State: "connected", Rejected: map[string]uint64{"x\xfe": 1}},
		}
	})
	if _, err := m.Registry().Gather(); err != nil {
		t.Fatalf("gather: %v", err)
	}
	if got := sample(t, m, "vigil_mirror_state", `disk="md1"`, `state="connected"`); got != 1 {
		t.Errorf("the first md1 sample should win: connected = %v", got)
	}
	if got := sample(t, m, "vigil_mirror_resync_rate_bytes_per_second", `disk="md1"`); got != 0 {
		t.Errorf("negative rate exposed as %v, want 0", got)
	}
}

func TestMirrorConcurrentScrapes(t *testing.T) {
	m := New("prod", "ip-1")
	var mu sync.Mutex
	reads := 0
	m.RegisterMirrors(func() []MirrorSample {
		mu.Lock()
		reads++
		mu.Unlock()
		return mirrorSamples()
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if _, err := m.Registry().Gather(); err != nil {
					t.Error(err)
					return
				}
				m.ObserveMirrorWrite("md1", time.Millisecond)
			}
		})
	}
	wg.Wait()
	if reads != 160 {
		t.Errorf("%d reads for 160 scrapes", reads)
	}
}

func TestMirrorRegisterTwiceReported(t *testing.T) {
	m := New("prod", "ip-1")
	m.RegisterMirrors(mirrorSamples)
	m.RegisterMirrors(mirrorSamples)
	if _, err := m.Registry().Gather(); err == nil {
		t.Error("a second RegisterMirrors went unnoticed")
	}
}

func BenchmarkObserveMirrorWrite(b *testing.B) {
	m := New("prod", "ip-1")
	b.Run("ObserveMirrorWrite", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.ObserveMirrorWrite("md1", 100*time.Microsecond)
			}
		})
	})
	// The baseline: a bare histogram, its child looked up beforehand.
	h := m.mirrorWrites.WithLabelValues("md0")
	b.Run("baseline-Histogram.Observe", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h.Observe((100 * time.Microsecond).Seconds())
			}
		})
	})
}
