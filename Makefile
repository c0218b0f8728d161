# Warren — make targets. `make run` starts a coordinator; `make test` runs
# every test. Both work on a fresh machine with Go installed.

GO       ?= go
BIN      ?= bin
STATE    ?= .warren
LISTEN   ?= 127.0.0.1:8080
FUZZTIME ?= 10s

.PHONY: all build run demo coordinator test test-short bench lint fuzz clean

all: lint test

build:
	$(GO) build -o $(BIN)/ ./cmd/...

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

# BenchmarkIdleClientRSS (internal/tstest/relayrss) runs warren-derp and
# Tailscale's derper as processes and compares their RSS per idle client.
# The last line is the namespace benchmark: single-stream TCP throughput
# over a veth, a bare wireguard-go tunnel and Warren's TUN mode, with ratios
# (needs root; skips, saying so, otherwise).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 20x ./coordinator/...
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 3x ./cmd/warren-coordinator/
	$(GO) test -run '^$$' -bench . -benchmem $$($(GO) list ./internal/... | grep -v -e /nsbench -e /relayrss)
	$(GO) test -v -run '^$$' -bench . -benchtime 1x -timeout 10m ./internal/tstest/relayrss/
	$(GO) test -run '^$$' -bench 'Inbound$$' -benchmem ./node/filter/
	$(GO) test -run '^$$' -bench . -benchmem ./derp/ ./node/disco/
	$(GO) test -v -run '^$$' -bench . -benchtime 3s -timeout 10m ./internal/tstest/nsbench/

# gofmt, goimports (standard library, then modules, then this module's
# packages) and staticcheck, at pinned versions fetched by the go command.
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOIMPORTS   ?= $(GO) run golang.org/x/tools/cmd/goimports@v0.52.0
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@out=$$($(GOIMPORTS) -local github.com/warrenmesh/warren -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "goimports -local github.com/warrenmesh/warren needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

# A short run of every fuzz target.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

clean:
	rm -rf $(BIN) $(STATE)
