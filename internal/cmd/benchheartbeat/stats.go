package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// dist is a set of measurements in milliseconds.
type dist []float64

// ms converts a duration to milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pct returns the p-th percentile (0-100), interpolating linearly between
// the two nearest order statistics (R's type 7, numpy's default). An empty
// set gives NaN.
func (d dist) pct(p float64) float64 {
	if len(d) == 0 {
		return math.NaN()
	}
	s := slices.Clone(d)
	slices.Sort(s)
	h := (float64(len(s)) - 1) * p / 100
	lo := math.Floor(h)
	i := int(lo)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (h-lo)*(s[i+1]-s[i])
}

// max returns the largest value, NaN for an empty set.
func (d dist) max() float64 {
	if len(d) == 0 {
		return math.NaN()
	}
	return slices.Max(d)
}

// summary formats n, p50, p90, p99 and max with prec decimals.
func (d dist) summary(prec int) string {
	f := func(v float64) string { return fmtFloat(v, prec) }
	return fmt.Sprintf("n=%-6d p50=%-9s p90=%-9s p99=%-9s max=%-9s ms", len(d), f(d.pct(50)), f(d.pct(90)), f(d.pct(99)), f(d.max()))
}

// fmtFloat formats v with prec decimals, "n/a" for NaN.
func fmtFloat(v float64, prec int) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// fig formats a figure of the summary lines: milliseconds with one decimal.
func fig(v float64) string { return fmtFloat(v, 1) }
