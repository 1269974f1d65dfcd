# vault-plugin-secrets-pure1
#
#   make dev        build what is missing, start Pure1 emulator + Vault dev server with the plugin, show it work
#   make dev-stop   stop what make dev started
#   make test       everything CI runs: unit, race, fuzz smoke, end-to-end against a real Vault, cluster
#   make bench      benchmarks, each ratio beside its baseline from the same run
#   make release    the release's archives, bare binaries and SHA256SUMS in dist/ (GoReleaser; snapshot unless HEAD is tagged)
#   make register   register dist/'s plugin for this platform in the Vault of VAULT_ADDR (scripts/register.sh)
#   make docs       regenerate docs/reference/paths.md from the plugin's OpenAPI

SHELL        := /usr/bin/env bash
# The version lives in VERSION; a release tag must match it (.goreleaser.yaml).
VERSION      ?= $(shell cat VERSION)
PKG          := github.com/pure1vault/vault-plugin-secrets-pure1
LDFLAGS      := -s -w -X $(PKG)/backend.Version=$(VERSION)
GO           ?= go
BIN          := bin
PLUGIN       := $(BIN)/vault-plugin-secrets-pure1
GOFILES      := $(shell find . -name '*.go' -not -name '*_test.go' -not -path './bin/*' 2>/dev/null) go.mod go.sum

.PHONY: all build vault old-plugin prometheus sdk-deps test test-unit test-fuzz-smoke test-release test-e2e test-cluster fuzz fmt vet dev dev-stop cluster cluster-stop bench docs clean release register e2e-bin

all: build

build: $(PLUGIN) $(BIN)/pure1-emulator $(BIN)/pure1-token

# The release's flags (.goreleaser.yaml): on linux/amd64 this is the release's
# plugin byte for byte (scripts/test-release.sh checks).
$(PLUGIN): $(GOFILES) VERSION
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags "$(LDFLAGS)" -o $@ ./cmd/vault-plugin-secrets-pure1

$(BIN)/pure1-emulator: $(GOFILES)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $@ ./cmd/pure1-emulator

$(BIN)/pure1-token: $(GOFILES)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $@ ./cmd/pure1-token

# Vault from source, cached per user outside the clone (VAULT_BIN overrides).
vault:
	@scripts/build-vault.sh >/dev/null

# The last release's plugin, built from its commit in git history for the
# upgrade tests; cached per user outside the clone, keyed by commit.
old-plugin:
	@scripts/build-old-plugin.sh >/dev/null

# Prometheus and promtool from Debian, for the metrics end-to-end tests;
# installs only when either is missing (needs root or sudo then).
prometheus:
	@scripts/install-prometheus.sh

test: test-unit test-fuzz-smoke test-release test-e2e test-cluster

# ---- releases -------------------------------------------------------------------

# GoReleaser v2 is a Go tool of its own module (tools/goreleaser/go.mod), so
# the plugin's go.mod takes none of its dependencies; its compile is cached.
RELEASE_VERSION := $(shell cat VERSION)
HOST_PLATFORM   := $(shell $(GO) env GOOS)_$(shell $(GO) env GOARCH)
# This platform's bare plugin binary, as the release names it.
RELEASE_PLUGIN  := dist/vault-plugin-secrets-pure1_$(RELEASE_VERSION:v%=%)_$(HOST_PLATFORM)
E2E_BIN         := $(CURDIR)/dist/e2e-bin

release:
	@GO=$(GO) scripts/release.sh

dist/SHA256SUMS: $(GOFILES) VERSION .goreleaser.yaml tools/goreleaser/go.mod
	@GO=$(GO) scripts/release.sh

# Builds the release, again from a copy of the tree, and the linux/amd64
# plugin from an empty build cache; all must be the same bytes.
test-release:
	@GO=$(GO) scripts/test-release.sh

# The binaries the end-to-end tests take (PURE1_BIN_DIR): the plugin is the
# release's own binary for this platform (linux/amd64 in CI), registered by
# its SHA256SUMS checksum and version; the emulator and pure1-token are bin/'s.
e2e-bin: dist/SHA256SUMS build
	@test -x $(RELEASE_PLUGIN) || { echo "make e2e-bin: $(RELEASE_PLUGIN) is missing: the release has no $(HOST_PLATFORM) build" >&2; exit 1; }
	@mkdir -p $(E2E_BIN)
	@ln -sfn ../$(notdir $(RELEASE_PLUGIN)) $(E2E_BIN)/vault-plugin-secrets-pure1
	@ln -sfn ../SHA256SUMS $(E2E_BIN)/SHA256SUMS
	@for f in pure1-emulator pure1-token vault; do \
	  if [[ -e $(BIN)/$$f ]]; then ln -sfn $(CURDIR)/$(BIN)/$$f $(E2E_BIN)/$$f; fi; \
	done

