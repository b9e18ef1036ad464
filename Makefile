# Vigil — build, test, demo.
GO       ?= go
BIN      := bin
PKGS     := ./...
FUZZTIME ?= 20s

.PHONY: all build deps test vet lint fmt-check demo fuzz bench bench-aws clean generate generate-check bench-heartbeat bench-mirror bench-vm vmtest

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/vigild ./cmd/vigild
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/vigilctl ./cmd/vigilctl
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/vigil-awsemu ./cmd/vigil-awsemu

deps:
	./scripts/install-deps.sh

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# generate compiles the eBPF programs in bpf/ and regenerates their Go
# bindings (bpf2go, a module tool; needs clang and llvm-strip). The
# generated *_bpfel.go and *_bpfel.o files are committed, so a plain build
# never needs clang.
generate:
	$(GO) generate ./dataplane/... ./internal/bpftest/...

# BPF_GENERATED are the bpf2go outputs, as git pathspecs.
BPF_GENERATED := '*_bpfel.go' '*_bpfel.o'

# generate-check regenerates and fails if the result differs from what is
# committed (needs a git checkout).
generate-check: generate
	@git diff --stat --exit-code -- $(BPF_GENERATED) && test -z "$$(git status --porcelain -- $(BPF_GENERATED))" || \
		{ echo "generate-check: bpf2go output differs from the committed files; run make generate and commit"; git status --short -- $(BPF_GENERATED); exit 1; }

vet:
	$(GO) vet $(PKGS)

# lint runs staticcheck, pinned in go.mod as a module tool.
lint:
	$(GO) tool staticcheck -checks 'all,-ST1000,-ST1003' $(PKGS)

# test runs every test: unit tests, and the privileged network-namespace
# tests (as root; under CI=true they must not skip).
test: deps fmt-check vet lint build
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	$(MAKE) --no-print-directory vmtest

demo: deps build
	./scripts/demo.sh

# fuzz runs each fuzz target for FUZZTIME.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./dataplane/heartbeat/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./control/ledger/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./control/config/
	for t in FuzzParseQuery FuzzGlobMatch FuzzParseWorld FuzzEC2Request FuzzRoute53Request; do \
		$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./awsops/awsemu/ || exit 1; done
	$(GO) test -run '^$$' -fuzz '^FuzzReadFrame$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./replicator/wire/
	$(GO) test -run '^$$' -fuzz '^FuzzHandshake$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./replicator/wire/
	$(GO) test -run '^$$' -fuzz '^FuzzRequest$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./replicator/nbd/
	$(GO) test -run '^$$' -fuzz '^FuzzSession$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./replicator/engine/

# bench prints each figure beside a baseline measured in the same run.
bench:
	./scripts/bench.sh

# bench-aws times an aws_vip failover's route switch (three route tables,
# 100 ms injected into every AWS call) beside the same calls one by one.
bench-aws:
	$(GO) run ./internal/cmd/benchaws -world examples/awsemu-world.yaml

clean:
	rm -rf $(BIN)

# bench-heartbeat (root; ~15 min) times a SIGKILLed active daemon to the
# standby binding the floating IP, with the eBPF and the userspace heartbeat
# beside keepalived, then counts false failovers and heartbeat RTTs while
# the active daemon is SIGSTOPped 150 ms a second.
# It builds bin/vigild and bin/vigilctl first, as make build does.
# BENCH_HEARTBEAT_FLAGS=-quick is a short run; -h lists the flags.
bench-heartbeat: deps
	$(GO) run ./internal/cmd/benchheartbeat $(BENCH_HEARTBEAT_FLAGS)

# bench-mirror (root; about two minutes) measures the mirror disk between two
# network namespaces over veth, with 1 GiB file partitions on one disk:
# sequential 1 MiB writes (MB/s) and random 4 KiB sync writes at queue
# depth 1 (IOPS, p50, p99) on the raw backing file, through Vigil in sync
# and in async mode, beside the link's TCP throughput and RTT and the rate
# of the mirror connect's authenticated frames alone over it; then the
# resync of a volume 1 % dirty against a full sync. It prints each goal
# with MET or NOT MET and ends with three bench-mirror: summary lines.
# BENCH_MIRROR_FLAGS=-quick is a short run; -h lists the flags.
bench-mirror:
	$(GO) run ./internal/cmd/benchmirror $(BENCH_MIRROR_FLAGS)

# bench-vm (about four minutes under TCG) boots the VM harness's Debian 6.1
# kernel and compares DRBD 8.4 in protocol C (the kernel's drbd.ko) with
# Vigil's mirror disk in sync mode, both between two loop devices across
# one veth, with bench-mirror's workloads on /dev/drbd0 and /dev/nbdN
# (O_DIRECT): sequential 1 MiB writes (MB/s) and random 4 KiB sync writes
# at queue depth 1 (p99), interleaved over rounds. It ends with two
# bench-vm: summary lines. BENCH_VM_FLAGS: -benchvm.mib=N,
# -benchvm.rounds=N, -benchvm.rand-time=D (vmtests/drbd).
bench-vm: deps
	CGO_ENABLED=0 $(GO) build -o $(BIN)/vigil-vmexec ./vmtests/cmd/vigil-vmexec
	$(GO) run ./internal/cmd/benchvm -exec $(BIN)/vigil-vmexec $(BENCH_VM_FLAGS)

# vmtest boots Debian's cloud kernel (bookworm, 6.1) in qemu and runs the
# VM suites (vmtests/README.md): the eBPF dataplane and vigild's
# integration tests on that kernel, vigild on a netem link, two VMs
# heartbeating each other. KVM when it works, else TCG. It prints the boot
# time and each suite's duration. VMTEST_FLAGS: -run REGEXP, suite names.
vmtest: deps
	CGO_ENABLED=0 $(GO) build -o $(BIN)/vigil-vmtest ./vmtests/cmd/vigil-vmtest
	CGO_ENABLED=0 $(GO) build -o $(BIN)/vigil-vmexec ./vmtests/cmd/vigil-vmexec
	$(BIN)/vigil-vmtest $(VMTEST_FLAGS)
