"""The Python API (``runtime.PoseEstimator``): the same people as run.py's JSON, the same track
ids, and the README's example, run as it is written."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest

import runtime.api as api
from compile.eval.synthetic import walkers, write_video
from runtime import PoseEstimator, run
from tests.conftest import REPO, run_cli
from tests.oracle import OracleEngine, oracle_meta

FRAMES = 40


def oracle(truth: list[np.ndarray]) -> OracleEngine:
    return OracleEngine(oracle_meta("crowdpose", 256), [{"height": 480, "width": 640}] * len(truth),
                        truth)


def same_people(people, records: list[dict]) -> None:
    """``People`` equals the COCO records run.py wrote for the image (they round to 3 places)."""
    assert len(people) == len(records)
    for k, kp, score, box in zip(range(len(people)), people.keypoints, people.scores,
                                 people.boxes, strict=True):
        np.testing.assert_allclose(kp.ravel(), records[k]["keypoints"], atol=1e-3)
        assert score == pytest.approx(records[k]["score"])
        np.testing.assert_allclose(box, records[k]["bbox"], atol=2e-3)
        if people.track_ids is not None:
            assert people.track_ids[k] == records[k]["track_id"]


@pytest.mark.unit
def test_the_api_gives_run_py_s_people_for_an_image_and_its_ids_for_a_video(tmp_path, monkeypatch):
    truth, _ = walkers(FRAMES, noise=2.0, seed=5)
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.full((480, 640, 3), 40, np.uint8))
    monkeypatch.setattr(api, "Artifact", lambda folder: oracle(truth[:1]))
    assert run.main(["--model", "oracle", "--input", str(image), "--output", str(tmp_path / "img"),
                     "--quiet", "--no-render"]) == 0
    records = json.loads((tmp_path / "img" / "results.json").read_text())
    people = PoseEstimator(oracle(truth[:1]))(cv2.imread(str(image)))
    assert len(people) == 5 and people.track_ids is None
    same_people(people, records)

    video = write_video(tmp_path / "walk.avi", truth)
    monkeypatch.setattr(api, "Artifact", lambda folder: oracle(truth))
    assert run.main(["--model", "oracle", "--input", str(video), "--output", str(tmp_path / "vid"),
                     "--quiet", "--no-render", "--smooth"]) == 0
    lines = (tmp_path / "vid" / "results.jsonl").read_text().splitlines()
    from runtime.smoothing import OneEuroConfig

    est = PoseEstimator(oracle(truth), smoothing=OneEuroConfig())
    cap = cv2.VideoCapture(str(video))
    for line in lines:
        same_people(est.track(cap.read()[1]), json.loads(line)["people"])


@pytest.mark.unit
def test_the_api_refuses_what_it_cannot_use(tmp_path):
    truth, _ = walkers(2)
    est = PoseEstimator(oracle(truth))
    with pytest.raises(ValueError, match=r"expected a BGR image \(H, W, 3\).*shape \(480, 640\)"):
        est(np.zeros((480, 640), np.uint8))
    with pytest.raises(ValueError, match="unknown core set 'middle'; valid choices: default, big"):
        PoseEstimator(oracle(truth), cores="middle")
    with pytest.raises(ValueError, match="not a LitePose artifact folder"):
        PoseEstimator(tmp_path)


@pytest.mark.compile
def test_the_readme_api_example_runs_and_agrees_with_run_py(xs_host_artifact, tmp_path):
    block = re.search(r"<!-- api-example -->\n```python\n(.*?)```",
                      (REPO / "README.md").read_text(), re.S)
    assert block, "README.md lost its API example"
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "xs-host").symlink_to(xs_host_artifact)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "photo.jpg"), rng.integers(0, 255, (480, 640, 3), np.uint8))
    frames = [rng.integers(0, 255, (240, 320, 3), np.uint8) for _ in range(6)]
    writer = cv2.VideoWriter(str(tmp_path / "walk.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30,
                             (320, 240))
    for f in frames:
        writer.write(f)
    writer.release()
    (tmp_path / "example.py").write_text(block.group(1))
    res = run_cli("example.py", cwd=tmp_path, env={"PYTHONPATH": str(REPO)})
    assert res.returncode == 0, res.stderr
    first, ids = res.stdout.strip().splitlines()[-2:]
    count, j = int(first.split()[0]), 14
    assert f"({count}, {j}, 3) ({count},) ({count}, 4)" in first  # random weights: a crowd
    assert json.loads(ids) and all(i >= 1 or i == -1 for i in json.loads(ids))  # -1: no track
    res = run_cli("runtime/run.py", "--model", str(xs_host_artifact), "--input",
                  str(tmp_path / "photo.jpg"), "--output", str(tmp_path / "out"), "--no-render")
    assert res.returncode == 0, res.stderr
    records = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(records) == count
    same_people(PoseEstimator(xs_host_artifact)(cv2.imread(str(tmp_path / "photo.jpg"))), records)
