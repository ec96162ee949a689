"""Side-by-side latency benchmark: TVM (tuned and untuned) against every engine a user would pick
instead on a CPU: ONNX Runtime, OpenVINO, ncnn (converted with pnnx) and PyTorch.

Each engine runs in its own process (their thread pools spin after work and distort each other
in one process); processes alternate A B C D A B C D over several rounds on the same input with
the same thread count, and the medians of all timed runs are compared.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.atomic import atomic_path

logger = logging.getLogger(__name__)

ENGINES = ("tvm-tuned", "tvm-untuned", "onnxruntime", "openvino", "ncnn", "pytorch")
BASELINES = ("onnxruntime", "openvino")  # the goal ratio is against the fastest of these


@dataclass(frozen=True)
class BenchArgs:
    model: str = "xs"
    input_size: str | None = None
    threads: tuple[int, ...] = (2,)  # every engine is timed at each count
    repeats: int = 30  # timed runs per engine, split over the rounds
    rounds: int = 3
    warmup: int = 3
    workdir: Path = Path("build/bench")
    engines: tuple[str, ...] = ENGINES  # in this order; at least one of BASELINES

    def __post_init__(self):
        bad = [e for e in self.engines if e not in ENGINES]
        if bad or not set(self.engines) & set(BASELINES):
            raise ValueError(f"engines {' '.join(bad or self.engines)}: choose from "
                             f"{', '.join(ENGINES)}, with at least one of {', '.join(BASELINES)} "
                             "(the ratios are against the fastest of them)")


def _input(shape) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def _timed(fn, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def worker(engine: str, path: str, shape: list[int], threads: int, warmup: int, repeats: int) -> list[float]:
    """Time one engine in this process (called in a fresh interpreter)."""
    x = _input(shape)
    if engine.startswith("tvm"):
        from runtime.artifact import Artifact, configure_threads

        configure_threads(threads)
        art = Artifact(path)
        return _timed(lambda: art.infer(x), warmup, repeats)
    if engine == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return _timed(lambda: sess.run(None, {name: x}), warmup, repeats)
    if engine == "openvino":
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(core.read_model(path), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32"})
        request = compiled.create_infer_request()
        return _timed(lambda: request.infer({0: x}), warmup, repeats)
    if engine == "ncnn":
        import ncnn

        net = ncnn.Net()
        net.opt.num_threads = threads
        net.opt.use_vulkan_compute = False
        for name in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic",
                     "use_bf16_storage", "use_int8_inference"):  # fp32, like every engine here
            setattr(net.opt, name, False)
        net.load_param(f"{path}.ncnn.param")
        net.load_model(f"{path}.ncnn.bin")

        def run():
            ex = net.create_extractor()
            ex.input("in0", ncnn.Mat(x, batch_index=0).clone())
            return ex.extract("out0")[1], ex.extract("out1")[1]

        return _timed(run, warmup, repeats)
    if engine == "pytorch":
        import torch

        torch.set_num_threads(threads)
        model = torch.load(path, weights_only=False).eval()
        xt = torch.from_numpy(x)
        with torch.inference_mode():
            return _timed(lambda: model(xt), warmup, repeats)
    raise ValueError(f"unknown engine {engine!r}; valid choices: {', '.join(ENGINES)}")


def export_ncnn(model, size: tuple[int, int], folder: Path) -> Path:
    """ncnn's ``model.ncnn.{param,bin}`` through pnnx (a TorchScript trace of ``model``)."""
    import pnnx

    from compile.frontend.importer import example_input

    folder.mkdir(parents=True, exist_ok=True)
    saved = os.dup(1)  # pnnx prints its whole graph from C++: silence file descriptor 1
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            pnnx.export(model, str(folder / "model.pt"), (example_input(size),))
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    return folder / "model.ncnn.param"


