"""Post-processing benchmark: Numba kernels vs the slow reference, and run.py vs inference alone.

    python -m tests.bench_post [--artifact build/xs-host] [--repeats 5]

Prints medians and ratios measured side by side in one run; nothing here is a test.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from kernels import group
from tests import reference_parser as ref
from tests.synthetic import make_maps


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def bench_kernels(repeats: int) -> None:
    print(f"grouping, adjust+refine, J=14, L=1 (median of {repeats})")
    print(f"{'maps':>8} {'people':>6} {'found':>6} {'reference ms':>13} {'numba ms':>9} {'ratio':>7}")
    rng = np.random.default_rng(0)
    group(*make_maps(rng, 2, 14, 32, 32)[:2])  # JIT / cache load outside the timings
    for size in (256, 448):
        for n in (1, 5, 15, 30):
            hm, tg, _ = make_maps(rng, n, 14, size, size, sigma=size / 128)
            found = len(group(hm, tg)[0])
            t_ref = median_ms(lambda: ref.parse(hm, tg), max(1, repeats // 2))
            t_nb = median_ms(lambda: group(hm, tg), repeats * 4)
            print(f"{size:>5}^2 {n:>6} {found:>6} {t_ref:>13.1f} {t_nb:>9.2f} {t_ref / t_nb:>6.0f}x")


def bench_end_to_end(artifact_dir: Path, frames: int) -> None:
    from runtime.artifact import Artifact
    from runtime.pipeline import Pipeline
    from runtime.postprocess import DecodeConfig
    from runtime.results import draw_people

    artifact = Artifact(artifact_dir)
    rng = np.random.default_rng(1)
    import cv2

    image = cv2.GaussianBlur((rng.random((480, 640, 3)) * 255).astype(np.uint8), (9, 9), 3)
    pipe = Pipeline(artifact, DecodeConfig())
    x = np.zeros(artifact.meta["input"]["shape"], np.float32)
    for _ in range(2):  # warm-up: thread pool, JIT cache
        pipe(image)
        artifact.infer(x)
    infer, full = [], []
    for _ in range(frames):  # alternate so both see the same machine state
        t0 = time.perf_counter()
        artifact.infer(x)
        infer.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        pred = pipe(image)
        draw_people(image, pred.people, artifact.meta["skeleton"])
        full.append(time.perf_counter() - t0)
    fi, ff = 1 / statistics.median(infer), 1 / statistics.median(full)
    meta = artifact.meta
    print(f"\nend to end, {meta['model']} {meta.input_hw} {meta['target']['name']} "
          f"({'untuned' if meta['tuning'] == 'untuned' else 'tuned'}, "
          f"{'random' if meta.random_weights else 'trained'} weights, {len(pred.people)} people)")
    print(f"inference only {fi:.2f} frames/s; run.py pipeline {ff:.2f} frames/s; ratio {ff / fi:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tests.bench_post", description=__doc__.splitlines()[0])
    p.add_argument("--artifact", type=Path, default=Path("build/xs-host"))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--frames", type=int, default=10)
    args = p.parse_args()
    bench_kernels(args.repeats)
    if (args.artifact / "metadata.json").is_file():
        bench_end_to_end(args.artifact, args.frames)
    else:
        print(f"\n(no artifact at {args.artifact}: build one with make compile TARGET=host)")


if __name__ == "__main__":
    main()
