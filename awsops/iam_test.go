package awsops_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-ha/vigil/awsops"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestIAMPolicyGolden(t *testing.T) {
	vip := netip.MustParseAddr("10.1.0.20")
	for _, tc := range []struct {
		golden string
		plan   awsops.Plan
	}{
		{"iam_vip_tables.json", awsops.Plan{
			VIPs: []awsops.VIPPlan{{VIP: vip, VPCID: "vpc-1234abcd", ENIIDs: []string{"eni-b", "eni-a"},
				RouteTables: []string{"rtb-2", "rtb-1", "rtb-2"}}},
			AZs: []string{"ap-northeast-1a", "ap-northeast-1c"},
		}},
		{"iam_vip_discovered.json", awsops.Plan{
			VIPs: []awsops.VIPPlan{{VIP: vip, VPCID: "vpc-1234abcd", ENIIDs: []string{"eni-a", "eni-b"}}},
		}},
		{"iam_eip.json", awsops.Plan{
			EIPs: []awsops.EIPPlan{{AllocationID: "eipalloc-1", ENIIDs: []string{"eni-a", "eni-b"}}},
			AZs:  []string{"ap-northeast-1a"},
		}},
		{"iam_dns.json", awsops.Plan{
			Records: []awsops.RecordPlan{
				{ZoneID: "/hostedzone/ZB", Name: "db.hz1.local."},
				{ZoneID: "ZA", Name: "srv.hz1.local."},
			},
		}},
		{"iam_all.json", awsops.Plan{
			VIPs:    []awsops.VIPPlan{{VIP: vip, VPCID: "vpc-1234abcd", ENIIDs: []string{"eni-a"}, RouteTables: []string{"rtb-1"}}},
			EIPs:    []awsops.EIPPlan{{AllocationID: "eipalloc-1", ENIIDs: []string{"eni-a"}}},
			Records: []awsops.RecordPlan{{ZoneID: "ZA", Name: "srv.hz1.local."}},
			AZs:     []string{"ap-northeast-1a"},
		}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			got, err := awsops.IAMPolicy(tc.plan)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(got) {
				t.Fatalf("not JSON:\n%s", got)
			}
			again, _ := awsops.IAMPolicy(tc.plan)
			if !bytes.Equal(got, again) {
				t.Fatal("two calls gave different policies")
			}
			path := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestIAMPolicyGolden -update to write it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("policy differs from %s:\n%s", path, got)
			}
		})
	}
}

func TestIAMPolicyEmptyPlan(t *testing.T) {
	if _, err := awsops.IAMPolicy(awsops.Plan{}); err == nil {
		t.Fatal("an empty plan gave a policy")
	}
}
