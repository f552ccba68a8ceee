#!/usr/bin/env bash
# Scenario (issue 20): an instance drains while the leader dies at each named step of the work.
# For every failpoint (FAILPOINTS, default: every drain.*, move.*, provision.* and decommission.*
# name `peer failpoints list --names` prints), a fresh
# 3-peer cluster on loopback with NGINX and tenant-app on each peer: tenants are placed, the
# leader is armed at the failpoint (PEER_FAILPOINT=armable lets `peer failpoints arm` pick
# exactly that peer), `peer instances drain` drains a follower's instance; the leader exits at
# its step (status 86), the new leader finishes the drain from the log. Every run must end
# with the instance drained (nothing placed there), the old leader dead AT that failpoint, and
# every tenant of the drained and the third instance served through the surviving routers by
# the third (the tenants of the dead leader's own instance wait for the balancer, next).
# The provision.* and decommission.* failpoints play `peer instances add` and `remove` instead
# (run_add_remove, with the process provider): the leader dies at that step of the add (or of
# the removal of an instance added before), the new leader finishes it from the log and the
# provider's list; every run ends with the provider's instances equal to the membership's
# added ones (nothing leaked, nothing missing) and every tenant served.
# Runs in fresh temporary directories (KEEP=1 keeps them, logs included); stops only the peers
# it started (by their pid files).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-debug}
if [[ -z ${PEER:-} ]]; then
  make --no-print-directory -s build CONFIG="$BUILD"
  PEER=$PWD/.build/$BUILD/peer
