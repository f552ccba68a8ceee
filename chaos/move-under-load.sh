#!/usr/bin/env bash
# Scenario (seed: DFLB moves tenants between instances): a 3-peer cluster on loopback, each peer
# with its NGINX and its tenant-app components. Tenants are served through every router by the
# instance the replicated state names; one tenant moves between instances MOVES times while wrk
# loads it through a router; every answer must be a 2xx and no connection may drop (wrk reports
# no socket error).
#
# With BENCH=1 it also measures (docs/benchmarks.md, issue 8): wrk at CONNS connections straight
# to the serving tenant-app and through NGINX, same run; and each move's completion time.
# Runs in a fresh temporary directory; stops only the peers it started (by their pid files).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-debug}
# Builds what it runs (peer, peer-exec, tenant-app) unless PEER names a binary already built.
if [[ -z ${PEER:-} ]]; then
  make --no-print-directory -s build CONFIG="$BUILD"
  PEER=$PWD/.build/$BUILD/peer
fi
MOVES=${MOVES:-3}
CONNS=${CONNS:-16}
RUN_SECONDS=${RUN_SECONDS:-10}
BENCH=${BENCH:-0}
work=$(mktemp -d /tmp/peer-moves-XXXXXX)
cp cluster-config/local-3.yaml "$work/local-3.yaml"
CONFIG=$work/local-3.yaml
cleanup() { "$PEER" down --config "$CONFIG" --force --timeout 10 >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

json() { "$PEER" "$@" --config "$CONFIG" --output json 2>/dev/null; }
py() { python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }
router_port() { echo $((7300 + $1)); }
component_port() { echo $((7401 + 10 * ($1 - 1))); }  # dfx-dep on instance $1
served_by() { curl -s -o /dev/null -D - --max-time 5 -H "X-Tenant-ID: $2" "http://127.0.0.1:$(router_port "$1")/" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-served-by"{print $2}'; }
wait_routed() {  # tenant instance: every router sends the tenant to that instance
  for _ in $(seq 1 300); do
    ok=1
    for r in 1 2 3; do [[ $(served_by "$r" "$1") == "$2/"* ]] || { ok=0; break; }; done
    [[ $ok == 1 ]] && return 0
    sleep 0.1
  done
  echo "FAIL: $1 is not routed to instance $2 by every router" >&2; return 1
}
wrk_summary() { grep -E "requests in|Socket errors|Non-2xx|Latency|Requests/sec" "$1" | sed 's/^ */  /'; }

"$PEER" init --config "$CONFIG" >/dev/null
"$PEER" up --config "$CONFIG"
for t in acme globex initech umbrella; do "$PEER" tenants create "$t" --plan deployment --config "$CONFIG" >/dev/null; done
"$PEER" tenants create hot --plan unlimited --config "$CONFIG" --wait
active_instance() {  # tenant: the instance serving it, polled until its placement is active (bounded)
  for _ in $(seq 1 100); do
    i=$(json tenants list | py "[t.get('activeInstance') for t in s if t['id']=='$1'][0]")
    [[ $i != None ]] && { echo "$i"; return 0; }
    sleep 0.1
  done
  echo "FAIL: tenant $1 has no active instance after 10 s" >&2; return 1
}
for t in acme globex initech umbrella; do
  instance=$(active_instance "$t")
  wait_routed "$t" "$instance"
done
echo "== every router sends every tenant to the instance serving it"
"$PEER" tenants list --config "$CONFIG"

if [[ $BENCH == 1 ]]; then
  instance=$(json tenants list | py "[t.get('activeInstance') for t in s if t['id']=='hot'][0]")
  wait_routed hot "$instance"
  # Two request kinds: "/" (the handler does nothing: the proxy's whole cost shows) and
  # "/burn?ms=1" (1 ms of CPU per request, closer to an application's work).
  for path in "/" "/burn?ms=1"; do
    echo "== $path: wrk -c $CONNS -d ${RUN_SECONDS}s straight to tenant-app on instance $instance, then through NGINX of peer 1"
    wrk -t2 -c "$CONNS" -d "${RUN_SECONDS}s" --latency -H "X-Tenant-ID: hot" "http://127.0.0.1:$(component_port "$instance")$path" > "$work/direct.out"
    wrk -t2 -c "$CONNS" -d "${RUN_SECONDS}s" --latency -H "X-Tenant-ID: hot" "http://127.0.0.1:$(router_port 1)$path" > "$work/routed.out"
    echo "direct:"; wrk_summary "$work/direct.out"; grep " 99%" "$work/direct.out" | sed 's/^ */  p99 /'
    echo "routed:"; wrk_summary "$work/routed.out"; grep " 99%" "$work/routed.out" | sed 's/^ */  p99 /'
    d=$(awk '/Requests\/sec/{print $2}' "$work/direct.out"); r=$(awk '/Requests\/sec/{print $2}' "$work/routed.out")
    python3 -c "print('$path routed/direct throughput: %.3f' % ($r / $d))"
    # The floor any NGINX proxy pays on this machine: the same NGINX with nothing but
    # proxy_pass to that tenant-app (upstream keepalive; no lookup, limits or access log).
    mkdir -p "$work/bare"
    cat > "$work/bare/nginx.conf" <<EOF
worker_processes 1;
pid $work/bare/nginx.pid;
error_log $work/bare/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream app { server 127.0.0.1:$(component_port "$instance"); keepalive 32; }
  server {
    listen 127.0.0.1:7399;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
    nginx -p "$work/bare/" -c "$work/bare/nginx.conf"
    wrk -t2 -c "$CONNS" -d "${RUN_SECONDS}s" --latency -H "X-Tenant-ID: hot" "http://127.0.0.1:7399$path" > "$work/bare.out"
    kill -QUIT "$(cat "$work/bare/nginx.pid")"
    echo "bare NGINX proxy (floor):"; wrk_summary "$work/bare.out"; grep " 99%" "$work/bare.out" | sed 's/^ */  p99 /'
    b=$(awk '/Requests\/sec/{print $2}' "$work/bare.out")
    python3 -c "print('$path bare-proxy/direct throughput: %.3f, routed/bare-proxy: %.3f' % ($b / $d, $r / $b))"
  done
fi

echo "== $MOVES moves of tenant hot under wrk load through NGINX of peer 1 ($CONNS connections)"
total=$(( MOVES * 12 + 15 ))
wrk -t2 -c "$CONNS" -d "${total}s" --timeout 5s -H "X-Tenant-ID: hot" "http://127.0.0.1:$(router_port 1)/" > "$work/moves.out" &
wrk_pid=$!
durations=()
for i in $(seq 1 "$MOVES"); do
  from=$(json tenants list | py "[t.get('activeInstance') for t in s if t['id']=='hot'][0]")
  to=$(( from % 3 + 1 ))
  out=$("$PEER" tenants move hot --to "$to" --config "$CONFIG")
  echo "$out" | sed 's/^/  /'
  durations+=("$(echo "$out" | awk '/succeeded/{print $1}')")
  wait_routed hot "$to"
done
kill -INT "$wrk_pid" 2>/dev/null || true
wait "$wrk_pid" || true
wrk_summary "$work/moves.out"
python3 - "${durations[@]}" <<'PY'
import sys
d = sorted(float(x) for x in sys.argv[1:])
p = lambda q: d[min(len(d) - 1, int(q * len(d)))]
print("move completion: n=%d p50 %.3f s, p99 %.3f s, max %.3f s" % (len(d), p(0.5), p(0.99), d[-1]))
PY
if grep -q "Non-2xx" "$work/moves.out"; then echo "FAIL: some answers were not 2xx during the moves" >&2; exit 1; fi
# A move changes only the routers' route tables (no NGINX reload): no connection may drop.
if grep -q "Socket errors" "$work/moves.out"; then echo "FAIL: socket errors during the moves" >&2; exit 1; fi
echo "== no request refused and no connection dropped during $MOVES moves"
"$PEER" status --config "$CONFIG"
"$PEER" down --config "$CONFIG"