# make register [COMMAND=name-in-plugin_directory] [ALLOW_HOSTS=loopback,...]:
# this platform's release plugin, registered by its SHA256SUMS line in the
# Vault of VAULT_ADDR/VAULT_TOKEN. Copy it into plugin_directory first.
register: dist/SHA256SUMS
	@scripts/register.sh -sums dist/SHA256SUMS $(if $(COMMAND),-command $(COMMAND)) \
	  $(if $(ALLOW_HOSTS),-allow-hosts $(ALLOW_HOSTS)) $(RELEASE_PLUGIN)

# Pure's Python SDK for TestSDK: its Debian packages when missing (apt-get,
# as root, as CI runs) and the SDK unpacked into .cache/ from ../shared/clients.
sdk-deps:
	@scripts/install-sdk-deps.sh >/dev/null

# Every benchmark runs once, too, so make bench cannot rot unseen (in the
# same race-built test binaries: one build, not a second one without -race).
test-unit:
	$(GO) vet ./...
	$(GO) test -race -count=1 -bench . -benchtime 1x ./...

# A few seconds per fuzz target in make test; make fuzz runs 1M execs each.
FUZZ_TARGETS := FuzzParsePrivateKey FuzzParseTokenResponse FuzzDecodeAccessTokenClaims
FUZZTIME     ?= 5s

test-fuzz-smoke:
	@for t in $(FUZZ_TARGETS); do \
	  $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./backend/pure1/ || exit 1; \
	done

fuzz: FUZZTIME = 1000000x
fuzz: test-fuzz-smoke

# End-to-end against a real Vault dev server and the Pure1 emulator (a few
# minutes). pipefail keeps go test's exit status through the summary filter.
# The SDK's set-up runs first but does not stop the other tests when it
# cannot install (not root, no mirror): TestSDK then fails with its reason.
test-e2e: build vault old-plugin prometheus e2e-bin
	@scripts/install-sdk-deps.sh >/dev/null || echo "make test-e2e: Pure's SDK cannot run here; TestSDK will fail (see above)" >&2
	set -o pipefail; \
	PURE1_E2E=1 VAULT_BIN=$${VAULT_BIN:-$(CURDIR)/$(BIN)/vault} PURE1_BIN_DIR=$(E2E_BIN) \
	PURE1_PLUGIN_VERSION=$(RELEASE_VERSION) \
	  $(GO) test -count=1 -timeout 30m -v -skip '^TestCluster' ./backend/e2e/ 2>&1 | scripts/test-summary.sh

test-cluster: build vault old-plugin e2e-bin
	set -o pipefail; \
	PURE1_CLUSTER=1 VAULT_BIN=$${VAULT_BIN:-$(CURDIR)/$(BIN)/vault} PURE1_BIN_DIR=$(E2E_BIN) \
	PURE1_PLUGIN_VERSION=$(RELEASE_VERSION) \
	  $(GO) test -count=1 -timeout 20m -v -run 'TestCluster' ./backend/e2e/ 2>&1 | scripts/test-summary.sh

# docs/reference/paths.md from the plugin's own OpenAPI document (what vault
# path-help shows); TestPathReference in make test fails until this is rerun.
docs:
	$(GO) test -count=1 -run '^TestPathReference$$' ./backend/ -update

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

# DEV_DETACH=1 make dev leaves it running in the background for make dev-stop.
dev: build vault
	@VERSION=$(VERSION) scripts/dev.sh

dev-stop:
	@scripts/dev-stop.sh

# A 3-node Vault Raft cluster on loopback with the plugin mounted at pure1/,
# state in .cluster/ (scripts/cluster.sh status|kill-node N|restart-node N).
cluster: build vault
	@VERSION=$(VERSION) scripts/cluster.sh start

cluster-stop:
	@scripts/cluster.sh stop

bench: build vault
	@scripts/bench.sh

clean:
	rm -rf $(BIN) .cache .dev .cluster dist
