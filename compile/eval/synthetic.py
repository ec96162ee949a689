"""Synthetic data whose people are known: heatmaps and tag maps (clean and crowded), a small
keypoint set (images + COCO-style annotations) to try ``eval`` on, walking figures and their
video to try tracking on. ``python -m compile synthetic DIR`` writes a keypoint set."""

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


def keypoint_set(folder, dataset: str = "crowdpose", n_images: int = 6, seed: int = 0):
    """A small keypoint dataset in the dataset's own format: JPEG images with stick people drawn
    on noise, and ``annotations.json`` (COCO format; CrowdPose adds ``crowdIndex`` per image,
    spread over easy / medium / hard; COCO adds ``area``, medium and large people).

    People sit in separate grid cells (their OKS against each other is ~0); every person has
    at least 6 visible joints and some joints with v = 0 (x = y = 0, as the datasets store them).
    Returns (images folder, annotation file).
    """
    from pathlib import Path

    import cv2

    from compile.model.zoo import get_dataset

    ds = get_dataset(dataset)
    j = ds.num_joints
    folder = Path(folder)
    images_dir = folder / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sizes = [(240, 320), (320, 240), (288, 288)]
    images, anns = [], []
    for i in range(n_images):
        h, w = sizes[i % len(sizes)]
        img = rng.integers(40, 200, (h, w, 3), dtype=np.uint8)
        image_id = 1000 + i
        entry = {"id": image_id, "file_name": f"{image_id}.jpg", "height": h, "width": w}
        if dataset == "crowdpose":
            entry["crowdIndex"] = round(float([0.1, 0.5, 0.9][i % 3]), 3)
        images.append(entry)
        cells = 2 if i % 2 else 1  # 1 or 2 x 2 people
        ch, cw = h // cells, w // cells
        for cy in range(cells):
            for cx in range(cells):
                bw, bh = rng.uniform(0.5, 0.8) * cw, rng.uniform(0.6, 0.9) * ch
                x0, y0 = cx * cw + rng.uniform(0, cw - bw), cy * ch + rng.uniform(0, ch - bh)
                xy = np.stack([x0 + rng.uniform(0, bw, j), y0 + rng.uniform(0, bh, j)], axis=1)
                v = rng.choice([1, 2], j)
                v[rng.choice(j, rng.integers(0, j - 6), replace=False)] = 0
                xy[v == 0] = 0
                for a, b in ds.skeleton:
                    if v[a] and v[b]:
                        cv2.line(img, tuple(int(t) for t in xy[a]), tuple(int(t) for t in xy[b]),
                                 (255, 255, 255), 3)
                vis = xy[v > 0]
                bx0, by0 = vis.min(axis=0)
                bx1, by1 = vis.max(axis=0)
                kp = np.concatenate([np.round(xy, 2), v[:, None]], axis=1).ravel().tolist()
                ann = {"id": len(anns) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                       "keypoints": kp, "num_keypoints": int((v > 0).sum()),
                       "bbox": [float(bx0), float(by0), float(bx1 - bx0), float(by1 - by0)]}
                if dataset == "coco":
                    ann["area"] = float((bx1 - bx0) * (by1 - by0))
                anns.append(ann)
        cv2.imwrite(str(images_dir / entry["file_name"]), img)
    categories = [{"id": 1, "name": "person", "supercategory": "person",
                   "keypoints": list(ds.keypoints), "skeleton": [[a + 1, b + 1] for a, b in ds.skeleton]}]
    path = folder / "annotations.json"
    import json

    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": categories}))
    return images_dir, path


# A CrowdPose person standing, in units of its height, from the middle of the hips (y down):
# shoulders, elbows, wrists, hips, knees, ankles (left, right), head, neck.
_FIGURE = np.array([[.12, -.38], [-.12, -.38], [.17, -.2], [-.17, -.2], [.19, -.03], [-.19, -.03],
                    [.08, 0], [-.08, 0], [.09, .23], [-.09, .23], [.1, .46], [-.1, .46],
                    [0, -.55], [0, -.42]])


def walkers(frames: int, size_hw: tuple[int, int] = (480, 640), height: float = 150.0,
            noise: float = 0.0, drop: float = 0.0, seed: int = 0
            ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Five CrowdPose people walking through ``frames`` frames, with their true identities.

    Person 0 walks right and person 1 walks left, crossing in the middle of the clip; person
    2 stands; person 3 walks down; person 4 walks right out of the picture around a third of
    the way in and comes back (turned round) about 12 frames later. ``noise``: pixels of
    Gaussian jitter per joint; ``drop``: the chance that a joint is missed.

    Returns per frame the people (P, 14, 3) ``[x, y, v]`` in pixels (joints outside the image
    have v = 0; people wholly outside are left out) and their identities (P,).
    """
    rng = np.random.default_rng(seed)
    h, w = size_hw
    t = np.arange(frames)
    exit_at = frames // 3
    back = exit_at + 12
    x4 = np.where(t < back, 330 + 11 * t, 330 + 11 * back - 11 * (t - back))  # out and back
    paths = [np.stack([60 + (w - 120) * t / (frames - 1), np.full(frames, 0.38 * h)], 1),
             np.stack([w - 60 - (w - 120) * t / (frames - 1), np.full(frames, 0.42 * h)], 1),
             np.stack([np.full(frames, 0.18 * w), 0.78 * h + 3 * np.sin(t / 5)], 1),
             np.stack([np.full(frames, 0.82 * w), 0.45 * h + 0.3 * h * t / frames], 1),
             np.stack([x4, np.full(frames, 0.8 * h)], 1)]
    people, ids = [], []
    for f in range(frames):
        kept, who = [], []
        for p, path in enumerate(paths):
            xy = path[f] + height * _FIGURE
            xy[[10, 11], 0] += height * 0.06 * np.sin(f / 3 + p) * np.array([1, -1])  # stride
            xy = xy + rng.normal(0, noise, xy.shape) if noise else xy
            v = ((xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h))
            v &= rng.random(len(v)) >= drop
            if v.sum() >= 1:
                kept.append(np.concatenate([xy, v[:, None].astype(float)], axis=1))
                who.append(p)
        people.append(np.array(kept).reshape(-1, len(_FIGURE), 3))
        ids.append(np.array(who, np.int64))
    return people, ids


def write_video(path, people: list[np.ndarray], size_hw: tuple[int, int] = (480, 640),
                fps: float = 30.0, skeleton=None):
    """An MJPG .avi of dark frames with each person's figure drawn (the oracle reads the
    truth, not the picture; the picture is for a person looking at the output)."""
    import cv2

    h, w = size_hw
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for frame_people in people:
        img = np.full((h, w, 3), 30, np.uint8)
        for person in frame_people:
            for x, y, v in person:
                if v:
                    cv2.circle(img, (int(x), int(y)), 3, (200, 200, 200), -1)
        out.write(img)
    out.release()
    return path
