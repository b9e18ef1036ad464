package awsemu

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// ServeDNS answers DNS queries on pc until pc is closed, then returns nil.
// It is authoritative for the hosted zones: A and AAAA queries get the
// record sets whose change is INSYNC, a name with other records gets an
// empty answer, and any other name NXDOMAIN.
func (s *Server) ServeDNS(pc net.PacketConn) error {
	buf := make([]byte, 4096)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("serve dns: %w", err)
		}
		resp, ok := s.answerDNS(buf[:n])
		if !ok {
			continue
		}
		if _, err := pc.WriteTo(resp, addr); err != nil && errors.Is(err, net.ErrClosed) {
			return nil
		}
	}
}

// answerDNS builds the answer to one query packet; ok is false when the
// packet is not a query worth answering.
func (s *Server) answerDNS(pkt []byte) (resp []byte, ok bool) {
	var p dnsmessage.Parser
	h, err := p.Start(pkt)
	if err != nil || h.Response {
		return nil, false
	}
	rh := dnsmessage.Header{
		ID: h.ID, Response: true, Authoritative: true, OpCode: h.OpCode,
		RecursionDesired: h.RecursionDesired, RCode: dnsmessage.RCodeSuccess,
	}
	q, err := p.Question()
	if err != nil {
		rh.Authoritative = false
		rh.RCode = dnsmessage.RCodeFormatError
		return buildDNS(rh, nil, nil)
	}
	if h.OpCode != 0 {
		rh.RCode = dnsmessage.RCodeNotImplemented
		return buildDNS(rh, &q, nil)
	}
	if q.Class != dnsmessage.ClassINET {
		rh.RCode = dnsmessage.RCodeRefused
		return buildDNS(rh, &q, nil)
	}
	name := strings.ToLower(q.Name.String())
	s.mu.Lock()
	answers, exists := s.lookupDNS(name, q.Type)
	s.mu.Unlock()
	if !exists {
		rh.RCode = dnsmessage.RCodeNameError
	}
	return buildDNS(rh, &q, answers)
}

// lookupDNS returns the synced record set of name and type, if any, and
// whether name has any synced record. Called with s.mu held.
func (s *Server) lookupDNS(name string, typ dnsmessage.Type) (*RecordSet, bool) {
	var zone *HostedZone
	for i := range s.world.HostedZones {
		z := &s.world.HostedZones[i]
		if inZone(name, z.Name) && (zone == nil || len(z.Name) > len(zone.Name)) {
			zone = z
		}
	}
	if zone == nil {
		return nil, false
	}
	exists := false
	var match *RecordSet
	for k, r := range s.syncedRecords(zone) {
		if k.name != name {
			continue
		}
		exists = true
		if (typ == dnsmessage.TypeA && k.typ == "A") || (typ == dnsmessage.TypeAAAA && k.typ == "AAAA") {
			match = &r
		}
	}
	return match, exists
}

func buildDNS(h dnsmessage.Header, q *dnsmessage.Question, rs *RecordSet) ([]byte, bool) {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), h)
	b.EnableCompression()
	if q != nil {
		if err := b.StartQuestions(); err != nil {
			return nil, false
		}
		if err := b.Question(*q); err != nil {
			return nil, false
		}
	}
	if rs != nil && q != nil {
		if err := b.StartAnswers(); err != nil {
			return nil, false
		}
		for _, v := range rs.Values {
			ip, err := netip.ParseAddr(v)
			if err != nil {
				continue
			}
			rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: uint32(rs.TTL)}
			if ip.Is4() {
				err = b.AResource(rh, dnsmessage.AResource{A: ip.As4()})
			} else {
				err = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: ip.As16()})
			}
			if err != nil {
				return nil, false
			}
		}
	}
	out, err := b.Finish()
	return out, err == nil
}
