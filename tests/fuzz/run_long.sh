#!/bin/sh
# The long fuzz runs of docs/RELIABILITY.md: each harness for RUNS executions (default 10^6)
# from its committed corpus, with ASan, UBSan and fatal GLib criticals. New inputs and any
# crash go to OUT (default /tmp/umgclip-fuzz), never into the corpus; the last line of each
# OUT/NAME.log gives the executions done. MAX_TIME (seconds) stops a harness earlier.
#   CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
#   ninja -C build-fuzz
#   tests/fuzz/run_long.sh build-fuzz [RUNS [NAME...]]
set -eu
build=$1
runs=${2:-1000000}
[ $# -ge 2 ] && shift 2 || shift $#
names=${*:-safetensors npy config tokenizer_files tokenize labels model_dir meta}
src=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp/umgclip-fuzz}
export G_DEBUG=fatal-criticals UMGCLIP_THREADS=1
asan=abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export GST_PLUGIN_PATH="$build/gst" GST_PLUGIN_SYSTEM_PATH_1_0= GST_REGISTRY_1_0="$out/registry.bin"
status=0
for name in $names; do
  mkdir -p "$out/new-$name"
  # meta interns names from its input: full stacks, so that lsan.supp can tell GLib's dropped
  # quark tables from a leak (tests/fuzz/meson.build)
  if [ "$name" = meta ]; then
    export ASAN_OPTIONS="$asan:fast_unwind_on_malloc=0" LSAN_OPTIONS="suppressions=$src/lsan.supp"
  else
    export ASAN_OPTIONS="$asan"
    unset LSAN_OPTIONS
  fi
  if "$build/tests/fuzz/fuzz_$name" -runs="$runs" -max_total_time="${MAX_TIME:-0}" -seed=1 \
       -print_final_stats=1 \
       -artifact_prefix="$out/$name-" "$out/new-$name" "$src/corpus/$name" >"$out/$name.log" 2>&1
  then
    echo "$name: $(grep -E '^stat::number_of_executed_units' "$out/$name.log" | awk '{print $2}') executions, no crash"
  else
    echo "$name: FAILED, see $out/$name.log"
    status=1
  fi
done
exit $status
