"""Post-processing benchmark: Numba kernels vs the slow reference (clean and crowded maps), the
tracker and smoother per frame, and run.py (serial and pipelined, tracking on: a video) vs
inference alone, each in its own process.

    python -m compile bench-post [--artifact build/xs-host] [--repeats 5] [--threads 1 2]

Prints medians and ratios measured side by side in one run; nothing here is a test.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from compile import REPO_ROOT
from compile.eval.synthetic import crowded_maps, make_maps
from kernels import group
from runtime.meta import ArtifactMeta
from runtime.profile import median_seconds

from . import reference_parser as ref


def median_ms(fn, repeats: int) -> float:
    return median_seconds(fn, repeats) * 1e3


def _row(label: str, hm, tg, repeats: int) -> str:
    found = len(group(hm, tg)[0])
    t_ref = median_ms(lambda: ref.parse(hm, tg), max(1, repeats // 2))
    t_nb = median_ms(lambda: group(hm, tg), repeats * 2)
    return f"{label:>34} {found:>6} {t_ref:>13.1f} {t_nb:>9.2f} {t_ref / t_nb:>6.0f}x"


def bench_kernels(repeats: int) -> None:
    print(f"grouping, adjust+refine, J=14 (median of {repeats})")
    print(f"{'maps':>34} {'found':>6} {'reference ms':>13} {'numba ms':>9} {'ratio':>7}")
    rng = np.random.default_rng(0)
    group(*make_maps(rng, 2, 14, 32, 32)[:2])  # JIT / cache load outside the timings
    for size in (256, 448):
        for n in (1, 5, 15, 30):
            hm, tg, _ = make_maps(rng, n, 14, size, size, sigma=size / 128)
            print(_row(f"clean {size}^2, {n} people, L=1", hm, tg, repeats))
    for kw, label in ((dict(), "crowded"), (dict(net_like=True), "crowded net-like")):
        hm, tg = crowded_maps(rng, 30, 14, 256, tag_dim=2, **kw)
        print(_row(f"{label} 256^2, 30 people, L=2", hm, tg, repeats))


def bench_tracking(repeats: int) -> None:
    """Tracker (and One-Euro) milliseconds per frame for crowds drifting across a 640x480
    frame, measured after 10 frames of warm-up, median over 50 frames x ``repeats``."""
    from compile.model.zoo import DATASETS
    from runtime.smoothing import KeypointSmoother
    from runtime.tracking import Tracker

    print("\ntracking per frame, CrowdPose sigmas, people drifting 3 px/frame with 1 px jitter")
    print(f"{'people':>8} {'tracks':>7} {'tracker ms':>11} {'+ smoother ms':>14}")
    for n in (5, 30, 100, 150):
        rng = np.random.default_rng(n)
        base = rng.uniform(0, [640, 480], (n, 1, 2)) + rng.normal(0, 25, (n, 14, 2))
        score = rng.uniform(0.1, 1, (n, 14, 1))
        frames = [np.concatenate([base + 3 * f + rng.normal(0, 1, base.shape), score], axis=2)
                  .astype(np.float32)[rng.permutation(n)] for f in range(60)]
        t_track, t_smooth = [], []
        for _ in range(repeats):
            tracker, smoother = Tracker(DATASETS["crowdpose"].oks_sigmas), KeypointSmoother(30.0)
            for f, kp in enumerate(frames):
                t0 = time.perf_counter()
                ids = tracker.update(kp)
                t1 = time.perf_counter()
                smoother(ids, kp)
                if f >= 10:
                    t_track.append(t1 - t0)
                    t_smooth.append(time.perf_counter() - t1)
        print(f"{n:>8} {tracker.live:>7} {statistics.median(t_track) * 1e3:>11.2f} "
              f"{statistics.median(t_smooth) * 1e3:>14.2f}")


def make_video(path: Path, frames: int, size=(640, 480)) -> Path:
    """Smooth random frames (random weights then find ~100 "people" per frame)."""
    import cv2

    rng = np.random.default_rng(1)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, size)
    for _ in range(frames):
        writer.write(cv2.GaussianBlur((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8),
                                      (9, 9), 3))
    writer.release()
    return path


_INFER_ONLY = """
import json, sys, time, numpy as np
from runtime.artifact import Artifact, configure_threads
configure_threads(int(sys.argv[2]))
a = Artifact(sys.argv[1])
x = np.zeros(a.meta.input.shape, np.float32)
for _ in range(3): a.infer(x)
t = []
for _ in range(int(sys.argv[3])):
    t0 = time.perf_counter(); a.infer(x); t.append(time.perf_counter() - t0)
