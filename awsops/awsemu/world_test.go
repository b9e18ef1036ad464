package awsemu_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/awsops/awsemu"
)

func TestParseWorldRejectsInvalidWorldsNamingTheLine(t *testing.T) {
	const head = "region: ap-northeast-1\navailability_zones: [{name: ap-northeast-1a}]\nvpcs: [{id: vpc-1, cidrs: [10.0.0.0/16]}]\n"
	const subnet = "subnets: [{id: subnet-1, vpc_id: vpc-1, cidr: 10.0.1.0/24, availability_zone: ap-northeast-1a}]\n"
	const eni = "network_interfaces: [{id: eni-1, subnet_id: subnet-1, private_ip: 10.0.1.10}]\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"empty document", "", "parse world: empty document"},
		{"two documents", head + "---\n" + head, "more than one YAML document"},
		{"unknown field", head + "colour: blue\n", "line 4: field colour not found"},
		{"unknown nested field", "region: r\nvpcs:\n  - id: vpc-1\n    cidr: 10.0.0.0/16\n", "line 4: field cidr not found"},
		{"bad duration", head + "change_delay: soon\n", "line 4"},
		{"no region", "vpcs: [{id: vpc-1, cidrs: [10.0.0.0/16]}]\n", "region: is required"},
		{"negative change delay", head + "change_delay: -1s\n", "line 4: change_delay: must not be negative"},
		{"duplicate access key", head + "credentials: [{access_key_id: A, secret_access_key: s}, {access_key_id: A, secret_access_key: t}]\n",
			`line 4: credentials[1].access_key_id: duplicate access key "A"`},
		{"zone of another region", "region: ap-northeast-1\navailability_zones: [{name: us-east-1a}]\n", `line 2: availability_zones[0].name: zone "us-east-1a" is not in region "ap-northeast-1"`},
		{"unknown zone state", "region: ap-northeast-1\navailability_zones: [{name: ap-northeast-1a, state: sleepy}]\n",
			`line 2: availability_zones[0].state: unknown state "sleepy"`},
		{"duplicate VPC", "region: r\nvpcs: [{id: vpc-1, cidrs: [10.0.0.0/16]}, {id: vpc-1, cidrs: [10.1.0.0/16]}]\n", `duplicate VPC ID "vpc-1"`},
		{"bad VPC CIDR", "region: r\nvpcs:\n  - id: vpc-1\n    cidrs: [10.0.0.0/33]\n", `line 4: vpcs[0].cidrs[0]: "10.0.0.0/33" is not an IPv4 CIDR block`},
		{"CIDR with host bits", "region: r\nvpcs: [{id: vpc-1, cidrs: [10.0.0.1/16]}]\n", "has host bits set (want 10.0.0.0/16)"},
		{"ID without prefix", "region: r\nvpcs: [{id: 1234, cidrs: [10.0.0.0/16]}]\n", `vpcs[0].id: "1234" does not look like vpc-...`},
		{"subnet of unknown VPC", head + "subnets: [{id: subnet-1, vpc_id: vpc-9, cidr: 10.0.1.0/24, availability_zone: ap-northeast-1a}]\n",
			`line 4: subnets[0].vpc_id: VPC "vpc-9" does not exist`},
		{"subnet outside VPC", head + "subnets: [{id: subnet-1, vpc_id: vpc-1, cidr: 10.9.1.0/24, availability_zone: ap-northeast-1a}]\n",
			"10.9.1.0/24 is outside the CIDR blocks of vpc-1"},
		{"subnet in unknown zone", head + "subnets: [{id: subnet-1, vpc_id: vpc-1, cidr: 10.0.1.0/24, availability_zone: ap-northeast-1z}]\n",
			`availability zone "ap-northeast-1z" does not exist`},
		{"ENI outside its subnet", head + subnet + "network_interfaces: [{id: eni-1, subnet_id: subnet-1, private_ip: 10.0.2.10}]\n",
			"10.0.2.10 is outside subnet subnet-1"},
		{"ENI with bad MAC", head + subnet + "network_interfaces: [{id: eni-1, subnet_id: subnet-1, private_ip: 10.0.1.10, mac: zz}]\n",
			`"zz" is not a MAC address`},
		{"instance with unknown ENI", head + subnet + eni + "instances: [{id: i-1, availability_zone: ap-northeast-1a, enis: [eni-9]}]\n",
			`line 6: instances[0].enis[0]: ENI "eni-9" does not exist`},
		{"ENI attached twice", head + subnet + eni + "instances: [{id: i-1, availability_zone: ap-northeast-1a, enis: [eni-1]}, {id: i-2, availability_zone: ap-northeast-1a, enis: [eni-1]}]\n",
			"ENI eni-1 is already attached to i-1"},
		{"route with two targets", head + subnet + eni + "route_tables: [{id: rtb-1, vpc_id: vpc-1, routes: [{destination: 10.1.0.20/32, eni_id: eni-1, gateway_id: igw-1}]}]\n",
			"route_tables[0].routes[0]: exactly one of eni_id and gateway_id is required"},
		{"duplicate route", head + "route_tables: [{id: rtb-1, vpc_id: vpc-1, routes: [{destination: 0.0.0.0/0, gateway_id: igw-1}, {destination: 0.0.0.0/0, gateway_id: igw-2}]}]\n",
			`duplicate destination "0.0.0.0/0"`},
		{"route to unknown ENI", head + "route_tables: [{id: rtb-1, vpc_id: vpc-1, routes: [{destination: 10.1.0.20/32, eni_id: eni-9}]}]\n",
			`ENI "eni-9" does not exist`},
		{"address on unknown ENI", head + "addresses: [{allocation_id: eipalloc-1, public_ip: 203.0.113.1, eni_id: eni-9}]\n",
			`line 4: addresses[0].eni_id: ENI "eni-9" does not exist`},
		{"address without ENI but associated", head + "addresses: [{allocation_id: eipalloc-1, public_ip: 203.0.113.1, association_id: eipassoc-1}]\n",
			"association_id and private_ip need an eni_id"},
		{"bad public IP", head + "addresses: [{allocation_id: eipalloc-1, public_ip: nowhere}]\n", `"nowhere" is not an IPv4 address`},
		{"record outside zone", head + "hosted_zones: [{id: Z1, name: hz1.local, records: [{name: www.other.test, type: A, ttl: 60, values: [10.0.0.1]}]}]\n",
			"www.other.test. is not in zone hz1.local."},
		{"bad A value", head + "hosted_zones: [{id: Z1, name: hz1.local, records: [{name: a.hz1.local, type: A, ttl: 60, values: [fe80::1]}]}]\n",
			`"fe80::1" is not a valid IPv4 address`},
		{"duplicate record set", head + "hosted_zones: [{id: Z1, name: hz1.local, records: [{name: a.hz1.local, type: A, ttl: 60, values: [10.0.0.1]}, {name: A.hz1.local., type: a, ttl: 60, values: [10.0.0.2]}]}]\n",
			`duplicate record set "a.hz1.local. A"`},
		{"bad zone name", head + "hosted_zones: [{id: Z1, name: 'a..b'}]\n", `"a..b" is not a domain name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := awsemu.ParseWorld([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseWorldReportsEveryProblemAtOnce(t *testing.T) {
	_, err := awsemu.ParseWorld([]byte("region: r\nvpcs:\n  - {id: vpc-1, cidrs: []}\n  - {id: vpc-1, cidrs: [bad]}\n"))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"line 3: vpcs[0].cidrs: at least one CIDR block is required", `line 4: vpcs[1].id: duplicate VPC ID "vpc-1"`, `line 4: vpcs[1].cidrs[0]: "bad"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error = %v\nwant it to contain %q", err, want)
		}
	}
}

