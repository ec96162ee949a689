"""Accuracy of a compiled artifact: the runtime's own pipeline over a keypoint set (on this
machine or on a board from the tracker), COCO keypoint results, the dataset's metrics, and
optionally the PyTorch model under LitePose's ``valid.py`` protocol beside it."""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compile.boards.remote import RemoteArtifact, check_artifact, is_virtual_board
from compile.boards.tracker import check_tracker, resolve_tracker
from compile.frontend.reference import load_reference
from compile.targets import get_target
from runtime.atomic import write_bytes_atomic, write_json_atomic
from runtime.library import elf_machine, this_machine
from runtime.meta import ArtifactMeta
from runtime.pipeline import Pipeline
from runtime.postprocess import DecodeConfig, group_people, merge_outputs
from runtime.preprocess import preprocess
from runtime.results import coco_results

from .metrics import PROTOCOLS, evaluate_results, load_keypoint_set

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalArgs:
    artifact: Path
    images: Path
    annotations: Path
    output: Path
    checkpoint: str | None = None  # for --reference, when the recorded path is elsewhere
    flip: bool = False
    fast: bool = False
    max_images: int | None = None
    tracker: str | None = None  # a board from the tracker runs the artifact; pre/post stay here
    key: str | None = None
    reference: bool = False


