"""Exact Hungarian (Munkres) assignment in Numba: a step-for-step port of ``munkres`` 1.1.4.

LitePose groups joints with ``munkres.Munkres().compute``; its cost matrices are full of ties
(costs are ``round(d) * 100 - val``), so *which* optimal assignment comes back matters. This port
follows that package's steps, scan orders and float64 arithmetic exactly, so it returns the same
pairs, not just an assignment of the same cost.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _find_a_zero(c, row_cov, col_cov, i0, j0):
    # munkres 1.1.4 keeps scanning the row after a hit: the last uncovered zero of the first
    # row (cyclically from i0) holding one, in cyclic column order from j0, is returned.
    n = c.shape[0]
    row = -1
    col = -1
    i = i0
    done = False
    while not done:
        if not row_cov[i]:  # a covered row holds no uncovered zero
            j = j0
            while True:
                if c[i, j] == 0 and not col_cov[j]:
                    row = i
                    col = j
                    done = True
                j = (j + 1) % n
                if j == j0:
                    break
        i = (i + 1) % n
        if i == i0:
            done = True
    return row, col


@njit(cache=True, nogil=True)
def _first(marked, index, value, along_row):
    n = marked.shape[0]
    for k in range(n):
        if (marked[index, k] if along_row else marked[k, index]) == value:
            return k
    return -1


@njit(cache=True, nogil=True)
def _augment(marked, path, count):
    for k in range(count + 1):
        r, q = path[k, 0], path[k, 1]
        marked[r, q] = 0 if marked[r, q] == 1 else 1
    for r in range(marked.shape[0]):
        for q in range(marked.shape[1]):
            if marked[r, q] == 2:
                marked[r, q] = 0


@njit(cache=True, nogil=True)
def _adjust_by_smallest(c, row_cov, col_cov):
    n = c.shape[0]
    minval = 9.223372036854776e18  # sys.maxsize, as the reference starts
    for i in range(n):
        for j in range(n):
            if not row_cov[i] and not col_cov[j] and minval > c[i, j]:
                minval = c[i, j]
    for i in range(n):
        for j in range(n):
            if row_cov[i]:
                c[i, j] += minval
            if not col_cov[j]:
                c[i, j] -= minval


@njit(cache=True, nogil=True)
def munkres(cost: np.ndarray) -> np.ndarray:
    """Minimum-cost assignment of a rectangular cost matrix, exactly as ``munkres`` 1.1.4.

    Parameters
    ----------
    cost : (R, C) float64
        Costs; the matrix is padded with zeros to square, as the reference does.

    Returns
    -------
    (K, 2) int64
        ``(row, col)`` pairs with ``row < R`` and ``col < C``, in row-major order;
        ``K = min(R, C)``.
    """
    rows, cols = cost.shape
    n = max(rows, cols)
    c = np.zeros((n, n), np.float64)
    c[:rows, :cols] = cost
    row_cov = np.zeros(n, np.bool_)
    col_cov = np.zeros(n, np.bool_)
    marked = np.zeros((n, n), np.int8)
    path = np.zeros((2 * n + 1, 2), np.int64)
    for i in range(n):  # step 1: subtract each row's minimum
        m = c[i, 0]
        for j in range(1, n):
            if c[i, j] < m:
                m = c[i, j]
        for j in range(n):
            c[i, j] -= m
    for i in range(n):  # step 2: star independent zeros
        for j in range(n):
            if c[i, j] == 0 and not col_cov[j] and not row_cov[i]:
                marked[i, j] = 1
                col_cov[j] = True
                row_cov[i] = True
                break
    row_cov[:] = False
    col_cov[:] = False
    while True:
        count = 0  # step 3: cover starred columns
        for i in range(n):
            for j in range(n):
                if marked[i, j] == 1 and not col_cov[j]:
                    col_cov[j] = True
                    count += 1
        if count >= n:
            break
        row = 0
        col = 0
        while True:  # step 4: prime uncovered zeros (step 6 when none is left)
            row, col = _find_a_zero(c, row_cov, col_cov, row, col)
            if row < 0:
                _adjust_by_smallest(c, row_cov, col_cov)
                row = 0
                col = 0
                continue
            marked[row, col] = 2
            star_col = _first(marked, row, 1, True)
            if star_col >= 0:
                col = star_col
                row_cov[row] = True
                col_cov[col] = False
            else:
                break
        count = 0  # step 5: augment along the alternating path
        path[0, 0] = row
        path[0, 1] = col
        while True:
            r = _first(marked, path[count, 1], 1, False)
            if r < 0:
                break
            count += 1
            path[count, 0] = r
            path[count, 1] = path[count - 1, 1]
            count += 1
            path[count, 0] = path[count - 1, 0]
            path[count, 1] = _first(marked, path[count - 1, 0], 2, True)
        _augment(marked, path, count)
        row_cov[:] = False
        col_cov[:] = False
    out = np.empty((min(rows, cols), 2), np.int64)
    k = 0
    for i in range(rows):
        for j in range(cols):
            if marked[i, j] == 1:
                out[k, 0] = i
                out[k, 1] = j
                k += 1
    return out[:k]
