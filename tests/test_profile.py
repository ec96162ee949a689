"""Per-kernel profiles: runtime/profile.py (device side) and its join with the tuning tasks,
the FMA peak and the databases (``python -m compile profile``)."""

import pytest

from compile.bench.profile import KernelRow
from tests.conftest import run_cli


@pytest.mark.unit
def test_profile_help_version_and_bad_input(tmp_path):
    for flag in ("--help", "--version"):
        res = run_cli("runtime/profile.py", flag)
        assert res.returncode == 0 and "runtime/profile.py" in res.stdout
    res = run_cli("runtime/profile.py", "--model", str(tmp_path))
    assert res.returncode == 2 and "metadata.json is missing" in res.stderr
    res = run_cli("runtime/profile.py", "--model", str(tmp_path), "--runs", "0")
    assert res.returncode == 2 and "expected an integer >= 1, got 0" in res.stderr
    res = run_cli("-m", "compile", "profile", "--artifact", str(tmp_path))
    assert res.returncode == 2 and "metadata.json is missing" in res.stderr


@pytest.mark.unit
def test_a_kernel_loses_the_time_its_flops_do_not_need_at_the_peak():
    # 4 calls of 0.1 GFLOP take 2 ms at 200 GFLOP/s: 4 ms loses 2; 1 ms a call, 0.5 ms alone
    row = KernelRow("fused_conv2d4_prepacked", calls=4, seconds=4e-3, flop=1e8, alone=0.5e-3)
    assert row.lost(200e9) == pytest.approx(2e-3)
    assert row.slowdown == pytest.approx(2.0)
    copy = KernelRow("transpose1", calls=1, seconds=1e-4, flop=None, alone=None)
    assert copy.lost(200e9) == pytest.approx(1e-4) and copy.slowdown is None


@pytest.mark.compile
def test_every_kernel_is_timed_at_each_call_the_network_makes(xs_host_artifact):
    """runtime/profile.py in its own process: each tuning task of the network is there with as
    many calls per frame as the graph has (the task's weight), and the kernels' windows, nested
    in the frames, add up to no more than the frames."""
    from compile.bench.profile import kernel_rows, runtime_profile, task_facts
    from runtime.meta import ArtifactMeta
    from runtime.profile import BUILTINS_ROW

    profile = runtime_profile(xs_host_artifact, threads=1, runs=2)
    facts = task_facts(ArtifactMeta.read(xs_host_artifact))
    rows = {r.name.removesuffix("_prepacked"): r for r in kernel_rows(profile, facts)}
    assert len(facts) > 30 and {name: rows[name].calls for name in facts} == {
        name: fact.calls for name, fact in facts.items()}
    assert all(fact.alone is None for fact in facts.values())  # built without tuning logs
    assert sum(r.flop or 0 for r in rows.values()) > 0 and all(r.seconds > 0 for r in rows.values())
    assert BUILTINS_ROW in rows
    assert 0 < sum(r.seconds for r in rows.values()) <= profile["instrumented"] * 1.0001
    res = run_cli("-m", "compile", "profile", "--artifact", str(xs_host_artifact), "--threads", "1",
                  "--runs", "2", "--top", "5")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("kernel "))
    assert "lost ms" in lines[header] and len(lines[header + 1:header + 6]) == 5
    assert any(line.startswith("FMA peak") for line in lines) and "random weights" in res.stdout