def prepare(args: BenchArgs) -> tuple[dict[str, str], list[int], dict]:
    """Build the tuned TVM artifact (its metadata heads every table) and what the chosen engines
    need of the untuned artifact, ONNX, ncnn and the pickled PyTorch module; same weights."""
    import torch

    from compile.build import BuildArgs, build
    from compile.frontend.importer import export_onnx, load_model
    from compile.model.zoo import get_dataset, get_model, parse_input_size

    spec = get_model(args.model)
    size = parse_input_size(args.input_size, spec.input_size)
    work = args.workdir / f"{spec.name}-{size[0]}x{size[1]}"
    work.mkdir(parents=True, exist_ok=True)
    tuned = build(BuildArgs(model=spec.name, target="host", output=work / "tvm-tuned",
                            input_size=f"{size[0]}x{size[1]}"))
    if "tvm-untuned" in args.engines:
        build(BuildArgs(model=spec.name, target="host", output=work / "tvm-untuned",
                        input_size=f"{size[0]}x{size[1]}", tuning_logs=work / "no-tuning-logs"))
    loaded = load_model(spec, get_dataset("crowdpose"))
    export_onnx(loaded.fused, size, work / "model.onnx")
    if "pytorch" in args.engines:
        torch.save(loaded.fused, work / "model.pt")
    if "ncnn" in args.engines:
        export_ncnn(loaded.fused, size, work / "ncnn")
    paths = {"tvm-tuned": str(work / "tvm-tuned"), "tvm-untuned": str(work / "tvm-untuned"),
             "onnxruntime": str(work / "model.onnx"), "openvino": str(work / "model.onnx"),
             "ncnn": str(work / "ncnn" / "model"), "pytorch": str(work / "model.pt")}
    return paths, [1, 3, *size], tuned.meta


