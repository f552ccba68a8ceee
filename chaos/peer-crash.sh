#!/usr/bin/env bash
# What a crash of the peer process alone costs its tenants (issue 24, ADR 0015): a 3-peer
# cluster on loopback (local-3: NGINX and tenant-app components on every peer); a steady tenant
# served by instance X; requests to it every 50 ms through X's router and through another
# member's router; X's peer killed with SIGKILL and started again at once (as a supervisor
# would); then the requests that failed through each router, and for how long. Its NGINX and
# components die with the peer (ADR 0007 §7), so the tenant is down until the restarted peer
# has them ready again. Stops only the peers it started (by their pid files).
#   SECONDS_TOTAL=20  length of the request stream; the kill comes 3 s in
#   VICTIM=serving    serving (the peer serving the tenant) or leader
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-debug}
SECONDS_TOTAL=${SECONDS_TOTAL:-20}
VICTIM=${VICTIM:-serving}
if [[ -z ${PEER:-} ]]; then
  make --no-print-directory -s build CONFIG="$BUILD"
  PEER=$PWD/.build/$BUILD/peer
fi
work=$(mktemp -d /tmp/peer-crash-XXXXXX)
cp cluster-config/local-3.yaml "$work/local-3.yaml"
CONFIG=$work/local-3.yaml
cleanup() { "$PEER" down --config "$CONFIG" --force --timeout 10 >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
json() { "$PEER" "$@" --config "$CONFIG" --output json 2>/dev/null; }
py() { python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }

"$PEER" init --config "$CONFIG" >/dev/null
"$PEER" up --config "$CONFIG" >/dev/null
"$PEER" tenants create steady --plan deployment --config "$CONFIG" --wait >/dev/null
serving=$(json tenants list | py "[t.get('activeInstance') for t in s if t['id']=='steady'][0]")
leader=$(json status | py 's["leader"]')
victim=$serving
[[ $VICTIM == leader ]] && victim=$leader
other=$(( victim % 3 + 1 ))
pid=$(json status | py "[m['pid'] for m in s['members'] if m['id']==$victim][0]")
echo "== tenant steady on instance $serving; leader $leader; killing peer $victim (pid $pid); requests through routers $victim and $other"

# The request stream: one GET through each router every 50 ms (a thread per router), 1 s
# deadline, times relative to its start.
python3 - "$SECONDS_TOTAL" "$victim" "$other" "$work" >"$work/stream.out" <<'PY' &
import json, sys, threading, time, urllib.request
total, victim, other, work = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
t0 = time.monotonic()
seen = {victim: [], other: []}
def stream(r):  # one router, its own thread: a request that hangs delays only its own stream
    while time.monotonic() - t0 < total:
        tick = time.monotonic()
        try:
            req = urllib.request.Request("http://127.0.0.1:%d/" % (7300 + r), headers={"X-Tenant-ID": "steady"})
            with urllib.request.urlopen(req, timeout=1) as a:
                ok = a.status == 200
        except Exception:
            ok = False
        seen[r].append((round(tick - t0, 3), ok))
        time.sleep(max(0, 0.05 - (time.monotonic() - tick)))
threads = [threading.Thread(target=stream, args=(r,)) for r in (victim, other)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({str(k): v for k, v in seen.items()}))
PY
spid=$!
sleep 3
start_ns=$(date +%s%N)
kill -9 "$pid"
"$PEER" up --config "$CONFIG" --id "$victim" >/dev/null
up_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
wait "$spid"
python3 - "$work/stream.out" "$victim" "$other" "$up_ms" <<'PY'
import json, sys
seen = json.load(open(sys.argv[1]))
victim, other, up_ms = sys.argv[2], sys.argv[3], sys.argv[4]
for r, label in ((victim, "the killed peer's router"), (other, "another member's router")):
    calls = seen[r]
    failed = [t for t, ok in calls if not ok]
    span = "%.2f-%.2f s (%.0f ms)" % (failed[0], failed[-1], (failed[-1] - failed[0]) * 1000) if failed else "-"
    print("%s (router %s): %d of %d requests failed; failures from %s" % (label, r, len(failed), len(calls), span))
print("peer %s was running again %s ms after the kill (`peer up` returned: a leader known)" % (victim, up_ms))
PY
