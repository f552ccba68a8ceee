#!/usr/bin/env bash
# Regenerates peer.pb.swift from peer.proto. Normal builds never run this: the generated file is
# committed. Needs `protoc` (Debian: protobuf-compiler) and builds protoc-gen-swift from the
# swift-protobuf dependency once, in its own scratch path (.build-protoc, git-ignored).
# Set PROTOC_GEN_SWIFT to an existing plugin binary to skip that build.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
command -v protoc >/dev/null || { echo "protoc not found: apt-get install -y protobuf-compiler" >&2; exit 1; }
plugin="${PROTOC_GEN_SWIFT:-}"
if [[ -z "$plugin" ]]; then
  (cd "$root" && nice -n 10 swift build -c release --scratch-path .build-protoc --product protoc-gen-swift)
  plugin="$root/.build-protoc/release/protoc-gen-swift"
fi
protoc --plugin=protoc-gen-swift="$plugin" \
  --swift_opt=Visibility=Internal \
  --swift_out="$here" \
  --proto_path="$here" \
  "$here/peer.proto"
echo "wrote $here/peer.pb.swift"
