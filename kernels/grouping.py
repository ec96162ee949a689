"""Associative-embedding grouping of LitePose candidates into people (``match_by_tag``)."""

from __future__ import annotations

import numpy as np
from numba import njit

from .munkres import munkres
from .reduce import mean_rows_f32


@njit(cache=True, nogil=True)
def _put(joints, keys, tag_lists, ntags, n_people, key, idx, row, tag):
    """Start a person keyed by ``key``; as in the reference's dict, an equal key reuses it."""
    p = n_people
    for q in range(n_people):
        if keys[q] == key:
            p = q
            break
    if p == n_people:
        keys[p] = key
        n_people += 1
    joints[p, idx, :] = row
    tag_lists[p, 0, :] = tag
    ntags[p] = 1
    return n_people


@njit(cache=True, nogil=True)
def match_by_tag(count, vals, ys, xs, cand_tags, joint_order, tag_threshold, max_people,
                 use_detection_val):
    """Group candidates into people in the fixed joint order (spec §3.4 b).

    Parameters
    ----------
    count : (J,) int64
        Candidates per joint (all above the detection threshold).
    vals : (J, K) float32; ys, xs : (J, K) int64
    cand_tags : (J, K, L) float32
        Tag vectors of the candidates.
    joint_order : (J,) int64
    tag_threshold : float
        Un-rounded tag distance under which a candidate joins a person.
    max_people : int
        Only the first ``max_people`` people are matched against.
    use_detection_val : bool
        Cost ``round(d) * 100 - val`` (else ``d``).

    Returns
    -------
    (P, J, 3 + L) float32
        People in creation order, rows ``[x, y, val, tag...]``; absent joints are zero.
    """
    n_j, k, n_l = cand_tags.shape
    cap = n_j * k
    joints = np.zeros((cap, n_j, 3 + n_l), np.float64)
    keys = np.zeros(cap, np.float32)
    tag_lists = np.zeros((cap, n_j + 1, n_l), np.float32)
    ntags = np.zeros(cap, np.int64)
    n_people = 0
    row = np.zeros(3 + n_l, np.float64)
    for idx in joint_order:
        n_add = count[idx]
        if n_add == 0:
            continue
        if n_people == 0:
            for r in range(n_add):
                row[0], row[1], row[2] = xs[idx, r], ys[idx, r], vals[idx, r]
                row[3:] = cand_tags[idx, r]
                n_people = _put(joints, keys, tag_lists, ntags, n_people, cand_tags[idx, r, 0],
                                idx, row, cand_tags[idx, r])
            continue
        n_grp = min(n_people, max_people)
        means = np.empty((n_grp, n_l), np.float64)
        for c in range(n_grp):
            means[c] = mean_rows_f32(tag_lists[c], ntags[c])
        width = max(n_add, n_grp)
        cost = np.full((n_add, width), 1e10)
        dist = np.empty((n_add, n_grp), np.float64)
        for r in range(n_add):
            for c in range(n_grp):
                s = 0.0
                for t in range(n_l):
                    d = np.float64(cand_tags[idx, r, t]) - means[c, t]
                    s += d * d
                dist[r, c] = np.sqrt(s)
                if use_detection_val:
                    cost[r, c] = np.rint(dist[r, c]) * 100.0 - np.float64(vals[idx, r])
                else:
                    cost[r, c] = dist[r, c]
        pairs = munkres(cost)
        for p_i in range(pairs.shape[0]):
            r, c = pairs[p_i, 0], pairs[p_i, 1]
            row[0], row[1], row[2] = xs[idx, r], ys[idx, r], vals[idx, r]
            row[3:] = cand_tags[idx, r]
            if c < n_grp and dist[r, c] < tag_threshold:
                joints[c, idx, :] = row
                tag_lists[c, ntags[c], :] = cand_tags[idx, r]
                ntags[c] += 1
            else:
                n_people = _put(joints, keys, tag_lists, ntags, n_people, cand_tags[idx, r, 0],
                                idx, row, cand_tags[idx, r])
    return joints[:n_people].astype(np.float32)
