package awsops_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/awsops"
)

// goodPlan is the guides' cluster as the world has it.
var goodPlan = awsops.Plan{
	VIPs: []awsops.VIPPlan{{VIP: vip, VPCID: vpcID, ENIIDs: []string{"eni-server1", "eni-server2"}}},
	EIPs: []awsops.EIPPlan{{AllocationID: "eipalloc-1", ENIIDs: []string{"eni-server1", "eni-server2"}}},
	Records: []awsops.RecordPlan{
		{ZoneID: zoneID, Name: "srv.vigil.test."},
		{ZoneID: zoneID, Name: "db.vigil.test"},
	},
	AZs: []string{"ap-northeast-1a", "ap-northeast-1c"},
}

// finding returns the finding of one check, failing the test when absent.
func finding(t *testing.T, fs []awsops.Finding, check string) awsops.Finding {
	t.Helper()
	for _, f := range fs {
		if f.Check == check {
			return f
		}
	}
	var checks []string
	for _, f := range fs {
		checks = append(checks, f.Check)
	}
	t.Fatalf("no finding %q among:\n%s", check, strings.Join(checks, "\n"))
	return awsops.Finding{}
}

func TestPreflightGood(t *testing.T) {
	e := newEnv(t)
	fs := e.client.Preflight(testCtx(t), goodPlan)
	for _, f := range fs {
		if !f.OK {
			t.Errorf("not OK: %+v", f)
		}
	}
	for check, detail := range map[string]string{
		"AWS credentials work (sts:GetCallerIdentity)":                            "account 123456789012, arn:aws:iam::123456789012:user/vigil",
		"VIP 10.1.0.20 lies outside the CIDR blocks of vpc-1234abcd":              "outside 10.0.0.0/16, 10.2.0.0/16",
		"route tables of vpc-1234abcd hold 10.1.0.20/32":                          "rtb-1, rtb-2, rtb-3",
		"route table rtb-2 holds 10.1.0.20/32":                                    "targets eni-server1",
		"source/destination check disabled on eni-server2":                        "disabled",
		"permission ec2:ReplaceRoute on rtb-3":                                    "allowed (dry run)",
		"permission ec2:CreateRoute on rtb-1":                                     "allowed (dry run)",
		"permission ec2:AssociateAddress on eipalloc-1":                           "allowed (dry run)",
		"permission ec2:DisassociateAddress on eipalloc-1":                        "allowed (dry run)",
		"EIP allocation eipalloc-1 exists":                                        "public IP 203.0.113.10, associated with eni-server1",
		"hosted zone ZVIGILTEST exists":                                           "vigil.test. (private)",
		"record set db.vigil.test. can be read (route53:ListResourceRecordSets)":  "absent: the aws_dns resource creates it on start",
		"record set srv.vigil.test. can be read (route53:ListResourceRecordSets)": "holds 10.0.110.10",
		"availability zone ap-northeast-1c is valid":                              "state available",
	} {
		if f := finding(t, fs, check); f.Detail != detail {
			t.Errorf("%s: detail %q, want %q", check, f.Detail, detail)
		}
	}
	// The hosted zone is read once for its two records.
	if n := len(e.emuCalls("GetHostedZone")); n != 1 {
		t.Errorf("%d GetHostedZone calls, want 1", n)
	}
	// Dry runs change nothing.
	if got := e.routeTarget(t, "rtb-1", vipDest); got != "eni-server1" {
		t.Fatalf("a dry run moved rtb-1 to %q", got)
	}
}

