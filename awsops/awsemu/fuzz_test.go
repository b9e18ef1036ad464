package awsemu

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"Action=DescribeRouteTables&Version=2016-11-15&Filter.1.Name=vpc-id&Filter.1.Value.1=vpc-1234abcd&Filter.2.Name=route.destination-cidr-block&Filter.2.Value.1=10.1.0.20%2F32",
		"Action=DescribeVpcs&VpcId.1=vpc-1&VpcId.10=vpc-2&VpcId.2=vpc-3&DryRun=true",
		"Filter.01.Name=x&Filter.1.Value.0=y",
		"a=%zz", "a;b", "Filter.1.Name=&Filter.1.Value.1=", "DryRun=maybe", "=x", "Filter..Name=a",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseQuery(raw)
		if err != nil {
			if err.Status != http.StatusBadRequest || err.Code == "" {
				t.Fatalf("bad error %+v", err)
			}
			return
		}
		_ = q.check(withDescribe("VpcId.#"))
		_ = q.list("VpcId")
		_, _ = q.boolean("DryRun")
		_, _ = q.required("RouteTableId")
		for k := range q {
			if p, err := keyPattern(k); err == nil && strings.Contains(p, "..") {
				t.Fatalf("pattern %q of %q", p, k)
			}
		}
		fs, ferr := q.filters()
		if ferr != nil {
			return
		}
		for _, f := range fs {
			if f.Name == "" || len(f.Values) == 0 {
				t.Fatalf("filter %+v accepted", f)
			}
		}
		_, _ = applyFilters([]VPC{{ID: "vpc-1", CIDRs: []string{"10.0.0.0/16"}}}, fs, vpcFilters)
	})
}

