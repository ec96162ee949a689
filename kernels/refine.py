"""Quarter-pixel adjust, person scores, refine of missing joints, and the inverse transform."""

from __future__ import annotations

import numpy as np
from numba import njit

from .reduce import mean_rows_f32, sum_f32


@njit(cache=True)
def _quarter(hm, y, x):
    """``(x + 0.5 +- 0.25, y + 0.5 +- 0.25)`` towards the larger neighbour (ties: minus)."""
    h, w = hm.shape
    dx = 0.25 if hm[y, min(x + 1, w - 1)] > hm[y, max(x - 1, 0)] else -0.25
    dy = 0.25 if hm[min(y + 1, h - 1), x] > hm[max(y - 1, 0), x] else -0.25
    return x + 0.5 + dx, y + 0.5 + dy


@njit(cache=True)
def adjust(people: np.ndarray, heatmaps: np.ndarray) -> None:
    """Move every detected joint (val > 0) a quarter pixel towards its larger neighbour, in place.

    people : (P, J, 3 + L) float32; heatmaps : (J, H, W) float32
    """
    for p in range(people.shape[0]):
        for j in range(people.shape[1]):
            if people[p, j, 2] > 0:
                x, y = _quarter(heatmaps[j], int(people[p, j, 1]), int(people[p, j, 0]))
                people[p, j, 0] = x
                people[p, j, 1] = y


@njit(cache=True)
def person_scores(people: np.ndarray) -> np.ndarray:
    """Mean joint value per person over all J joints (missing ones count 0): (P,) float32."""
    n_p, n_j = people.shape[0], people.shape[1]
    scores = np.empty(n_p, np.float32)
    col = np.empty((n_j, 1), np.float32)
    for p in range(n_p):
        col[:, 0] = people[p, :, 2]
        scores[p] = np.float32(sum_f32(col, n_j, 0) / np.float32(n_j))
    return scores


BLOCK = 16


@njit(cache=True)
def tile_stats(heatmaps: np.ndarray, tags: np.ndarray, joints: np.ndarray):
    """Per ``BLOCK x BLOCK`` tile of the listed joints: heatmap max, per-channel tag min and max.

    Returns hmax (J, BY, BX) float32, tmin and tmax (J, BY, BX, L) float32; joints not listed
    keep -inf / +inf placeholders.
    """
    n_j, h, w = heatmaps.shape
    n_l = tags.shape[3]
    by_n, bx_n = (h + BLOCK - 1) // BLOCK, (w + BLOCK - 1) // BLOCK
    hmax = np.full((n_j, by_n, bx_n), -np.inf, np.float32)
    tmin = np.full((n_j, by_n, bx_n, n_l), np.inf, np.float32)
    tmax = np.full((n_j, by_n, bx_n, n_l), -np.inf, np.float32)
    for j in joints:
        for by in range(by_n):
            y0, y1 = by * BLOCK, min(h, (by + 1) * BLOCK)
            for bx in range(bx_n):
                x0, x1 = bx * BLOCK, min(w, (bx + 1) * BLOCK)
                m = heatmaps[j, y0, x0]
                for y in range(y0, y1):
                    for x in range(x0, x1):
                        m = max(m, heatmaps[j, y, x])
                hmax[j, by, bx] = m
                for t in range(n_l):
                    lo = tags[j, y0, x0, t]
                    hi = lo
                    for y in range(y0, y1):
                        for x in range(x0, x1):
                            v = tags[j, y, x, t]
                            lo = min(lo, v)
                            hi = max(hi, v)
                    tmin[j, by, bx, t] = lo
                    tmax[j, by, bx, t] = hi
    return hmax, tmin, tmax


@njit(cache=True)
def _score(v, tag_px, prev):
    """``v - round(||tag_px - prev||)`` in float32, with the reference's rounding steps."""
    s = np.float32(0.0)
    for t in range(prev.shape[0]):
        d = np.float32(tag_px[t] - prev[t])
        s = np.float32(s + np.float32(d * d))
    return np.float32(v - np.rint(np.float32(np.sqrt(s))))


