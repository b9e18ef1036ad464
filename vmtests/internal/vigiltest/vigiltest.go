// Package vigiltest runs vigild and vigilctl for the VM suites' tests: it
// finds the binaries (built on the host and named by VIGILD_BIN and
// VIGILCTL_BIN in a VM, built with the go command elsewhere), starts
// daemons, reads vigilctl status --json and scrapes metrics.
package vigiltest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/control/api"
)

// Binaries returns the paths of vigild and vigilctl: those VIGILD_BIN and
// VIGILCTL_BIN name, else fresh builds (which need the go command).
func Binaries(t testing.TB) (vigild, vigilctl string) {
	t.Helper()
	get := func(env, pkg string) string {
		if p := os.Getenv(env); p != "" {
			return p
		}
		out := filepath.Join(t.TempDir(), filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", out, "github.com/vigil-ha/vigil/"+pkg)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s (or set %s): %v\n%s", pkg, env, err, b)
		}
		return out
	}
	return get("VIGILD_BIN", "cmd/vigild"), get("VIGILCTL_BIN", "cmd/vigilctl")
}

// Daemon is a running vigild.
type Daemon struct {
	Name   string
	Socket string
	cmd    *exec.Cmd
	log    *SyncBuffer
}

// Start starts vigild with the configuration file cfg as server name; the
// control socket is in dir. spawn starts the command (in a network
// namespace, say); nil means cmd.Start. The daemon is stopped with SIGTERM
// when the test ends, and its log shown if the test failed.
func Start(t testing.TB, vigild, cfg, name, dir string, spawn func(*exec.Cmd) error) *Daemon {
	t.Helper()
	d := &Daemon{Name: name, Socket: filepath.Join(dir, name+".sock"), log: &SyncBuffer{}}
	d.cmd = exec.Command(vigild, "-config", cfg, "-server", name, "-socket", d.Socket, "-log-level", "info")
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if spawn == nil {
		spawn = (*exec.Cmd).Start
	}
	if err := spawn(d.cmd); err != nil {
		t.Fatalf("start vigild %s: %v", name, err)
	}
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { d.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			d.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("vigild %s log:\n%s", name, d.log.String())
		}
	})
	return d
}

// Log is what the daemon printed so far.
func (d *Daemon) Log() string { return d.log.String() }

// Status runs vigilctl status --json against the daemon.
func Status(vigilctl, socket string) (api.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, vigilctl, "--socket", socket, "status", "--json")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return api.Status{}, fmt.Errorf("vigilctl status: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var s api.Status
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		return api.Status{}, fmt.Errorf("vigilctl status --json: %w", err)
	}
	return s, nil
}

// Eventually polls cond until it holds or timeout passes, and fails the
// test with what otherwise.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Scrape fetches http://addr/metrics over a connection dial makes (inside
// a network namespace, say; nil means net.Dial).
func Scrape(addr string, dial func(network, addr string) (net.Conn, error)) (string, error) {
	if dial == nil {
		dial = net.Dial
	}
	conn, err := dial("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("scrape %s: %w", addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET /metrics HTTP/1.0\r\nHost: vigil\r\n\r\n"); err != nil {
		return "", fmt.Errorf("scrape %s: %w", addr, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", fmt.Errorf("scrape %s: %w", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// Sum adds the values of every sample of metric name whose labels contain
// every fragment; a metric with no sample sums to 0.
func Sum(text, name string, fragments ...string) float64 {
	var total float64
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := sc.Text()
		rest, ok := strings.CutPrefix(l, name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		match := true
		for _, f := range fragments {
			match = match && strings.Contains(rest, f)
		}
		if !match {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(l[strings.LastIndexByte(l, ' ')+1:], &v); err == nil {
			total += v
		}
	}
	return total
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers:
// a daemon's log.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
