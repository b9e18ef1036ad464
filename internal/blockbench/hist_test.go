package blockbench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// exactQuantile is the nearest-rank q-quantile of sorted values.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	return sorted[Rank(q, uint64(len(sorted)))-1]
}

func TestRank(t *testing.T) {
	for _, c := range []struct {
		q    float64
		n    uint64
		want uint64
	}{
		{0.5, 1, 1},
		{0.5, 2, 1},
		{0.5, 3, 2},
		{0.5, 4, 2},
		{0.99, 100, 99},
		{0.99, 101, 100},
		{0.999, 1000, 999},
		{0.29, 100, 29}, // 0.29*100 is 29.000000000000004 in float64
		{0.9, 10, 9},
		{0, 10, 1},
		{-3, 10, 1},
		{math.NaN(), 10, 1},
		{1, 10, 10},
		{7, 10, 10},
		{0.5, 0, 0},
	} {
		if got := Rank(c.q, c.n); got != c.want {
			t.Errorf("Rank(%v, %d) = %d, want %d", c.q, c.n, got, c.want)
		}
	}
}

func TestBucketsTileTheRange(t *testing.T) {
	// Consecutive buckets are adjacent, each value's bucket holds it, and
	// a bucket is at most 1/128 of its lower bound wide.
	var prevHi uint64
	for i := range numBuckets {
		lo, hi := bucketBounds(i)
		if i > 0 && lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if hi < lo {
			t.Fatalf("bucket %d: [%d, %d]", i, lo, hi)
		}
		if lo >= exactLimit && float64(hi-lo+1) > float64(lo)/subBuckets {
			t.Fatalf("bucket %d [%d, %d] wider than 1/%d of its start", i, lo, hi, subBuckets)
		}
		for _, v := range []uint64{lo, hi, lo + (hi-lo)/2} {
			if b := bucketOf(v); b != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", v, b, i)
			}
		}
		prevHi = hi
	}
	if prevHi < math.MaxInt64 {
		t.Fatalf("buckets end at %d, below MaxInt64", prevHi)
	}
}

func TestHistogramEmpty(t *testing.T) {
	var h Histogram
	if h.Count() != 0 || h.Min() != 0 || h.Max() != 0 || h.Mean() != 0 || h.Quantile(0.99) != 0 {
		t.Fatalf("empty histogram: count %d min %v max %v mean %v p99 %v", h.Count(), h.Min(), h.Max(), h.Mean(), h.Quantile(0.99))
	}
	if s := h.Summarize().String(); s != "n=0" {
		t.Errorf("empty summary %q", s)
	}
	h.Merge(&Histogram{})
	h.Merge(nil)
	if h.Count() != 0 {
		t.Fatal("merging empty histograms added values")
	}
}

func TestHistogramSmallValuesAreExact(t *testing.T) {
	var h Histogram
	for v := range 200 {
		h.Record(time.Duration(v))
	}
	for _, q := range []float64{0.01, 0.25, 0.5, 0.9, 0.99} {
		want := time.Duration(Rank(q, 200) - 1)
		if got := h.Quantile(q); got != want {
			t.Errorf("Quantile(%v) = %v, want %v", q, got, want)
		}
	}
	if h.Mean() != 100 { // (0+199)/2 = 99.5, rounded half away from zero
		t.Errorf("Mean = %v, want 100ns", h.Mean())
	}
}

func TestHistogramSingleValue(t *testing.T) {
	var h Histogram
	h.Record(123456789 * time.Nanosecond)
	for _, q := range []float64{0, 0.5, 0.99, 1} {
		if got := h.Quantile(q); got != 123456789 {
			t.Errorf("Quantile(%v) = %v, want the only value (clamped to min/max)", q, got)
		}
	}
}

func TestHistogramNegativeIsZero(t *testing.T) {
	var h Histogram
	h.Record(-5 * time.Second)
	if h.Min() != 0 || h.Max() != 0 || h.Quantile(0.5) != 0 {
		t.Fatalf("negative duration recorded as min %v max %v", h.Min(), h.Max())
	}
}

func TestHistogramExtremes(t *testing.T) {
	var h Histogram
	h.Record(time.Duration(math.MaxInt64))
	h.Record(1)
	if h.Max() != time.Duration(math.MaxInt64) || h.Min() != 1 {
		t.Fatalf("min %v max %v", h.Min(), h.Max())
	}
	if got := h.Quantile(1); got != time.Duration(math.MaxInt64) {
		t.Errorf("Quantile(1) = %v", got)
	}
	if got := h.Quantile(0.5); got != 1 {
		t.Errorf("Quantile(0.5) = %v, want 1ns", got)
	}
}

