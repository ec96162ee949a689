"""Faults a careful user meets: foreign or damaged libraries, signals, interrupted rebuilds,
permissions, mute trackers, unwritable outputs and truncated inputs (one test per defect)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.atomic import EXEC_MODE, atomic_dir, atomic_path, write_json_atomic
from runtime.library import file_sha256
from runtime.meta import ArtifactMeta, MetadataError
from runtime.sources import open_source, read_image
from runtime.stages import Runner
from runtime.writer import Writer
from tests.conftest import PYTHON, REPO, run_cli
from tests.test_meta import sample
from tests.test_stages import SKELETON, FakePipeline, _video, frames

EVIL_C = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void evil(void) {
    FILE *f = fopen(getenv("EVIL_MARKER"), "w"); if (f) { fputs("ran", f); fclose(f); }
}
"""


@pytest.fixture
def evil_library(tmp_path) -> Path:
    """A shared library whose constructor writes ``$EVIL_MARKER`` when anything loads it."""
    src = tmp_path / "evil.c"
    src.write_text(EVIL_C)
    lib = tmp_path / "evil.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return lib


def _artifact_with(folder: Path, library: str) -> Path:
    """An artifact folder whose metadata names ``library``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.json").write_text(json.dumps({**sample().to_dict(), "library": library}))
    return folder


@pytest.mark.unit
@pytest.mark.parametrize("library", ["../evil.so", "ABSOLUTE", "sub/model.so", ".."])
def test_a_library_outside_the_folder_is_refused_before_loading(tmp_path, evil_library, library):
    library = str(evil_library) if library == "ABSOLUTE" else library
    art = _artifact_with(tmp_path / "art", library)
    (tmp_path / "art" / "sub").mkdir()
    shutil.copy(evil_library, tmp_path / "art" / "sub" / "model.so")
    with pytest.raises(MetadataError, match="field 'library' must be a plain file name"):
        ArtifactMeta.read(art)
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    marker = tmp_path / "constructor-ran"
    res = subprocess.run([PYTHON, "runtime/run.py", "--model", str(art), "--input", str(image),
                          "--output", str(tmp_path / "out")], cwd=REPO, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "EVIL_MARKER": str(marker)})
    assert res.returncode == 2 and "field 'library'" in res.stderr, res.stderr
    assert not marker.exists(), "the foreign library was loaded"
    from compile.boards.remote import check_artifact

    with pytest.raises(MetadataError, match="field 'library'"):
        check_artifact(art, "rk3399")


@pytest.mark.unit
def test_the_library_is_checked_whole_and_by_digest_before_loading(tmp_path, evil_library):
    art = tmp_path / "art"
    art.mkdir()
    lib = art / "model.so"
    shutil.copy(evil_library, lib)
    good = file_sha256(lib)
    meta = ArtifactMeta.from_dict({**sample().to_dict(), "library_sha256": good})
    assert meta.library_path(art) == lib
    data = lib.read_bytes()
    for cut in (len(data) // 2, 4096):
        lib.write_bytes(data[:cut])
        with pytest.raises(MetadataError, match="is truncated"):
            meta.library_path(art)
    lib.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one bit flipped, same length
    with pytest.raises(MetadataError, match="does not match the sha256"):
        meta.library_path(art)
    lib.unlink()
    lib.symlink_to(evil_library)  # a link out of the folder
    with pytest.raises(MetadataError, match="outside the artifact folder"):
        meta.library_path(art)


@pytest.mark.unit
@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_files_honour_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        write_json_atomic(tmp_path / "a.json", {"x": 1})
        with atomic_path(tmp_path / "lib.so", EXEC_MODE) as tmp:
            tmp.write_bytes(b"\x7fELF")
        with atomic_dir(tmp_path / "art") as staging:
            (staging / "f").write_text("x")
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "a.json") == 0o666 & ~mask
    assert mode(tmp_path / "lib.so") == 0o777 & ~mask
    assert mode(tmp_path / "art") == 0o777 & ~mask


@pytest.mark.unit
def test_an_interrupted_rebuild_leaves_the_old_artifact(tmp_path, monkeypatch):
    import compile.build as build_mod

    out = tmp_path / "art"
    out.mkdir()
    (out / "model.so").write_bytes(b"old library")
    (out / "metadata.json").write_text("{}")

    def interrupted(args, spec, dataset, preset, size, staging):
        (staging / "model.so").write_bytes(b"half a new libr")
        raise KeyboardInterrupt  # Ctrl-C during the export

    monkeypatch.setattr(build_mod, "_build", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_mod.build(build_mod.BuildArgs(model="xs", target="host", output=out))
    assert (out / "model.so").read_bytes() == b"old library"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]  # no staging folder left
    (tmp_path / ".art-build-killed").mkdir()  # what a SIGKILLed build leaves
    with pytest.raises(KeyboardInterrupt):
        build_mod.build(build_mod.BuildArgs(model="xs", target="host", output=out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds files that are not an artifact's \(notes.txt\)"):
        build_mod.build(build_mod.BuildArgs(model="xs", target="host", output=out))


def _serve(mode: str) -> tuple[int, threading.Event]:
    """A port that accepts and then stays mute, or closes at once."""
    server = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def run():
        conns = []
        server.settimeout(0.2)
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.close() if mode == "close" else conns.append(conn)
        server.close()
    threading.Thread(target=run, daemon=True).start()
    return server.getsockname()[1], done


@pytest.mark.unit
@pytest.mark.parametrize("mode,needle", [("mute", "no answer within 3 s"),
                                         ("close", "accepted the connection, then")])
def test_a_tracker_port_that_does_not_answer_fails_fast(mode, needle):
    import tvm.rpc  # noqa: F401  (imported before the clock starts)

    from compile.boards.tracker import Tracker, TrackerError, check_tracker

    port, done = _serve(mode)
    try:
        t0 = time.time()
        with pytest.raises(TrackerError) as info:
            check_tracker(Tracker("127.0.0.1", port, "rk3399"))
        assert time.time() - t0 < 5
    finally:
        done.set()
    text = str(info.value)
    assert needle in text and f"127.0.0.1:{port}" in text and "\n" not in text


@pytest.mark.unit
def test_the_output_folder_is_checked_before_the_artifact(tmp_path):
    blocker = tmp_path / "results.txt"
    blocker.write_text("x")
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    for output, needle in ((blocker, "exists and is not a folder"),
                           (blocker / "sub", "is not writable")):
        res = run_cli("runtime/run.py", "--model", str(tmp_path / "no-artifact"), "--input",
                      str(image), "--output", str(output))
        assert res.returncode == 2 and needle in res.stderr and str(output) in res.stderr
        assert "Traceback" not in res.stderr and "artifact" not in res.stderr, res.stderr


class NumbaInterrupted(FakePipeline):
    """Ctrl-C landing inside a Numba call: a SystemError caused by the KeyboardInterrupt."""

    def decode(self, outputs, box, x=None):
        if self.calls["decode"] == 2:
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt as err:
                raise SystemError("CPUDispatcher(<function _group>) returned a result with an "
                                  "exception set") from err
        return super().decode(outputs, box, x)


@pytest.mark.unit
@pytest.mark.parametrize("pipelined", [False, True])
def test_ctrl_c_inside_a_numba_call_is_an_interrupt(tmp_path, pipelined):
    from runtime.sources import Source

    source = Source("video", frames(6), 6, "clip")
    writer = Writer(tmp_path, source, SKELETON, None, progress=False)
    runner = Runner(NumbaInterrupted(), source, writer)
    with pytest.raises(KeyboardInterrupt):
        runner.run_pipelined() if pipelined else runner.run_serial()
    writer.close()
    assert len(json.loads((tmp_path / "results.json").read_text())) == 2  # two frames finished


@pytest.mark.unit
def test_truncated_jpeg_and_video_are_named(tmp_path):
    image = tmp_path / "photo.jpg"
    cv2.imwrite(str(image), (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8))
    assert read_image(image, 0).error is None
    image.write_bytes(image.read_bytes()[:-600])
    frame = read_image(image, 0)
    assert frame.image is None and "truncated JPEG" in frame.error and str(image) in frame.error
    video = _video(tmp_path / "clip.avi", 30)
    assert [f.error for f in open_source(str(video)).frames].count(None) == 30
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    got = list(open_source(str(video)).frames)
    good = [f for f in got if f.error is None]
    assert 0 < len(good) < 30 and got[-1].image is None
    assert f"ended after {len(good)} of its 30 frames" in got[-1].error and str(video) in got[-1].error


@pytest.mark.compile
def test_a_damaged_model_so_is_an_error_not_a_signal(xs_host_artifact, tmp_path):
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    data = (xs_host_artifact / "model.so").read_bytes()
    for name, damaged, needle in (("half", data[: len(data) // 2], "is truncated"),
                                  ("4k", data[:4096], "is truncated"),
                                  ("flipped", data[:1000] + b"\0" + data[1001:], "sha256")):
        art = tmp_path / name
        shutil.copytree(xs_host_artifact, art)
        (art / "model.so").write_bytes(damaged)
        res = run_cli("runtime/run.py", "--model", str(art), "--input", str(image), "--output",
                      str(tmp_path / "out"))
        assert res.returncode == 2 and needle in res.stderr, (name, res.returncode, res.stderr)


def _lines(jsonl: Path) -> int:
    return jsonl.read_bytes().count(b"\n") if jsonl.is_file() else 0


def _strays(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


FAULT_RUNS = 10  # per signal, seeded


@pytest.mark.compile
def test_fault_injection_signals_at_random_points(xs_host_artifact, tmp_path):
    """SIGTERM, SIGINT and SIGKILL at seeded random points of a 200-frame video: after SIGTERM
    / SIGINT the exit is 143 / 130 and results.json holds every frame results.jsonl reports
    done (the video plays those frames); after SIGKILL every line of results.jsonl parses and
    the next run leaves no temporary behind."""
    import signal as sig

    video = _video(tmp_path / "long.avi", 200)
    rng = np.random.default_rng(2026)
    counts = {}
    for name, signum, status in (("SIGTERM", sig.SIGTERM, 143), ("SIGINT", sig.SIGINT, 130),
                                 ("SIGKILL", sig.SIGKILL, -sig.SIGKILL)):
        done = []
        for run in range(FAULT_RUNS):
            out = tmp_path / f"{name}-{run}"
            jsonl = out / "results.jsonl"
            after, jitter = int(rng.integers(0, 12)), float(rng.uniform(0, 0.15))
            proc = subprocess.Popen([PYTHON, "runtime/run.py", "--model", str(xs_host_artifact),
                                     "--input", str(video), "--output", str(out), "--quiet",
                                     "--threads", "1"], cwd=REPO, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            try:
                deadline = time.time() + 120
                while time.time() < deadline and proc.poll() is None and _lines(jsonl) < after + 1:
                    time.sleep(0.01)
                time.sleep(jitter)
                assert proc.poll() is None, f"{name} run {run} ended early: {proc.communicate()}"
                proc.send_signal(signum)
                stdout, stderr = proc.communicate(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
            assert proc.returncode == status, (name, run, stderr)
            records = [json.loads(line) for line in jsonl.read_bytes().splitlines(keepends=True)
                       if line.endswith(b"\n") or pytest.fail(f"{name} run {run}: a half line")]
            assert [r["image_id"] for r in records] == list(range(len(records)))
            done.append(len(records))
            if signum == sig.SIGKILL:
                res = run_cli("runtime/run.py", "--model", str(xs_host_artifact), "--input",
                              str(video), "--output", str(out), "--max-frames", "2", "--quiet")
                assert res.returncode == 0, res.stderr
                assert _strays(out) == [], (run, _strays(out))
                continue
            assert f"in {len(records)} frames" in stdout, (name, run, stdout)
            people = json.loads((out / "results.json").read_text())
            assert sorted({p["image_id"] for p in people}) == sorted(
                {r["image_id"] for r in records if r["people"]})
            assert len(people) == sum(len(r["people"]) for r in records)
            assert _strays(out) == [], (name, run, _strays(out))
            if records:
                playback = cv2.VideoCapture(str(out / "long_pose.mp4"))
                assert int(playback.get(cv2.CAP_PROP_FRAME_COUNT)) == len(records)
        counts[name] = done
    print("frames finished before the signal:", json.dumps(counts))


@pytest.mark.unit
def test_a_signal_while_results_are_finished_waits_for_them():
    import signal as sig

    from runtime.run import Terminated, signals_deferred

    finished = []
    with pytest.raises(Terminated):
        with signals_deferred():
            os.kill(os.getpid(), sig.SIGTERM)
            time.sleep(0.05)  # the handler runs here: it only notes the signal
            finished.append(True)
    assert finished == [True]