fi
# Its own steps only: the balancer's are chaos/balancer-failover.sh's.
FAILPOINTS=${FAILPOINTS:-$("$PEER" failpoints list --names | grep -E '^(drain|move|provision|decommission)\.' | tr '\n' ' ')}
work=$(mktemp -d /tmp/peer-lifecycle-XXXXXX)
CONFIG=$work/local-3.yaml
# SIGKILL to the process group of every instance the process provider recorded (they run in
# sessions of their own, so `peer down` does not reach them).
kill_provided() {
  for r in "$work"/.peer/local-3/data/instances/process/local-3/*/record.json; do
    [[ -f $r ]] || continue
    local p; p=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['pid'])" "$r")
    if [[ $p -gt 1 ]]; then kill -KILL -- "-$p" 2>/dev/null || true; fi
  done
}
cleanup() { kill_provided; "$PEER" down --config "$CONFIG" --force --timeout 10 >/dev/null 2>&1 || true; [[ -n ${KEEP:-} ]] || rm -rf "$work"; }
trap cleanup EXIT

# Whether a pid runs: a zombie (exited, not yet reaped by init) does not.
running() { [[ -r /proc/$1/stat ]] && [[ $(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) != Z ]]; }
py() { python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }
served_by() { curl -s -o /dev/null -D - --max-time 5 -H "X-Tenant-ID: $2" "http://127.0.0.1:$((7300 + $1))/" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-served-by"{print $2}'; }
tenants=(acme globex initech umbrella)

run_one() {
  local fp=$1
  rm -rf "$work/.peer"
  cp cluster-config/local-3.yaml "$CONFIG"
  "$PEER" init --config "$CONFIG" >/dev/null
  PEER_FAILPOINT=armable "$PEER" up --config "$CONFIG" >/dev/null
  for t in "${tenants[@]}"; do "$PEER" tenants create "$t" --plan deployment --config "$CONFIG" --wait >/dev/null; done
  local leader drained third
  leader=$("$PEER" status --config "$CONFIG" --consistent --output json | py 's["leader"]')
  # The follower serving the most tenants drains; at least one tenant must be there.
  drained=$("$PEER" instances list --config "$CONFIG" --consistent --output json |
    py "max([i for i in s if i['id'] != '$leader'], key=lambda i: (i['activeTenants'], i['id']))['id']")
  third=$(( 6 - leader - drained ))
  if [[ $("$PEER" instances list --config "$CONFIG" --output json | py "[i['activeTenants'] for i in s if i['id']=='$drained'][0]") == 0 ]]; then
    "$PEER" tenants move acme --to "$drained" --config "$CONFIG" >/dev/null
  fi
  # The tenants the drain must move (those on the leader's own instance die with it: moving
  # the tenants of a lost instance is the balancer's work, next).
  local moving
  moving=$("$PEER" tenants list --config "$CONFIG" --consistent --output json | py "' '.join(t['id'] for t in s if t.get('activeInstance') in ('$drained', '$third'))")
  local pid
  pid=$(cat "$work/.peer/local-3/run/peer-$leader.pid")
  "$PEER" failpoints arm "$fp" --member "$leader" --config "$CONFIG" >/dev/null
  local started=$SECONDS
  if ! "$PEER" instances drain "$drained" --config "$CONFIG" --wait 120 --timeout 30 > "$work/drain.out" 2>&1; then
    echo "FAIL [$fp]: the drain of instance $drained did not finish:" >&2; cat "$work/drain.out" >&2; return 1
  fi
  local took=$((SECONDS - started))
  if running "$pid"; then echo "FAIL [$fp]: the leader (peer $leader) still runs: the failpoint was not reached" >&2; return 1; fi
  if ! grep -q "failpoint $fp reached" "$work/.peer/local-3/run/peer-$leader.log"; then
    echo "FAIL [$fp]: peer $leader died, but not at the failpoint:" >&2; tail -5 "$work/.peer/local-3/run/peer-$leader.log" >&2; return 1
  fi
  local state placed
  state=$("$PEER" instances list --config "$CONFIG" --consistent --output json | py "[(i['state'], i['placements']) for i in s if i['id']=='$drained'][0]")
  [[ $state == "('drained', 0)" ]] || { echo "FAIL [$fp]: instance $drained is $state" >&2; return 1; }
  # A tenant the drain moved onto the leader's instance just before the leader died is served
  # by nobody now: the operator moves it (the balancer will, next), as for any lost instance.
  local stranded
  stranded=$("$PEER" tenants list --config "$CONFIG" --consistent --output json | py "' '.join(t['id'] for t in s if t.get('activeInstance') == '$leader' and t['id'] in '$moving'.split())")
  for t in $stranded; do
    echo "   [$fp] tenant $t was moved onto instance $leader just before it died: moving it to $third by hand"
    "$PEER" tenants move "$t" --to "$third" --config "$CONFIG" >/dev/null
  done
  # Every tenant that was on the drained instance (or the third) served by the one live
  # instance left, through both surviving routers.
  for t in $moving; do
    local ok=0
    for _ in $(seq 1 100); do
      if [[ $(served_by "$third" "$t") == "$third/"* && $(served_by "$drained" "$t") == "$third/"* ]]; then ok=1; break; fi
      sleep 0.1
    done
    [[ $ok == 1 ]] || { echo "FAIL [$fp]: tenant $t is not served by instance $third through routers $third and $drained" >&2; return 1; }
  done
  echo "ok [$fp]: leader $leader died at the failpoint; instance $drained drained in ${took} s; tenants $moving served by instance $third"
  "$PEER" down --config "$CONFIG" --force --timeout 10 >/dev/null
}

# The instances the process provider holds, and the added instances the state keeps (not
# removed), both as sorted id lists: they must be equal.
provided() { ls "$work/.peer/local-3/data/instances/process/local-3" 2>/dev/null | sort -n | tr '\n' ' '; }
members_added() { "$PEER" instances list --config "$CONFIG" --consistent --output json | py "' '.join(i['id'] for i in s if int(i['id']) > 3 and i['state'] != 'removed')" | tr ' ' '\n' | sed '/^$/d' | sort -n | tr '\n' ' '; }

run_add_remove() {
  local fp=$1
  rm -rf "$work/.peer"
  cp cluster-config/local-3.yaml "$CONFIG"
  printf '\nproviders:\n  - kind: process\n    ports: 32800-32899\n    addTimeoutMs: 120000\n' >> "$CONFIG"
  "$PEER" init --config "$CONFIG" >/dev/null
  PEER_FAILPOINT=armable "$PEER" up --config "$CONFIG" >/dev/null
  for t in "${tenants[@]}"; do "$PEER" tenants create "$t" --plan deployment --config "$CONFIG" --wait >/dev/null; done
  local leader pid id
  leader=$("$PEER" status --config "$CONFIG" --consistent --output json | py 's["leader"]')
  pid=$(cat "$work/.peer/local-3/run/peer-$leader.pid")
  local started=$SECONDS what
  if [[ $fp == provision.* ]]; then
    what="the add"
    "$PEER" failpoints arm "$fp" --member "$leader" --config "$CONFIG" >/dev/null
    if ! "$PEER" instances add --config "$CONFIG" --wait 120 --timeout 30 > "$work/step.out" 2>&1; then
      echo "FAIL [$fp]: the add did not finish:" >&2; cat "$work/step.out" >&2; return 1
    fi
    id=$(grep -o 'instance [0-9]* active' "$work/step.out" | head -1 | awk '{print $2}')
  else
    what="the removal"
    "$PEER" instances add --config "$CONFIG" --wait 120 > "$work/add.out" 2>&1 || { echo "FAIL [$fp]: the add before the removal failed:" >&2; cat "$work/add.out" >&2; return 1; }
    id=$(grep -o 'instance [0-9]* active' "$work/add.out" | head -1 | awk '{print $2}')
    started=$SECONDS
    "$PEER" failpoints arm "$fp" --member "$leader" --config "$CONFIG" >/dev/null
    if ! "$PEER" instances remove "$id" --config "$CONFIG" --wait 120 --timeout 30 > "$work/step.out" 2>&1; then
      echo "FAIL [$fp]: the removal of instance $id did not finish:" >&2; cat "$work/step.out" >&2; return 1
    fi
  fi
  local took=$((SECONDS - started))
  if running "$pid"; then echo "FAIL [$fp]: the leader (peer $leader) still runs: the failpoint was not reached" >&2; return 1; fi
  if ! grep -q "failpoint $fp reached" "$work/.peer/local-3/run/peer-$leader.log"; then
    echo "FAIL [$fp]: peer $leader died, but not at the failpoint:" >&2; tail -5 "$work/.peer/local-3/run/peer-$leader.log" >&2; return 1
  fi
  # The provider holds exactly the added instances the state keeps (a destroyed one may take
  # the new leader a round to notice: up to 10 s).
  local ok=0
  for _ in $(seq 1 100); do
    if [[ "$(provided)" == "$(members_added)" ]]; then ok=1; break; fi
    sleep 0.1
  done
  [[ $ok == 1 ]] || { echo "FAIL [$fp]: the provider holds [$(provided)], the membership's added instances are [$(members_added)]" >&2; return 1; }
  # The tenants of the dead leader's instance wait for the balancer (next): moved by hand, then
  # every tenant served through a surviving router.
  local live=$(( leader == 1 ? 2 : 1 ))
  for t in "${tenants[@]}"; do
    local on
    on=$("$PEER" tenants list --config "$CONFIG" --consistent --output json | py "[x.get('activeInstance') for x in s if x['id']=='$t'][0]")
    if [[ $on == "$leader" ]]; then "$PEER" tenants move "$t" --to "$live" --config "$CONFIG" >/dev/null; fi
    local served=0
    for _ in $(seq 1 100); do
      if [[ $(served_by "$live" "$t") == [0-9]*/* ]]; then served=1; break; fi
      sleep 0.1
    done
    [[ $served == 1 ]] || { echo "FAIL [$fp]: tenant $t is not served through router $live" >&2; return 1; }
  done
  echo "ok [$fp]: leader $leader died at the failpoint; $what of instance $id finished in ${took} s under the new leader; provider [$(provided)] = added members [$(members_added)]; every tenant served"
  # What the run added goes: removed through the cluster (or destroyed by the provider's own
  # records if the cluster cannot any more), so no peer outlives the run.
  if [[ -n $(provided) ]]; then "$PEER" instances remove "$id" --config "$CONFIG" --wait 60 >/dev/null 2>&1 || true; fi
  kill_provided
  "$PEER" down --config "$CONFIG" --force --timeout 10 >/dev/null
}

count=0
for fp in $FAILPOINTS; do
  case $fp in
    provision.* | decommission.*) run_add_remove "$fp" ;;
    *) run_one "$fp" ;;
  esac
  count=$((count + 1))
done
echo "instance lifecycle: $count failpoint(s), every drain, add and removal finished under a new leader, every tenant served, nothing leaked"
