#!/usr/bin/env bash
# Benchmark (issue 21, docs/benchmarks.md): the balancer's reaction time, median of RUNS (5)
# runs of chaos/balancer-failover.sh without a kill, release build, process provider. Each run
# prints one `timing` line; this script prints the medians as a table:
#   decided      wrk start (the overload begins) -> the scale-up event (leader's clock)
#   create       the provider's create call (the new peer's process started, files written)
#   active       the decision -> the new instance active (created, joined, caught up)
#   served       the decision -> the hot tenant served by the new instance through the router
#   p99          the hot tenant's upstream p99 at its router: before the move, during, after
#   down         wrk stops -> the scale-down event; removed: -> the instance removed
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
BUILD=${BUILD:-release}
out=$(mktemp /tmp/peer-balancer-bench-XXXXXX)
trap 'rm -f "$out"' EXIT
runs=$(printf 'none %.0s' $(seq 1 "$RUNS"))
BUILD=$BUILD FAILPOINTS="$runs" bash chaos/balancer-failover.sh | tee "$out"
grep '^timing ' "$out" | python3 -c '
import statistics, sys
rows = [dict(kv.split("=") for kv in line.split()[2:]) for line in sys.stdin]
keys = ["decided_ms", "create_ms", "active_ms", "served_ms", "p99_before_ms", "p99_during_ms", "p99_after_ms", "down_ms", "removed_ms"]
print()
print(f"balancer reaction, {len(rows)} runs (median, min-max):")
print("| step | median | min | max |")
print("|---|---|---|---|")
for k in keys:
    v = [float(r[k]) for r in rows if r.get(k, "") not in ("", "-")]
    if v:
        print(f"| {k} | {statistics.median(v):.0f} | {min(v):.0f} | {max(v):.0f} |")
'
