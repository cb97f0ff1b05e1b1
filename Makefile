# xvs — build, test, benchmark, fuzz, lint and demo targets.
# Every target works on a fresh clone with Go on PATH (see README.md).

GO        ?= go
BIN       := bin
PKGS      := ./...
# Packages whose code runs concurrently (per-worker tables, shared indexes):
# they also run under the race detector in `make test`. Not internal/robust:
# its floods measure rates and memory, which the detector's cost distorts
# (the packages they drive run under it on their own).
RACE_PKGS ?= ./table/... $(shell $(GO) list ./internal/... | grep -v '/internal/robust$$')
FUZZTIME  ?= 20s
# staticcheck, pinned: `go run` fetches this version through the module
# proxy on first use and caches the build (no go.mod requirement, nothing to
# install). ipvsadm's capitalised messages are the one documented exclusion:
# //lint: directives in internal/ipvs/errors.go and internal/control/protocol.go.
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
# CI fuzzes the per-packet parsers, the whole decision, the template
# snapshot reader and the sync backup's receiver for a bounded time on every
# run (the committed corpora also run as ordinary tests).
FUZZ_CI   ?= ./packet:FuzzDecode ./sipparse:FuzzCallID ./internal/pipeline:FuzzDecision ./internal/daemon:FuzzReadSnapshot ./internal/syncd:FuzzReceive
FUZZTIME_CI ?= 15s
BENCHTIME ?= 1s
SHARED    ?= $(abspath ../shared)

export XVS_SHARED := $(SHARED)

.PHONY: all build test test-short bench bench-report bench-e2e fuzz lint demo clean help

all: build

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## build bin/xvs and bin/xvsadm
	@mkdir -p $(BIN)
	$(GO) build -trimpath -o $(BIN)/xvs ./cmd/xvs
	$(GO) build -trimpath -o $(BIN)/xvsadm ./cmd/xvsadm
	$(GO) build -trimpath -o $(BIN)/xvslab ./cmd/xvslab

test: lint build ## lint, then every test (root-only tests run when root), race detector on concurrent packages
	$(GO) test -count=1 $(PKGS)
	$(GO) test -count=1 -race $(RACE_PKGS)
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x $(PKGS) >/dev/null
	@set -e; for t in $(FUZZ_CI); do \
	  echo "== fuzz $${t#*:} in $${t%%:*} ($(FUZZTIME_CI))"; \
	  $(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME_CI) -fuzzminimizetime 2s $${t%%:*}; \
	done

test-short: ## unit tests only, no race detector
	$(GO) test -count=1 -short $(PKGS)

bench: ## micro-benchmarks (packets/s and allocs/op beside same-run baselines)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

bench-report: ## run the benchmarks quoted in docs/performance.md into docs/bench/latest.txt
	./scripts/bench-report.sh

bench-e2e: build ## as root: end-to-end lab benchmark (full mode; BENCH_E2E_FLAGS= for the quick one) into docs/bench/e2e-latest.{json,md,svg}
	./$(BIN)/xvslab bench --out docs/bench/e2e-latest $${BENCH_E2E_FLAGS---full}

fuzz: ## run every fuzz target for FUZZTIME each (corpus in testdata/fuzz)
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s $$pkg; \
	  done; \
	done

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(STATICCHECK) $(PKGS)

demo: build ## as root: a SIP farm in network namespaces, xvs on AF_XDP, SIPp calls; else the offline replay
	./scripts/demo.sh

clean: ## remove build output
	rm -rf $(BIN)
