#!/usr/bin/env bash
# Benchmark (issue 20, docs/benchmarks.md §Instances): for each provider (PROVIDERS, default
# "process exec docker"), a fresh 3-peer cluster on loopback (local-3, NGINX and tenant-app on
# each peer) with that provider, and ROUNDS (5) rounds of:
#   add      `peer instances add` until the instance is active, then `peer tenants move` of a
#            tenant onto it until router 1 sends the tenant's requests there ("add → serving");
#   remove   `peer instances remove` (drain: the tenant moves away; leave; destroy) until the
#            instance is removed ("remove → destroyed").
# The provider's own share is read from the leader's log: the `create` call (spawn a process,
# create and start a container, run the script) and the `destroy` call. Medians of the rounds.
# docker: starts its own dockerd (as the contract tests do) unless DOCKER_SOCKET names one,
# and imports the image .ci/build-image makes from this tree's BUILD binaries.
# Writes a markdown table to OUT (default: stdout only). Stops only what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-release}
ROUNDS=${ROUNDS:-5}
PROVIDERS=${PROVIDERS:-process exec docker}
if [[ -z ${PEER:-} ]]; then
  make --no-print-directory -s build CONFIG="$BUILD"
  PEER=$PWD/.build/$BUILD/peer
fi
work=$(mktemp -d /tmp/peer-ibench-XXXXXX)
CONFIG=$work/local-3.yaml
source chaos/docker-engine.sh
cleanup() {
  "$PEER" down --config "$CONFIG" --force --timeout 10 >/dev/null 2>&1 || true
  for r in "$work"/.peer/local-3/data/instances/process/local-3/*/record.json "$work"/exec/local-3/*/record.json; do
    [[ -f $r ]] || continue
    p=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['pid'])" "$r")
    if [[ $p -gt 1 ]]; then kill -KILL -- "-$p" 2>/dev/null || true; fi
  done
  stop_dockerd
  [[ -n ${KEEP:-} ]] || rm -rf "$work"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
py() { python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }
served_by() { curl -s -o /dev/null -D - --max-time 5 -H "X-Tenant-ID: $1" "http://127.0.0.1:7301/" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-served-by"{print $2}'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2] + a[NR/2+1]) / 2)}'; }

provider_yaml() {
  case $1 in
    process) printf 'providers:\n  - kind: process\n    ports: 33000-33499\n' ;;
    exec)
      local argv="[python3, $PWD/cluster-config/exec-local.py, OP, $work/exec, $PEER, 127.0.0.1, 33500]"
      printf 'providers:\n  - kind: exec\n    directory: %s\n    create: %s\n    destroy: %s\n    list: %s\n' "$work/exec-work" \
        "${argv/OP/create}" "${argv/OP/destroy}" "${argv/OP/list}" ;;
    docker) printf 'providers:\n  - kind: docker\n    socket: %s\n    image: peer:bench\n    ports: 34000-34499\n' "$socket" ;;
  esac
}

if [[ " $PROVIDERS " == *" docker "* ]]; then
  start_dockerd
  load_image bench
fi

rows=()
for provider in $PROVIDERS; do
  rm -rf "$work/.peer" "$work/exec" "$work/exec-work"
  mkdir -p "$work/exec-work"
  { cat cluster-config/local-3.yaml; echo; provider_yaml "$provider"; } > "$CONFIG"
  "$PEER" init --config "$CONFIG" >/dev/null
  "$PEER" up --config "$CONFIG" >/dev/null
  adds=() serves=() removes=() creates=() destroys=()
  for round in $(seq 1 "$ROUNDS"); do
    tenant=bench-$round
    "$PEER" tenants create "$tenant" --plan deployment --config "$CONFIG" --wait >/dev/null
    t0=$(now_ms)
    "$PEER" instances add --config "$CONFIG" --wait 300 > "$work/add.out"
    t1=$(now_ms)
    id=$(grep -o 'instance [0-9]* active' "$work/add.out" | head -1 | awk '{print $2}')
    # Serving: router 1 sends the tenant there (the move's switch), measured while the move
    # goes on; the move then keeps the source for settings.moveGraceMs before it ends.
    "$PEER" tenants move "$tenant" --to "$id" --config "$CONFIG" --timeout 120 >/dev/null &
    mover=$!
    ok=0
    for _ in $(seq 1 1200); do
      if [[ $(served_by "$tenant") == "$id/"* ]]; then ok=1; break; fi
      sleep 0.02
    done
    t2=$(now_ms)
    wait "$mover" || { echo "instances-bench [$provider]: the move of $tenant to $id failed" >&2; exit 1; }
    [[ $ok == 1 ]] || { echo "instances-bench [$provider]: tenant $tenant is not served by instance $id" >&2; exit 1; }
    tr=$(now_ms)
    "$PEER" instances remove "$id" --config "$CONFIG" --wait 300 >/dev/null
    t3=$(now_ms)
    created=$(cat "$work"/.peer/local-3/run/peer-*.log | grep "instance $id: the $provider provider $provider runs it" | grep -o 'create_ms=[0-9]*' | tail -1 | cut -d= -f2)
    destroyed=$(cat "$work"/.peer/local-3/run/peer-*.log | grep "instance $id: destroyed by the $provider provider $provider" | grep -o 'destroy_ms=[0-9]*' | tail -1 | cut -d= -f2)
    adds+=($((t1 - t0))); serves+=($((t2 - t0))); removes+=($((t3 - tr))); creates+=("${created:-0}"); destroys+=("${destroyed:-0}")
    echo "  [$provider] round $round: instance $id active after $((t1 - t0)) ms, serving the moved tenant after $((t2 - t0)) ms (create $created ms); removed after $((t3 - tr)) ms (destroy $destroyed ms)" >&2
  done
  "$PEER" down --config "$CONFIG" --force --timeout 10 >/dev/null
  m() { printf '%s\n' "$@" | median; }
  rows+=("| $provider | $(m "${adds[@]}") | $(m "${serves[@]}") | $(m "${creates[@]}") | $(m "${removes[@]}") | $(m "${destroys[@]}") |")
done

table="| provider | add → active (ms) | add → serving a moved tenant (ms) | of which the provider's create (ms) | remove → destroyed (ms) | of which the provider's destroy (ms) |
|---|---:|---:|---:|---:|---:|"
for r in "${rows[@]}"; do table+=$'\n'"$r"; done
echo "instances bench: medians of $ROUNDS rounds, $BUILD build, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo "$table"
if [[ -n ${OUT:-} ]]; then printf '%s\n' "$table" > "$OUT"; fi
