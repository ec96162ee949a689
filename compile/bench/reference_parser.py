"""A slow, obvious numpy/Python port of LitePose's ``HeatmapParser.parse`` (spec §3.4).

This is the yardstick the Numba kernels are tested against. It follows the reference code's
data types (float32 maps, float64 candidate rows, a dict keyed by the first tag value) and
solves assignments with the ``munkres`` package (1.1.4, as LitePose used). The only choice the
reference leaves open, the order of equal values in ``torch.topk``, is fixed here as "lower
raster index first".
"""

from __future__ import annotations

import numpy as np
from munkres import Munkres

JOINT_ORDER = [0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16]


def nms(det: np.ndarray, kernel: int) -> np.ndarray:
    """``det * (maxpool(det, kernel, 1, kernel//2) == det)`` with -inf padding; (J, H, W)."""
    r = kernel // 2
    j, h, w = det.shape
    padded = np.full((j, h + 2 * r, w + 2 * r), -np.inf, np.float32)
    padded[:, r:r + h, r:r + w] = det
    pooled = np.full_like(det, -np.inf)
    for dy in range(kernel):
        for dx in range(kernel):
            pooled = np.maximum(pooled, padded[:, dy:dy + h, dx:dx + w])
    return det * (pooled == det).astype(np.float32)


def top_k(det, tag, k, kernel):
    det = nms(det, kernel)
    j, h, w = det.shape
    flat = det.reshape(j, -1)
    ind = np.argsort(-flat, axis=1, kind="stable")[:, :k]
    val_k = np.take_along_axis(flat, ind, axis=1)
    tag_flat = tag.reshape(j, h * w, -1)
    tag_k = np.stack([np.take_along_axis(tag_flat[:, :, i], ind, axis=1)
                      for i in range(tag_flat.shape[2])], axis=2)
    loc_k = np.stack((ind % w, ind // w), axis=2)
    return tag_k, loc_k, val_k


def match_by_tag(tag_k, loc_k, val_k, num_joints, det_thr, tag_thr, max_people):
    default_ = np.zeros((num_joints, 3 + tag_k.shape[2]))
    joint_dict, tag_dict = {}, {}
    order = JOINT_ORDER[:num_joints]
    for i in range(num_joints):
        idx = order[i]
        tags = tag_k[idx]
        joints = np.concatenate((loc_k[idx], val_k[idx, :, None], tags), 1)
        mask = joints[:, 2] > det_thr
        tags, joints = tags[mask], joints[mask]
        if joints.shape[0] == 0:
            continue
        if i == 0 or len(joint_dict) == 0:
            for tag, joint in zip(tags, joints, strict=True):
                key = tag[0]
                joint_dict.setdefault(key, np.copy(default_))[idx] = joint
                tag_dict[key] = [tag]
        else:
            grouped_keys = list(joint_dict.keys())[:max_people]
            grouped_tags = [np.mean(tag_dict[i], axis=0) for i in grouped_keys]
            diff = joints[:, None, 3:] - np.array(grouped_tags)[None, :, :]
            diff_normed = np.linalg.norm(diff, ord=2, axis=2)
            diff_saved = np.copy(diff_normed)
            diff_normed = np.round(diff_normed) * 100 - joints[:, 2:3]
            num_added, num_grouped = diff.shape[0], diff.shape[1]
            if num_added > num_grouped:
                diff_normed = np.concatenate(
                    (diff_normed, np.zeros((num_added, num_added - num_grouped)) + 1e10), axis=1)
            pairs = np.array(Munkres().compute(diff_normed)).astype(np.int32)
            for row, col in pairs:
                if row < num_added and col < num_grouped and diff_saved[row][col] < tag_thr:
                    key = grouped_keys[col]
                    joint_dict[key][idx] = joints[row]
                    tag_dict[key].append(tags[row])
                else:
                    key = tags[row][0]
                    joint_dict.setdefault(key, np.copy(default_))[idx] = joints[row]
                    tag_dict[key] = [tags[row]]
    return np.array([joint_dict[i] for i in joint_dict]).astype(np.float32)


def adjust(ans, det):
    for people_id, person in enumerate(ans):
        for joint_id, joint in enumerate(person):
            if joint[2] > 0:
                y, x = joint[0:2]
                xx, yy = int(x), int(y)
                tmp = det[joint_id]
                y = y + 0.25 if tmp[xx, min(yy + 1, tmp.shape[1] - 1)] > tmp[xx, max(yy - 1, 0)] else y - 0.25
                x = x + 0.25 if tmp[min(xx + 1, tmp.shape[0] - 1), yy] > tmp[max(0, xx - 1), yy] else x - 0.25
                ans[people_id, joint_id, 0:2] = (y + 0.5, x + 0.5)
    return ans


def refine(det, tag, keypoints):
    tags = []
    for i in range(keypoints.shape[0]):
        if keypoints[i, 2] > 0:
            x, y = keypoints[i][:2].astype(np.int32)
            tags.append(tag[i, y, x])
    prev_tag = np.mean(tags, axis=0)
    ans = []
    for i in range(keypoints.shape[0]):
        tmp = det[i, :, :]
        tt = (((tag[i, :, :] - prev_tag[None, None, :]) ** 2).sum(axis=2) ** 0.5)
        tmp2 = tmp - np.round(tt)
        y, x = np.unravel_index(np.argmax(tmp2), tmp.shape)
        xx, yy = x, y
        val = tmp[y, x]
        x = x + 0.5
        y = y + 0.5
        x = x + 0.25 if tmp[yy, min(xx + 1, tmp.shape[1] - 1)] > tmp[yy, max(xx - 1, 0)] else x - 0.25
        y = y + 0.25 if tmp[min(yy + 1, tmp.shape[0] - 1), xx] > tmp[max(0, yy - 1), xx] else y - 0.25
        ans.append((x, y, val))
    ans = np.array(ans)
    for i in range(det.shape[0]):
        if ans[i, 2] > 0 and keypoints[i, 2] == 0:
            keypoints[i, :2] = ans[i, :2]
            keypoints[i, 2] = ans[i, 2]
    return keypoints


def parse(det, tag, adjust_=True, refine_=True, det_thr=0.1, tag_thr=1.0, max_people=30,
          nms_kernel=5):
    """det (J, H, W) float32, tag (J, H, W, L) float32 -> (people (P, J, 3+L), scores (P,))."""
    num_joints = det.shape[0]
    ans = match_by_tag(*top_k(det, tag, max_people, nms_kernel), num_joints, det_thr, tag_thr,
                       max_people)
    if ans.size == 0:
        return np.zeros((0, num_joints, 3 + tag.shape[3]), np.float32), np.zeros(0, np.float32)
    if adjust_:
        ans = adjust(ans, det)
    scores = np.array([i[:, 2].mean() for i in ans], np.float32)
    if refine_:
        for i in range(len(ans)):
            ans[i] = refine(det, tag, ans[i])
    return ans, scores
