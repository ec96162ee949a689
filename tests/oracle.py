"""Oracles for end-to-end tests: an engine whose maps are drawn from known people, a matching
artifact description, and the identity-switch count of a tracked run (the synthetic data they
are used with: ``compile.eval.synthetic``)."""

from __future__ import annotations

import numpy as np


class OracleEngine:
    """Plays a trained LitePose for ``compile.eval.evaluate``: for each image in turn (by id) it
    returns the two outputs a perfect network would give, rendered from the ground truth through
    the image's letterbox: Gaussian heatmaps (sigma 2, peak 1, at ``int(coordinate)`` as the
    training targets are) at H/4 and H/2, and tags that are the nearest person's number x 3.

    ``people`` lists, per image, an array (P, J, 3) of ``[x, y, v]`` in image pixels.
    """

    def __init__(self, meta, images: list[dict], people: list[np.ndarray]):
        from runtime.preprocess import letterbox_for

        self.meta = meta
        self.frames = iter([(letterbox_for((im["height"], im["width"]), meta.input_hw), p)
                            for im, p in zip(images, people, strict=True)])

    def _maps(self, box, people: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
        j = people.shape[1]
        h, w = box.height // stride, box.width // stride
        heat = np.zeros((j, h, w), np.float32)
        tags = np.zeros((j, h, w), np.float32)
        best = np.full((j, h, w), np.inf, np.float32)
        ys, xs = np.mgrid[0:h, 0:w]
        for p, person in enumerate(people):
            for k, (x, y, v) in enumerate(person):
                if not v:
                    continue
                mx = (box.scale * (x - box.center_x) + box.width / 2) / stride
                my = (box.scale * (y - box.center_y) + box.height / 2) / stride
                d2 = (xs - int(mx)) ** 2 + (ys - int(my)) ** 2
                heat[k] = np.maximum(heat[k], np.exp(-d2 / (2 * 2.0 ** 2)))
                near = d2 < best[k]
                best[k][near], tags[k][near] = d2[near], 3.0 * (p + 1)
        return heat, tags

    def infer(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        box, people = next(self.frames)
        heat4, tags4 = self._maps(box, people, 4)
        heat2, _ = self._maps(box, people, 2)
        return np.concatenate([heat4, tags4])[None], heat2[None]


def oracle_meta(name: str, size: int = 128):
    """Metadata of an artifact that the ``OracleEngine`` plays (``name``: the dataset)."""
    from compile.model.zoo import get_dataset
    from runtime.meta import ArtifactMeta, InputSpec, OutputSpec, TargetInfo, WeightsMeta

    ds = get_dataset(name)
    j = ds.num_joints
    return ArtifactMeta(
        model="xs", dataset=name, input=InputSpec((1, 3, size, size), (0.485, 0.456, 0.406),
                                                  (0.229, 0.224, 0.225)),
        outputs=(OutputSpec((1, 2 * j, size // 4, size // 4), 4),
                 OutputSpec((1, j, size // 2, size // 2), 2)),
        keypoints=ds.keypoints, flip_index=ds.flip_index, skeleton=ds.skeleton,
        joint_order=ds.joint_order, target=TargetInfo("host", "x86_64", "cpu", "llvm", None),
        weights=WeightsMeta("random", "00" * 32, None, 0), tuning=None, kit_version="0.1.0",
        tvm_version="0.27.0", created="2026-12-01T00:00:00+00:00", oks_sigmas=ds.oks_sigmas)


def id_switches(truth_ids: list[np.ndarray], truth: list[np.ndarray], results: list[list[dict]],
                max_px: float = 20.0) -> tuple[int, dict[int, list[int]]]:
    """Identity switches, as CLEAR-MOT counts them (IDSW): each true person is matched, frame
    by frame, to an output person whose seen joints lie within ``max_px`` (the median
    distance, so that a few joints grouped into the wrong person do not hide a match). A
    correspondence of the frame before is kept while it is still within reach (a duplicate
    detection of the same person is no switch); the rest are paired closest first. A switch
    is a true person matched to another track id than the one it last had. Output people
    without a track (id -1: too few joints to start one) are left out, as misses.

    Returns the count and, per true person, the track ids it had in order (changes only).
    """
    switches, history = 0, {}
    for ids, people, frame in zip(truth_ids, truth, results, strict=True):
        out = [(np.array(r["keypoints"]).reshape(-1, 3), r.get("track_id")) for r in frame
               if r.get("track_id") != -1]
        near = {}
        for a, person in enumerate(people):
            for b, (kp, _) in enumerate(out):
                both = (person[:, 2] > 0) & (kp[:, 2] > 0)
                if both.any():
                    d = np.median(np.linalg.norm(person[both, :2] - kp[both, :2], axis=1))
                    if d < max_px:
                        near[a, b] = d
        kept = sorted((0 if history.get(int(ids[a]), [None])[-1] == out[b][1] else 1, d, a, b)
                      for (a, b), d in near.items())
        used_a, used_b = set(), set()
        for _, _, a, b in kept:
            if a in used_a or b in used_b:
                continue
            used_a.add(a)
            used_b.add(b)
            seq = history.setdefault(int(ids[a]), [])
            track = out[b][1]
            if seq and seq[-1] != track:
                switches += 1
            if not seq or seq[-1] != track:
                seq.append(track)
    return switches, history
