package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/control/api"
	"github.com/vigil-ha/vigil/control/api/apitest"
)

// vigilctl runs the command line args against the socket and returns the
// exit code, stdout and stderr.
func vigilctl(t *testing.T, socket string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if socket != "" {
		args = append([]string{"--socket", socket}, args...)
	}
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestStatusCommand(t *testing.T) {
	s := apitest.Serve(t, &apitest.Backend{State: testStatus()})
	code, out, errOut := vigilctl(t, s.Path(), "status")
	if code != exitOK || errOut != "" {
		t.Fatalf("status: exit %d, stderr %q", code, errOut)
	}
	if out != render(testStatus()) {
		t.Errorf("status printed\n%s\nwant\n%s", out, render(testStatus()))
	}
	if !fields(out)["db online ip-1 7 failed on ip-2"] {
		t.Errorf("status lacks the db group:\n%s", out)
	}
}

func TestStatusJSON(t *testing.T) {
	s := apitest.Serve(t, &apitest.Backend{State: testStatus()})
	code, out, errOut := vigilctl(t, s.Path(), "status", "--json")
	if code != exitOK {
		t.Fatalf("status --json: exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(out, "\n  \"cluster\": \"prod\",\n") {
		t.Errorf("JSON not indented:\n%s", out)
	}
	var got api.Status
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("parse back: %v", err)
	}
	if want := testStatus(); !reflect.DeepEqual(got, want) {
		t.Errorf("parsed back %+v\nwant %+v", got, want)
	}
}

func TestSocketFromEnvironment(t *testing.T) {
	s := apitest.Serve(t, &apitest.Backend{State: testStatus()})
	t.Setenv("VIGIL_SOCKET", s.Path())
	if code, _, errOut := vigilctl(t, "", "status"); code != exitOK {
		t.Errorf("status with VIGIL_SOCKET: exit %d, %s", code, errOut)
	}
	// The flag wins over the environment.
	t.Setenv("VIGIL_SOCKET", "/nonexistent/vigild.sock")
	if code, _, errOut := vigilctl(t, s.Path(), "status"); code != exitOK {
		t.Errorf("status with --socket: exit %d, %s", code, errOut)
	}
}

func TestOperationCommands(t *testing.T) {
	b := &apitest.Backend{}
	s := apitest.Serve(t, b)
	tests := []struct {
		args []string
		out  string
		call apitest.Call
	}{
		{[]string{"cluster", "start"}, "cluster service started", apitest.Call{Op: "ClusterStart"}},
		{[]string{"cluster", "stop"}, "cluster service stopped", apitest.Call{Op: "ClusterStop"}},
		{[]string{"group", "start", "db"}, "group db started", apitest.Call{Op: "GroupStart", Name: "db"}},
		{[]string{"group", "start", "db", "ip-2"}, "group db started on ip-2", apitest.Call{Op: "GroupStart", Name: "db", Server: "ip-2"}},
		{[]string{"group", "stop", "db"}, "group db stopped", apitest.Call{Op: "GroupStop", Name: "db"}},
		{[]string{"group", "move", "db"}, "group db moved", apitest.Call{Op: "GroupMove", Name: "db"}},
		{[]string{"group", "move", "db", "ip-2"}, "group db moved to ip-2", apitest.Call{Op: "GroupMove", Name: "db", Server: "ip-2"}},
		{[]string{"monitor", "suspend", "natw"}, "monitor natw suspended", apitest.Call{Op: "MonitorSuspend", Name: "natw"}},
		{[]string{"monitor", "resume", "natw"}, "monitor natw resumed", apitest.Call{Op: "MonitorResume", Name: "natw"}},
	}
	var want []apitest.Call
	for _, tt := range tests {
		code, out, errOut := vigilctl(t, s.Path(), tt.args...)
		if code != exitOK || out != tt.out+"\n" || errOut != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 0, %q", tt.args, code, out, errOut, tt.out)
		}
		want = append(want, tt.call)
	}
	if got := b.Calls(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls %+v\nwant %+v", got, want)
	}
}

func TestOperationFails(t *testing.T) {
	b := &apitest.Backend{Errors: map[string]error{
		"GroupMove db":  apitest.Conflict("group db is stopping"),
		"GroupStop web": apitest.NotFound(`no group "web"`),
	}}
	s := apitest.Serve(t, b)
	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"group", "move", "db", "ip-2"}, "vigilctl: move group db: group db is stopping\n"},
		{[]string{"group", "stop", "web"}, "vigilctl: stop group web: no group \"web\"\n"},
	} {
		code, out, errOut := vigilctl(t, s.Path(), tt.args...)
		if code != exitFailed || out != "" || errOut != tt.msg {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 1 and %q", tt.args, code, out, errOut, tt.msg)
		}
	}
}

func TestDaemonNotRunning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigild.sock")
	code, out, errOut := vigilctl(t, path, "status")
	want := "vigilctl: cannot reach vigild at " + path + ": is it running?\n"
	if code != exitFailed || out != "" || errOut != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1 and %q", code, out, errOut, want)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"bogus"},
		{"group"},
		{"group", "move"},
		{"group", "move", "db", "ip-2", "extra"},
		{"group", "stop", "db", "ip-2"},
		{"monitor", "suspend"},
		{"cluster", "restart"},
		{"status", "--bogus"},
	} {
		code, out, errOut := vigilctl(t, "/nonexistent/vigild.sock", args...)
		if code != exitUsage || !strings.HasPrefix(errOut, "vigilctl: ") || !strings.Contains(errOut, "--help") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and a usage hint", args, code, out, errOut)
		}
	}
	if code, out, _ := vigilctl(t, "", "--help"); code != exitOK || !strings.Contains(out, "group") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
}

func TestExitErrorUnwrap(t *testing.T) {
	err := failed(api.ErrNotFound)
	if !errors.Is(err, api.ErrNotFound) {
		t.Errorf("failed() hides its error")
	}
	if failed(nil) != nil {
		t.Errorf("failed(nil) is not nil")
	}
}
