#!/usr/bin/python3
"""ManualCNN against its PyTorch peers, side by side on this machine.

Runs each case with ManualCNN's `bench` app and with the PyTorch peer scripts in ../shared/bench
(Debian's python3-torch), one after the other, for several rounds, and prints the median images/s
of each and their ratio against the issue's targets, the peak memory (RSS) of SimpleCNN training,
and the conv layers' GFLOP/s as a fraction of this machine's Eigen SGEMM peak.

  bench/compare.py                       # 3 rounds (about 6 minutes on 2 cores)
  bench/compare.py --rounds 1            # a quick look
  bench/compare.py --build build-other   # another build folder

Timings on a shared machine drift: the ratio of each round is taken from runs made back to back,
and the median over rounds is reported. Run it on an otherwise idle machine.
"""
import argparse
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# case: (ours: bench case, threads), (peer: script, args, figure), target ratio (None: reported only)
# Peer arguments: torch_seed_models.py DATA MODEL EPOCHS BATCH LR MOMENTUM MAX_BATCHES THREADS;
# seed_manual_conv.py DATA BATCHES BATCH THREADS. Its eval figure is a batch-500 pass over the test set.
CASES = [
    ("SimpleCNN training, batch 4", ("simple-b4", 2), ("torch", ["simple", "1", "4", "0.001", "0.9", "2500", "2"], "train"), 3.0),
    ("SimpleCNN training, batch 64", ("simple-b64", 2), ("torch", ["simple", "1", "64", "0.001", "0.9", "300", "2"], "train"), 1.5),
    ("TunedCNN training, batch 4", ("tuned-b4", 2), ("torch", ["changed", "1", "4", "0.0007", "0.9", "300", "2"], "train"), None),
    ("TunedCNN training, batch 64", ("tuned-b64", 2), ("torch", ["changed", "1", "64", "0.0007", "0.9", "30", "2"], "train"), 1.0),
    ("TunedCNN training, batch 64, 1 thread", ("tuned-b64", 1), ("torch", ["changed", "1", "64", "0.0007", "0.9", "30", "1"], "train"), None),
    ("SimpleCNN inference, batch 500", ("simple-infer-b500", 2), ("torch", ["simple", "1", "4", "0.001", "0.9", "2500", "2"], "eval"), 1.0),
    ("TunedCNN inference, batch 500", ("tuned-infer-b500", 2), ("torch", ["changed", "1", "64", "0.0007", "0.9", "30", "2"], "eval"), 1.0),
    ("ManualCNN (correlate2d conv) vs the notebook's scipy layer, batch 4", ("manual-b4", 2), ("manual", ["150", "4", "2"], "train"), 50.0),
]


