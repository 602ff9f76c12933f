# imagerelay — see README.md. Every target works on a fresh machine with only Go installed.
GO        ?= go
BIN       := bin/imagerelay
PKGS      := ./...

.PHONY: all build run test test-short vet fmt-check lint bench fuzz clean

all: build

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/imagerelay

## run: the demo — embedded NATS + the cloud emulators + every function, sample images to the end.
run: build
	./$(BIN) demo

## test: formatting, vet, and every test with the race detector.
test: fmt-check vet
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

test-short:
	$(GO) test -count=1 -short $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

## lint: golangci-lint v2 (installed from the Go module proxy on first use).
lint:
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0 run ./...

## bench: throughput and latency benchmarks; results are machine-specific (see README).
bench:
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 $(PKGS)

## fuzz: a short run of every fuzz target (longer: FUZZTIME=5m make fuzz).
FUZZTIME ?= 15s
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./events/
	$(GO) test -run='^$$' -fuzz='^FuzzFromBinary$$' -fuzztime=$(FUZZTIME) ./events/
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./shared/config/

clean:
	rm -rf bin dist .imagerelay
