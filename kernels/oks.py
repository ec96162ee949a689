"""Matching people of consecutive frames: the OKS between every track and every detection, and
a greedy one-to-one assignment by OKS (as mmpose's pose tracker and PoseTrack baselines do)."""

from __future__ import annotations

import numpy as np
from numba import njit

FAR_EXPONENT = 16.0  # a joint pair with exp(-e) < e^-16 (1e-7) adds 0; so does a pair of people
# whose boxes lie so far apart that every joint pair does


@njit(cache=True, nogil=True)
def oks_matrix(tracks: np.ndarray, people: np.ndarray, sigmas: np.ndarray,
               joint_threshold: float, min_area: float) -> np.ndarray:
    """Object keypoint similarity of each track with each detection.

    Parameters
    ----------
    tracks : (T, J, 3) float32
        Where each track's joints are expected, ``[x, y, score]`` in pixels.
    people : (P, J, 3) float32
        This frame's detections, same layout.
    sigmas : (J,) float64
        The dataset's per-joint OKS sigmas.
    joint_threshold : float
        A joint counts where its score is above this in both.
    min_area : float
        Floor of a track's scale (the area of the box around its joints), pixels squared.

    Returns
    -------
    (T, P) float32
        COCO's OKS, ``mean exp(-d^2 / (2 area (2 sigma)^2))`` over the joints both have (terms
        under ``exp(-FAR_EXPONENT)`` taken as 0); 0 for pairs that share no joint.
    """
    n_t, n_j = tracks.shape[0], tracks.shape[1]
    n_p = people.shape[0]
    out = np.zeros((n_t, n_p), np.float32)
    var = (2.0 * sigmas) ** 2
    far = 2.0 * var.max() * FAR_EXPONENT  # / area: a pair farther apart than this shares ~0
    t_box, t_area = _boxes(tracks, joint_threshold, min_area)
    p_box, _ = _boxes(people, joint_threshold, min_area)
    p_seen = people[:, :, 2] > joint_threshold
    scale = np.empty(n_j)
    for t in range(n_t):
        area = t_area[t]
        for j in range(n_j):
            scale[j] = 1.0 / (2.0 * area * var[j])
        for p in range(n_p):
            gx = max(0.0, p_box[p, 0] - t_box[t, 2], t_box[t, 0] - p_box[p, 2])
            gy = max(0.0, p_box[p, 1] - t_box[t, 3], t_box[t, 1] - p_box[p, 3])
            if gx * gx + gy * gy > far * area:  # every joint pair is at least this far apart
                continue
            total, count = 0.0, 0
            for j in range(n_j):
                if tracks[t, j, 2] > joint_threshold and p_seen[p, j]:
                    dx = tracks[t, j, 0] - people[p, j, 0]
                    dy = tracks[t, j, 1] - people[p, j, 1]
                    e = (dx * dx + dy * dy) * scale[j]
                    if e < FAR_EXPONENT:
                        total += np.exp(-e)
                    count += 1
            if count:
                out[t, p] = total / count
    return out


@njit(cache=True, nogil=True)
def _boxes(kp: np.ndarray, joint_threshold: float, min_area: float):
    """(N, 4) ``x0, y0, x1, y1`` around each person's joints above the threshold (an empty,
    inverted box for none) and (N,) its area floored at ``min_area``."""
    n = kp.shape[0]
    box = np.empty((n, 4))
    area = np.empty(n)
    for i in range(n):
        x0, y0, x1, y1 = np.inf, np.inf, -np.inf, -np.inf
        for j in range(kp.shape[1]):
            if kp[i, j, 2] > joint_threshold:
                x0, x1 = min(x0, kp[i, j, 0]), max(x1, kp[i, j, 0])
                y0, y1 = min(y0, kp[i, j, 1]), max(y1, kp[i, j, 1])
        box[i] = x0, y0, x1, y1
        area[i] = max((x1 - x0) * (y1 - y0), min_area) if x1 >= x0 else min_area
    return box, area


@njit(cache=True, nogil=True)
def greedy_match(similarity: np.ndarray, threshold: float) -> np.ndarray:
    """One-to-one assignment, most similar pair first, of pairs at or above ``threshold``.

    Parameters
    ----------
    similarity : (T, P) float32
    threshold : float

    Returns
    -------
    (P,) int64
        The track matched to each detection, -1 for none. Ties go to the lower track, then
        the lower detection.
    """
    n_t, n_p = similarity.shape
    flat = similarity.ravel()
    keep = np.nonzero(flat >= threshold)[0]
    # stable sort on -similarity: equal values keep row-major (track, detection) order
    order = keep[np.argsort(-flat[keep], kind="mergesort")]
    match = np.full(n_p, -1, np.int64)
    taken = np.zeros(n_t, np.bool_)
    for k in order:
        t, p = k // n_p, k % n_p
        if not taken[t] and match[p] < 0:
            taken[t] = True
            match[p] = t
    return match