@njit(cache=True)
def _refine_argmax(hm, tag, prev, hmax, tmin, tmax):
    """First (raster order) argmax of ``hm - round(||tag - prev||)`` over the map.

    Exact branch and bound: no pixel of a tile scores above the tile's heatmap max minus the
    rounded distance from ``prev`` to the tile's tag box (all steps are monotone in float32).
    The best-bounded tile is searched first; every tile whose bound reaches the best score is
    then searched, equal scores keeping the lower raster index as ``np.argmax`` does.
    """
    h, w = hm.shape
    by_n, bx_n = hmax.shape
    bound = np.empty((by_n, bx_n), np.float32)
    first = 0
    first_bound = np.float32(-np.inf)
    edge = np.empty_like(prev)
    for by in range(by_n):
        for bx in range(bx_n):
            for t in range(prev.shape[0]):
                edge[t] = min(max(prev[t], tmin[by, bx, t]), tmax[by, bx, t])
            bound[by, bx] = _score(hmax[by, bx], edge, prev)
            if bound[by, bx] > first_bound:
                first_bound = bound[by, bx]
                first = by * bx_n + bx
    best = np.float32(-np.inf)
    best_i = -1
    for k in range(-1, by_n * bx_n):
        o = first if k < 0 else k
        if k == first:
            continue
        by, bx = o // bx_n, o % bx_n
        if best_i >= 0 and bound[by, bx] < best:
            continue
        for y in range(by * BLOCK, min(h, (by + 1) * BLOCK)):
            for x in range(bx * BLOCK, min(w, (bx + 1) * BLOCK)):
                if best_i >= 0 and hm[y, x] < best:
                    continue
                score = _score(hm[y, x], tag[y, x], prev)
                i = y * w + x
                if best_i < 0 or score > best or (score == best and i < best_i):
                    best = score
                    best_i = i
    return best_i // w, best_i % w


@njit(cache=True)
def refine(people: np.ndarray, heatmaps: np.ndarray, tags: np.ndarray) -> None:
    """Fill each person's missing joints from the full maps, in place (spec §3.4 e).

    For a missing joint j the new position is the first argmax over pixels of
    ``det[j] - round(||tag[j] - person_tag||)``; it is written only when its value is > 0.

    people : (P, J, 3 + L) float32; heatmaps : (J, H, W) float32; tags : (J, H, W, L) float32
    """
    n_j = heatmaps.shape[0]
    n_l = tags.shape[3]
    found = np.empty((n_j, n_l), np.float32)
    missing = np.zeros(n_j, np.bool_)
    for p in range(people.shape[0]):
        for j in range(n_j):
            missing[j] |= people[p, j, 2] == 0
    hmax, tmin, tmax = tile_stats(heatmaps, tags, np.flatnonzero(missing))
    for p in range(people.shape[0]):
        kp = people[p]
        n = 0
        for j in range(n_j):
            if kp[j, 2] > 0:
                found[n] = tags[j, int(kp[j, 1]), int(kp[j, 0])]
                n += 1
        prev = mean_rows_f32(found, n)
        for j in range(n_j):
            if kp[j, 2] != 0:
                continue
            by, bx = _refine_argmax(heatmaps[j], tags[j], prev, hmax[j], tmin[j], tmax[j])
            val = heatmaps[j, by, bx]
            if val > 0:
                x_f, y_f = _quarter(heatmaps[j], by, bx)
                kp[j, 0] = x_f
                kp[j, 1] = y_f
                kp[j, 2] = val


@njit(cache=True)
def transform_back(people: np.ndarray, scale: float, center_x: float, center_y: float,
                   input_w: int, input_h: int, map_scale: float) -> None:
    """Map ``[x, y]`` from map pixels to original-image pixels, in place.

    ``x_img = (x * map_scale - W/2) / scale + cx``: the inverse of the letterbox similarity
    ``x' = scale * (x - cx) + W/2`` that produced the ``W x H`` network input, after undoing
    the map's downsampling ``map_scale`` (1 when grouping at input resolution).
    """
    for p in range(people.shape[0]):
        for j in range(people.shape[1]):
            people[p, j, 0] = (people[p, j, 0] * map_scale - input_w / 2) / scale + center_x
            people[p, j, 1] = (people[p, j, 1] * map_scale - input_h / 2) / scale + center_y