// TestHistogramQuantilesAgainstExact compares quantiles with the exact
// nearest-rank order statistics of log-normal latencies (a few µs to tens
// of ms), for several sample sizes.
func TestHistogramQuantilesAgainstExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 7, 100, 1000, 100000} {
		var h Histogram
		vals := make([]time.Duration, n)
		var sum float64
		for i := range vals {
			v := time.Duration(math.Exp(rng.NormFloat64()*1.5 + math.Log(150e3)))
			vals[i] = v
			sum += float64(v)
			h.Record(v)
		}
		slices.Sort(vals)
		for _, q := range []float64{0, 0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 1} {
			want := exactQuantile(vals, q)
			got := h.Quantile(q)
			if diff := math.Abs(float64(got - want)); diff > float64(want)*MaxRelativeError {
				t.Errorf("n=%d q=%v: got %v, exact %v (relative error %.4f > %.4f)", n, q, got, want, diff/float64(want), MaxRelativeError)
			}
		}
		if h.Min() != vals[0] || h.Max() != vals[n-1] || h.Count() != uint64(n) {
			t.Errorf("n=%d: min %v max %v count %d, want %v %v %d", n, h.Min(), h.Max(), h.Count(), vals[0], vals[n-1], n)
		}
		if mean := time.Duration(math.Round(sum / float64(n))); h.Mean() != mean {
			t.Errorf("n=%d: mean %v, want %v", n, h.Mean(), mean)
		}
	}
}

func TestHistogramMergeEqualsOne(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var all, a, b Histogram
	for i := range 5000 {
		v := time.Duration(rng.Int64N(int64(10 * time.Millisecond)))
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	if m.Summarize() != all.Summarize() {
		t.Fatalf("merged %+v\nwant   %+v", m.Summarize(), all.Summarize())
	}
}

func TestPercentileIsQuantile(t *testing.T) {
	var h Histogram
	for v := range 1000 {
		h.Record(time.Duration(v) * time.Microsecond)
	}
	if h.Percentile(99) != h.Quantile(0.99) || h.Percentile(50) != h.Quantile(0.5) {
		t.Fatal("Percentile(p) differs from Quantile(p/100)")
	}
	// 1000 values 0..999 µs: p99 is the 990th, 989 µs, within 0.4 %.
	if got, want := h.Percentile(99), 989*time.Microsecond; math.Abs(float64(got-want)) > float64(want)*MaxRelativeError {
		t.Fatalf("p99 = %v, want about %v", got, want)
	}
}

func TestRates(t *testing.T) {
	if got := MBps(500e6, 2*time.Second); got != 250 {
		t.Errorf("MBps(500e6, 2s) = %v, want 250", got)
	}
	if got := MBps(1, 0); got != 0 {
		t.Errorf("MBps over zero time = %v, want 0", got)
	}
	if got := PerSecond(9000, 1500*time.Millisecond); got != 6000 {
		t.Errorf("PerSecond(9000, 1.5s) = %v, want 6000", got)
	}
	if got := PerSecond(5, -time.Second); got != 0 {
		t.Errorf("PerSecond over negative time = %v, want 0", got)
	}
	if r := (SeqResult{Bytes: 1 << 30, Elapsed: time.Second}); r.MBps() != 1073.741824 {
		t.Errorf("SeqResult.MBps = %v", r.MBps())
	}
	if r := (RandResult{Writes: 100, Elapsed: 10 * time.Millisecond}); r.IOPS() != 10000 {
		t.Errorf("RandResult.IOPS = %v", r.IOPS())
	}
}

func TestMicros(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                      "0.0",
		1500 * time.Nanosecond: "1.5",
		99940:                  "99.9",
		150 * time.Microsecond: "150",
		12345678:               "12346",
	} {
		if got := Micros(d); got != want {
			t.Errorf("Micros(%v) = %q, want %q", d, got, want)
		}
	}
}

// BenchmarkRecord is the cost of recording one latency.
func BenchmarkRecord(b *testing.B) {
	var h Histogram
	v := time.Duration(1)
	for b.Loop() {
		h.Record(v)
		v = v*3 + 7&0xffffff
	}
}
