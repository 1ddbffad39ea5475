#!/usr/bin/python3
"""ManualCNN against its fair PyTorch peers, side by side on this machine.

Runs each case with ManualCNN's `bench` app and with both fair peers of ../shared/bench (see its
README): the C++ one (libtorch's seed_models, built from ../shared/bench/libtorch) and the Python
one (torch_seed_models.py), both on Debian's PyTorch with OpenBLAS, on 1 and 2 threads. Rounds are
interleaved (ours, libtorch, Python, ours, ...) and the medians over rounds are reported; each
ratio is ours over the FASTER peer of the same round. It prints a markdown table for the README
(case, ours, libtorch, Python, ratio, target, met?), the FMA peak and the conv layers' fraction of
it, the modern network's peer (torch_fast_net.py), and the date, CPU and commands.

  bench/compare.py                        # 3 rounds (about 10 minutes on 2 cores)
  bench/compare.py --rounds 1             # a quick look
  bench/compare.py --build build-other    # another ManualCNN build folder
  bench/compare.py --libtorch ~/build-libtorch   # where seed_models was built

The peers run in the peer-only environment: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed (on
machines that set them they force a slower OpenBLAS kernel) and OPENBLAS_NUM_THREADS set to the case's
thread count (torch.set_num_threads does not limit OpenBLAS's own threads); ManualCNN's runs keep the environment
as it is. Before anything else the script measures a 2048 x 2048 float matmul in the peer's own
environment (PyTorch, one thread) and refuses to report (exit 1) when it looks like the reference
BLAS rather than OpenBLAS. Run it on an otherwise idle machine.
"""
import argparse
import datetime
import os
import platform
import shlex
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_BENCH = os.path.normpath(os.path.join(ROOT, "..", "shared", "bench"))
PEER_ONLY_UNSET = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
MIN_PEER_MATMUL_GFLOPS = 30.0  # the reference BLAS does ~6; OpenBLAS 70-130 on these machines
THREADS = (1, 2)

# One case: name, ours (bench case), libtorch (model, batch, steps, infer?), Python (model, batch,
# max batches, figure: "train" or "eval"), target ratio against the faster peer.
# Python's eval figure is one pass over the test set at batch 500, from the same run as its training.
CASES = [
    ("TunedCNN training, batch 64", "tuned-b64", ("changed", 64, 30, False), ("changed", 64, 30, "train"), 1.5),
    ("SimpleCNN training, batch 4", "simple-b4", ("simple", 4, 2500, False), ("simple", 4, 2500, "train"), 3.0),
    ("SimpleCNN training, batch 64", "simple-b64", ("simple", 64, 300, False), ("simple", 64, 300, "train"), 2.0),
    ("SimpleCNN inference, batch 500", "simple-infer-b500", ("simple", 500, 20, True), ("simple", 64, 300, "eval"), 1.5),
    ("TunedCNN inference, batch 500", "tuned-infer-b500", ("changed", 500, 20, True), ("changed", 64, 30, "eval"), 1.5),
]
SCALING = ("TunedCNN training, batch 64", 1.8)  # ours, 2 threads over 1


# ---- pure functions (tests/test_compare.py) ----

def parse_results(text):
    """Every "RESULT k=v k=v ..." line of `text`, as a list of dicts of strings."""
    results = []
    for line in text.splitlines():
        if line.startswith("RESULT"):
            results.append(dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv))
    return results


def result_value(text, key, what):
    """The number `key` of the first RESULT line holding it; exits naming `what` when none does."""
    for r in parse_results(text):
        if key in r:
            return float(r[key])
    raise ValueError(f"{what}: no RESULT line with {key}= in its output:\n{text[-2000:]}")


def faster_peer(figures):
    """(name, img/s) of the fastest peer in {name: img/s or None}; ValueError when none has a figure."""
    known = [(v, k) for k, v in figures.items() if v is not None and v > 0]
    if not known:
        raise ValueError(f"no peer gave a figure: {figures}")
    v, k = max(known)
    return k, v


def blas_verdict(gflops, minimum=MIN_PEER_MATMUL_GFLOPS):
    """None when the peer's matmul speed shows an optimised BLAS; else the message refusing to report."""
    if gflops >= minimum:
        return None
    return (f"compare: the peer's 2048 x 2048 float matmul runs at {gflops:.1f} GFLOP/s on one thread (below {minimum:g}): "
            "PyTorch is on the reference BLAS, not OpenBLAS, so the comparison would not be fair. Install OpenBLAS "
            "(apt-get install -y libopenblas0-pthread) and check that `update-alternatives --display "
            "libblas.so.3-x86_64-linux-gnu` points to it; see ../shared/bench/README.md. Not reporting.")