func TestParseWorldFillsInTheDocumentedDefaults(t *testing.T) {
	w := testWorld(t)
	if w.AvailabilityZones[0].State != "available" {
		t.Errorf("default zone state = %q", w.AvailabilityZones[0].State)
	}
	e := w.NetworkInterfaces[2] // eni-second: no MAC, VPC or instance given
	if e.VPCID != "vpc-1234abcd" || e.InstanceID != "i-server2" || len(e.MAC) != 17 || !strings.HasPrefix(e.MAC, "06:") {
		t.Errorf("eni-second = %+v", e)
	}
	if w.Addresses[1].PrivateIP != "10.0.120.10" {
		t.Errorf("associated address private IP = %q", w.Addresses[1].PrivateIP)
	}
	z := w.HostedZones[0]
	if z.Name != "hz1.local." || z.Records[0].Name != "srv.hz1.local." {
		t.Errorf("zone names = %q %q, want lower case with the final dot", z.Name, z.Records[0].Name)
	}
	if w.ChangeDelay != 0 {
		t.Errorf("change delay = %v", w.ChangeDelay)
	}
	w2, err := awsemu.ParseWorld([]byte("region: r\nchange_delay: 2s\n"))
	mustOK(t, err)
	if w2.ChangeDelay != 2*time.Second {
		t.Errorf("change delay = %v", w2.ChangeDelay)
	}
}

