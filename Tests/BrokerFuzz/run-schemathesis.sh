#!/usr/bin/env bash
# Fuzzes the broker (/v2) of a real 3-peer cluster with schemathesis against the patched OSB
# v2.17 OpenAPI file (docs/broker.md §Fuzzing). Needs: a built `peer` (PEER=path), python3.
#   Tests/BrokerFuzz/run-schemathesis.sh [MAX_EXAMPLES]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
peer="${PEER:-$root/.build/debug/peer}"
examples="${1:-1000}"
work="$(mktemp -d /tmp/broker-fuzz.XXXXXX)"
venv="${SCHEMATHESIS_VENV:-/tmp/broker-st}"
[[ -x $venv/bin/schemathesis ]] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q schemathesis; }
cat >"$work/cluster.yaml" <<YAML
cluster: fuzz
dataDir: data
tlsDir: tls
runDir: run
peers:
  - {id: 1, peer: "127.0.0.1:27101", api: "127.0.0.1:27201"}
  - {id: 2, peer: "127.0.0.1:27102", api: "127.0.0.1:27202"}
  - {id: 3, peer: "127.0.0.1:27103", api: "127.0.0.1:27203"}
YAML
trap '"$peer" down --config "$work/cluster.yaml" --force >/dev/null 2>&1 || true' EXIT
"$peer" init --config "$work/cluster.yaml" >/dev/null
"$peer" up --config "$work/cluster.yaml"
# Through peer 2: whichever peer leads, some requests are forwarded by a follower.
"$venv/bin/schemathesis" run "$here/osb-v2.17-openapi.patched.yaml" \
  --url https://127.0.0.1:27202 --tls-verify "$work/tls/ca.pem" \
  -a "broker:$(cat "$work/tls/broker-password")" -H "X-Broker-API-Version: 2.17" \
  --checks all --exclude-checks positive_data_acceptance,negative_data_rejection \
  --max-examples "$examples" -w 2 --seed 20261125
"$peer" status --config "$work/cluster.yaml"
