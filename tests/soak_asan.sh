#!/bin/sh
# The 10^4-frame soak (tests/soak_chain.c) in an AddressSanitizer + LeakSanitizer build: makes
# build-asan (meson -Db_sanitize=address, gcc's libasan) next to the source if it is not there,
# builds the plugin and the soak driver only, and runs the soak-asan test, which fails on any leak
# (no suppressions), memory error, GStreamer error or warning, or a frame or JSON line missing.
#
#   tests/soak_asan.sh [BUILD_DIR]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build-asan}
if [ ! -d "$build" ]; then
  meson setup "$build" "$here" --buildtype=debugoptimized -Db_sanitize=address -Db_lundef=false
fi
ninja -C "$build" gst/libgstumgclip.so tests/soak_chain
# The registry is scanned in this process (a scanner without libasan cannot load the plugin), and
# only the two system plugins the chain needs are in it: every plugin scanned is loaded, and some
# leak on load, which is not what this test is about.
plugins="$build/soak-system-plugins"
system=$(pkg-config --variable=pluginsdir gstreamer-1.0)
mkdir -p "$plugins"
ln -sf "$system/libgstcoreelements.so" "$system/libgstvideotestsrc.so" "$plugins/"
export GST_PLUGIN_SYSTEM_PATH_1_0="$plugins" GST_REGISTRY_FORK=no
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:fast_unwind_on_malloc=0"
exec meson test -C "$build" --no-rebuild --verbose soak-asan
