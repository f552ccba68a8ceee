#!/usr/bin/env python3
"""An `exec` provider script (docs/providers.md, section exec) that runs each instance as a
`peer run --join` process on this host: the shape an operator's cloud script takes (create a
machine, hand it the join files, start peer; destroy it; list what exists), with processes
standing in for machines. `make bench-instances` measures the exec provider with it.

    python3 exec-local.py create|destroy|list STATE-DIR PEER-BINARY HOST LOW-PORT

One JSON request on stdin, one answer on stdout (schema version 1). Idempotent by instance id.
Each instance gets 8 ports from LOW-PORT up (peer, api, router, router control, components...),
its directory STATE-DIR/<cluster>/<instance> (join files 0600 in bootstrap/, data in data/,
output.log) and runs in a session of its own; destroy sends SIGTERM to that session, then
SIGKILL after 10 s, and removes the directory.
"""
import json
import os
import signal
import subprocess
import sys
import time

BLOCK = 8


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def main():
    op, state, peer, host, low = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    req = json.load(sys.stdin)
    if req.get("version") != 1 or req.get("operation") != op:
        sys.exit("unexpected request for %s: %r" % (op, req))
    cluster = os.path.join(state, req["cluster"])
    os.makedirs(cluster, mode=0o700, exist_ok=True)

    def record_path(instance):
        return os.path.join(cluster, instance, "record.json")

    def load(instance):
        path = record_path(instance)
        return json.load(open(path)) if os.path.exists(path) else None

    def addresses(base):
        return {"peer": "%s:%d" % (host, base), "api": "%s:%d" % (host, base + 1), "router": "%s:%d" % (host, base + 2),
                "routerControl": "127.0.0.1:%d" % (base + 3), "components": "%s:%d" % (host, base + 4)}

    def answer(rec):
        return {"instance": rec["instance"], "handle": "pid %d" % rec["pid"],
                "state": "running" if alive(rec["pid"]) else "stopped", "addresses": addresses(rec["base"])}

    if op == "list":
        recs = [load(n) for n in sorted(os.listdir(cluster)) if os.path.exists(record_path(n))]
        print(json.dumps({"instances": [answer(r) for r in recs]}))
        return
    instance = req["instance"]
    home = os.path.join(cluster, instance)
    rec = load(instance)
    if op == "destroy":
        if rec:
            if alive(rec["pid"]):
                os.killpg(rec["pid"], signal.SIGTERM)
                deadline = time.time() + 10
                while alive(rec["pid"]) and time.time() < deadline:
                    time.sleep(0.02)
                if alive(rec["pid"]):
                    os.killpg(rec["pid"], signal.SIGKILL)
        subprocess.run(["rm", "-rf", home], check=True)
        print("{}")
        return
    # create
    if rec and alive(rec["pid"]):
        print(json.dumps(answer(rec)))
        return
    if not rec:
        used = set()
        for name in os.listdir(cluster):
            other = load(name)
            if other:
                used.add(other["base"])
        base = next(b for b in range(low, low + 64 * BLOCK, BLOCK) if b not in used)
        rec = {"instance": instance, "base": base, "pid": 0}
    bootstrap, data = os.path.join(home, "bootstrap"), os.path.join(home, "data")
    for d in (home, bootstrap, data):
        os.makedirs(d, mode=0o700, exist_ok=True)
    for name, content in req["bootstrap"].items():
        fd = os.open(os.path.join(bootstrap, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(content)
    a = addresses(rec["base"])
    log = open(os.path.join(home, "output.log"), "ab")
    env = {k: v for k, v in os.environ.items() if k != "PEER_FAILPOINT"}
    child = subprocess.Popen(
        [peer, "run", "--join", bootstrap, "--data", data, "--peer", a["peer"], "--api", a["api"],
         "--router", a["router"], "--router-control", a["routerControl"], "--components", a["components"]],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, env=env)
    rec["pid"] = child.pid
    with open(record_path(instance), "w") as f:
        json.dump(rec, f)
    print(json.dumps(answer(rec)))


if __name__ == "__main__":
    main()
