"""Numba kernels against the slow reference parser and against maps whose people are known."""

from __future__ import annotations

import os

import numpy as np
import pytest
from munkres import Munkres

from compile.bench import reference_parser as ref
from compile.eval.synthetic import crowded_maps, make_maps
from kernels import group, munkres, transform_back
from kernels.peaks import top_peaks
from kernels.reduce import mean_rows_f32

pytestmark = pytest.mark.unit
NO_JIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
CASES = 40 if NO_JIT else 240


def test_munkres_returns_the_reference_pairs_on_tie_heavy_matrices():
    rng = np.random.default_rng(0)
    for t in range(300 if NO_JIT else 2000):
        r, c = (int(v) for v in rng.integers(1, 12 if NO_JIT else 31, 2))
        if t % 3 == 0:  # LitePose costs: round(d) * 100 - val
            m = np.round(rng.uniform(0, 4, (r, c))) * 100 - rng.uniform(0.1, 1, (r, 1))
        elif t % 3 == 1:
            m = rng.integers(0, 3, (r, c)).astype(float)
        else:
            m = rng.standard_normal((r, c))
        if r > c:
            m = np.concatenate([m, np.full((r, r - c), 1e10)], axis=1)
        expected = np.array(Munkres().compute(m.copy()), np.int64).reshape(-1, 2)
        np.testing.assert_array_equal(munkres(m), expected)


def test_float32_means_round_like_numpy():
    rng = np.random.default_rng(1)
    for _ in range(500):
        n, cols = int(rng.integers(1, 18)), int(rng.integers(1, 3))
        a = (rng.standard_normal((n, cols)) * 3).astype(np.float32)
        np.testing.assert_array_equal(mean_rows_f32(a, n), np.mean(list(a), axis=0))


def test_top_peaks_match_reference_nms_and_topk():
    rng = np.random.default_rng(2)
    for q in (0.0, 0.05):
        hm, tg, _ = make_maps(rng, 25, 14, 48, 40, quantize=q)
        count, vals, ys, xs = top_peaks(hm, 30, 5, 0.1)
        _, loc_k, val_k = ref.top_k(hm, tg, 30, 5)
        for j in range(14):
            keep = val_k[j] > 0.1
            assert count[j] == keep.sum()
            np.testing.assert_array_equal(vals[j, :count[j]], val_k[j][keep])
            np.testing.assert_array_equal(xs[j, :count[j]], loc_k[j, keep, 0])
            np.testing.assert_array_equal(ys[j, :count[j]], loc_k[j, keep, 1])


