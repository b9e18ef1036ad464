#!/usr/bin/env bash
# make bench: the heartbeat codec beside its baseline, measured in one run.
# The baseline is the two HMAC-SHA256 computations a probe costs (sign and
# verify) with a fresh HMAC each time; the codec adds framing, checks and
# its reused HMAC state.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(go test -run '^$' -bench '^(BenchmarkEncodeDecodeProbe|BenchmarkBaselineHMAC)$' -benchmem -count 5 ./dataplane/heartbeat/)
echo "$out" | grep '^Benchmark'
echo "$out" | awk '
	/^BenchmarkEncodeDecodeProbe/ { c += $3; cn++; ca = $(NF-1) }
	/^BenchmarkBaselineHMAC/      { h += $3; hn++; ha = $(NF-1) }
	END {
		if (!cn || !hn) { print "bench: missing results"; exit 1 }
		printf "bench: heartbeat probe encode+decode %.0f ns/op (%d allocs), baseline hmac-sha256 x2 %.0f ns/op (%d allocs), ratio %.2f\n", c/cn, ca, h/hn, ha, (c/cn)/(h/hn)
	}'
# The NBD frontend's server over socketpairs, each workload beside the same
# I/O on the backing file directly (its own baseline, in the same run).
go test -run '^$' -bench '^BenchmarkServer' ./replicator/nbd/ | grep -E '^(Benchmark|bench)'
