#!/usr/bin/env bash
# Install what a fresh Debian 12 machine lacks, build, and then either show the runtime at work
# (demo) or run every test (test). Run as root, from anywhere.
#   bash tools/bootstrap.sh demo
#   bash tools/bootstrap.sh test
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$top/build"
packages=(
  gcc pkg-config meson ninja-build clang-format
  libglib2.0-dev libjson-glib-dev libopenblas-dev libgdk-pixbuf-2.0-dev
  libvulkan-dev glslang-tools mesa-vulkan-drivers vulkan-validationlayers
  python3 python3-numpy python3-torch
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  libgstrtspserver-1.0-dev gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-rtsp python3-gst-1.0
)

install_missing() {
  local missing=()
  for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
      || missing+=("$package")
  done
  if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

build() {
  if [[ ! -f "$build/build.ninja" ]]; then
    meson setup "$build" "$top" --buildtype=debugoptimized
  fi
  ninja -C "$build"
}

demo() {
  local model="$top/tests/models/tiny-hf-f16" umgclip="$build/tools/umgclip"
  echo "== model"
  "$umgclip" info "$model" --device vulkan
  echo "== tokens"
  "$umgclip" tokenize "$model" "a photo of a cat"
  echo "== zero-shot scores of a generated test card, on Vulkan (lavapipe without a GPU)"
  "$umgclip" bench "$model" --device cpu --iterations 3
  "$umgclip" bench "$model" --device vulkan --iterations 3
}

case "${1:-}" in
  demo) install_missing; build; demo ;;
  test) install_missing; build; meson test -C "$build" --print-errorlogs ;;
  *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac
