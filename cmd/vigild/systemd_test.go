//go:build linux && !vmtest

package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The systemd unit of examples/, and its drop-in for mirror disks.
const (
	unitFile     = "../../examples/systemd/vigild.service"
	mirrorDropIn = "../../examples/systemd/vigild.service.d/mirror-disk.conf"
)

// unitValues returns every value of key in the unit file at path, in order.
func unitValues(t *testing.T, path, key string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") && k == key {
			out = append(out, v)
		}
	}
	return out
}

// TestSystemdUnitVerifies runs systemd-analyze verify on the unit and its
// drop-in, with ExecStart pointing at the vigild under test (verify checks
// that the program exists).
func TestSystemdUnitVerifies(t *testing.T) {
	sa := requireTool(t, "systemd-analyze")
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	text := strings.ReplaceAll(string(unit), "/usr/local/sbin/vigild", vigildBin)
	if text == string(unit) {
		t.Fatal("the unit does not run /usr/local/sbin/vigild")
	}
	if err := os.WriteFile(filepath.Join(dir, "vigild.service"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	dropIn, err := os.ReadFile(mirrorDropIn)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "vigild.service.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vigild.service.d", "mirror-disk.conf"), dropIn, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", "--man=no", filepath.Join(dir, "vigild.service")).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	// The choices the unit must keep.
	for key, want := range map[string]string{
		"Restart": "on-failure", "KillMode": "mixed", "NoNewPrivileges": "yes", "LimitMEMLOCK": "infinity",
	} {
		if got := unitValues(t, unitFile, key); !slices.Equal(got, []string{want}) {
			t.Errorf("%s=%q, want %s", key, got, want)
		}
	}
	caps := unitCaps(t, unitFile)
	for _, c := range []string{"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_BPF"} {
		if !slices.Contains(caps, c) {
			t.Errorf("the unit lacks %s", c)
		}
	}
	if slices.Contains(caps, "CAP_SYS_ADMIN") {
		t.Error("CAP_SYS_ADMIN belongs in the mirror disk's drop-in only")
	}
	if got := unitCaps(t, mirrorDropIn); !slices.Equal(got, []string{"CAP_SYS_ADMIN"}) {
		t.Errorf("the mirror disk's drop-in adds %q, want CAP_SYS_ADMIN", got)
	}
	// No option that gives the service its own mount namespace: the mirror
	// disk's mount must be seen by every process.
	for _, key := range []string{
		"ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateMounts", "ProtectKernelTunables",
		"ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock", "ProtectProc",
		"ProcSubset", "ReadOnlyPaths", "InaccessiblePaths", "TemporaryFileSystem", "MountFlags",
	} {
		if v := unitValues(t, unitFile, key); v != nil {
			t.Errorf("%s=%v gives vigild a mount namespace of its own", key, v)
		}
	}
}

// unitCaps returns the capabilities of every CapabilityBoundingSet line.
func unitCaps(t *testing.T, path string) []string {
	var caps []string
	for _, v := range unitValues(t, path, "CapabilityBoundingSet") {
		caps = append(caps, strings.Fields(v)...)
	}
	return caps
}

// setprivArgs turns the unit's capability bounding set and
// NoNewPrivileges into a setpriv command line, which gives a root process
// the same limits systemd would.
func setprivArgs(t *testing.T, caps []string) []string {
	t.Helper()
	set := "-all"
	for _, c := range caps {
		set += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	args := []string{requireTool(t, "setpriv"), "--bounding-set", set, "--inh-caps", "-all"}
	if slices.Equal(unitValues(t, unitFile, "NoNewPrivileges"), []string{"yes"}) {
		args = append(args, "--no-new-privs")
	}
	return append(args, "--")
}

// TestSystemdUnitCapabilitiesSuffice runs both daemons with exactly the
// unit's capabilities (as root, like the unit) and the kernel heartbeat
// required: XDP and TC programs load, the floating IP is bound, the NP
// target answers pings, and a failover completes. Without CAP_BPF the same
// daemon refuses to start, so the limits are really applied.
func TestSystemdUnitCapabilitiesSuffice(t *testing.T) {
	wrapper := setprivArgs(t, unitCaps(t, unitFile))
	c := newTestClusterWith(t, "mode: ebpf")
	cfg := filepath.Join(c.dir, "cluster.yaml")
	c.startWith(0, cfg, wrapper)
	c.startWith(1, cfg, wrapper)
	c.onlineOn(0, 0, 1)
	if !c.hasAddr(0) {
		t.Fatal("node1 online without the floating IP")
	}
	text := c.scrape(0)
	if metric(text, "vigil_heartbeat_mode", `mode="ebpf"`) != 1 {
		t.Errorf("node1 does not answer heartbeats in the kernel")
	}
	if metric(text, "vigil_vip_packets_total", `vip="198.18.0.100"`) < 0 {
		t.Errorf("node1 does not count VIP traffic: the TC program did not load")
	}
	for i, name := range c.names {
		log := c.logs[i].String()
		for _, bad := range []string{"no ICMP socket", "VIP traffic accounting unavailable", "operation not permitted"} {
			if strings.Contains(log, bad) {
				t.Errorf("%s's log says %q", name, bad)
			}
		}
	}
	c.kill(0)
	c.onlineOn(1, 1)
	if !c.hasAddr(1) {
		t.Fatal("node2 took over without the floating IP")
	}

	// The negative control: the unit's set without CAP_BPF.
	var noBPF []string
	for _, cp := range unitCaps(t, unitFile) {
		if cp != "CAP_BPF" {
			noBPF = append(noBPF, cp)
		}
	}
	c.startWith(0, cfg, setprivArgs(t, noBPF))
	c.mu.Lock()
	p, logs := c.procs[0], c.logs[0]
	c.procs[0] = nil
	c.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- p.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(logs.String(), "heartbeat mode ebpf") {
			t.Errorf("without CAP_BPF: exit %v, log:\n%s", err, logs)
		}
	case <-time.After(30 * time.Second):
		p.Process.Signal(syscall.SIGKILL)
		<-done
		t.Errorf("without CAP_BPF vigild started in mode ebpf:\n%s", logs)
	}
}
