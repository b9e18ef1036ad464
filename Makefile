# Vigil — build, test, demo.
GO       ?= go
BIN      := bin
PKGS     := ./...
FUZZTIME ?= 20s

.PHONY: all build deps test vet lint fmt-check demo fuzz bench clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/vigild ./cmd/vigild
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/vigilctl ./cmd/vigilctl

deps:
	./scripts/install-deps.sh

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# lint runs staticcheck, pinned in go.mod as a module tool.
lint:
	$(GO) tool staticcheck -checks 'all,-ST1000,-ST1003' $(PKGS)

# test runs every test: unit tests, and the privileged network-namespace
# tests (as root; under CI=true they must not skip).
test: deps fmt-check vet lint build
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

demo: deps build
	./scripts/demo.sh

# fuzz runs each fuzz target for FUZZTIME.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./dataplane/heartbeat/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./control/ledger/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./control/config/

# bench prints each figure beside a baseline measured in the same run.
bench:
	./scripts/bench.sh

clean:
	rm -rf $(BIN)
