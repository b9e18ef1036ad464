package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// base is a valid configuration of six lines; most cases append to it, so
// their own lines start at 7.
const base = `cluster: {name: c, key_file: k}
servers:
  - {name: n1, interconnects: {lan1: 198.18.0.1}}
  - {name: n2, interconnects: {lan1: 198.18.0.2}}
lanes:
  - {name: lan1}
`

// withCluster returns base with its first line replaced, and extra appended.
func withCluster(cluster, extra string) string {
	return strings.Replace(base, "cluster: {name: c, key_file: k}", cluster, 1) + extra
}

// wantErr is one expected problem: its line, its path, and a fragment of
// its message.
type wantErr struct {
	line int
	path string
	msg  string
}

func (w wantErr) String() string { return fmt.Sprintf("%d: %s: %s", w.line, w.path, w.msg) }

func e(line int, path, msg string) wantErr { return wantErr{line, path, msg} }

// checkErrors asserts that err is an ErrorList holding exactly want, in
// order, each naming file.
func checkErrors(t *testing.T, file string, err error, want ...wantErr) {
	t.Helper()
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error %v (%T) is not an ErrorList", err, err)
	}
	ok := len(list) == len(want)
	for i := 0; ok && i < len(want); i++ {
		g, w := list[i], want[i]
		ok = g.File == file && g.Line == w.line && g.Path == w.path && strings.Contains(g.Msg, w.msg)
	}
	if !ok {
		t.Errorf("got errors:\n%v\nwant:\n%v", err, want)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []wantErr
	}{
		// YAML syntax.
		{"syntax: bad indentation", "cluster:\n  name: c\n key_file: k\n",
			[]wantErr{e(3, "", "syntax error: did not find expected key")}},
		{"syntax: tab", "cluster:\n\tname: c\n",
			[]wantErr{e(2, "", "syntax error: found character that cannot start any token")}},
		{"syntax: unclosed flow mapping", "cluster: {name: c\nservers: []\n",
			[]wantErr{e(1, "", "syntax error: did not find expected ',' or '}'")}},
		{"syntax: unknown alias", base + "groups: *g\n",
			[]wantErr{e(7, "", "syntax error: unknown anchor 'g' referenced")}},
		{"syntax: two documents", base + "---\nmonitors: []\n",
			[]wantErr{e(7, "", "more than one YAML document")}},
		{"empty file", "", []wantErr{e(1, "", "empty configuration")}},
		{"only comments", "# nothing\n", []wantErr{e(1, "", "empty configuration")}},
		{"root is a list", "- cluster\n", []wantErr{e(1, "", "expected a mapping, got a list")}},
		{"duplicate key", base + "lanes: []\n",
			[]wantErr{e(7, "lanes", "duplicate key (first at line 5)")}},
		{"merge key", base + "monitors:\n  - <<: {name: x}\n",
			[]wantErr{e(8, "monitors[0]", "merge keys (<<) are not supported")}},

		// Unknown keys.
		{"unknown top-level key", base + "group: []\n",
			[]wantErr{e(7, "group", "unknown key (did you mean groups?)")}},
		{"unknown nested key", withCluster("cluster: {name: c, key_file: k, heartbeat: {interval: 50}}", ""),
			[]wantErr{e(1, "cluster.heartbeat.interval", "unknown key (did you mean interval_ms?)")}},
		{"unknown server key", withCluster("cluster: {name: c, key_file: k}", "") + "monitors: []\nservers2: 1\n",
			[]wantErr{e(8, "servers2", "unknown key (did you mean servers?)")}},
		{"key of another resource kind", base + `groups:
  - name: g
    resources:
      - {name: fip1, type: floating_ip, address: 198.18.100.10/24, interface: eth0, vpc_id: vpc-1234abcd}
`, []wantErr{e(10, "groups[0].resources[0].vpc_id", "not valid for type floating_ip (valid for aws_vip)")}},
		{"key of no resource kind", base + `groups:
  - name: g
    resources:
      - name: fip1
        type: floating_ip
        address: 198.18.100.10/24
        interface: eth0
        colour: red
`, []wantErr{e(14, "groups[0].resources[0].colour", "unknown key")}},
		{"key of another monitor kind", base + `monitors:
  - {name: ipw1, type: ip, addresses: [198.18.0.254], address: "198.18.0.254:80"}
`, []wantErr{e(8, "monitors[0].address", "not valid for type ip (valid for tcp)")}},
		{"unknown key in a per-server block", base + `groups:
  - name: g
    resources:
      - name: fip1
        type: floating_ip
        address: 198.18.100.10/24
        interface: eth0
        servers:
          n2: {interfce: eth1}
`, []wantErr{e(15, "groups[0].resources[0].servers.n2.interfce", "unknown key (did you mean interface?)")}},

		// Wrong types.
		{"string for an integer", withCluster(`cluster: {name: c, key_file: k, heartbeat: {port: "http"}}`, ""),
			[]wantErr{e(1, "cluster.heartbeat.port", `expected an integer, got the string "http"`)}},
		{"float for an integer", withCluster(`cluster: {name: c, key_file: k, heartbeat: {interval_ms: 1.5}}`, ""),
			[]wantErr{e(1, "cluster.heartbeat.interval_ms", "expected an integer, got the number 1.5")}},
		{"mapping for a list", "cluster: {name: c, key_file: k}\nservers: {name: n1}\nlanes: [{name: lan1}]\n",
			[]wantErr{e(2, "servers", "expected a list, got a mapping")}},
		{"list for a mapping", "cluster: {name: c, key_file: k}\nservers:\n  - name: n1\n    interconnects: [198.18.0.1]\nlanes: [{name: lan1}]\n",
			[]wantErr{e(4, "servers[0].interconnects", "expected a mapping, got a list")}},
		{"string for a list", base + `groups:
  - name: g
    resources:
      - {name: a, type: exec, start: /bin/true}
      - {name: b, type: exec, start: /bin/true, depends_on: a}
`, []wantErr{e(11, "groups[0].resources[1].depends_on", `expected a list, got the string "a"`)}},
		{"string for a bool", "cluster: {name: c, key_file: k}\nservers: [{name: n1, interconnects: {lan1: 198.18.0.1}}]\nlanes: [{name: lan1, mirror: yes}]\n",
			[]wantErr{e(3, "lanes[0].mirror", `expected true or false, got the string "yes"`)}},

		// Missing required keys.
		{"no cluster", "servers: [{name: n1, interconnects: {lan1: 198.18.0.1}}]\nlanes: [{name: lan1}]\n",
			[]wantErr{e(1, "cluster", "missing required key")}},
		{"no cluster name", withCluster("cluster: {key_file: k}", ""),
			[]wantErr{e(1, "cluster.name", "missing required key")}},
		{"empty key_file", withCluster(`cluster: {name: c, key_file: ""}`, ""),
			[]wantErr{e(1, "cluster.key_file", "must not be empty")}},
		{"no servers", "cluster: {name: c, key_file: k}\nlanes: [{name: lan1}]\n",
			[]wantErr{e(1, "servers", "missing required key")}},
		{"empty lanes", "cluster: {name: c, key_file: k}\nservers: [{name: n1}]\nlanes: []\n",
			[]wantErr{e(3, "lanes", "must not be empty")}},
		{"resource without type", base + "groups:\n  - name: g\n    resources:\n      - name: r\n",
			[]wantErr{e(10, "groups[0].resources[0].type", "missing required key")}},
		{"exec without start", base + "groups:\n  - name: g\n    resources:\n      - {name: app, type: exec, stop: /bin/true}\n",
			[]wantErr{e(10, "groups[0].resources[0].start", "missing required key")}},
		{"floating_ip without address", base + "groups:\n  - name: g\n    resources:\n      - {name: fip1, type: floating_ip, interface: eth0}\n",
			[]wantErr{e(10, "groups[0].resources[0].address", "missing required key")}},
		{"settable key missing for one server", base + `groups:
  - name: g
    resources:
      - name: fip
        type: floating_ip
        address: 198.18.100.10/24
        servers:
          n1: {interface: eth0}
`, []wantErr{e(10, "groups[0].resources[0].interface", "missing for server n2")}},
		{"monitor without name", base + "monitors:\n  - {type: tcp, address: \"198.18.0.9:80\"}\n",
			[]wantErr{e(8, "monitors[0].name", "missing required key")}},

		// Duplicate names.
		{"duplicate server", "cluster: {name: c, key_file: k}\nservers:\n  - {name: n1, interconnects: {lan1: 198.18.0.1}}\n  - {name: n1, interconnects: {lan1: 198.18.0.2}}\nlanes: [{name: lan1}]\n",
			[]wantErr{e(4, "servers[1].name", `duplicate server name "n1" (first at line 3)`)}},
		{"duplicate lane", base + "  - {name: lan1}\n",
			[]wantErr{e(7, "lanes[1].name", `duplicate lane name "lan1" (first at line 6)`)}},
		{"duplicate group", base + "groups:\n  - name: g\n  - name: g\n",
			[]wantErr{e(9, "groups[1].name", `duplicate group name "g" (first at line 8)`)}},
		{"duplicate resource across groups", base + `groups:
  - name: g1
    resources: [{name: app, type: exec, start: /bin/true}]
  - name: g2
    resources: [{name: app, type: exec, start: /bin/true}]
`, []wantErr{e(11, "groups[1].resources[0].name", `duplicate resource name "app" (first at line 9)`)}},
		{"group and resource share names", base + `groups:
  - name: app
    resources: [{name: app, type: exec, start: /bin/true}]
`, []wantErr{e(9, "groups[0].resources[0].name", `duplicate name "app": the group at line 8 has it (group and resource names share one namespace)`)}},
		{"duplicate monitor", base + "monitors:\n  - {name: m, type: tcp, address: \"a:1\"}\n  - {name: m, type: tcp, address: \"b:1\"}\n",
			[]wantErr{e(9, "monitors[1].name", `duplicate monitor name "m" (first at line 8)`)}},
		{"invalid name", base + "groups:\n  - name: web server\n",
			[]wantErr{e(8, "groups[0].name", `invalid name "web server"`)}},
		{"reserved name", base + "groups:\n  - name: LocalServer\n",
			[]wantErr{e(8, "groups[0].name", `"LocalServer" is reserved`)}},

		// Dangling references.
		{"unknown lane in interconnects", "cluster: {name: c, key_file: k}\nservers:\n  - {name: n1, interconnects: {lan1: 198.18.0.1, lan9: 198.18.9.1}}\nlanes: [{name: lan1}]\n",
			[]wantErr{e(3, "servers[0].interconnects.lan9", `unknown lane "lan9"`)}},
		{"unknown group server", base + "groups:\n  - {name: g, servers: [n1, n3]}\n",
			[]wantErr{e(8, "groups[0].servers[1]", `unknown server "n3"`)}},
		{"group server twice", base + "groups:\n  - name: g\n    servers:\n      - n1\n      - n1\n",
			[]wantErr{e(11, "groups[0].servers[1]", `server "n1" is listed twice`)}},
		{"unknown dependency", base + `groups:
  - name: g
    resources:
      - name: fip1
        type: floating_ip
        address: 198.18.100.10/24
        interface: eth0
        depends_on: [app, fip2]
      - {name: app, type: exec, start: /bin/true}
`, []wantErr{e(14, "groups[0].resources[0].depends_on[1]", `unknown resource "fip2"`)}},
		{"dependency in another group", base + `groups:
  - name: g1
    resources: [{name: a, type: exec, start: /bin/true}]
  - name: g2
    resources: [{name: b, type: exec, start: /bin/true, depends_on: [a]}]
`, []wantErr{e(11, "groups[1].resources[0].depends_on[0]", `resource "a" is in group g1`)}},
		{"unknown recovery target", base + "monitors:\n  - {name: m, type: tcp, address: \"a:1\", recovery: {target: g9}}\n",
			[]wantErr{e(8, "monitors[0].recovery.target", `unknown recovery target "g9"`)}},
		{"unknown active_on", base + "monitors:\n  - {name: m, type: tcp, address: \"a:1\", active_on: g9}\n",
			[]wantErr{e(8, "monitors[0].active_on", `unknown group or resource "g9"`)}},
		{"per-server block for an unknown server", base + `monitors:
  - name: az
    type: aws_az
    availability_zone: ap-northeast-1a
    servers:
      n3: {availability_zone: ap-northeast-1b}
`, []wantErr{e(12, "monitors[0].servers.n3", `unknown server "n3"`)}},

		// Dependency cycles.
		{"self dependency", base + "groups:\n  - name: g\n    resources:\n      - {name: a, type: exec, start: /bin/true, depends_on: [a]}\n",
			[]wantErr{e(10, "groups[0].resources[0].depends_on", "dependency cycle: a -> a")}},
		{"two cycles", base + `groups:
  - name: g
    resources:
      - {name: a, type: exec, start: /bin/true, depends_on: [b]}
      - {name: b, type: exec, start: /bin/true, depends_on: [a]}
      - {name: c, type: exec, start: /bin/true, depends_on: [a, e]}
      - {name: d, type: exec, start: /bin/true, depends_on: [e]}
      - {name: e, type: exec, start: /bin/true, depends_on: [d]}
`, []wantErr{
			e(10, "groups[0].resources[0].depends_on", "dependency cycle: a -> b -> a"),
			e(13, "groups[0].resources[3].depends_on", "dependency cycle: d -> e -> d"),
		}},

		// Impossible values.
		{"heartbeat interval 0", withCluster("cluster: {name: c, key_file: k, heartbeat: {interval_ms: 0}}", ""),
			[]wantErr{e(1, "cluster.heartbeat.interval_ms", "must be greater than 0, not 0")}},
		{"heartbeat timeout below interval", "cluster:\n  name: c\n  key_file: k\n  heartbeat:\n    interval_ms: 500\n    timeout_ms: 200\nservers: [{name: n1, interconnects: {lan1: 198.18.0.1}}]\nlanes: [{name: lan1}]\n",
			[]wantErr{e(6, "cluster.heartbeat.timeout_ms", "must not be shorter than interval_ms (200 < 500)")}},
		{"heartbeat port out of range", withCluster("cluster: {name: c, key_file: k, heartbeat: {port: 70000}}", ""),
			[]wantErr{e(1, "cluster.heartbeat.port", "port 70000 is out of range 1-65535")}},
		{"negative startup wait", withCluster("cluster: {name: c, key_file: k, startup_wait_ms: -1}", ""),
			[]wantErr{e(1, "cluster.startup_wait_ms", "must not be negative, not -1")}},
		{"np target: bad ping address", withCluster("cluster: {name: c, key_file: k, np_resolution: {targets: [{ping: nat-a}]}}", ""),
			[]wantErr{e(1, "cluster.np_resolution.targets[0].ping", `"nat-a" is not an IP address`)}},
		{"np target: bad tcp address", withCluster("cluster: {name: c, key_file: k, np_resolution: {targets: [{tcp: 'ec2.ap-northeast-1.amazonaws.com:https'}]}}", ""),
			[]wantErr{e(1, "cluster.np_resolution.targets[0].tcp", `port "https" is not a number from 1 to 65535`)}},
		{"np target: both", withCluster("cluster: {name: c, key_file: k, np_resolution: {targets: [{ping: 10.0.10.100, tcp: 'a:1'}]}}", ""),
			[]wantErr{e(1, "cluster.np_resolution.targets[0]", "set one of ping and tcp, not both")}},
		{"np action", withCluster("cluster: {name: c, key_file: k, np_resolution: {action: reboot}}", ""),
			[]wantErr{e(1, "cluster.np_resolution.action", `"reboot" is not one of stop_groups, stop_cluster_service, stop_cluster_service_and_shutdown`)}},
		{"relative shutdown command", withCluster("cluster: {name: c, key_file: k, shutdown_command: [poweroff]}", ""),
			[]wantErr{e(1, "cluster.shutdown_command[0]", `"poweroff" is not an absolute path`)}},
		{"bad metrics address", withCluster("cluster: {name: c, key_file: k, metrics_address: '9100'}", ""),
			[]wantErr{e(1, "cluster.metrics_address", `"9100" is not host:port`)}},
		{"server missing a lane address", base + "  - {name: lan2}\n",
			[]wantErr{e(3, "servers[0].interconnects", `no address on lane "lan2"`), e(4, "servers[1].interconnects", `no address on lane "lan2"`)}},
		{"bad interconnect address", "cluster: {name: c, key_file: k}\nservers:\n  - {name: n1, interconnects: {lan1: 198.18.0.300}}\nlanes: [{name: lan1}]\n",
			[]wantErr{e(3, "servers[0].interconnects.lan1", `"198.18.0.300" is not an IP address`)}},
		{"same interconnect address twice", "cluster: {name: c, key_file: k}\nservers:\n  - {name: n1, interconnects: {lan1: 198.18.0.1}}\n  - {name: n2, interconnects: {lan1: 198.18.0.1}}\nlanes: [{name: lan1}]\n",
			[]wantErr{e(4, "servers[1].interconnects.lan1", "address 198.18.0.1 is also server n1's on lane lan1")}},
		{"bad availability zone", "cluster: {name: c, key_file: k}\nservers:\n  - {name: n1, availability_zone: Tokyo, interconnects: {lan1: 198.18.0.1}}\nlanes: [{name: lan1}]\n",
			[]wantErr{e(3, "servers[0].availability_zone", `"Tokyo" is not an availability zone`)}},
		{"two mirror lanes", "cluster: {name: c, key_file: k}\nservers: [{name: n1, interconnects: {a: 198.18.0.1, b: 198.18.1.1}}]\nlanes:\n  - {name: a, mirror: true}\n  - {name: b, mirror: true}\n",
			[]wantErr{e(5, "lanes[1].mirror", "only one lane may carry the mirror connect; lane a already does")}},
		{"duplicate lane priority", "cluster: {name: c, key_file: k}\nservers: [{name: n1, interconnects: {a: 198.18.0.1, b: 198.18.1.1}}]\nlanes:\n  - {name: a, priority: 2}\n  - {name: b, priority: 2}\n",
			[]wantErr{e(5, "lanes[1].priority", "duplicate priority 2: lane a has it too")}},
		{"lane priority 0", "cluster: {name: c, key_file: k}\nservers: [{name: n1, interconnects: {a: 198.18.0.1}}]\nlanes:\n  - {name: a, priority: 0}\n",
			[]wantErr{e(4, "lanes[0].priority", "must be 1 or more, not 0")}},
		{"unknown resource type", base + "groups:\n  - name: g\n    resources:\n      - {name: r, type: nfs, path: /srv}\n",
			[]wantErr{
				e(10, "groups[0].resources[0].type", `unknown resource type "nfs" (valid: aws_dns, aws_eip, aws_vip, exec, floating_ip, mirror_disk)`),
				e(10, "groups[0].resources[0].path", "unknown key"),
			}},
		{"unknown monitor type", base + "monitors:\n  - {name: m, type: http}\n",
			[]wantErr{e(8, "monitors[0].type", `unknown monitor type "http" (valid: aws_az, exec, ip, tcp)`)}},
		{"automatic monitor", base + "monitors:\n  - {name: awseipw1, type: aws_eip}\n",
			[]wantErr{e(8, "monitors[0].type", "an aws_eip monitor is added automatically with its resource")}},
		{"floating_ip without prefix length", base + "groups:\n  - name: g\n    resources:\n      - {name: fip1, type: floating_ip, address: 198.18.100.10, interface: eth0}\n",
			[]wantErr{e(10, "groups[0].resources[0].address", `"198.18.100.10" is not an address with its prefix length`)}},
		{"interface name too long", base + "groups:\n  - name: g\n    resources:\n      - {name: fip1, type: floating_ip, address: 198.18.100.10/24, interface: enp0s31f6-with-a-long-name}\n",
			[]wantErr{e(10, "groups[0].resources[0].interface", `"enp0s31f6-with-a-long-name" is not an interface name`)}},
		{"relative exec script", base + "groups:\n  - name: g\n    resources:\n      - {name: app, type: exec, start: start.sh}\n",
			[]wantErr{e(10, "groups[0].resources[0].start", `"start.sh" is not an absolute path`)}},
		{"zero resource timeout", base + "groups:\n  - name: g\n    resources:\n      - {name: app, type: exec, start: /bin/true, stop_timeout_ms: 0}\n",
			[]wantErr{e(10, "groups[0].resources[0].stop_timeout_ms", "must be greater than 0, not 0")}},
		{"bad AWS ids", base + `groups:
  - name: g
    resources:
      - {name: vip, type: aws_vip, ip: 10.1.0.20, vpc_id: vpc-xxxxxxx, eni_id: eni-1234abcd}
      - {name: eip, type: aws_eip, allocation_id: eipalloc-xxxxxxx, eni_id: i-1234abcd}
`, []wantErr{
			e(10, "groups[0].resources[0].vpc_id", `"vpc-xxxxxxx" does not look like a VPC ID (vpc-1234abcd)`),
			e(11, "groups[0].resources[1].allocation_id", `"eipalloc-xxxxxxx" does not look like an EIP allocation ID`),
			e(11, "groups[0].resources[1].eni_id", `"i-1234abcd" does not look like an ENI ID`),
		}},
		{"bad aws_dns values", base + `groups:
  - name: g
    resources:
      - name: dns
        type: aws_dns
        hosted_zone_id: abcdefghijk123
        record_name: srv.hz1.local
        ip: 10.0.110.10
        ttl: 0
`, []wantErr{
			e(12, "groups[0].resources[0].hosted_zone_id", `"abcdefghijk123" does not look like a hosted zone ID`),
			e(13, "groups[0].resources[0].record_name", `"srv.hz1.local" must end with a dot`),
			e(15, "groups[0].resources[0].ttl", "must be greater than 0, not 0"),
		}},
		{"aws_dns per-server ip", base + `groups:
  - name: g
    resources:
      - name: dns
        type: aws_dns
        hosted_zone_id: ABCDEFGHIJK123
        record_name: srv.hz1.local.
        ip: 10.0.110.10
        servers:
          n2: {ip: 10.0.120.x}
`, []wantErr{e(16, "groups[0].resources[0].servers.n2.ip", `"10.0.120.x" is not an IPv4 address`)}},
		{"mirror disk problems", "cluster: {name: c, key_file: k}\nservers: [{name: n1, interconnects: {lan1: 198.18.0.1}}]\nlanes: [{name: lan1}]\n" + `groups:
  - name: g
    resources:
      - name: md
        type: mirror_disk
        data_partition: /dev/xvdb1
        cluster_partition: /dev/xvdb1
        mode: semi-sync
`, []wantErr{
			e(8, "groups[0].resources[0].type", "a mirror_disk needs a lane with mirror: true"),
			e(8, "groups[0].resources[0].type", "a mirror_disk needs a group of exactly two servers, not 1"),
			e(10, "groups[0].resources[0].cluster_partition", "on server n1 the cluster partition is the data partition (/dev/xvdb1)"),
			e(11, "groups[0].resources[0].mode", `"semi-sync" is not one of sync, async`),
		}},
		{"mirror disk options", "cluster: {name: c, key_file: k}\nservers: [{name: n1, interconnects: {lan1: 198.18.0.1}}, {name: n2, interconnects: {lan1: 198.18.0.2}}]\nlanes: [{name: lan1, mirror: true}]\n" + `groups:
  - name: g
    resources:
      - {name: md1, type: mirror_disk, data_partition: /d1, cluster_partition: /c1, port: 29051, frontend: none, mount_point: /mnt, fs_type: btrfs}
      - {name: md2, type: mirror_disk, data_partition: /d2, cluster_partition: /c2, port: 29051, mkfs: true, timeout_ms: 0, resync_rate_mbps: -1}
      - {name: md3, type: mirror_disk, data_partition: /d3, cluster_partition: /c3, port: 70000, tls: {cert: c.pem, ca: /ca.pem}, hot_extents: 70000}
`, []wantErr{
			e(7, "groups[0].resources[0].fs_type", `"btrfs" is not one of ext4, xfs`),
			e(7, "groups[0].resources[0].mount_point", "needs a frontend to mount; frontend is none"),
			e(8, "groups[0].resources[1].port", "29051 is already the port of mirror disk md1"),
			e(8, "groups[0].resources[1].mkfs", "needs a mount_point"),
			e(8, "groups[0].resources[1].timeout_ms", "must be greater than 0, not 0"),
			e(8, "groups[0].resources[1].resync_rate_mbps", "must not be negative, not -1"),
			e(9, "groups[0].resources[2].port", "70000 is not a TCP port"),
			e(9, "groups[0].resources[2].hot_extents", "must be 0 to 65534, not 70000"),
			e(9, "groups[0].resources[2].tls.cert", `"c.pem" is not an absolute path`),
			e(9, "groups[0].resources[2].tls.key", "required"),
		}},
		{"monitor interval 0 and negative retry", base + "monitors:\n  - {name: m, type: tcp, address: \"a:1\", interval_ms: 0, retry: -1}\n",
			[]wantErr{e(8, "monitors[0].interval_ms", "must be greater than 0, not 0"), e(8, "monitors[0].retry", "must not be negative, not -1")}},
		{"unknown timing", base + "monitors:\n  - {name: m, type: tcp, address: \"a:1\", timing: sometimes}\n",
			[]wantErr{e(8, "monitors[0].timing", `"sometimes" is not one of always, active`)}},
		{"active without active_on", base + "monitors:\n  - name: m\n    type: tcp\n    address: \"a:1\"\n    timing: active\n",
			[]wantErr{e(8, "monitors[0].active_on", "required when timing is active")}},
		{"active_on with timing always", base + "groups: [{name: g}]\nmonitors:\n  - {name: m, type: tcp, address: \"a:1\", timing: always, active_on: g}\n",
			[]wantErr{e(9, "monitors[0].active_on", "only used with timing: active")}},
		{"LocalServer with counts", base + `monitors:
  - name: m
    type: tcp
    address: "a:1"
    recovery:
      target: LocalServer
      reactivation_count: 1
      failover_count: 2
      final_action: stop_group
`, []wantErr{
			e(13, "monitors[0].recovery.reactivation_count", "must be 0 when the target is LocalServer"),
			e(14, "monitors[0].recovery.failover_count", "must be 0 when the target is LocalServer"),
			e(15, "monitors[0].recovery.final_action", "stop_group needs a group or resource target, not LocalServer"),
		}},
		{"negative recovery count", base + "groups: [{name: g}]\nmonitors:\n  - {name: m, type: tcp, address: \"a:1\", recovery: {target: g, failover_count: -1}}\n",
			[]wantErr{e(9, "monitors[0].recovery.failover_count", "must not be negative, not -1")}},
		{"unknown final action", base + "monitors:\n  - {name: m, type: tcp, address: \"a:1\", recovery: {final_action: reboot}}\n",
			[]wantErr{e(8, "monitors[0].recovery.final_action", `"reboot" is not one of none, stop_group, stop_cluster_service, stop_cluster_service_and_shutdown`)}},
		{"tcp monitor without port", base + "monitors:\n  - {name: m, type: tcp, address: ec2.ap-northeast-1.amazonaws.com}\n",
			[]wantErr{e(8, "monitors[0].address", `"ec2.ap-northeast-1.amazonaws.com" is not host:port`)}},
		{"ip monitor bad address", base + "monitors:\n  - name: ipw1\n    type: ip\n    addresses:\n      - 10.0.10.100\n      - nat-b\n",
			[]wantErr{e(12, "monitors[0].addresses[1]", `"nat-b" is not an IP address`)}},
		{"aws_az monitor with a bad zone", base + "monitors:\n  - {name: az, type: aws_az, availability_zone: Tokyo}\n",
			[]wantErr{e(8, "monitors[0].availability_zone", `"Tokyo" is not an availability zone (like ap-northeast-1a)`)}},
		{"aws bad region", strings.Replace(base, "key_file: k}", "key_file: k, aws: {region: tokyo}}", 1),
			[]wantErr{e(1, "cluster.aws.region", `"tokyo" is not an AWS region (ap-northeast-1)`)}},
		{"aws bad endpoint", strings.Replace(base, "key_file: k}", "key_file: k, aws: {endpoint: \"ftp://x\"}}", 1),
			[]wantErr{e(1, "cluster.aws.endpoint", `"ftp://x" is not an http(s) URL (http://127.0.0.1:4566)`)}},
		{"aws_vip bad route table", base + "groups:\n  - name: g\n    resources:\n      - {name: vip, type: aws_vip, ip: 10.1.0.20, route_tables: [rtb-12345678, rtb-12345678, rt-1]}\n",
			[]wantErr{e(10, "groups[0].resources[0].route_tables[1]", "route table rtb-12345678 is listed twice"), e(10, "groups[0].resources[0].route_tables[2]", `"rt-1" does not look like a route table ID (rtb-1234abcd)`)}},
		{"aws_az bad on_api_failure", base + "monitors:\n  - {name: az, type: aws_az, availability_zone: ap-northeast-1a, on_api_failure: ignore}\n",
			[]wantErr{e(8, "monitors[0].on_api_failure", `"ignore" is not one of warning, error, none`)}},

		// Per-server keys that are not individually settable.
		{"per-server floating_ip address", base + `groups:
  - name: g
    resources:
      - name: fip1
        type: floating_ip
        address: 198.18.100.10/24
        interface: eth0
        servers:
          n2: {interface: eth1, address: 198.18.100.11/24}
`, []wantErr{e(15, "groups[0].resources[0].servers.n2.address", "not individually settable for type floating_ip (settable: interface)")}},
		{"per-server common key", base + `groups:
  - name: g
    resources:
      - name: app
        type: exec
        start: /bin/true
        servers:
          n2:
            start_timeout_ms: 5
`, []wantErr{e(15, "groups[0].resources[0].servers.n2.start_timeout_ms", "not individually settable for type exec (settable: start, stop)")}},
		{"per-server tcp monitor", base + `monitors:
  - name: m
    type: tcp
    address: "a:1"
    servers:
      n1: {address: "b:1"}
`, []wantErr{e(12, "monitors[0].servers.n1.address", "not individually settable for type tcp (nothing is)")}},
		{"per-server block as a list", base + `groups:
  - name: g
    resources:
      - name: app
        type: exec
        start: /bin/true
        servers: [n1, n2]
`, []wantErr{e(13, "groups[0].resources[0].servers", "expected a mapping of server name to the values set up individually for it, got a list")}},
		{"per-server value of the wrong type", base + `monitors:
  - name: ipw1
    type: ip
    addresses: [10.0.10.100]
    servers:
      n2: {addresses: 10.0.20.100}
`, []wantErr{e(12, "monitors[0].servers.n2.addresses", `expected a list, got the string "10.0.20.100"`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("cluster.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			checkErrors(t, "cluster.yaml", err, tt.want...)
		})
	}
}

// TestBrokenFile checks the exact messages for a file with many mistakes:
// every one is reported, each on its line, sorted by line.
func TestBrokenFile(t *testing.T) {
	const file = "testdata/broken.yaml"
	_, err := Load(file)
	want := `testdata/broken.yaml:8: cluster.heartbeat.timeout_ms: must not be shorter than interval_ms (200 < 500)
testdata/broken.yaml:10: cluster.np_resolution.action: "reboot" is not one of stop_groups, stop_cluster_service, stop_cluster_service_and_shutdown
testdata/broken.yaml:13: servers[0].interconnects.lan3: unknown lane "lan3"
testdata/broken.yaml:13: servers[0].interconnects: no address on lane "lan2"
testdata/broken.yaml:14: servers[1].name: duplicate server name "node1" (first at line 12)
testdata/broken.yaml:15: servers[1].interconnects: no address on lane "lan2"
testdata/broken.yaml:18: lanes[1].priority: duplicate priority 1: lane lan1 has it too
testdata/broken.yaml:18: lanes[1].mirror: only one lane may carry the mirror connect; lane lan1 already does
testdata/broken.yaml:21: groups[0].servers[1]: unknown server "node3"
testdata/broken.yaml:25: groups[0].resources[0].address: "198.18.100.10" is not an address with its prefix length (like 198.18.100.10/24)
testdata/broken.yaml:27: groups[0].resources[0].vpc_id: not valid for type floating_ip (valid for aws_vip)
testdata/broken.yaml:28: groups[0].resources[0].depends_on[0]: unknown resource "fip2"
testdata/broken.yaml:30: groups[0].resources[0].servers.node2.address: not individually settable for type floating_ip (settable: interface)
testdata/broken.yaml:30: groups[0].resources[0].servers.node2: unknown server "node2"
testdata/broken.yaml:31: groups[0].resources[1].start: missing required key
testdata/broken.yaml:33: groups[0].resources[1].start_timeout_ms: expected an integer, got the string "60s"
testdata/broken.yaml:34: groups[0].resources[1].depends_on: dependency cycle: app -> app2 -> app
testdata/broken.yaml:41: monitors[0].type: an aws_vip monitor is added automatically with its resource; do not configure one
testdata/broken.yaml:42: monitors[1].active_on: required when timing is active: the group or resource whose activity gates the monitor
testdata/broken.yaml:44: monitors[1].addresses[1]: "gateway" is not an IP address
testdata/broken.yaml:48: monitors[1].recovery.reactivation_count: must be 0 when the target is LocalServer: a server is not reactivated, only its final action applies
testdata/broken.yaml:49: monitors[1].recovery.final_action: "reboot" is not one of none, stop_group, stop_cluster_service, stop_cluster_service_and_shutdown`
	if err == nil || err.Error() != want {
		t.Errorf("Load(%s):\n%v\nwant:\n%s", file, err, want)
	}
	var one *Error
	if !errors.As(err, &one) || one.Line != 8 || one.Path != "cluster.heartbeat.timeout_ms" {
		t.Errorf("errors.As(*Error) = %+v, want the first problem", one)
	}
}
