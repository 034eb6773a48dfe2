#!/usr/bin/env bash
# The project on Debian 13 ("trixie": GStreamer 1.26, GstAnalytics, PostgreSQL 17 with pgvector),
# from a Debian 12 host, in a chroot that debootstrap makes from Debian's archive. Run as root.
#   bash tools/debian13.sh ensure      make the chroot, or reuse the cached one
#   bash tools/debian13.sh test        ensure, build in build-debian13/ inside it, run meson test
#   bash tools/debian13.sh run CMD...  ensure, run CMD inside, in this checkout (at its own path):
#                                      one argument is a shell script, several a command and its
#                                      arguments
#
# The chroot lives outside the clone, in $UMGCLIP_DEBIAN13_ROOT (default /var/cache/umgclip/trixie),
# and is made again from scratch when the debian13 packages of tools/packages.list change. /proc,
# /sys, /dev, a fresh /tmp, the checkout and ../shared beside it (read-only) are mounted in a
# private mount namespace of each run:
# they go away with its last process, whether it passed, failed or was killed. Runs share the
# chroot (a shared lock); making it takes the lock alone. A user on Debian 13 or Ubuntu 24.04
# builds natively and needs none of this.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=${UMGCLIP_DEBIAN13_ROOT:-/var/cache/umgclip/trixie}
mirror=${UMGCLIP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
lock="$root.lock"
stamp="$root/etc/umgclip-packages"

die() {
  echo "debian13.sh: $*" >&2
  exit 1
}

[[ $(id -u) == 0 ]] || die "must run as root (debootstrap, chroot and mounts need it)"

# the debian13 packages of tools/packages.list
packages=()
while read -r package release _; do
  [[ -z "$package" || "$package" == \#* ]] && continue
  [[ -z "$release" || "$release" == debian13 ]] && packages+=("$package")
done < "$top/tools/packages.list"
wanted="trixie ${packages[*]}"

# Runs "$1" as a bash script (with "${@:2}" as its arguments; no set -e unless it says so)
# inside the chroot, in a private mount namespace with /proc, /sys, /dev,
# a fresh /tmp and this checkout mounted; nothing of it stays mounted afterwards.
inside() {
  local tmp status=0
  tmp=$(mktemp -d /tmp/umgclip-debian13.XXXXXX)
  chmod 1777 "$tmp"
  unshare --mount --propagation private -- /bin/bash -eu -c '
    root=$1 top=$2 tmp=$3
    shift 3
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    mount --rbind /dev "$root/dev"
    mount --bind "$tmp" "$root/tmp"
    # after /tmp: a checkout under /tmp gets its mount point in the fresh one
    mkdir -p "$root$top"
    mount --bind "$top" "$root$top"
    # ../shared beside the checkout holds data that some tests read (the CLIP BPE vocabulary)
    shared=$(dirname "$top")/shared
    if [ -d "$shared" ]; then
      mkdir -p "$root$shared"
      mount --bind -o ro "$shared" "$root$shared"
    fi
    cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2> /dev/null || true
    exec chroot "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
      HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" CI="${CI:-}" /bin/bash -c "$1" debian13 "${@:2}"
  ' inside "$root" "$top" "$tmp" "$@" || status=$?
  rm -rf "$tmp"
  return "$status"
}

make_root() {
  local fresh="$root.new"
  if findmnt -rno TARGET | grep -q "^$root"; then
    die "something is mounted under $root; unmount it first"
  fi
  echo "== making the Debian 13 chroot in $root (debootstrap from $mirror)"
  rm -rf "$fresh" "$root"
  mkdir -p "$(dirname "$root")"
  debootstrap --variant=minbase trixie "$fresh" "$mirror" > "$fresh.log" 2>&1 \
    || { tail -n 20 "$fresh.log" >&2; die "debootstrap failed; its log: $fresh.log"; }
  # services that packages install (PostgreSQL, mosquitto) must not start in the chroot
  printf '#!/bin/sh\nexit 101\n' > "$fresh/usr/sbin/policy-rc.d"
  chmod +x "$fresh/usr/sbin/policy-rc.d"
  mv "$fresh" "$root"
  rm -f "$fresh.log"
  echo "== installing ${#packages[@]} packages in the chroot"
  inside 'set -eu
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq -o APT::Update::Error-Mode=any
    apt-get install -y -qq --no-install-recommends "$@" > /tmp/apt.log 2>&1 \
      || { tail -n 30 /tmp/apt.log; exit 1; }
    apt-get clean' "${packages[@]}" \
    || die "installing the packages in the chroot failed"
  echo "$wanted" > "$stamp"
}

# Makes the chroot when it is missing or its packages differ from tools/packages.list.
ensure() {
  mkdir -p "$(dirname "$root")"
  exec 9> "$lock"
  flock -s 9
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
    return
  fi
  flock -u 9
  flock -x 9
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
    SECONDS=0
    make_root
    echo "== the chroot took ${SECONDS} s"
  fi
  flock -s 9 # back to shared: other runs may use the chroot beside this one
}

case "${1:-}" in
  ensure)
    ensure
    ;;
  test)
    ensure
    inside "set -eu
      cd '$top'
      . /etc/os-release
      echo \"== \$PRETTY_NAME, GStreamer \$(pkg-config --modversion gstreamer-1.0)\"
      [ -f build-debian13/build.ninja ] || meson setup build-debian13 --buildtype=debugoptimized
      ninja -C build-debian13
      meson test -C build-debian13 --print-errorlogs"
    ;;
  run)
    shift
    (($#)) || die "run needs a command"
    ensure
    if (($# == 1)); then
      inside "cd '$top'; $1" # one argument: a script
    else
      inside "cd '$top'; $(printf '%q ' "$@")" # a command and its arguments, each as given
    fi
    ;;
  *)
    echo "usage: $0 ensure | test | run COMMAND..." >&2
    exit 2
    ;;
esac
