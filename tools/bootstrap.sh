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
  local model="$top/tests/models/tiny-hf-f16" umgclip="$build/tools/umgclip" out="$build/demo"
  export GST_PLUGIN_PATH="$build/gst"
  mkdir -p "$out"
  echo "== the model (a small random-weight test model until the trained one ships)"
  "$umgclip" info "$model"
  echo "== zero-shot scores for a generated test card"
  gst-launch-1.0 -q videotestsrc num-buffers=1 pattern=smpte ! video/x-raw,width=320,height=240 \
    ! pngenc ! filesink location="$out/card.png"
  "$umgclip" classify "$model" "$out/card.png" --labels "test card,cat,street,beach"
  echo "== a generated clip through umgclipenc ! umgclipseg ! umgcliptag ! umgclipoverlay ! umgclipjson"
  gst-launch-1.0 -q videotestsrc num-buffers=30 pattern=ball ! \
    video/x-raw,width=320,height=240,framerate=15/1 ! matroskamux ! filesink location="$out/clip.mkv"
  LABELS="ball,background,sky,grass" STUFF_LABELS="background,sky,grass" THRESHOLD=0 \
    UMGCLIP_MODEL="$model" sh "$top/pipelines/annotate_file.sh" "$out/clip.mkv" \
    "$out/annotated.mkv" "$out/annotated.jsonl" > /dev/null
  echo "annotated video: $out/annotated.mkv"
  echo "JSON ($(wc -l < "$out/annotated.jsonl") frames): $out/annotated.jsonl; the first frame:"
  head -n 1 "$out/annotated.jsonl" | cut -c 1-600
  echo
}

case "${1:-}" in
  demo) install_missing; build; demo ;;
  test) install_missing; build; meson test -C "$build" --print-errorlogs ;;
  *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac
