"""Shared fixtures: repo paths, reference data, and artifacts built once per session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# A suite started in the background by a non-interactive shell inherits SIGINT ignored, and so
# would every run.py it starts (Python then installs no KeyboardInterrupt handler, and Ctrl-C
# does nothing): the signal tests need the default, which a handled signal gives a child.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
REFERENCE = REPO / "tests" / "data"  # the reference key lists (from shared/reference)
PYTHON = sys.executable


def run_cli(*args: str, cwd: Path = REPO, env: dict | None = None, timeout: float = 600):
    """Run ``python ARGS`` in a fresh interpreter; return the CompletedProcess (text)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([PYTHON, *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(autouse=True)
def _cpu_affinity_is_left_alone():
    """Fail the test that leaves this process pinned: every later test and every process it
    starts would inherit the mask (TVM pins a thread when it makes a pool), and torch picks its
    thread count, hence its float32 sums, from it."""
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    yield
    if before is not None and os.sched_getaffinity(0) != before:
        after = os.sched_getaffinity(0)
        os.sched_setaffinity(0, before)
        pytest.fail(f"the test left the process on CPUs {sorted(after)} (was {sorted(before)})")


@contextmanager
def isolated_board(folder: Path, key: str, boards: int = 1, opencl_key: str | None = None):
    """Virtual board(s) of their own (run state under ``folder``, the cached root filesystem
    shared) started through the CLI under ``key`` (and its OpenCL device under ``opencl_key``
    when given); stopped at the end. Yields env, port, dir."""
    from compile.boards import rootfs
    from tests.rpc_helpers import free_port

    base = rootfs.ensure_board()  # the cached root filesystem, built when missing
    for name in ("rootfs", "site", "hostbin", "lib", "pocl-cache"):  # the last three: OpenCL
        if (base / name).exists():
            (folder / name).symlink_to(base / name)
    rootfs.write_pyarm(folder)
    (folder / ".complete").write_text((base / ".complete").read_text())  # same packages
    port = free_port()
    env = {"LITEPOSE_BOARD_DIR": str(folder)}
    res = run_cli("-m", "compile", "board", "start", "--port", str(port), "--key", key,
                  "--boards", str(boards),
                  *(["--opencl-key", opencl_key] if opencl_key else ["--no-opencl"]), env=env)
    assert res.returncode == 0, res.stderr
    try:
        yield {"env": env, "port": port, "dir": folder}
    finally:
        res = run_cli("-m", "compile", "board", "stop", env=env)
        assert "board stopped" in res.stdout


@pytest.fixture(scope="session")
def xs_host_artifact(tmp_path_factory) -> Path:
    """LitePose-XS (CrowdPose) built for the host at 256x256 with seeded random weights."""
    from compile.build import BuildArgs, build

    out = tmp_path_factory.mktemp("xs-host")
    build(BuildArgs(model="xs", target="host", output=out, tuning_logs=out / "no-logs"))
    return out
