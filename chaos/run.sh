#!/usr/bin/env bash
# Mixed faults on a schedule from a seed (issue 24): peers in network namespaces (chaos/netns.sh),
# one fault after another for DURATION seconds, each held 3-8 s, then healed, and the cluster
# must converge (a leader, one applied index and digest everywhere) before the next. A third of
# the faults come with a degraded link besides (loss or delay on random members), when the list
# has those. Meanwhile one client per member creates, deletes and reads tenants (`peer history
# record`, every call as JSON lines) and a writer creates tenants it never deletes. At the end:
#   linearizable  the history, by `peer history check` (an unknown verdict fails too)
#   lost          acknowledged creates of the writer missing from a linearizable list
#   leaders       terms in which two peers led (from their logs' "raft: this peer leads at term T")
#   converged     heals after which the cluster converged within HEAL_BOUND_S
# A failing run keeps its directory (history, logs, schedule) and says how to replay it.
#
#   chaos/run.sh [--seed N] [--duration S] [--faults LIST] [--hosts 3|5] [--runs R]
#     --faults  comma-separated, from: kill-leader kill-random restart pause-leader isolate-leader
#               split deaf-leader mute-leader loss delay (default: all)
#               kill-leader     SIGKILL of the leader, restarted on its data at the heal
#               kill-random     SIGKILL of 1..minority random members, restarted at the heal
#               restart         SIGTERM of a random member (graceful), started again at the heal
#               pause-leader    SIGSTOP of the leader, SIGCONT at the heal (no reset)
#               isolate-leader  the leader's link down (packets vanish both ways)
#               split           1..minority random members cut from the rest both ways (nft)
#               deaf-leader     the leader receives nothing from its link, still sends (nft)
#               mute-leader     the leader sends nothing, still receives (nft)
#               loss            5-30 % of packets dropped both ways on random members (nft numgen)
#               delay           10-200 ms +- a quarter on random members' sent packets (NFQUEUE,
#                               chaos/delayer.py)
#     --runs R  R runs with seeds N .. N+R-1, each on fresh hosts and data
#   HEAL_BOUND_S=30  convergence after a heal must come within this
#   KEEP=1           keep every run's directory
set -euo pipefail
cd "$(dirname "$0")/.."
all_faults="kill-leader,kill-random,restart,pause-leader,isolate-leader,split,deaf-leader,mute-leader,loss,delay"
seed=1 duration=60 faults=$all_faults hosts_wanted=5 runs=1
usage() { echo "usage: chaos/run.sh [--seed N] [--duration S] [--faults LIST] [--hosts 3|5] [--runs R]" >&2; exit 2; }
while (($#)); do
  case $1 in
    --seed) seed=${2:?}; shift 2 ;;
    --duration) duration=${2:?}; shift 2 ;;
    --faults) faults=${2:?}; shift 2 ;;
    --hosts) hosts_wanted=${2:?}; shift 2 ;;
    --runs) runs=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; usage ;;
  esac
