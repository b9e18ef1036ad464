package awsemu_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/route53/types"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/vigil-ha/vigil/awsops/awsemu"
)

// dnsQuery asks the emulator's DNS server one question and returns the
// answer's code and addresses.
func dnsQuery(t *testing.T, addr, name string, typ dnsmessage.Type) (dnsmessage.RCode, []netip.Addr) {
	t.Helper()
	q := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: 0x4242, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}},
	}
	pkt, err := q.Pack()
	mustOK(t, err)
	conn, err := net.Dial("udp", addr)
	mustOK(t, err)
	defer conn.Close()
	mustOK(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = conn.Write(pkt)
	mustOK(t, err)
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	mustOK(t, err)
	var m dnsmessage.Message
	mustOK(t, m.Unpack(buf[:n]))
	if m.ID != 0x4242 || !m.Response || !m.Authoritative || len(m.Questions) != 1 {
		t.Fatalf("answer header = %+v, questions %d", m.Header, len(m.Questions))
	}
	var addrs []netip.Addr
	for _, rr := range m.Answers {
		switch b := rr.Body.(type) {
		case *dnsmessage.AResource:
			addrs = append(addrs, netip.AddrFrom4(b.A))
		case *dnsmessage.AAAAResource:
			addrs = append(addrs, netip.AddrFrom16(b.AAAA))
		}
	}
	return m.RCode, addrs
}

func TestDNSAnswersTheRecordSetsOfTheHostedZones(t *testing.T) {
	e := start(t)
	tests := []struct {
		name  string
		typ   dnsmessage.Type
		rcode dnsmessage.RCode
		addrs []string
	}{
		{"srv.hz1.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.0.110.10"}},
		{"SRV.Hz1.Local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.0.110.10"}},
		{"srv.hz1.local.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, nil}, // the name exists: no data
		{"txt.hz1.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, nil},
		{"gone.hz1.local.", dnsmessage.TypeA, dnsmessage.RCodeNameError, nil},
		{"www.example.org.", dnsmessage.TypeA, dnsmessage.RCodeNameError, nil},
	}
	for _, tt := range tests {
		rcode, addrs := dnsQuery(t, e.DNSAddr, tt.name, tt.typ)
		var got []string
		for _, a := range addrs {
			got = append(got, a.String())
		}
		if rcode != tt.rcode || !slices.Equal(got, tt.addrs) {
			t.Errorf("%s %v: %v %v, want %v %v", tt.name, tt.typ, rcode, got, tt.rcode, tt.addrs)
		}
	}
}

func TestDNSServesAChangeOnlyOnceItIsInSync(t *testing.T) {
	e := start(t, func(w *awsemu.World) { w.ChangeDelay = time.Minute })
	clock := newFakeClock()
	e.Server.SetClock(clock.Now)
	c := r53Client(e)
	_, err := changeRecords(t, c,
		aChange(types.ChangeActionUpsert, "srv.hz1.local.", "10.0.120.10", 60),
		aChange(types.ChangeActionCreate, "new.hz1.local.", "10.0.120.11", 60))
	mustOK(t, err)
	if _, addrs := dnsQuery(t, e.DNSAddr, "srv.hz1.local.", dnsmessage.TypeA); len(addrs) != 1 || addrs[0].String() != "10.0.110.10" {
		t.Errorf("PENDING change: srv resolves to %v, want the old 10.0.110.10", addrs)
	}
	if rcode, _ := dnsQuery(t, e.DNSAddr, "new.hz1.local.", dnsmessage.TypeA); rcode != dnsmessage.RCodeNameError {
		t.Errorf("PENDING change: new.hz1.local. answers %v, want NXDOMAIN", rcode)
	}
	clock.Advance(time.Minute)
	if _, addrs := dnsQuery(t, e.DNSAddr, "srv.hz1.local.", dnsmessage.TypeA); len(addrs) != 1 || addrs[0].String() != "10.0.120.10" {
		t.Errorf("INSYNC change: srv resolves to %v, want 10.0.120.10", addrs)
	}
	if _, addrs := dnsQuery(t, e.DNSAddr, "new.hz1.local.", dnsmessage.TypeA); len(addrs) != 1 {
		t.Errorf("INSYNC change: new.hz1.local. resolves to %v", addrs)
	}
}

func TestGosResolverResolvesThroughTheEmulator(t *testing.T) {
	e := start(t)
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", e.DNSAddr)
	}}
	addrs, err := r.LookupNetIP(ctxT(t), "ip4", "srv.hz1.local.")
	mustOK(t, err)
	if len(addrs) != 1 || addrs[0].String() != "10.0.110.10" {
		t.Errorf("addresses = %v", addrs)
	}
	_, err = r.LookupNetIP(ctxT(t), "ip", "gone.hz1.local.")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("gone.hz1.local.: %v, want not found", err)
	}
}

func TestServeDNSReturnsNilWhenItsConnectionCloses(t *testing.T) {
	s := awsemu.New(testWorld(t))
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	mustOK(t, err)
	done := make(chan error, 1)
	go func() { done <- s.ServeDNS(pc) }()
	pc.Close()
	if err := <-done; err != nil {
		t.Errorf("ServeDNS = %v, want nil", err)
	}
}
