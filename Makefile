# Warren — make targets. `make run` starts a coordinator; `make test` runs
# every test. Both work on a fresh machine with Go installed.

GO       ?= go
BIN      ?= bin
STATE    ?= .warren
LISTEN   ?= 127.0.0.1:8080
FUZZTIME ?= 10s
# The version stamped into every binary (warrend --version, warren version).
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  ?= -X github.com/warrenmesh/warren/internal/version.Version=$(VERSION)

.PHONY: all build run demo coordinator test test-short bench bench-quick lint cross fuzz packages test-packages clean

all: lint test

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# The main job: a coordinator with its embedded SQLite store and a demo
# mesh of two nodes (real processes), a service on one reached from the
# other through the proxy; it prints how to try it and join more nodes.
run: build
	./$(BIN)/warren-demo --bin $(BIN) --state-dir $(STATE) --listen $(LISTEN)

demo: run

# Only the coordinator, with a bootstrap admin and a pre-auth key.
coordinator: build
	./$(BIN)/warren-coordinator serve --state-dir $(STATE)/coordinator --listen $(LISTEN) \
		--bootstrap-user admin@warren.internal

# Every test: unit, fuzz seeds, the in-process mesh (internal/tstest/testmesh), with
# the race detector.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...

test-short:
	$(GO) test -short -count=1 ./...

# The benchmarks, sized to finish in under 10 minutes on two busy cores:
# a fixed run count by size, 20 for the small cases and 2-3 for
# BenchmarkRegistrations (1,500 registrations a run) and the 10,000-node
# BenchmarkFanoutDeliver (about 28 s a run under load). Measured on two
# cores shared with other test runs: 4.4 minutes, was 23.6 (most of it 20
# runs of those two).
# BenchmarkPostureChange (coordinator/netmap) is one device's posture change
# in a 10,000-node mesh with 500 rules (50 posture-gated), beside an
# endpoint change and an unused attribute's change as baselines.
# BenchmarkFlowQuery (coordinator/store) fills a flows table of 10 M rows
# once (one INSERT ... SELECT, 2-4 minutes on two busy cores, about 4 GB
# under TMPDIR) and times filtered queries over it; BenchmarkIngest
# (coordinator/flowlog) stores flow batches through the real path beside
# the bare insert.
# BenchmarkIdleClientRSS (internal/tstest/relayrss) runs warren-derp and
# Tailscale's derper as processes and compares their RSS per idle client.
# The last line is the namespace benchmark: single-stream TCP throughput
# over a veth, a bare wireguard-go tunnel and Warren's TUN mode, with ratios,
# and through a TUN-mode subnet router beside direct mesh in the same run
# (BenchmarkTUNSubnetRouter) (needs root; skips, saying so, otherwise).
BENCH     = $(GO) test -run '^$$' -bench . -benchmem
BIGNETMAP = BenchmarkFanoutDeliver/^nodes=10000$$/^users=1$$
bench:
	$(BENCH) -benchtime 2x ./coordinator/
	$(BENCH) -benchtime 20x -skip '$(BIGNETMAP)' ./coordinator/netmap/
	$(GO) test -run '^$$' -bench '$(BIGNETMAP)' -benchmem -benchtime 3x ./coordinator/netmap/
	$(BENCH) -benchtime 20x $$($(GO) list ./coordinator/... | grep -v -e '/coordinator$$' -e /netmap)
	$(BENCH) -benchtime 3x ./cmd/warren-coordinator/
	$(BENCH) $$($(GO) list ./internal/... | grep -v -e /nsbench -e /relayrss)
	$(GO) test -v -run '^$$' -bench . -benchtime 1x -timeout 10m ./internal/tstest/relayrss/
	$(GO) test -run '^$$' -bench 'Inbound$$' -benchmem ./node/filter/
	$(BENCH) ./derp/ ./node/disco/
	$(GO) test -v -run '^$$' -bench . -benchtime 3s -timeout 10m ./internal/tstest/nsbench/
	$(GO) test -v -run '^$$' -bench 'SubnetRouterUserspace' -timeout 10m ./cmd/warrend/

# A smoke run of every benchmark in the module, one iteration each, one
# package at a time (measured: 1.2 minutes): checks they run, not how fast.
bench-quick:
	$(GO) test -p 1 -run '^$$' -bench . -benchtime 1x -timeout 20m ./...

# gofmt, goimports (standard library, then modules, then this module's
# packages) and staticcheck, at pinned versions fetched by the go command;
# then the cross-builds (make cross).
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOIMPORTS   ?= $(GO) run golang.org/x/tools/cmd/goimports@v0.52.0
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@out=$$($(GOIMPORTS) -local github.com/warrenmesh/warren -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "goimports -local github.com/warrenmesh/warren needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	@$(MAKE) --no-print-directory cross

# Every package, tests included, builds and vets for each OS and CPU the
# node ships for (the packages' per-OS files behind build tags). Measured
# on two busy cores: 35 s with a warm build cache; from a cold one about
# two minutes of CPU per target.
CROSS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64
cross:
	@set -e; for t in $(CROSS); do \
		echo "cross $$t"; \
		GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) build ./...; \
		GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) vet ./...; \
	done

# Release artifacts in dist/: .deb and .rpm of the node (warren) and of
# the coordinator (warren-coordinator) for linux/amd64 and arm64 (made
# with nfpm, fetched by the go command at a pinned version), the macOS
# .tar.gz for amd64 and arm64, the Windows .zip, each with a .sha256 file.
# Needs zip. See ops/packaging/mkpackages.sh.
DIST ?= dist
NFPM ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
packages:
	GO='$(GO)' DIST='$(DIST)' VERSION='$(VERSION)' NFPM='$(NFPM)' CGO_ENABLED=0 TRIMPATH=-trimpath \
		ops/packaging/mkpackages.sh

# Builds this machine's node and coordinator .deb and installs them with
# dpkg -i, checks them, removes and purges them, and leaves the machine
# as it was (Debian, as root; CI runs it). See ops/packaging/test-deb.sh.
# The binaries are built as make test builds them (the go command's cgo
# setting, no -trimpath), so that CI compiles nothing twice.
test-packages:
	rm -rf '$(DIST)/test'
	GO='$(GO)' DIST='$(DIST)/test' VERSION='$(VERSION)' NFPM='$(NFPM)' FORMATS=deb \
		CGO_ENABLED=$$($(GO) env CGO_ENABLED) TRIMPATH= \
		ops/packaging/mkpackages.sh linux/$$($(GO) env GOARCH)
	VERSION='$(VERSION)' ops/packaging/test-deb.sh '$(DIST)/test'

# A short run of every fuzz target.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

clean:
	rm -rf $(BIN) $(STATE) $(DIST)