func TestTheExampleWorldIsTheGuidesVIPTopology(t *testing.T) {
	w, err := awsemu.LoadWorld(filepath.Join("..", "..", "examples", "awsemu-world.yaml"))
	mustOK(t, err)
	if w.Region != "ap-northeast-1" || w.VPCs[0].ID != "vpc-1234abcd" || w.VPCs[0].CIDRs[0] != "10.0.0.0/16" ||
		w.HostedZones[0].ID != "ABCDEFGHIJK123" || w.HostedZones[0].Name != "hz1.local." ||
		w.Addresses[0].AllocationID != "eipalloc-01234567" {
		t.Errorf("world = %+v", w)
	}
	enis := map[string]string{}
	for _, e := range w.NetworkInterfaces {
		enis[e.PrivateIP] = e.ID
	}
	if enis["10.0.110.10"] != "eni-12345678" || enis["10.0.120.10"] != "eni-87654321" {
		t.Errorf("servers' ENIs = %v", enis)
	}
	for _, rt := range w.RouteTables {
		found := false
		for _, r := range rt.Routes {
			found = found || r.Destination == "10.1.0.20/32" && r.ENIID == "eni-12345678"
		}
		if !found {
			t.Errorf("%s has no VIP route to eni-12345678", rt.ID)
		}
	}
}

func TestLoadWorldNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "w.yaml")
	mustOK(t, os.WriteFile(p, []byte("region: r\nbogus: 1\n"), 0o600))
	_, err := awsemu.LoadWorld(p)
	if err == nil || !strings.Contains(err.Error(), p+": parse world: ") || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("error = %v", err)
	}
	_, err = awsemu.LoadWorld(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error = %v, want not exist", err)
	}
}

func TestSnapshotIsADeepCopy(t *testing.T) {
	s := awsemu.New(testWorld(t))
	w := s.Snapshot()
	w.RouteTables[0].Routes[1].ENIID = "eni-87654321"
	w.VPCs[0].CIDRs[0] = "0.0.0.0/0"
	w.HostedZones[0].Records[0].Values[0] = "1.1.1.1"
	again := s.Snapshot()
	if again.RouteTables[0].Routes[1].ENIID != "eni-12345678" || again.VPCs[0].CIDRs[0] != "10.0.0.0/16" ||
		again.HostedZones[0].Records[0].Values[0] != "10.0.110.10" {
		t.Error("changing a snapshot changed the server's world")
	}
}

func TestUpdateInstallsOnlyValidWorlds(t *testing.T) {
	s := awsemu.New(testWorld(t))
	boom := errors.New("boom")
	if err := s.Update(func(w *awsemu.World) error {
		w.RouteTables[0].Routes[1].ENIID = "eni-87654321"
		return boom
	}); !errors.Is(err, boom) {
		t.Errorf("Update = %v, want fn's error", err)
	}
	err := s.Update(func(w *awsemu.World) error {
		w.RouteTables[0].Routes[1].ENIID = "eni-nowhere"
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), `update world: route_tables[0].routes[1].eni_id: ENI "eni-nowhere" does not exist`) {
		t.Errorf("Update = %v", err)
	}
	if got := s.Snapshot().RouteTables[0].Routes[1].ENIID; got != "eni-12345678" {
		t.Errorf("a refused update left the route at %q", got)
	}
	mustOK(t, s.Update(func(w *awsemu.World) error {
		w.RouteTables[0].Routes[1].ENIID = "eni-87654321"
		return nil
	}))
	if got := s.Snapshot().RouteTables[0].Routes[1].ENIID; got != "eni-87654321" {
		t.Errorf("route = %q after a valid update", got)
	}
}

func TestNewPanicsOnAnInvalidWorldThatValidateReports(t *testing.T) {
	w := &awsemu.World{Region: "r", VPCs: []awsemu.VPC{{ID: "vpc-1"}}}
	if err := w.Clone().Validate(); err == nil {
		t.Fatal("Validate accepted a VPC without CIDR blocks")
	}
	defer func() {
		if recover() == nil {
			t.Error("New did not panic")
		}
	}()
	awsemu.New(w)
}
