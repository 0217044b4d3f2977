#!/usr/bin/env bash
# `make install [PREFIX=/usr/local]` (after `make build`): installs ferry so that it needs
# nothing from this tree afterwards.
#   $PREFIX/bin/containerd-shim-ferry-v2, $PREFIX/bin/ferry
#       the launchers (shim/*) with `lib` and `node` set to absolute paths: a copy of either,
#       or a link to it, works from any directory (containerd's `runtime_path`,
#       `ctr run --runtime /abs/path`, a copy in another bin directory).
#   $PREFIX/lib/ferry/
#       dist/ as contrib/bundle.js laid it out: entries, bundles, their V8 code caches, the
#       ferry_sys addon; and node_modules/zstd-napi (dist/ferry.js keeps it external because it
#       loads a .node file).
# Every file is written beside its target and renamed over it, so a shim that containerd starts
# during an install never reads a half-written file (a bundle and an older cache only cost the
# cache: their build ids differ), and running shims keep what they mapped: the addon and every
# bundle's source (src/loader/code-cache.ts) are mappings of these files, and a mapped file
# rewritten in place (cp over it) faults the processes that map it with SIGBUS. Whatever else
# replaces them (a package manager) must rename too.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=${1:?usage: install.sh PREFIX}
case $prefix in /*) ;; *) prefix=$(pwd)/$prefix ;; esac
prefix=$(realpath -m -- "$prefix")
bin=$prefix/bin
lib=$prefix/lib/ferry
node=$(command -v node) || { echo "install: node not found on PATH" >&2; exit 1; }
node=$(readlink -f -- "$node")

for f in dist/shim-entry.js dist/shim.js dist/shim-daemon.js dist/ferry-entry.js dist/ferry.js dist/ferry_sys.node; do
  [ -f "$f" ] || { echo "install: $f missing: run make build first" >&2; exit 1; }
done

# put SRC DEST MODE: copy through a temporary file in DEST's directory, then rename.
put() {
  local tmp
  mkdir -p "$(dirname "$2")"
  tmp=$(mktemp "$(dirname "$2")/.install.XXXXXX")
  cp -- "$1" "$tmp"
  chmod "$3" "$tmp"
  mv -f -- "$tmp" "$2"
}

for f in dist/*.js dist/*.js.cache dist/ferry_sys.node; do
  mode=644; [ "${f##*.}" = node ] && mode=755
  put "$f" "$lib/${f#dist/}" "$mode"
done

zstd=node_modules/zstd-napi
for f in package.json binding.js LICENSE NOTICE build/Release/binding.node "$zstd"/dist/*.js; do
  f=${f#"$zstd"/}
  mode=644; [ "${f##*.}" = node ] && mode=755
  put "$zstd/$f" "$lib/node_modules/zstd-napi/$f" "$mode"
done

# launcher NAME SED-SCRIPT CHECK: shim/NAME with its settings made absolute, into $bin.
launcher() {
  local tmp
  tmp=$(mktemp "$lib/.launcher.XXXXXX")
  sed -e "$2" "shim/$1" > "$tmp"
  grep -q -- "$3" "$tmp" || { rm -f "$tmp"; echo "install: shim/$1 has no settings line to fill in" >&2; exit 1; }
  put "$tmp" "$bin/$1" 755
  rm -f "$tmp"
}
# The shim's launcher (sh): its `lib=` and `node=` lines.
launcher containerd-shim-ferry-v2 "s|^lib=\$|lib='$lib'|; s|^node=node\$|node='$node'|" "^lib='$lib'\$"
# The command's (sh and node in one file, shim/ferry): the sh half's `lib=` and `node=` lines and
# the JavaScript half's `const lib = '';`.
launcher ferry "s|^lib=\$|lib='$lib'|; s|^node=node\$|node='$node'|; s|^const lib = '';\$|const lib = '$lib';|" "^lib='$lib'\$"
grep -q -- "^const lib = '$lib';\$" "$bin/ferry" || { echo "install: shim/ferry has no \`const lib\` line to fill in" >&2; exit 1; }
echo "installed ferry in $prefix: $bin/{containerd-shim-ferry-v2,ferry}, $lib"
