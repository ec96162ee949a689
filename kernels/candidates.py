"""Per-joint search index for refine, built once per frame and shared by every person missing
that joint.

Refine looks for the first (raster order) argmax of ``hm - round(||tag - prev||)``. The map is
cut into ``BLOCK x BLOCK`` blocks, each summarised by its heatmap maximum and tag box; blocks are
grouped into cells by tag (the centre of their box) and, inside a cell, ordered by falling
maximum. No pixel of a block scores above ``block max - round(distance from prev to the block's
tag box)``, nor above the same bound for its cell (every step is monotone in float32), so a
search visits cells by falling bound, stops inside a cell at the first block that cannot reach
the best score so far, and scans pixels only in blocks that can. Maps upsampled from the network's
H/4 and H/2 outputs vary smoothly over a few pixels, which keeps block boxes tight.
"""

from __future__ import annotations

import numpy as np
from numba import njit

BLOCK = 4  # pixels per block side
BUCKETS = 256  # value buckets that order the blocks (a monotone map of the block maximum)


@njit(cache=True, nogil=True)
def pixel_score(v, tag_px, prev):
    """``v - round(||tag_px - prev||)`` in float32, with the reference's rounding steps."""
    s = np.float32(0.0)
    for t in range(prev.shape[0]):
        d = np.float32(tag_px[t] - prev[t])
        s = np.float32(s + np.float32(d * d))
    return np.float32(v - np.rint(np.float32(np.sqrt(s))))


@njit(cache=True, nogil=True)
def _round_dist(prev, lo, hi):
    """``round(distance from prev to the box [lo, hi])`` in float32, as refine rounds it."""
    s = np.float32(0.0)
    for t in range(prev.shape[0]):
        d = np.float32(min(max(prev[t], lo[t]), hi[t]) - prev[t])
        s = np.float32(s + np.float32(d * d))
    return np.float32(np.rint(np.float32(np.sqrt(s))))


@njit(cache=True, nogil=True)
def block_stats(hm: np.ndarray, tag: np.ndarray):
    """Per block: heatmap maximum (NB,) and tag box ``lo``, ``hi`` (NB, L), float32.

    Blocks are numbered in raster order, ``ceil(W / BLOCK)`` per row. A block row is first
    reduced down its columns (whole image rows, which vectorise), then across each block.
    """
    h, w = hm.shape
    n_l = tag.shape[2]
    nby, nbx = (h + BLOCK - 1) // BLOCK, (w + BLOCK - 1) // BLOCK
    vmax = np.empty(nby * nbx, np.float32)
    lo = np.empty((nby * nbx, n_l), np.float32)
    hi = np.empty((nby * nbx, n_l), np.float32)
    rows = tag.reshape(h, w * n_l)
    col_max = np.empty(w, np.float32)
    col_lo = np.empty(w * n_l, np.float32)
    col_hi = np.empty(w * n_l, np.float32)
    for by in range(nby):
        y0 = by * BLOCK
        col_max[:] = hm[y0]
        col_lo[:] = rows[y0]
        col_hi[:] = rows[y0]
        for y in range(y0 + 1, min(h, y0 + BLOCK)):
            for x in range(w):
                v = hm[y, x]
                col_max[x] = v if v > col_max[x] else col_max[x]
            for i in range(w * n_l):
                v = rows[y, i]
                col_lo[i] = v if v < col_lo[i] else col_lo[i]
                col_hi[i] = v if v > col_hi[i] else col_hi[i]
        for bx in range(nbx):
            b = by * nbx + bx
            x0 = bx * BLOCK
            x1 = min(w, x0 + BLOCK)
            m = col_max[x0]
            for x in range(x0 + 1, x1):
                m = max(m, col_max[x])
            vmax[b] = m
            for t in range(n_l):
                a, c = col_lo[x0 * n_l + t], col_hi[x0 * n_l + t]
                for x in range(x0 + 1, x1):
                    a = min(a, col_lo[x * n_l + t])
                    c = max(c, col_hi[x * n_l + t])
                lo[b, t] = a
                hi[b, t] = c
    return vmax, lo, hi


