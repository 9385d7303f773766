"""Training throughput on one process against two DistributedDataParallel processes (gloo,
CPU), and the scaling efficiency.

Each configuration trains the default front network (128 px canvas, global batch 32, the
re-projection loss on, one DataLoader worker per process) for ``--steps`` batches per epoch
over two epochs; the second epoch's seconds (rank 0's, recorded in ``history.csv``) give the
throughput, so process start-up and the first epoch's warm-up are left out:

- 1 process, 1 thread: the per-process rate;
- 1 process, all threads: what a plain ``bodyshape train`` gets on this machine;
- 2 processes of 1 thread each (``torchrun --nproc-per-node 2``).

Scaling efficiency = rate(2 processes) / (2 x rate(1 process, 1 thread)). On a 2-core
machine the two processes (and their loader workers) share the two cores, so this measures
the overhead of DDP and of the split batch more than a speed-up a real cluster would see.

The data (clean preset, ``--n`` pairs in shards of 32) is made once under ``--work``.

Usage: python benchmarks/bench_ddp.py [--work work/bench_ddp] [--n 512] [--steps 6]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

from report import table, write_section

ROOT = Path(__file__).resolve().parents[1]
BATCH = 32


def _bodyshape(*args: str) -> list[str]:
    return [sys.executable, "-m", "bodyshape", *args]


def make_data(work: Path, n: int) -> Path:
    data = work / "data"
    if not (data / "manifest.json").is_file():
        subprocess.run(_bodyshape("synth", "--n", str(n), "--seed", "0", "--preset", "clean",
                                  "--shard-size", "32", "--workers", "2", "--out", str(data),
                                  "--no-progress"), check=True)
    return data


def run(work: Path, data: Path, name: str, procs: int, threads: int, steps: int) -> dict:
    """Train one configuration from scratch -> its second epoch's seconds and rate."""
    out = work / name
    if out.exists():
        subprocess.run(["rm", "-rf", str(out)], check=True)
    train = ["train", "--stage", "front", "--data", str(data), "--out", str(out),
             "--epochs", "2", "--max-steps", str(steps), "--batch-size", str(BATCH),
             "--device", "cpu", "--no-progress", "--threads", str(threads)]
    cmd = _bodyshape(*train) if procs == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={procs}", "-m", "bodyshape", *train]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    with (out / "history.csv").open() as f:
        seconds = float(list(csv.DictReader(f))[-1]["seconds"])
    return {"processes": procs, "threads": threads, "epoch_seconds": seconds,
            "samples_per_s": steps * BATCH / seconds, "wall_seconds": wall}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=ROOT / "work" / "bench_ddp")
    ap.add_argument("--n", type=int, default=512, help="training pairs to make")
    ap.add_argument("--steps", type=int, default=6, help="batches per epoch")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    data = make_data(args.work, args.n)
    cores = os.cpu_count() or 1
    configs = [("one-1t", 1, 1), (f"one-{cores}t", 1, cores), ("ddp-2x1t", 2, 1)]
    load_before = os.getloadavg()[0]
    res = {name: run(args.work, data, name, p, t, args.steps) for name, p, t in configs}
    load_after = os.getloadavg()[0]
    base = res["one-1t"]["samples_per_s"]
    eff = res["ddp-2x1t"]["samples_per_s"] / (2 * base)
    threads_note = ""
    if res[f"one-{cores}t"]["samples_per_s"] < base:
        threads_note = (f" One process with {cores} threads was slower than with one: while "
                        "another job holds a core, its threads wait for each other at every "
                        "parallel region.")
    rows = [[f"{r['processes']} x {r['threads']} thread{'s' * (r['threads'] > 1)}",
             f"{r['epoch_seconds']:.1f}", f"{r['samples_per_s']:.1f}",
             f"{r['samples_per_s'] / base:.2f}"] for r in res.values()]
    body = (
        f"The default front network, global batch {BATCH}, {args.steps} batches per epoch, "
        "the second of two epochs timed (rank 0), gloo on the CPU. The DDP run takes as many "
        f"steps of the same global batch as one process ({BATCH // 2} samples per process; "
        "`tests/test_distributed.py` checks that the weights agree when the batches hold "
        "the same samples).\n\n"
        + table(["processes x threads", "epoch s", "samples/s", "vs 1 x 1"], rows)
        + f"\n\nScaling efficiency of 2 processes: **{eff:.2f}** (rate of 2 processes / "
        f"twice the 1-thread rate). This machine has {cores} cores, so the two processes "
        "and their two loader workers share them with each other, and the figure measures "
        "DDP's overhead (gradient all-reduce, a per-step sample count, half batches) more "
        "than the speed-up of separate GPUs or nodes. The machine's load average was "
        f"{load_before:.1f} before the runs and {load_after:.1f} after (other jobs; "
        f"{cores} would mean every core busy), so these rates are disturbed.{threads_note} "
        "No GPU was available, so there is no GPU figure.\n")
    write_section("ddp", "Distributed training (DDP) on the CPU", body,
                  {"configs": res, "scaling_efficiency": eff, "batch": BATCH,
                   "steps": args.steps, "n": args.n, "load_before": load_before,
                   "load_after": load_after})
    print(body)


if __name__ == "__main__":
    main()
