#!/usr/bin/env python3
"""Data-parallel scaling on this machine, and what it predicts for a cluster.

Runs build/apps/train for a few steps per setting, side by side in one invocation:
  1 process x 2 threads   against   2 processes x 1 thread (mpirun -np 2)
for TunedCNN (batch 64) and FastNet (batch 512), and reads each run's metrics.json: training speed,
all-reduce time and bytes per step. Then the model on paper: N machines of this kind on a 10 GbE
network, ring all-reduce time 2 (N - 1) / N x bytes / bandwidth (+ 2 (N - 1) latencies), compute
per image as measured; the speed-up at a fixed global batch and at a fixed batch per machine, and the
batch per machine below which the all-reduce takes longer than the compute.

Usage: bench/mpi_scaling.py [--steps N] [--models tuned,fast] [--keep DIR]
(MPI under root: OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 in the environment.)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "build", "apps", "train")
SETTINGS = {  # model: (batch, extra flags)
    "tuned": (64, ["--normalization", "dataset"]),
    "fast": (512, []),
}
BANDWIDTH = 10e9 / 8  # 10 GbE, bytes per second
LATENCY = 50e-6       # per message of the ring, seconds (TCP over 10 GbE, order of magnitude)


def run(model, processes, threads, steps, folder):
    batch, extra = SETTINGS[model]
    run_dir = os.path.join(folder, f"{model}-{processes}x{threads}")
    cmd = [TRAIN, "--model", model, "--batch", str(batch), "--epochs", "1", "--max-batches", str(steps),
           "--eval-every", "0", "--report-every", str(steps), "--threads", str(threads),
           "--no-plots", "--run-dir", run_dir] + extra
    if processes > 1:
        cmd = ["mpirun", "-np", str(processes), "--oversubscribe"] + cmd
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(run_dir, "metrics.json")) as f:
        m = json.load(f)
    step = m["train_seconds"] / m["steps"]
    return {"model": model, "setting": f"{processes} x {threads}", "batch": batch, "img_s": m["train_images_per_second"],
            "step_s": step, "allreduce_s": m.get("allreduce_seconds_per_step", 0.0),
            "bytes": m.get("allreduce_bytes_per_step", 0.0)}


def ring_seconds(nbytes, machines):
    if machines == 1:
        return 0.0
    return 2 * (machines - 1) / machines * nbytes / BANDWIDTH + 2 * (machines - 1) * LATENCY


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--models", default="tuned,fast")
    p.add_argument("--keep", help="keep the run folders here")
    a = p.parse_args()
    folder = a.keep or tempfile.mkdtemp(prefix="mcnn-scaling-")
    rows = []
    for model in a.models.split(","):
        one = run(model, 1, 2, a.steps, folder)
        two = run(model, 2, 1, a.steps, folder)
        rows += [one, two]
        print(f"{model}: 1 x 2 threads {one['img_s']:.0f} img/s, 2 x 1 thread {two['img_s']:.0f} img/s "
              f"({two['img_s'] / one['img_s']:.2f}x); all-reduce {1e3 * two['allreduce_s']:.1f} ms and "
              f"{two['bytes'] / 1e6:.2f} MB a step of {1e3 * two['step_s']:.0f} ms", flush=True)
    print("\n| model, batch | processes x threads | img/s | step | all-reduce a step | bytes a step |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']}, {r['batch']} | {r['setting']} | {r['img_s']:.0f} | {1e3 * r['step_s']:.0f} ms | "
              f"{1e3 * r['allreduce_s']:.1f} ms | {r['bytes'] / 1e6:.2f} MB |")
    print("\nOn paper: N machines like this one (2 cores, compute per image as measured with 1 process x 2 threads), "
          "10 GbE, ring all-reduce")
    print("| model | bytes | N | all-reduce | speed-up, same global batch | speed-up, same batch per machine |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if r["setting"] != "1 x 2":
            continue
        nbytes = next(x["bytes"] for x in rows if x["model"] == r["model"] and x["bytes"] > 0)
        per_image = r["step_s"] / r["batch"]
        for n in (2, 4, 8, 16):
            t = ring_seconds(nbytes, n)
            strong = r["step_s"] / (r["step_s"] / n + t)
            weak = n * r["step_s"] / (r["step_s"] + t)
            print(f"| {r['model']}, {r['batch']} | {nbytes / 1e6:.2f} MB | {n} | {1e3 * t:.1f} ms | {strong:.2f}x | {weak:.2f}x |")
        t16 = ring_seconds(nbytes, 16)
        print(f"| {r['model']} | | | the all-reduce (16 machines, {1e3 * t16:.1f} ms) outweighs the compute below "
              f"{t16 / per_image:.0f} images per machine per step | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
