package engine

import (
	"os"
	"runtime"
	"testing"
)

// TestSpareProcs: twice the CPUs, at least 4, never lower than before,
// and the GOMAXPROCS environment variable wins.
func TestSpareProcs(t *testing.T) {
	old := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(old)
	t.Setenv("GOMAXPROCS", "")
	os.Unsetenv("GOMAXPROCS")
	want := max(2*runtime.NumCPU(), 4)
	if got := SpareProcs(); got != want || runtime.GOMAXPROCS(0) != want {
		t.Fatalf("SpareProcs: %d, GOMAXPROCS %d; want %d", got, runtime.GOMAXPROCS(0), want)
	}
	runtime.GOMAXPROCS(want + 3)
	if got := SpareProcs(); got != want+3 {
		t.Fatalf("SpareProcs lowered GOMAXPROCS to %d", got)
	}
	runtime.GOMAXPROCS(1)
	t.Setenv("GOMAXPROCS", "1")
	if got := SpareProcs(); got != 1 || runtime.GOMAXPROCS(0) != 1 {
		t.Fatalf("with GOMAXPROCS=1 set: %d", got)
	}
}
