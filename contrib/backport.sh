#!/usr/bin/env bash
# Builds the few newer programs ferry needs as local backports for Debian bookworm, from Debian's
# own source packages, against bookworm's libraries, and packs each as a .deb:
#   criu 4.2.1 (forky)   trixie's 4.1.1 cannot dump any TCP socket on kernels from 6.16 on
#                        ("sockets: Can't get 1:16 opt"); 4.2 fixes it
#   runc 1.1.15 (trixie) the runc containerd 1.7.24 was released and tested with
#   checkpointctl 1.3.0 (trixie)  the reference reader of checkpoint archives (tests only)
#
# Why not install trixie's binaries: they need glibc 2.38 (only for the C23 __isoc23_strtol
# family), and trixie's libc6 breaks bookworm's base-files and libc6-dev — apt then removes
# build-essential, g++, postgresql, python3-dev and ~40 more (measured with `apt-get -s`).
# Rebuilding from the same sources against bookworm's libc changes nothing else on the machine.
#
# Usage: backport.sh OUTDIR   (leaves criu_*.deb, runc_*.deb, checkpointctl_*.deb in OUTDIR)
# Needs the deb-src lines for trixie and forky that setup.sh writes.
set -euo pipefail
mkdir -p "${1:?usage: backport.sh OUTDIR}"
out=$(realpath "$1")
work=$(mktemp -d /tmp/ferry-backport.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
suffix="~bpo12+ferry1"
arch=$(dpkg --print-architecture)

# Go toolchain for the two Go programs: trixie's, unpacked here only (Go binaries are static).
gotool="$work/gotool"
(mkdir -p debs && cd debs && apt-get -o APT::Sandbox::User=root download -q golang-1.24-go/trixie golang-1.24-src/trixie >/dev/null)
for d in debs/golang-1.24-*.deb; do dpkg -x "$d" "$gotool"; done
export GOROOT="$gotool/usr/lib/go-1.24" PATH="$gotool/usr/lib/go-1.24/bin:$PATH"
export GO111MODULE=off GOFLAGS= GOTOOLCHAIN=local GOCACHE="$work/gocache"

# Debian strips vendor/ from Go sources and ships each dependency as golang-*-dev (source
# files under /usr/share/gocode). Unpack those of trixie into a private GOPATH; nothing is
# installed.
gocode="$work/gocode"
fetch_godeps() {
  (cd debs && for p in "$@"; do apt-get -o APT::Sandbox::User=root download -q "$p/trixie" >/dev/null; done)
  for d in debs/golang-*-dev_*.deb; do dpkg -x "$d" "$gocode"; done
}

# Downloads a source package's files (only the ones listed must arrive; Debian's mirror
# sometimes lacks a .dsc or .debian.tar.xz of an older upload, which apt reports but we do not need).
fetch_source() {
  local spec=$1; shift
  apt-get -o APT::Sandbox::User=root source --download-only -q "$spec" >/dev/null 2>&1 || true
  local f
  for f in "$@"; do
    [ -s "$f" ] || { echo "backport: could not download $f ($spec) from Debian's archive" >&2; exit 1; }
  done
}

# Writes a binary package NAME VERSION DEPENDS DESCRIPTION from the staged tree $work/pkg-NAME.
pack() {
  local name=$1 version=$2 depends=$3 desc=$4 root="$work/pkg-$1"
  mkdir -p "$root/DEBIAN"
  cat >"$root/DEBIAN/control" <<EOF
Package: $name
Version: $version
Architecture: $arch
Maintainer: ferry <ferry@localhost>
${depends:+Depends: $depends
}Section: admin
Priority: optional
Description: $desc
 Local backport for Debian bookworm built by ferry's contrib/backport.sh from Debian's
 source package, against bookworm's libraries.
EOF
  dpkg-deb --root-owner-group --build "$root" "$out/${name}_${version}_${arch}.deb" >/dev/null
  echo "backport: built ${name} ${version}"
}

# --- criu 4.2.1 (C; only the criu binary is built: no docs, no plugins, no python tools)
fetch_source criu/forky criu_4.2.1.orig.tar.xz
tar xf criu_4.2.1.orig.tar.xz
make -s -C criu-4.2.1 -j"$(nproc)" criu >"$work/criu-build.log" 2>&1 || { tail -30 "$work/criu-build.log"; exit 1; }
install -D -m 0755 criu-4.2.1/criu/criu "$work/pkg-criu/usr/sbin/criu"
pack criu "4.2.1-1$suffix" \
  "libc6 (>= 2.34), libprotobuf-c1, libnl-3-200, libnet1, libgnutls30, libnftables1, libbsd0, libuuid1, iptables" \
  "checkpoint/restore in userspace (CRIU) 4.2.1"

# --- runc 1.1.15 (Debian's patches applied, built as debian/rules does)
fetch_source runc/trixie runc_1.1.15+ds1.orig.tar.xz runc_1.1.15+ds1-2.debian.tar.xz
mkdir -p gp-runc/src/github.com/opencontainers
tar xf runc_1.1.15+ds1.orig.tar.xz
mv runc-1.1.15* gp-runc/src/github.com/opencontainers/runc
(cd gp-runc/src/github.com/opencontainers/runc && tar xf "$work/runc_1.1.15+ds1-2.debian.tar.xz" \
  && while read -r p; do [ -n "$p" ] && patch -p1 -s <"debian/patches/$p"; done <debian/patches/series)
fetch_godeps golang-dbus-dev golang-github-checkpoint-restore-go-criu-dev golang-github-cilium-ebpf-dev \
  golang-github-containerd-console-dev golang-github-coreos-go-systemd-dev golang-github-cyphar-filepath-securejoin-dev \
  golang-github-docker-go-units-dev golang-github-moby-sys-dev golang-github-mrunalp-fileutils-dev \
  golang-github-opencontainers-selinux-dev golang-github-opencontainers-specs-dev \
  golang-github-seccomp-libseccomp-golang-dev golang-github-sirupsen-logrus-dev golang-github-urfave-cli-dev \
  golang-github-vishvananda-netlink-dev golang-github-vishvananda-netns-dev golang-gocapability-dev \
  golang-golang-x-net-dev golang-golang-x-sys-dev golang-golang-x-exp-dev golang-google-protobuf-dev
(cd gp-runc/src/github.com/opencontainers/runc && GOPATH="$work/gp-runc:$gocode/usr/share/gocode" \
  go build -trimpath -tags "seccomp urfave_cli_no_docs" \
  -ldflags "-X main.version=1.1.15 -X main.gitCommit=1.1.15+ds1-2$suffix" -o "$work/pkg-runc/usr/sbin/runc" .)
pack runc "1.1.15+ds1-2$suffix" "libc6 (>= 2.34), libseccomp2 (>= 2.5.0)" \
  "Open Container Project - runtime (1.1.15)"

# --- checkpointctl 1.3.0 (pure Go, built static)
fetch_source golang-github-checkpoint-restore-checkpointctl/trixie golang-github-checkpoint-restore-checkpointctl_1.3.0+ds1.orig.tar.xz
mkdir -p gp-cctl/src/github.com/checkpoint-restore
tar xf golang-github-checkpoint-restore-checkpointctl_1.3.0+ds1.orig.tar.xz
mv checkpointctl-1.3.0 gp-cctl/src/github.com/checkpoint-restore/checkpointctl
fetch_godeps golang-github-containers-storage-dev golang-github-olekukonko-tablewriter-dev golang-github-spf13-cobra-dev \
  golang-github-xlab-treeprint-dev golang-github-klauspost-compress-dev golang-github-klauspost-pgzip-dev \
  golang-github-mattn-go-runewidth-dev golang-github-spf13-pflag-dev golang-github-inconshreveable-mousetrap-dev \
  golang-github-ulikunitz-xz-dev golang-github-rivo-uniseg-dev golang-github-cespare-xxhash-dev
(cd gp-cctl/src/github.com/checkpoint-restore/checkpointctl && GOPATH="$work/gp-cctl:$gocode/usr/share/gocode" \
  CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=1.3.0" -o "$work/pkg-checkpointctl/usr/bin/checkpointctl" .)
pack checkpointctl "1.3.0+ds1-2$suffix" "" "checkpointctl 1.3.0: inspect checkpoint archives"
