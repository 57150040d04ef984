# edgegw — `make demo` runs the gateway end to end, `make test` runs every test.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BUILD    := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'
TESTFLAGS ?=

.PHONY: all build demo test deps check-go vet fmt-check unit race qemu-check cross bench bench-e2e clean

all: build

check-go:
	@command -v $(GO) >/dev/null 2>&1 || { echo "Go is missing: install Go 1.26 or newer (https://go.dev/doc/install), e.g. sudo apt-get install golang-go on a Debian that ships 1.26" >&2; exit 1; }

build: check-go
	$(BUILD) -o bin/edgegw ./cmd/edgegw

## demo: built-in broker + simulator + gateway, rollups printed as line protocol.
demo: build
	./bin/edgegw demo

## deps: the servers the integration tests start (mosquitto, influxd) and qemu
## for running the arm64 binary.
deps:
	@bash scripts/deps.sh

## test: everything, including the integration tests against real Mosquitto
## and InfluxDB, and the arm64 binary under qemu.
test: check-go deps vet fmt-check unit race qemu-check

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on: $$out" >&2; exit 1; fi

unit:
	$(GO) test -count=1 -timeout 12m $(TESTFLAGS) ./...

## race: the packages that run goroutines, again under the race detector.
race:
	$(GO) test -race -count=1 -timeout 5m ./batcher ./mqtt ./store ./uplink ./metrics ./simulator

qemu-check: dist/edgegw-linux-arm64
	qemu-aarch64-static dist/edgegw-linux-arm64 version

## cross: static binaries for every Raspberry Pi and for x86-64.
cross: dist/edgegw-linux-armv6 dist/edgegw-linux-armv7 dist/edgegw-linux-arm64 dist/edgegw-linux-amd64

dist/edgegw-linux-armv6: FORCE
	GOOS=linux GOARCH=arm GOARM=6 $(BUILD) -o $@ ./cmd/edgegw
dist/edgegw-linux-armv7: FORCE
	GOOS=linux GOARCH=arm GOARM=7 $(BUILD) -o $@ ./cmd/edgegw
dist/edgegw-linux-arm64: FORCE
	GOOS=linux GOARCH=arm64 $(BUILD) -o $@ ./cmd/edgegw
dist/edgegw-linux-amd64: FORCE
	GOOS=linux GOARCH=amd64 $(BUILD) -o $@ ./cmd/edgegw
FORCE:

## bench: benchmarks of the window engine and the decoders.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count $${COUNT:-6} ./window ./mqtt ./batcher ./store | tee bench.txt

## bench-e2e: the whole path, real Mosquitto and InfluxDB, the gateway as a
## process, at in-flight windows 20 and 1000 (a few minutes). RUNS=3 reports
## medians of three passes; figures and machine in BENCHMARKS.md.
bench-e2e: check-go deps
	bash -o pipefail -c "$(GO) test -run '^$$' -bench E2E -benchtime 1x -count 1 -timeout 30m ./bench | tee bench-e2e.txt"

clean:
	rm -rf bin dist bench.txt bench-e2e.txt
