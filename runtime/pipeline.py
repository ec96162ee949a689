"""One frame through the kit, as three stages: pre-process, infer (network passes and, in the
library, the merge of the heads), decode (group, map back); and the per-stage timing statistics."""

from __future__ import annotations

import dataclasses
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from .artifact import Artifact, Maps
from .postprocess import DecodeConfig, group_people, merge_outputs
from .preprocess import Letterbox, preprocess
from .smoothing import KeypointSmoother
from .tracking import Tracker


@dataclass
class Prediction:
    """People in original-image pixels, rows ``[x, y, val, tag...]``, with their scores."""

    people: np.ndarray  # (P, J, 3 + L) float32
    scores: np.ndarray  # (P,) float32
    box: Letterbox
    raw: dict | None = None  # input and outputs, kept for --save-raw
    track_ids: np.ndarray | None = None  # (P,) int64 with tracking (-1: no track), else None


@dataclass
class StageStats:
    """Per-frame seconds per stage, seconds spent waiting on queues, dropped frames.

    Medians skip the first ``warmup`` frames of each stage (VM and JIT warm-up).
    """

    warmup: int = 2
    samples: dict = field(default_factory=lambda: defaultdict(list))
    waits: dict = field(default_factory=lambda: defaultdict(float))
    frames: int = 0
    dropped: int = 0
    wall: float = 0.0
    finished: list = field(default_factory=list)  # perf_counter() as each frame is written

    def add(self, stage: str, seconds: float) -> None:
        self.samples[stage].append(seconds)

    def wait(self, stage: str, seconds: float) -> None:
        self.waits[stage] += seconds

    def steady_fps(self) -> float:
        """Frames per second after the warm-up frames (all frames if there are too few)."""
        t = self.finished[self.warmup:] if len(self.finished) > self.warmup + 1 else self.finished
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    def median_ms(self, stage: str) -> float:
        s = self.samples[stage]
        s = s[self.warmup:] if len(s) > self.warmup else s
        return statistics.median(s) * 1e3 if s else 0.0

    def to_dict(self) -> dict:
        wall = max(self.wall, 1e-9)
        stages = {k: {"median_ms": round(self.median_ms(k), 3), "frames": len(v),
                      "busy_pct": round(100 * sum(v) / wall, 1),
                      "queue_wait_s": round(self.waits.get(k, 0.0), 3)}
                  for k, v in self.samples.items()}
        busy = sum(sum(v) for v in self.samples.values())
        return {"frames": self.frames, "wall_s": round(self.wall, 3),
                "frames_per_s": round(self.frames / wall, 3),
                "steady_frames_per_s": round(self.steady_fps(), 3), "dropped_frames": self.dropped,
                "warmup_frames_excluded": self.warmup,
                "overlap": round(busy / wall, 2),  # > 1: stages ran at the same time
                "stages": stages}

    def table(self) -> str:
        d = self.to_dict()
        lines = [f"{d['frames']} frames in {d['wall_s']:.2f} s: {d['frames_per_s']:.2f} frames/s "
                 f"({d['steady_frames_per_s']:.2f} after warm-up), dropped {d['dropped_frames']}, "
                 f"stage overlap {d['overlap']:.2f}x",
                 f"  {'stage':8s} {'median ms':>10s} {'busy %':>7s} {'queue wait s':>13s}"]
        for k, s in d["stages"].items():
            lines.append(f"  {k:8s} {s['median_ms']:>10.2f} {s['busy_pct']:>7.1f} "
                         f"{s['queue_wait_s']:>13.2f}")
        return "\n".join(lines)


@dataclass
class Inference:
    """What the infer stage hands on: the library's merged maps; or the network's outputs as
    library tensors for the library's merge on the post thread; or (an artifact without merge
    functions, schema 2) the network outputs of each pass for the CPU merge."""

    maps: Maps | None = None
    outputs: list | None = None  # [(out0, out1)] or, with flip test, two pairs
    passes: tuple | None = None  # Artifact.passes: merged by Pipeline.merge
    keep_raw: bool = False

    @property
    def raw(self) -> tuple[np.ndarray, np.ndarray] | None:
        return self.maps.raw if self.maps is not None else self.outputs[0]


