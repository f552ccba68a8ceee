#!/usr/bin/env bash
# Scenario (issue 21): the seed's two scenarios, played by the balancer alone, with the leader
# killed at each step. For every name in FAILPOINTS (default: `none`, then every step below), a
# fresh 3-peer cluster on loopback (NGINX and tenant-app on each peer, the process provider,
# a `balancer:` section sized 100 req/s per instance):
#   1. wrk sends ~200 req/s to tenant `hot` through a router that is not the leader's; the
#      balancer finds the overload from the routers' statistics, commits a scale-up, the
#      provider starts instance 4, it joins, `hot` moves there, the load on its old instance falls;
#   2. wrk stops; the balancer finds the low usage, commits a scale-down; instance 4 is drained,
#      leaves the membership and is destroyed.
# The leader is armed (PEER_FAILPOINT=armable, `peer failpoints arm`) at the failpoint before
# the step it names: balancer.after-decision, provision.after-create and
# balancer.after-move-started before scenario 1; drain.after-move-started and
# decommission.after-member-removed before scenario 2. It exits there (status 86) and the new
# leader finishes from the log. Every run must show: the old leader died AT the failpoint, one
# scale-up and one new instance (not two), 0 failed requests and 0 socket errors under wrk,
# the provider's instances equal to the membership's added ones (nothing leaked), and every
# tenant served at the end (those of the dead leader's instance moved by the balancer's failover).
# Prints a timeline of each run. PROVIDER=docker plays it with the docker provider instead of the
# process one: a Docker Engine of its own (or DOCKER_SOCKET's) and the image built from this
# build's binaries (chaos/docker-engine.sh). Runs in fresh temporary directories (KEEP=1 keeps
# them); stops only the peers it started (by their pid files), the instances its provider
# recorded and the dockerd it started.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-debug}
if [[ -z ${PEER:-} ]]; then
  make --no-print-directory -s build CONFIG="$BUILD"
  PEER=$PWD/.build/$BUILD/peer
