#!/usr/bin/env bash
# main.sh: the main job. Installs what building and running need
# (tools/setup.sh), builds vktrain optimized in build/, shows the Vulkan
# devices (vkt-info) and runs the main program.
#
# Tests are not built here (-Dtests=false), so Criterion is not needed;
# tools/test.sh builds and runs them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# What the main job installs and runs: the flagship sample trains the
# Fashion-MNIST MLP for a few epochs on the best Vulkan device (the CPU
# reference if there is none) and shows its test accuracy. Extra arguments go
# to the sample (e.g. --model cnn --epochs 10).
setup_groups=(build run data)
main_program=(build/samples/fashion_mnist --model mlp --epochs 3 --csv build/fashion_mnist_metrics.csv "$@")

started=$SECONDS
bash tools/setup.sh "${setup_groups[@]}"

options=(--buildtype=release -Dtests=false)
configure() {
    if [ -f build/meson-private/coredata.dat ]; then
        meson setup --reconfigure build "${options[@]}" || meson setup --wipe build "${options[@]}"
    else
        # A directory left by a failed first setup cannot be wiped by meson.
        rm -rf build
        meson setup build "${options[@]}"
    fi
}
# meson's configure report is long; show it only when it failed.
if ! log=$(configure 2>&1); then
    echo "$log"
    echo "main.sh: configuring build/ failed" >&2
    exit 1
fi
meson compile -C build
echo "== built in $((SECONDS - started)) s"

echo "== vkt-info"
build/tools/vkt-info
echo "== vkt-selfcheck"
build/tools/vkt-selfcheck
echo "== ${main_program[*]}"
"${main_program[@]}"
echo "== main.sh took $((SECONDS - started)) s"
