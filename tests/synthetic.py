"""Synthetic multi-person heatmaps and tag maps whose people are known."""

from __future__ import annotations

import numpy as np


def smooth_field(rng: np.random.Generator, shape: tuple, scale: float) -> np.ndarray:
    """A spatially smooth random field (like a trained net's background tags), float32."""
    j, h, w, l_ = shape
    coarse = rng.normal(0, scale, (j, l_, (h + 15) // 16 + 1, (w + 15) // 16 + 1))
    ys = np.linspace(0, coarse.shape[2] - 1, h)
    xs = np.linspace(0, coarse.shape[3] - 1, w)
    rows = np.stack([np.interp(ys, np.arange(coarse.shape[2]), coarse[a, b, :, c])
                     for a in range(j) for b in range(l_) for c in range(coarse.shape[3])])
    rows = rows.reshape(j, l_, coarse.shape[3], h)
    field = np.stack([np.interp(xs, np.arange(coarse.shape[3]), rows[a, b, :, y])
                      for a in range(j) for b in range(l_) for y in range(h)])
    return field.reshape(j, l_, h, w).transpose(0, 2, 3, 1).astype(np.float32)


def make_maps(rng: np.random.Generator, n_people: int, num_joints: int, h: int, w: int,
              tag_dim: int = 1, sigma: float = 2.0, missing: float = 0.1, quantize: float = 0.0,
              tag_noise: float = 0.05):
    """Gaussian heatmaps (peak ~1) and per-person tag values, plus the ground truth.

    Returns heatmaps (J, H, W) float32, tags (J, H, W, L) float32, and truth (N, J, 3) float64
    with rows ``[x, y, visible]``. People's tags are 2 apart; joints go missing at random;
    ``quantize`` > 0 rounds the heatmaps to that step, which creates exact ties.
    """
    heatmaps = np.zeros((num_joints, h, w), np.float32)
    tags = smooth_field(rng, (num_joints, h, w, tag_dim), scale=3.0)
    truth = np.zeros((n_people, num_joints, 3))
    yy, xx = np.mgrid[0:h, 0:w]
    base = rng.permutation(n_people) * 2.0 - n_people
    for p in range(n_people):
        peak = rng.uniform(0.3, 1.0)
        for j in range(num_joints):
            if rng.random() < missing:
                continue
            x, y = rng.integers(0, w), rng.integers(0, h)
            g = peak * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
            heatmaps[j] = np.maximum(heatmaps[j], g.astype(np.float32))
            near = (np.abs(xx - x) <= 3) & (np.abs(yy - y) <= 3)
            for t in range(tag_dim):
                tags[j, near, t] = base[p] + rng.normal(0, tag_noise)
            truth[p, j] = (x, y, 1)
    heatmaps += rng.uniform(0, 0.05, heatmaps.shape).astype(np.float32)
    if quantize > 0:
        heatmaps = (np.round(heatmaps / quantize) * quantize).astype(np.float32)
    return heatmaps, tags, truth


def crowded_maps(rng: np.random.Generator, n_people: int = 30, num_joints: int = 14,
                 size: int = 256, tag_dim: int = 2, missing: float = 0.1, tag_noise: float = 0.3,
                 background: float = 0.15, net_like: bool = False):
    """Crowd-scale maps: ``make_maps`` people plus per-pixel tag noise on every map.

    ``background`` adds uniform heatmap noise in ``[0, background)``. ``net_like`` instead adds
    a smooth signed field (like the outputs of an untrained network: values of both signs, many
    weak peaks), which is the hard regime for refine. Returns heatmaps (J, H, W) float32 and
    tags (J, H, W, L) float32.
    """
    hm, tg, _ = make_maps(rng, n_people, num_joints, size, size, tag_dim, sigma=size / 128,
                          missing=missing)
    tg = tg + rng.normal(0, tag_noise, tg.shape).astype(np.float32)
    if net_like:
        hm = hm + smooth_field(rng, (num_joints, size, size, 1), 0.6)[..., 0]
        hm = hm + rng.normal(0, 0.05, hm.shape).astype(np.float32)
    else:
        hm = hm + rng.uniform(0, background, hm.shape).astype(np.float32)
    return np.ascontiguousarray(hm, np.float32), np.ascontiguousarray(tg, np.float32)
