"""CLIs: --help and --version of every entry point, info output, errors on bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from compile.__main__ import SUBCOMMANDS
from tests.conftest import run_cli

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("sub", list(SUBCOMMANDS))
def test_subcommand_help_and_version(sub):
    for flag in ("--help", "--version"):
        res = run_cli("-m", "compile", sub, flag)
        assert res.returncode == 0, res.stderr
        assert f"python -m compile {sub}" in res.stdout


def test_dispatcher_help_version_and_unknown():
    res = run_cli("-m", "compile", "--help")
    assert res.returncode == 0 and all(s in res.stdout for s in SUBCOMMANDS)
    assert run_cli("-m", "compile", "--version").stdout.startswith("compile (LitePose edge kit)")
    res = run_cli("-m", "compile", "frobnicate")
    assert res.returncode == 2 and "valid choices: " in res.stderr


def test_info_prints_counts():
    res = run_cli("-m", "compile", "info", "--model", "xs")
    assert res.returncode == 0, res.stderr
    for needle in ("1,675,552", "0.883 G", "1.202 G", "1x3x256x256", "1x28x64x64"):
        assert needle in res.stdout


@pytest.mark.parametrize("args,needle", [
    (["--model", "xxl"], "invalid choice: 'xxl'"),
    (["--model", "xs", "--input-size", "100x100"], "multiples of 16"),
])
def test_info_bad_input(args, needle):
    res = run_cli("-m", "compile", "info", *args)
    assert res.returncode == 2 and needle in res.stderr


@pytest.mark.parametrize("args,needle", [
    (["bench", "--repeats", "0"], "argument --repeats: must be >= 1, got 0"),
    (["bench", "--input-size", "250x256"], "H and W must be positive multiples of 16"),
    (["deploy", "--model", "xs", "--target", "rk3399", "--tracker", "host:port"],
     "argument --tracker: tracker 'host:port' is not HOST:PORT"),
    (["tune", "--model", "xs", "--target", "host", "--trials", "-3"], "must be >= 1, got -3"),
    (["tune", "--model", "xs", "--target", "host", "--minutes", "0"],
     "argument --minutes: must be a finite number > 0, got 0"),
    (["tune", "--model", "xs", "--target", "host", "--minutes", "an hour"],
     "argument --minutes: 'an hour' is not a number"),
    (["demo", "--target", "host"], "argument --target: invalid choice: 'host'"),
    (["bench", "--engines", "tensorrt"], "argument --engines: invalid choice: 'tensorrt'"),
    (["bench", "--engines", "tvm-tuned", "pytorch"],
     "engines tvm-tuned pytorch: choose from tvm-tuned, tvm-untuned, onnxruntime, openvino, ncnn, "
     "pytorch, with at least one of onnxruntime, openvino"),
])
def test_bad_arguments_are_usage_errors_naming_the_value(args, needle):
    res = run_cli("-m", "compile", *args)
    assert res.returncode == 2 and needle in res.stderr, res.stderr


def test_build_bad_target_and_checkpoint(tmp_path):
    res = run_cli("-m", "compile", "build", "--model", "xs", "--target", "jetson",
                  "--output", str(tmp_path))
    assert res.returncode == 2 and "invalid choice: 'jetson'" in res.stderr and "rk3399" in res.stderr
    (tmp_path / "c.pth").write_bytes(b"junk")
    res = run_cli("-m", "compile", "build", "--model", "xs", "--target", "host",
                  "--checkpoint", str(tmp_path / "c.pth"), "--output", str(tmp_path / "o"))
    assert res.returncode == 2 and "is not a readable state_dict" in res.stderr
    assert not (tmp_path / "o").exists()  # a failed build leaves no folder behind
    (tmp_path / "kept").mkdir()  # ... but never removes one the user had
    res = run_cli("-m", "compile", "build", "--model", "xs", "--target", "host",
                  "--checkpoint", str(tmp_path / "c.pth"), "--output", str(tmp_path / "kept"))
    assert res.returncode == 2 and (tmp_path / "kept").is_dir()


@pytest.mark.compile
def test_build_cli_states_random_weights(tmp_path):
    res = run_cli("-m", "compile", "build", "--model", "xs", "--target", "rk3399",
                  "--input-size", "64x64", "--output", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert "RANDOM WEIGHTS" in res.stdout and "aarch64" in res.stdout
    assert (tmp_path / "model.so").is_file() and (tmp_path / "metadata.json").is_file()
    image = tmp_path / "in.png"  # the aarch64 library on this x86-64 host: named, not dlopen'ed
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    res = run_cli("runtime/run.py", "--model", str(tmp_path), "--input", str(image),
                  "--output", str(tmp_path / "out"))
    assert res.returncode == 2
    assert "built for target rk3399 (aarch64 code); this machine is x86_64" in res.stderr
    assert "No such file" not in res.stderr
