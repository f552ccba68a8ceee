# Sourced by the chaos scripts that use the docker provider (instances-bench.sh,
# balancer-failover.sh): a Docker Engine of their own, as the contract tests start one, and the
# instance image built from this tree's binaries. Needs `work` (the script's temporary
# directory) and `PEER`; sets `socket` (and `dockerd_pid` when it starts one). Not run in a
# subshell, so the script's cleanup sees what it started.

dockerd_pid=
socket=

# Starts dockerd under $work/d unless DOCKER_SOCKET names a running engine.
start_dockerd() {
  if [[ -n ${DOCKER_SOCKET:-} ]]; then socket=$DOCKER_SOCKET; return; fi
  local d=$work/d
  mkdir -p "$d"
  dockerd --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none --storage-driver=vfs \
    --data-root="$d/root" --exec-root="$d/exec" --pidfile="$d/docker.pid" --host="unix://$d/docker.sock" > "$d/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 1 300); do
    curl -s --unix-socket "$d/docker.sock" http://localhost/_ping >/dev/null 2>&1 && { socket=$d/docker.sock; return; }
    sleep 0.1
  done
  echo "dockerd did not answer within 30 s: $(tail -5 "$d/dockerd.log")" >&2
  return 1
}

# Imports the image .ci/build-image makes from $PEER's build as peer:$1.
load_image() {
  bash .ci/build-image "$(dirname "$PEER")" "$work/rootfs.tar" >/dev/null
  curl -sS --fail --unix-socket "$socket" -X POST -H 'Content-Type: application/x-tar' --data-binary @"$work/rootfs.tar" \
    "http://localhost/v1.41/images/create?fromSrc=-&repo=peer&tag=$1" >/dev/null
  rm -f "$work/rootfs.tar"
}

# Stops the dockerd this script started (its containers with it) and unmounts what it left.
stop_dockerd() {
  [[ -n $dockerd_pid ]] || return 0
  kill -TERM "$dockerd_pid" 2>/dev/null || true
  for _ in $(seq 1 200); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$dockerd_pid" 2>/dev/null || true
  # dockerd leaves its network namespace file (and, killed, its mounts) under the exec root.
  awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# The instance ids of cluster $1's containers the engine holds, sorted, space-separated.
docker_instances() {
  curl -s --unix-socket "$socket" -G "http://localhost/v1.41/containers/json" --data-urlencode all=1 \
    --data-urlencode "filters={\"label\":[\"io.peer.cluster=$1\"]}" |
    python3 -c 'import json,sys; print(" ".join(sorted((c["Labels"].get("io.peer.instance", "?") for c in json.load(sys.stdin)), key=lambda x: (len(x), x))))'
}
