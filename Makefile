# xvs — build, test, benchmark, fuzz, lint, demo and install targets.
# Every target works on a fresh clone with Go on PATH (see README.md).

# go from PATH, else where Go's own tarball installs it: sudo resets PATH to
# its secure_path, which does not have /usr/local/go/bin.
GO        ?= $(or $(shell command -v go 2>/dev/null),$(wildcard /usr/local/go/bin/go),go)
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
# //lint: directives in internal/ipvs/errors.go, internal/control/protocol.go and
# internal/syncd/config.go.
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
# CI fuzzes the per-packet parsers, the whole decision, the template
# snapshot reader, the sync backup's receiver and its workers' entry of what
# it receives, the capture reader and the keepalived.conf reader (an
# operator's file, included files and all) for a bounded time on every run
# (the committed corpora also run as ordinary tests).
FUZZ_CI   ?= ./packet:FuzzDecode ./sipparse:FuzzCallID ./internal/pipeline:FuzzDecision ./internal/daemon:FuzzReadSnapshot ./internal/syncd:FuzzReceive ./internal/pipeline:FuzzSyncApply ./internal/capture:FuzzReader ./internal/keepalived:FuzzLoad
FUZZTIME_CI ?= 15s
BENCHTIME ?= 1s
SHARED    ?= $(abspath ../shared)
# make install: PREFIX/bin for the binaries, PREFIX/lib/systemd/system for
# the unit, SYSCONFDIR for settings and rules; DESTDIR stages it all.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
DESTDIR    ?=

export XVS_SHARED := $(SHARED)

.PHONY: all build test test-short bench bench-report bench-e2e fuzz lint demo demo-ha install uninstall clean help

all: build ## the default: build

help: ## list targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:[^#]*## /\t/' | awk -F'\t' '{printf "%-13s %s\n", $$1, $$2}'

build: ## build bin/xvs, bin/xvsadm and bin/xvslab (the lab: make demo, make bench-e2e)
	@mkdir -p $(BIN)
	$(GO) build -trimpath -o $(BIN)/xvs ./cmd/xvs
	$(GO) build -trimpath -o $(BIN)/xvsadm ./cmd/xvsadm
	$(GO) build -trimpath -o $(BIN)/xvslab ./cmd/xvslab

test: lint build ## lint; every test (root-only ones run when root); the race detector on concurrent packages; every benchmark once; CI fuzzing (FUZZ_CI)
	$(GO) test -count=1 $(PKGS)
	$(GO) test -count=1 -race $(RACE_PKGS)
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x $(PKGS) >/dev/null
	@set -e; for t in $(FUZZ_CI); do \
	  echo "== fuzz $${t#*:} in $${t%%:*} ($(FUZZTIME_CI))"; \
	  $(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME_CI) -fuzzminimizetime 2s $${t%%:*}; \
	done
	@if [ ! -d "$(SHARED)/testdata/pcap" ]; then \
	  echo "*** NOT TESTED: $(SHARED) is missing: the 7 GPL/AGPL captures only it holds (heplify_*, sngrep_*: IPv6 fragments over Linux SLL, SIP over TCP, SCTP, WebSocket, IPIP) were skipped; the corpus tests used the repository's own captures only (testdata/captures/README.md). Put shared/ beside the repository or run make test SHARED=DIR. ***"; \
	fi

test-short: ## unit tests only, no race detector
	$(GO) test -count=1 -short $(PKGS)

bench: ## micro-benchmarks (packets/s and allocs/op beside same-run baselines)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

bench-report: ## run the benchmarks quoted in docs/performance.md into docs/bench/latest.txt
	./scripts/bench-report.sh

bench-e2e: build ## as root: end-to-end lab benchmark (full mode; BENCH_E2E_FLAGS= for the quick one) into docs/bench/e2e-latest.{json,md,svg}
	./$(BIN)/xvslab bench --out docs/bench/e2e-latest $${BENCH_E2E_FLAGS---full}

fuzz: ## run every fuzz target for FUZZTIME each (corpora in */testdata/fuzz)
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

demo-ha: build ## as root: two directors (xvs + keepalived + sync daemons), long SIP calls, the active director's xvs killed mid-calls
	./bin/xvslab demo --ha

install: build ## install xvs and xvsadm, a systemd unit and an example rules file (PREFIX, DESTDIR; docs/running.md)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/xvs $(DESTDIR)$(SYSCONFDIR)/default
	install -m 0755 $(BIN)/xvs $(BIN)/xvsadm $(DESTDIR)$(BINDIR)/
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' dist/xvs.service.in > $(DESTDIR)$(UNITDIR)/xvs.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/xvs.service
	install -m 0644 examples/xvs.rules $(DESTDIR)$(SYSCONFDIR)/xvs/xvs.rules.example
	@# Settings and rules are the operator's: put in place once, never overwritten.
	[ -e $(DESTDIR)$(SYSCONFDIR)/xvs/xvs.rules ] || install -m 0644 examples/xvs.rules $(DESTDIR)$(SYSCONFDIR)/xvs/xvs.rules
	[ -e $(DESTDIR)$(SYSCONFDIR)/default/xvs ] || install -m 0644 dist/xvs.default $(DESTDIR)$(SYSCONFDIR)/default/xvs
	@echo "installed; next: set XVS_IFACE in $(SYSCONFDIR)/default/xvs, services in $(SYSCONFDIR)/xvs/xvs.rules, then: systemctl daemon-reload && systemctl enable --now xvs"

uninstall: ## remove what make install put in place, except settings and rules
	rm -f $(DESTDIR)$(BINDIR)/xvs $(DESTDIR)$(BINDIR)/xvsadm $(DESTDIR)$(UNITDIR)/xvs.service $(DESTDIR)$(SYSCONFDIR)/xvs/xvs.rules.example

clean: ## remove build output
	rm -rf $(BIN)
