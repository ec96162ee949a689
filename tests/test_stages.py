"""Pipelined stages, placement, shutdown, dropped camera frames and the source-keyed kernel cache."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.pipeline import Prediction
from runtime.placement import cpu_clusters, plan
from runtime.preprocess import letterbox_for
from runtime.sources import Frame, Source
from runtime.stages import Runner
from runtime.steps import StageError
from runtime.writer import Writer
from tests.conftest import PYTHON, REPO, run_cli

SKELETON = [[0, 1], [1, 2]]


class FakePipeline:
    """Stands in for the TVM pipeline: ``infer`` and ``decode`` can be slowed down or fail."""

    can_merge_on_post = merge_on_post = False  # it merges nothing
    tracker = None  # nor tracks

    def __init__(self, infer_s=0.0, decode_s=0.0, fail_at: tuple[str, int] | None = None):
        self.infer_s, self.decode_s, self.fail_at = infer_s, decode_s, fail_at
        self.calls = {"infer": 0, "decode": 0}

    def _step(self, stage: str, seconds: float) -> None:
        if self.fail_at == (stage, self.calls[stage]):
            raise RuntimeError(f"boom in {stage}")
        self.calls[stage] += 1
        time.sleep(seconds)

    def prepare(self, image):
        return image.astype(np.float32)[None], letterbox_for(image.shape[:2], image.shape[:2])

    def infer(self, x, keep_raw=False):
        self._step("infer", self.infer_s)
        return [(x, x)]

    def decode(self, outputs, box, x=None):
        self._step("decode", self.decode_s)
        value = float(outputs[0][0].mean())
        people = np.array([[[10, 10, 0.9, value], [20, 20, 0.8, value], [30, 40, 0.7, value]]],
                          np.float32)
        return Prediction(people, np.array([value], np.float32), box)


def frames(n: int, kind: str = "video"):
    rng = np.random.default_rng(0)
    for i in range(n):
        yield Frame(f"clip_{i:06d}", i, (rng.random((48, 64, 3)) * 255).astype(np.uint8))


def run(pipeline, source, out: Path, pipelined: bool, post_workers: int = 1):
    out.mkdir(parents=True, exist_ok=True)
    writer = Writer(out, source, SKELETON, None, render=True, progress=False)
    runner = Runner(pipeline, source, writer, post_workers=post_workers)
    try:
        runner.run_pipelined() if pipelined else runner.run_serial()
    finally:
        writer.close()
    return runner.stats, json.loads((out / "results.json").read_text())


@pytest.mark.unit
def test_pipelined_and_serial_give_the_same_frames_in_order(tmp_path):
    results = [run(FakePipeline(0.002, 0.001), Source("video", frames(12), 12, "clip"),
                   tmp_path / str(p), p)[1] for p in (False, True)]
    assert results[0] == results[1] and [r["image_id"] for r in results[0]] == list(range(12))


@pytest.mark.unit
def test_post_workers_write_the_serial_output_in_frame_order(tmp_path):
    """Three workers whose frames finish out of order (a random sleep each) still give the
    serial run's JSON, JSON Lines and video."""
    class Jittery(FakePipeline):
        def decode(self, outputs, box, x=None):
            time.sleep(float(np.random.default_rng(int(outputs[0][0].sum()) % 97).random()) / 50)
            return super().decode(outputs, box, x)

    out = {}
    for name, workers, pipelined in (("serial", 1, False), ("workers", 3, True)):
        stats, out[name] = run(Jittery(0.0, 0.0), Source("video", frames(24), 24, "clip"),
                               tmp_path / name, pipelined, workers)
        assert stats.frames == 24
    assert out["serial"] == out["workers"] and len(out["serial"]) == 24
    lines = [(tmp_path / n / "results.jsonl").read_text().splitlines() for n in out]
    assert lines[0] == lines[1] and [json.loads(x)["image_id"] for x in lines[0]] == list(range(24))
    counts = [int(cv2.VideoCapture(str(tmp_path / n / "clip_pose.mp4")).get(
        cv2.CAP_PROP_FRAME_COUNT)) for n in out]
    assert counts == [24, 24]


