#!/usr/bin/env python3
"""bench_torch.py: the Fashion-MNIST MLP training step in PyTorch (CPU), timed
the way vkt-bench times vktrain's, as the reference tools/compare_torch.sh
compares against.

The step is the one vkt-bench's "mlp" measures: a 784-256-128-10 MLP with
ReLU, softmax cross-entropy (mean over the batch) and Adam (lr 1e-3), on
random inputs in [-1, 1) and labels i % 10; forward, backward and the update,
in float32. Threads are set to 2 (--threads), the two cores vktrain's CPU
Vulkan driver uses here, with OMP_WAIT_POLICY=PASSIVE unless set. Each
figure is the median of --runs timed steps after warm-up steps.

Debian: apt-get install python3-torch (use /usr/bin/python3 if another
Python comes first on PATH).

usage: bench_torch.py [--batch 128 512] [--runs N] [--threads T] [--json]
"""
import argparse
import json
import os
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    # Before torch starts its thread pools. Passive waiting: on a machine
    # whose cores are shared (or with OpenBLAS's own threads beside OpenMP's),
    # spinning OpenMP threads starve the threads doing the work and the step
    # gets 5 to 20 times slower; passive gives PyTorch its best time here.
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ.setdefault("MKL_NUM_THREADS", str(args.threads))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
    except ImportError:
        sys.exit("bench_torch.py: PyTorch is not installed for %s (Debian: apt-get install "
                 "python3-torch, then run it with /usr/bin/python3)" % sys.executable)
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)

    results = []
    for batch in args.batch:
        model = torch.nn.Sequential(
            torch.nn.Linear(784, 256), torch.nn.ReLU(),
            torch.nn.Linear(256, 128), torch.nn.ReLU(),
            torch.nn.Linear(128, 10))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = torch.nn.CrossEntropyLoss()
        x = torch.rand(batch, 784) * 2 - 1
        y = torch.arange(batch) % 10

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            return loss

        for _ in range(args.warmup):
            step()
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            step().item()
            times.append((time.perf_counter() - t0) * 1e3)
        ms = statistics.median(times)
        results.append({"model": "mlp", "batch": batch, "ms": ms,
                        "samples_per_s": batch / (ms * 1e-3)})

    if args.json:
        print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                          "results": results}))
    else:
        print("PyTorch %s, %d threads: one MLP training step (forward, backward, Adam), median of %d"
              % (torch.__version__, torch.get_num_threads(), args.runs))
        for r in results:
            print("  mlp b%-4d %10.3f ms/step %12.0f samples/s"
                  % (r["batch"], r["ms"], r["samples_per_s"]))


if __name__ == "__main__":
    main()
