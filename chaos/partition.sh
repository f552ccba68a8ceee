#!/usr/bin/env bash
# Partitions that send no reset (issue 24): three peers, each in a network namespace of its own
# on a bridge this script creates and deletes, none on loopback. One member at a time is cut off
# by taking its link down (its packets vanish: no RST, no ICMP) for CUTS seconds each, while a
# writer keeps committing through the majority; then the link comes back and the script measures
# how long the cut-off member takes to catch up (its applied index reaches what the leader had
# committed at the heal) and the cluster to converge (one applied index and digest everywhere).
# Follower and leader are each cut. Meanwhile three clients, one through each member, create,
# delete and read tenants, recording every call (`peer history record`); the history must be
# linearizable (`peer history check`). Root only. Stops only the peers it started, by their pids.
#   CUTS="5 30"   cut lengths in seconds (make demo: 5; make soak: 5 30 60 120)
#   ROLES="follower leader"  the faults, each with every cut length:
#                 follower     a follower's link down (its packets vanish both ways)
#                 leader       the leader's link down
#                 pause        the leader stopped with SIGSTOP, then SIGCONT (no reset either)
#                 deaf-leader  the leader receives nothing but still sends (nftables in its namespace)
#                 mute-leader  the leader sends nothing but still receives
#                 crash        the leader killed with SIGKILL, restarted on its data at the heal
#   BOUND_MS=5000 the heal must be caught up and converged within this, at every length (two
#                 election timeouts, 2 s, plus sending what was missed and this script's polling)
#   KEEP=1        keep the work directory (logs, data) afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-debug}
CUTS=${CUTS:-5 30}
ROLES=${ROLES:-follower leader}
BOUND_MS=${BOUND_MS:-5000}
[[ $(id -u) == 0 ]] || { echo "partition.sh: needs root (network namespaces)" >&2; exit 1; }
if [[ -z ${PEER:-} ]]; then
  make --no-print-directory -s build CONFIG="$BUILD"
  PEER=$PWD/.build/$BUILD/peer
fi
work=$(mktemp -d /tmp/peer-partition-XXXXXX)
CONFIG=$work/cluster.yaml
# shellcheck source=chaos/netns.sh
source chaos/netns.sh
cleanup() {
  hosts_cleanup
  if [[ -z ${KEEP:-} ]]; then rm -rf "$work"; else echo "kept $work"; fi
}
trap cleanup EXIT

hosts_up 3 partition
for i in 1 2 3; do start_peer "$i"; done
converged=$(converged_expr 3)
wait_for 30 "a leader and three converged members" "s.get(\"leader\") is not None and $converged"

# Concurrent clients, one through each member (the cut-off one's calls fail or end unknown),
# recording every call for the linearizability check at the end.
"$PEER" history record --config "$CONFIG" --out "$work/history.jsonl" --clients 3 --keys 6 --duration 86400 \
  --stop-file "$work/stop-history" >"$work/history.out" 2>&1 &
hpid=$!
pids+=("$hpid")

writes=0
writer() {  # writes tenants through whoever leads until the stop file appears
  local n=0
  while [[ ! -e $work/stop-writer ]]; do
    n=$((n + 1))
    "$PEER" tenants create "w-$1-$n" --config "$CONFIG" --timeout 10 >/dev/null 2>>"$work/writer.err" || echo "write w-$1-$n failed" >>"$work/writer.err"
  done
}

# The fault on member $2 of kind $1, and its end.
fault() {
  case $1 in
    follower|leader) ip link set "v$tag-$2" down ;;
    pause) kill -STOP "${pids[$2 - 1]}" ;;
    crash) kill -KILL "${pids[$2 - 1]}"; wait "${pids[$2 - 1]}" 2>/dev/null || true ;;
    deaf-leader|mute-leader)
      local hook=input dir=iifname
      [[ $1 == mute-leader ]] && { hook=output; dir=oifname; }
      printf 'table inet chaos {\n  chain cut {\n    type filter hook %s priority 0; policy accept;\n    %s "eth0" drop\n  }\n}\n' "$hook" "$dir" \
        | ip netns exec "$tag-$2" nft -f -
      ;;
    *) echo "partition.sh: unknown role $1 (follower leader pause deaf-leader mute-leader crash)" >&2; exit 2 ;;
  esac
}
heal() {
  case $1 in
    follower|leader) ip link set "v$tag-$2" up ;;
    pause) kill -CONT "${pids[$2 - 1]}" ;;
    crash) start_peer "$2" ;;
    deaf-leader|mute-leader) ip netns exec "$tag-$2" nft delete table inet chaos ;;
  esac
}

report=()
slow=()
for role in $ROLES; do
  for cut in $CUTS; do
    leader=$(status | field 's.get("leader")')
    if [[ $role == follower ]]; then target=$(( leader % 3 + 1 )); else target=$leader; fi
    rm -f "$work/stop-writer"
    writer "$role-$cut" &
    wpid=$!
    echo "== $role: peer $target for $cut s (leader $leader)"
    fault "$role" "$target"
    sleep "$cut"
    # What the majority committed by the heal: the isolated member must reach it.
    committed=$(status | field 'max([m.get("commitIndex") or 0 for m in s.get("members",[]) if m["id"]!='"$target"' and m["state"]!="unreachable"] or [0])')
    heal "$role" "$target"
    healed=$(now_ms)
    wait_for 300 "peer $target caught up to index $committed" \
      "any(m['id']==$target and m['state']!='unreachable' and (m.get('appliedIndex') or 0)>=$committed for m in s.get('members',[]))" \
      --endpoint "10.77.$net.$target:7201"
    caught=$(( $(now_ms) - healed ))
    touch "$work/stop-writer"; wait "$wpid" || true
    wait_for 300 "the cluster converged after the heal" "s.get(\"leader\") is not None and $converged"
    converged_ms=$(( $(now_ms) - healed ))
    line="heal: $role ${cut} s: peer $target caught up ${caught} ms after healing (to index $committed), converged ${converged_ms} ms"
    echo "$line"; report+=("$line")
    (( converged_ms <= BOUND_MS )) || slow+=("$line")
  done
done
touch "$work/stop-history"; wait "$hpid" || { cat "$work/history.out" >&2; exit 1; }
cat "$work/history.out"
checked=$("$PEER" history check "$work/history.jsonl" 2>&1) || { echo "$checked" >&2; echo "FAIL: the history is not linearizable; kept in $work/history.jsonl" >&2; KEEP=1; exit 1; }
echo "$checked"
report+=("history: $(head -1 <<<"$checked")")
failed=$(grep -c "failed" "$work/writer.err" 2>/dev/null || true)
echo "== summary (writes that failed while a member was cut off: ${failed:-0})"
printf '%s\n' "${report[@]}"
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()
if (( ${#slow[@]} > 0 )); then
  echo "FAIL: converged later than ${BOUND_MS} ms after the heal:" >&2
  printf '  %s\n' "${slow[@]}" >&2
  exit 1
fi
