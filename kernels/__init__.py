"""Numba kernels that turn LitePose heatmaps and tags into people (numpy in, numpy out).

``group`` reproduces the test-time ``HeatmapParser.parse`` of LitePose / HigherHRNet
(max-pool NMS, top-k, tag matching with an exact Munkres solver, adjust, score, refine).
Nothing here knows about TVM, OpenCV or files.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import _cache  # noqa: F401  (first: points Numba's cache at a source-keyed folder)
from .grouping import match_by_tag
from .munkres import munkres
from .peaks import top_peaks
from .refine import adjust as adjust_people
from .refine import person_scores, transform_back
from .refine import refine as refine_people

__all__ = ["COCO_JOINT_ORDER", "group", "munkres", "transform_back"]

# LitePose visits joints in COCO's order; CrowdPose uses its first 14 entries.
COCO_JOINT_ORDER = (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)


@njit(cache=True, nogil=True)
def _group(heatmaps, tags, joint_order, do_adjust, do_refine, detection_threshold,
           tag_threshold, max_people, nms_kernel):
    count, vals, ys, xs = top_peaks(heatmaps, max_people, nms_kernel, detection_threshold)
    n_j, k = vals.shape
    cand_tags = np.zeros((n_j, k, tags.shape[3]), np.float32)
    for j in range(n_j):
        for r in range(count[j]):
            cand_tags[j, r] = tags[j, ys[j, r], xs[j, r]]
    people = match_by_tag(count, vals, ys, xs, cand_tags, joint_order, tag_threshold,
                          max_people, True)
    if do_adjust:
        adjust_people(people, heatmaps)
    scores = person_scores(people)
    if do_refine:
        refine_people(people, heatmaps, tags)
    return people, scores


def group(heatmaps: np.ndarray, tags: np.ndarray, *, adjust: bool = True, refine: bool = True,
          detection_threshold: float = 0.1, tag_threshold: float = 1.0, max_people: int = 30,
          nms_kernel: int = 5, joint_order: tuple[int, ...] | None = None,
          ) -> tuple[np.ndarray, np.ndarray]:
    """Group joint candidates into people, exactly as LitePose's ``HeatmapParser.parse``.

    Parameters
    ----------
    heatmaps : (J, H, W) float32
        Merged heatmaps.
    tags : (J, H, W, L) float32
        Associative-embedding tags (L = 2 with flip test).
    adjust, refine : bool
        Quarter-pixel adjustment; filling missing joints from the full maps.
    detection_threshold : float
        Candidates need a value strictly above it.
    tag_threshold : float
        A candidate joins a person when its un-rounded tag distance is below it.
    max_people : int
        Candidates per joint (top-k) and people matched against.
    nms_kernel : int
        Odd max-pool window of the NMS.
    joint_order : tuple of int, optional
        Order in which joints are grouped; default: COCO's order, first J entries.

    Returns
    -------
    people : (P, J, 3 + L) float32
        Rows ``[x, y, val, tag...]`` in map coordinates; absent joints are zero rows.
    scores : (P,) float32
        Mean joint value per person, taken after adjust and before refine.
    """
    heatmaps = np.ascontiguousarray(heatmaps, dtype=np.float32)
    tags = np.ascontiguousarray(tags, dtype=np.float32)
    if heatmaps.ndim != 3 or tags.ndim != 4 or tags.shape[:3] != heatmaps.shape:
        raise ValueError(f"heatmaps must be (J, H, W) and tags (J, H, W, L); "
                         f"got {heatmaps.shape} and {tags.shape}")
    n_j = heatmaps.shape[0]
    if joint_order is None:
        if n_j > len(COCO_JOINT_ORDER):
            raise ValueError(f"no default joint order for {n_j} joints; pass joint_order")
        joint_order = COCO_JOINT_ORDER[:n_j]
    order = np.asarray(joint_order, dtype=np.int64)
    if sorted(order.tolist()) != list(range(n_j)):
        raise ValueError(f"joint_order {list(joint_order)} is not a permutation of 0..{n_j - 1}")
    if nms_kernel < 1 or nms_kernel % 2 == 0:
        raise ValueError(f"nms_kernel must be a positive odd number, got {nms_kernel}")
    if max_people < 1:
        raise ValueError(f"max_people must be >= 1, got {max_people}")
    return _group(heatmaps, tags, order, adjust, refine, float(detection_threshold),
                  float(tag_threshold), int(max_people), int(nms_kernel))