def busy_core_note(peak_one, peak_two):
    """A warning when two threads at once reach less than 1.8x one core's FMA peak (another process held
    a core: the 2-thread figures of this run understate every contender); else None."""
    if peak_two >= 1.8 * peak_one:
        return None
    return (f"**Warning**: 2 threads at once reached only {peak_two / peak_one:.2f}x one core's FMA peak: another process held a "
            "core during this run, so its 2-thread figures are not reliable.")


def peer_env(env, threads=None):
    """A copy of `env` without the variables that force a slower OpenBLAS kernel (peer commands only);
    with `threads`, OPENBLAS_NUM_THREADS set to it: torch.set_num_threads does not reach OpenBLAS's own
    thread pool, so a "1 thread" peer otherwise multiplies its linear layers on every core (measured:
    1.5 cores busy in libtorch's 1-thread TunedCNN run, the 2048 matmul 128 GFLOP/s vs 78 on one)."""
    out = {k: v for k, v in env.items() if k not in PEER_ONLY_UNSET}
    if threads is not None:
        out["OPENBLAS_NUM_THREADS"] = str(threads)
    return out


def verdict(ratio, target):
    """"yes" / "**no**" for a ratio against a target (None: reported only, "")."""
    if target is None:
        return ""
    return "yes" if ratio >= target else "**no**"


def median_known(values):
    """The median of the values that are not None; None when there are none."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def table_row(cells):
    return "| " + " | ".join(cells) + " |"


def img_s(v):
    return "–" if v is None else f"{v:,.0f}"


# ---- running ----

def run(cmd, env=None):
    """Runs cmd from the repository root; returns (output, peak RSS in MiB of that process)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"compare: {shlex.join(cmd)} failed (exit {code}):\n{out[-4000:]}")
    return out, usage.ru_maxrss / 1024.0


def peer_matmul_gflops(python):
    """A 2048 x 2048 float matmul in PyTorch, one thread, best of 3, in the peer-only environment."""
    code = ("import time, torch\ntorch.set_num_threads(1)\na = torch.randn(2048, 2048); b = torch.randn(2048, 2048)\n"
            "a @ b\nbest = 1e9\nfor _ in range(3):\n    t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)\n"
            "print(f'RESULT peer=pytorch matmul=2048 gflops={2 * 2048 ** 3 / best / 1e9:.2f}')\n")
    out, _ = run([python, "-c", code], env=peer_env(os.environ, 1))
    return result_value(out, "gflops", "the peer's matmul check")


class Runner:
    """The three contenders' commands; results of one round are cached per distinct command."""

    def __init__(self, a):
        self.a = a
        self.bench = os.path.join(ROOT, a.build, "bench", "bench")
        self.seed_models = a.libtorch_bin
        self.cache = {}

    def env(self, threads):
        return peer_env(os.environ, threads)

    def ours_cmd(self, case, threads):
        return [self.bench, "--case", case, "--threads", str(threads), "--seconds", f"{self.a.seconds:g}", "--data", self.a.data]

    def libtorch_cmd(self, spec, threads):
        model, batch, steps, infer = spec
        return [self.seed_models, self.a.data, model, str(batch), str(steps), str(threads)] + (["infer"] if infer else [])

    def python_cmd(self, spec, threads):
        model, batch, max_batches, _ = spec
        lr = "0.001" if model == "simple" else "0.0007"
        return [self.a.python, os.path.join(SHARED_BENCH, "torch_seed_models.py"), self.a.data, model, "1", str(batch), lr, "0.9",
                str(max_batches), str(threads)]

    def ours(self, case, threads):
        out, rss = run(self.ours_cmd(case, threads))
        r = next(x for x in parse_results(out) if x.get("case") == case)
        return float(r["img_per_s"]), rss, r

    def libtorch(self, spec, threads):
        out, rss = run(self.libtorch_cmd(spec, threads), env=self.env(threads))
        return result_value(out, "img_per_s", "libtorch seed_models"), rss

    def python(self, spec, threads):
        cmd = self.python_cmd(spec, threads)
        key = tuple(cmd)
        if key not in self.cache:  # one run gives both its training and its eval figure
            out, rss = run(cmd, env=self.env(threads))
            ev = [l.split()[1] for l in out.splitlines() if l.startswith("eval ") and l.endswith("img/s")]
            self.cache[key] = {"train": result_value(out, "train_img_per_s", "torch_seed_models.py"),
                               "eval": float(ev[0]) if ev else None, "rss": rss}
        c = self.cache[key]
        return c[spec[3]], c["rss"]

    def fma_peak(self, threads):
        out, _ = run([self.bench, "--case", "fma-peak", "--threads", str(threads)])
        r = next(x for x in parse_results(out) if x.get("case") == "fma-peak")
        return float(r["gflops"]), r["isa"]

    def fast_net(self, threads):
        cmd = [self.a.python, os.path.join(SHARED_BENCH, "torch_fast_net.py"), self.a.data, str(self.a.fast_net_batch),
               str(self.a.fast_net_steps), str(threads)]
        out, _ = run(cmd, env=self.env(threads))
        return next(x for x in parse_results(out) if "train_img_per_s" in x), cmd


