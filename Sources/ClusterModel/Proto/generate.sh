#!/usr/bin/env bash
# Regenerates Generated/cluster.pb.swift from Proto/cluster.proto. The output is committed, so
# a normal build never needs protoc. Needs: protoc (`apt-get install -y protobuf-compiler`) and
# protoc-gen-swift 1.39.0, built once with:
#   swift build --package-path <swift-protobuf 1.39.0 checkout> --scratch-path .build-protoc \
#     --product protoc-gen-swift
# PROTOC_GEN_SWIFT overrides where the plugin is looked for.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
plugin="${PROTOC_GEN_SWIFT:-}"
if [[ -z $plugin ]]; then
  for candidate in "$root"/.build-protoc/debug/protoc-gen-swift "$root"/.build-protoc/release/protoc-gen-swift \
    "$root"/.build-protoc/*/debug/protoc-gen-swift "$root"/.build-protoc/*/release/protoc-gen-swift; do
    [[ -x $candidate ]] && plugin=$candidate && break
  done
fi
[[ -n $plugin && -x $plugin ]] || { echo "generate.sh: protoc-gen-swift not found; set PROTOC_GEN_SWIFT" >&2; exit 1; }
protoc --plugin=protoc-gen-swift="$plugin" \
  --swift_opt=Visibility=Public \
  --swift_out="$here/../Generated" \
  --proto_path="$here" \
  "$here/cluster.proto"
echo "generate.sh: wrote $here/../Generated/cluster.pb.swift"
