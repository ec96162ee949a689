"""Quarter-pixel adjust, person scores, refine of missing joints, and the inverse transform."""

from __future__ import annotations

import numpy as np
from numba import njit

from .candidates import build_index, search
from .reduce import mean_rows_f32, sum_f32


@njit(cache=True, nogil=True)
def _quarter(hm, y, x):
    """``(x + 0.5 +- 0.25, y + 0.5 +- 0.25)`` towards the larger neighbour (ties: minus)."""
    h, w = hm.shape
    dx = 0.25 if hm[y, min(x + 1, w - 1)] > hm[y, max(x - 1, 0)] else -0.25
    dy = 0.25 if hm[min(y + 1, h - 1), x] > hm[max(y - 1, 0), x] else -0.25
    return x + 0.5 + dx, y + 0.5 + dy


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def person_scores(people: np.ndarray) -> np.ndarray:
    """Mean joint value per person over all J joints (missing ones count 0): (P,) float32."""
    n_p, n_j = people.shape[0], people.shape[1]
    scores = np.empty(n_p, np.float32)
    col = np.empty((n_j, 1), np.float32)
    for p in range(n_p):
        col[:, 0] = people[p, :, 2]
        scores[p] = np.float32(sum_f32(col, n_j, 0) / np.float32(n_j))
    return scores


CELLS = (1, 32, 8, 4)  # tag cells per dimension of the index, by tag dimension L


@njit(cache=True, nogil=True)
def refine(people: np.ndarray, heatmaps: np.ndarray, tags: np.ndarray) -> None:
    """Fill each person's missing joints from the full maps, in place (spec §3.4 e).

    For a missing joint j the new position is the first argmax over pixels of
    ``det[j] - round(||tag[j] - person_tag||)``; it is written only when its value is > 0.
    The work is shared by everyone missing joint j: the joint's pixels are indexed by tag cell
    and value once per frame (``candidates.build_index``), and each person's search visits only
    the cells and value buckets that can still beat their best score.

    people : (P, J, 3 + L) float32; heatmaps : (J, H, W) float32; tags : (J, H, W, L) float32
    """
    n_p, n_j, n_l = people.shape[0], heatmaps.shape[0], tags.shape[3]
    found = np.empty((n_j, n_l), np.float32)
    prev = np.empty((n_p, n_l), np.float32)
    for p in range(n_p):  # each person's tag from the joints found before refine
        n = 0
        for j in range(n_j):
            if people[p, j, 2] > 0:
                found[n] = tags[j, int(people[p, j, 1]), int(people[p, j, 0])]
                n += 1
        prev[p] = mean_rows_f32(found, n)
    cells = CELLS[min(n_l, len(CELLS) - 1)]
    for j in range(n_j):  # joint by joint: one joint's maps stay in cache for all its searches
        index = None
        for p in range(n_p):
            if people[p, j, 2] != 0:
                continue
            if index is None:
                index = build_index(heatmaps[j], tags[j], cells)
            by, bx = search(heatmaps[j], tags[j], prev[p], *index)
            val = heatmaps[j, by, bx]
            if val > 0:
                x_f, y_f = _quarter(heatmaps[j], by, bx)
                people[p, j, 0] = x_f
                people[p, j, 1] = y_f
                people[p, j, 2] = val


@njit(cache=True, nogil=True)
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
