package harness

import (
	"fmt"
	"strconv"
	"strings"
)

// kernelVersion parses the major and minor numbers of a release or version
// ("6.1.0-56-cloud-amd64", "6.6").
func kernelVersion(s string) (int, int, error) {
	f := strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' })
	if len(f) < 2 {
		return 0, 0, fmt.Errorf("kernel version %q: want MAJOR.MINOR", s)
	}
	major, err1 := strconv.Atoi(f[0])
	minor, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("kernel version %q: want MAJOR.MINOR", s)
	}
	return major, minor, nil
}

// holds reports whether s applies to kernel release: always without
// KernelBelow, else when the release is older.
func (s Skip) holds(release string) bool {
	if s.KernelBelow == "" {
		return true
	}
	rM, rm, err := kernelVersion(release)
	if err != nil {
		return false
	}
	bM, bm, err := kernelVersion(s.KernelBelow)
	if err != nil {
		return false
	}
	return rM < bM || rM == bM && rm < bm
}

// applicable returns the entries of skips that hold for release.
func applicable(skips []Skip, release string) []Skip {
	var out []Skip
	for _, s := range skips {
		if s.holds(release) {
			out = append(out, s)
		}
	}
	return out
}

// skipped is a test that skipped, with what it said.
type skipped struct {
	Test    string
	Message string
}

// classifySkips sorts the skips of pkg's tests on kernel release into
// those the package expects (a Skip naming the test, whose Because the
// message contains, that holds for the kernel) and the others.
func classifySkips(pkg Package, release string, got []skipped) (expected, unexpected []skipped) {
	for _, g := range got {
		ok := false
		for _, s := range applicable(pkg.Skips, release) {
			if s.Test == g.Test && strings.Contains(g.Message, s.Because) {
				ok = true
				break
			}
		}
		if ok {
			expected = append(expected, g)
		} else {
			unexpected = append(unexpected, g)
		}
	}
	return expected, unexpected
}

// skipMessage extracts the reason from a skipped test's output: its lines
// but the "=== RUN" and "--- SKIP" ones, trimmed and joined.
func skipMessage(output string) string {
	var parts []string
	for _, l := range strings.Split(output, "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		parts = append(parts, t)
	}
	return strings.Join(parts, " ")
}
