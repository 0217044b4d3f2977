#!/usr/bin/env bash
# Installs everything ferry needs on a fresh Debian bookworm machine, idempotently:
#  - criu 4.1.1, runc 1.1.15, containerd 1.7.24, iptables, busybox-static from trixie
#    (bookworm's criu 3.17 fails on recent kernels: "Unexpected rt vDSO area bounds";
#    criu needs iptables-restore to lock the network during a dump);
#  - containerd 2.1.9 from forky, extracted beside 1.7 into $FERRY_CONTAINERD2_DIR for the
#    second test lane;
#  - protobuf-compiler (for `make proto`), node dependencies.
# trixie/forky are pinned low so nothing else moves unless asked with -t.
set -euo pipefail

CONTAINERD2_DIR=${FERRY_CONTAINERD2_DIR:-/opt/ferry/containerd-2.1}
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" != 0 ]; then echo "setup.sh must run as root" >&2; exit 1; fi

sources=/etc/apt/sources.list.d/ferry-trixie-forky.sources
prefs=/etc/apt/preferences.d/ferry-trixie-forky
want_sources='Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie forky
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg'
want_prefs='Package: *
Pin: release n=trixie
Pin-Priority: 100

Package: *
Pin: release n=forky
Pin-Priority: 50'

need_update=0
if [ "$(cat "$sources" 2>/dev/null)" != "$want_sources" ]; then
  printf '%s\n' "$want_sources" >"$sources"; need_update=1
fi
if [ "$(cat "$prefs" 2>/dev/null)" != "$want_prefs" ]; then
  printf '%s\n' "$want_prefs" >"$prefs"; need_update=1
fi

have() { dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null | grep -q "install ok installed $2"; }

if ! { have criu '4.' && have runc '1.1' && have containerd '1.7' && have iptables '' \
       && have busybox-static '' && have protobuf-compiler ''; }; then
  [ "$need_update" = 0 ] && [ -n "$(ls -A /var/lib/apt/lists 2>/dev/null | grep trixie || true)" ] || apt-get update -q
  apt-get install -y -q -t trixie criu runc containerd iptables busybox-static
  apt-get install -y -q protobuf-compiler jq
fi

# containerd 2.1 beside 1.7: extracted, never installed (it would replace 1.7).
if [ ! -x "$CONTAINERD2_DIR/usr/bin/containerd" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -q -t forky containerd)
  mkdir -p "$CONTAINERD2_DIR"
  dpkg -x "$tmp"/containerd_2.*.deb "$CONTAINERD2_DIR"
  rm -rf "$tmp"
fi

criu check >/dev/null 2>&1 || { echo "warning: 'criu check' failed on this kernel" >&2; }

echo "setup: containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}'), criu $(criu --version | awk 'NR==1{print $2}'), containerd2 $("$CONTAINERD2_DIR/usr/bin/containerd" --version | awk '{print $3}')"