# Earlier targets kept beside the issue's: ManualCNN's correlate2d conv against the notebook's
# scipy layer (seed_manual_conv.py), and the peak memory of SimpleCNN training at batch 4.
MANUAL = ("ManualCNN (correlate2d conv) vs the notebook's scipy layer, batch 4", "manual-b4", ["150", "4"], 50.0)


def run_rounds(runner, rounds, extras):
    """Interleaved rounds; returns {(case name, threads): [per-round dicts]} and the extras' rounds."""
    records = {(c[0], t): [] for c in CASES for t in THREADS}
    extra = {"manual": [], "rss": []}
    for r in range(rounds):
        runner.cache = {}
        for name, case, lt, py, _ in CASES:
            for threads in THREADS:
                o, o_rss, result = runner.ours(case, threads)
                l, l_rss = runner.libtorch(lt, threads)
                p, p_rss = runner.python(py, threads)
                faster, f = faster_peer({"libtorch": l, "Python": p})
                records[(name, threads)].append({"ours": o, "libtorch": l, "python": p, "ratio": o / f, "faster": faster,
                                                 "result": result})
                if case == "simple-b4" and threads == 2:
                    extra["rss"].append((o_rss, l_rss, p_rss))
                print(f"round {r + 1}: {name}, {threads} thread(s): ours {o:,.0f} img/s, libtorch {l:,.0f}, "
                      f"Python {img_s(p)}; {o / f:.2f}x the faster ({faster})", flush=True)
        if extras:
            o, _, _ = runner.ours(MANUAL[1], 2)
            out, _ = run([runner.a.python, os.path.join(SHARED_BENCH, "seed_manual_conv.py"), runner.a.data] + MANUAL[2] + ["2"],
                         env=runner.env(2))
            p = result_value(out, "train_img_per_s", "seed_manual_conv.py")
            extra["manual"].append((o, p))
            print(f"round {r + 1}: {MANUAL[0]}: ours {o:,.0f} img/s, scipy layer {p:,.0f}", flush=True)
    return records, extra


def main_table(records):
    med = statistics.median
    print(table_row(["case", "threads", "ManualCNN img/s", "libtorch img/s", "PyTorch (Python) img/s", "ratio vs faster peer",
                     "target", "met?"]))
    print(table_row(["---"] * 8))
    for name, _, _, _, target in CASES:
        for threads in THREADS:
            rs = records[(name, threads)]
            ratio = med(x["ratio"] for x in rs)
            faster = statistics.mode(x["faster"] for x in rs)
            print(table_row([name, str(threads), img_s(med(x["ours"] for x in rs)), img_s(med(x["libtorch"] for x in rs)),
                             img_s(median_known(x["python"] for x in rs)), f"{ratio:.2f}x ({faster})", f">= {target:g}x",
                             verdict(ratio, target)]))
    name, target = SCALING
    one, two = records[(name, 1)], records[(name, 2)]
    scale = {k: med(b[k] / a[k] for a, b in zip(one, two)) for k in ("ours", "libtorch", "python")}
    print(table_row([f"{name}: 2 threads vs 1", "2 / 1", f"{scale['ours']:.2f}x", f"{scale['libtorch']:.2f}x",
                     f"{scale['python']:.2f}x", "(ours)", f">= {target:g}x", verdict(scale["ours"], target)]))


