package main

import (
	"bufio"
	"math"
	"slices"
	"strconv"
	"strings"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseProm parses the samples of a Prometheus text exposition; comments
// and lines it cannot read are skipped.
func parseProm(text string) []sample {
	var out []sample
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if s, ok := parseSample(line); ok {
			out = append(out, s)
		}
	}
	return out
}

// parseSample parses `name{k="v",...} value [timestamp]`.
func parseSample(line string) (sample, bool) {
	s := sample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return s, false
	}
	s.name = line[:i]
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, " ,")
			if rest == "" {
				return s, false
			}
			if rest[0] == '}' {
				rest = rest[1:]
				break
			}
			eq := strings.IndexByte(rest, '=')
			if eq <= 0 || eq+1 >= len(rest) || rest[eq+1] != '"' {
				return s, false
			}
			key := strings.TrimSpace(rest[:eq])
			rest = rest[eq+2:]
			var val strings.Builder
			j := 0
			for ; j < len(rest) && rest[j] != '"'; j++ {
				if rest[j] == '\\' && j+1 < len(rest) {
					j++
					switch rest[j] {
					case 'n':
						val.WriteByte('\n')
					default:
						val.WriteByte(rest[j])
					}
					continue
				}
				val.WriteByte(rest[j])
			}
			if j >= len(rest) {
				return s, false
			}
			s.labels[key] = val.String()
			rest = rest[j+1:]
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return s, false
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, false
	}
	s.value = v
	return s, true
}

// matches reports whether s carries every label in want.
func (s sample) matches(want map[string]string) bool {
	for k, v := range want {
		if s.labels[k] != v {
			return false
		}
	}
	return true
}

// sumOf adds the values of the samples named name that carry want.
func sumOf(ss []sample, name string, want map[string]string) float64 {
	var t float64
	for _, s := range ss {
		if s.name == name && s.matches(want) {
			t += s.value
		}
	}
	return t
}

// histogram is a cumulative Prometheus histogram: counts[i] observations
// at most bounds[i]; the last bound is +Inf.
type histogram struct {
	bounds []float64
	counts []float64
}

// histogramOf collects the buckets of histogram name among the samples
// carrying want, adding the series that match.
func histogramOf(ss []sample, name string, want map[string]string) histogram {
	byLE := map[float64]float64{}
	for _, s := range ss {
		if s.name != name+"_bucket" || !s.matches(want) {
			continue
		}
		le, err := strconv.ParseFloat(s.labels["le"], 64)
		if err != nil {
			continue
		}
		byLE[le] += s.value
	}
	var h histogram
	for le := range byLE {
		h.bounds = append(h.bounds, le)
	}
	slices.Sort(h.bounds)
	for _, le := range h.bounds {
		h.counts = append(h.counts, byLE[le])
	}
	return h
}

// count is the number of observations.
func (h histogram) count() float64 {
	if len(h.counts) == 0 {
		return 0
	}
	return h.counts[len(h.counts)-1]
}

// add returns h + o; a histogram without buckets takes the other's bounds.
func (h histogram) add(o histogram) histogram { return h.combine(o, 1) }

// sub returns h - o.
func (h histogram) sub(o histogram) histogram { return h.combine(o, -1) }

func (h histogram) combine(o histogram, sign float64) histogram {
	if len(h.bounds) == 0 {
		r := histogram{bounds: slices.Clone(o.bounds), counts: slices.Clone(o.counts)}
		for i := range r.counts {
			r.counts[i] *= sign
		}
		return r
	}
	r := histogram{bounds: slices.Clone(h.bounds), counts: slices.Clone(h.counts)}
	if len(o.bounds) == 0 {
		return r
	}
	for i, le := range r.bounds {
		if j := slices.Index(o.bounds, le); j >= 0 {
			r.counts[i] += sign * o.counts[j]
		}
	}
	return r
}

// quantile returns the q-quantile (0 < q < 1) the way PromQL's
// histogram_quantile does: the bucket holding rank q·count, interpolated
// linearly between its bounds (from 0 for the first). A rank in the +Inf
// bucket returns the highest finite bound and inInf. With no observations
// it returns NaN.
func (h histogram) quantile(q float64) (v float64, inInf bool) {
	n := h.count()
	if n <= 0 || len(h.bounds) < 2 {
		return math.NaN(), false
	}
	rank := q * n
	for i, c := range h.counts {
		if c < rank {
			continue
		}
		if math.IsInf(h.bounds[i], 1) {
			return h.bounds[i-1], true
		}
		lo, below := 0.0, 0.0
		if i > 0 {
			lo, below = h.bounds[i-1], h.counts[i-1]
		}
		in := c - below
		if in <= 0 {
			return h.bounds[i], false
		}
		return lo + (h.bounds[i]-lo)*(rank-below)/in, false
	}
	return h.bounds[len(h.bounds)-2], true
}

// bucketOf returns the bounds of the bucket holding v.
func (h histogram) bucketOf(v float64) (lo, hi float64) {
	for i, b := range h.bounds {
		if v <= b {
			if i > 0 {
				lo = h.bounds[i-1]
			}
			return lo, b
		}
	}
	return math.NaN(), math.NaN()
}