func FuzzGlobMatch(f *testing.F) {
	f.Add("10.1.0.20/32", "10.1.*")
	f.Add("a*b?c", `a\*b\?c`)
	f.Add("", "*")
	f.Fuzz(func(t *testing.T, s, pattern string) {
		esc := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`).Replace(s)
		if !globMatch(esc, s) {
			t.Fatalf("escaped %q does not match itself", s)
		}
		if !globMatch("*", s) {
			t.Fatalf("* does not match %q", s)
		}
		_ = globMatch(pattern, s)
	})
}

func FuzzParseWorld(f *testing.F) {
	example, err := os.ReadFile("../../examples/awsemu-world.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte("region: r\nvpcs: [{id: vpc-1, cidrs: [10.0.0.0/16]}]\n"))
	f.Add([]byte("region: r\nhosted_zones: [{id: Z, name: a., records: [{name: '*.a', type: a, ttl: 1, values: [1.2.3.4]}]}]\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := ParseWorld(data)
		if err != nil {
			return
		}
		c := w.Clone()
		if !reflect.DeepEqual(w, c) {
			t.Fatal("clone differs")
		}
		if errs := validateWorld(c); len(errs) > 0 {
			t.Fatalf("a parsed world fails validation again: %v", joinFieldErrors(errs, nil))
		}
		if !reflect.DeepEqual(w, c) {
			t.Fatal("validating a valid world changed it")
		}
		_ = New(w)
	})
}

// fuzzServer returns a server over the example world.
func fuzzServer(f *testing.F) (*Server, *World) {
	data, err := os.ReadFile("../../examples/awsemu-world.yaml")
	if err != nil {
		f.Fatal(err)
	}
	w, err := ParseWorld(data)
	if err != nil {
		f.Fatal(err)
	}
	w.ChangeDelay = 0
	return New(w), w
}

// serveSigned signs a request with the SDK's signer and serves it; it
// returns nil for a target no client could send.
func serveSigned(t *testing.T, s *Server, w *World, method, target, service, body string) *httptest.ResponseRecorder {
	req, err := http.NewRequest(method, "http://emu.test"+target, strings.NewReader(body))
	if err != nil {
		return nil
	}
	if body != "" && service != "route53" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	}
	sum := sha256.Sum256([]byte(body))
	c := w.Credentials[0]
	err = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey},
		req, hex.EncodeToString(sum[:]), service, w.Region, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

// checkAnswer fails unless the answer is well-formed XML, with an error code
// when it is an error, and the World is still valid.
func checkAnswer(t *testing.T, s *Server, rec *httptest.ResponseRecorder) {
	if rec.Code != http.StatusOK && (rec.Code < 400 || rec.Code > 599) {
		t.Fatalf("status %d", rec.Code)
	}
	dec := xml.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	for {
		if _, err := dec.Token(); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("answer is not XML: %v\n%s", err, rec.Body.String())
			}
			break
		}
	}
	if rec.Code != http.StatusOK && !strings.Contains(rec.Body.String(), "<Code>") {
		t.Fatalf("error without a code: %s", rec.Body.String())
	}
	if errs := validateWorld(s.Snapshot()); len(errs) > 0 {
		t.Fatalf("the request broke the world: %v", joinFieldErrors(errs, nil))
	}
}

func FuzzEC2Request(f *testing.F) {
	for _, s := range []string{
		"Action=ReplaceRoute&Version=2016-11-15&RouteTableId=rtb-0a2a0000&DestinationCidrBlock=10.1.0.20%2F32&NetworkInterfaceId=eni-87654321",
		"Action=CreateRoute&Version=2016-11-15&RouteTableId=rtb-0a2a0000&DestinationCidrBlock=10.9.0.0%2F16&GatewayId=igw-1",
		"Action=DeleteRoute&Version=2016-11-15&RouteTableId=rtb-0a2a0000&DestinationCidrBlock=10.1.0.20%2F32",
		"Action=AssociateAddress&Version=2016-11-15&AllocationId=eipalloc-01234567&InstanceId=i-0123456789abcde10&AllowReassociation=true",
		"Action=DisassociateAddress&Version=2016-11-15&PublicIp=203.0.113.10",
		"Action=DescribeNetworkInterfaces&Version=2016-11-15&Filter.1.Name=attachment.instance-id&Filter.1.Value.1=i-*",
		"Action=DescribeAvailabilityZones&Version=2016-11-15&ZoneName.1=ap-northeast-1x",
		"Action=DescribeAddresses&Version=2016-11-15&AllocationId.1=eipalloc-01234567&PublicIp.1=203.0.113.10",
		"Action=DescribeInstances&Version=2016-11-15&DryRun=true",
		"Action=GetCallerIdentity&Version=2011-06-15",
	} {
		f.Add(s)
	}
	s, w := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body string) {
		service := "ec2"
		if strings.Contains(body, "Version=2011-06-15") {
			service = "sts"
		}
		checkAnswer(t, s, serveSigned(t, s, w, http.MethodPost, "/", service, body))
	})
}

func FuzzRoute53Request(f *testing.F) {
	const change = `<?xml version="1.0" encoding="UTF-8"?><ChangeResourceRecordSetsRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeBatch><Changes><Change><Action>%s</Action><ResourceRecordSet><Name>%s</Name><Type>A</Type><TTL>60</TTL><ResourceRecords><ResourceRecord><Value>%s</Value></ResourceRecord></ResourceRecords></ResourceRecordSet></Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>`
	for _, seed := range [][3]string{
		{"UPSERT", "srv.hz1.local.", "10.0.120.10"}, {"DELETE", "srv.hz1.local", "10.0.110.10"},
		{"CREATE", "srv.hz1.local.", "10.0.120.10"}, {"CREATE", "x.other.", "1.2.3.4"}, {"UPSERT", "*.hz1.local", "bad"},
	} {
		f.Add(fmt.Sprintf(change, seed[0], seed[1], seed[2]), "name=srv.hz1.local&type=A&maxitems=1")
	}
	s, w := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body, query string) {
		checkAnswer(t, s, serveSigned(t, s, w, http.MethodPost, "/2013-04-01/hostedzone/ABCDEFGHIJK123/rrset/", "route53", body))
		rec := serveSigned(t, s, w, http.MethodGet, "/2013-04-01/hostedzone/ABCDEFGHIJK123/rrset?"+query, "route53", "")
		if rec == nil {
			return
		}
		if _, err := url.ParseQuery(query); err != nil {
			// The SDK's signer drops what it cannot parse; AWS and the
			// emulator refuse the signature.
			if rec.Code != http.StatusForbidden {
				t.Fatalf("malformed query %q: status %d", query, rec.Code)
			}
			return
		}
		checkAnswer(t, s, rec)
	})
}