def test_group_matches_reference_parser_on_random_cases():
    rng = np.random.default_rng(3)
    size = (32, 40) if NO_JIT else (64, 80)
    seen_people = 0
    for case in range(CASES):
        n = int(rng.integers(0, 8 if NO_JIT else 31))
        joints, tag_dim = (14, 17)[case % 2], 1 + (case // 2) % 2
        adjust, refine = bool(case & 4), bool(case & 8)
        hm, tg, _ = make_maps(rng, n, joints, *size, tag_dim,
                              quantize=0.05 if case % 3 == 0 else 0.0)
        people, scores = group(hm, tg, adjust=adjust, refine=refine)
        ref_people, ref_scores = ref.parse(hm, tg, adjust, refine)
        assert people.shape == ref_people.shape, case
        np.testing.assert_allclose(people, ref_people, atol=1e-4, rtol=0)
        np.testing.assert_allclose(scores, ref_scores, atol=1e-5, rtol=0)
        seen_people += len(people)
    assert seen_people > CASES  # the cases were not trivially empty


@pytest.mark.parametrize("net_like", [False, True])
def test_group_matches_reference_bit_for_bit_on_crowded_maps(net_like):
    """30 people, 10 % joints missing, per-pixel tag noise, flip tags (L = 2), adjust + refine:
    the regime where refine dominates (and untrained networks' outputs)."""
    rng = np.random.default_rng(11 if net_like else 12)
    sizes = (64,) if NO_JIT else (128, 128, 256)
    for k, size in enumerate(sizes):
        hm, tg = crowded_maps(rng, 30, (14, 17)[k % 2], size, tag_dim=2 - k % 2, net_like=net_like)
        people, scores = group(hm, tg)
        ref_people, ref_scores = ref.parse(hm, tg, True, True)
        assert len(people) >= 30
        np.testing.assert_array_equal(people, ref_people)
        np.testing.assert_array_equal(scores, ref_scores)


def test_exact_ties_and_duplicate_tag_keys():
    # Two equal plateau peaks of one joint carry the same tag value: the reference keys people
    # by that float, so the second candidate lands on (and resets) the existing person.
    hm = np.zeros((14, 24, 24), np.float32)
    tg = np.zeros((14, 24, 24, 1), np.float32)
    hm[0, 5, 5] = hm[0, 5, 15] = 0.5
    tg[0, 5, 5] = tg[0, 5, 15] = 1.0
    hm[1, 12, 8] = 0.7
    tg[1, 12, 8] = 1.2
    hm[1, 12, 18] = 0.7
    tg[1, 12, 18] = 1.0
    for adjust in (False, True):
        people, scores = group(hm, tg, adjust=adjust, refine=True)
        ref_people, ref_scores = ref.parse(hm, tg, adjust, True)
        np.testing.assert_allclose(people, ref_people, atol=1e-4)
        np.testing.assert_allclose(scores, ref_scores, atol=1e-5)


def test_known_people_are_recovered():
    rng = np.random.default_rng(4)
    hm = np.zeros((14, 128, 128), np.float32)
    tg = np.zeros((14, 128, 128, 1), np.float32)
    truth = {}
    yy, xx = np.mgrid[0:128, 0:128]
    for p, tag in enumerate((-4.0, 0.0, 4.0)):
        for j in range(14):
            x, y = int(rng.integers(4, 124)), int(rng.integers(4, 124))
            g = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 8).astype(np.float32) * 0.9
            hm[j] = np.maximum(hm[j], g)
            tg[j, max(0, y - 3):y + 4, max(0, x - 3):x + 4] = tag
            truth[tag, j] = (x, y)
    people, scores = group(hm, tg, adjust=False, refine=False)
    assert len(people) == 3
    for person in people:
        tag = float(person[person[:, 2] > 0, 3][0])
        for j in range(14):
            assert tuple(person[j, :2]) == truth[tag, j]
            assert person[j, 2] == pytest.approx(0.9, abs=1e-6)
    np.testing.assert_allclose(scores, 0.9, atol=1e-6)


def test_one_pixel_fires_exactly_there():
    hm = np.zeros((17, 16, 16), np.float32)
    tg = np.zeros((17, 16, 16, 2), np.float32)
    hm[3, 7, 11] = 0.8
    hm[3, 7, 12] = 0.3  # right neighbour larger than left: +0.25 in x
    people, scores = group(hm, tg, refine=False)
    assert people.shape == (1, 17, 5)
    np.testing.assert_array_equal(people[0, 3, :3], np.float32([11.75, 7.25, 0.8]))
    assert np.count_nonzero(people[0, :, 2]) == 1
    assert scores[0] == pytest.approx(0.8 / 17)


def test_no_people_and_bad_input():
    people, scores = group(np.zeros((14, 8, 8), np.float32), np.zeros((14, 8, 8, 1), np.float32))
    assert people.shape == (0, 14, 4) and scores.shape == (0,)
    with pytest.raises(ValueError, match=r"\(J, H, W\)"):
        group(np.zeros((14, 8, 8)), np.zeros((14, 8, 9, 1)))
    with pytest.raises(ValueError, match="nms_kernel must be a positive odd number, got 4"):
        group(np.zeros((14, 8, 8)), np.zeros((14, 8, 8, 1)), nms_kernel=4)
    with pytest.raises(ValueError, match="not a permutation"):
        group(np.zeros((3, 8, 8)), np.zeros((3, 8, 8, 1)), joint_order=(0, 0, 1))


def test_transform_back_inverts_the_letterbox():
    people = np.array([[[128.0, 96.0, 0.5, 0.0]]], np.float32)
    transform_back(people, 0.4, 320.0, 240.0, 256, 256, 1.0)
    np.testing.assert_allclose(people[0, 0, :2], [320.0, 160.0])
    people = np.array([[[64.0, 48.0, 0.5, 0.0]]], np.float32)
    transform_back(people, 0.4, 320.0, 240.0, 256, 256, 2.0)  # grouped at H/2
    np.testing.assert_allclose(people[0, 0, :2], [320.0, 160.0])


@pytest.mark.skipif(NO_JIT, reason="this is the no-JIT run itself")
def test_kernels_also_pass_as_plain_python():
    from tests.conftest import run_cli

    res = run_cli("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_kernels.py",
                  env={"NUMBA_DISABLE_JIT": "1"})
    assert res.returncode == 0, res.stdout[-3000:]
    assert "passed" in res.stdout
