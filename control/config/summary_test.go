package config

import (
	"strings"
	"testing"
)

func TestSummary(t *testing.T) {
	c, err := Load(examplePath("vip-cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := Summary(c)
	for _, want := range []string{
		"cluster cluster (hash ",
		"heartbeat: conservative profile, auto mode, udp port 29001, every 100 ms, timeout 1000 ms, stall timeout 5000 ms; startup wait 5000 ms\n",
		"np resolution: ping 10.0.10.100, ping 10.0.20.100 within 1000 ms, else stop_groups\n",
		"  ip-10-0-110-10  ap-northeast-1a  lan1=10.0.110.10\n",
		"  lan1  priority 1  mirror\n",
		"  failover1 on ip-10-0-110-10, ip-10-0-120-10\n",
		"    1. md       mirror_disk  /dev/xvdb2 (cluster partition /dev/xvdb1), sync\n",
		"    2. awsvip1  aws_vip      10.1.0.20 in vpc-1234abcd via eni-1234abcd; after md; eni_id on ip-10-0-120-10: eni-5678abcd\n",
		"-> LocalServer: stop_cluster_service_and_shutdown  10.0.10.100 10.0.20.100\n",
		"availability_zone on ip-10-0-120-10: ap-northeast-1b\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, string(c.Key)) {
		t.Error("summary shows the key")
	}
}
