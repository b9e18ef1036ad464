//go:build linux && !vmtest

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// eventRe is what an event name looks like.
var eventRe = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func TestEventName(t *testing.T) {
	for msg, want := range map[string]string{
		"vip bound":        "vip_bound",
		"aws call failed":  "aws_call_failed",
		"metrics: serving": "metrics_serving",
		"eBPF heartbeat unavailable: serving heartbeats from userspace, a stalled daemon cannot be told from a dead one": "ebpf_heartbeat_unavailable",
		"control api: operation done":        "control_api_operation_done",
		"VIP traffic accounting unavailable": "vip_traffic_accounting_unavailable",
		"":                                   "log",
		"日本語":                                "log",
		"a very long message that goes on and on and on well beyond any sensible length for a name": "a_very_long_message_that_goes_on_and_on_and_on",
	} {
		got := eventName(msg)
		if got != want {
			t.Errorf("eventName(%q) = %q, want %q", msg, got, want)
		}
		if !eventRe.MatchString(got) || len(got) > 48 {
			t.Errorf("eventName(%q) = %q is not an event name", msg, got)
		}
	}
}

func TestLogHandler(t *testing.T) {
	var buf bytes.Buffer
	h, err := logHandler(&buf, "json", slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(h).With("server", "node1")
	log.Info("peer lost", "event", "peer_lost", "peer", "node2")
	log.Info("vip bound", "address", "198.18.0.100/24")
	log.With("event", "set_by_with").Info("something else")
	log.Debug("hidden")
	log.Warn("multi\nline", "err", "a\nb", "took", 1500*time.Microsecond)
	var events []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		events = append(events, fmt.Sprint(rec["event"]))
		if rec["server"] != "node1" {
			t.Errorf("%q lacks the server", line)
		}
	}
	if want := "peer_lost vip_bound set_by_with multi_line"; strings.Join(events, " ") != want {
		t.Errorf("events %q, want %q", events, want)
	}
	if !strings.Contains(buf.String(), `"took":"1.5ms"`) {
		t.Errorf("a duration not as text says it:\n%s", buf.String())
	}
	if strings.Count(buf.String(), `"event"`) != 4 {
		t.Errorf("an event named twice or missing:\n%s", buf.String())
	}

	buf.Reset()
	if h, err = logHandler(&buf, "text", slog.LevelDebug); err != nil {
		t.Fatal(err)
	}
	slog.New(h).Debug("vip bound", "err", "two\nlines")
	if got := buf.String(); !strings.Contains(got, "event=vip_bound") || strings.Count(got, "\n") != 1 {
		t.Errorf("text line %q", got)
	}
	if _, err := logHandler(&buf, "xml", slog.LevelInfo); err == nil {
		t.Error("log format xml accepted")
	}
}

// parseLog parses a daemon's log, logfmt text or JSON, into records; any
// line that does not parse, or holds a key twice, fails the test. Of a
// key held twice, the first value is kept.
func parseLog(t *testing.T, who, format, text string) []map[string]string {
	t.Helper()
	var out []map[string]string
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		var rec map[string]string
		var dups []string
		var err error
		switch format {
		case "json":
			rec, dups, err = parseJSONLine(line)
		case "text":
			rec, dups, err = parseLogfmt(line)
		}
		if err != nil {
			t.Errorf("%s: not a %s line: %q: %v", who, format, line, err)
			continue
		}
		for _, d := range dups {
			t.Errorf("%s: key %s twice in %q", who, d, line)
		}
		out = append(out, rec)
	}
	return out
}

// parseJSONLine parses one JSON object, keeping the first value of a key
// and returning the keys seen twice.
func parseJSONLine(line string) (map[string]string, []string, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, fmt.Errorf("not an object: %v", err)
	}
	rec := map[string]string{}
	var dups []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		k, _ := tok.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		if _, dup := rec[k]; dup {
			dups = append(dups, k)
			continue
		}
		rec[k] = fmt.Sprint(v)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, nil, fmt.Errorf("unterminated object: %v", err)
	}
	if dec.More() {
		return nil, nil, fmt.Errorf("more than one object")
	}
	return rec, dups, nil
}

// parseLogfmt parses a line of slog's TextHandler: key=value pairs, values
// quoted as Go strings when they need it. It keeps the first value of a
// key and returns the keys seen twice.
func parseLogfmt(line string) (map[string]string, []string, error) {
	rec := map[string]string{}
	var dups []string
	for line != "" {
		k, rest, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \"") {
			return nil, nil, fmt.Errorf("no key=value at %q", line)
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, nil, err
			}
			v, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			v, rest, _ = strings.Cut(rest, " ")
			rest = " " + rest
		}
		if _, dup := rec[k]; dup {
			dups = append(dups, k)
		} else {
			rec[k] = v
		}
		line = strings.TrimPrefix(rest, " ")
	}
	return rec, dups, nil
}

