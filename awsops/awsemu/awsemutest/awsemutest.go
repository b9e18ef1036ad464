// Package awsemutest starts the AWS emulator for a test: the API server,
// one IMDS per instance and a DNS server, all on loopback, closed when the
// test ends.
package awsemutest

import (
	"net"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/vigil-ha/vigil/awsops/awsemu"
)

// Default credential added to a World that has none.
const (
	DefaultAccessKeyID     = "AKIAAWSEMUTEST000001"
	DefaultSecretAccessKey = "awsemu/test/secret/key"
)

// Emulator is a running emulator.
type Emulator struct {
	// Server is the emulator, for Update, SetFault, Calls and the like.
	Server *awsemu.Server
	// Endpoint is the base URL of EC2, STS and Route 53 (the SDK's
	// BaseEndpoint).
	Endpoint string
	// IMDS maps each instance ID to the URL of its IMDS (imds.Options
	// Endpoint).
	IMDS map[string]string
	// DNSAddr is the UDP address of the DNS server ("127.0.0.1:port").
	DNSAddr string
	// Region is the World's region.
	Region string
	// Credentials signs with the World's first credential.
	Credentials aws.CredentialsProvider
}

// Start runs the emulator over w until the test ends. A World without
// credentials gets DefaultAccessKeyID; w itself is not modified.
func Start(t testing.TB, w *awsemu.World) *Emulator {
	t.Helper()
	if w == nil {
		t.Fatal("awsemutest: nil world")
	}
	w = w.Clone()
	if len(w.Credentials) == 0 {
		w.Credentials = []awsemu.Credential{{AccessKeyID: DefaultAccessKeyID, SecretAccessKey: DefaultSecretAccessKey}}
	}
	if err := w.Validate(); err != nil {
		t.Fatalf("awsemutest: %v", err)
	}
	s := awsemu.New(w)
	api := httptest.NewServer(s.Handler())
	t.Cleanup(api.Close)
	e := &Emulator{
		Server:   s,
		Endpoint: api.URL,
		IMDS:     map[string]string{},
		Region:   w.Region,
		Credentials: credentials.NewStaticCredentialsProvider(
			w.Credentials[0].AccessKeyID, w.Credentials[0].SecretAccessKey, ""),
	}
	for _, in := range w.Instances {
		srv := httptest.NewServer(s.IMDSHandler(in.ID))
		t.Cleanup(srv.Close)
		e.IMDS[in.ID] = srv.URL
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("awsemutest: listen dns: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.ServeDNS(pc); err != nil {
			t.Errorf("awsemutest: %v", err)
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	e.DNSAddr = pc.LocalAddr().String()
	return e
}

// Config returns an aws.Config for the SDK's clients: the World's region,
// the credentials and the emulator as base endpoint.
func (e *Emulator) Config() aws.Config {
	return aws.Config{
		Region:       e.Region,
		Credentials:  e.Credentials,
		BaseEndpoint: aws.String(e.Endpoint),
	}
}
