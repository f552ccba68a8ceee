# Hosts in network namespaces for the chaos scripts (sourced by chaos/partition.sh and
# chaos/run.sh; not run on its own). Each peer runs in a namespace of its own at 10.77.NET.<id>
# on a bridge this file creates, whose address 10.77.NET.254 in the caller's namespace lets the
# CLI and the history clients reach every member. hosts_cleanup deletes all of it and kills only
# the processes the caller started (their pids in `pids`). Root only.
#
# The caller sets PEER (the binary), work (its directory, with CONFIG=$work/cluster.yaml) and
# calls hosts_up N CLUSTER; then start_peer ID, status, wait_for, converged_expr N.

tag=p$$
net=$(( $$ % 200 + 20 ))
hosts=0
pids=()

hosts_cleanup() {
  for p in "${pids[@]:-}"; do [[ -n $p ]] || continue; kill -CONT "$p" 2>/dev/null || true; kill -9 "$p" 2>/dev/null || true; done
  for ((i = 1; i <= hosts; i++)); do ip netns del "$tag-$i" 2>/dev/null || true; done
  ip link del "br-$tag" 2>/dev/null || true
}

# hosts_up N CLUSTER: the bridge, N namespaces and the cluster file at $CONFIG (100 ms ticks,
# elections after 10), initialised with `peer init`.
hosts_up() {
  hosts=$1
  ip link add "br-$tag" type bridge
  ip addr add "10.77.$net.254/24" dev "br-$tag"
  ip link set "br-$tag" up
  local peers=""
  for ((i = 1; i <= hosts; i++)); do
    ip netns add "$tag-$i"
    ip link add "v$tag-$i" type veth peer name eth0 netns "$tag-$i"
    ip link set "v$tag-$i" master "br-$tag" up
    ip -n "$tag-$i" addr add "10.77.$net.$i/24" dev eth0
    ip -n "$tag-$i" link set eth0 up
    ip -n "$tag-$i" link set lo up
    peers+="  - {id: $i, peer: 10.77.$net.$i:7101, api: 10.77.$net.$i:7201}"$'\n'
  done
  cat >"$CONFIG" <<YAML
cluster: $2
dataDir: data
tlsDir: tls
runDir: run
timing:
  tickMs: 100
  electionTicks: 10
  heartbeatTicks: 1
peers:
$peers
YAML
  "$PEER" init --config "$CONFIG" >/dev/null
}

# host_address ID: the member's address on the bridge.
host_address() { echo "10.77.$net.$1"; }

start_peer() {  # start_peer ID: peer ID in its namespace, its pid at pids[ID-1], its log appended
  ip netns exec "$tag-$1" "$PEER" run --config "$CONFIG" --id "$1" >>"$work/peer-$1.log" 2>&1 &
  pids[$1 - 1]=$!
}

status() { "$PEER" status --config "$CONFIG" --output json "$@" 2>/dev/null || true; }
field() { python3 -c "import json,sys
try: s=json.load(sys.stdin)
except Exception: s={}
print($1)"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
wait_for() {  # wait_for SECONDS DESCRIPTION PYTHON-EXPR-ON-STATUS [status args]
  local limit=$1 what=$2 expr=$3; shift 3
  local until=$(( $(now_ms) + limit * 1000 ))
  while (( $(now_ms) < until )); do
    [[ $(status "$@" | field "$expr" 2>/dev/null) == True ]] && return 0
    sleep 0.05
  done
  echo "FAIL: $what within $limit s" >&2; return 1
}
# converged_expr N: every member answers, with one applied index and one state digest.
converged_expr() {
  echo "len(s.get('members',[]))==$1 and all(m['state']!='unreachable' for m in s['members']) and len({m.get('stateDigest') for m in s['members']})==1 and len({m.get('appliedIndex') for m in s['members']})==1"
}

# leaders_per_term LOG...: from the peers' logs ("raft: this peer leads at term T"), the terms in
# which more than one peer led, as "term T: peers A B" lines (nothing when none).
leaders_per_term() {
  python3 - "$@" <<'PY'
import re, sys
leaders = {}
for path in sys.argv[1:]:
    peer = re.search(r"peer-(\d+)\.log$", path).group(1)
    for line in open(path, errors="replace"):
        m = re.search(r"raft: this peer leads at term (\d+)", line)
        if m: leaders.setdefault(int(m.group(1)), set()).add(peer)
for term, peers in sorted(leaders.items()):
    if len(peers) > 1: print("term %d: peers %s" % (term, " ".join(sorted(peers))))
print("# terms with a leader: %d" % len(leaders), file=sys.stderr)
PY
}