def run(cmd):
    """Runs cmd; returns (output, peak RSS in MiB of that process)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"compare: {' '.join(cmd)} failed (exit {p.returncode}):\n{out}")
    return out, usage.ru_maxrss / 1024.0


def fields(line):
    return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)


def ours(bench, case, threads, seconds, data):
    cmd = [bench, "--case", case, "--threads", str(threads), "--seconds", str(seconds)] + (["--data", data] if data else [])
    out, rss = run(cmd)
    result = fields(next(l for l in out.splitlines() if l.startswith("RESULT")))
    return float(result["img_per_s"]), rss, result


def peer(kind, args, figure, data, cache):
    key = (kind, tuple(args))
    if key not in cache:  # one peer run gives both its training and its eval figure
        script = "torch_seed_models.py" if kind == "torch" else "seed_manual_conv.py"
        out, rss = run(["/usr/bin/python3", os.path.join(ROOT, "..", "shared", "bench", script), data] + args)
        result = fields(next(l for l in out.splitlines() if l.startswith("RESULT")))
        ev = re.search(r"^eval (\d+) img/s", out, re.M)
        cache[key] = {"train": float(result["train_img_per_s"]), "eval": float(ev.group(1)) if ev else None, "rss": rss}
    return cache[key][figure], cache[key]["rss"]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="ManualCNN build folder (default: build)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of every case (default: 3)")
    ap.add_argument("--seconds", type=float, default=3, help="timed seconds per ManualCNN case (default: 3)")
    ap.add_argument("--data", default="", help="CIFAR-10 binary folder (default: the bench app's search path; "
                                                "the peers get ../shared/cifar10/cifar-10-batches-bin)")
    a = ap.parse_args()
    bench = os.path.join(ROOT, a.build, "bench", "bench")
    if not os.access(bench, os.X_OK):
        sys.exit(f"compare: {bench} not found; build first (scripts/setup.sh)")
    peer_data = a.data or os.path.join(ROOT, "..", "shared", "cifar10", "cifar-10-batches-bin")
    if not os.path.isfile(os.path.join(peer_data, "test_batch.bin")):
        sys.exit(f"compare: no CIFAR-10 binary files in {peer_data}; give --data")

    print(f"# ManualCNN vs PyTorch, {datetime.date.today()}, {os.cpu_count()} cores, {cpu_model()}")
    print(f"# command: bench/compare.py --rounds {a.rounds} --seconds {a.seconds:g}" + (f" --data {a.data}" if a.data else ""))
    ratios = {name: [] for name, *_ in CASES}
    figures = {name: ([], []) for name, *_ in CASES}
    ours_results = {}
    rss = {"ours": [], "peer": []}
    for r in range(a.rounds):
        cache = {}
        for name, (case, threads), (kind, args, figure), _ in CASES:
            o, o_rss, result = ours(bench, case, threads, a.seconds, a.data)
            p, p_rss = peer(kind, args, figure, peer_data, cache)
            ratios[name].append(o / p)
            figures[name][0].append(o)
            figures[name][1].append(p)
            ours_results.setdefault((case, threads), []).append(result)
            if case == "simple-b4":
                rss["ours"].append(o_rss)
                rss["peer"].append(p_rss)
            print(f"round {r + 1}: {name}: ours {o:.0f} img/s, PyTorch {p:.0f} img/s, ratio {o / p:.2f}", flush=True)

    med = statistics.median
    print()
    print("| case | threads | ours img/s | PyTorch img/s | ratio | target | met |")
    print("|---|---|---|---|---|---|---|")
    for name, (case, threads), _, target in CASES:
        ratio = med(ratios[name])
        met = "" if target is None else ("yes" if ratio >= target else "**no**")
        print(f"| {name} | {threads} | {med(figures[name][0]):,.0f} | {med(figures[name][1]):,.0f} | {ratio:.2f}x | "
              f"{'' if target is None else f'>= {target:g}x'} | {met} |")
    two = med(figures["TunedCNN training, batch 64"][0]) / med(figures["TunedCNN training, batch 64, 1 thread"][0])
    peer_two = med(figures["TunedCNN training, batch 64"][1]) / med(figures["TunedCNN training, batch 64, 1 thread"][1])
    print(f"| TunedCNN batch 64, 2 threads vs 1 | 2 / 1 | {two:.2f}x | {peer_two:.2f}x | | >= 1.7x (ours) | "
          f"{'yes' if two >= 1.7 else '**no**'} |")
    o_rss, p_rss = med(rss["ours"]), med(rss["peer"])
    print(f"| peak RSS, SimpleCNN training batch 4 (whole process) | 2 | {o_rss:,.0f} MiB | {p_rss:,.0f} MiB | "
          f"{o_rss / p_rss:.2f}x | <= 1x | {'yes' if o_rss <= p_rss else '**no**'} |")

    # conv GFLOP/s against Eigen's SGEMM peak at the same thread count
    peak = {}
    for threads in (1, 2):
        out, _ = run([bench, "--case", "sgemm", "--threads", str(threads)])
        peak[threads] = float(fields(next(l for l in out.splitlines() if l.startswith("RESULT")))["gflops"])
    print()
    print(f"Conv layers (automatic path unless said) against Eigen's SGEMM peak (2048 x 2048 float): "
          f"{peak[1]:.1f} GFLOP/s on 1 thread, {peak[2]:.1f} on 2")
    print()
    print("| case | threads | conv forward GFLOP/s | % of peak | conv backward GFLOP/s | % of peak |")
    print("|---|---|---|---|---|---|")
    for (case, threads), results in ours_results.items():
        f = med(float(x["conv_fwd_gflops"]) for x in results)
        b = med(float(x["conv_bwd_gflops"]) for x in results)
        back = f"{b:.1f} | {100 * b / peak[threads]:.0f} %" if b > 0 else "| "
        print(f"| {case}{' (correlate2d conv)' if case.startswith('manual') else ''} | {threads} | {f:.1f} | "
              f"{100 * f / peak[threads]:.0f} % | {back} |")


if __name__ == "__main__":
    main()
