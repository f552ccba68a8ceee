# The two commands of the README (`make demo`, `make test`) and their helpers. Every target
# installs the Debian packages it needs and builds what it runs, from a fresh clone.
SHELL := /bin/bash
SIM_SEEDS ?= 1000
SIM_SEEDS_5 ?= 300
DEMO_SEEDS ?= 200
DEMO_SEEDS_5 ?= 100
SIM_STEPS ?= 2000
SOAK_SEEDS ?= 20000
SOAK_SEEDS_5 ?= 5000
# The cluster world (`peer-sim --world cluster`): seeds of 240 simulated seconds each.
CLUSTER_SEEDS ?= 100
CLUSTER_SEEDS_5 ?= 50
DEMO_CLUSTER_SEEDS ?= 20
SOAK_CLUSTER_SEEDS ?= 2000
SOAK_CLUSTER_SEEDS_5 ?= 1000
SOAK_ROUNDS ?= 10
# The failpoints the demo (and so CI) kills the leader at: two of a drain, one of an add, one of a
# removal; `make soak` runs all.
DEMO_FAILPOINTS ?= drain.after-move-started move.before-placement-gone provision.after-create decommission.after-member-removed
# The balancer's runs in the demo: both seed scenarios without a kill (`none`), then with the
# leader killed right after the scale-up decision; `make soak` runs every step.
DEMO_BALANCER_FAILPOINTS ?= none balancer.after-decision
# The rolling upgrade's stream of tenant writes in the demo (each tenant lengthens every drain:
# 4 moves per 6 s); `make soak` writes 100.
DEMO_UPGRADE_WRITES ?= 20
# chaos/run.sh: mixed faults on 5 hosts in network namespaces, CHAOS_DURATION seconds from
# CHAOS_SEED in the demo (so CI), SOAK_CHAOS_DURATION in `make soak`.
CHAOS_SEED ?= 1
CHAOS_DURATION ?= 60
SOAK_CHAOS_DURATION ?= 1800
JOBS ?= $(shell nproc)
# debug or release: the build configuration of `make build`, the chaos scripts and the binaries
# the demo runs.
CONFIG ?= debug
# What a running cluster needs: `peer`, the child launcher it starts NGINX and components with,
# and the demo component.
CLUSTER_PRODUCTS := peer peer-exec tenant-app
STAGE := bash .ci/stage

# The one way to build: each product by its own `swift build --product` (SwiftPM keeps only the
# last of several `--product` options). $(call build-products,CONFIG,PRODUCTS)
define build-products
	@for p in $(2); do echo "swift build -c $(1) --product $$p"; swift build -c $(1) --product $$p || exit 1; done
endef

.PHONY: help deps build demo test check-imports check-docs sim unit soak bench bench-cluster bench-failover bench-router bench-instances bench-balancer image image-load clean

## help: list the targets.
help:
	@grep -E '^## ' Makefile | sed 's/^## /  /'

## deps: system packages the build and tests need (idempotent; apt-get only when missing).
deps:
	@bash .ci/install-deps

## build: the products a running cluster needs (peer, peer-exec, tenant-app) in .build/CONFIG
## (CONFIG=debug by default, CONFIG=release for benchmarks).
build:
	$(call build-products,$(CONFIG),$(CLUSTER_PRODUCTS))

