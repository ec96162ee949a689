"""Keypoint metrics as the papers report them: CrowdPose through ``xtcocotools``
(``keypoints_crowd``: OKS over 0.53 x the box area, AP easy / medium / hard by ``crowdIndex``)
and COCO through ``pycocotools``; annotation files checked before anything runs."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compile.model.zoo import DATASETS
from runtime.atomic import write_json_atomic

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Protocol:
    """How one dataset is scored: the library, its ``iouType``, the OKS sigmas, the stat names."""

    library: str
    iou_type: str
    sigmas: tuple[float, ...]
    stats: tuple[str, ...]  # names of ``COCOeval.stats`` in order
    use_area: bool  # OKS scale: the annotation's ``area`` (COCO) or 0.53 * box w * h (CrowdPose)
    headline: tuple[str, ...]  # what the paper's tables show


PROTOCOLS: dict[str, Protocol] = {
    "crowdpose": Protocol(
        "xtcocotools", "keypoints_crowd",
        DATASETS["crowdpose"].oks_sigmas,
        ("AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP easy", "AP medium", "AP hard"),
        use_area=False, headline=("AP", "AP50", "AP75", "AR", "AP easy", "AP medium", "AP hard")),
    "coco": Protocol(
        "pycocotools", "keypoints",
        DATASETS["coco"].oks_sigmas,
        ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"),
        use_area=True, headline=("AP", "AP50", "AP75", "APm", "APl", "AR")),
}


@dataclass(frozen=True)
class KeypointSet:
    """A keypoint annotation file (COCO format): its images by id, their people, the joints."""

    path: Path
    dataset: str
    data: dict  # the parsed JSON

    @property
    def images(self) -> list[dict]:
        """Image entries sorted by id."""
        return sorted(self.data["images"], key=lambda im: im["id"])

    def subset(self, image_ids: list[int]) -> dict:
        """The annotation JSON restricted to ``image_ids`` (xtcocotools splits CrowdPose by
        reading the whole ground-truth file, so an evaluated subset needs a file of its own)."""
        keep = set(image_ids)
        return {**self.data, "images": [im for im in self.data["images"] if im["id"] in keep],
                "annotations": [a for a in self.data["annotations"] if a["image_id"] in keep]}


def _joint_count(data: dict) -> int | None:
    for cat in data.get("categories", []):
        if cat.get("id") == 1 and cat.get("keypoints"):
            return len(cat["keypoints"])
    for ann in data.get("annotations", []):
        return len(ann["keypoints"]) // 3
    return None


def load_keypoint_set(path: str | Path, dataset: str, num_joints: int) -> KeypointSet:
    """Read and check an annotation file for ``dataset`` ("crowdpose" or "coco").

    ``ValueError`` naming the file and what is wrong: not JSON, no images, people with another
    joint count than the model's (the other dataset's file), CrowdPose images without
    ``crowdIndex``, COCO people without ``area``.
    """
    if dataset not in PROTOCOLS:
        raise ValueError(f"unknown dataset {dataset!r}; valid choices: {', '.join(PROTOCOLS)}")
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"annotation file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"annotation file {path} is not JSON: {err}") from None
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if not isinstance(data, dict) or missing:
        raise ValueError(f"{path} is not a COCO-format keypoint file (no {', '.join(missing)} list)")
    if not data["images"]:
        raise ValueError(f"{path} lists no images: nothing to evaluate")
    joints = _joint_count(data)
    if joints != num_joints:
        other = {14: " (CrowdPose's count)", 17: " (COCO's count)"}.get(joints, "")
        raise ValueError(f"{path} annotates people with {joints} joints{other}; the model predicts "
                         f"{num_joints} ({dataset}): use the {dataset} annotations or an artifact "
                         f"built with the matching --dataset")
    bad = [a.get("id") for a in data["annotations"] if len(a.get("keypoints", ())) != 3 * joints]
    if bad:
        raise ValueError(f"{path}: {len(bad)} annotations do not have {joints} x 3 keypoint values "
                         f"(ids {bad[:5]})")
    if dataset == "crowdpose":
        bad = [im.get("id") for im in data["images"] if "crowdIndex" not in im]
        if bad:
            raise ValueError(f"{path}: {len(bad)} images have no crowdIndex (ids {bad[:5]}); "
                             "CrowdPose's easy/medium/hard split needs it")
    elif any("area" not in a for a in data["annotations"]):
        raise ValueError(f"{path}: COCO annotations need an 'area' (the OKS scale)")
    return KeypointSet(path, dataset, data)


def evaluate_files(dataset: str, ground_truth: str | Path, results: str | Path) -> dict[str, float]:
    """Score a results file against a ground-truth file with the dataset's library and
    protocol: ``{stat name: value}`` (-1 where the split has no ground truth)."""
    proto = PROTOCOLS[dataset]
    if proto.library == "xtcocotools":
        from xtcocotools.coco import COCO
        from xtcocotools.cocoeval import COCOeval
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    log = io.StringIO()  # both libraries print progress to stdout
    with contextlib.redirect_stdout(log):
        gt = COCO(str(ground_truth))
        anns = json.loads(Path(results).read_text())
        dt = gt.loadRes(str(results)) if anns else _no_detections(gt, str(results))
        sigmas = np.array(proto.sigmas)
        if proto.library == "xtcocotools":
            ev = COCOeval(gt, dt, proto.iou_type, sigmas, use_area=proto.use_area)
        else:
            ev = COCOeval(gt, dt, proto.iou_type)
            ev.params.kpt_oks_sigmas = sigmas
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    logger.debug("%s", log.getvalue())
    return {name: float(v) for name, v in zip(proto.stats, ev.stats, strict=True)}


def _no_detections(gt, results_path: str):
    """An empty results object (``loadRes`` cannot read an empty list): every person is missed."""
    res = type(gt)()
    res.dataset = {"images": list(gt.dataset["images"]), "categories": gt.dataset["categories"],
                   "annotations": []}
    res.createIndex()
    if hasattr(gt, "anno_file") and len(gt.anno_file) == 1:  # xtcocotools keeps (gt, results)
        gt.anno_file.append(results_path)
    return res


def evaluate_results(keypoints: KeypointSet, image_ids: list[int], results: list[dict],
                     folder: Path, name: str) -> dict[str, float]:
    """Write ``folder/ground_truth.json`` (the evaluated images) and ``folder/NAME.json``
    (the results), atomically, and score them."""
    gt_path, res_path = folder / "ground_truth.json", folder / f"{name}.json"
    write_json_atomic(gt_path, keypoints.subset(image_ids))
    write_json_atomic(res_path, results)
    return evaluate_files(keypoints.dataset, gt_path, res_path)
