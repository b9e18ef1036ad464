package harness

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Package is what one Go package's tests need in a VM.
type Package struct {
	// Path is the package relative to the module root
	// ("./dataplane/xdpheartbeat").
	Path string
	// Modules are the kernel modules its tests need, by name; their
	// dependencies come from the kernel's modules.dep.
	Modules []string
	// Tools are host programs its tests run ("ip"), copied with their
	// shared libraries; names are looked up in PATH.
	Tools []string
	// Binaries are programs of this module built on the host and put in
	// the VM; the tests find each through an environment variable.
	Binaries []Binary
	// Env is added to the test binary's environment.
	Env []string
	// Skips are the tests expected to skip in the VM, each with its
	// reason. Under CI=true any other skip fails the suite.
	Skips []Skip
	// Exclude are tests the harness does not run (-test.skip), each with
	// its reason; they are listed in the report.
	Exclude []Skip
}

// Binary is a program built from this module for the VM.
type Binary struct {
	// Path is its package ("./cmd/vigild").
	Path string
	// Env is the variable that gives the test its path in the VM
	// ("VIGILD_BIN").
	Env string
}

// Skip is a test that skips, or is not run, in the VM, and why.
type Skip struct {
	// Test is the test's full name as go test prints it, subtests after
	// slashes ("TestDaemonNPResolution/active's_link_lost").
	Test string
	// Because is text the skip message contains, and the reason the
	// report gives.
	Because string
	// KernelBelow, when set ("6.6"), limits the expectation to kernels
	// older than that version: on a newer kernel the test must run.
	KernelBelow string
}

// Suite is a set of packages whose tests run in one boot: of one VM, or of
// two VMs joined by a link.
type Suite struct {
	// Name names the suite on the command line and in reports.
	Name string
	// Doc says in a line what the suite checks.
	Doc string
	// Packages are tested one after the other, in this order.
	Packages []Package
	// VMs is the number of VMs: 1, or 2 for the two-VM topology, where
	// every VM runs every package and eth0 joins the VMs (EnvIndex tells
	// a test which VM it is in).
	VMs int
	// Timeout bounds the boot; the VM is killed past it.
	Timeout time.Duration
	// MemoryMB is each VM's memory; 1024 when zero.
	MemoryMB int
}

// tcxSkip is the skip internal/bpftest.RequireTCX makes on kernels
// without tcx.
func tcxSkip(test string) Skip {
	return Skip{Test: test, Because: "has no tcx (6.6+)", KernelBelow: "6.6"}
}

// The packages the suites run, with what each needs.
var (
	pkgXDPHeartbeat = Package{
		Path:    "./dataplane/xdpheartbeat",
		Modules: []string{"veth"},
		Skips:   []Skip{tcxSkip("TestLinkLoss")},
	}
	pkgHeartbeat = Package{
		Path:    "./dataplane/heartbeat",
		Modules: []string{"veth"},
	}
	pkgVIPAcct = Package{
		Path:    "./dataplane/vipacct",
		Modules: []string{"veth"},
		Skips:   []Skip{tcxSkip("TestCountsAndArming")},
	}
	pkgVigild = Package{
		Path:     "./cmd/vigild",
		Modules:  []string{"veth", "bridge"},
		Tools:    []string{"ip"},
		Binaries: []Binary{{Path: "./cmd/vigild", Env: "VIGILD_BIN"}},
		Exclude: []Skip{{
			Test:        "TestDaemonNPResolution/active's_link_lost",
			Because:     "cuts the link with internal/bpftest.DropAll, a tcx program (6.6+), and fails rather than skips without tcx",
			KernelBelow: "6.6",
		}},
	}
	pkgNetem = Package{
		Path:     "./vmtests/netem",
		Modules:  []string{"veth", "sch_netem"},
		Binaries: []Binary{{Path: "./cmd/vigild", Env: "VIGILD_BIN"}, {Path: "./cmd/vigilctl", Env: "VIGILCTL_BIN"}},
	}
	pkgTwoVM = Package{
		Path:     "./vmtests/twovm",
		Binaries: []Binary{{Path: "./cmd/vigild", Env: "VIGILD_BIN"}, {Path: "./cmd/vigilctl", Env: "VIGILCTL_BIN"}},
	}
	// pkgNBD is the mirror disk's NBD frontend: its vmtest-tagged tests
	// export files as /dev/nbdN and put ext4 on them (mke2fs, busybox
	// mount, e2fsck).
	pkgNBD = Package{
		Path:    "./replicator/nbd",
		Modules: []string{"nbd"},
		Tools:   []string{"mke2fs", "e2fsck"},
	}
	// pkgMirror is the mirror disk end to end: two vigild nodes in
	// network namespaces replicate a file partition and expose it as
	// /dev/nbdN with ext4 on it (vigild runs mkfs.ext4; the test runs
	// e2fsck), move it, fail over, resync, and run over netem.
	pkgMirror = Package{
		Path:     "./vmtests/mirror",
		Modules:  []string{"veth", "nbd", "sch_netem"},
		Tools:    []string{"mkfs.ext4", "e2fsck"},
		Binaries: []Binary{{Path: "./cmd/vigild", Env: "VIGILD_BIN"}, {Path: "./cmd/vigilctl", Env: "VIGILCTL_BIN"}},
	}
	// pkgDRBD is the DRBD 8.4 baseline (drbd.ko of the same kernel, set
	// up with drbd-utils' 8.4 tools on loop devices) and, as a benchmark
	// (make bench-vm), the same workloads on Vigil's /dev/nbdN.
	pkgDRBD = Package{
		Path:     "./vmtests/drbd",
		Modules:  []string{"veth", "loop", "drbd", "nbd"},
		Tools:    []string{"/usr/lib/drbd/drbdsetup-84", "drbdmeta"},
		Binaries: []Binary{{Path: "./cmd/vigild", Env: "VIGILD_BIN"}, {Path: "./cmd/vigilctl", Env: "VIGILCTL_BIN"}},
	}
)