class Pipeline:
    """Runs frames through an artifact with a decoding configuration, stage by stage.

    The merge of the heads runs in the library when the artifact has a merge function for
    the configuration, else on the CPU in ``decode``. The library's merge is part of the infer
    stage, or with ``merge_on_post`` (CPU artifacts; the pipelined runner sets it) a step of its
    own on the post thread, which then leaves the inference thread the network alone.
    """

    def __init__(self, artifact: Artifact, config: DecodeConfig, tracker: Tracker | None = None,
                 smoother: KeypointSmoother | None = None):
        self.artifact = artifact
        self.config = config
        self.tracker, self.smoother = tracker, smoother  # stateful: frames in order, one source
        meta = artifact.meta
        self.input_hw = meta.input_hw
        self.input = meta.input
        # an engine without infer_maps (a stand-in such as the tests' oracle) merges on the CPU
        self.merge_spec = (meta.merge_for(config.flip, config.fast)
                           if hasattr(artifact, "infer_maps") else None)
        self.merge_on_post = False

    @property
    def can_merge_on_post(self) -> bool:
        """The library merges, on the CPU: any thread may run it (a GPU's queue stays with the
        inference thread)."""
        return (self.merge_spec is not None and hasattr(self.artifact, "passes")
                and self.artifact.meta.target.device == "cpu")

    def prepare(self, image_bgr: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """BGR image -> network input (1, 3, H, W) float32 and its letterbox."""
        spec = self.input
        return preprocess(image_bgr, self.input_hw, spec.mean, spec.std, spec.scale)

    def infer(self, x: np.ndarray, keep_raw: bool = False) -> Inference:
        """The library's merged maps (one pass, two with flip test); without a merge function,
        the network's outputs, and those of the mirrored input with flip test."""
        if self.merge_spec is not None and self.merge_on_post:
            return Inference(passes=self.artifact.passes(x, self.config.flip), keep_raw=keep_raw)
        if self.merge_spec is not None:
            return Inference(maps=self.artifact.infer_maps(x, self.config.flip, self.config.fast,
                                                           keep_raw))
        outputs = [self.artifact.infer(x)]
        if self.config.flip:
            outputs.append(self.artifact.infer(np.ascontiguousarray(x[:, :, :, ::-1])))
        return Inference(outputs=outputs)

    def merge(self, inference: Inference) -> Inference:
        """The library's merge of network outputs the infer stage left (``merge_on_post``)."""
        if inference.passes is None:
            return inference
        return Inference(maps=self.artifact.merge(inference.passes, self.config.flip,
                                                  self.config.fast, inference.keep_raw))

    def decode(self, inference: Inference, box: Letterbox, x: np.ndarray | None = None) -> Prediction:
        """Group people (merging the heads first when the library did not), map them to the
        image; ``x`` is kept as raw with the first pass's outputs."""
        meta = self.artifact.meta
        inference = self.merge(inference)
        if inference.maps is not None:
            heat, tags = inference.maps.heatmaps, inference.maps.tags
        else:
            heat, tags = merge_outputs(inference.outputs, self.input_hw, meta.num_joints,
                                       meta.flip_index, self.config.fast)
        people, scores = group_people(heat, tags, box, meta.joint_order, self.config)
        raw = None
        if x is not None:
            out0, out1 = inference.raw
            raw = {"input": x, "output0": out0, "output1": out1}
        return Prediction(people, scores, box, raw)

    def track(self, pred: Prediction | None) -> Prediction | None:
        """Give the next frame's people their track ids (and smoothed joints with a smoother);
        frames must come in order, ``None`` for one that could not be read. Without a tracker
        ``pred`` is returned as it is."""
        if self.tracker is None:
            return pred
        j = len(self.tracker.sigmas)
        kp = pred.people[:, :, :3] if pred is not None else np.zeros((0, j, 3), np.float32)
        ids = self.tracker.update(kp)
        people = None if pred is None else pred.people
        if self.smoother is not None:  # fed every frame, an empty one too: its clock runs on
            smoothed = self.smoother(ids, kp, self.tracker.config.joint_threshold)
            if people is not None:
                people = people.copy()
                people[:, :, :2] = smoothed[:, :, :2]
        return None if pred is None else dataclasses.replace(pred, people=people, track_ids=ids)
