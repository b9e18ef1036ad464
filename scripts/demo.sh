#!/usr/bin/env bash
# make demo: a two-node Vigil cluster on this machine that fails over.
#
# Three network namespaces on a private switch namespace: node1 and node2
# (the cluster, two interconnect lanes) and nat (the guides' NAT instance:
# NP target and client, and AWS: vigil-awsemu with the guides' VIP
# topology). Both daemons start, node1 runs failover1 (an aws_vip and an
# exec application), the demo SIGKILLs node1's vigild, node2 takes over and
# points the three route tables' VIP route at its ENI, and the failover time
# is measured from the kill to the group online on node2. Everything created
# is removed on exit.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bin=$top/bin
[ "$(id -u)" -eq 0 ] || { echo "demo: needs root (network namespaces)" >&2; exit 1; }
[ -x "$bin/vigild" ] && [ -x "$bin/vigilctl" ] && [ -x "$bin/vigil-awsemu" ] || { echo "demo: run 'make build' first" >&2; exit 1; }

tag=vd$$
sw=$tag-sw n1=$tag-n1 n2=$tag-n2 nat=$tag-nat
work=$(mktemp -d /tmp/vigil-demo.XXXXXX)
pids=()

if [ -t 1 ]; then
	say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
	say() { printf '\n== %s\n' "$*"; }
fi

cleanup() {
	for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
	for _ in $(seq 50); do
		alive=0
		for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive -eq 0 ] && break
		sleep 0.1
	done
	for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
	for ns in $n1 $n2 $nat $sw; do ip netns del "$ns" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

