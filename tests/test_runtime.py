"""Device runtime: run.py end to end on a host artifact, pre/post-processing semantics, isolation."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from compile.bench import reference_parser as ref
from runtime.postprocess import merge_outputs
from runtime.preprocess import letterbox_for, preprocess
from tests.conftest import REPO, run_cli

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
FLIP = [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13]


def write_images(folder, shapes):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (h, w) in enumerate(shapes):
        img = cv2.GaussianBlur((rng.random((h, w, 3)) * 255).astype(np.uint8), (9, 9), 3)
        paths.append(folder / f"{1000 + i}.png")
        cv2.imwrite(str(paths[-1]), img)
    return paths


def torch_merge(outputs, size, j, fast=False):
    """Spec §3.3 written with torch ops (the reference's own primitives)."""
    up = lambda t, s: F.interpolate(t, size=s, mode="bilinear", align_corners=False)  # noqa: E731
    h2 = tuple(outputs[0][1].shape[2:])
    target = h2 if fast else size
    o0, o1 = (torch.from_numpy(a) for a in outputs[0])
    o0u = up(o0, h2)
    hms, tags = [up((o0u[:, :j] + o1[:, :j]) / 2, target)], [up(o0u[:, j:], target)]
    if len(outputs) == 2:
        p0, p1 = (torch.from_numpy(a) for a in outputs[1])
        f0, f1 = torch.flip(up(p0, h2), [3]), torch.flip(p1, [3])
        hms.append(up((f0[:, :j][:, FLIP] + f1[:, :j][:, FLIP]) / 2, target))
        tags.append(up(f0[:, j:][:, FLIP], target))
    hm = hms[0] if len(hms) == 1 else (hms[0] + hms[1]) / 2
    return hm[0].numpy(), torch.stack([t[0] for t in tags], dim=-1).numpy()


@pytest.mark.unit
@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("fast", [False, True])
def test_merge_outputs_matches_spec_in_torch(flip, fast):
    rng = np.random.default_rng(1)
    outs = [(rng.standard_normal((1, 28, 16, 24)).astype(np.float32),
             rng.standard_normal((1, 14, 32, 48)).astype(np.float32)) for _ in range(1 + flip)]
    heat, tags = merge_outputs(outs, (64, 96), 14, FLIP, fast)
    ref_heat, ref_tags = torch_merge(outs, (64, 96), 14, fast)
    assert heat.shape == ref_heat.shape and tags.shape == ref_tags.shape
    np.testing.assert_allclose(heat, ref_heat, atol=1e-5)
    np.testing.assert_allclose(tags, ref_tags, atol=1e-5)


@pytest.mark.unit
def test_coco_bbox_spans_the_detected_joints_only():
    from runtime.results import coco_results

    people = np.zeros((2, 14, 4), np.float32)
    people[0, :3] = [[50, 60, 0.9, 0], [80, 40, 0.5, 0], [70, 90, 0.2, 0]]
    people[0, 3:, :2] = -37.5  # absent joints: score 0, mapped from the map origin
    people[1, 5] = [10, 20, 0.7, 0]  # one joint: an empty box at that joint
    people[1, 6:, :2] = 500.0
    r = coco_results(people, np.array([0.5, 0.2]), image_id=7)
    assert r[0]["bbox"] == [50.0, 40.0, 30.0, 50.0]
    assert r[1]["bbox"] == [10.0, 20.0, 0.0, 0.0]
    assert r[0]["keypoints"][9:12] == [-37.5, -37.5, 0.0]


@pytest.mark.unit
def test_letterbox_keeps_aspect_and_maps_points():
    box = letterbox_for((480, 640), (256, 256))
    assert box.scale == pytest.approx(0.4) and (box.center_x, box.center_y) == (320, 240)
    img = np.zeros((480, 640, 3), np.uint8)
    img[100:110, 200:210] = 255  # a white square at x 200..209, y 100..109
    x, _ = preprocess(img, (256, 256), MEAN, STD)
    assert x.shape == (1, 3, 256, 256) and x.dtype == np.float32
    white = np.argwhere(x[0, 0] > 1.5)  # normalised white
    cy, cx = white.mean(axis=0)
    assert cx == pytest.approx((204.5 - 320) * 0.4 + 128, abs=0.6)
    assert cy == pytest.approx((104.5 - 240) * 0.4 + 128, abs=0.6)
    assert np.allclose(x[0, :, 5, 128], (0 - np.array(MEAN)) / STD, atol=1e-6)  # black padding


@pytest.mark.unit
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to see a pin")
@pytest.mark.parametrize("threads", [0, 1])
def test_a_default_pool_leaves_the_callers_cpus(threads):
    """PoseEstimator configures TVM's pool on the application's own thread: TVM pinned it (and
    every process it starts) to CPU 0; 'big' still pins on purpose."""
    code = ("import os, subprocess, sys; from runtime.artifact import configure_threads; "
            f"configure_threads({threads}); print(sorted(os.sched_getaffinity(0))); "
            "subprocess.run([sys.executable, '-c', 'import os; print(sorted(os.sched_getaffinity(0)))'])")
    res = run_cli("-c", code)
    assert res.returncode == 0, res.stderr
    cpus = str(sorted(os.sched_getaffinity(0)))
    assert res.stdout.split("\n")[:2] == [cpus, cpus], res.stdout


def test_runtime_never_imports_torch_or_compile():
    """Every module of runtime/ and kernels/ (found on disk, not listed here) imported in a
    fresh interpreter pulls in neither torch nor compile/."""
    names = sorted(room if p.stem == "__init__" else f"{room}.{p.stem}"
                   for room in ("runtime", "kernels") for p in (REPO / room).glob("*.py"))
    assert {"runtime.stages", "runtime.placement", "runtime.tracking", "kernels.oks"} <= set(names)
    code = (f"import importlib, sys\nfor m in {names!r}: importlib.import_module(m)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'compile'))\n"
            f"print('imported', {len(names)}, 'bad', bad); sys.exit(1 if bad else 0)")
    res = run_cli("-c", code)
    assert res.returncode == 0 and f"imported {len(names)} bad []" in res.stdout, (
        res.stdout + res.stderr)


@pytest.mark.unit
def test_run_help_version_and_bad_input(tmp_path):
    for flag in ("--help", "--version"):
        res = run_cli("runtime/run.py", flag)
        assert res.returncode == 0 and "runtime/run.py" in res.stdout
    res = run_cli("runtime/run.py", "--model", str(tmp_path), "--input", "x.jpg",
                  "--output", str(tmp_path / "o"))
    assert res.returncode == 2 and "metadata.json is missing" in res.stderr
    res = run_cli("runtime/run.py", "--model", "m", "--input", "x", "--output", "o",
                  "--cores", "medium")
    assert res.returncode == 2 and "invalid choice: 'medium'" in res.stderr


@pytest.mark.unit
def test_an_installed_kernels_package_does_not_shadow_ours(tmp_path):
    fake = tmp_path / "site" / "kernels"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('the unrelated PyPI kernels package')\n")
    env = {"PYTHONPATH": str(tmp_path / "site")}
    res = run_cli("-c", "import kernels", cwd=tmp_path, env=env)
    assert res.returncode != 0 and "unrelated PyPI" in res.stderr  # the impostor is importable
    res = run_cli("runtime/run.py", "--version", env=env)  # run.py imports kernels at start
    assert res.returncode == 0, res.stderr


@pytest.mark.compile
@pytest.mark.parametrize("flip", [False, True])
def test_run_py_end_to_end_matches_reference(xs_host_artifact, tmp_path, flip):
    paths = write_images(tmp_path / "imgs", [(480, 640), (300, 200), (256, 256)])
    out = tmp_path / "out"
    args = ["runtime/run.py", "--model", str(xs_host_artifact), "--input", str(tmp_path / "imgs"),
            "--output", str(out), "--save-raw"] + (["--flip"] if flip else [])
    res = run_cli(*args)
    assert res.returncode == 0, res.stderr
    assert "RANDOM WEIGHTS" in res.stdout and "frames/s" in res.stdout
    for stage in ("decode", "pre", "infer", "group", "write"):
        assert f"{stage} " in res.stdout
    results = json.loads((out / "results.json").read_text())
    assert {r["image_id"] for r in results} <= {1000, 1001, 1002}
    for path in paths:
        assert (out / f"{path.stem}.jpg").is_file()
        raw = np.load(out / "raw" / f"{path.stem}.npz")
        img = cv2.imread(str(path))
        x, box = preprocess(img, (256, 256), MEAN, STD)
        np.testing.assert_allclose(raw["input"], x, atol=1e-6)
        outputs = [(raw["output0"], raw["output1"])]
        if flip:  # the mirrored pass is not saved: recompute it through the library
            from runtime.artifact import Artifact

            outputs.append(Artifact(xs_host_artifact).infer(np.ascontiguousarray(x[..., ::-1])))
        heat, tags = torch_merge(outputs, (256, 256), 14)
        people, scores = ref.parse(heat, tags)
        people[:, :, 0] = (people[:, :, 0] - 128) / box.scale + box.center_x
        people[:, :, 1] = (people[:, :, 1] - 128) / box.scale + box.center_y
        mine = [r for r in results if r["image_id"] == int(path.stem)]
        assert len(mine) == len(people)
        for r, person, score in zip(mine, people, scores, strict=True):
            assert r["score"] == pytest.approx(float(score), abs=1e-5)
            kp = np.array(r["keypoints"]).reshape(14, 3)
            np.testing.assert_allclose(kp[:, :2], person[:, :2], atol=2e-3)  # JSON rounds to 1e-3
            seen = person[person[:, 2] > 0, :2]  # the reference's detected joints, not r's own
            np.testing.assert_allclose(r["bbox"], [*seen.min(axis=0), *np.ptp(seen, axis=0)],
                                       atol=2e-3)


@pytest.mark.compile
def test_folder_with_a_corrupt_file(xs_host_artifact, tmp_path):
    write_images(tmp_path / "imgs", [(200, 300), (240, 240)])
    (tmp_path / "imgs" / "0999.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    res = run_cli("runtime/run.py", "--model", str(xs_host_artifact), "--input",
                  str(tmp_path / "imgs"), "--output", str(tmp_path / "out"), "--fast")
    assert res.returncode == 1
    assert "0999.jpg" in res.stderr and "1 input(s) could not be read" in res.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {r["image_id"] for r in results} == {1000, 1001}
    assert (tmp_path / "out" / "1000.jpg").is_file() and (tmp_path / "out" / "1001.jpg").is_file()


@pytest.mark.compile
def test_video_input(xs_host_artifact, tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    rng = np.random.default_rng(5)
    for _ in range(4):
        writer.write((rng.random((120, 160, 3)) * 255).astype(np.uint8))
    writer.release()
    res = run_cli("runtime/run.py", "--model", str(xs_host_artifact), "--input", str(video),
                  "--output", str(tmp_path / "out"), "--threads", "1")
    assert res.returncode == 0, res.stderr
    assert "4 frames" in res.stdout and "4/4" in res.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {r["image_id"] for r in results} <= {0, 1, 2, 3} and results
    rendered = cv2.VideoCapture(str(tmp_path / "out" / "clip_pose.mp4"))
    assert int(rendered.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    assert not list((tmp_path / "out").glob(".*_pose-*.mp4"))
