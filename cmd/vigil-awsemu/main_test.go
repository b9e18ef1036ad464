package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/dns/dnsmessage"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var exampleWorld = filepath.Join("..", "..", "examples", "awsemu-world.yaml")

// syncBuffer is a log sink the servers and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func get(t *testing.T, url string, header map[string]string, method string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeAnswersTheAPIIMDSAndDNSAndStopsOnCancel(t *testing.T) {
	var logs syncBuffer
	a, err := setup([]string{
		"-world", exampleWorld, "-listen", "127.0.0.1:0", "-dns", "127.0.0.1:0", "-throttle",
		"-imds", "i-0123456789abcde10=127.0.0.1:0", "-imds", "i-0123456789abcde20=127.0.0.1:0",
	}, &logs)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.serve(ctx) }()

	api := "http://" + a.api.Addr().String()
	if status, body := get(t, api+"/_emu/state", nil, http.MethodGet); status != http.StatusOK || !strings.Contains(body, `"vpc-1234abcd"`) {
		t.Errorf("state: %d %s", status, body)
	}
	if status, body := get(t, api+"/", nil, http.MethodPost); status != http.StatusUnauthorized || !strings.Contains(body, "AuthFailure") {
		t.Errorf("unsigned EC2 call: %d %s", status, body)
	}
	imds := "http://" + a.imds["i-0123456789abcde20"].Addr().String()
	_, tok := get(t, imds+"/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"}, http.MethodPut)
	if status, body := get(t, imds+"/latest/meta-data/local-ipv4", map[string]string{"X-aws-ec2-metadata-token": tok}, http.MethodGet); status != http.StatusOK || body != "10.0.120.10" {
		t.Errorf("IMDS local-ipv4: %d %q", status, body)
	}

	q, _ := (&dnsmessage.Message{Questions: []dnsmessage.Question{{
		Name: dnsmessage.MustNewName("srv.hz1.local."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET,
	}}}).Pack()
	conn, err := net.Dial("udp", a.dns.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write(q)
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	conn.Close()
	var m dnsmessage.Message
	if err != nil || m.Unpack(buf[:n]) != nil || len(m.Answers) != 1 {
		t.Errorf("DNS answer: %v %+v", err, m)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve = %v", err)
	}
	out := logs.String()
	for _, want := range []string{"msg=listening server=api", "msg=\"aws call\" service=ec2", "status=401 error_code=AuthFailure", "service=imds action=IMDSGetMetadata target=/latest/meta-data/local-ipv4 status=200", "msg=\"shutting down\""} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestSetupRefusesBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no world", nil, "-world is required"},
		{"missing world file", []string{"-world", "/nonexistent/w.yaml"}, "no such file"},
		{"imds without address", []string{"-world", exampleWorld, "-imds", "i-0123456789abcde10"}, "want INSTANCE_ID=ADDR"},
		{"imds twice", []string{"-world", exampleWorld, "-imds", "i-1=127.0.0.1:0", "-imds", "i-1=127.0.0.1:0"}, "given twice"},
		{"unknown instance", []string{"-world", exampleWorld, "-listen", "127.0.0.1:0", "-imds", "i-nope=127.0.0.1:0"}, "-imds i-nope: no such instance"},
		{"bad listen address", []string{"-world", exampleWorld, "-listen", "256.0.0.1:99999"}, "listen:"},
		{"stray argument", []string{"-world", exampleWorld, "extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := setup(tt.args, io.Discard)
			if err == nil {
				a.close()
				t.Fatal("setup succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestIMDSBySource serves two instances' IMDS on one address: each client
// gets its own instance, found by its source address; a stranger nothing.
func TestIMDSBySource(t *testing.T) {
	a, err := setup([]string{
		"-world", exampleWorld, "-listen", "127.0.0.1:0",
		"-imds-listen", "127.0.0.1:0", "-imds-client", "i-0123456789abcde20=127.0.0.1",
		"-imds-client", "i-0123456789abcde10=127.0.0.2",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.serve(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	imds := "http://" + a.shared.Addr().String()
	_, tok := get(t, imds+"/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"}, http.MethodPut)
	if status, body := get(t, imds+"/latest/meta-data/instance-id", map[string]string{"X-aws-ec2-metadata-token": tok}, http.MethodGet); status != http.StatusOK || body != "i-0123456789abcde20" {
		t.Errorf("instance-id from 127.0.0.1: %d %q", status, body)
	}
	if _, err := setup([]string{"-world", exampleWorld, "-imds-listen", "127.0.0.1:0"}, io.Discard); err == nil {
		t.Error("-imds-listen without -imds-client accepted")
	}
}
