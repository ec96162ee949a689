"""Deploy's verdict on the host through a loopback tracker: the network and every merge function
of the library against PyTorch plus the reference merge."""

from __future__ import annotations

import re

import pytest

from compile.deploy import DeployResult
from runtime.meta import WeightsMeta
from tests.conftest import run_cli
from tests.rpc_helpers import loopback_board

MERGES = ("merge", "merge_fast", "merge_flip", "merge_flip_fast")


@pytest.mark.rpc
def test_host_deploy_checks_the_network_and_every_merge_function(xs_host_artifact):
    with loopback_board("loop-deploy") as (port, _server):
        res = run_cli("-m", "compile", "deploy", "--model", "xs", "--target", "host", "--artifact",
                      str(xs_host_artifact), "--repeat", "2", "--no-compare", "--tracker",
                      f"127.0.0.1:{port}", "--key", "loop-deploy")
    assert res.returncode == 0 and "verdict     PASS" in res.stdout, res.stdout + res.stderr
    tolerance = float(re.search(r"tolerance ([0-9.e-]+)\)", res.stdout).group(1))
    for name in MERGES:
        err = re.search(rf"^{name} +max \|err\| ([0-9.e+-]+)", res.stdout, re.M)
        assert err and float(err.group(1)) <= tolerance, res.stdout


@pytest.mark.unit
def test_a_merge_function_off_the_reference_fails_the_verdict():
    weights = WeightsMeta(source="random", path=None, sha256="0" * 64, seed=0)
    ok = DeployResult(1e-6, 1e-4, 1.0, False, "b", weights, merge_errs={"merge": 5e-5})
    bad = DeployResult(1e-6, 1e-4, 1.0, False, "b", weights, merge_errs={"merge": 5e-5,
                                                                          "merge_flip": 2e-4})
    assert ok.passed and not bad.passed
