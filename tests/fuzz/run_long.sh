#!/bin/sh
# The long fuzz runs of docs/RELIABILITY.md: each harness for RUNS executions (default 10^6)
# from its committed corpus, with ASan, UBSan and fatal GLib criticals. New inputs and any
# crash go to OUT (default /tmp/umgclip-fuzz), never into the corpus; the last line of each
# OUT/NAME.log gives the executions done. MAX_TIME (seconds) stops a harness earlier. meta's
# leaks are checked afterwards under valgrind, with the replay of a build without sanitizers
# (LEAK_BUILD, default build).
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
  # meta keeps one element across inputs: no leak check after each input (40 times slower);
  # valgrind checks every input of the run afterwards (below)
  if [ "$name" = meta ]; then
    export ASAN_OPTIONS="abort_on_error=1:detect_leaks=0"
  else
    export ASAN_OPTIONS="$asan"
  fi
  if "$build/tests/fuzz/fuzz_$name" -runs="$runs" -max_total_time="${MAX_TIME:-0}" -seed=1 \
       -print_final_stats=1 \
       -artifact_prefix="$out/$name-" "$out/new-$name" "$src/corpus/$name" >"$out/$name.log" 2>&1
  then
    echo "$name: $(grep -E '^stat::number_of_executed_units' "$out/$name.log" | awk '{print $2}') executions, no crash"
  else
    echo "$name: FAILED, see $out/$name.log"
    status=1
    continue
  fi
  # Leaks of meta: the corpus and every new input of the run, replayed once each by the
  # build without sanitizers (LEAK_BUILD, default build) under valgrind.
  if [ "$name" = meta ]; then
    leak_build=${LEAK_BUILD:-build}
    if GST_PLUGIN_PATH="$leak_build/gst" GST_REGISTRY_1_0="$out/registry-valgrind.bin" \
         valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
         --suppressions="$src/../gst-valgrind.supp" --suppressions="$src/valgrind.supp" \
         "$leak_build/tests/fuzz/replay_meta" "$src/corpus/meta" "$out/new-meta" \
         >"$out/meta-valgrind.log" 2>&1
    then
      echo "meta: $(grep -E 'corpus files' "$out/meta-valgrind.log"), no leak under valgrind"
    else
      echo "meta: valgrind FAILED, see $out/meta-valgrind.log"
      status=1
    fi
  fi
done
exit $status
