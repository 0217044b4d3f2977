#!/usr/bin/env bash
# Regenerates api/gen/ (TypeScript, ts-proto) from api/proto/. Run from anywhere;
# `make proto` calls it. Reproducible: the output depends only on api/proto, the
# protoc version and the ts-proto version in node_modules, so a second run gives
# byte-identical files (the test for that is: run twice, `git status api/gen`).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

plugin="$root/node_modules/.bin/protoc-gen-ts_proto"
[ -x "$plugin" ] || { echo "generate.sh: $plugin missing; run 'make deps'" >&2; exit 1; }
command -v protoc >/dev/null || { echo "generate.sh: protoc missing; install protobuf-compiler" >&2; exit 1; }

# Options shared by every file:
#   forceLong=number          int64/uint64 as JS numbers (pids, sizes, seconds fit in 2^53)
#   useDate=false             Timestamp stays {seconds, nanos}, exactly as on the wire
#   outputServices=generic-definitions
#                             each service becomes a plain const (`TaskDefinition`) with
#                             its full name and, per method, name + request/response codecs;
#                             no runtime dependency, usable by our ttrpc and gRPC layers
#   outputJsonMethods=false   no proto3-JSON; keeps the shim bundle small
#   useOptionals=none, snakeToCamel=true, esModuleInterop=true,
#   useExactTypes=false, outputTypeRegistry=false
common="esModuleInterop=true,useDate=false,outputServices=generic-definitions,useExactTypes=false,snakeToCamel=true,useOptionals=none,outputTypeRegistry=false,outputJsonMethods=false"

out="$root/api/gen"
rm -rf "$out"
mkdir -p "$out"

run() { # run <ts-proto options> <proto files...>
  local opts="$1"; shift
  protoc \
    --plugin=protoc-gen-ts_proto="$plugin" \
    --ts_proto_out="$out" \
    --ts_proto_opt="$opts" \
    --proto_path="$root/api/proto" \
    "$@"
}

# Everything but the cgroup metrics, CRIU's images and CRI: 64-bit fields become numbers.
mapfile -t main_files < <(cd api/proto && find . -name '*.proto' ! -path './io/containerd/cgroups/*' ! -path './criu/*' ! -path './k8s/*' | sed 's|^\./||' | LC_ALL=C sort)
run "$common,forceLong=number" "${main_files[@]}"

# cgroup metrics: counters and limits really use 64 bits (an unlimited cgroup v1
# memory limit is 9223372036854771712 > 2^53), so these get bigint.
mapfile -t cgroup_files < <(cd api/proto && find ./io/containerd/cgroups -name '*.proto' | sed 's|^\./||' | LC_ALL=C sort)
run "$common,forceLong=bigint" "${cgroup_files[@]}"

# CRI: timestamps are nanoseconds since the epoch (about 2^60), so int64 is bigint here too.
mapfile -t cri_files < <(cd api/proto && find ./k8s -name '*.proto' | sed 's|^\./||' | LC_ALL=C sort)
run "$common,forceLong=bigint" "${cri_files[@]}"

# CRIU's image messages (proto2, no package): bigint, since a 64-bit field of an untrusted image
# (a signal mask, an address) may use all 64 bits and must decode, not throw; the decoder bounds
# what it turns into numbers. initializeFieldsAsUndefined=false keeps proto2 presence: an absent
# optional field stays undefined, not 0 (CRIU reads pagemaps by has_nr_pages / has_flags).
mapfile -t criu_files < <(cd api/proto && find ./criu -name '*.proto' | sed 's|^\./||' | LC_ALL=C sort)
run "$common,forceLong=bigint,initializeFieldsAsUndefined=false" "${criu_files[@]}"
