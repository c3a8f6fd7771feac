#!/usr/bin/env bash
# setup.sh: installs the Debian 12 packages vktrain needs, and only those that
# are missing, so that running it again (every tools/main.sh and tools/test.sh
# does) costs a few dpkg look-ups and prints nothing.
#
#   bash tools/setup.sh GROUP...      GROUP: build run test data all perf
#   bash tools/setup.sh --dry-run GROUP...   print what would be installed
#
#   build  compiler, meson, glslc, the Vulkan headers and OpenBLAS
#   run    the Vulkan loader and lavapipe (a Vulkan device that needs no GPU)
#   test   build + run + Criterion, the Khronos validation layer and clang
#   data   the Fashion-MNIST data set the samples train on
#   all    build + run + test + data
#   perf   NumPy and PyTorch for benchmark comparisons; never part of "all"
#
# Needs root or sudo only when something is missing.
set -euo pipefail

# libc6-dev is only a Recommends of gcc, and --no-install-recommends would
# otherwise leave a compiler without <stdio.h>.
# libopenblas-dev: the fast CPU backend's matmuls (without it vktrain still
# builds, with a slower sgemm of its own).
build_packages=(meson ninja-build pkg-config gcc libc6-dev glslc spirv-tools
                libvulkan-dev libvulkan-volk-dev zlib1g-dev libstb-dev libopenblas-dev)
run_packages=(libvulkan1 mesa-vulkan-drivers)
# clang and its runtimes (libFuzzer) build the fuzz targets (tools/fuzz.sh).
test_packages=(libcriterion-dev vulkan-validationlayers clang libclang-rt-14-dev)
data_packages=(dataset-fashion-mnist)
perf_packages=(python3-numpy python3-torch)

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}

dry_run=0
wanted=()
add_group() {
    case "$1" in
    build) wanted+=("${build_packages[@]}") ;;
    run) wanted+=("${run_packages[@]}") ;;
    test) wanted+=("${build_packages[@]}" "${run_packages[@]}" "${test_packages[@]}") ;;
    data) wanted+=("${data_packages[@]}") ;;
    all) wanted+=("${build_packages[@]}" "${run_packages[@]}" "${test_packages[@]}"
                  "${data_packages[@]}") ;;
    perf) wanted+=("${perf_packages[@]}") ;;
    *) echo "setup.sh: unknown group '$1'" >&2; usage >&2; exit 2 ;;
    esac
}

for arg in "$@"; do
    case "$arg" in
    --dry-run) dry_run=1 ;;
    -h|--help) usage; exit 0 ;;
    *) add_group "$arg" ;;
    esac
done
if [ ${#wanted[@]} -eq 0 ]; then
    usage >&2
    exit 2
fi

# A bare exit status of "dpkg -s" also says yes for a package that was
# removed but left its configuration behind, so read the status itself. It is
# captured rather than piped into "grep -q": grep would stop reading early,
# dpkg would die of SIGPIPE, and pipefail would turn a yes into a no.
is_installed() {
    local status
    status=$(dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null) || return 1
    [[ $'\n'"$status" == *$'\n''install ok installed'* ]]
}

missing=()
for pkg in "${wanted[@]}"; do
    if ! is_installed "$pkg" && [[ " ${missing[*]-} " != *" $pkg "* ]]; then
        missing+=("$pkg")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "setup.sh: these packages are missing: ${missing[*]}" >&2
    echo "setup.sh: installing them needs root, and sudo is not available" >&2
    exit 1
fi

# env, not a bare VAR=value, so that sudo passes the variable on.
apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
if [ "$dry_run" -eq 1 ]; then
    echo "setup.sh: would install ${missing[*]}"
    echo "${apt[*]} update -q"
    echo "${apt[*]} install -y -q --no-install-recommends ${missing[*]}"
    exit 0
fi
echo "setup.sh: installing ${missing[*]}"
# A fresh machine has no package lists yet, so update before installing.
"${apt[@]}" update -q
"${apt[@]}" install -y -q --no-install-recommends "${missing[@]}"

# apt-get exits 0 when it installs something else than asked (a virtual
# package's provider); insist on the real names so the next run is silent.
still=()
for pkg in "${missing[@]}"; do
    is_installed "$pkg" || still+=("$pkg")
done
if [ ${#still[@]} -ne 0 ]; then
    echo "setup.sh: still not installed after apt-get: ${still[*]}" >&2
    exit 1
fi