## demo: the main job: the simulator (Raft at 3 and 5 nodes, then the cluster world with the
## leader's loops), then a real 3-peer cluster on loopback
## playing the leader-failover scenario (chaos/kill-leader.sh), tenant moves under load
## (chaos/move-under-load.sh), and drains, instance adds and removals with the leader killed at
## DEMO_FAILPOINTS (chaos/instance-lifecycle.sh), then both seed scenarios played by the balancer
## alone under load, with a timeline, at DEMO_BALANCER_FAILPOINTS (chaos/balancer-failover.sh), and
## once more with the docker provider (a Docker Engine the script starts); then five members
## upgraded, downgraded and upgraded again under load (chaos/rolling-upgrade.sh); then, in
## network namespaces, a follower and the leader cut off and the leader deaf for 5 s each, the
## catch-up after each heal measured and the clients' history checked for linearizability
## (chaos/partition.sh); then five hosts under mixed faults from a seed for CHAOS_DURATION seconds
## (kills, restarts, pauses, isolation, splits, one-way cuts, loss, delay; chaos/run.sh), checked
## for linearizability, lost writes, one leader per term and convergence after every heal.
## CI runs it with fewer seeds (DEMO_SEEDS, DEMO_SEEDS_5).
demo: deps
	$(call build-products,release,peer-sim)
	$(STAGE) demo-sim-3 .build/release/peer-sim --seed 1 --seeds $(DEMO_SEEDS) --nodes 3 --steps $(SIM_STEPS) --jobs $(JOBS)
	$(STAGE) demo-sim-5 .build/release/peer-sim --seed 1 --seeds $(DEMO_SEEDS_5) --nodes 5 --steps $(SIM_STEPS) --jobs $(JOBS)
	$(STAGE) demo-sim-cluster .build/release/peer-sim --world cluster --seed 1 --seeds $(DEMO_CLUSTER_SEEDS) --nodes 3 --jobs $(JOBS)
	$(STAGE) demo-build $(MAKE) --no-print-directory build CONFIG=$(CONFIG)
	$(STAGE) demo-kill-leader env BUILD=$(CONFIG) bash chaos/kill-leader.sh
	$(STAGE) demo-move-under-load env BUILD=$(CONFIG) bash chaos/move-under-load.sh
	$(STAGE) demo-instance-lifecycle env BUILD=$(CONFIG) FAILPOINTS="$(DEMO_FAILPOINTS)" bash chaos/instance-lifecycle.sh
	$(STAGE) demo-balancer env BUILD=$(CONFIG) FAILPOINTS="$(DEMO_BALANCER_FAILPOINTS)" bash chaos/balancer-failover.sh
	$(STAGE) demo-balancer-docker env BUILD=$(CONFIG) PROVIDER=docker FAILPOINTS=none bash chaos/balancer-failover.sh
	$(STAGE) demo-rolling-upgrade env BUILD=$(CONFIG) WRITES=$(DEMO_UPGRADE_WRITES) bash chaos/rolling-upgrade.sh
	$(STAGE) demo-partition env BUILD=$(CONFIG) CUTS=5 ROLES="follower leader deaf-leader" bash chaos/partition.sh
	$(STAGE) demo-chaos env BUILD=$(CONFIG) bash chaos/run.sh --seed $(CHAOS_SEED) --duration $(CHAOS_DURATION) --hosts 5

## test: import rules, simulator seeds (release build), then every unit and integration test.
test: deps check-imports sim unit check-docs

## check-imports: the module graph's rules (docs/architecture.md).
check-imports:
	@bash .ci/check-imports

## check-docs: every `make T`, `peer ...` or tool command line and config key in the README and
## docs/ exists (.ci/check-docs; builds peer and the tools it reads first).
check-docs:
	$(call build-products,debug,peer peer-sim peer-bench peer-transport-bench peer-cluster-bench peer-broker-bench tenant-app)
	$(STAGE) check-docs python3 .ci/check-docs

## sim: the simulator's seeds in CI's number (SIM_SEEDS, SIM_SEEDS_5), then its teeth: every
## planted bug must be found within SIM_SEEDS_5 seeds at 3 and at 5 nodes; then the cluster
## world's seeds (CLUSTER_SEEDS, CLUSTER_SEEDS_5) and its teeth (every planted controller bug
## within CLUSTER_SEEDS_5 seeds).
sim:
	$(call build-products,release,peer-sim)
	$(STAGE) sim-3 .build/release/peer-sim --seed 1 --seeds $(SIM_SEEDS) --nodes 3 --steps $(SIM_STEPS) --jobs $(JOBS)
	$(STAGE) sim-5 .build/release/peer-sim --seed 1 --seeds $(SIM_SEEDS_5) --nodes 5 --steps $(SIM_STEPS) --jobs $(JOBS)
	$(STAGE) sim-teeth-3 .build/release/peer-sim --teeth --seed 1 --seeds $(SIM_SEEDS_5) --nodes 3 --steps $(SIM_STEPS) --jobs $(JOBS)
	$(STAGE) sim-teeth-5 .build/release/peer-sim --teeth --seed 1 --seeds $(SIM_SEEDS_5) --nodes 5 --steps $(SIM_STEPS) --jobs $(JOBS)
	$(STAGE) sim-cluster-3 .build/release/peer-sim --world cluster --seed 1 --seeds $(CLUSTER_SEEDS) --nodes 3 --jobs $(JOBS)
	$(STAGE) sim-cluster-5 .build/release/peer-sim --world cluster --seed 1 --seeds $(CLUSTER_SEEDS_5) --nodes 5 --jobs $(JOBS)
	$(STAGE) sim-cluster-teeth-3 .build/release/peer-sim --world cluster --teeth --seed 1 --seeds $(CLUSTER_SEEDS_5) --nodes 3 --jobs $(JOBS)
	$(STAGE) sim-cluster-teeth-5 .build/release/peer-sim --world cluster --teeth --seed 1 --seeds $(CLUSTER_SEEDS_5) --nodes 5 --jobs $(JOBS)

