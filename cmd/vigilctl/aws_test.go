package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/awsops/awsemu"
	"github.com/vigil-ha/vigil/awsops/awsemu/awsemutest"
)

// awsConfig is the guides' VIP and EIP topologies on the emulator; server
// node1 discovers its VPC and ENI from IMDSv2.
const awsConfig = `cluster:
  name: test
  key_file: cluster.key
  aws: {region: ap-northeast-1, endpoint: "%s", imds_endpoint: "%s"}
servers:
  - {name: node1, availability_zone: ap-northeast-1a, interconnects: {lan1: 198.18.0.1}}
  - {name: node2, availability_zone: ap-northeast-1c, interconnects: {lan1: 198.18.0.2}}
lanes: [{name: lan1}]
groups:
  - name: g
    resources:
      - name: awsvip1
        type: aws_vip
        ip: 10.1.0.20
        interface: eth0
        servers: {node2: {vpc_id: vpc-1234abcd, eni_id: eni-87654321}}
      - {name: awseip1, type: aws_eip, allocation_id: eipalloc-01234567, servers: {node2: {eni_id: eni-87654321}}}
`

func startAWS(t *testing.T) (*awsemutest.Emulator, string) {
	w, err := awsemu.LoadWorld("../../examples/awsemu-world.yaml")
	if err != nil {
		t.Fatal(err)
	}
	emu := awsemutest.Start(t, w)
	cred := w.Credentials[0]
	t.Setenv("AWS_ACCESS_KEY_ID", cred.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", cred.SecretAccessKey)
	return emu, writeConfig(t, fmt.Sprintf(awsConfig, emu.Endpoint, emu.IMDS["i-0123456789abcde10"]))
}

func TestAWSCheckPasses(t *testing.T) {
	_, path := startAWS(t)
	code, out, errOut := vigilctl(t, "", "aws", "check", "--config", path, "--server", "node1")
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr: %s", code, out, errOut)
	}
	for _, want := range []string{"rtb-0a1b0000", "eni-12345678", "eipalloc-01234567", "all "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestAWSCheckFindsSourceDestCheck(t *testing.T) {
	emu, path := startAWS(t)
	emu.Server.Update(func(w *awsemu.World) error {
		for i := range w.NetworkInterfaces {
			if w.NetworkInterfaces[i].ID == "eni-87654321" {
				w.NetworkInterfaces[i].SourceDestCheck = true
			}
		}
		return nil
	})
	code, out, errOut := vigilctl(t, "", "aws", "check", "--config", path, "--server", "node1")
	if code != exitFailed || !strings.Contains(errOut, "checks failed") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(out, "FAIL") || !strings.Contains(out, "eni-87654321") || !strings.Contains(out, "fix:") {
		t.Errorf("output does not name the ENI with a fix:\n%s", out)
	}
}

func TestAWSIAMPolicy(t *testing.T) {
	_, path := startAWS(t)
	code, out, errOut := vigilctl(t, "", "aws", "iam-policy", "--config", path)
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{`"2012-10-17"`, "ec2:ReplaceRoute", "ec2:AssociateAddress", "ec2:DescribeRouteTables"} {
		if !strings.Contains(out, want) {
			t.Errorf("policy lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "route53:") {
		t.Errorf("policy grants Route 53 without an aws_dns resource:\n%s", out)
	}
}