@dataclass
class EvalReport:
    """What was evaluated, how, and the metrics of each row ("artifact", "pytorch")."""

    dataset: str
    artifact: str
    engine: str
    images: int
    missing: list[str]
    options: dict
    weights: dict
    rows: dict[str, dict[str, float]] = field(default_factory=dict)

    def difference(self) -> dict[str, float] | None:
        """artifact - pytorch for every stat, when both rows exist."""
        if {"artifact", "pytorch"} <= set(self.rows):
            a, p = self.rows["artifact"], self.rows["pytorch"]
            return {k: a[k] - p[k] for k in a}
        return None

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "artifact": self.artifact, "engine": self.engine,
                "images": self.images, "missing_images": self.missing, "options": self.options,
                "weights": self.weights, "metrics": self.rows, "difference": self.difference()}

    def table(self) -> str:
        """The metrics as a Markdown table (percent, as the papers print them)."""
        names = PROTOCOLS[self.dataset].stats
        rows = dict(self.rows)
        if (diff := self.difference()) is not None:
            rows["difference"] = diff
        lines = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for label, row in rows.items():
            cells = [("n/a" if row[n] < 0 and label != "difference" else f"{100 * row[n]:.1f}")
                     for n in names]
            lines.append(f"| {ROW_LABELS.get(label, label)} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


ROW_LABELS = {"artifact": "compiled (letterbox)", "pytorch": "PyTorch (valid.py)",
              "difference": "difference"}


def reference_size(image_hw: tuple[int, int], size: int) -> tuple[int, int]:
    """``valid.py``'s per-image input: short side ``size``, long side up to a multiple of 64."""
    h, w = image_hw
    up64 = lambda x: int(math.floor((x + 63) / 64) * 64)  # noqa: E731  (the reference's rounding)
    return (up64(size / w * h), size) if w < h else (size, up64(size / h * w))


class ReferenceModel:
    """The PyTorch model of the artifact's weights, run at each image's own shape."""

    def __init__(self, meta: ArtifactMeta, config: DecodeConfig, checkpoint: str | None = None):
        self.meta, self.config = meta, dataclasses.replace(config, fast=False)
        self.model = load_reference(meta, checkpoint).model
        self.size = min(meta.input_hw)

    def predict(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """People (P, J, 3 + L) in image pixels and their scores."""
        import torch

        meta, spec = self.meta, self.meta.input
        input_hw = reference_size(image_bgr.shape[:2], self.size)
        x, box = preprocess(image_bgr, input_hw, spec.mean, spec.std, spec.scale)
        inputs = [x, np.ascontiguousarray(x[:, :, :, ::-1])] if self.config.flip else [x]
        with torch.no_grad():
            outputs = [tuple(o.numpy() for o in self.model(torch.from_numpy(i))) for i in inputs]
        heat, tags = merge_outputs(outputs, input_hw, meta.num_joints, meta.flip_index)
        return group_people(heat, tags, box, meta.joint_order, self.config)


def _engine(args: EvalArgs, meta: ArtifactMeta):
    """The local runtime, or a board when asked for or when the library is for another CPU."""
    library = meta.library_path(args.artifact)
    if not (args.tracker or args.key) and elf_machine(library) == this_machine():
        from runtime.artifact import Artifact

        return Artifact(args.artifact), "TVM on this machine"
    preset = get_target(meta.target.name)
    tracker = resolve_tracker(args.tracker, args.key, preset.rpc_key, local_default=True)
    check_artifact(Path(args.artifact), preset.name)
    check_tracker(tracker)
    label = " (emulated board)" if is_virtual_board(tracker) else ""
    return (RemoteArtifact(tracker, Path(args.artifact), meta),
            f"TVM on board {tracker.key}@{tracker.host}:{tracker.port}{label}")


def evaluate(args: EvalArgs, progress: bool = True, engine=None) -> EvalReport:
    """Run the artifact (and with ``reference`` the PyTorch model) over the images, write
    ``results*.json``, ``ground_truth.json``, ``metrics.json`` and ``metrics.md`` to ``output``.

    ``engine`` (anything with the artifact's ``meta`` and ``infer``) replaces the artifact's
    library: the default is the local runtime, or a board for another CPU's library.
    """
    import cv2
    from tqdm import tqdm

    meta = ArtifactMeta.read(args.artifact)
    keypoints = load_keypoint_set(args.annotations, meta.dataset, meta.num_joints)
    images = keypoints.images[:args.max_images] if args.max_images else keypoints.images
    if not Path(args.images).is_dir():
        raise ValueError(f"image folder {args.images} does not exist")
    config = DecodeConfig(flip=args.flip, fast=args.fast)
    engine, engine_label = _engine(args, meta) if engine is None else (engine, type(engine).__name__)
    pipeline = Pipeline(engine, config)
    reference = ReferenceModel(meta, config, args.checkpoint) if args.reference else None
    results: dict[str, list[dict]] = {"artifact": [], **({"pytorch": []} if reference else {})}
    missing = []
    for entry in tqdm(images, unit="image", disable=not progress, dynamic_ncols=True):
        path = Path(args.images) / entry["file_name"]
        image = (cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
                 if path.is_file() else None)
        if image is None:  # its people stay in the ground truth: they count as missed
            logger.warning("image %s is missing or unreadable: its people count as missed", path)
            missing.append(entry["file_name"])
            continue
        x, box = pipeline.prepare(image)
        pred = pipeline.decode(pipeline.infer(x), box)
        results["artifact"] += coco_results(pred.people, pred.scores, entry["id"])
        if reference:
            results["pytorch"] += coco_results(*reference.predict(image), entry["id"])
    if len(missing) == len(images):
        raise ValueError(f"none of the {len(images)} images could be read from {args.images} "
                         f"(first: {missing[0]})")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    ids = [im["id"] for im in images]
    h, w = meta.input_hw
    report = EvalReport(
        meta.dataset, str(args.artifact), engine_label, len(images), missing,
        {"flip": args.flip, "fast": args.fast, "input": f"{h}x{w} letterbox",
         "reference": f"valid.py: short side {min(h, w)}, long side padded to a multiple of 64"
         if reference else None},
        dataclasses.asdict(meta.weights))
    for name, found in results.items():
        report.rows[name] = evaluate_results(keypoints, ids, found, out,
                                             "results" if name == "artifact" else f"results-{name}")
    write_json_atomic(out / "metrics.json", report.to_dict(), indent=2)
    write_bytes_atomic(out / "metrics.md", (report.table() + "\n").encode())
    return report
