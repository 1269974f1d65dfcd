# vault-plugin-secrets-pure1
#
#   make dev        build what is missing, start Pure1 emulator + Vault dev server with the plugin, show it work
#   make dev-stop   stop what make dev started
#   make test       everything CI runs: unit, race, fuzz smoke, end-to-end against a real Vault, cluster
#   make bench      benchmarks, each ratio beside its baseline from the same run

SHELL        := /usr/bin/env bash
VERSION      ?= v0.1.0
PKG          := github.com/pure1vault/vault-plugin-secrets-pure1
LDFLAGS      := -s -w -X $(PKG)/backend.Version=$(VERSION)
GO           ?= go
BIN          := bin
PLUGIN       := $(BIN)/vault-plugin-secrets-pure1
GOFILES      := $(shell find . -name '*.go' -not -path './bin/*' 2>/dev/null) go.mod go.sum

.PHONY: all build vault test test-unit test-fuzz-smoke test-e2e test-cluster fuzz fmt vet dev dev-stop cluster cluster-stop bench clean

all: build

build: $(PLUGIN) $(BIN)/pure1-emulator $(BIN)/pure1-token

$(PLUGIN): $(GOFILES)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $@ ./cmd/vault-plugin-secrets-pure1

$(BIN)/pure1-emulator: $(GOFILES)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $@ ./cmd/pure1-emulator

$(BIN)/pure1-token: $(GOFILES)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $@ ./cmd/pure1-token

# Vault from source, cached per user outside the clone (VAULT_BIN overrides).
vault:
	@scripts/build-vault.sh >/dev/null

test: test-unit test-fuzz-smoke test-e2e test-cluster

test-unit:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

# A few seconds per fuzz target; the long runs are `make fuzz`.
test-fuzz-smoke:
	@for t in FuzzParsePrivateKey FuzzParseTokenResponse; do \
	  $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime 5s ./backend/pure1/ || exit 1; \
	done

fuzz:
	@for t in FuzzParsePrivateKey FuzzParseTokenResponse; do \
	  $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime 1000000x ./backend/pure1/ || exit 1; \
	done

test-e2e: build vault
	PURE1_E2E=1 VAULT_BIN=$${VAULT_BIN:-$(CURDIR)/$(BIN)/vault} PURE1_BIN_DIR=$(CURDIR)/$(BIN) \
	  $(GO) test -count=1 -timeout 30m -v ./backend/e2e/ 2>&1 | scripts/test-summary.sh

test-cluster: build vault
	PURE1_CLUSTER=1 VAULT_BIN=$${VAULT_BIN:-$(CURDIR)/$(BIN)/vault} PURE1_BIN_DIR=$(CURDIR)/$(BIN) \
	  $(GO) test -count=1 -timeout 20m -v -run 'TestCluster' ./backend/e2e/ 2>&1 | scripts/test-summary.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

dev: build vault
	@scripts/dev.sh

dev-stop:
	@scripts/dev-stop.sh

bench: build vault
	@scripts/bench.sh

clean:
	rm -rf $(BIN) .cache
