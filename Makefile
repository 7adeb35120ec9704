# pushwire — the two commands a newcomer needs:
#   make run    server on 127.0.0.1:6001 with the embedded default app (app-id/app-key/app-secret),
#               the debug console on http://127.0.0.1:9601/console/
#   make test   everything: format, vet, unit + end-to-end + real-SDK suites under -race, and
#               every fuzz target's seeds and committed corpus (testdata/fuzz) as regular tests
#   make fuzz   a fuzzing campaign over every target (FUZZTIME each, default 10m): new
#               crashers are written to testdata/fuzz; fix them and commit them
GO        ?= go
FUZZTIME  ?= 10m
HOST      ?= 127.0.0.1
PORT      ?= 6001

.PHONY: run build image test fmt-check vet deps unit fuzz bench bench-peers clean proto

run:
	$(GO) run ./cmd/pushwire --host $(HOST) --port $(PORT) --console

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/pushwire ./cmd/pushwire

# The container image (Dockerfile): the static binary FROM scratch, built with podman or
# docker, no registry pull. IMAGE=pushwire:local by default.
image:
	./scripts/image.sh

# The random fuzzing campaign is not part of `make test`: a crash it finds at random would fail
# CI on an unrelated change. `go test` (unit) replays every target's seeds and corpus, so a
# crasher found by `make fuzz` and committed stays a regression test from then on.
test: fmt-check vet deps unit

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './sdkcompat/node_modules/*')); \
	if [ -n "$$out" ]; then echo "gofmt needs to run on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# Node modules for the real-SDK suites (pinned in sdkcompat/package-lock.json), a compose
# implementation so integration/compose_test.go can run `docker compose config` (Debian's
# docker-compose when no `docker compose` plugin exists; skipped without root/apt), and, as
# root on Debian, xdelta3, chromium (headless, for the console's browser test) and podman
# (to build and run the image).
deps:
	@command -v node >/dev/null || { echo "node is required for the sdkcompat suites (Node 20+)"; exit 1; }
	cd sdkcompat && { [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund; }
	@if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing docker-compose (Debian) for the compose config check"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null) \
				|| echo "could not install docker-compose: the compose test checks structure only"; \
		else echo "no docker compose: the compose test checks structure only"; fi; \
	fi
	@./scripts/deps-delta.sh
	@./scripts/deps-apt.sh chromium chromium "the debug console's browser test (console TestConsoleInBrowser)"
	@./scripts/deps-apt.sh podman podman "the container image test (integration/image TestContainerImage)"

# -timeout is per package binary: integration runs ~4 minutes on a quiet 2-core machine, but
# on a loaded one (a shared CI host, Postgres busy with another job) its 8,000 concurrent
# appends to one mutable message alone took 9 minutes; a hang still fails, with a stack dump.
unit:
	$(GO) test -race -count=1 -timeout 30m ./...

fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

bench:
	$(GO) test -run='^$$' -bench=. -benchmem -count=3 ./protocol/ ./channels/ ./delta/ ./history/

# Load scenarios against soketi 1.6.1 and pushwire, alternately; results into bench/RESULTS.md.
bench-peers:
	./scripts/bench-peers.sh

# Regenerate protocol/wirepb from its .proto files (the generated Go is checked in: building
# and `make test` never need protoc). Needs protoc (Debian: protobuf-compiler) and
# protoc-gen-go (`go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12`).
proto:
	cd protocol/wirepb && PATH="$$PATH:$$($(GO) env GOPATH)/bin" protoc --proto_path=. --go_out=. --go_opt=paths=source_relative envelope.proto flutter.proto

clean:
	rm -rf bin sdkcompat/node_modules
