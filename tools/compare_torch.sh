#!/usr/bin/env bash
# compare_torch.sh: the Fashion-MNIST MLP training step (784-256-128-10,
# ReLU, softmax cross-entropy, Adam) in vktrain and in PyTorch on the CPU,
# side by side in one run, and vktrain's step time over PyTorch's.
#
# vktrain's side is vkt-bench (its train section, the MLP only, on the
# default Vulkan device: lavapipe on a machine without a GPU; the CPU
# reference with --cpu; the fast CPU backend with --cpu-fast); PyTorch's is
# tools/bench_torch.py with 2 threads. OpenBLAS, which both the fast CPU
# backend and Debian's PyTorch do their matmuls with, gets 2 threads too
# (OPENBLAS_NUM_THREADS, unless set). The two alternate per batch size so
# both see the same machine load.
#
# usage: tools/compare_torch.sh [--build DIR] [--runs N] [--cpu|--cpu-fast] [--batch B]...
#   BUILD=build-perf tools/compare_torch.sh     (the build directory, default build)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build=${BUILD:-build}
runs=7
batches=()
cpu=0
while [ $# -gt 0 ]; do
    case $1 in
        --build) build=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --batch) batches+=("$2"); shift 2 ;;
        --cpu) cpu=1; shift ;;
        --cpu-fast) cpu=fast; shift ;;
        *) echo "usage: $0 [--build DIR] [--runs N] [--cpu|--cpu-fast] [--batch B]..." >&2; exit 2 ;;
    esac
done
[ ${#batches[@]} -gt 0 ] || batches=(128 512)

bench=$build/tools/vkt-bench
if [ ! -x "$bench" ]; then
    echo "compare_torch.sh: $bench not found: build first (meson setup $build && ninja -C $build)" >&2
    exit 1
fi
# A Python that has torch: Debian's python3-torch lives in /usr/bin/python3,
# which another python3 on PATH may hide.
python=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import torch' 2>/dev/null; then
        python=$p
        break
    fi
done
if [ -z "$python" ]; then
    echo "compare_torch.sh: no Python with PyTorch (Debian: apt-get install python3-torch)" >&2
    exit 1
fi

# --device no-such-device: no Vulkan device matches, so only the CPU backend
# left in is measured.
case $cpu in
    1) vkt_args=(--device no-such-device --no-cpu-fast) ;;
    fast) vkt_args=(--device no-such-device --no-cpu) ;;
    *) vkt_args=(--no-cpu --no-cpu-fast) ;;
esac
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-2}

json_ms() { # json_ms FILE: the MLP step's ms and backend from vkt-bench --json
    "$python" - "$1" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
for r in data["results"]:
    if r["section"] == "train" and r["name"].startswith("mlp"):
        print(r["ms"], r["backend"])
        break
PY
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%-8s %-40s %14s %14s %10s\n' "batch" "vktrain backend" "vktrain ms" "PyTorch ms" "ratio"
for b in "${batches[@]}"; do
    "$bench" --section train --model mlp --batch "$b" --runs "$runs" --json "${vkt_args[@]}" \
        > "$tmp/vkt.json" 2> "$tmp/vkt.log" || { cat "$tmp/vkt.log" >&2; exit 1; }
    read -r vkt_ms vkt_backend < <(json_ms "$tmp/vkt.json")
    torch_ms=$("$python" tools/bench_torch.py --batch "$b" --runs $((runs * 3)) --json |
               "$python" -c 'import json, sys; print(json.load(sys.stdin)["results"][0]["ms"])')
    ratio=$("$python" -c "print('%.2f' % ($vkt_ms / $torch_ms))")
    printf '%-8s %-40.40s %14.3f %14.3f %9sx\n' "$b" "$vkt_backend" "$vkt_ms" "$torch_ms" "$ratio"
done
echo "ratio: vktrain's step time over PyTorch's (2 threads); below 1 means vktrain is faster"
