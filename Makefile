# imagerelay — see README.md. Every target works on a fresh machine with Go installed;
# serverless-check (part of test) also needs Node.js with npm.
GO        ?= go
BIN       := bin/imagerelay
PKGS      := ./...

.PHONY: all build run test test-short vet fmt-check lint bench bench-e2e bench-e2e-inflight fuzz chaos package serverless-check clean

all: build

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/imagerelay

## run: the demo — embedded NATS + the cloud emulators + every function, sample images to the end.
run: build
	./$(BIN) demo

## test: formatting, vet, every test with the race detector, and the AWS packaging check.
test: fmt-check vet
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	$(MAKE) serverless-check

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

## bench-e2e: the end-to-end benchmark (e2e/bench): raw JetStream, then BENCH_IMAGES images ×
## BENCH_REGIONS regions through every function against zero-latency emulators, then raw again;
## prints settled/s, JetStream operations per replication and the ratio to the same-run ceiling.
BENCH_IMAGES  ?= 300
BENCH_REGIONS ?= 3
BENCH_ARGS    ?=
bench-e2e:
	$(GO) run ./e2e/bench/cmd -mode throughput -images $(BENCH_IMAGES) -regions $(BENCH_REGIONS) $(BENCH_ARGS)

## bench-e2e-inflight: BENCH_COPIES copies in flight (24 h copies, 30 s polls), each function an
## `imagerelay worker` process: polls/s needed vs achieved, worker RSS, store size, status time.
BENCH_COPIES ?= 100000
bench-e2e-inflight: build
	$(GO) run ./e2e/bench/cmd -mode inflight -copies $(BENCH_COPIES) -bin $(CURDIR)/$(BIN) $(BENCH_ARGS)

## fuzz: a short run of every fuzz target (longer: FUZZTIME=5m make fuzz).
FUZZTIME ?= 15s
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./events/
	$(GO) test -run='^$$' -fuzz='^FuzzFromBinary$$' -fuzztime=$(FUZZTIME) ./events/
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./shared/config/
	$(GO) test -run='^$$' -fuzz='^FuzzKey$$' -fuzztime=$(FUZZTIME) ./shared/adapters/state/
	$(GO) test -run='^$$' -fuzz='^FuzzWholeNumbers$$' -fuzztime=$(FUZZTIME) ./events/
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./shared/runtime/host/
	$(GO) test -run='^$$' -fuzz='^FuzzCopyNameMatchesTheEventContract$$' -fuzztime=$(FUZZTIME) ./shared/domain/

## chaos: the chaos test at "hundreds of replications" (e2e/chaos), on one nats-server and then on a
## 3-node cluster at R3; CHAOS_SEED=n repeats a run. The small seeded version runs in `make test`.
CHAOS_SEED ?= 1
chaos: build
	$(GO) build -o bin/nats-server github.com/nats-io/nats-server/v2
	@rc=0; for cluster in 0 1; do \
	  CHAOS_BIN=$(CURDIR)/bin CHAOS_SIZE=large CHAOS_SEED=$(CHAOS_SEED) CHAOS_CLUSTER=$$cluster \
	    $(GO) test -count=1 -v -timeout 30m -run '^TestChaos$$' ./e2e/chaos/ || rc=1; \
	done; exit $$rc

## package: every function for AWS Lambda (dist/lambda/<fn>.zip: linux/arm64 bootstrap) and
## Alibaba Function Compute (dist/fc/<fn>.zip: linux/amd64 main); CONFIG=file adds imagerelay.yaml.
CONFIG ?=
package:
	$(GO) run ./scripts/package -out dist $(if $(CONFIG),-config $(CONFIG))

## serverless-check: `serverless package` (Framework v3 from npm, offline) and a check of the
## generated CloudFormation template (functions, triggers, DLQ, least-privilege IAM). Needs Node.js.
serverless-check:
	$(GO) run ./scripts/package -out dist -target lambda
	npm ci --no-audit --no-fund
	AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY \
	SLS_TELEMETRY_DISABLED=1 SLS_NOTIFICATIONS_MODE=off npx serverless package < /dev/null
	$(GO) run ./scripts/checkstack .serverless/cloudformation-template-update-stack.json

clean:
	rm -rf bin dist .imagerelay .serverless
