"""From the two network outputs to people in image coordinates (spec §3.3-3.5)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

import kernels

from .preprocess import Letterbox


@dataclass(frozen=True)
class DecodeConfig:
    """Test-time options; the defaults are LitePose's ``valid.py`` settings (flip aside)."""

    flip: bool = False
    fast: bool = False  # group at H/2 (LitePose's Jetson demo) instead of input resolution
    adjust: bool = True
    refine: bool = True
    detection_threshold: float = 0.1
    tag_threshold: float = 1.0
    max_people: int = 30
    nms_kernel: int = 5


def upsample(maps: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize with half-pixel centres (PyTorch ``align_corners=False``).

    maps (C, h, w) float32 -> (C, H, W) float32. One 2-D resize per channel: OpenCV's
    single-channel path is ~5x faster than its many-channel one (same accuracy against PyTorch).
    """
    h, w = size_hw
    if maps.shape[1:] == (h, w):
        return maps
    out = np.empty((maps.shape[0], h, w), np.float32)
    for c in range(maps.shape[0]):
        cv2.resize(np.ascontiguousarray(maps[c], np.float32), (w, h), dst=out[c],
                   interpolation=cv2.INTER_LINEAR)
    return out


def heads_to_maps(out0: np.ndarray, out1: np.ndarray, num_joints: int,
                  flip_index: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Average the two heads at H/2: heatmaps (J, H/2, W/2) and tags (J, H/2, W/2).

    out0 (1, 2J, H/4, W/4), out1 (1, J, H/2, W/2). With ``flip_index`` the outputs come from the
    mirrored image: they are mirrored back and their joints permuted.
    """
    j = num_joints
    o0 = upsample(out0[0], out1.shape[2:])
    o1 = out1[0]
    if flip_index is not None:
        flip_index = np.asarray(flip_index, np.intp)  # a tuple would index several axes
        o0 = o0[:, :, ::-1]
        o1 = o1[:, :, ::-1]
        heat = (o0[:j][flip_index] + o1[:j][flip_index]) / 2
        tags = o0[j:2 * j][flip_index]
    else:
        heat = (o0[:j] + o1[:j]) / 2
        tags = o0[j:2 * j]
    return np.ascontiguousarray(heat, np.float32), np.ascontiguousarray(tags, np.float32)


def merge_outputs(outputs, input_hw: tuple[int, int], num_joints: int, flip_index: list[int],
                  fast: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (J, H, W) and tags (J, H, W, L) for grouping from one or two forward passes.

    ``outputs`` is ``[(out0, out1)]`` or, with flip test, ``[(out0, out1), (flipped0, flipped1)]``.
    Maps are projected to the input size unless ``fast`` (then they stay at H/2).
    """
    size = (input_hw[0] // 2, input_hw[1] // 2) if fast else input_hw
    heats, tags = [], []
    for k, (out0, out1) in enumerate(outputs):
        heat, tag = heads_to_maps(out0, out1, num_joints, flip_index if k else None)
        heats.append(upsample(heat, size))
        tags.append(upsample(tag, size))
    heat = heats[0] if len(heats) == 1 else (heats[0] + heats[1]) / 2
    return np.ascontiguousarray(heat, np.float32), np.stack(tags, axis=-1)


def group_people(heatmaps: np.ndarray, tags: np.ndarray, box: Letterbox, joint_order: list[int],
                 config: DecodeConfig) -> tuple[np.ndarray, np.ndarray]:
    """Group and map back to the original image: people (P, J, 3 + L), scores (P,)."""
    people, scores = kernels.group(
        heatmaps, tags, adjust=config.adjust, refine=config.refine,
        detection_threshold=config.detection_threshold, tag_threshold=config.tag_threshold,
        max_people=config.max_people, nms_kernel=config.nms_kernel, joint_order=tuple(joint_order))
    map_scale = box.height / heatmaps.shape[1]
    kernels.transform_back(people, box.scale, box.center_x, box.center_y, box.width, box.height,
                           map_scale)
    return people, scores
