# cnab-airgap: the two set-up commands are `make demo` and `make test`.
GO       ?= go
BIN      := bin/cnab-airgap
PKGS     := ./...
FUZZTIME ?= 20s

.PHONY: all build test unit e2e demo bench fuzz vet fmt lint docs clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/cnab-airgap

# Unit tests, fuzz seed corpora and the e2e suite (real registries in-process).
test:
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 20m $(PKGS)

unit:
	$(GO) test -count=1 -short ./pkg/... ./internal/... ./cmd/...

e2e:
	$(GO) test -count=1 -timeout 20m ./e2e/...

# The whole story on an embedded default: two in-process registries, a
# sample bundle pushed with cnab-to-oci, export, import, verify, summary.
demo:
	$(GO) run ./e2e/demo

bench:
	$(GO) run ./bench

fuzz:
	@for t in $$(grep -ho 'func Fuzz[A-Za-z0-9_]*' -r pkg internal | sed 's/func //' | sort -u); do \
	  pkg=$$(grep -l "func $$t" -r pkg internal | head -1 | xargs dirname); \
	  echo "fuzz $$t in $$pkg for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./$$pkg || exit 1; \
	done

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -l -w .

clean:
	rm -rf bin demo-out
