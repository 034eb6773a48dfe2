#!/bin/sh
# Resident memory of the full chain (umgclipenc ! umgclipseg ! umgcliptag ! umgclipoverlay !
# umgclipjson) on the CPU backend over 10^5 frames: one line every 1,000 frames, labels changed
# every 100, caps renegotiated every 1,000, a state cycle every 10,000; then the growth and the
# least-squares slope from frame 10,000 on (docs/PERFORMANCE.md, docs/RELIABILITY.md).
#
#   bench/memory_soak.sh [BUILD_DIR] [FRAMES]
# Environment: UMGCLIP_MODEL (default tests/models/tiny-hf-f16), DEVICE (default cpu); set
# MALLOC_ARENA_MAX=1 to see the chain without glibc's per-thread arenas.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
frames=${2:-100000}
export GST_PLUGIN_PATH="$build/gst" GST_REGISTRY_1_0="$build/bench-memory-registry.bin"
json=$(mktemp /tmp/umgclip-memory-soak.XXXXXX.json)
trap 'rm -f "$json"' EXIT
exec "$build/tests/soak_chain" --model "${UMGCLIP_MODEL:-$here/tests/models/tiny-hf-f16}" \
  --device "${DEVICE:-cpu}" --json "$json" --frames "$frames" --rss-every 1000 \
  --cycle-every 10000 --warmup 10000