done
[[ $seed =~ ^[0-9]+$ ]] || { echo "run.sh: --seed must be a non-negative integer, not '$seed'" >&2; exit 2; }
[[ $duration =~ ^[0-9]+$ ]] && ((duration >= 1 && duration <= 86400)) || { echo "run.sh: --duration must be 1-86400 seconds, not '$duration'" >&2; exit 2; }
[[ $hosts_wanted == 3 || $hosts_wanted == 5 ]] || { echo "run.sh: --hosts must be 3 or 5, not '$hosts_wanted'" >&2; exit 2; }
[[ $runs =~ ^[0-9]+$ ]] && ((runs >= 1 && runs <= 1000)) || { echo "run.sh: --runs must be 1-1000, not '$runs'" >&2; exit 2; }
IFS=, read -r -a fault_list <<<"$faults"
((${#fault_list[@]} > 0)) || { echo "run.sh: --faults is empty" >&2; exit 2; }
for f in "${fault_list[@]}"; do
  [[ ,$all_faults, == *",$f,"* ]] || { echo "run.sh: unknown fault '$f' (known: ${all_faults//,/ })" >&2; exit 2; }
done
HEAL_BOUND_S=${HEAL_BOUND_S:-30}
BUILD=${BUILD:-debug}
[[ $(id -u) == 0 ]] || { echo "run.sh: needs root (network namespaces)" >&2; exit 1; }
if [[ -z ${PEER:-} ]]; then
  make --no-print-directory -s build CONFIG="$BUILD"
  PEER=$PWD/.build/$BUILD/peer
fi
# shellcheck source=chaos/netns.sh
source chaos/netns.sh
work=
cleanup() {
  hosts_cleanup
  [[ -n $work && -z ${KEEP:-} && ! -e $work/keep ]] && rm -rf "$work"
  [[ -n $work && -d $work ]] && echo "kept $work"
  return 0
}
trap cleanup EXIT

# The schedule: one line per fault, "KIND MEMBERS HOLD PARAM [EXTRA-KIND EXTRA-MEMBERS EXTRA-PARAM]",
# MEMBERS "leader" or ids; the same seed gives the same lines (which member leads is the run's).
schedule() {  # schedule SEED HOSTS FAULTS
  python3 - "$@" <<'PY'
import random, sys
seed, n, faults = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(",")
r = random.Random(seed)
minority = (n - 1) // 2
def members(kind):
    if kind in ("kill-random", "split"): return sorted(r.sample(range(1, n + 1), r.randint(1, minority)))
    if kind == "restart": return [r.randint(1, n)]
    if kind in ("loss", "delay"): return sorted(r.sample(range(1, n + 1), r.randint(1, n)))
    return ["leader"]
def param(kind):
    if kind == "loss": return r.randint(5, 30)
    if kind == "delay": return r.randint(10, 200)
    return 0
links = [f for f in faults if f in ("loss", "delay")]
for _ in range(10000):
    kind = r.choice(faults)
    line = [kind, ",".join(map(str, members(kind))), str(r.randint(3, 8)), str(param(kind))]
    if links and kind not in ("loss", "delay") and r.random() < 1 / 3:
        extra = r.choice(links)
        line += [extra, ",".join(map(str, members(extra))), str(param(extra))]
    print(" ".join(line))
PY
}

unit() { case $1 in loss) echo " $2 %" ;; delay) echo " $2 ms" ;; esac; }
leader_now() { status | field 's.get("leader")'; }
majority_of() {  # majority_of "1 3": the other members' addresses, as an nft set body
  local minority=" $1 " out=""
  for ((i = 1; i <= hosts; i++)); do [[ $minority == *" $i "* ]] || out+="$(host_address "$i"), "; done
  echo "${out%, }"
}
addresses_of() { local out=""; for i in $1; do out+="$(host_address "$i"), "; done; echo "${out%, }"; }
nft_in() { ip netns exec "$tag-$1" nft -f -; }

# fault KIND "IDS" PARAM and heal KIND "IDS": one fault on the members IDS (space-separated).
fault() {
  local kind=$1 ids=$2 param=$3 i
  case $kind in
    kill-leader|kill-random) for i in $ids; do kill -KILL "${pids[i - 1]}"; wait "${pids[i - 1]}" 2>/dev/null || true; done ;;
    restart) for i in $ids; do kill -TERM "${pids[i - 1]}"; wait "${pids[i - 1]}" 2>/dev/null || true; done ;;
    pause-leader) for i in $ids; do kill -STOP "${pids[i - 1]}"; done ;;
    isolate-leader) for i in $ids; do ip link set "v$tag-$i" down; done ;;
    split)
      local them us
      them=$(majority_of "$ids"); us=$(addresses_of "$ids")
      for ((i = 1; i <= hosts; i++)); do
        local other=$them
        [[ " $ids " == *" $i "* ]] || other=$us
        printf 'table inet chaos_split {\n chain i { type filter hook input priority 0; policy accept; ip saddr { %s } drop\n }\n chain o { type filter hook output priority 0; policy accept; ip daddr { %s } drop\n }\n}\n' "$other" "$other" | nft_in "$i"
      done ;;
    deaf-leader) for i in $ids; do printf 'table inet chaos_oneway {\n chain c { type filter hook input priority 0; policy accept; iifname "eth0" drop\n }\n}\n' | nft_in "$i"; done ;;
    mute-leader) for i in $ids; do printf 'table inet chaos_oneway {\n chain c { type filter hook output priority 0; policy accept; oifname "eth0" drop\n }\n}\n' | nft_in "$i"; done ;;
    loss)
      for i in $ids; do
        printf 'table inet chaos_loss {\n chain i { type filter hook input priority 0; policy accept; iifname "eth0" numgen random mod 100 < %d drop\n }\n chain o { type filter hook output priority 0; policy accept; oifname "eth0" numgen random mod 100 < %d drop\n }\n}\n' "$param" "$param" | nft_in "$i"
      done ;;
    delay)
      for i in $ids; do
        ip netns exec "$tag-$i" iptables -A OUTPUT -o eth0 -j NFQUEUE --queue-num 0 --queue-bypass
        ip netns exec "$tag-$i" python3 chaos/delayer.py --queue 0 --delay-ms "$param" --jitter-ms $((param / 4)) --seed "$run_seed" >>"$work/delayer-$i.log" 2>&1 &
        delayers[i]=$!
        pids+=("$!")
      done ;;
  esac
}
heal() {
  local kind=$1 ids=$2 i
  case $kind in
    kill-leader|kill-random|restart) for i in $ids; do start_peer "$i"; done ;;
    pause-leader) for i in $ids; do kill -CONT "${pids[i - 1]}"; done ;;
    isolate-leader) for i in $ids; do ip link set "v$tag-$i" up; done ;;
    split) for ((i = 1; i <= hosts; i++)); do ip netns exec "$tag-$i" nft delete table inet chaos_split; done ;;
    deaf-leader|mute-leader) for i in $ids; do ip netns exec "$tag-$i" nft delete table inet chaos_oneway; done ;;
    loss) for i in $ids; do ip netns exec "$tag-$i" nft delete table inet chaos_loss; done ;;
    delay)
      for i in $ids; do
        kill -TERM "${delayers[i]}"; wait "${delayers[i]}" 2>/dev/null || true
        ip netns exec "$tag-$i" iptables -D OUTPUT -o eth0 -j NFQUEUE --queue-num 0 --queue-bypass
      done ;;
  esac
}

writer() {  # creates w-N tenants until the stop file appears; the acknowledged ones in $work/acked
  local n=0
  while [[ ! -e $work/stop-writer ]]; do
    n=$((n + 1))
    if "$PEER" tenants create "w-$n" --config "$CONFIG" --timeout 10 >/dev/null 2>>"$work/writer.err"; then
      echo "w-$n" >>"$work/acked"
    fi
    sleep 0.2
  done
}

total_ops=0 total_faults=0 failed_runs=0 heal_max=0 total_acked=0 total_lost=0 not_linearizable=0 two_leaders=0 not_converged=0
one_run() {
  run_seed=$1
  RANDOM=$run_seed
  work=$(mktemp -d /tmp/peer-chaos-XXXXXX)
  CONFIG=$work/cluster.yaml
  pids=() delayers=()
  local converged leader started faults_done=0 converged_ok=0 heal_ms=() problems=()
  hosts_up "$hosts_wanted" "chaos-$run_seed"
  for ((i = 1; i <= hosts; i++)); do start_peer "$i"; done
  converged=$(converged_expr "$hosts")
  wait_for 60 "a leader and $hosts converged members" "s.get('leader') is not None and $converged"
  schedule "$run_seed" "$hosts" "$faults" >"$work/schedule"
  "$PEER" history record --config "$CONFIG" --out "$work/history.jsonl" --clients "$hosts" --keys 8 --duration 86400 \
    --stop-file "$work/stop-history" >"$work/history.out" 2>&1 &
  local hpid=$!
  pids+=("$hpid")
  writer &
  local wpid=$!
  pids+=("$wpid")
  started=$(now_ms)
  echo "== run seed=$run_seed hosts=$hosts duration=${duration}s faults=$faults (dir $work)"
  while read -r kind who hold param extra extra_who extra_param; do
    (( $(now_ms) - started < duration * 1000 )) || break
    leader=$(leader_now)
    [[ $leader =~ ^[0-9]+$ ]] || { problems+=("no leader before fault $((faults_done + 1))"); break; }
    local ids=${who//,/ }
    [[ $ids == leader ]] && ids=$leader
    local extra_ids=${extra_who//,/ }
    local what="$kind [$ids]$(unit "$kind" "$param")"
    [[ -n $extra ]] && what+=" + $extra [$extra_ids]$(unit "$extra" "$extra_param")"
    echo "fault $((faults_done + 1)) at $(( ($(now_ms) - started) / 1000 )) s: $what for $hold s (leader $leader)"
    echo "$(now_ms) fault $what" >>"$work/faults.log"
    fault "$kind" "$ids" "$param"
    [[ -n $extra ]] && fault "$extra" "$extra_ids" "$extra_param"
    sleep "$hold"
    [[ -n $extra ]] && heal "$extra" "$extra_ids"
    heal "$kind" "$ids"
    local healed
    healed=$(now_ms)
    faults_done=$((faults_done + 1))
    if wait_for "$HEAL_BOUND_S" "convergence after fault $faults_done ($what)" "s.get('leader') is not None and $converged"; then
      converged_ok=$((converged_ok + 1))
      heal_ms+=($(( $(now_ms) - healed )))
      echo "  healed: converged $(( $(now_ms) - healed )) ms later"
    else
      problems+=("fault $faults_done ($what) not converged within ${HEAL_BOUND_S} s")
      not_converged=$((not_converged + 1))
      break
    fi
    sleep $(( (RANDOM % 3) + 1 ))
  done <"$work/schedule"
  touch "$work/stop-history" "$work/stop-writer"
  wait "$wpid" || true
  wait "$hpid" || problems+=("the history recorder failed: $(tail -3 "$work/history.out")")
  # No acknowledged create lost: every acked tenant is in a linearizable list.
  local listed lost=0 acked=0
  [[ -e $work/acked ]] && acked=$(wc -l <"$work/acked")
  if listed=$("$PEER" tenants list --consistent --output json --config "$CONFIG" --timeout 30 2>"$work/list.err"); then
    lost=$(python3 -c "import json,sys
have={t['id'] for t in json.loads(sys.argv[1])}
acked=[l.strip() for l in open(sys.argv[2])] if sys.argv[2] else []
missing=[a for a in acked if a not in have]
open(sys.argv[3],'w').write('\n'.join(missing))
print(len(missing))" "$listed" "$( [[ -e $work/acked ]] && echo "$work/acked" )" "$work/lost")
  else
    problems+=("the final list failed: $(tail -2 "$work/list.err")")
    lost=unknown
  fi
  [[ $lost == 0 ]] || problems+=("lost acknowledged creates: $lost (in $work/lost)")
  [[ $lost =~ ^[0-9]+$ ]] && total_lost=$((total_lost + lost))
  # The history.
  local checked verdict ops
  ops=$(grep -o 'recorded [0-9]*' "$work/history.out" | grep -o '[0-9]*' || echo 0)
  checked=$("$PEER" history check "$work/history.jsonl" 2>&1) || true
  verdict=$(grep -o 'linearizable=[a-z]*' <<<"$checked" | head -1 | cut -d= -f2)
  [[ $verdict == yes ]] || { problems+=("history: ${checked:-no verdict}"); not_linearizable=$((not_linearizable + 1)); }
  # One leader per term.
  local twice
  twice=$(leaders_per_term "$work"/peer-*.log 2>/dev/null)
  [[ -z $twice ]] || { problems+=("two leaders in a term: $twice"); two_leaders=$((two_leaders + 1)); }
  for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  local max=0
  for h in "${heal_ms[@]:-0}"; do ((h > max)) && max=$h; done
  ((max > heal_max)) && heal_max=$max
  echo "run seed=$run_seed hosts=$hosts faults=$faults_done ops=$ops linearizable=${verdict:-none} lost=$lost acked=$acked leaders-per-term=$([[ -z $twice ]] && echo 1 || echo 2+) converged=$converged_ok/$faults_done heal-max-ms=$max"
  total_ops=$((total_ops + ops)) total_faults=$((total_faults + faults_done))
  [[ $acked =~ ^[0-9]+$ ]] && total_acked=$((total_acked + acked))
  if ((${#problems[@]} > 0)); then
    failed_runs=$((failed_runs + 1))
    touch "$work/keep"
    printf 'FAIL: %s\n' "${problems[@]}" >&2
    echo "replay: chaos/run.sh --seed $run_seed --duration $duration --faults $faults --hosts $hosts_wanted (history, logs and schedule kept in $work)" >&2
  fi
  hosts_cleanup
  pids=()
  [[ -z ${KEEP:-} && ! -e $work/keep ]] && rm -rf "$work"
  work=
}

for ((r = 0; r < runs; r++)); do one_run $((seed + r)); done
echo "runs=$runs ops=$total_ops faults=$total_faults linearizable=$([[ $not_linearizable == 0 ]] && echo yes || echo no) lost=$total_lost acked=$total_acked two-leader-terms=$two_leaders not-converged=$not_converged heal-max-ms=$heal_max failed=$failed_runs"
((failed_runs == 0))
