# The two commands of the README, and a few helpers. Every target installs what it needs.
SHELL := /bin/bash
SIM_SEEDS ?= 1000
SIM_SEEDS_5 ?= 300
SIM_STEPS ?= 2000
JOBS ?= $(shell nproc)

.PHONY: deps demo test check-imports sim bench bench-cluster bench-router clean

## deps: system packages the build and tests need (idempotent; apt-get only when missing).
deps:
	@bash .ci/install-deps

## demo: the main job: the simulator (3 and 5 nodes), then a real 3-peer cluster on loopback
## playing the leader-failover scenario (chaos/kill-leader.sh).
demo: deps
	swift build -c release --product peer-sim
	.build/release/peer-sim --seed 1 --seeds 200 --nodes 3 --steps $(SIM_STEPS) --jobs $(JOBS)
	.build/release/peer-sim --seed 1 --seeds 100 --nodes 5 --steps $(SIM_STEPS) --jobs $(JOBS)
	swift build --product peer --product tenant-app --product peer-exec
	bash chaos/kill-leader.sh
	bash chaos/move-under-load.sh

## test: import rules, simulator seeds (release build), then every unit and integration test.
test: deps check-imports sim
	swift build --build-tests
	swift test

check-imports:
	@bash .ci/check-imports

sim:
	swift build -c release --product peer-sim
	.build/release/peer-sim --seed 1 --seeds $(SIM_SEEDS) --nodes 3 --steps $(SIM_STEPS) --jobs $(JOBS)
	.build/release/peer-sim --seed 1 --seeds $(SIM_SEEDS_5) --nodes 5 --steps $(SIM_STEPS) --jobs $(JOBS)

## bench: the core's benchmarks (results are recorded in docs/benchmarks.md).
bench: deps
	swift build -c release --product peer-bench --product peer-sim
	.build/release/peer-bench raft --batch 1 --proposals 200000
	.build/release/peer-bench raft --batch 16 --proposals 1000000
	.build/release/peer-bench raft --batch 256 --proposals 2000000
	time .build/release/peer-sim --seeds 2000 --steps 2000 --jobs $(JOBS)

## bench-cluster: issue 6's benchmark, peer and etcd 3.4 side by side in one run (writes/s and
## latency with wrk, idle memory, failover); docs/benchmarks.md. Options: BENCH_CLUSTER_ARGS, e.g.
## BENCH_CLUSTER_ARGS="--rounds 5 --failover-runs 10 --output /tmp/cluster-bench.md".
BENCH_CLUSTER_ARGS ?=
bench-cluster:
	@bash .ci/install-deps etcd-server etcd-client wrk
	swift build -c release --product peer
	swift build -c release --product peer-cluster-bench
	.build/release/peer bench $(BENCH_CLUSTER_ARGS)

## bench-router: issue 8's benchmark: wrk straight to tenant-app vs through NGINX (same run), and
## move completion times under load (docs/benchmarks.md). Release builds.
bench-router: deps
	swift build -c release --product peer
	swift build -c release --product tenant-app
	swift build -c release --product peer-exec
	BUILD=release BENCH=1 CONNS=64 MOVES=10 bash chaos/move-under-load.sh

clean:
	rm -rf .build
