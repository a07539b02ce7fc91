# OpsDesk: workspace-wide targets. Commands that span the workspace loop over
# its modules (`go list -m`), because `go test ./...` at the root does not
# cover a go.work workspace. Needs only Go, the module proxy and, for tests,
# a Postgres (DATABASE_URL, default the local server).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
MODULES   = $(shell $(GO) list -m -f '{{.Dir}}')
# staticcheck is run from the module proxy at a pinned version: nothing to install.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# The race detector runs on every module that holds concurrent code (libs,
# the services, the binaries). The system tests and the benchmark smoke test
# (tests/) run without it: measured on 2 cores, -race there took the module
# from ~35 s to ~150 s and the whole run from ~2.5 to ~5 min, while the code
# they drive is raced in its own module. RACE_MODULES=all races everything.
RACE_MODULES ?= libs services/identity services/intake cmd/opsdesk api
FUZZTIME ?= 10s

.PHONY: help build run test bench lint generate fuzz tidy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

build: ## build bin/opsdesk (all-in-one), bin/identity and bin/intake
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/opsdesk ./cmd/opsdesk
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/identity ./services/identity/cmd/identity
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/intake ./services/intake/cmd/intake

run: build ## build, then run every service in one process on http://127.0.0.1:8080
	./bin/opsdesk run

test: ## go test every module (-race where RACE_MODULES says), then a summary
	@log=$$(mktemp); trap 'rm -f "$$log"' EXIT; start=$$(date +%s); rc=0; \
	for dir in $(MODULES); do \
	  rel=$${dir#$(CURDIR)/}; flags="-count=1"; \
	  if [[ "$(RACE_MODULES)" == all || " $(RACE_MODULES) " == *" $$rel "* ]]; then flags="-race $$flags"; fi; \
	  echo "=== $$rel: go test $$flags ./..."; \
	  t0=$$(date +%s); \
	  (cd "$$dir" && $(GO) test $$flags ./... 2>&1) | tee -a "$$log" || rc=1; \
	  echo "=== $$rel: $$(( $$(date +%s) - t0 ))s"; \
	done; \
	passed=$$(grep -cE '^ok[[:space:]]' "$$log" || true); \
	failed=$$(grep -cE '^FAIL[[:space:]]' "$$log" || true); \
	echo "make test took $$(( $$(date +%s) - start ))s; counts are test packages"; \
	echo "packages: $$passed passed, $$failed failed"; \
	exit $$rc

bench: ## run the benchmark program (tests/bench): prints a table, writes bench-results.json
	cd tests && $(GO) run ./bench -out ../bench-results.json

lint: ## gofmt, go mod tidy -diff, go vet and staticcheck on every module
	@unformatted=$$(gofmt -l $(MODULES)); \
	if [[ -n "$$unformatted" ]]; then echo "gofmt: these files need formatting:"; echo "$$unformatted"; exit 1; fi
	@for dir in $(MODULES); do \
	  echo "=== $${dir#$(CURDIR)/}: go mod tidy -diff, go vet, staticcheck"; \
	  (cd "$$dir" && $(GO) mod tidy -diff && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...); \
	done

generate: ## go generate in every module
	@for dir in $(MODULES); do (cd "$$dir" && $(GO) generate ./...); done

fuzz: ## run each fuzz target for FUZZTIME (default 10s)
	@for file in $$(grep -rlE --include='*_test.go' '^func Fuzz[A-Z]' $(MODULES)); do \
	  dir=$$(dirname "$$file"); \
	  for fn in $$(grep -oE '^func Fuzz[A-Za-z0-9_]+' "$$file" | cut -d' ' -f2); do \
	    echo "=== fuzz $${dir#$(CURDIR)/} $$fn ($(FUZZTIME))"; \
	    (cd "$$dir" && $(GO) test -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) .); \
	  done; \
	done

tidy: ## go mod tidy in every module
	@for dir in $(MODULES); do (cd "$$dir" && $(GO) mod tidy); done

clean: ## remove binaries (keeps .data, the local NATS and Postgres data)
	rm -rf bin
