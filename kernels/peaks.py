"""Max-pool NMS and top-k candidate extraction over heatmaps (LitePose ``HeatmapParser.top_k``)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def is_peak(hm: np.ndarray, y: int, x: int, radius: int) -> bool:
    """True when no pixel of the clipped ``(2r+1)^2`` window around (y, x) is strictly greater.

    This is ``maxpool(k, stride 1, pad k//2) == hm`` with -inf padding: ties all survive.
    """
    h, w = hm.shape
    v = hm[y, x]
    for yy in range(max(0, y - radius), min(h, y + radius + 1)):
        for xx in range(max(0, x - radius), min(w, x + radius + 1)):
            if hm[yy, xx] > v:
                return False
    return True


@njit(cache=True, nogil=True)
def top_peaks(heatmaps: np.ndarray, k: int, kernel: int, threshold: float):
    """Top-``k`` NMS peaks per joint whose value exceeds ``threshold``.

    The reference takes ``topk(k)`` of the NMS'd map and then drops values ``<= threshold``;
    since every dropped value ranks below every kept one, keeping only ``> threshold`` peaks in
    a top-``k`` buffer gives the same candidates. Ties rank the lower raster index first.

    Parameters
    ----------
    heatmaps : (J, H, W) float32
    k : int
        Candidates per joint (``max_people``).
    kernel : int
        NMS window (odd).
    threshold : float
        Detection threshold; kept values are strictly greater.

    Returns
    -------
    count : (J,) int64
    vals : (J, k) float32, descending per joint
    ys, xs : (J, k) int64
    """
    j_n, h, w = heatmaps.shape
    radius = kernel // 2
    count = np.zeros(j_n, np.int64)
    vals = np.zeros((j_n, k), np.float32)
    ys = np.zeros((j_n, k), np.int64)
    xs = np.zeros((j_n, k), np.int64)
    for j in range(j_n):
        hm = heatmaps[j]
        n = 0
        floor = np.float32(threshold)  # a value must exceed this to enter the buffer
        for y in range(h):
            row = hm[y]
            for x in range(w):
                v = row[x]
                if not v > floor:  # the common case: one comparison per pixel
                    continue
                if not is_peak(hm, y, x, radius):
                    continue
                pos = n if n < k else k - 1
                while pos > 0 and v > vals[j, pos - 1]:  # strictly greater: earlier ties stay first
                    vals[j, pos] = vals[j, pos - 1]
                    ys[j, pos] = ys[j, pos - 1]
                    xs[j, pos] = xs[j, pos - 1]
                    pos -= 1
                vals[j, pos] = v
                ys[j, pos] = y
                xs[j, pos] = x
                if n < k:
                    n += 1
                if n == k:  # full: a newcomer must beat the k-th value (all are > threshold)
                    floor = vals[j, k - 1]
        count[j] = n
    return count, vals, ys, xs
