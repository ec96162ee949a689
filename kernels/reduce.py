"""float32 means that round exactly as numpy's (pairwise summation where numpy uses it)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def sum_f32(a: np.ndarray, n: int, col: int) -> np.float32:
    """``numpy.add.reduce`` of ``a[:n, col]`` in float32 with numpy's pairwise scheme.

    numpy sums blocks of fewer than 8 values left to right and longer runs (up to 128) in
    8 interleaved partial sums combined as ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)).
    """
    if n < 8:
        s = np.float32(0.0)
        for i in range(n):
            s = np.float32(s + a[i, col])
        return s
    r = np.empty(8, np.float32)
    for t in range(8):
        r[t] = a[t, col]
    i = 8
    while i + 8 <= n:
        for t in range(8):
            r[t] = np.float32(r[t] + a[i + t, col])
        i += 8
    s = np.float32(np.float32(np.float32(r[0] + r[1]) + np.float32(r[2] + r[3]))
                   + np.float32(np.float32(r[4] + r[5]) + np.float32(r[6] + r[7])))
    while i < n:
        s = np.float32(s + a[i, col])
        i += 1
    return s


@njit(cache=True, nogil=True)
def mean_rows_f32(a: np.ndarray, n: int) -> np.ndarray:
    """``np.mean(a[:n], axis=0)`` for a float32 ``(n, L)`` array, rounded as numpy does.

    With L == 1 the reduced axis is contiguous and numpy sums pairwise; with L > 1 it adds the
    rows one after another.
    """
    cols = a.shape[1]
    out = np.zeros(cols, np.float32)
    for c in range(cols):
        if cols == 1:
            out[c] = sum_f32(a, n, c)
        else:
            s = np.float32(0.0)
            for i in range(n):
                s = np.float32(s + a[i, c])
            out[c] = s
        out[c] = np.float32(out[c] / np.float32(n))
    return out