// Suites are what make vmtest runs, in this order. A new suite (the
// mirror disk's NBD and DRBD ones) is one more entry: its packages, the
// modules and tools they need, and the skips it expects. The timeouts add
// up to the VM stage's budget of 15 minutes; a run takes a few.
var Suites = []Suite{
	{
		Name:     "ebpf",
		Doc:      "the dataplane's eBPF programs load, attach and pass the heartbeat tests; vigild's integration tests",
		Packages: []Package{pkgXDPHeartbeat, pkgHeartbeat, pkgVIPAcct, pkgVigild},
		Timeout:  8 * time.Minute,
	},
	{
		Name:     "netem",
		Doc:      "two nodes on a cross-AZ-like link (netem delay 1ms 0.3ms loss 1%), profile cross-az: no false failover",
		Packages: []Package{pkgNetem},
		Timeout:  4 * time.Minute,
	},
	{
		Name:     "two-vm",
		Doc:      "two VMs joined by qemu -netdev socket: ping and vigild heartbeats between two kernels",
		Packages: []Package{pkgTwoVM},
		VMs:      2,
		Timeout:  3 * time.Minute,
		MemoryMB: 768,
	},
	{
		Name:     "nbd",
		Doc:      "the mirror disk's NBD frontend: files exported as /dev/nbdN over socketpairs, ext4 made, mounted, checked; O_DIRECT, FUA, discard; Close while mounted or held open; a crashed export's leftover device cleaned up",
		Packages: []Package{pkgNBD},
		Timeout:  5 * time.Minute,
	},
	{
		Name:     "mirror",
		Doc:      "the mirror disk end to end: two vigild nodes, /dev/nbdN with ext4, move, SIGKILL failover with journal replay, resync, verify, fsck; then sync mode on a netem cross-AZ link",
		Packages: []Package{pkgMirror},
		Timeout:  8 * time.Minute,
		MemoryMB: 1024,
	},
	{
		Name:     "drbd",
		Doc:      "the DRBD 8.4 baseline (protocol C between two loop devices across a veth): connects, syncs, a write on the primary reads back on the secondary",
		Packages: []Package{pkgDRBD},
		Timeout:  2 * time.Minute,
	},
}

// FindSuite returns the suite named name.
func FindSuite(name string) (Suite, error) {
	var names []string
	for _, s := range Suites {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return Suite{}, fmt.Errorf("no suite %q (have %s)", name, strings.Join(names, ", "))
}

// FindPackage returns what package path (module-relative, "./x/y") needs,
// from the suites that run it; a package no suite names needs nothing
// special.
func FindPackage(path string) Package {
	for _, s := range Suites {
		for _, p := range s.Packages {
			if p.Path == path {
				return p
			}
		}
	}
	return Package{Path: path}
}

// skipPattern returns the -test.skip pattern that leaves out exactly the
// tests of ex, or "" for none. Go matches a pattern level by level (split
// at slashes), so the tests must have the same depth and differ at one
// level only.
func skipPattern(ex []Skip) (string, error) {
	if len(ex) == 0 {
		return "", nil
	}
	var levels [][]string
	for _, s := range ex {
		parts := strings.Split(s.Test, "/")
		if levels == nil {
			levels = make([][]string, len(parts))
		}
		if len(parts) != len(levels) {
			return "", fmt.Errorf("excluded tests %q: all must have the same depth", s.Test)
		}
		for i, p := range parts {
			levels[i] = append(levels[i], "^"+regexp.QuoteMeta(p)+"$")
		}
	}
	out := make([]string, len(levels))
	wide := 0
	for i, alts := range levels {
		alts = dedupe(alts)
		if len(alts) == 1 {
			out[i] = alts[0]
			continue
		}
		// (A|B)/(x|y) would also leave out A/y.
		if wide++; wide > 1 {
			return "", fmt.Errorf("excluded tests %v: they may differ at one level only", ex)
		}
		out[i] = "(" + strings.Join(alts, "|") + ")"
	}
	return strings.Join(out, "/"), nil
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