## unit: every unit and integration test (swift test): first the tests whose bounds are latencies
## under load (ALONE_TESTS) in a run of their own, where PEER_TEST_ALONE=1 makes them assert
## their tight bounds (nothing else takes the CPU they measure), then every test.
ALONE_TESTS ?= HostileClientTests
unit:
	$(STAGE) build-tests swift build --build-tests
	$(STAGE) swift-test-alone env PEER_TEST_ALONE=1 swift test --filter '$(ALONE_TESTS)'
	$(STAGE) swift-test swift test

## soak: the long sweeps, run by hand and reported in docs/benchmarks.md: SOAK_SEEDS and
## SOAK_SEEDS_5 simulator seeds, SOAK_CLUSTER_SEEDS and SOAK_CLUSTER_SEEDS_5 cluster-world seeds, SOAK_ROUNDS rounds of both chaos scenarios, then a drain with
## the leader killed at every failpoint, then the balancer's scenarios with the leader killed at
## each of their steps, the rolling upgrade with 100 writes, partitions of 5-120 s, and
## SOAK_CHAOS_DURATION seconds of mixed faults on 5 hosts (chaos/run.sh).
soak: deps
	$(call build-products,release,peer-sim)
	$(STAGE) soak-sim-3 .build/release/peer-sim --seed 1 --seeds $(SOAK_SEEDS) --nodes 3 --steps $(SIM_STEPS) --jobs $(JOBS)
	$(STAGE) soak-sim-5 .build/release/peer-sim --seed 1 --seeds $(SOAK_SEEDS_5) --nodes 5 --steps $(SIM_STEPS) --jobs $(JOBS)
	$(STAGE) soak-sim-cluster-3 .build/release/peer-sim --world cluster --seed 1 --seeds $(SOAK_CLUSTER_SEEDS) --nodes 3 --jobs $(JOBS)
	$(STAGE) soak-sim-cluster-5 .build/release/peer-sim --world cluster --seed 1 --seeds $(SOAK_CLUSTER_SEEDS_5) --nodes 5 --jobs $(JOBS)
	$(MAKE) --no-print-directory build CONFIG=$(CONFIG)
	$(STAGE) soak-chaos bash -c 'for i in $$(seq 1 $(SOAK_ROUNDS)); do echo "== soak round $$i of $(SOAK_ROUNDS)"; BUILD=$(CONFIG) bash chaos/kill-leader.sh && BUILD=$(CONFIG) MOVES=10 bash chaos/move-under-load.sh || exit 1; done'
	$(STAGE) soak-instance-lifecycle env BUILD=$(CONFIG) bash chaos/instance-lifecycle.sh
	$(STAGE) soak-balancer env BUILD=$(CONFIG) bash chaos/balancer-failover.sh
	$(STAGE) soak-rolling-upgrade env BUILD=$(CONFIG) WRITES=100 bash chaos/rolling-upgrade.sh
	$(STAGE) soak-partition env BUILD=$(CONFIG) CUTS="5 30 60 120" ROLES="follower leader pause deaf-leader mute-leader crash" bash chaos/partition.sh
	$(STAGE) soak-chaos-mixed env BUILD=$(CONFIG) bash chaos/run.sh --seed $(CHAOS_SEED) --duration $(SOAK_CHAOS_DURATION) --hosts 5

