"""Shared fixtures: repo paths, reference data, and artifacts built once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "tests" / "data"  # the reference key lists (from shared/reference)
PYTHON = sys.executable


def run_cli(*args: str, cwd: Path = REPO, env: dict | None = None, timeout: float = 600):
    """Run ``python ARGS`` in a fresh interpreter; return the CompletedProcess (text)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([PYTHON, *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def xs_host_artifact(tmp_path_factory) -> Path:
    """LitePose-XS (CrowdPose) built for the host at 256x256 with seeded random weights."""
    from compile.build import BuildArgs, build

    out = tmp_path_factory.mktemp("xs-host")
    build(BuildArgs(model="xs", target="host", output=out, tuning_logs=out / "no-logs"))
    return out