// TestDaemonLogs runs a cluster through a move, a monitor error, a crash
// and a stop, with each log format, and checks every line of both
// daemons' logs: one event per line, its fields, a stable event name, and
// never the cluster key, as it is or encoded.
func TestDaemonLogs(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) { testDaemonLogs(t, format) })
	}
}

func testDaemonLogs(t *testing.T, format string) {
	c := newTestCluster(t)
	// A key as the README makes one: base64 text, final newline included.
	raw := make([]byte, 48)
	rand.Read(raw)
	key := base64.StdEncoding.EncodeToString(raw) + "\n"
	c.write("cluster.key", 0o600, key)
	cfg := filepath.Join(c.dir, "cluster.yaml")
	for i := range c.names {
		c.startWith(i, cfg, nil, "-log-format", format)
	}
	has := func(i int, event string) bool {
		l := c.logs[i].String()
		return strings.Contains(l, "event="+event+" ") || strings.Contains(l, "event="+event+"\n") ||
			strings.Contains(l, `"event":"`+event+`"`)
	}
	c.onlineOn(0, 0, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.client(0).GroupMove(ctx, "failover1", "node2"); err != nil {
		t.Fatalf("move: %v", err)
	}
	c.onlineOn(1, 0, 1)
	// The monitor fails on node2: an error, a reactivation.
	marker := c.write("fail.node2", 0o644, "")
	c.eventually("node2 reactivating", func() bool { return has(1, "recovery_reactivate") })
	os.Remove(marker)
	c.eventually("failover1 online again", func() bool {
		return c.groupOn(0, "online", "node1") || c.groupOn(0, "online", "node2")
	})
	status, err := c.status(1)
	if err != nil {
		t.Fatal(err)
	}
	statusJSON, err := json.Marshal(status)
	if err != nil {
		t.Fatal(err)
	}
	scrape := c.scrape(1)
	c.kill(0)
	c.eventually("node2 losing node1", func() bool { return has(1, "peer_lost") })
	// SIGTERM: node2 hands off and exits.
	c.mu.Lock()
	p := c.procs[1]
	c.procs[1] = nil
	c.mu.Unlock()
	p.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		p.Process.Kill()
		<-done
		t.Fatal("node2 did not stop on SIGTERM")
	}

	want := [2][]string{
		{"service_starting", "metrics_serving", "peer_up", "lane_up", "group_online", "resource_started", "operator_group_move", "group_stopping", "resource_stopped"},
		{"service_starting", "peer_up", "group_starting", "group_online", "monitor_error", "recovery_reactivate", "peer_lost", "lane_down", "shutdown_handoff", "service_state"},
	}
	for i, name := range c.names {
		text := c.logs[i].String()
		if text == "" {
			t.Fatalf("%s logged nothing", name)
		}
		seen := map[string]bool{}
		for _, rec := range parseLog(t, name, format, text) {
			for _, k := range []string{"time", "level", "msg", "event", "server"} {
				if rec[k] == "" {
					t.Errorf("%s: a line without %s: %v", name, k, rec)
				}
			}
			if !eventRe.MatchString(rec["event"]) {
				t.Errorf("%s: event %q is not a name", name, rec["event"])
			}
			if rec["server"] != "" && rec["server"] != name {
				t.Errorf("%s: a line of server %q", name, rec["server"])
			}
			seen[rec["event"]] = true
		}
		for _, e := range want[i] {
			if !seen[e] {
				t.Errorf("%s never logged the event %s", name, e)
			}
		}
		checkNoKey(t, name+"'s log", text, key)
	}
	checkNoKey(t, "node2's /metrics", scrape, key)
	checkNoKey(t, "node2's status", string(statusJSON), key)
}

// checkNoKey fails the test if text holds the cluster key, whole or in
// part, as it is, in hex or in base64.
func checkNoKey(t *testing.T, where, text, key string) {
	t.Helper()
	k := []byte(key)
	trimmed := strings.TrimSpace(key)
	lower := strings.ToLower(text)
	for what, s := range map[string]string{
		"the key":              trimmed,
		"its first 16 bytes":   trimmed[:16],
		"its last 16 bytes":    trimmed[len(trimmed)-16:],
		"the key in base64":    base64.StdEncoding.EncodeToString(k)[:32],
		"the key in base64url": base64.RawURLEncoding.EncodeToString(k)[:32],
	} {
		if strings.Contains(text, s) {
			t.Errorf("%s holds %s", where, what)
		}
	}
	if strings.Contains(lower, hex.EncodeToString(k)[:32]) {
		t.Errorf("%s holds the key in hex", where)
	}
}