@njit(cache=True, nogil=True)
def build_index(hm: np.ndarray, tag: np.ndarray, cells_per_dim: int):
    """Index the blocks of one joint's maps: hm (H, W) float32, tag (H, W, L) float32.

    Returns ``(blocks, bbound, cstart, cmax, clo, chi, vmax, lo, hi)``: ``blocks`` (NB,) int64
    block numbers cell by cell (cells by falling maximum), by falling value bucket inside a
    cell; ``bbound`` (NB,) float32 the maximum of each listed block's bucket (never increases
    along a cell); ``cstart`` (C + 1,) int64 cell offsets; ``cmax`` (C,) and ``clo``, ``chi``
    (C, L) float32 each cell's maximum and tag box; then the block statistics (maximum, tag box
    ``lo``, ``hi``) in the order of ``blocks``.
    """
    n_l = tag.shape[2]
    vmax, lo, hi = block_stats(hm, tag)
    n_b = vmax.shape[0]
    v_lo, v_hi = vmax.min(), vmax.max()
    vscale = np.float32((BUCKETS - 1) / (v_hi - v_lo)) if v_hi > v_lo else np.float32(0.0)
    c_lo = np.full(n_l, np.inf, np.float32)
    c_hi = np.full(n_l, -np.inf, np.float32)
    for b in range(n_b):
        for t in range(n_l):
            mid = np.float32(0.5) * (lo[b, t] + hi[b, t])
            c_lo[t] = min(c_lo[t], mid)
            c_hi[t] = max(c_hi[t], mid)
    size = np.float32(0.5)
    for t in range(n_l):
        size = max(size, np.float32((c_hi[t] - c_lo[t]) / cells_per_dim))
    n_c = cells_per_dim ** n_l
    key = np.empty(n_b, np.int64)
    count = np.zeros(n_c * BUCKETS + 1, np.int64)
    kmax = np.full(n_c * BUCKETS, -np.inf, np.float32)
    cmax_all = np.full(n_c, -np.inf, np.float32)
    for b in range(n_b):
        c = 0
        for t in range(n_l):
            mid = np.float32(0.5) * (lo[b, t] + hi[b, t])
            c = c * cells_per_dim + min(int((mid - c_lo[t]) / size), cells_per_dim - 1)
        k = c * BUCKETS + BUCKETS - 1 - int((vmax[b] - v_lo) * vscale)
        key[b] = k
        count[k + 1] += 1
        kmax[k] = max(kmax[k], vmax[b])
        cmax_all[c] = max(cmax_all[c], vmax[b])
    used = np.flatnonzero(cmax_all > -np.inf)
    rank = used[np.argsort(-cmax_all[used], kind="mergesort")]
    n_u = rank.size
    start = np.empty(n_c * BUCKETS, np.int64)
    cstart = np.zeros(n_u + 1, np.int64)
    pos = 0
    for r in range(n_u):
        for q in range(rank[r] * BUCKETS, (rank[r] + 1) * BUCKETS):
            start[q] = pos
            pos += count[q + 1]
        cstart[r + 1] = pos
    blocks = np.empty(n_b, np.int64)
    bbound = np.empty(n_b, np.float32)
    for b in range(n_b):  # raster order inside a (cell, bucket) run
        k = key[b]
        blocks[start[k]] = b
        bbound[start[k]] = kmax[k]
        start[k] += 1
    clo = np.empty((n_u, n_l), np.float32)
    chi = np.empty((n_u, n_l), np.float32)
    for r in range(n_u):
        clo[r] = np.inf
        chi[r] = -np.inf
        for m in range(cstart[r], cstart[r + 1]):
            for t in range(n_l):
                clo[r, t] = min(clo[r, t], lo[blocks[m], t])
                chi[r, t] = max(chi[r, t], hi[blocks[m], t])
    # the blocks' statistics in listed order: a search reads them front to back
    return blocks, bbound, cstart, cmax_all[rank].copy(), clo, chi, vmax[blocks], lo[blocks], hi[blocks]


@njit(cache=True, nogil=True)
def search(hm, tag, prev, blocks, bbound, cstart, cmax, clo, chi, bvmax, blo, bhi):
    """First-in-raster argmax of ``pixel_score(hm, tag, prev)`` over the whole map: (y, x)."""
    h, w = hm.shape
    nbx = (w + BLOCK - 1) // BLOCK
    n_c = cmax.shape[0]
    bound = np.empty(n_c, np.float32)
    r_lb = np.empty(n_c, np.float32)
    for c in range(n_c):
        r_lb[c] = _round_dist(prev, clo[c], chi[c])
        bound[c] = np.float32(cmax[c] - r_lb[c])
    best = np.float32(-np.inf)
    best_i = -1
    for _ in range(n_c):  # cells by falling bound
        c = np.argmax(bound)
        if bound[c] == -np.inf or (best_i >= 0 and bound[c] < best):
            break
        bound[c] = -np.inf
        for m in range(cstart[c], cstart[c + 1]):
            if best_i >= 0 and np.float32(bbound[m] - r_lb[c]) < best:
                break
            if best_i >= 0 and np.float32(bvmax[m] - _round_dist(prev, blo[m], bhi[m])) < best:
                continue
            b = blocks[m]
            y0, x0 = (b // nbx) * BLOCK, (b % nbx) * BLOCK
            for y in range(y0, min(h, y0 + BLOCK)):
                for x in range(x0, min(w, x0 + BLOCK)):
                    v = hm[y, x]
                    if best_i >= 0 and v < best:
                        continue
                    s = pixel_score(v, tag[y, x], prev)
                    i = y * w + x
                    if best_i < 0 or s > best or (s == best and i < best_i):
                        best = s
                        best_i = i
    return best_i // w, best_i % w
