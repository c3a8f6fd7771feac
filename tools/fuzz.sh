#!/usr/bin/env bash
# fuzz.sh: builds the libFuzzer targets of tools/fuzz with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer in build-fuzz, and runs
# each for a bounded time from its committed seed corpus.
#
#   bash tools/fuzz.sh [TARGET...]     TARGET: idx safetensors (default: both)
#
#   FUZZ_SECONDS=60   time per target
#   FUZZ_JOBS=1       parallel fuzzing processes per target (libFuzzer -fork)
#
# Needs clang and libclang-rt-14-dev (Debian 12; tools/setup.sh test). Inputs
# found interesting are kept in build-fuzz/corpus/TARGET and reused by the
# next run; the committed seeds in tools/fuzz/corpus_TARGET are only read.
# A crash, leak, sanitizer report, timeout or out-of-memory stops the
# target: the input is saved under build-fuzz/crashes/TARGET/ and the
# command that replays it is printed; commit it to the seed corpus and add a
# regression test for it. Exits non-zero if any target failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-1}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(idx safetensors)
fi
for t in "${targets[@]}"; do
    case "$t" in
    idx | safetensors) ;;
    *) echo "fuzz.sh: unknown target '$t' (idx, safetensors)" >&2; exit 2 ;;
    esac
done

if ! command -v clang >/dev/null 2>&1; then
    echo "fuzz.sh: clang is not installed (Debian: apt-get install clang libclang-rt-14-dev)" >&2
    exit 2
fi

dir=build-fuzz
# Sanitizers everywhere (the library too: an overflow in a helper the
# parser calls must be caught there), coverage only in the parsers (see
# tools/fuzz/meson.build). No tests, samples or other tools are built.
options=(-Dfuzz=true -Dtests=false -Db_sanitize=address,undefined -Db_lundef=false
         -Dbuildtype=debugoptimized)
if [ -f "$dir/meson-private/coredata.dat" ]; then
    CC=clang meson setup --reconfigure "$dir" "${options[@]}" >/dev/null ||
        CC=clang meson setup --wipe "$dir" "${options[@]}" >/dev/null
else
    rm -rf "$dir"
    CC=clang meson setup "$dir" "${options[@]}" >/dev/null
fi
build_targets=()
for t in "${targets[@]}"; do
    build_targets+=("tools/fuzz/fuzz_$t")
done
echo "== fuzz.sh: building ${build_targets[*]} in $dir"
ninja -C "$dir" "${build_targets[@]}" >"$dir/fuzz-build.log" 2>&1 || {
    tail -n 40 "$dir/fuzz-build.log"
    echo "fuzz.sh: building the fuzz targets failed (log: $dir/fuzz-build.log)" >&2
    exit 1
}

# Report every sanitizer finding as a crash; LeakSanitizer runs at the end
# of each input (libFuzzer's -detect_leaks).
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"

failed=0
for t in "${targets[@]}"; do
    exe="$dir/tools/fuzz/fuzz_$t"
    corpus="$dir/corpus/$t"
    crashes="$dir/crashes/$t"
    log="$dir/fuzz-$t.log"
    mkdir -p "$corpus" "$crashes"
    extra=()
    if [ -f "tools/fuzz/$t.dict" ]; then
        extra+=("-dict=tools/fuzz/$t.dict")
    fi
    if [ "$jobs" -gt 1 ]; then
        extra+=("-fork=$jobs")
    fi
    echo "== fuzz.sh: fuzz_$t for $seconds s from tools/fuzz/corpus_$t"
    rc=0
    # -max_len: the parsers' interesting structure is in the first few KiB;
    # -timeout and -rss_limit_mb: a hang or a memory blow-up is a finding too.
    "$exe" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$crashes/" "${extra[@]}" \
        "$corpus" "tools/fuzz/corpus_$t" >"$log" 2>&1 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    size=$(find "$corpus" -type f | wc -l)
    if [ "$rc" -ne 0 ]; then
        failed=$((failed + 1))
        tail -n 60 "$log"
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        echo "== fuzz.sh: fuzz_$t FAILED (exit status $rc) after ${runs:-?} inputs; log: $log"
        if [ -n "$artifact" ]; then
            echo "== fuzz.sh: reproduce with: $exe $artifact"
        fi
    else
        echo "== fuzz.sh: fuzz_$t: ${runs:-?} inputs in $seconds s, corpus $size files, no findings"
    fi
done

if [ "$failed" -ne 0 ]; then
    echo "== fuzz.sh: $failed of ${#targets[@]} target(s) failed"
    exit 1
fi
