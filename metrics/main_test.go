package metrics

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if leaks := httpLeaks(5 * time.Second); code == 0 && len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s\n", leaks)
		code = 1
	}
	os.Exit(code)
}

// httpLeaks waits up to timeout for the goroutines of HTTP servers and
// connections to end, and returns the stacks of those left.
func httpLeaks(timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		var leaks []string
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "net/http.") && !strings.Contains(g, "metrics.httpLeaks") {
				leaks = append(leaks, g)
			}
		}
		if len(leaks) == 0 || time.Now().After(deadline) {
			return leaks
		}
		time.Sleep(20 * time.Millisecond)
	}
}