def conv_table(records):
    """The conv layers' GFLOP/s and their % of the FMA peak (one core's, times the threads) as each case measured them."""
    med = statistics.median
    print(table_row(["case", "threads", "conv forward GFLOP/s", "% of FMA peak", "conv backward GFLOP/s", "% of FMA peak"]))
    print(table_row(["---"] * 6))
    for name, case, _, _, _ in CASES:
        for threads in THREADS:
            rs = [x["result"] for x in records[(name, threads)]]
            f, b, pf, pb = (med(float(x[k]) for x in rs)
                            for k in ("conv_fwd_gflops", "conv_bwd_gflops", "conv_fwd_peak_pct", "conv_bwd_peak_pct"))
            back = [f"{b:.1f}", f"{pb:.0f} %"] if b > 0 else ["", ""]
            print(table_row([case, str(threads), f"{f:.1f}", f"{pf:.0f} %"] + back))


def extras_table(extra):
    med = statistics.median
    print(table_row(["earlier target", "threads", "ManualCNN", "libtorch", "PyTorch (Python)", "ratio", "target", "met?"]))
    print(table_row(["---"] * 8))
    if extra["manual"]:
        ratio = med(o / p for o, p in extra["manual"])
        print(table_row([MANUAL[0], "2", img_s(med(o for o, _ in extra["manual"])), "", img_s(med(p for _, p in extra["manual"])),
                         f"{ratio:.2f}x", f">= {MANUAL[3]:g}x", verdict(ratio, MANUAL[3])]))
    o, l, p = (med(x[i] for x in extra["rss"]) for i in range(3))
    print(table_row(["peak RSS, SimpleCNN training batch 4 (whole process)", "2", f"{o:,.0f} MiB", f"{l:,.0f} MiB", f"{p:,.0f} MiB",
                     f"{o / min(l, p):.2f}x (vs smaller)", "<= 1x", "yes" if o <= min(l, p) else "**no**"]))


def fast_net_table(runner):
    """FastNet (ManualCNN's `fast`, airbench94's layout) against torch_fast_net.py, the same batch and
    threads, side by side (ours right after the peer); the issue's target: 2x the peer's training speed."""
    batch, steps = runner.a.fast_net_batch, runner.a.fast_net_steps
    print(table_row(["FastNet (airbench94 layout), batch " + str(batch), "threads", "ManualCNN img/s", "PyTorch (Python) img/s",
                     "ratio", "target", "met", "ManualCNN / PyTorch inference img/s", "ManualCNN / PyTorch s per epoch"]))
    print(table_row(["---"] * 9))
    commands = []
    for threads in THREADS:
        r, cmd = runner.fast_net(threads)
        commands.append(cmd)
        ours_cmd = [runner.bench, "--case", f"fast-b{batch}", f"fast-infer-b{batch}", "--threads", str(threads), "--steps", str(steps),
                    "--warmup", "1", "--data", runner.a.data]
        commands.append(ours_cmd)
        out, _ = run(ours_cmd)
        got = {x.get("case"): float(x["img_per_s"]) for x in parse_results(out) if "img_per_s" in x}
        train, infer = got[f"fast-b{batch}"], got[f"fast-infer-b{batch}"]
        peer_train, peer_infer = float(r["train_img_per_s"]), float(r["infer_img_per_s"])
        ratio = train / peer_train
        print(table_row(["training", str(threads), img_s(train), img_s(peer_train), f"{ratio:.2f}x", ">= 2x",
                         "yes" if ratio >= 2 else "**no**", f"{img_s(infer)} / {img_s(peer_infer)}",
                         f"{50000 / train:.0f} / {50000 / peer_train:.0f}"]), flush=True)
    return commands

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def default_libtorch():
    for d in ("/work/build-libtorch", os.path.join(ROOT, "..", "build-libtorch")):
        if os.path.isdir(d):
            return d
    return os.path.normpath(os.path.join(ROOT, "..", "build-libtorch"))


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="ManualCNN build folder (default: build)")
    ap.add_argument("--libtorch", default=default_libtorch(),
                    help="build folder of ../shared/bench/libtorch, or its seed_models binary "
                         "(default: /work/build-libtorch if present, else ../build-libtorch)")
    ap.add_argument("--python", default="/usr/bin/python3", help="the Python with Debian's torch (default: /usr/bin/python3)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of every case (default: 3)")
    ap.add_argument("--seconds", type=float, default=3, help="timed seconds per ManualCNN case (default: 3)")
    ap.add_argument("--data", default=os.path.normpath(os.path.join(ROOT, "..", "shared", "cifar10", "cifar-10-batches-bin")),
                    help="CIFAR-10 binary folder (default: ../shared/cifar10/cifar-10-batches-bin)")
    ap.add_argument("--fast-net-batch", type=int, default=256, help="batch of torch_fast_net.py (default: 256)")
    ap.add_argument("--fast-net-steps", type=int, default=3, help="timed steps of torch_fast_net.py (default: 3; 0: skip it)")
    ap.add_argument("--no-extras", action="store_true", help="skip the earlier targets (scipy conv layer, peak RSS)")
    ap.add_argument("--fast-net-only", action="store_true", help="only FastNet against torch_fast_net.py (a few minutes)")
    a = ap.parse_args()
    if a.fast_net_only and a.fast_net_steps == 0:
        sys.exit("compare: --fast-net-only needs --fast-net-steps >= 1")
    if a.rounds < 1 or not a.seconds > 0 or a.fast_net_steps < 0 or a.fast_net_batch < 1:
        sys.exit("compare: --rounds and --fast-net-batch must be >= 1, --seconds > 0, --fast-net-steps >= 0")
    bench = os.path.join(ROOT, a.build, "bench", "bench")
    if not os.access(bench, os.X_OK):
        sys.exit(f"compare: {bench} not found; build it first (cmake --build {a.build} --target bench)")
    a.libtorch_bin = a.libtorch if os.path.isfile(a.libtorch) else os.path.join(a.libtorch, "seed_models")
    if not a.fast_net_only and not os.access(a.libtorch_bin, os.X_OK):
        sys.exit(f"compare: the libtorch peer {a.libtorch_bin} not found; build it: cmake -S ../shared/bench/libtorch "
                 f"-B {a.libtorch} -DCMAKE_BUILD_TYPE=Release && cmake --build {a.libtorch} (needs libtorch-dev); or give --libtorch")
    if not os.path.isfile(os.path.join(a.data, "test_batch.bin")):
        sys.exit(f"compare: no CIFAR-10 binary files in {a.data}; give --data")
    return a


