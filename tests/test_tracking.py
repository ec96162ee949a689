"""Tracking and smoothing: the OKS kernels against slow references, the tracker and the
One-Euro smoother on people whose identities are known, and run.py on videos of walking
people played by the oracle engine."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import runtime.api as api
from compile.eval.synthetic import walkers, write_video
from compile.model.zoo import DATASETS
from kernels.oks import greedy_match, oks_matrix
from runtime import run
from runtime.smoothing import KeypointSmoother, OneEuroConfig
from runtime.tracking import NO_TRACK, Tracker, TrackerConfig
from tests.oracle import OracleEngine, id_switches, oracle_meta

pytestmark = pytest.mark.unit
SIGMAS = DATASETS["crowdpose"].oks_sigmas
FRAMES = 90


def slow_oks(a: np.ndarray, b: np.ndarray, sigmas, threshold: float, min_area: float):
    """COCO's OKS, pair by pair, joint by joint."""
    out = np.zeros((len(a), len(b)))
    for t, track in enumerate(a):
        seen = track[:, 2] > threshold
        if seen.any():
            w = track[seen, 0].max() - track[seen, 0].min()
            h = track[seen, 1].max() - track[seen, 1].min()
            area = max(w * h, min_area)
        else:
            area = min_area
        for p, person in enumerate(b):
            terms = [math.exp(-((track[j, 0] - person[j, 0]) ** 2 + (track[j, 1] - person[j, 1]) ** 2)
                              / (2 * area * (2 * sigmas[j]) ** 2))
                     for j in range(len(sigmas)) if track[j, 2] > threshold and person[j, 2] > threshold]
            out[t, p] = sum(terms) / len(terms) if terms else 0.0
    return out


def slow_greedy(sim: np.ndarray, threshold: float) -> np.ndarray:
    match = np.full(sim.shape[1], -1)
    pairs = sorted((-sim[t, p], t, p) for t in range(sim.shape[0]) for p in range(sim.shape[1])
                    if sim[t, p] >= threshold)
    taken = set()
    for _, t, p in pairs:
        if t not in taken and match[p] < 0:
            taken.add(t)
            match[p] = t
    return match


def random_people(rng, n: int, spread: float = 600.0) -> np.ndarray:
    centre = rng.uniform(0, spread, (n, 1, 2))
    xy = centre + rng.normal(0, 25, (n, 14, 2))
    score = np.where(rng.random((n, 14, 1)) < 0.2, 0.0, rng.uniform(0.05, 1, (n, 14, 1)))
    return np.concatenate([xy, score], axis=2).astype(np.float32)


def test_oks_and_greedy_match_equal_the_slow_references():
    rng = np.random.default_rng(0)
    sigmas = np.array(SIGMAS)
    for case in range(60):
        a = random_people(rng, int(rng.integers(0, 12)), spread=200 if case % 2 else 600)
        b = random_people(rng, int(rng.integers(0, 12)), spread=200 if case % 2 else 600)
        if case % 3 == 0 and len(a) and len(b):  # some near-copies, so that matches exist
            b[: min(len(a), len(b))] = a[: min(len(a), len(b))] + rng.normal(0, 3, b[: len(a)].shape)
        got = oks_matrix(a, b, sigmas, 0.1, 256.0)
        np.testing.assert_allclose(got, slow_oks(a, b, sigmas, 0.1, 256.0), atol=1e-6)
        sim = np.round(got, 1)  # ties
        np.testing.assert_array_equal(greedy_match(sim, 0.3), slow_greedy(sim, 0.3))


