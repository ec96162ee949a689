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
        peak = float(text.split("FMA peak ")[1].split()[0])
        assert peak > 1 and "measured: FMA loop" in text and "OpenBLAS sgemm 2048^3" in text
    assert (tmp_path / "bench-xs-64x64.png").stat().st_size > 1000


def test_bench_times_only_the_engines_named(tmp_path):
    res = run_cli("-m", "compile", "bench", "--input-size", "64x64", "--repeats", "1", "--rounds",
                  "1", "--threads", "1", "--engines", "tvm-tuned", "onnxruntime", "--workdir",
                  str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [line.split()[0] for line in res.stdout.split("every engine fp32")[1].splitlines()[2:]]
    assert rows[:3] == ["tvm-tuned", "onnxruntime", "FMA"]  # those two, in that order
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


@pytest.mark.unit
def test_the_fma_loop_runs_n_iterations_of_every_chain_and_lane():
    """The peak counts ``n * ACCUMULATORS * lanes`` MACs a call: the loop must do exactly those."""
    import ctypes

    from compile.bench.peak import ACCUMULATORS, fma_loop, fma_peak, vector_width

    loop, lanes, _ = fma_loop()
    out = ctypes.c_float()
    loop(3, (ctypes.c_float * 2)(2.0, 1.0), ctypes.byref(out))  # 0 -> 1 -> 3 -> 7 in each lane
    assert out.value == 7.0 * ACCUMULATORS * lanes
    assert vector_width("+avx2,+fma,-avx512f") == 8 and vector_width("+avx512f,+fma") == 16
    assert vector_width("+neon") == 4
    rate, how = fma_peak(1, seconds=0.02, rounds=1)
    assert rate > 0 and f"{lanes}-lane" in how