def print_commands(commands):
    """The commands behind the tables, to rerun any one alone (this script's own first)."""
    print()
    print("Commands (from the repository root; each case also with threads 2; peers with "
          f"`env {' '.join('-u ' + v for v in PEER_ONLY_UNSET)} OPENBLAS_NUM_THREADS=<threads>`):")
    print()
    for cmd in [sys.argv] + commands:
        print("    " + shlex.join(cmd))


def main():
    a = parse_args()
    runner = Runner(a)
    gflops = peer_matmul_gflops(a.python)
    refusal = blas_verdict(gflops)
    if refusal:
        print(refusal, file=sys.stderr)
        sys.exit(1)
    peak = {}
    for threads in THREADS:
        peak[threads], isa = runner.fma_peak(threads)
    start = datetime.datetime.now()
    if a.fast_net_only:
        print(f"## FastNet vs PyTorch, {start:%Y-%m-%d %H:%M}, {os.cpu_count()} cores, {cpu_model()}; FMA peak {peak[1]:.1f} "
              f"GFLOP/s on one core ({isa}); peer's matmul {gflops:.1f} GFLOP/s")
        print()
        print_commands(fast_net_table(runner)[:2])
        return
    records, extra = run_rounds(runner, a.rounds, not a.no_extras)
    print()
    print(f"## ManualCNN vs the fair PyTorch peers, {start:%Y-%m-%d %H:%M}, {os.cpu_count()} cores, {cpu_model()}")
    print()
    print(f"FMA peak (bench --case fma-peak, {isa}): {peak[1]:.1f} GFLOP/s on one core, {peak[2]:.1f} on 2 threads at once; "
          "the conv table takes one core's peak, measured by each case, times its threads. "
          f"Peer's matmul (PyTorch, 2048 x 2048 float, 1 thread, peer-only environment): {gflops:.1f} GFLOP/s. "
          f"Medians of {a.rounds} round(s); ratios are against the faster peer of each round.")
    note = busy_core_note(peak[1], peak[2])
    if note:
        print()
        print(note)
    print()
    main_table(records)
    print()
    conv_table(records)
    if not a.no_extras:
        print()
        extras_table(extra)
    fast_net_commands = []
    if a.fast_net_steps:
        print()
        fast_net_commands = fast_net_table(runner)
    _, case, lt, py, _ = CASES[0]
    print_commands([runner.ours_cmd(case, 1), runner.libtorch_cmd(lt, 1), runner.python_cmd(py, 1)] + fast_net_commands[:2])


if __name__ == "__main__":
    main()
