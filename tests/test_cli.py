"""CLIs: --help and --version of every entry point, info output, errors on bad input."""

from __future__ import annotations

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


def test_build_bad_target_and_checkpoint(tmp_path):
    res = run_cli("-m", "compile", "build", "--model", "xs", "--target", "jetson",
                  "--output", str(tmp_path))
    assert res.returncode == 2 and "invalid choice: 'jetson'" in res.stderr and "rk3399" in res.stderr
    (tmp_path / "c.pth").write_bytes(b"junk")
    res = run_cli("-m", "compile", "build", "--model", "xs", "--target", "host",
                  "--checkpoint", str(tmp_path / "c.pth"), "--output", str(tmp_path / "o"))
    assert res.returncode == 2 and "could not be read" in res.stderr


@pytest.mark.compile
def test_build_cli_states_random_weights(tmp_path):
    res = run_cli("-m", "compile", "build", "--model", "xs", "--target", "rk3399",
                  "--input-size", "64x64", "--output", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert "RANDOM WEIGHTS" in res.stdout and "aarch64" in res.stdout
    assert (tmp_path / "model.so").is_file() and (tmp_path / "metadata.json").is_file()