fi
SCALE_UP_STEPS="balancer.after-decision provision.after-create balancer.after-move-started"
SCALE_DOWN_STEPS="drain.after-move-started decommission.after-member-removed"
FAILPOINTS=${FAILPOINTS:-"none $SCALE_UP_STEPS $SCALE_DOWN_STEPS"}
PROVIDER=${PROVIDER:-process}
[[ $PROVIDER == process || $PROVIDER == docker ]] || { echo "PROVIDER must be process or docker, got $PROVIDER" >&2; exit 2; }
work=$(mktemp -d /tmp/peer-balancer-XXXXXX)
source chaos/docker-engine.sh
CONFIG=$work/local-3.yaml
run_dir=$work/.peer/local-3/run
records=$work/.peer/local-3/data/instances/process/local-3
kill_provided() {
  for r in "$records"/*/record.json; do
    [[ -f $r ]] || continue
    local p; p=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['pid'])" "$r")
    if [[ $p -gt 1 ]]; then kill -KILL -- "-$p" 2>/dev/null || true; fi
  done
}
wrk_pid=
cleanup() {
  if [[ -n $wrk_pid ]]; then kill "$wrk_pid" 2>/dev/null || true; fi
  kill_provided
  "$PEER" down --config "$CONFIG" --force --timeout 10 >/dev/null 2>&1 || true
  stop_dockerd
  [[ -n ${KEEP:-} ]] || rm -rf "$work"
}
trap cleanup EXIT

running() { [[ -r /proc/$1/stat ]] && [[ $(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) != Z ]]; }
py() { python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }
served_by() { curl -s -o /dev/null -D - --max-time 5 -H "X-Tenant-ID: $2" "http://127.0.0.1:$((7300 + $1))/" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-served-by"{print $2}'; }
provided() {
  if [[ $PROVIDER == docker ]]; then
    local ids; ids=$(docker_instances local-3); echo "${ids:+$ids }"
  else
    ls "$records" 2>/dev/null | sort -n | tr '\n' ' '
  fi
}
added_members() { "$PEER" instances list --config "$CONFIG" --consistent --output json | py "' '.join(i['id'] for i in s if int(i['id']) > 3 and i['state'] != 'removed')" | tr ' ' '\n' | sed '/^$/d' | sort -n | tr '\n' ' '; }
events_json() { "$PEER" events --config "$CONFIG" --output json --limit 100 --timeout 30; }
leader_id() { "$PEER" status --config "$CONFIG" --consistent --output json | py 's["leader"]'; }
active_of() { "$PEER" tenants list --config "$CONFIG" --consistent --output json | py "[t.get('activeInstance') for t in s if t['id']=='$1'][0]"; }
instance_load() {  # requests/s every router sent to instance $1, summed over the routers' windows
  "$PEER" status --config "$CONFIG" --output json | py "round(sum(i['requestsPerSecond'] for m in s['members'] for i in (((m.get('dataPlane') or {}).get('load') or {}).get('instances') or []) if i['instance']=='$1'))"
}
now_ms() { date +%s%3N; }
# The hot tenant's upstream p99 (ms) in router $1's statistics window.
hot_p99() { "$PEER" status --config "$CONFIG" --output json | py "next((t.get('upstreamP99Ms') or 0 for m in s['members'] if m['id']==$1 for t in ((((m.get('dataPlane') or {}).get('load') or {}).get('topTenants')) or []) if t['tenant']=='hot'), '-')"; }
state_since() { "$PEER" instances list --config "$CONFIG" --consistent --output json | py "[i.get('stateSinceMs') for i in s if i['id']=='$1'][0]"; }
t0=0
elapsed() { awk -v now="$(date +%s%N)" -v t0="$t0" 'BEGIN { printf "%6.1f", (now - t0) / 1e9 }'; }
step() { echo "   $(elapsed) s  $*"; }
fail() { echo "FAIL [$fp]: $*" >&2; exit 1; }

# Waits up to $2 s for an event of kind $1; prints it as JSON.
wait_event() {
  local kind=$1 limit=$2 start=$SECONDS
  while ((SECONDS - start < limit)); do
    local e
    e=$(events_json 2>/dev/null | py "next((json.dumps(e) for e in s if e['kind']=='$kind'), '')" 2>/dev/null || true)
    if [[ -n $e ]]; then echo "$e"; return 0; fi
    sleep 0.5
  done
  return 1
}

arm() {  # arms failpoint $1 in the current leader; remembers which peer and pid
  armed_leader=$(leader_id)
  armed_pid=$(cat "$run_dir/peer-$armed_leader.pid")
  "$PEER" failpoints arm "$1" --member "$armed_leader" --config "$CONFIG" >/dev/null
  step "failpoint $1 armed in the leader, peer $armed_leader"
}

run() {
  fp=$1
  rm -rf "$work/.peer"
  cp cluster-config/local-3.yaml "$CONFIG"
  if [[ $PROVIDER == docker ]]; then
    printf '\nproviders:\n  - kind: docker\n    socket: %s\n    image: peer:balancer\n    ports: 34500-34999\n    addTimeoutMs: 120000\n' "$socket" >> "$CONFIG"
  else
    printf '\nproviders:\n  - kind: process\n    ports: 32900-32999\n    addTimeoutMs: 120000\n' >> "$CONFIG"
  fi
  cat >> "$CONFIG" <<'YAML'
balancer:
  instanceRequestsPerSecond: 100
  overloadWindowMs: 5000
  underloadWindowMs: 15000
  cooldownMs: 5000
  minInstances: 2
  maxInstances: 4
YAML
  "$PEER" init --config "$CONFIG" >/dev/null
  PEER_FAILPOINT=armable "$PEER" up --config "$CONFIG" >/dev/null
  local tenants="hot calm-1 calm-2 calm-3 calm-4 calm-5" t
  for t in $tenants; do "$PEER" tenants create "$t" --plan unlimited --config "$CONFIG" --wait >/dev/null; done
  local leader router source
  leader=$(leader_id)
  router=$(( leader == 1 ? 2 : 1 ))
  source=$(active_of hot)
  if [[ $source == "$leader" ]]; then
    "$PEER" tenants move hot --to "$router" --config "$CONFIG" >/dev/null
    source=$router
  fi
  echo "== run [$fp]: leader peer $leader, tenant hot on instance $source, wrk through router $router"
  # wrk never retries a connection it could not open at its start: begin once the router serves hot.
  local start=$SECONDS
  until [[ $(served_by "$router" hot) == "$source/"* ]]; do
    ((SECONDS - start < 30)) || fail "router $router does not serve hot from instance $source"
    sleep 0.1
  done
  t0=$(date +%s%N)
  local t0_ms; t0_ms=$(now_ms)
  armed_leader=
  if [[ " $SCALE_UP_STEPS " == *" $fp "* ]]; then arm "$fp"; fi

  # Scenario 1: overload.
  printf 'function delay() return 20 end\n' > "$work/pace.lua"
  wrk -t 2 -c 4 -d 45s --timeout 5s -s "$work/pace.lua" -H "X-Tenant-ID: hot" "http://127.0.0.1:$((7300 + router))/" > "$work/wrk.out" 2>&1 &
  wrk_pid=$!
  step "wrk: 4 connections, a request every 20 ms each, to tenant hot (instance $source: 100 req/s capacity, high-water mark 80)"
  local up new
  up=$(wait_event scale-up 60) || fail "no scale-up within 60 s"
  new=$(echo "$up" | py 's["newInstance"]')
  [[ $(echo "$up" | py 's["instance"]') == "$source" && $(echo "$up" | py '[m["tenant"] for m in s["moves"]]') == "['hot']" ]] || fail "unexpected scale-up: $up"
  step "overload found, decided (event $(echo "$up" | py 's["id"]')): $(echo "$up" | py 's["reason"]')"
  local up_ms p99_before; up_ms=$(echo "$up" | py 's["atMs"]'); p99_before=$(hot_p99 "$router")
  start=$SECONDS
  until [[ $("$PEER" instances list --config "$CONFIG" --output json | py "[i['state'] for i in s if i['id']=='$new'] == ['active']") == True ]]; do
    ((SECONDS - start < 90)) || fail "instance $new not active within 90 s"
    sleep 0.2
  done
  step "instance $new created by the provider, joined, caught up: active"
  local active_ms; active_ms=$(( $(state_since "$new") - up_ms ))
  start=$SECONDS
  until [[ $(served_by "$router" hot) == "$new/"* ]]; do
    ((SECONDS - start < 60)) || fail "hot not served by instance $new within 60 s"
    sleep 0.1
  done
  local served_ms; served_ms=$(( $(now_ms) - up_ms ))
  step "hot served by instance $new through router $router"
  local p99_during; p99_during=$(hot_p99 "$router")
  local before=$SECONDS load_source=999 load_new=0
  while ((SECONDS - before < 20)); do
    load_source=$(instance_load "$source"); load_new=$(instance_load "$new")
    if ((load_source < 80)); then break; fi
    sleep 1
  done
  ((load_source < 80)) || fail "instance $source still at $load_source req/s"
  step "load (routers' 10 s window): instance $source $load_source req/s, instance $new $load_new req/s"
  # After one whole statistics window (10 s) past the move: the p99 of requests after it only.
  while (( $(now_ms) - up_ms - served_ms < 11000 )); do sleep 0.2; done
  local p99_after; p99_after=$(hot_p99 "$router")
  wait "$wrk_pid" || fail "wrk failed: $(cat "$work/wrk.out")"
  wrk_pid=
  local requests
  requests=$(awk '/requests in/ {print $1}' "$work/wrk.out")
  if grep -q "Non-2xx" "$work/wrk.out" || grep -q "Socket errors" "$work/wrk.out"; then fail "requests failed under wrk: $(cat "$work/wrk.out")"; fi
  step "wrk stopped: $requests requests, 0 non-2xx, 0 socket errors"
  local quiet_ms; quiet_ms=$(now_ms)

  # Scenario 2: low usage.
  if [[ " $SCALE_DOWN_STEPS " == *" $fp "* ]]; then arm "$fp"; fi
  local down
  down=$(wait_event scale-down 90) || fail "no scale-down within 90 s"
  [[ $(echo "$down" | py 's["instance"]') == "$new" ]] || fail "unexpected scale-down: $down"
  step "low usage found, decided (event $(echo "$down" | py 's["id"]')): $(echo "$down" | py 's["reason"]')"
  start=$SECONDS
  until [[ $("$PEER" instances list --config "$CONFIG" --consistent --output json | py "[i['state'] for i in s if i['id']=='$new'] == ['removed'] and all(i.get('intent') is None for i in s)") == True ]]; do
    ((SECONDS - start < 120)) || fail "instance $new not removed within 120 s"
    sleep 0.5
  done
  step "instance $new drained, out of the membership, destroyed by the provider: removed"
  local down_ms removed_ms create_ms
  down_ms=$(( $(echo "$down" | py 's["atMs"]') - quiet_ms ))
  removed_ms=$(( $(state_since "$new") - quiet_ms ))
  create_ms=$(grep -h "instance $new: the $PROVIDER provider" "$run_dir"/peer-*.log | sed -n 's/.*create_ms=\([0-9]*\).*/\1/p' | head -1)
  echo "timing [$fp]: decided_ms=$((up_ms - t0_ms)) create_ms=${create_ms:--} active_ms=$active_ms served_ms=$served_ms p99_before_ms=$p99_before p99_during_ms=$p99_during p99_after_ms=$p99_after down_ms=$down_ms removed_ms=$removed_ms"

  # The proof.
  if [[ $fp != none ]]; then
    running "$armed_pid" && fail "the leader (peer $armed_leader) still runs: the failpoint was not reached"
    grep -q "failpoint $fp reached" "$run_dir/peer-$armed_leader.log" || fail "peer $armed_leader died, but not at the failpoint: $(tail -3 "$run_dir/peer-$armed_leader.log")"
  fi
  local kinds ids
  kinds=$(events_json | py "' '.join(e['kind'] for e in reversed(s) if e['kind'] in ('scale-up', 'scale-down'))")
  [[ $kinds == "scale-up scale-down" ]] || fail "decisions were [$kinds], not one scale-up then one scale-down"
  ids=$("$PEER" instances list --config "$CONFIG" --consistent --output json | py "' '.join(i['id'] for i in s if int(i['id']) > 3)")
  [[ $ids == "$new" ]] || fail "instances added: [$ids], not one"
  start=$SECONDS
  until [[ "$(provided)" == "$(added_members)" ]]; do
    ((SECONDS - start < 15)) || fail "the provider holds [$(provided)], the membership's added instances are [$(added_members)]"
    sleep 0.2
  done
  local live_router=$router
  if [[ -n $armed_leader && $armed_leader == "$router" ]]; then live_router=$(( 6 - armed_leader - (armed_leader == 1 ? 2 : 1) )); fi
  for t in $tenants; do
    start=$SECONDS
    until [[ $(served_by "$live_router" "$t") == [0-9]*/* ]]; do
      ((SECONDS - start < 30)) || fail "tenant $t is not served through router $live_router"
      sleep 0.2
    done
  done
  local failovers
  failovers=$(events_json | py "len([e for e in s if e['kind']=='failover'])")
  echo "ok [$fp]: one scale-up (instance $new), one scale-down; 0 failed requests of $requests; provider [$(provided)] = added members [$(added_members)]; every tenant served${armed_leader:+; leader $armed_leader died at the failpoint, $failovers failover(s) moved its tenants}"
  if [[ $fp == none ]]; then "$PEER" events --config "$CONFIG" --limit 10; fi
  "$PEER" down --config "$CONFIG" --force --timeout 10 >/dev/null
}

if [[ $PROVIDER == docker ]]; then
  start_dockerd
  load_image balancer
fi
count=0
for fp in $FAILPOINTS; do
  run "$fp"
  count=$((count + 1))
done
echo "balancer failover ($PROVIDER provider): $count run(s), each one scale-up and one scale-down by the balancer alone, nothing doubled, nothing leaked, 0 failed requests"
