"""Benchmarks run end to end (functional checks only: no timing assertions)."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.compile


def test_bench_prints_every_engine_and_a_plot(tmp_path):
    res = run_cli("-m", "compile", "bench", "--input-size", "64x64", "--repeats", "2", "--rounds",
                  "1", "--threads", "1", "2", "--workdir", str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    tables = res.stdout.split("every engine fp32")[1:]
    assert len(tables) == 2 and "1 thread(s), every" in res.stdout and "2 thread(s)" in res.stdout
    for text in tables:
        for engine in ("tvm-tuned", "tvm-untuned", "onnxruntime", "openvino", "ncnn", "pytorch"):
            assert f"\n{engine} " in text
        assert "1.00x" in text  # the fastest of ONNX Runtime / OpenVINO is the reference
        bound = float(text.split("compute bound ")[1].split()[0])
        assert bound > 1 and "measured: OpenBLAS sgemm" in text
    assert (tmp_path / "bench-xs-64x64.png").stat().st_size > 1000


def test_bench_times_only_the_engines_named(tmp_path):
    res = run_cli("-m", "compile", "bench", "--input-size", "64x64", "--repeats", "1", "--rounds",
                  "1", "--threads", "1", "--engines", "tvm-tuned", "onnxruntime", "--workdir",
                  str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [line.split()[0] for line in res.stdout.split("every engine fp32")[1].splitlines()[2:]]
    assert rows[:3] == ["tvm-tuned", "onnxruntime", "compute"]  # those two, in that order
    work = tmp_path / "xs-64x64"
    assert not any((work / p).exists() for p in ("tvm-untuned", "ncnn", "model.pt"))  # not built


def test_bench_post_prints_ratios(xs_host_artifact):
    res = run_cli("-m", "compile", "bench-post", "--repeats", "1", "--frames", "4", "--rounds", "1",
                  "--threads", "1", "--artifact", str(xs_host_artifact))
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("x\n") >= 10  # 8 clean + 2 crowded map sets, each with a ratio
    assert "crowded 256^2, 30 people, L=2" in res.stdout
    assert "inference only" in res.stdout and "pipelined" in res.stdout
    assert "overlap" in res.stdout
