#!/usr/bin/env bash
# Scenario (seed: "the balancer itself is highly available"): a 3-peer cluster on loopback takes
# writes; the leader is killed with SIGKILL; a write through a survivor is accepted; the killed
# peer restarts, catches up, and every member reports one applied index and one state digest.
# Runs in a fresh temporary directory; stops only the peers it started (by their pid files).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-debug}
# Builds what it runs (peer, peer-exec, tenant-app) unless PEER names a binary already built.
if [[ -z ${PEER:-} ]]; then
  make --no-print-directory -s build CONFIG="$BUILD"
  PEER=$PWD/.build/$BUILD/peer
fi
work=$(mktemp -d /tmp/peer-chaos-XXXXXX)
cp cluster-config/local-3.yaml "$work/local-3.yaml"
CONFIG=$work/local-3.yaml
cleanup() { "$PEER" down --config "$CONFIG" --force --timeout 10 >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

json() { "$PEER" status --config "$CONFIG" --output json "$@" 2>/dev/null || true; }
field() { python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }

"$PEER" init --config "$CONFIG"
"$PEER" up --config "$CONFIG"
"$PEER" status --config "$CONFIG"
for t in acme globex initech; do "$PEER" tenants create "$t" --config "$CONFIG"; done

leader=$(json | field 's["leader"]')
pid=$(json | field '[m["pid"] for m in s["members"] if m["id"]==s["leader"]][0]')
echo "== kill -9 of the leader: peer $leader (pid $pid)"
kill -9 "$pid"
start=$(date +%s%N)
"$PEER" tenants create after-failover --config "$CONFIG"
echo "== first write after the kill accepted through a survivor in $(( ($(date +%s%N) - start) / 1000000 )) ms"
"$PEER" status --config "$CONFIG" || true

echo "== restart the killed peer"
"$PEER" up --config "$CONFIG"
converged=0
for _ in $(seq 1 150); do
  if json | field 'len({m.get("stateDigest") for m in s["members"]})==1 and len({m.get("appliedIndex") for m in s["members"]})==1 and all(m["state"]!="unreachable" for m in s["members"])' | grep -q True; then
    converged=1; break
  fi
  sleep 0.1
done
"$PEER" status --config "$CONFIG" --consistent
"$PEER" tenants list --config "$CONFIG" --consistent
[[ $converged == 1 ]] || { echo "FAIL: members did not converge on one applied index and digest within 15 s" >&2; exit 1; }
echo "== converged: one applied index and one state digest on every member"
"$PEER" down --config "$CONFIG"