say "topology: namespaces $n1 $n2 $nat on switch $sw (198.18.0.0/24 lan1, 198.18.1.0/24 lan2)"
for ns in $sw $n1 $n2 $nat; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n $sw link add br0 type bridge; ip -n $sw link set br0 up
ip -n $sw link add br1 type bridge; ip -n $sw link set br1 up
plug() { # plug NS IF BRIDGE ADDR
	local ns=$1 ifn=$2 br=$3 addr=$4 peer=${1##*-}-$2
	ip link add "$peer" netns $sw type veth peer name "$ifn" netns "$ns"
	ip -n $sw link set "$peer" master "$br" up
	ip -n "$ns" addr add "$addr" dev "$ifn"
	ip -n "$ns" link set "$ifn" up
}
plug $n1 eth0 br0 198.18.0.1/24; plug $n1 eth1 br1 198.18.1.1/24
plug $n2 eth0 br0 198.18.0.2/24; plug $n2 eth1 br1 198.18.1.2/24
plug $nat eth0 br0 198.18.0.254/24

say "AWS: vigil-awsemu in $nat with examples/awsemu-world.yaml (VPC 10.0.0.0/16, VIP 10.1.0.20 in 3 route tables)"
ip netns exec $nat "$bin/vigil-awsemu" -world "$top/examples/awsemu-world.yaml" -listen 198.18.0.254:4566 \
	-imds-listen 198.18.0.254:4567 -imds-client i-0123456789abcde10=198.18.0.1 \
	-imds-client i-0123456789abcde20=198.18.0.2 >>"$work/awsemu.log" 2>&1 &
pids+=($!)
disown $!
emu() { ip netns exec $nat curl -fsS "http://198.18.0.254:4566$1"; }
# The world's ENIs, and the node each belongs to.
declare -A eni_node=([eni-12345678]=node1 [eni-87654321]=node2)
declare -A node_ip=([node1]=198.18.0.1 [node2]=198.18.0.2)
routes() { # the VIP route of every route table, as "rtb-x -> eni-y (node)"
	emu /_emu/state | jq -r '.route_tables[] | .id as $t | .routes[] | select(.destination=="10.1.0.20/32") | "\($t) \(.eni_id)"' |
		while read -r t e; do echo "  $t: 10.1.0.20/32 -> $e (${eni_node[$e]:-?})"; done
}
# vpc_route makes the client's namespace route the VIP as the VPC would:
# to the node whose ENI the route tables name.
vpc_route() {
	local e; e=$(emu /_emu/state | jq -r '[.route_tables[].routes[] | select(.destination=="10.1.0.20/32") | .eni_id][0]')
	ip -n $nat route replace 10.1.0.20/32 via "${node_ip[${eni_node[$e]}]}"
}

cp "$top"/examples/demo/*.sh "$work/"
sed -e "s#: app-#: $work/app-#" -e "s#/WORK/#$work/#g" "$top/examples/demo/cluster.yaml" > "$work/cluster.yaml"
for n in node1 node2; do truncate -s 64M "$work/$n.data"; done
head -c 32 /dev/urandom > "$work/demo.key"; chmod 600 "$work/demo.key"
"$bin/vigilctl" config check "$work/cluster.yaml" >/dev/null

start() { # start NODE NS
	ip netns exec "$2" env AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE \
		AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY "$bin/vigild" -config "$work/cluster.yaml" -server "$1" \
		-socket "$work/$1.sock" >>"$work/$1.log" 2>&1 &
	pids+=($!)
	disown $!
}
ctl() { "$bin/vigilctl" --socket "$work/$1.sock" "${@:2}"; }
state() { ctl "$1" status --json 2>/dev/null | jq -r --arg g "$2" '.groups[] | select(.name==$g) | "\(.state) \(.owner)"'; }
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
	local until=$((SECONDS + $1)) what=$2; shift 2
	until "$@"; do
		if [ $SECONDS -ge $until ]; then
			echo "demo: timed out waiting for $what" >&2
			tail -n 30 "$work"/*.log >&2
			exit 1
		fi
		sleep 0.05
	done
}
online_on() { [ "$(state "$1" failover1)" = "online $2" ]; }
mirror_is() { [ "$(ctl "$1" status --json 2>/dev/null | jq -r '.mirrors[]? | select(.name=="md1") | "\(.role) \(.state)"')" = "$2" ]; }

for _ in $(seq 100); do emu /_emu/state >/dev/null 2>&1 && break; sleep 0.05; done
echo "route tables before:"; routes

say "starting vigild on node1 and node2"
start node1 $n1; pid1=$!
start node2 $n2
wait_for 30 "failover1 online on node1" online_on node1 node1
wait_for 10 "node2 to see it" online_on node2 node1
wait_for 30 "md1 connected, node2 secondary" mirror_is node2 "secondary connected"
ctl node2 status

echo "route tables with failover1 on node1:"; routes
say "client ($nat) reaches the VIP 10.1.0.20 through the VPC's routes"
vpc_route
ip netns exec $nat ping -c 2 -W 1 10.1.0.20 | tail -n 2

say "SIGKILL vigild on node1 (pid $pid1)"
kill_ns=$(date +%s%N)
kill -9 "$pid1"
wait_for 30 "failover1 online on node2" online_on node2 node2
ctl node2 status

online_ns=$(ctl node2 status --json | jq -r '.last_failover.events[-1].at' | xargs -I{} date -d {} +%s%N)
ms=$(( (online_ns - kill_ns) / 1000000 ))

say "the route tables now point at node2's ENI; the client reaches the VIP on node2"
routes
if routes | grep -qv '(node2)'; then echo "demo: a route table was not switched to node2" >&2; exit 1; fi
vpc_route
ip netns exec $nat ping -c 2 -W 1 10.1.0.20 | tail -n 2
ctl node2 status --json | jq -r '.vips[]? | "VIP \(.address) on node2 (counted by TC in the kernel): \(.packets) packets, the first \(if .first_packet_after then "\(.first_packet_after / 1e6) ms" else "(none yet)" end) after it was bound"'
if [ "$(ctl node2 status --json | jq '[.vips[]? | select(.packets == 0 or .first_packet_after == null)] | length')" != 0 ]; then
	echo "demo: the kernel counted no packet to the VIP on node2 after the failover" >&2; exit 1
fi

say "restarting vigild on node1: it cleans the stale address and joins as standby"
start node1 $n1
wait_for 30 "node1 back as standby" online_on node1 node2
if ip -n $n1 addr show dev eth0 | grep -q 10.1.0.20; then
	echo "demo: node1 kept the stale VIP" >&2; exit 1
fi
say "md1: node1 resyncs what node2 wrote alone, and verify compares both copies"
wait_for 30 "md1 back on node1 as a connected secondary" mirror_is node1 "secondary connected"
ctl node2 mirror status md1
ctl node2 mirror verify md1
ctl node1 status

echo
echo "demo: failover ok in $ms ms"
