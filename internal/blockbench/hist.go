package blockbench

import (
	"fmt"
	"math"
	"math/bits"
	"time"
)

// Histogram geometry: values below exactLimit nanoseconds have a bucket
// each; above, every power of two is split into subBuckets buckets of
// equal width, so a bucket is at most 1/subBuckets of its lower bound
// wide, and a quantile read from its midpoint is within 1/(2*subBuckets)
// (0.4 %) of a value recorded in it.
const (
	subBits    = 7
	subBuckets = 1 << subBits // 128
	exactLimit = 2 * subBuckets
	// numBuckets covers every nonnegative int64.
	numBuckets = exactLimit + (63-subBits-1)*subBuckets
)

// MaxRelativeError bounds how far a Histogram's quantile may be from the
// exact order statistic, relative to it. Values below 256 ns are exact.
const MaxRelativeError = 1.0 / (2 * subBuckets)

// Histogram records durations in log-linear buckets: exact below 256 ns,
// then 128 buckets per power of two. Recording is a few instructions and
// never allocates after the first; quantiles have a relative error of at
// most MaxRelativeError. Count, Min, Max and Mean are exact. The zero
// value is an empty histogram. A Histogram is not safe for concurrent
// use: give each goroutine its own and Merge them.
type Histogram struct {
	counts []uint64
	n      uint64
	sum    float64 // nanoseconds; float64 so that it never overflows
	min    int64
	max    int64
}

// bucketOf returns the bucket index of v >= 0.
func bucketOf(v uint64) int {
	if v < exactLimit {
		return int(v)
	}
	shift := bits.Len64(v) - (subBits + 1) // >= 1; v>>shift is in [subBuckets, 2*subBuckets)
	return exactLimit + (shift-1)*subBuckets + int(v>>shift) - subBuckets
}

// bucketBounds returns the smallest and the largest value of bucket i.
func bucketBounds(i int) (lo, hi uint64) {
	if i < exactLimit {
		return uint64(i), uint64(i)
	}
	k := i - exactLimit
	shift := uint(k/subBuckets + 1)
	m := uint64(k%subBuckets + subBuckets)
	return m << shift, (m+1)<<shift - 1
}

// Record adds one duration. A negative duration counts as zero.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	if h.counts == nil {
		h.counts = make([]uint64, numBuckets)
	}
	h.counts[bucketOf(uint64(v))]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if h.n == 0 || v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds every duration recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint64, numBuckets)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if h.n == 0 || o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of durations recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Min returns the smallest duration recorded, 0 when empty.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Max returns the largest duration recorded, 0 when empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the mean duration, 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(math.Round(h.sum / float64(h.n)))
}

// Quantile returns the q-quantile (q in [0, 1]) by the nearest-rank
// method: the smallest recorded value such that at least q of all values
// are at or below it, read from the midpoint of its bucket and kept within
// [Min, Max]. Quantile(0) is Min, Quantile(1) is Max. q outside [0, 1] is
// clamped; NaN counts as 0. An empty histogram gives 0.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if math.IsNaN(q) || q <= 0 {
		return time.Duration(h.min)
	}
	if q >= 1 {
		return time.Duration(h.max)
	}
	rank := Rank(q, h.n)
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum < rank {
			continue
		}
		lo, hi := bucketBounds(i)
		v := int64(lo + (hi-lo)/2)
		return time.Duration(min(max(v, h.min), h.max))
	}
	return time.Duration(h.max) // not reached: cum ends at n >= rank
}

// Percentile returns the p-th percentile (p in [0, 100]); see Quantile.
func (h *Histogram) Percentile(p float64) time.Duration { return h.Quantile(p / 100) }

// Rank returns the 1-based rank of the q-quantile among n sorted values by
// the nearest-rank method: ceil(q*n), at least 1 and at most n. n must be
// positive; q outside [0, 1] is clamped and NaN counts as 0.
func Rank(q float64, n uint64) uint64 {
	if n == 0 {
		return 0
	}
	if math.IsNaN(q) || q <= 0 {
		return 1
	}
	if q >= 1 {
		return n
	}
	// A product a rounding error above an integer (0.29*100 is
	// 29.000000000000004 in float64) is taken as that integer.
	x := q * float64(n)
	r := math.Ceil(x - 1e-9*x)
	return min(max(uint64(r), 1), n)
}

// Summary is a histogram's figures for a report.
type Summary struct {
	N                   uint64
	Min, Mean, Max      time.Duration
	P50, P90, P99, P999 time.Duration
}

// Summarize returns the histogram's count, extremes, mean and the usual
// percentiles.
func (h *Histogram) Summarize() Summary {
	return Summary{
		N: h.n, Min: h.Min(), Mean: h.Mean(), Max: h.Max(),
		P50: h.Percentile(50), P90: h.Percentile(90), P99: h.Percentile(99), P999: h.Percentile(99.9),
	}
}

// String formats the summary in microseconds.
func (s Summary) String() string {
	if s.N == 0 {
		return "n=0"
	}
	return fmt.Sprintf("n=%d p50=%s p90=%s p99=%s p99.9=%s max=%s µs",
		s.N, Micros(s.P50), Micros(s.P90), Micros(s.P99), Micros(s.P999), Micros(s.Max))
}

// Micros formats d in microseconds: one decimal below 100 µs, none above.
func Micros(d time.Duration) string {
	us := float64(d) / float64(time.Microsecond)
	if us < 100 {
		return fmt.Sprintf("%.1f", us)
	}
	return fmt.Sprintf("%.0f", us)
}
