"""MODELS registry: the LitePose variants (architecture file, input size, joints, drawing data)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent / "mobile_configs"

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Dataset:
    """Keypoint definition of a dataset: names, flip permutation, skeleton, grouping order,
    the OKS sigmas of its metric (also what the runtime's tracker matches people by)."""

    name: str
    keypoints: tuple[str, ...]
    flip_index: tuple[int, ...]
    skeleton: tuple[tuple[int, int], ...]  # 0-based joint index pairs, for drawing
    joint_order: tuple[int, ...]  # order in which grouping visits the joints
    oks_sigmas: tuple[float, ...]  # per joint, as the dataset's COCOeval uses them

    @property
    def num_joints(self) -> int:
        return len(self.keypoints)


_COCO_ORDER = (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)

DATASETS: dict[str, Dataset] = {
    "crowdpose": Dataset(
        name="crowdpose",
        keypoints=(
            "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
            "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
            "right_ankle", "head", "neck",
        ),
        flip_index=(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13),
        skeleton=(
            (12, 13), (13, 0), (13, 1), (0, 1), (0, 6), (1, 7), (6, 7), (0, 2), (2, 4),
            (1, 3), (3, 5), (6, 8), (8, 10), (7, 9), (9, 11),
        ),
        joint_order=_COCO_ORDER[:14],
        oks_sigmas=tuple(s / 10 for s in (.79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89,
                                          .89, .79, .79)),
    ),
    "coco": Dataset(
        name="coco",
        keypoints=(
            "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
            "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
            "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
        ),
        flip_index=(0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15),
        skeleton=(
            (0, 1), (1, 2), (2, 0), (1, 3), (2, 4), (3, 5), (4, 6), (5, 6), (5, 11), (6, 12),
            (11, 12), (5, 7), (7, 9), (6, 8), (8, 10), (11, 13), (13, 15), (12, 14), (14, 16),
        ),
        joint_order=_COCO_ORDER,
        oks_sigmas=tuple(s / 10 for s in (.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62,
                                          1.07, 1.07, .87, .87, .89, .89)),
    ),
}


@dataclass(frozen=True)
class ModelSpec:
    """One LitePose variant: its released architecture file and its nominal input size."""

    name: str
    arch_file: str
    input_size: int
    paper_gmacs: float  # what the LitePose README quotes (ptflops convention)

    def arch(self) -> dict:
        """The released architecture dict (``mobile_configs/search-*.json``)."""
        return json.loads((CONFIG_DIR / self.arch_file).read_text())


MODELS: dict[str, ModelSpec] = {
    "xs": ModelSpec("xs", "search-XS.json", 256, 1.2),
    "s": ModelSpec("s", "search-S.json", 448, 5.0),
    "m": ModelSpec("m", "search-M.json", 448, 7.8),
    "l": ModelSpec("l", "search-L.json", 512, 13.7),
}


def _choose(kind: str, registry: dict, name: str):
    key = name.lower()
    if key not in registry:
        raise ValueError(f"unknown {kind} {name!r}; valid choices: {', '.join(registry)}")
    return registry[key]


def get_model(name: str) -> ModelSpec:
    """Look a model up by name, or raise ``ValueError`` listing the valid names."""
    return _choose("model", MODELS, name)


def get_dataset(name: str) -> Dataset:
    """Look a dataset up by name, or raise ``ValueError`` listing the valid names."""
    return _choose("dataset", DATASETS, name)


def parse_input_size(text: str | None, default: int) -> tuple[int, int]:
    """Parse ``"HxW"`` (or ``"S"``) into ``(H, W)``; both must be positive multiples of 16."""
    if text is None:
        h = w = default
    else:
        parts = text.lower().split("x")
        try:
            h, w = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (None, None)
        except ValueError:
            h = w = None
        if h is None:
            raise ValueError(f"input size {text!r} is not of the form HxW (e.g. 256x256)")
    for side in (h, w):
        if side <= 0 or side % 16:
            raise ValueError(
                f"input size {h}x{w}: H and W must be positive multiples of 16 "
                f"(the network downsamples by 16); e.g. {max(16, round(side / 16) * 16)}"
            )
    return h, w
