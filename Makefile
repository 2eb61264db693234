# Portico: the two commands for a fresh Debian 12 machine with Swift installed are
#   make run    build in release mode and start the demo (configs/demo/: pods, Services, Ingresses, TLS)
#   make test   build and run every test (unit and end-to-end)

SHELL := /bin/bash
RUN_PACKAGES  := libssl-dev libsqlite3-dev curl
TEST_PACKAGES := curl libssl-dev libsqlite3-dev openssl
RELEASE_BIN   := .build/release/portico
FUZZ_SECONDS  ?= 60
ANCHORS       ?= ../shared/bench/anchors.sh

.PHONY: run test fuzz bench floor build release

run:
	@bash scripts/install-deps.sh $(RUN_PACKAGES)
	swift build -c release
	@bash scripts/run-demo.sh

test:
	@bash scripts/install-deps.sh $(TEST_PACKAGES)
	swift build
	swift test

build:
	swift build

release:
	swift build -c release

fuzz:
	bash fuzz/run.sh $(FUZZ_SECONDS)

# Side by side with nginx and HAProxy in the same run, loaded by wrk and portico-load (needs
# nginx-light, haproxy, wrk); see loadtest/bench.sh for its knobs (T, ROUNDS, TLS=1, IDLE=N …).
bench: release
	@bash scripts/install-deps.sh nginx-light haproxy wrk
	swift build -c release --product portico-load
	bash loadtest/bench.sh

# The ceiling for any proxy here: nginx, HAProxy and Portico beside byte relays that do no HTTP
# work (epoll and io_uring), same backends and wrk load; see loadtest/floor.sh.
floor: release
	@bash scripts/install-deps.sh nginx-light haproxy wrk gcc liburing-dev
	bash loadtest/floor.sh
