# cnab-airgap: the two set-up commands are `make demo` and `make test`.
GO       ?= go
BIN      := bin/cnab-airgap
PKGS     := ./...
FUZZTIME ?= 20s
FUZZMINTIME ?= 5s

.PHONY: all build tools test unit e2e demo bench fuzz vet fmt lint docs clean

all: build

# The version and commit shown by `cnab-airgap version`.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X main.buildVersion=$(VERSION) -X main.buildCommit=$(COMMIT)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/cnab-airgap

# The real tools the e2e tests run (skopeo, notary-server, openssl, cosign):
# taken from PATH when acceptable, else the distribution's packages when root,
# else built with Go into TOOLS_DIR/bin (see scripts/tools.sh; cosign v2.6.5
# always from tools/cosign, which pins it). That directory comes first on
# PATH for every recipe, so the tests find it.
TOOLS_DIR ?= $(CURDIR)/.cache/tools
export CNAB_AIRGAP_TOOLS_DIR := $(TOOLS_DIR)
export PATH := $(TOOLS_DIR)/bin:$(PATH)

tools:
	@bash scripts/tools.sh

# Unit tests, fuzz seed corpora and the e2e suite (real registries in-process).
test: tools
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 20m $(PKGS)

unit:
	$(GO) test -count=1 -short ./pkg/... ./internal/... ./cmd/...

e2e: tools
	$(GO) test -count=1 -timeout 20m ./e2e/...

# The whole story on an embedded default: two in-process registries, a
# sample bundle pushed with cnab-to-oci, export, import, verify, summary.
demo:
	$(GO) run ./e2e/demo

bench: tools
	$(GO) run ./bench

# Each fuzz target for FUZZTIME; a new input is minimized for at most
# FUZZMINTIME (the default 60s would eat the whole budget of a slow target).
# Every target runs; the failing ones are listed at the end.
fuzz:
	@failed=""; for t in $$(grep -ho 'func Fuzz[A-Za-z0-9_]*' -r pkg internal | sed 's/func //' | sort -u); do \
	  pkg=$$(grep -l "func $$t(" -r pkg internal | head -1 | xargs dirname); \
	  echo "fuzz $$t in $$pkg for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) ./$$pkg || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz targets that failed:$$failed"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# golangci-lint at a pinned version (.golangci.yml), built once into the
# tool cache from its own module, tools/lint, whose go.mod and go.sum pin it
# and every dependency (a few minutes). `go build` in that module fetches only
# the listed module versions: unlike `go install path@version` it never asks
# the proxy about path prefixes that are not modules, which a proxy may answer
# with a 5xx instead of a 404. A failed fetch is retried twice.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(TOOLS_DIR)/golangci-lint-$(GOLANGCI_LINT_VERSION)/golangci-lint

$(GOLANGCI_LINT): tools/lint/go.mod tools/lint/go.sum
	@echo "lint: building golangci-lint $(GOLANGCI_LINT_VERSION) into $(dir $@) (once)"
	@grep -qE 'golangci/golangci-lint/v2 $(subst .,\.,$(GOLANGCI_LINT_VERSION))( |$$)' tools/lint/go.mod || \
	  { echo "lint: tools/lint/go.mod does not pin golangci-lint $(GOLANGCI_LINT_VERSION)"; exit 1; }
	@for try in 1 2 3; do \
	  (cd tools/lint && GOWORK=off GOFLAGS=-mod=readonly $(GO) build -trimpath -o $(abspath $@) github.com/golangci/golangci-lint/v2/cmd/golangci-lint) && exit 0; \
	  echo "lint: build attempt $$try failed"; sleep $$((try * 10)); \
	done; exit 1

lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./...

# Regenerate the CLI reference (docs/cli) from the command tree; the test
# TestCLIReference fails when it drifts.
docs:
	UPDATE_DOCS=1 $(GO) test -count=1 -run '^TestCLIReference$$' ./cmd/cnab-airgap

fmt:
	gofmt -l -w .

clean:
	rm -rf bin demo-out
