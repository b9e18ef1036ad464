package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestSummary(t *testing.T) {
	lines := []string{
		"benchvm: round 1: drbd sequential 1 MiB QD4: 59.9 MB/s",
		"bench-vm: rand4k-p99-us drbd=1 vigil-sync=2",
		"bench-vm: seq-MBps drbd=60 vigil-sync=8",
		"bench-vm: rand4k-p99-us drbd=4104 vigil-sync=13140",
		"PASS",
		"ok  \tgithub.com/vigil-ha/vigil/vmtests/drbd\t78.482s",
	}
	got, err := summary(lines)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bench-vm: seq-MBps drbd=60 vigil-sync=8", "bench-vm: rand4k-p99-us drbd=4104 vigil-sync=13140"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("summary = %q, want %q", got, want)
	}
}

func TestSummaryMissing(t *testing.T) {
	for _, lines := range [][]string{
		nil,
		{"bench-vm: seq-MBps drbd=60 vigil-sync=8"},
		{"bench-vm: rand4k-p99-us drbd=4104 vigil-sync=13140", "FAIL"},
	} {
		if got, err := summary(lines); err == nil || !strings.Contains(err.Error(), "printed no") {
			t.Errorf("summary(%q) = %q, %v; want an error naming the missing line", lines, got, err)
		}
	}
}

func TestSplitArgs(t *testing.T) {
	own, bench := splitArgs([]string{"-exec", "x", "-benchvm.mib=64", "--benchvm.rounds", "-timeout=1m", "benchvm.x"})
	if want := []string{"-exec", "x", "-timeout=1m", "benchvm.x"}; !reflect.DeepEqual(own, want) {
		t.Errorf("own = %q, want %q", own, want)
	}
	if want := []string{"-benchvm.mib=64", "--benchvm.rounds"}; !reflect.DeepEqual(bench, want) {
		t.Errorf("bench = %q, want %q", bench, want)
	}
}

func TestCopyLines(t *testing.T) {
	var w bytes.Buffer
	lines, err := copyLines(&w, strings.NewReader("a\nb\n\nc"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "", "c"}; !reflect.DeepEqual(lines, want) {
		t.Errorf("lines = %q, want %q", lines, want)
	}
	if w.String() != "a\nb\n\nc\n" {
		t.Errorf("copied %q", w.String())
	}
}
