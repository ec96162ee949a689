"""TVM's OpenCL runtime built from a TVM source tree, run on PoCL: on the host and on the
virtual board (rk3399-mali through the tracker: deploy and tuning). Skipped, with the reason,
where no TVM source tree can be found; where one is found these must pass."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from compile.boards.opencl_runtime import SOURCES, check_source, find_source, make_runtime
from compile.build import BuildArgs, build
from runtime.library import elf_machine
from tests.conftest import REPO, isolated_board, run_cli

pytestmark = pytest.mark.opencl
SIZE = "64x64"
SOURCE = find_source()
needs_source = pytest.mark.skipif(
    SOURCE is None, reason="no TVM source tree (TVM_SOURCE=DIR or the kit's cached clone): "
    "'make opencl-runtime TVM_SOURCE=DIR' builds the OpenCL runtime from one")


def _max_err(meta, outs) -> tuple[float, float]:
    from compile.frontend.reference import host_reference

    x, refs = host_reference(meta)
    outs = outs(x)
    scale = max(1.0, *(float(np.abs(r).max()) for r in refs))
    return max(float(np.abs(o - r).max()) for o, r in zip(outs, refs, strict=True)), 1e-4 * scale


@pytest.fixture(scope="module")
def host_opencl_artifact(tmp_path_factory) -> Path:
    """XS with the rk3399-mali kernels (Mali limits), host code for this machine."""
    out = tmp_path_factory.mktemp("xs-host-opencl")
    build(BuildArgs(model="xs", target="host-opencl", output=out, input_size=SIZE,
                    tuning_logs=out / "none"))
    return out


def test_a_bad_source_tree_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not an apache/tvm source tree") as err:
        check_source(tmp_path)
    assert SOURCES[0] in str(err.value) and "TVM_SOURCE" in str(err.value)


def test_an_opencl_artifact_without_the_runtime_names_the_fix(host_opencl_artifact, tmp_path):
    env = {**os.environ, "TVM_DEVICE_BACKEND_AUTOLOAD": "0",
           "LITEPOSE_OPENCL_RUNTIME": str(tmp_path / "libtvm_runtime_opencl.so")}
    res = subprocess.run([sys.executable, "runtime/run.py", "--model", str(host_opencl_artifact),
                          "--input", "assets/people.jpg", "--output", str(tmp_path / "out")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "make opencl-runtime" in res.stderr and "has no OpenCL support" in res.stderr
    assert "Traceback" not in res.stderr


@needs_source
def test_clone_of_a_release_builds(tmp_path, monkeypatch):
    """The clone path, from a local repository with a release tag (no network)."""
    repo = tmp_path / "tvm.git"
    for rel in ("src/backend/opencl", "src/runtime", "src/support", "include"):
        shutil.copytree(SOURCE / rel, repo / rel)
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "tree"], ["tag", "v0.27.0"]):
        subprocess.run([*git, *cmd], check=True)
    monkeypatch.delenv("TVM_SOURCE", raising=False)
    monkeypatch.setenv("LITEPOSE_CACHE", str(tmp_path / "cache"))
    result = make_runtime("x86_64", output=tmp_path / "out", git_url=f"file://{repo}",
                          git_ref="v0.27.0")
    assert (tmp_path / "cache/tvm-src" / SOURCES[0]).is_file()
    assert elf_machine(result.library) == "x86_64" and result.library.parent == tmp_path / "out"
    assert result.device is None  # written to a folder: not installed, not probed


@pytest.fixture(scope="module")
def host_runtime():
    result = make_runtime("x86_64", SOURCE)
    assert result.device["exist"], result.describe()  # PoCL (make setup) is an OpenCL device
    return result


@needs_source
def test_host_pocl_runs_the_mali_kernels_at_parity(host_runtime, host_opencl_artifact):
    from runtime.artifact import Artifact

    artifact = Artifact(host_opencl_artifact)
    assert "opencl" in str(artifact.device)
    err, tol = _max_err(artifact.meta, artifact.infer)
    assert err <= tol, (err, tol)


@pytest.fixture(scope="module")
def mali_board(tmp_path_factory):
    """The board with PoCL and the aarch64 OpenCL runtime, its OpenCL device as 'vb-mali'."""
    result = make_runtime("aarch64", SOURCE)
    assert result.device["exist"] and elf_machine(result.library) == "aarch64"
    with isolated_board(tmp_path_factory.mktemp("board-cl"), "vb", opencl_key="vb-mali") as env:
        yield env


def _deploy(env, artifact: Path):
    return run_cli("-m", "compile", "deploy", "--model", "xs", "--target", "rk3399-mali",
                   "--artifact", str(artifact), "--input-size", SIZE, "--repeat", "2",
                   "--tracker", f"127.0.0.1:{env['port']}", "--key", "vb-mali",
                   env=env["env"], timeout=1200)


@pytest.mark.board
@needs_source
def test_rk3399_mali_deploys_to_the_boards_opencl_device(mali_board, tmp_path):
    status = run_cli("-m", "compile", "board", "status", env=mali_board["env"])
    assert "vb-mali" in status.stdout and "vb " in status.stdout
    build(BuildArgs(model="xs", target="rk3399-mali", output=tmp_path, input_size=SIZE,
                    tuning_logs=tmp_path / "none"))
    res = _deploy(mali_board, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "verdict     PASS" in res.stdout and "PoCL" in res.stdout and "Mali speed" in res.stdout
    assert "merge_flip_fast max |err|" in res.stdout, res.stdout  # the merge ran on the device


@pytest.mark.board
@needs_source
def test_rk3399_mali_tunes_through_the_tracker_and_keeps_parity(mali_board, tmp_path):
    logs = tmp_path / "logs"
    res = run_cli("-m", "compile", "tune", "--model", "xs", "--target", "rk3399-mali",
                  "--input-size", SIZE, "--trials", "4", "--trials-per-batch", "4", "--quiet",
                  "--tuning-logs", str(logs), "--tracker", f"127.0.0.1:{mali_board['port']}",
                  "--key", "vb-mali", env=mali_board["env"], timeout=1200)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "4 trials, 0 failed" in res.stdout, res.stdout
    built = build(BuildArgs(model="xs", target="rk3399-mali", output=tmp_path / "xs",
                            input_size=SIZE, tuning_logs=logs))
    assert built.meta.tuning is not None and built.meta.tuning.tasks_covered >= 1
    res = _deploy(mali_board, tmp_path / "xs")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "tuned for rk3399-mali" in res.stdout and "verdict     PASS" in res.stdout


def test_one_output_folder_takes_one_arch(tmp_path):
    res = run_cli("-m", "compile", "opencl-runtime", "--output", str(tmp_path))
    assert res.returncode == 2 and "choose --arch x86_64 or --arch aarch64" in res.stderr
    res = run_cli("-m", "compile", "opencl-runtime", "--arch", "riscv64")
    assert res.returncode == 2 and "x86_64" in res.stderr and "aarch64" in res.stderr


def test_the_opencl_device_needs_a_key_of_its_own(tmp_path, monkeypatch):
    from compile.boards import virtual as board

    monkeypatch.setenv("LITEPOSE_BOARD_DIR", str(tmp_path))  # nothing may be built or started
    with pytest.raises(ValueError, match="needs a key of its own"):
        board.start_board(key="rk3399", opencl_key="rk3399")
    assert not list(tmp_path.iterdir())
