#!/usr/bin/env bash
# test.sh: the test command. Installs what the tests need (tools/setup.sh),
# builds vktrain with warnings as errors in build-ci and runs every test;
# then, unless VKT_TEST_SANITIZE=0, builds build-asan with AddressSanitizer
# and UndefinedBehaviorSanitizer and runs the same tests again; then, unless
# VKT_TEST_FUZZ=0, runs each fuzz target for a bounded time (tools/fuzz.sh).
#
# The last line is "N passed, N failed", summed over both runs from meson's
# own summary (and one per fuzz target), so a run in which nothing was
# tested cannot look green.
# Exits non-zero if anything failed or nothing passed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

started=$SECONDS
total_passed=0
total_failed=0

# Stops early (a configure or build error) with the same last line as a
# finished run, counting the step that broke as one failure.
give_up() {
    echo "== test.sh: $1"
    echo "$total_passed passed, $((total_failed + 1)) failed"
    exit 1
}

# data: the Fashion-MNIST sample runs as a test, on the real data set.
bash tools/setup.sh test data || give_up "installing the packages the tests need failed"

# Reuses a configured build directory (fast, keeps the ninja state) and only
# starts from scratch when there is none or meson cannot reconfigure it.
configure() {
    local dir=$1
    shift
    if [ -f "$dir/meson-private/coredata.dat" ]; then
        meson setup --reconfigure "$dir" "$@" || meson setup --wipe "$dir" "$@"
    else
        # A directory left by a failed first setup cannot be wiped by meson.
        rm -rf "$dir"
        meson setup "$dir" "$@"
    fi
}

# meson's summary line "Name:   N" -> N (0 if absent); the last one counts,
# in case a test printed a line that looks the same.
summary_count() {
    local n
    n=$(grep -E "^$1:[[:space:]]+[0-9]+" "$2" | tail -n 1 | grep -oE '[0-9]+' || true)
    echo "${n:-0}"
}

# Each test program runs through "${wrapper[@]}" (meson test --wrapper).
wrapper=()

# run_tests NAME DIR [VAR=value...]: builds DIR, runs its tests with the
# variables set, and adds meson's counts to the totals.
run_tests() {
    local name=$1 dir=$2
    shift 2
    local t0=$SECONDS
    echo "== $name: building $dir"
    meson compile -C "$dir" || give_up "building $dir failed"
    echo "== $name: meson test -C $dir"
    local log="$dir/meson-logs/test-sh-output.txt" rc=0
    local args=(-C "$dir" --verbose --print-errorlogs)
    if [ ${#wrapper[@]} -ne 0 ]; then
        args+=(--wrapper "${wrapper[*]}")
    fi
    env "$@" meson test "${args[@]}" 2>&1 | tee "$log" || rc=$?

    local ok fail timeout unexpected
    ok=$(summary_count 'Ok' "$log")
    fail=$(summary_count 'Fail' "$log")
    timeout=$(summary_count 'Timeout' "$log")
    unexpected=$(summary_count 'Unexpected Pass' "$log")
    local failed=$((fail + timeout + unexpected))
    if ! grep -qE '^Ok:' "$log"; then
        echo "== $name: meson printed no test summary (exit status $rc)"
        failed=$((failed + 1))
    elif [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        echo "== $name: meson test exited with $rc although no test failed"
        failed=1
    fi
    echo "== $name: $ok passed, $failed failed ($((SECONDS - t0)) s)"
    total_passed=$((total_passed + ok))
    total_failed=$((total_failed + failed))
}

t0=$SECONDS
configure build-ci -Dwerror=true || give_up "configuring build-ci failed"
echo "== configured build-ci ($((SECONDS - t0)) s)"
run_tests "tests" build-ci

if [ "${VKT_TEST_SANITIZE:-1}" != 0 ]; then
    t0=$SECONDS
    # b_lundef=false: the sanitizer runtimes resolve some symbols only at
    # load time, which -Wl,--no-undefined would reject.
    configure build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false ||
        give_up "configuring build-asan failed"
    echo "== configured build-asan ($((SECONDS - t0)) s)"
    # abort_on_error: Criterion runs each test in a child process and ignores
    # how the child exits once the test has reported, so LeakSanitizer's
    # exit-time report (exit status 23) would pass unnoticed; an abort is
    # reported as a crash and fails the test.
    asan_options="detect_leaks=1:abort_on_error=1"
    lsan_options=""
    # The suppression file (leaks inside the Vulkan driver, not ours) is
    # optional; meson runs tests from the build directory, hence the full path.
    if [ -f "$root/tests/lsan.supp" ]; then
        lsan_options="suppressions=$root/tests/lsan.supp:print_suppressions=0"
    fi
    # The Vulkan loader unloads lavapipe (and with it LLVM) when an instance
    # is destroyed, before LeakSanitizer looks at the heap at exit, so its
    # leaks would show as "<unknown module>", which no suppression can match.
    # Preloading the driver keeps it mapped and its frames named. ASan is
    # then not first in the library list; its interceptors still serve every
    # allocation, so its start-up check of that order is turned off. The
    # validation layer is unloaded the same way but cannot be preloaded (its
    # vkGetInstanceProcAddr would displace the loader's): the small library
    # of tests/keep_mapped.c, built with the tests and preloaded too, opens
    # it once more so that it stays mapped.
    lvp=$(sed -n 's/.*"library_path": *"\([^"]*\)".*/\1/p' \
        /usr/share/vulkan/icd.d/lvp_icd.*.json 2>/dev/null | head -n 1)
    if [ -n "$lvp" ] && [ -f "$lvp" ]; then
        wrapper=(env "LD_PRELOAD=$lvp:$root/build-asan/tests/libvkt_keep_mapped.so")
        asan_options+=":verify_asan_link_order=0"
    fi
    run_tests "sanitized tests" build-asan \
        "ASAN_OPTIONS=$asan_options" \
        "LSAN_OPTIONS=$lsan_options" \
        "UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1"
else
    echo "== VKT_TEST_SANITIZE=0: skipping the sanitizer build"
fi

# Fuzzing (tools/fuzz.sh): each libFuzzer target for FUZZ_SECONDS (60 by
# default) from its committed seed corpus, counted as one test per target.
# Needs clang, which tools/setup.sh test installs; VKT_TEST_FUZZ=0 skips it.
if [ "${VKT_TEST_FUZZ:-1}" = 0 ]; then
    echo "== VKT_TEST_FUZZ=0: skipping the fuzz targets"
elif ! command -v clang >/dev/null 2>&1; then
    echo "== no clang: skipping the fuzz targets (apt-get install clang libclang-rt-14-dev)"
else
    for target in idx safetensors; do
        if bash tools/fuzz.sh "$target"; then
            total_passed=$((total_passed + 1))
        else
            total_failed=$((total_failed + 1))
        fi
    done
fi

echo "== test.sh took $((SECONDS - started)) s"
echo "$total_passed passed, $total_failed failed"
if [ "$total_failed" -ne 0 ] || [ "$total_passed" -eq 0 ]; then
    exit 1
fi
