"""The virtual aarch64 board (qemu-user): deploy, run.py on the board, failures, tuning."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from compile.boards import rootfs as board
from compile.build import BuildArgs, build
from tests.conftest import REPO, isolated_board, run_cli
from tests.rpc_helpers import free_port, start_server, stop_tree, wait_for_key
from tests.test_runtime import write_images

pytestmark = pytest.mark.board
SIZE = "64x64"


@pytest.fixture(scope="module")
def board_env(tmp_path_factory):
    """A board of its own (isolated run state) started through the CLI; stopped at the end."""
    with isolated_board(tmp_path_factory.mktemp("board"), "vb") as env:
        yield env


@pytest.fixture(scope="module")
def arm_artifact(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("xs-rk3399")
    build(BuildArgs(model="xs", target="rk3399", output=out, input_size=SIZE,
                    tuning_logs=out / "none"))
    return out


def deploy_cli(board_env, artifact, *extra):
    return run_cli("-m", "compile", "deploy", "--model", "xs", "--target", "rk3399",
                   "--artifact", str(artifact), "--input-size", SIZE, "--repeat", "3",
                   "--tracker", f"127.0.0.1:{board_env['port']}", "--key", "vb", *extra,
                   env=board_env["env"])


def test_deploy_to_the_virtual_board_passes(board_env, arm_artifact):
    res = deploy_cli(board_env, arm_artifact)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "verdict     PASS" in res.stdout and "EMULATED" in res.stdout
    err, tol = (float(v) for v in
                res.stdout.split("max |err|")[1].split("\n")[0].replace("(tolerance", "").rstrip(")").split())
    assert err <= tol <= 1e-4 * 50
    assert all(f"{name} " in res.stdout for name in ("merge_fast", "merge_flip_fast")), res.stdout
    status = run_cli("-m", "compile", "board", "status", env=board_env["env"])
    assert "vb" in status.stdout and "free 1" in status.stdout


def test_run_py_on_the_board_matches_the_host(board_env, arm_artifact, tmp_path):
    (image,) = write_images(tmp_path / "img", [(120, 160)])
    host = tmp_path / "host-artifact"
    build(BuildArgs(model="xs", target="host", output=host, input_size=SIZE,
                    tuning_logs=tmp_path / "none"))
    assert run_cli("runtime/run.py", "--model", str(host), "--input", str(image), "--output",
                   str(tmp_path / "host")).returncode == 0
    base = board_env["dir"]
    # the first JIT of the kernels under emulation takes minutes: -O0 code compiles a few times
    # faster and gives the same float results (no fast-math); its cache is kept apart
    env = {**board.board_env(base), "NUMBA_OPT": "0",
           "NUMBA_CACHE_DIR": str(board.board_dir() / "numba-cache-O0")}
    res = subprocess.run([str(base / "pyarm"), "runtime/run.py", "--model", str(arm_artifact),
                          "--input", str(image), "--output", str(tmp_path / "board")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "on rk3399" in res.stdout
    a = json.loads((tmp_path / "host" / "results.json").read_text())
    b = json.loads((tmp_path / "board" / "results.json").read_text())
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x["keypoints"], y["keypoints"], atol=1e-3)
        assert abs(x["score"] - y["score"]) < 1e-5


def test_a_wrong_architecture_is_refused_before_upload(board_env, tmp_path):
    host = tmp_path / "host"
    build(BuildArgs(model="xs", target="host", output=host, input_size=SIZE,
                    tuning_logs=tmp_path / "none"))
    start = time.time()
    res = deploy_cli(board_env, host)
    assert res.returncode == 2 and time.time() - start < 60
    assert "is an x86_64 library but target rk3399 runs aarch64 code" in res.stderr


def test_unreachable_tracker_names_the_diagnosing_command(arm_artifact):
    res = run_cli("-m", "compile", "deploy", "--model", "xs", "--target", "rk3399", "--artifact",
                  str(arm_artifact), "--tracker", f"127.0.0.1:{free_port()}")
    assert res.returncode == 2 and "python -m tvm.exec.query_rpc_tracker" in res.stderr


def test_a_board_killed_mid_run_gives_a_clear_error(board_env, arm_artifact):
    port, base = board_env["port"], board_env["dir"]
    doomed = start_server(port, "doomed", argv_prefix=[str(base / "pyarm")], env=board.board_env(base),
                          extra=["--load-library", str(base / "site/tvm/lib/libtvm_runtime_extra.so")])
    try:
        wait_for_key(port, "doomed", timeout=240)
        proc = subprocess.Popen(
            [sys.executable, "-m", "compile", "deploy", "--model", "xs", "--target", "rk3399",
             "--artifact", str(arm_artifact), "--input-size", SIZE, "--repeat", "500",
             "--tracker", f"127.0.0.1:{port}", "--key", "doomed", "-v"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, **board_env["env"]})
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + 400
        while not any("timing 500 runs" in line for line in lines):  # uploaded, now timing
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.2)
        stop_tree(doomed)
        proc.wait(timeout=600)
        reader.join(timeout=60)
        out = "".join(lines)
    finally:
        stop_tree(doomed)
    assert proc.returncode == 2, out
    assert "failed during deploy" in out and "query_rpc_tracker" in out
    from tvm import rpc

    summary = rpc.connect_tracker("127.0.0.1", port).summary()  # the tracker still answers
    assert "vb" in summary["queue_info"]
    res = deploy_cli(board_env, arm_artifact)  # and the healthy board still works
    assert res.returncode == 0, res.stdout + res.stderr


def test_eval_through_the_board(board_env, arm_artifact, tmp_path):
    """The rk3399 library runs on the board (pre/post-processing here) and is scored."""
    from compile.eval.synthetic import keypoint_set

    images, ann = keypoint_set(tmp_path / "set", "crowdpose", n_images=2)
    out = tmp_path / "out"
    res = run_cli("-m", "compile", "eval", "--artifact", str(arm_artifact), "--images", str(images),
                  "--annotations", str(ann), "--output", str(out), "--flip",
                  "--tracker", f"127.0.0.1:{board_env['port']}", "--key", "vb", env=board_env["env"])
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"TVM on board vb@127.0.0.1:{board_env['port']} (emulated board)" in res.stdout
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["images"] == 2 and saved["options"]["flip"] and set(saved["metrics"]) == {"artifact"}
    assert json.loads((out / "results.json").read_text())  # people found (random weights)


def test_tuning_through_the_tracker_on_the_board(board_env, tmp_path):
    res = run_cli("-m", "compile", "tune", "--model", "xs", "--target", "rk3399", "--input-size",
                  SIZE, "--trials", "4", "--trials-per-batch", "2", "--timeout", "300", "--quiet",
                  "--tracker", f"127.0.0.1:{board_env['port']}", "--key", "vb",
                  "--tuning-logs", str(tmp_path / "logs"), env=board_env["env"], timeout=1800)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    done = re.search(r"(\d+) trials, 0 failed", res.stdout)
    assert done and int(done.group(1)) >= 4  # a tiny task may add a short batch
    records = (tmp_path / "logs" / "rk3399" / "xs-64x64" / "database_tuning_record.json")
    assert len(records.read_text().splitlines()) == int(done.group(1))


def test_a_transferred_build_keeps_parity_on_the_board(board_env, tmp_path):
    """rk3399 has no database: the build applies host records and deploy compares it with the
    untuned build on the same board."""
    from compile.tuning.tune import tune
    from tests.test_tune import tiny

    tune(tiny(tmp_path, trials=4))  # host records for XS at 64x64
    out = tmp_path / "xs-rk3399"
    result = build(BuildArgs(model="xs", target="rk3399", output=out, input_size=SIZE,
                             tuning_logs=tmp_path / "logs"))
    tuning = result.meta.tuning
    assert tuning.transferred and tuning.schedules_from == "host"
    res = deploy_cli(board_env, out)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "verdict     PASS" in res.stdout and "schedules   transferred from host" in res.stdout
    assert "untuned" in res.stdout and "EMULATED latency ratio" in res.stdout
