"""Benchmarks run end to end (functional checks only: no timing assertions)."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.compile


def test_bench_prints_every_engine_and_a_plot(tmp_path):
    res = run_cli("-m", "compile", "bench", "--input-size", "64x64", "--repeats", "2", "--rounds",
                  "1", "--workdir", str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    for engine in ("tvm-tuned", "tvm-untuned", "onnxruntime", "pytorch"):
        assert engine in res.stdout
    assert "1.00x" in res.stdout  # ONNX Runtime is the reference column
    assert (tmp_path / "bench-xs-64x64.png").stat().st_size > 1000


def test_bench_post_prints_ratios(xs_host_artifact):
    res = run_cli("-m", "tests.bench_post", "--repeats", "1", "--frames", "1", "--artifact",
                  str(xs_host_artifact))
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("x\n") >= 8  # 2 sizes x 4 people counts, each with a ratio
    assert "inference only" in res.stdout and "run.py pipeline" in res.stdout
