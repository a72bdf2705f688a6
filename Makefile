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

# The real tools the e2e tests run (skopeo, notary-server, openssl): taken
# from PATH when acceptable, else the distribution's packages when root,
# else built with Go into TOOLS_DIR/bin (see scripts/tools.sh). That
# directory comes first on PATH for every recipe, so the tests find it.
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

# golangci-lint at a pinned version (.golangci.yml), built once with
# `go install` into the tool cache (a few minutes; the module's checksum is
# checked against the Go checksum database).
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(TOOLS_DIR)/golangci-lint-$(GOLANGCI_LINT_VERSION)/golangci-lint

$(GOLANGCI_LINT):
	@echo "lint: building golangci-lint $(GOLANGCI_LINT_VERSION) into $(dir $@) (once)"
	GOBIN=$(dir $@) GOFLAGS= GOWORK=off $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

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