@pytest.mark.unit
@pytest.mark.parametrize("stage", ["infer", "decode"])
def test_a_failing_stage_stops_the_run_and_keeps_valid_partial_output(tmp_path, stage):
    source = Source("video", frames(20), 20, "clip")
    with pytest.raises(StageError, match=f"boom in {stage}") as info:
        run(FakePipeline(0.001, 0.001, fail_at=(stage, 5)), source, tmp_path, True)
    assert info.value.stage == ("infer" if stage == "infer" else "post")
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["image_id"] for r in results] == list(range(5))  # what finished, in order
    video = cv2.VideoCapture(str(tmp_path / "clip_pose.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    assert not list(tmp_path.glob(".*_pose-*.mp4"))


@pytest.mark.unit
@pytest.mark.parametrize("live", ["camera", "stream"])
def test_a_fast_camera_drops_the_oldest_frames_and_a_file_never_drops(tmp_path, live):
    slow = FakePipeline(0.0, 0.02)
    stats, results = run(slow, Source(live, frames(40), None, "camera0"), tmp_path / "cam", True)
    assert stats.dropped > 0 and stats.frames + stats.dropped == 40
    ids = [r["image_id"] for r in results]
    assert ids == sorted(ids) and ids[-1] == 39  # the newest frames survive, order kept
    stats, results = run(FakePipeline(0.0, 0.02), Source("video", frames(40), 40, "clip"),
                         tmp_path / "file", True)
    assert stats.dropped == 0 and len(results) == 40


@pytest.mark.unit
def test_stats_exclude_warmup_and_report_overlap(tmp_path):
    stats, _ = run(FakePipeline(0.01, 0.01), Source("video", frames(10), 10, "clip"), tmp_path, True)
    d = stats.to_dict()
    assert d["warmup_frames_excluded"] == 2 and d["frames"] == 10
    busy = sum(st["busy_pct"] for st in d["stages"].values()) / 100
    assert d["stages"]["infer"]["median_ms"] >= 9  # the sleeps are timed
    assert d["overlap"] == pytest.approx(busy, abs=0.02) and d["overlap"] > 1.0  # infer || post
    assert d["steady_frames_per_s"] > 0


@pytest.mark.unit
def test_clusters_from_capacity_and_the_placement_plan(tmp_path):
    for cpu, cap in enumerate([446, 446, 446, 446, 1024, 1024]):
        (tmp_path / f"cpu{cpu}").mkdir()
        (tmp_path / f"cpu{cpu}" / "cpu_capacity").write_text(f"{cap}\n")
    clusters = cpu_clusters(tmp_path, allowed=set(range(6)))
    assert clusters == [[4, 5], [0, 1, 2, 3]]
    big = plan("big", 0, clusters)
    assert big.infer == (4, 5) and big.other == (0, 1, 2, 3)
    little = plan("little", 2, clusters)
    assert little.infer == (0, 1) and little.other == (2, 3, 4, 5)
    flat = plan("default", 1, [[0, 1]])
    assert flat.infer == (0,) and flat.other == (1,)
    assert plan("default", 0, [[0, 1]]).infer == ()  # all cores to inference: nothing pinned
    assert cpu_clusters(tmp_path / "none", allowed={0, 1}) == [[0, 1]]


def _video(path: Path, n: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    rng = np.random.default_rng(7)
    for _ in range(n):
        writer.write(cv2.GaussianBlur((rng.random((120, 160, 3)) * 255).astype(np.uint8), (9, 9), 3))
    writer.release()
    return path


@pytest.mark.compile
def test_run_py_pipelined_equals_serial_on_a_video(xs_host_artifact, tmp_path):
    video = _video(tmp_path / "clip.avi", 5)
    outs = {}
    for mode in ("pipeline", "no-pipeline"):
        res = run_cli("runtime/run.py", "--model", str(xs_host_artifact), "--input", str(video),
                      "--output", str(tmp_path / mode), f"--{mode}", "--threads", "1", "--stats",
                      str(tmp_path / f"{mode}.json"))
        assert res.returncode == 0, res.stderr
        outs[mode] = json.loads((tmp_path / mode / "results.json").read_text())
        stats = json.loads((tmp_path / f"{mode}.json").read_text())
        assert stats["frames"] == 5 and set(stats["stages"]) >= {"pre", "infer", "group", "write"}
        pipelined = mode == "pipeline"  # the flag was honoured, as the run says and records
        assert f"stages {'pipelined' if pipelined else 'serial'}" in res.stdout
        assert stats["pipelined"] is pipelined
    assert outs["pipeline"] == outs["no-pipeline"] and outs["pipeline"]


@pytest.mark.compile
def test_run_py_stops_on_sigint_and_keeps_valid_results(xs_host_artifact, tmp_path):
    video = _video(tmp_path / "long.avi", 200)
    proc = subprocess.Popen([PYTHON, "runtime/run.py", "--model", str(xs_host_artifact), "--input",
                             str(video), "--output", str(tmp_path / "out"), "--quiet"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list((tmp_path / "out").glob(".*_pose-*.mp4")):
            time.sleep(0.2)  # the first rendered frame exists: all stages are running
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        t0 = time.time()
        _out, err = proc.communicate(timeout=30)
        assert time.time() - t0 < 5, "stages did not stop promptly"
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert isinstance(results, list)
    assert (tmp_path / "out" / "long_pose.mp4").is_file()


@pytest.mark.unit
def test_kernel_cache_follows_an_edit_of_a_callee(tmp_path):
    """An edit to refine.py alone must reach the cached ``group`` (which lives in __init__.py)."""
    shutil.copytree(REPO / "kernels", tmp_path / "kernels",
                    ignore=shutil.ignore_patterns("__pycache__"))
    code = ("import numpy as np, kernels\n"
            "hm = np.zeros((14, 32, 32), np.float32); tg = np.zeros((14, 32, 32, 1), np.float32)\n"
            "hm[0, 5, 5] = hm[1, 9, 9] = 0.9\n"
            "print(kernels.group(hm, tg)[1].tolist())")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(tmp_path)}

    def scores():
        res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, text=True,
                             capture_output=True, timeout=600)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout.strip().splitlines()[-1])

    before = scores()
    assert before and before[0] != 42.0
    scores()  # now served from the cache
    refine = tmp_path / "kernels" / "refine.py"
    text = refine.read_text()
    line = "scores[p] = np.float32(sum_f32(col, n_j, 0) / np.float32(n_j))"
    assert line in text
    refine.write_text(text.replace(line, "scores[p] = np.float32(42.0)"))
    assert set(scores()) == {42.0}


@pytest.mark.compile
def test_results_jsonl_survives_a_sigkill_mid_video(xs_host_artifact, tmp_path):
    """kill -9 while frames are being written: every line of results.jsonl parses, one per
    finished frame, in frame order from the first."""
    video = _video(tmp_path / "long.avi", 200)
    jsonl = tmp_path / "out" / "results.jsonl"
    proc = subprocess.Popen([PYTHON, "runtime/run.py", "--model", str(xs_host_artifact), "--input",
                             str(video), "--output", str(tmp_path / "out"), "--quiet"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and (not jsonl.is_file() or jsonl.read_bytes().count(b"\n") < 3):
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    data = jsonl.read_bytes()
    assert data.endswith(b"\n"), "a half line was left behind"
    lines = [json.loads(line) for line in data.decode().splitlines()]
    assert len(lines) >= 3 and [r["image_id"] for r in lines] == list(range(len(lines)))
    assert all(isinstance(r["people"], list) for r in lines)