def run(args: BenchArgs) -> tuple[dict[int, dict[str, list[float]]], dict]:
    """For each thread count, alternate one process per engine per round; every timed run per
    thread count and engine, and the tuned artifact's metadata."""
    paths, shape, meta = prepare(args)
    results: dict[int, dict[str, list[float]]] = {}
    per_round = max(1, -(-args.repeats // args.rounds))
    for threads in args.threads:
        times = results[threads] = {e: [] for e in args.engines}
        env = {**os.environ, "TVM_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
        for r in range(args.rounds):
            for engine in args.engines:
                spec = json.dumps([engine, paths[engine], shape, threads, args.warmup, per_round])
                out = subprocess.run([sys.executable, "-m", "compile.bench.engines", spec], env=env,
                                     check=True, capture_output=True, text=True)
                times[engine] += json.loads(out.stdout.strip().splitlines()[-1])
                logger.info("%d threads, round %d %s: median %.2f ms", threads, r + 1, engine,
                            statistics.median(times[engine]) * 1e3)
    return results, meta


def banner(meta, threads: int) -> str:
    """The table's first line: model, size, threads, and how much of tvm-tuned is tuned (the
    tasks covered by any of the applied databases)."""
    tuning = meta.tuning
    covered = "untuned" if tuning is None else (
        f"{tuning.tasks_covered}/{tuning.tasks} tasks tuned, {len(tuning.databases)} database(s)"
        + (f", {tuning.tasks_elsewhere} measured only on other machines than {tuning.machine}"
           if tuning.tasks_elsewhere else ""))
    h, w = meta.input_hw
    return (f"LitePose-{meta.model.upper()} {h}x{w}, {threads} threads, {meta.target.tvm}; "
            f"tvm-tuned: {covered}; {meta.weights.source} weights (latency does not depend on them)")


_SGEMM = """
import json, sys, time, numpy as np
n = int(sys.argv[1])
a, b = (np.random.default_rng(i).standard_normal((n, n)).astype(np.float32) for i in (0, 1))
best = float("inf")
for _ in range(8):
    t0 = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t0)
print(json.dumps([n ** 3 / best / 1e9]))
"""


def _measure(argv: list[str], threads: int) -> list:
    """The JSON list the last line of ``python argv`` prints, run with ``threads`` BLAS threads."""
    env = {k: v for k, v in os.environ.items()  # pinned core types slow a current OpenBLAS
           if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env.update(OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, *argv], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


SGEMM_N = 2048


def measured_fma_peak(threads: int) -> tuple[float, str]:
    """This machine's fp32 FMA peak on ``threads`` threads in GMAC/s and how it was measured
    (:func:`compile.bench.peak.fma_peak`, in a process of its own)."""
    peak, how = _measure(["-m", "compile.bench.peak", str(threads)], threads)
    return peak, how


def compute_bound(threads: int) -> tuple[float, str, float]:
    """This machine's fp32 FMA peak on ``threads`` threads in GMAC/s, as measured
    (:mod:`compile.bench.peak`, at whatever clock the cores boost to), how, and beside it the
    rate of the best of 8 OpenBLAS sgemm runs (``SGEMM_N`` squared, ``threads`` BLAS threads).
    Each in a process of its own. The sgemm is no ceiling: tuned conv kernels run above it."""
    peak, how = measured_fma_peak(threads)
    (sgemm,) = _measure(["-c", _SGEMM, str(SGEMM_N)], threads)
    return peak, how, sgemm


def table(times: dict[str, list[float]], macs: float, threads: int) -> str:
    """Medians, spread, ratio to the fastest baseline engine, MAC throughput vs the measured FMA
    peak; every engine computes in fp32."""
    fastest = min((e for e in BASELINES if e in times), key=lambda e: statistics.median(times[e]))
    base = statistics.median(times[fastest])
    peak, how, sgemm = compute_bound(threads)
    rows = [f"{threads} thread(s), every engine fp32 (OpenVINO INFERENCE_PRECISION_HINT=f32, "
            "ncnn fp16/bf16/int8 off)",
            f"{'engine':12s} {'median ms':>10s} {'p10 ms':>8s} {'p90 ms':>8s} {'runs':>5s} "
            f"{'vs ' + fastest:>16s} {'GMAC/s':>7s} {'% peak':>7s}"]
    for engine, ts in times.items():
        q = statistics.quantiles(ts, n=10) if len(ts) >= 2 else [ts[0]] * 9
        med = statistics.median(ts)
        rate = macs / med / 1e9
        rows.append(f"{engine:12s} {med * 1e3:10.2f} {q[0] * 1e3:8.2f} {q[-1] * 1e3:8.2f} "
                    f"{len(ts):5d} {med / base:15.2f}x {rate:7.1f} "
                    f"{100 * rate / peak if peak else 0:6.1f}%")
    rows.append(f"FMA peak {peak:.0f} GMAC/s ({how}); OpenBLAS sgemm {SGEMM_N}^3 {sgemm:.0f} GMAC/s "
                f"({100 * sgemm / peak:.0f} % of the peak); {macs / 1e9:.3f} G true MACs per frame")
    return "\n".join(rows)


def plot(results: dict[int, dict[str, list[float]]], path: Path, title: str) -> Path:
    """Grouped bars of the medians, one group per engine, one bar per thread count (log scale:
    untuned TVM is far slower)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engines = list(next(iter(results.values())))
    width = 0.8 / len(results)
    fig, ax = plt.subplots(figsize=(9, 3.8))
    for k, (threads, times) in enumerate(results.items()):
        meds = [statistics.median(times[e]) * 1e3 for e in engines]
        xs = [i + (k - (len(results) - 1) / 2) * width for i in range(len(engines))]
        bars = ax.bar(xs, meds, width, label=f"{threads} thread(s)")
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(range(len(engines)), engines)
    ax.set_yscale("log")
    ax.set_ylabel("median latency (ms, log), fp32")
    ax.set_title(title)
    ax.legend(fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


if __name__ == "__main__":  # worker mode: one engine, prints its timings as JSON
    engine, path, shape, threads, warmup, repeats = json.loads(sys.argv[1])
    print(json.dumps(worker(engine, path, shape, threads, warmup, repeats)))
