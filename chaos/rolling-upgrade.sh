#!/usr/bin/env bash
# Scenario (the card's "rolling upgrades via graceful drain"): a 5-member cluster on loopback,
# each member with its NGINX and tenant-app components, runs release 0.1 (protocol version 1).
# Under wrk load (tenants through a load balancer in front of the five routers, as a platform
# has) and a stream of tenant writes, it is upgraded member by member to 0.2, followers first and
# the leader last (`peer upgrade --binary`, without raising the cluster version), back to 0.1,
# and to 0.2 again with the raise. Every request must be answered 2xx with no socket error,
# every acknowledged write must be in the state, every member must report one digest.
#
# Both releases come from this tree: a script that runs `peer` with PEER_PROTOCOL_VERSION=1 is
# release 0.1 (docs/operations.md §Upgrades). Prints the numbers of docs/benchmarks.md: total
# time, time without a leader (summed over 100 ms polls of every member), request p99 before and
# during. Runs in a fresh temporary directory; stops only what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-debug}
if [[ -z ${PEER:-} ]]; then
  make --no-print-directory -s build CONFIG="$BUILD"
  PEER=$PWD/.build/$BUILD/peer
fi
CONNS=${CONNS:-8}
RATE_DELAY_MS=${RATE_DELAY_MS:-10}   # wrk's per-request pause per connection: a steady load, not a flood
work=$(mktemp -d /tmp/peer-upgrade-XXXXXX)
CONFIG=$work/local-5.yaml
LB_PORT=${LB_PORT:-7390}
cleanup() {
  [[ -f $work/stop-writes ]] || touch "$work/stop-writes"
  [[ -f $work/lb/nginx.pid ]] && kill -QUIT "$(cat "$work/lb/nginx.pid")" 2>/dev/null || true
  for p in ${bg_pids:-}; do kill "$p" 2>/dev/null || true; done
  "$PEER" down --config "$CONFIG" --force --timeout 10 >/dev/null 2>&1 || true
  # KEEP=1 keeps the directory (the peers' logs) to look at after a failure.
  if [[ ${KEEP:-0} == 1 ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Five members: local-3's three and two more on the next ports.
python3 - "$work" <<'PY'
import sys
work = sys.argv[1]
text = open("cluster-config/local-3.yaml").read().replace("local-3", "local-5")
extra = ""
for i in (4, 5):
    extra += f"  - id: {i}\n    peer: 127.0.0.1:710{i}\n    api: 127.0.0.1:720{i}\n    router: 127.0.0.1:730{i}\n    components: 127.0.0.1:74{i - 1}0\n"
marker = "    components: 127.0.0.1:7420\n"
assert marker in text
open(f"{work}/local-5.yaml", "w").write(text.replace(marker, marker + extra))
PY
for v in 0.1 0.2; do
  env=$([[ $v == 0.1 ]] && echo "env PEER_PROTOCOL_VERSION=1" || echo "env -u PEER_PROTOCOL_VERSION")
  printf '#!/bin/sh\nexec %s %s "$@"\n' "$env" "$PEER" > "$work/peer-$v"
  chmod 755 "$work/peer-$v"
done
json() { "$PEER" "$@" --config "$CONFIG" --output json 2>/dev/null; }
py() { python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }

"$PEER" init --config "$CONFIG" >/dev/null
PEER_PROTOCOL_VERSION=1 "$PEER" up --config "$CONFIG"
tenants="acme globex initech umbrella hooli"
for t in $tenants; do "$PEER" tenants create "$t" --plan deployment --config "$CONFIG" >/dev/null; done
"$PEER" tenants create hot --plan unlimited --config "$CONFIG" --wait
for _ in $(seq 1 100); do
  placed=$(json tenants list | py "sum(1 for t in s if t.get('activeInstance'))")
  [[ $placed == 6 ]] && break
  sleep 0.2
done
[[ $placed == 6 ]] || { echo "FAIL: only $placed of 6 tenants placed after 20 s" >&2; exit 1; }
for _ in $(seq 1 50); do
  [[ $(json version | py "','.join(sorted(set(i['version'] for i in s['instances'])))") == 0.1.0-dev ]] && break
  sleep 0.2
done
"$PEER" version --config "$CONFIG"

# The platform's load balancer: a plain NGINX in front of the five routers. A router whose peer
# restarts refuses connections for a moment; the balancer tries the next one.
mkdir -p "$work/lb"
cat > "$work/lb/nginx.conf" <<EOF
worker_processes 1;
pid $work/lb/nginx.pid;
error_log $work/lb/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  upstream routers {
    server 127.0.0.1:7301 max_fails=1 fail_timeout=2s;
    server 127.0.0.1:7302 max_fails=1 fail_timeout=2s;
    server 127.0.0.1:7303 max_fails=1 fail_timeout=2s;
    server 127.0.0.1:7304 max_fails=1 fail_timeout=2s;
    server 127.0.0.1:7305 max_fails=1 fail_timeout=2s;
    keepalive 32;
  }
  server {
    listen 127.0.0.1:$LB_PORT;
    location / {
      proxy_pass http://routers;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout http_502 http_503 http_504;
      proxy_next_upstream_tries 5;
      proxy_connect_timeout 1s;
    }
  }
}
EOF
nginx -p "$work/lb/" -c "$work/lb/nginx.conf"
printf 'function delay() return %d end\n' "$RATE_DELAY_MS" > "$work/pace.lua"
wrk_summary() { grep -E "requests in|Socket errors|Non-2xx|Latency|Requests/sec" "$1" | sed 's/^ */  /'; }
p99() { awk '$1=="99%"{print $2}' "$1"; }

echo "== before: wrk -c $CONNS for 10 s on tenant hot through the load balancer"
wrk -t2 -c "$CONNS" -d 10s --timeout 5s --latency -s "$work/pace.lua" -H "X-Tenant-ID: hot" "http://127.0.0.1:$LB_PORT/" > "$work/before.out"
wrk_summary "$work/before.out"

# The leader poll: every 100 ms ask each member's API who leads; a poll where no member says it
# leads counts 100 ms without a leader.
tls=$(dirname "$CONFIG")/.peer/local-5/tls
python3 - "$work" "$tls" <<'PY' &
import http.client, json, os, ssl, sys, time
work, tls = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(cafile=f"{tls}/ca.pem")
ctx.load_cert_chain(f"{tls}/client-admin.pem", f"{tls}/client-admin.key")
ctx.check_hostname = False
without = polls = 0
deadline = time.time() + 1800
while not os.path.exists(f"{work}/stop-writes") and time.time() < deadline:
    started = time.time()
    leader = False
    for port in range(7201, 7206):
        try:
            c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=0.3)
            c.request("GET", "/v1/status")
            s = json.loads(c.getresponse().read())
            c.close()
            if s.get("state") == "leader":
                leader = True
                break
        except Exception:
            pass
    polls += 1
    without += 0 if leader else 1
    time.sleep(max(0, 0.1 - (time.time() - started)))
open(f"{work}/leaderless", "w").write(f"{without * 100} {polls}\n")
PY
bg_pids="$!"

# The writes: tenants created one after another through the CLI (which retries with the same
# request id through a leader change), one every WRITE_PAUSE s; each acknowledged one is
# recorded. Bounded: WRITES at most (each takes its plan's weight, 2 units, of the instances'
# capacity, 100 each, and a drain needs room on the other four).
WRITES=${WRITES:-100}
WRITE_PAUSE=${WRITE_PAUSE:-0.5}
(
  for i in $(seq 1 "$WRITES"); do
    [[ -f $work/stop-writes ]] && break
    if "$PEER" tenants create "w$i" --plan deployment --config "$CONFIG" --timeout 30 >/dev/null 2>>"$work/writes.err"; then echo "w$i" >> "$work/acked"; fi
    sleep "$WRITE_PAUSE"
  done
) &
bg_pids="$bg_pids $!"

total=2400
wrk -t2 -c "$CONNS" -d "${total}s" --timeout 5s --latency -s "$work/pace.lua" -H "X-Tenant-ID: hot" "http://127.0.0.1:$LB_PORT/" > "$work/during.out" &
wrk_pid=$!
began=$(date +%s.%N)
phase() {  # name binary [--no-finish]
  local t0 t1
  t0=$(date +%s.%N)
  echo "== $1"
  stdbuf -oL "$PEER" upgrade --binary "$2" --config "$CONFIG" --timeout 30 "${@:3}" | tee "$work/$1.out" | sed -u 's/^/  /'
  t1=$(date +%s.%N)
  python3 -c "print('  %s: %.1f s' % ('$1', $t1 - $t0))"
  "$PEER" version --config "$CONFIG" | sed 's/^/  /'
}
phase "0.1-to-0.2" "$work/peer-0.2" --no-finish
phase "0.2-back-to-0.1" "$work/peer-0.1" --no-finish
phase "0.1-to-0.2-and-raise" "$work/peer-0.2"
ended=$(date +%s.%N)
kill -INT "$wrk_pid" 2>/dev/null || true
wait "$wrk_pid" || true
touch "$work/stop-writes"
wait $bg_pids || true
bg_pids=""

echo "== during the three rolling upgrades (wrk through the load balancer)"
wrk_summary "$work/during.out"
fail=0
if grep -q "Non-2xx" "$work/during.out"; then echo "FAIL: some answers were not 2xx during the upgrades" >&2; fail=1; fi
if grep -q "Socket errors" "$work/during.out"; then echo "FAIL: socket errors during the upgrades" >&2; fail=1; fi
for f in 0.1-to-0.2 0.2-back-to-0.1 0.1-to-0.2-and-raise; do
  leader_before=$(grep -m1 "in the order" "$work/$f.out" | sed 's/.*in the order //; s/.*, //')
  last=$(grep ": upgrading to" "$work/$f.out" | tail -1 | awk '{print $2}' | tr -d ':')
  [[ $last == "$leader_before" ]] || { echo "FAIL: $f: the last peer upgraded is $last, the leader was $leader_before" >&2; fail=1; }
done
grep -q "cluster version raised to 2" "$work/0.1-to-0.2-and-raise.out" || { echo "FAIL: the cluster version was not raised" >&2; fail=1; }

# Every acknowledged write is in the state.
acked=$(wc -l < "$work/acked" 2>/dev/null || echo 0)
missing=$(json tenants list --consistent | python3 -c "
import json, sys
have = {t['id'] for t in json.load(sys.stdin)}
acked = [l.strip() for l in open('$work/acked')] if $acked > 0 else []
print(sum(1 for a in acked if a not in have))")
echo "writes: $acked acknowledged, $missing of them missing"
[[ $missing == 0 && $acked -gt 0 ]] || { echo "FAIL: $missing acknowledged writes lost (of $acked)" >&2; fail=1; }

# One digest on every member.
for _ in $(seq 1 100); do
  digests=$(json status | py "' '.join(sorted(set(m.get('stateDigest', '?') for m in s['members'])))")
  [[ $digests != *" "* && $digests != "?" ]] && break
  sleep 0.2
done
echo "digests: $digests"
[[ $digests != *" "* && $digests != "?" ]] || { echo "FAIL: the members do not agree on one digest" >&2; fail=1; }

read -r leaderless polls < "$work/leaderless"
# The leadership transfers (one per phase: the leader's own step hands it over) as the steps
# timed them: from the request to a new leader known.
transfers=$(cat "$work"/0.*.out | awk '/leadership handed to peer/{s += $(NF-1)} END{print s + 0}')
python3 - "$began" "$ended" "$leaderless" "$polls" "$(p99 "$work/before.out")" "$(p99 "$work/during.out")" "${transfers:-0}" <<'PY'
import sys
began, ended, leaderless, polls = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def ms(t):
    return float(t[:-2]) if t.endswith("ms") else float(t[:-2]) / 1000 if t.endswith("us") else float(t[:-1]) * 1000
print("rolling upgrade of 5 members, three times (15 steps): %.1f s in all; without a leader: %d ms seen by %d polls 100 ms apart, "
      "%s ms summed over the 3 leadership transfers; request p99 before %.2f ms, during %.2f ms"
      % (ended - began, leaderless, polls, sys.argv[7], ms(sys.argv[5]), ms(sys.argv[6])))
PY
"$PEER" status --config "$CONFIG"
[[ $fail == 0 ]] || exit 1
echo "== 0 failed requests, 0 lost acknowledged writes, the leader upgraded last each time, one digest"
"$PEER" down --config "$CONFIG"
