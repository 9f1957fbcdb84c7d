# mdgate: `make run` runs the gateway with a demo feed; `make test` runs the tests.
GO      ?= go
PKGS    := ./...
TESTTIMEOUT ?= 15m
# Tests and benchmarks against real outside peers (python3-zmq, chromium,
# nats-server) are built only with this tag; a bare `go test ./...` skips
# them and says so.
TAGS    := -tags integration

.PHONY: run test bench loadtest soak lint deps deps-test build clean

build: deps
	$(GO) build -o bin/gateway ./cmd/gateway

## run: the gateway with its built-in demo feed (http://localhost:8080, ZeroMQ tcp://*:5557).
run: build
	bin/gateway --demo $(ARGS)

## test: vet, then every test with the race detector, against real libzmq peers
## and real headless chromium (installed when missing).
test: deps-test
	$(GO) vet $(TAGS) $(PKGS)
	$(GO) test $(TAGS) -race -count=1 -timeout $(TESTTIMEOUT) $(PKGS)

## bench: benchmarks and the standard load scenarios (about 15 minutes in all); each result beside a
## baseline from the same run. Rewrites the generated section of docs/benchmarks.md and
## docs/loadtest.html (charts, opens offline); raw results in loadtest/out/. Then the ZeroMQ
## path again, 1M messages, with the gateway's egress bound lifted as zmq_proxy's HWMs are
## (zmq-unbounded.json: flat out, the default bound drops for the lagging subscriber). Then mdgate
## beside nats-server under the same WebSocket fan-out, pinned and shared, three saturation
## searches in each (about 8 minutes;
## scripts/ensure-nats installs nats-server into a cache dir, outside go.mod): its own
## generated sections of both. Then the isolation attacks (about 2 minutes), each against its
## own gateway beside a good workload: their own generated section of docs/benchmarks.md.
bench: deps-test build
	$(GO) test $(TAGS) -run '^$$' -bench IngressToEgress -benchtime 5x ./proxy/
	$(GO) test $(TAGS) -run '^$$' -bench . -benchmem ./lvc/
	$(GO) test $(TAGS) -run '^$$' -bench 'FanOut' -benchtime 2000x -benchmem ./blackbox/
	$(GO) test $(TAGS) -run '^$$' -bench 'Match' -benchtime 1s -benchmem ./blackbox/
	$(GO) test $(TAGS) -run '^$$' -bench RunSub -benchtime 2x ./blackbox/blackboxzmq/
	$(GO) test $(TAGS) -run '^$$' -bench Throttle -benchtime 60000x ./blackbox/
	$(GO) test $(TAGS) -run '^$$' -bench UnrelatedDelay -benchtime 3x ./bridge/
	$(GO) test $(TAGS) -run '^$$' -bench WriteBatch -benchmem ./bridge/
	$(GO) test $(TAGS) -run '^$$' -bench DashboardLag -benchtime 1x ./web/
	$(GO) test $(TAGS) -run '^$$' -bench 'Failover|MirrorCost|EdgeHop' -benchtime 1x ./cmd/gateway/
	@mkdir -p loadtest/out
	$(GO) run ./loadtest -scenario standard -json loadtest/out/standard.json -html docs/loadtest.html -md docs/benchmarks.md
	$(GO) run ./loadtest -scenario zmq -zmq-count 1000000 -gateway-args "--egress-max-bytes 0" -json loadtest/out/zmq-unbounded.json
	NATS_SERVER="$$(GO=$(GO) scripts/ensure-nats)" && $(GO) run ./loadtest -scenario nats -nats-server "$$NATS_SERVER" -searches 3 -json loadtest/out/nats.json -html docs/loadtest.html -md docs/benchmarks.md
	NATS_SERVER="$$(GO=$(GO) scripts/ensure-nats)" && $(GO) run ./loadtest -scenario nats -nats-server "$$NATS_SERVER" -targets mdgate -modes pinned -idle 0 -below "" -gateway-args "--write-delay 10ms" -json loadtest/out/nats-writedelay.json
	NATS_SERVER="$$(GO=$(GO) scripts/ensure-nats)" && $(GO) run ./loadtest -scenario nats -nats-server "$$NATS_SERVER" -targets mdgate -modes pinned -idle 0 -below "" -gateway-args "--write-delay-busy 10ms" -json loadtest/out/nats-busy.json
	$(GO) run ./loadtest -scenario attacks -json loadtest/out/attacks.json -md docs/benchmarks.md

## loadtest: WebSocket fan-out load (1,000 clients x 5 of 100 topics): 100k deliveries/s on
## shared cores and pinned (gateway on CPU 0, load on CPU 1), then 10k idle connections.
loadtest: build
	$(GO) run ./loadtest -rate 100000
	$(GO) run ./loadtest -rate 100000 -pin
	$(GO) run ./loadtest -scenario idle -idle 10000

## soak: 10 minutes of churning publishers and clients and stalled clients; fails on any loss
## for well-behaved clients or goroutine/heap growth (not in CI).
soak: build
	$(GO) run ./loadtest -scenario soak -duration 10m

## ha-demo: a failover pair on loopback (primary http://127.0.0.1:8081, backup :8082), a demo
## publisher feeding both; kill the active and watch the other take over (docs/ha.md). Ctrl-C stops it.
.PHONY: ha-demo
ha-demo: build
	GO=$(GO) scripts/ha-demo

lint: deps
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet $(PKGS)

deps:
	@scripts/ensure-deps zmq

deps-test:
	@scripts/ensure-deps zmq pyzmq chromium netns

clean:
	rm -rf bin