## bench: the core's benchmarks (results are recorded in docs/benchmarks.md).
bench: deps
	$(call build-products,release,peer-bench peer-sim)
	.build/release/peer-bench raft --batch 1 --proposals 200000
	.build/release/peer-bench raft --batch 16 --proposals 1000000
	.build/release/peer-bench raft --batch 256 --proposals 2000000
	time .build/release/peer-sim --seeds 2000 --steps 2000 --jobs $(JOBS)

## bench-cluster: peer and etcd 3.4 side by side in one run (writes/s and
## latency with wrk, idle memory, failover); docs/benchmarks.md. Options: BENCH_CLUSTER_ARGS, e.g.
## BENCH_CLUSTER_ARGS="--rounds 5 --failover-runs 10 --output /tmp/cluster-bench.md".
BENCH_CLUSTER_ARGS ?=
bench-cluster:
	@bash .ci/install-deps etcd-server etcd-client wrk
	$(MAKE) --no-print-directory build CONFIG=release
	$(call build-products,release,peer-cluster-bench)
	.build/release/peer bench $(BENCH_CLUSTER_ARGS)

## bench-failover: failover without a reset, peer vs etcd 3.4 on the same hosts in network
## namespaces (root): the leader isolated (link down), paused (SIGSTOP) and killed, FAILOVER_RUNS
## times each, time to the first write the majority accepts (docs/benchmarks.md).
FAILOVER_RUNS ?= 20
bench-failover:
	@bash .ci/install-deps etcd-server etcd-client
	$(MAKE) --no-print-directory build CONFIG=release
	$(call build-products,release,peer-cluster-bench)
	.build/release/peer bench --network namespaces --faults isolate,pause,kill --failover-runs $(FAILOVER_RUNS) --connections "" $(BENCH_CLUSTER_ARGS)

## bench-router: wrk straight to tenant-app vs through NGINX (same run), and
## move completion times under load (docs/benchmarks.md). Release builds.
bench-router: deps
	$(MAKE) --no-print-directory build CONFIG=release
	BUILD=release BENCH=1 CONNS=64 MOVES=10 bash chaos/move-under-load.sh

## bench-instances: per provider (process, exec, docker), the time from `peer instances add` to
## active and to serving a moved tenant, and from `peer instances remove` to destroyed, medians
## of 5, with the provider's own create/destroy share (docs/benchmarks.md). BUILD=release.
bench-instances: deps
	$(MAKE) --no-print-directory build CONFIG=release
	BUILD=release bash chaos/instances-bench.sh

## bench-balancer: the balancer's reaction time, median of RUNS (5) runs of both seed scenarios
## (chaos/balancer-bench.sh): overload -> decision -> new instance active -> hot tenant served
## there, the hot tenant's p99 before, during and after, and quiet -> scale-down -> removed.
bench-balancer: deps
	$(MAKE) --no-print-directory build CONFIG=release
	BUILD=release bash chaos/balancer-bench.sh

## image: the root file system of the docker provider's instance image (.ci/build-image):
## peer, peer-exec, tenant-app of .build/CONFIG and NGINX, with their libraries, as
## .build/image/peer-rootfs.tar.
image: deps
	$(MAKE) --no-print-directory build CONFIG=$(CONFIG)
	bash .ci/build-image $(CONFIG) .build/image/peer-rootfs.tar

## image-load: `docker import` of that tarball into the engine at DOCKER_SOCKET
## (/var/run/docker.sock) as IMAGE (peer:dev), through the Engine API.
DOCKER_SOCKET ?= /var/run/docker.sock
IMAGE ?= peer:dev
image-load: image
	curl -sS --fail --unix-socket $(DOCKER_SOCKET) -X POST -H 'Content-Type: application/x-tar' \
	  --data-binary @.build/image/peer-rootfs.tar \
	  "http://localhost/v1.41/images/create?fromSrc=-&repo=$(firstword $(subst :, ,$(IMAGE)))&tag=$(lastword $(subst :, ,$(IMAGE)))"
	@echo

## clean: remove the build folder.
clean:
	rm -rf .build