func TestPreflightFindings(t *testing.T) {
	e := newEnv(t)
	plan := awsops.Plan{
		VIPs: []awsops.VIPPlan{
			{VIP: vip, VPCID: vpcID, ENIIDs: []string{"eni-server1", "eni-checked", "eni-nothere"},
				RouteTables: []string{"rtb-1", "rtb-4", "rtb-nothere", "rtb-other"}},
			{VIP: netip.MustParseAddr("10.0.0.5"), VPCID: vpcID, ENIIDs: []string{"eni-server1"}},
			{VIP: vip, VPCID: "vpc-nothere", ENIIDs: []string{"eni-server1"}},
			{VIP: vip, VPCID: "vpc-other000", ENIIDs: []string{"eni-server1"}},
		},
		EIPs:    []awsops.EIPPlan{{AllocationID: "eipalloc-nothere", ENIIDs: []string{"eni-server1"}}},
		Records: []awsops.RecordPlan{{ZoneID: "ZNOTHERE", Name: "srv.vigil.test."}, {ZoneID: zoneID, Name: "srv.elsewhere.test."}},
		AZs:     []string{"ap-northeast-1x", "ap-northeast-1d"},
	}
	fs := e.client.Preflight(testCtx(t), plan)
	for _, tc := range []struct {
		check, detail, fix string
	}{
		{"source/destination check disabled on eni-checked",
			"Source/Dest. Check is enabled: the ENI drops packets addressed to the VIP.",
			"Disable Source/Dest. Check on eni-checked: EC2 console → Network interfaces → Actions → Change source/dest. check"},
		{"network interface eni-nothere exists", "The networkInterface ID 'eni-nothere' does not exist", "Specify a correct ENI ID."},
		{"route table rtb-4 holds 10.1.0.20/32", "rtb-4 has no 10.1.0.20/32 route",
			"Add a route 10.1.0.20/32 → eni-server1 (a server's ENI) to rtb-4: VPC console → Route tables → rtb-4 → Routes → Edit routes."},
		{"route table rtb-nothere holds 10.1.0.20/32", "The routeTable ID 'rtb-nothere' does not exist", "Specify a correct route table ID."},
		{"route table rtb-other holds 10.1.0.20/32", "rtb-other belongs to vpc-other000, not vpc-1234abcd", "List only route tables of the VIP's VPC."},
		{"VIP 10.0.0.5 lies outside the CIDR blocks of vpc-1234abcd",
			"The VIP address 10.0.0.5 belongs to a VPC subnet. (10.0.0.0/16)", ""},
		{"VPC vpc-nothere exists", "The vpc ID 'vpc-nothere' does not exist", "Specify a correct VPC ID."},
		{"route tables of vpc-other000 hold 10.1.0.20/32", "no route table of vpc-other000 has a 10.1.0.20/32 route", ""},
		{"network interface eni-server1 exists", "", ""}, // in vpc-1234abcd: fine for the first VIP
		{"EIP allocation eipalloc-nothere exists", "The allocation ID 'eipalloc-nothere' does not exist", "Specify a correct EIP allocation ID."},
		{"hosted zone ZNOTHERE exists", "No hosted zone found with ID: ZNOTHERE", "Specify a correct hosted zone ID."},
		{"record set srv.elsewhere.test. lies in zone vigil.test.", "srv.elsewhere.test. is not a name of vigil.test.", ""},
		{"availability zone ap-northeast-1x is valid", "Invalid availability zone: [ap-northeast-1x]", "Specify a correct availability zone."},
		{"availability zone ap-northeast-1d is valid", "state impaired", ""},
	} {
		f := finding(t, fs, tc.check)
		wantOK := tc.check == "network interface eni-server1 exists"
		if f.OK != wantOK || (tc.detail != "" && f.Detail != tc.detail) || (tc.fix != "" && f.Fix != tc.fix) {
			t.Errorf("%s:\n got %+v\nwant OK %v, detail %q, fix %q", tc.check, f, wantOK, tc.detail, tc.fix)
		}
		if !f.OK && f.Fix == "" {
			t.Errorf("%s: no fix", tc.check)
		}
	}
	// The existing tables are dry-run, the missing one is not.
	finding(t, fs, "permission ec2:ReplaceRoute on rtb-4")
	for _, f := range fs {
		if strings.Contains(f.Check, "permission") && strings.Contains(f.Check, "rtb-nothere") {
			t.Errorf("dry run of a missing table: %+v", f)
		}
	}
}

func TestPreflightDenied(t *testing.T) {
	e := newEnv(t, withKey("AKIAVIGILDENIED00001", "vigil/denied/secret"))
	fs := e.client.Preflight(testCtx(t), goodPlan)
	for _, tc := range []struct{ check, fix string }{
		{"permission ec2:ReplaceRoute on rtb-2",
			"Allow ec2:ReplaceRoute on arn:aws:ec2:*:*:route-table/rtb-2 in the IAM policy of the instance role; vigilctl prints a least-privilege policy."},
		{"permission ec2:AssociateAddress on eipalloc-1",
			"Allow ec2:AssociateAddress in the IAM policy of the instance role; vigilctl prints a least-privilege policy."},
	} {
		f := finding(t, fs, tc.check)
		if f.OK || f.Fix != tc.fix || !strings.Contains(f.Detail, "not authorized") {
			t.Errorf("%s: %+v", tc.check, f)
		}
	}
	for _, check := range []string{"permission ec2:CreateRoute on rtb-2", "permission ec2:DisassociateAddress on eipalloc-1"} {
		if f := finding(t, fs, check); !f.OK {
			t.Errorf("%s: %+v", check, f)
		}
	}
	if f := finding(t, fs, "AWS credentials work (sts:GetCallerIdentity)"); !f.OK || !strings.HasSuffix(f.Detail, "user/vigil-readonly") {
		t.Errorf("identity: %+v", f)
	}
}

func TestPreflightBadCredentials(t *testing.T) {
	e := newEnv(t, withKey("AKIAVIGILUNKNOWN0001", "whatever"))
	fs := e.client.Preflight(testCtx(t), goodPlan)
	f := finding(t, fs, "AWS credentials work (sts:GetCallerIdentity)")
	if f.OK || !strings.Contains(f.Fix, "IAM role") {
		t.Fatalf("identity: %+v", f)
	}
	for _, f := range fs {
		if strings.Contains(f.Detail, "whatever") {
			t.Fatalf("the secret leaked into %+v", f)
		}
	}
}

func TestPreflightCanceled(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fs := e.client.Preflight(ctx, goodPlan)
	if len(fs) == 0 {
		t.Fatal("no findings")
	}
	for _, f := range fs {
		if f.OK && !strings.HasPrefix(f.Detail, "not proven") {
			t.Errorf("OK without AWS: %+v", f)
		}
	}
}