def test_tracker_keeps_ids_of_walking_people_through_a_crossing_and_an_exit():
    truth, ids = walkers(FRAMES)
    x = [{int(i): p[:, 0].mean() for i, p in zip(ids[f], truth[f], strict=True)} for f in (0, -1)]
    assert x[0][0] < x[0][1] and x[1][0] > x[1][1]  # persons 0 and 1 cross
    assert 4 not in ids[FRAMES // 3 + 6] and 4 in ids[-1]  # person 4 leaves and comes back
    tracker = Tracker(SIGMAS)
    results = []
    for people in truth:
        got = tracker.update(people)
        results.append([{"keypoints": p.ravel().tolist(), "track_id": int(t)}
                        for p, t in zip(people, got, strict=True)])
    switches, history = id_switches(ids, truth, results)
    assert switches == 0 and sorted(h[0] for h in history.values()) == [1, 2, 3, 4, 5]
    short = Tracker(SIGMAS, buffer=5)  # person 4 is away ~12 frames: a new id when it returns
    results = [[{"keypoints": p.ravel().tolist(), "track_id": int(t)}
                for p, t in zip(people, short.update(people), strict=True)] for people in truth]
    _, history = id_switches(ids, truth, results)
    assert len(history[4]) == 2 and all(len(history[p]) == 1 for p in range(4))


def test_tracker_ids_follow_the_order_given_and_small_people_start_no_track():
    rng = np.random.default_rng(1)
    people = random_people(rng, 6)
    people[:, :, 2] = 0.9
    tracker = Tracker(SIGMAS)
    first = tracker.update(people)
    assert first.tolist() == [1, 2, 3, 4, 5, 6]
    perm = rng.permutation(6)
    assert tracker.update(people[perm]).tolist() == first[perm].tolist()
    tiny = people[:1].copy()
    tiny[0, 2:, 2] = 0  # two joints: below min_joints, and far from every track
    tiny[0, :, :2] += 5000
    assert tracker.update(tiny).tolist() == [NO_TRACK]
    assert tracker.update(np.zeros((0, 14, 3), np.float32)).tolist() == []


def test_tracker_refuses_bad_input_naming_it():
    with pytest.raises(ValueError, match=r"keypoints must be \(P, 14, 3\).*\(2, 17, 3\)"):
        Tracker(SIGMAS).update(np.zeros((2, 17, 3)))
    with pytest.raises(ValueError, match="positive numbers"):
        Tracker([0.1, -1.0])
    with pytest.raises(ValueError, match="oks_threshold must be in"):
        TrackerConfig(oks_threshold=1.5)
    with pytest.raises(ValueError, match="min_cutoff must be > 0, got 0"):
        OneEuroConfig(min_cutoff=0)


def test_one_euro_reduces_jitter_and_follows_a_step_within_a_few_frames():
    rng = np.random.default_rng(2)
    fps, n = 30.0, 120
    still = np.zeros((n, 1, 14, 3), np.float32)
    still[..., 0], still[..., 1], still[..., 2] = 300.0, 200.0, 0.9
    noisy = still.copy()
    noisy[..., :2] += rng.normal(0, 2.0, noisy[..., :2].shape)
    smoother = KeypointSmoother(fps)
    out = np.stack([smoother(np.array([1]), f) for f in noisy])
    raw_jitter = np.diff(noisy[20:, ..., 0], axis=0).std()
    assert np.diff(out[20:, ..., 0], axis=0).std() < 0.3 * raw_jitter
    step = still.copy()
    step[n // 2:, ..., 0] += 100.0  # the person jumps 100 px
    smoother = KeypointSmoother(fps)
    out = np.stack([smoother(np.array([1]), f) for f in step])[:, 0, 0, 0]
    behind = np.nonzero(np.abs(out[n // 2:] - 400.0) > 10.0)[0]  # frames more than 10 px behind
    assert out[n // 2 - 1] == pytest.approx(300.0) and len(behind) <= 4
    untracked = KeypointSmoother(fps)(np.array([NO_TRACK]), step[-1])
    np.testing.assert_array_equal(untracked, step[-1])


@pytest.fixture
def oracle_video(tmp_path, monkeypatch):
    """A video of five walking people (noise, drop as given) and run.py with the oracle
    engine playing the network for it; returns (run, truth, ids)."""
    def make(noise: float = 0.0, drop: float = 0.0, seed: int = 0):
        truth, ids = walkers(FRAMES, noise=noise, drop=drop, seed=seed)
        video = write_video(tmp_path / "walk.avi", truth)
        meta = oracle_meta("crowdpose", 256)
        images = [{"height": 480, "width": 640}] * FRAMES
        monkeypatch.setattr(api, "Artifact", lambda folder: OracleEngine(meta, images, truth))

        def run_py(*extra: str, output: str = "out") -> tuple[int, list[list[dict]]]:
            out = tmp_path / output
            rc = run.main(["--model", "oracle", "--input", str(video), "--output", str(out),
                           "--quiet", "--no-render", *extra])
            lines = (out / "results.jsonl").read_text().splitlines()
            return rc, [json.loads(x)["people"] for x in lines]
        return run_py, truth, ids
    return make


def test_run_py_tracks_walking_people_with_no_id_switch(oracle_video, capsys):
    run_py, truth, ids = oracle_video()
    rc, frames = run_py()
    assert rc == 0 and len(frames) == FRAMES
    switches, history = id_switches(ids, truth, frames)
    assert switches == 0 and set(history) == {0, 1, 2, 3, 4}  # 4 left and came back: same id
    assert "5 tracks" in capsys.readouterr().out
    rc, frames = run_py("--track-buffer", "5", output="short")
    _, history = id_switches(ids, truth, frames)
    assert rc == 0 and len(history[4]) == 2  # away longer than the buffer: a new id


def test_run_py_reports_switches_on_noisy_walkers_and_smoothing_keeps_them(oracle_video):
    """4 px of jitter and 15 % of joints missed, over three clips: few switches (persons 3
    and 4 overlap almost wholly near the end), and smoothing does not add any."""
    counts = {"plain": 0, "smooth": 0}
    person_frames = 0
    for seed in (3, 4, 5):
        run_py, truth, ids = oracle_video(noise=4.0, drop=0.15, seed=seed)
        person_frames += sum(len(f) for f in truth)
        for name, extra in (("plain", ()), ("smooth", ("--smooth",))):
            rc, frames = run_py(*extra, output=f"{name}{seed}")
            assert rc == 0
            counts[name] += id_switches(ids, truth, frames)[0]
    print(f"noisy walkers: {counts['plain']} id switches in {person_frames} person-frames "
          f"({1000 * counts['plain'] / person_frames:.1f} per 1000); --smooth: {counts['smooth']}")
    assert counts["plain"] <= 6 and counts["smooth"] <= counts["plain"] + 2


def test_track_ids_reach_results_json_and_no_track_leaves_them_out(oracle_video, tmp_path):
    run_py, _, _ = oracle_video()
    run_py(output="on")
    coco = json.loads((tmp_path / "on" / "results.json").read_text())
    assert coco and all(isinstance(r["track_id"], int) for r in coco)
    run_py("--no-track", output="off")
    coco = json.loads((tmp_path / "off" / "results.json").read_text())
    assert coco and not any("track_id" in r for r in coco)


class FakeStream:
    """What ``cv2.VideoCapture`` gives for a network stream that sends ``n`` frames and stops."""

    def __init__(self, url: str, n: int = 12):
        self.url, self.left, self.released = url, n, False

    def isOpened(self) -> bool:
        return True

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.full((480, 640, 3), 40, np.uint8)

    def get(self, prop: int) -> float:
        return 90000.0  # what RTSP sources often report as their frame rate

    def release(self) -> None:
        self.released = True


def test_a_stream_that_stops_keeps_its_frames_and_names_the_url(tmp_path, monkeypatch, capsys):
    import runtime.sources as sources

    url = "rtsp://127.0.0.1:8554/live?token=x"
    source = sources.open_source(url, capture=FakeStream)
    assert (source.kind, source.live, source.video_like, source.fps) == ("stream", True, True, 30.0)
    got = list(source.frames)
    assert len(got) == 13 and got[-1].image is None and url in got[-1].error
    truth, _ = walkers(12)
    meta = oracle_meta("crowdpose", 256)
    monkeypatch.setattr(sources, "open_capture", FakeStream)
    monkeypatch.setattr(api, "Artifact", lambda folder: OracleEngine(
        meta, [{"height": 480, "width": 640}] * 12, truth))
    rc = run.main(["--model", "oracle", "--input", url, "--output", str(tmp_path), "--quiet",
                   "--no-render"])
    lines = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    out = capsys.readouterr()
    dropped = int(out.out.split("dropped ")[1].split(",")[0])  # a live source drops the oldest
    assert rc == 1 and len(lines) - 1 + dropped == 12 and "error" in lines[-1]
    frames = [x["image_id"] for x in lines[:-1]]
    assert frames == sorted(frames) and frames[-1] == 11 and all(x["people"] for x in lines[:-1])
    assert all("track_id" in p for x in lines for p in x["people"])  # a stream is tracked
    assert f"stream {url} stopped after 12 frames" in out.err
    assert json.loads((tmp_path / "results.json").read_text())


def test_an_unreachable_stream_and_a_missing_camera_are_clear_errors(tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"rtsp://127.0.0.1:{port}/live"
    for spec, message in ((url, f"cannot open stream {url!r}"),
                          ("/dev/video99", "cannot open camera /dev/video99")):
        rc = run.main(["--model", str(tmp_path), "--input", spec, "--output", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert rc == 2 and ("error: " in err), err
    from runtime.sources import open_source

    for spec, message in ((url, f"cannot open stream {url!r}"),
                          ("/dev/video99", "cannot open camera /dev/video99")):
        with pytest.raises(ValueError, match=message.replace("?", r"\?")):
            open_source(spec)


@pytest.mark.parametrize("args,needle", [
    (["--track-threshold", "1.5"], "--track-threshold: expected a number in [0, 1], got 1.5"),
    (["--track-buffer", "0"], "--track-buffer: expected an integer >= 1, got 0"),
    (["--smooth-beta", "-1"], "--smooth-beta: expected a number >= 0, got -1.0"),
    (["--smooth-min-cutoff", "x"], "--smooth-min-cutoff: expected a number > 0, got 'x'"),
    (["--smooth", "--no-track"], "--smooth filters tracked people"),
])
def test_bad_tracking_options_are_usage_errors_naming_the_value(args, needle, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        run.main(["--model", str(tmp_path), "--input", "x.mp4", "--output", str(tmp_path), *args])
    assert info.value.code == 2 and needle in capsys.readouterr().err