print(json.dumps(t))
"""


def _infer_fps(artifact: Path, threads: int, frames: int) -> float:
    out = subprocess.run([sys.executable, "-c", _INFER_ONLY, str(artifact), str(threads), str(frames)],
                         cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return 1 / statistics.median(json.loads(out.stdout.strip().splitlines()[-1]))


def _run_py(artifact: Path, video: Path, threads: int, pipeline: bool, work: Path) -> dict:
    stats = work / f"stats-{threads}-{pipeline}.json"
    subprocess.run([sys.executable, str(REPO_ROOT / "runtime" / "run.py"), "--model", str(artifact),
                    "--input", str(video), "--output", str(work / "out"), "--threads", str(threads),
                    "--pipeline" if pipeline else "--no-pipeline", "--stats", str(stats), "--quiet"],
                   cwd=REPO_ROOT, capture_output=True, text=True, check=True, env=dict(os.environ))
    return json.loads(stats.read_text())


def bench_end_to_end(artifact: Path, frames: int, threads_list: list[int], rounds: int) -> None:
    meta = ArtifactMeta.read(artifact)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        video = make_video(work / "crowd.mp4", frames)
        print(f"\nend to end, {meta.describe()}, {meta.weights.source} weights, "
              f"{frames}-frame 640x480 video, "
              f"frames/s after warm-up, median of {rounds} alternating rounds")
        for threads in threads_list:
            fps = {"infer": [], "serial": [], "pipelined": []}
            last = {}
            for _ in range(rounds):  # alternate processes so all see the same machine state
                fps["infer"].append(_infer_fps(artifact, threads, frames))
                for name, pipe in (("serial", False), ("pipelined", True)):
                    last[name] = _run_py(artifact, video, threads, pipe, work)
                    fps[name].append(last[name]["steady_frames_per_s"])
            med = {k: statistics.median(v) for k, v in fps.items()}
            print(f"--threads {threads}: inference only {med['infer']:.2f}, run.py serial "
                  f"{med['serial']:.2f} ({med['serial'] / med['infer']:.2f}x), pipelined "
                  f"{med['pipelined']:.2f} ({med['pipelined'] / med['infer']:.2f}x)")
            for name in ("serial", "pipelined"):
                stages = last[name]["stages"]
                print(f"    {name:9s} " + ", ".join(
                    f"{k} {s['median_ms']:.1f} ms ({s['busy_pct']:.0f}% busy, wait {s['queue_wait_s']:.1f} s)"
                    for k, s in stages.items()) + f"; overlap {last[name]['overlap']:.2f}x")


def bench_post(artifact: Path, repeats: int = 5, frames: int = 40, rounds: int = 2,
               threads: tuple[int, ...] = (1, 2), kernels: bool = True) -> None:
    """Print every part: the kernels and the tracker (unless ``kernels`` is False), then the end
    to end runs of ``artifact`` when it exists."""
    if kernels:
        bench_kernels(repeats)
        bench_tracking(repeats)
    if (artifact / "metadata.json").is_file():
        bench_end_to_end(artifact.resolve(), frames, list(threads), rounds)
    else:
        print(f"\n(no artifact at {artifact}: build one with make compile TARGET=host)")
