#!/usr/bin/env bash
# Installs what ferry needs on Debian bookworm (or trixie), idempotently, moving nothing else:
#
#   containerd 1.7.24   trixie's package, pinned by name (it needs only glibc 2.34)
#   runc 1.1.15, criu 4.2.1, checkpointctl 1.3.0
#                       on bookworm: local backports built from Debian's source packages by
#                       contrib/backport.sh (trixie's binaries need glibc 2.38; its libc6 would
#                       remove build-essential, g++, libc6-dev and more). On trixie: runc and
#                       checkpointctl from trixie; criu 4.2.1 built the same way when the kernel
#                       is 6.16 or newer (4.1 cannot dump TCP sockets there).
#   containerd 2.1.9    forky's package extracted into $FERRY_CONTAINERD2_DIR (second test lane;
#                       never installed, it would replace 1.7)
#   from the running suite: iptables (CRIU locks the network with it), busybox-static (test
#   images), protobuf-compiler (make proto), jq, and for the tests podman, buildah, skopeo and
#   docker-registry (real producers of checkpoint archives and a loopback registry), zstd
#   (the benchmark compares staging with `tar --zstd -xf`), build-essential (node-gyp builds the
#   native addon; the e2e tests build a static file-lock helper, busybox has no flock applet).
#
# It prints what it installed or upgraded (from dpkg's log). A second run changes nothing.
set -euo pipefail

CONTAINERD2_DIR=${FERRY_CONTAINERD2_DIR:-/opt/ferry/containerd-2.1}
BACKPORT_CACHE=${FERRY_BACKPORT_CACHE:-/var/cache/ferry/backports}
export DEBIAN_FRONTEND=noninteractive
here=$(cd "$(dirname "$0")" && pwd)

if [ "$(id -u)" != 0 ]; then echo "setup.sh must run as root" >&2; exit 1; fi
. /etc/os-release
case "${VERSION_CODENAME:-}" in
  bookworm|trixie) ;;
  *) echo "setup.sh: Debian bookworm or trixie expected, this is ${PRETTY_NAME:-unknown}" >&2; exit 1 ;;
esac
dpkg_log_start=$(wc -l </var/log/dpkg.log 2>/dev/null || echo 0)

# Debian's archive for trixie and forky, source packages included, pinned low: nothing comes
# from them unless asked for by name; containerd alone follows trixie (security updates).
sources=/etc/apt/sources.list.d/ferry-trixie-forky.sources
prefs=/etc/apt/preferences.d/ferry-trixie-forky
want_sources='Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: trixie forky
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg'
want_prefs='Package: *
Pin: release n=trixie
Pin-Priority: 100

Package: *
Pin: release n=forky
Pin-Priority: 50

Package: containerd
Pin: release n=trixie
Pin-Priority: 990'
need_update=0
if [ "$(cat "$sources" 2>/dev/null)" != "$want_sources" ]; then printf '%s\n' "$want_sources" >"$sources"; need_update=1; fi
if [ "$(cat "$prefs" 2>/dev/null)" != "$want_prefs" ]; then printf '%s\n' "$want_prefs" >"$prefs"; need_update=1; fi
if [ "$need_update" = 1 ] || ! ls /var/lib/apt/lists/ 2>/dev/null | grep -q '_forky_.*Sources$'; then
  apt-get update -q >/dev/null
fi

# "installed at version prefix"
have() { dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null | grep -q "^install ok installed $2"; }
missing() { local p out=(); for p in "$@"; do have "$p" '' || out+=("$p"); done; echo "${out[@]}"; }
apt_install() { [ $# = 0 ] || apt-get install -y -q --no-install-recommends "$@" >/dev/null; }

kernel_ge_6_16() { local v; v=$(uname -r); v=${v%%-*}; [ "$(printf '%s\n' 6.16 "$v" | sort -V | head -1)" = 6.16 ]; }

# --- runc, criu, checkpointctl
want_backports=()
if [ "$VERSION_CODENAME" = bookworm ]; then
  have runc '1.1.15' || want_backports+=(runc)
  have checkpointctl '1.3' || want_backports+=(checkpointctl)
  have criu '4.2' || want_backports+=(criu)
else
  apt_install $(missing runc checkpointctl)
  if kernel_ge_6_16; then have criu '4.2' || want_backports+=(criu); else apt_install $(missing criu); fi
fi
if [ ${#want_backports[@]} -gt 0 ]; then
  built=1
  for p in "${want_backports[@]}"; do ls "$BACKPORT_CACHE/${p}_"*.deb >/dev/null 2>&1 || built=0; done
  if [ "$built" = 0 ]; then
    # Build dependencies (bookworm's own -dev packages of libraries criu/runc already link).
    apt_install $(missing build-essential pkg-config libprotobuf-c-dev protobuf-c-compiler protobuf-compiler \
      libprotobuf-dev libnl-3-dev libnl-route-3-dev libnet1-dev libcap-dev libaio-dev libbsd-dev libgnutls28-dev \
      libnftables-dev python3-protobuf uuid-dev libseccomp-dev dpkg-dev)
    bash "$here/backport.sh" "$BACKPORT_CACHE"
  fi
  debs=(); for p in "${want_backports[@]}"; do debs+=("$(ls "$BACKPORT_CACHE/${p}_"*.deb | tail -1)"); done
  apt-get install -y -q --no-install-recommends "${debs[@]}" >/dev/null
fi

# --- containerd 1.7 (trixie, by name), the running suite's helpers and test tools
have containerd '1.7' || apt_install containerd/trixie
apt_install $(missing iptables busybox-static protobuf-compiler jq podman buildah skopeo docker-registry uidmap zstd build-essential)
# docker-registry starts a registry on :5000 at install; the tests run their own on loopback.
for svc in docker-registry; do
  if systemctl is-enabled "$svc" >/dev/null 2>&1; then systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
done

# --- containerd 2.1 beside 1.7: extracted, never installed.
if [ ! -x "$CONTAINERD2_DIR/usr/bin/containerd" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get -o APT::Sandbox::User=root download -q containerd/forky >/dev/null)
  mkdir -p "$CONTAINERD2_DIR"
  dpkg -x "$tmp"/containerd_2.*.deb "$CONTAINERD2_DIR"
  rm -rf "$tmp"
fi

criu check >/dev/null 2>&1 || echo "warning: 'criu check' failed on this kernel" >&2

# What this run changed, from dpkg's own log.
changes=$(tail -n +"$((dpkg_log_start + 1))" /var/log/dpkg.log 2>/dev/null | awk '$3 == "install" || $3 == "upgrade" {print "  " $3, $4, $5, "->", $6}')
if [ -n "$changes" ]; then echo "setup: dpkg changes:"; echo "$changes"; else echo "setup: no package changes"; fi
echo "setup: containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}'), criu $(criu --version | awk 'NR==1{print $2}'), containerd2 $("$CONTAINERD2_DIR/usr/bin/containerd" --version | awk '{print $3}'), checkpointctl $(dpkg-query -W -f='${Version}' checkpointctl), podman $(podman --version | awk '{print $3}')"
