"""One frame through the kit: pre-process, infer (plus flip), merge maps, group, map back."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from .artifact import Artifact
from .postprocess import DecodeConfig, group_people, merge_outputs
from .preprocess import Letterbox, preprocess


@dataclass
class Prediction:
    """People in original-image pixels, rows ``[x, y, val, tag...]``, with their scores."""

    people: np.ndarray  # (P, J, 3 + L) float32
    scores: np.ndarray  # (P,) float32
    box: Letterbox
    raw: dict | None = None  # input and outputs, kept for --save-raw


@dataclass
class StageTimes:
    """Seconds spent per stage, accumulated over frames."""

    totals: dict = field(default_factory=lambda: defaultdict(float))
    frames: int = 0

    def add(self, stage: str, seconds: float) -> None:
        self.totals[stage] += seconds

    def summary(self, wall: float) -> str:
        n = max(self.frames, 1)
        parts = [f"{k} {v / n * 1e3:.1f} ms" for k, v in self.totals.items()]
        fps = self.frames / wall if wall > 0 else 0.0
        return f"{self.frames} frames, {fps:.2f} frames/s; per frame: " + ", ".join(parts)


class Pipeline:
    """Runs frames through an artifact with a decoding configuration."""

    def __init__(self, artifact: Artifact, config: DecodeConfig):
        self.artifact = artifact
        self.config = config
        meta = artifact.meta
        self.input_hw = meta.input_hw
        self.mean = meta["input"]["mean"]
        self.std = meta["input"]["std"]
        self.times = StageTimes()

    def __call__(self, image_bgr: np.ndarray, keep_raw: bool = False) -> Prediction:
        meta, t = self.artifact.meta, time.perf_counter
        t0 = t()
        x, box = preprocess(image_bgr, self.input_hw, self.mean, self.std)
        t1 = t()
        outputs = [self.artifact.infer(x)]
        if self.config.flip:
            outputs.append(self.artifact.infer(np.ascontiguousarray(x[:, :, :, ::-1])))
        t2 = t()
        heat, tags = merge_outputs(outputs, self.input_hw, meta.num_joints, meta["flip_index"],
                                   self.config.fast)
        people, scores = group_people(heat, tags, box, meta["joint_order"], self.config)
        t3 = t()
        self.times.add("pre", t1 - t0)
        self.times.add("infer", t2 - t1)
        self.times.add("group", t3 - t2)
        self.times.frames += 1
        raw = None
        if keep_raw:
            raw = {"input": x, "output0": outputs[0][0], "output1": outputs[0][1]}
        return Prediction(people, scores, box, raw)
