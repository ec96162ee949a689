"""Tuning: local MetaSchedule runs, resumable databases, trackers, failing boards."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from tvm_ffi import structural_hash

from compile.build import BuildArgs, build
from compile.targets import get_target
from compile.tuning.database import GRAPH, RECORDS, TuningDatabase, mean_seconds, scan_measured
from compile.tuning.select import merge_databases
from compile.tuning.tune import TuneArgs, tune
from runtime.library import elf_machine
from tests.conftest import REPO, run_cli
from tests.rpc_helpers import free_port, loopback_board, stop_tree
from tests.test_build import assert_parity, run_host_library, torch_reference

SIZE = "64x64"


def tiny(tmp: Path, **kw) -> TuneArgs:
    base = dict(model="xs", target="host", trials=8, trials_per_batch=4, input_size=SIZE,
                tuning_logs=tmp / "logs", work_dir=tmp / "work", progress=False)
    return TuneArgs(**{**base, **kw})


@pytest.fixture(scope="module")
def tuned_logs(tmp_path_factory) -> Path:
    """A tuning_logs root holding an 8-trial local database for XS at 64x64."""
    tmp = tmp_path_factory.mktemp("tuned")
    result = tune(tiny(tmp))
    assert result.records_after - result.records_before == sum(t.trials for t in result.tasks) >= 8
    trials = [n for n, _ in result.history]  # the curve's x axis, counted without a bar (quiet)
    assert trials == sorted(set(trials)) and trials[-1] == sum(t.trials for t in result.tasks)
    return tmp / "logs"


@pytest.mark.compile
def test_local_tuning_changes_the_module_and_keeps_parity(tuned_logs, tmp_path):
    untuned = build(BuildArgs(model="xs", target="host", output=tmp_path / "u", input_size=SIZE,
                              tuning_logs=tmp_path / "none"))
    tuned = build(BuildArgs(model="xs", target="host", output=tmp_path / "t", input_size=SIZE,
                            tuning_logs=tuned_logs))
    report = tuned.meta.tuning
    assert untuned.meta.tuning is None and report is not None
    assert 1 <= report.tasks_covered == report.databases[0].tasks_covered <= report.tasks
    assert report.databases[0].path.endswith("host/xs-64x64")
    assert untuned.library.read_bytes() != tuned.library.read_bytes()
    x, refs = torch_reference("xs", (64, 64))
    assert_parity(run_host_library(tuned.library, x), refs)


@pytest.mark.compile
def test_arm_targets_reuse_host_schedules_labelled_as_transferred(tuned_logs, tmp_path):
    moved = build(BuildArgs(model="xs", target="rk3399", output=tmp_path / "t", input_size=SIZE,
                            tuning_logs=tuned_logs))
    tuning = moved.meta.tuning
    assert tuning.transferred and tuning.schedules_from == "host"
    assert tuning.databases[0].path.endswith("host/xs-64x64")
    assert elf_machine(moved.library) == "aarch64"
    refused = build(BuildArgs(model="xs", target="rk3399", output=tmp_path / "u", input_size=SIZE,
                              tuning_logs=tuned_logs, transfer=False))
    assert refused.meta.tuning is None
    res = run_cli("-m", "compile", "build", "--model", "xs", "--target", "rk3399", "--input-size",
                  SIZE, "--tuning-logs", str(tuned_logs), "--output", str(tmp_path / "cli"))
    assert res.returncode == 0, res.stderr
    assert "TRANSFERRED from host" in res.stdout
    with pytest.raises(ValueError, match="cannot run on rk3399"):
        build(BuildArgs(model="xs", target="rk3399", output=tmp_path / "g", input_size=SIZE,
                        tuning_logs=tuned_logs, schedules_from="rk3399-mali"))


@pytest.mark.compile
def test_a_stale_database_is_reported_and_not_applied(tuned_logs, tmp_path):
    logs = tmp_path / "logs"
    shutil.copytree(tuned_logs / "host" / "xs-64x64", logs / "host" / "xs-64x64")
    (logs / "host" / "xs-64x64" / GRAPH).unlink()  # as written by a kit before the graph change
    result = build(BuildArgs(model="xs", target="host", output=tmp_path / "b", input_size=SIZE,
                             tuning_logs=logs))
    assert result.meta.tuning is None
    assert result.stale == [logs / "host" / "xs-64x64"]
    res = run_cli("-m", "compile", "build", "--model", "xs", "--target", "host", "--input-size",
                  SIZE, "--tuning-logs", str(logs), "--output", str(tmp_path / "cli"))
    assert res.returncode == 0 and "STALE" in res.stdout
    db = logs / "host" / "xs-64x64"
    records = (db / RECORDS).read_bytes()
    with pytest.raises(ValueError, match=r"holds records of graph unrecorded.*--carry-over"):
        tune(tiny(tmp_path, tuning_logs=logs))  # never appended to
    assert (db / RECORDS).read_bytes() == records and not (db / GRAPH).exists()


@pytest.mark.compile
def test_carrying_a_database_over_keeps_every_record_and_applies_the_shared_kernels(
        tuned_logs, tmp_path):
    from compile.passes.pipeline import GRAPH_VERSION

    logs = tmp_path / "logs"
    db = logs / "host" / "xs-64x64"
    shutil.copytree(tuned_logs / "host" / "xs-64x64", db)
    (db / GRAPH).write_text(json.dumps({"graph": "3:older"}))
    files = {p.name: p.read_bytes() for p in db.glob("database_*.json")}
    current = build(BuildArgs(model="xs", target="host", output=tmp_path / "a", input_size=SIZE,
                              tuning_logs=tuned_logs)).meta.tuning
    TuningDatabase(db, graph=GRAPH_VERSION, carry_over=True)
    assert {p.name: p.read_bytes() for p in db.glob("database_*.json")} == files  # append-only
    assert json.loads((db / GRAPH).read_text()) == {"graph": GRAPH_VERSION,
                                                     "carried_from": ["3:older"]}
    carried = build(BuildArgs(model="xs", target="host", output=tmp_path / "b", input_size=SIZE,
                              tuning_logs=logs))
    assert carried.stale == [] and carried.meta.tuning.tasks_covered == current.tasks_covered >= 1
    with pytest.raises(ValueError, match="already tuned on graph"):
        TuningDatabase(db, graph=GRAPH_VERSION, carry_over=True)
    res = run_cli("-m", "compile", "tune", "--model", "xs", "--target", "host", "--input-size", SIZE,
                  "--carry-over", "--tuning-logs", str(logs), "--quiet")
    assert res.returncode == 2 and "nothing to carry over" in res.stderr


@pytest.mark.compile
def test_a_larger_variant_tuned_keeps_parity(tmp_path):
    tune(tiny(tmp_path, model="s", dataset="coco", trials=4))
    tuned = build(BuildArgs(model="s", target="host", output=tmp_path / "t", dataset="coco",
                            input_size=SIZE, tuning_logs=tmp_path / "logs"))
    assert tuned.meta.tuning.tasks_covered >= 1
    x, refs = torch_reference("s", (64, 64), dataset="coco")
    assert_parity(run_host_library(tuned.library, x), refs)


@pytest.mark.compile
def test_other_builds_reuse_exactly_the_matching_workloads(tuned_logs, tmp_path):
    """The scheduler's warm-up measures the heaviest tasks first: backbone convs, the same
    workloads for CrowdPose and COCO at one size, and different ones at another size."""
    coco = build(BuildArgs(model="xs", target="host", dataset="coco", output=tmp_path / "c",
                           input_size=SIZE, tuning_logs=tuned_logs))
    tuning = coco.meta.tuning  # backbone tasks match the CrowdPose records, head tasks cannot
    assert tuning is not None and not tuning.transferred
    assert 1 <= tuning.tasks_covered < tuning.tasks
    assert tuning.databases[0].path.endswith("host/xs-64x64")
    other = build(BuildArgs(model="xs", target="host", output=tmp_path / "o", input_size="64x128",
                            tuning_logs=tuned_logs))
    assert other.meta.tuning is None  # every conv of another input size is another workload


@pytest.mark.compile
def test_corrupt_and_truncated_lines_are_skipped(tuned_logs, tmp_path):
    src = tuned_logs / "host" / "xs-64x64"
    db_dir = tmp_path / "db"
    shutil.copytree(src, db_dir)
    lines = (db_dir / RECORDS).read_text().splitlines()
    with (db_dir / RECORDS).open("w") as fh:
        fh.write(lines[0] + "\n{not json\n" + "\n".join(lines[1:]) + "\n" + lines[1][:40])
    db = TuningDatabase(db_dir, writable=False)
    assert db.report.records == len(lines)
    assert len(db.report.skipped) == 2 and ":2:" in db.report.skipped[0]
    res = run_cli("-c", "from compile.tuning.database import TuningDatabase as T; import sys;"
                  f"d = T({str(db_dir)!r}, writable=False); print(len(d.report.skipped))")
    assert res.stdout.strip() == "2" and "skipping a corrupt tuning-database line" in res.stderr
    # a build's read (no trace parsed) skips the same lines and finds each workload's best
    best: dict[int, float] = {}
    for rec in db.get_all_tuning_records():
        if math.isfinite(secs := mean_seconds(rec)):
            key = structural_hash(rec.workload.mod)
            best[key] = min(best.get(key, math.inf), secs)
    found = scan_measured(db_dir)
    assert {k: min(r.seconds for r in recs) for k, recs in found.items()} == best
    merged, coverage, _ = merge_databases([db_dir], None)
    assert {structural_hash(r.workload.mod): mean_seconds(r)
            for r in merged.get_all_tuning_records()} == best and coverage[0].covered == len(best)


@pytest.mark.compile
def test_a_small_first_pass_measures_every_task_then_searches_in_full_batches(tmp_path):
    from compile.tuning.progress import summary_table

    result = tune(tiny(tmp_path, functions="merge", first_pass=1, trials=40))
    trials = sorted(t.trials for t in result.tasks)
    n = len(result.tasks)
    assert trials[0] >= 1  # the first pass reached every task with one trial each
    batches = [b - a for (a, _), (b, _) in zip([(0, 0), *result.history], result.history)]
    # one candidate per task, then batches of up to 4 (a merge task's space may hold fewer)
    assert batches[:n] == [1] * n and 1 < max(batches[n:]) <= 4
    at = result.converged_at()
    assert at is not None and at <= result.history[-1][0]
    assert f"within 10 % of the final estimate from trial {at} of" in summary_table(result)
    curve_path = tmp_path / "logs" / "host" / "xs-64x64" / "tuning-curve.json"
    curve = json.loads(curve_path.read_text())
    assert curve["within_10pct_from_trial"] == at and curve["trials"][-1] == result.history[-1][0]
    curve_path.unlink()  # --replot rebuilds the same curve from the records alone
    res = run_cli("-m", "compile", "tune", "--model", "xs", "--target", "host", "--input-size",
                  SIZE, "--functions", "merge", "--tuning-logs", str(tmp_path / "logs"), "--replot")
    assert res.returncode == 0, res.stderr
    rebuilt = json.loads(curve_path.read_text())
    assert rebuilt["trials"][-1] == curve["trials"][-1]
    assert rebuilt["estimated_ms"][-1] == pytest.approx(curve["estimated_ms"][-1], rel=1e-3)
    assert f"within 10 % from trial {rebuilt['within_10pct_from_trial']}" in res.stdout
    # and the per-task table of the records: every task, the run's trials, the same estimate
    measured = sum(t.trials for t in result.tasks)
    assert f"\n{measured} trials, " in res.stdout and "throughput" not in res.stdout
    assert all(f"\n{t.name[:40]:40s} " in res.stdout for t in result.tasks)


@pytest.mark.compile
def test_a_killed_run_resumes_with_its_records(tmp_path):
    logs = tmp_path / "logs"
    cmd = [sys.executable, "-m", "compile", "tune", "--model", "xs", "--target", "host",
           "--input-size", SIZE, "--trials", "64", "--trials-per-batch", "4", "--quiet",
           "--tuning-logs", str(logs)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = logs / "host" / "xs-64x64" / RECORDS
    deadline = time.time() + 400
    while time.time() < deadline and (not records.is_file() or records.read_text().count("\n") < 4):
        time.sleep(1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert records.is_file()
    before = TuningDatabase(records.parent, writable=False).report.records
    assert before >= 4
    result = tune(tiny(tmp_path))
    assert result.records_before == before
    measured = sum(t.trials for t in result.tasks)  # >= 8: a tiny task may give a short batch
    assert measured >= 8 and result.records_after == before + measured


@pytest.mark.compile
def test_a_time_budget_ends_the_run_between_batches_and_keeps_them(tmp_path, monkeypatch):
    import compile.tuning.scheduler as scheduler

    calls = iter(range(10**6))  # the clock passes the deadline at the scheduler's 4th pick
    monkeypatch.setattr(scheduler, "monotonic", lambda: -math.inf if next(calls) < 3 else math.inf)
    result = tune(tiny(tmp_path, trials=64, minutes=60.0))
    measured = sum(t.trials for t in result.tasks)
    assert result.out_of_time and 0 < measured <= 3 * 4  # three batches of at most 4
    assert result.records_after - result.records_before == measured


@pytest.mark.unit
def test_unreachable_tracker_fails_within_seconds():
    start = time.time()
    res = run_cli("-m", "compile", "tune", "--model", "xs", "--target", "rk3399",
                  "--tracker", f"127.0.0.1:{free_port()}", "--trials", "4")
    assert res.returncode == 2 and time.time() - start < 20
    assert "python -m tvm.exec.query_rpc_tracker --host 127.0.0.1" in res.stderr


@pytest.mark.unit
def test_board_target_without_tracker_uses_the_local_one(monkeypatch, caplog):
    """As deploy does: the virtual board's tracker; nothing there -> say how to get one."""
    import compile.boards.tracker

    monkeypatch.delenv("TVM_TRACKER_HOST", raising=False)
    monkeypatch.setattr(compile.boards.tracker, "DEFAULT_TRACKER_PORT", free_port())  # nothing answers
    caplog.set_level("INFO", logger="compile.boards.tracker")
    with pytest.raises(ValueError, match=r"cannot reach the RPC tracker at 127\.0\.0\.1") as info:
        tune(TuneArgs(model="xs", target="rpi4"))
    assert "'make board'" in str(info.value) and "TRACKER=HOST:PORT" in str(info.value)
    assert "no tracker given: using the virtual board's" in caplog.text
    with pytest.raises(ValueError, match="--trials must be >= 1"):
        tune(TuneArgs(model="xs", target="host", trials=0))
    with pytest.raises(ValueError, match="--parallel spreads measurements over boards"):
        tune(TuneArgs(model="xs", target="host", parallel=2))
    with pytest.raises(ValueError, match="--build-workers must be >= 1, got 0"):
        tune(TuneArgs(model="xs", target="host", build_workers=0))


@pytest.mark.unit
def test_host_candidates_run_with_every_core_of_the_target(monkeypatch):
    """TVM's default pool on x86 is half the logical CPUs (1 on a 2-vCPU VM): the local runner's
    workers must time candidates with the target's num-cores, and the records say so."""
    from compile.targets import machine_model
    from compile.tuning.tune import make_runner

    monkeypatch.setenv("TVM_NUM_THREADS", "1")  # what the worker would inherit
    runner = make_runner(None, 60, threads=2)  # TVM caps the pool at the logical CPUs
    future = runner.pool.submit(lambda: __import__("tvm").get_global_func("runtime.NumThreads")())
    assert future.result(timeout=60) == min(2, os.cpu_count())
    assert os.environ["TVM_NUM_THREADS"] == "1"  # this process's own pool is left alone
    target = get_target("host").tvm_target()
    cores = int(target.attrs["num-cores"])
    assert str(target.attrs["model"]) == machine_model()
    assert machine_model().endswith(f"-{cores}c-{cores}t")


@pytest.mark.rpc
def test_tuning_through_a_loopback_tracker(tmp_path, monkeypatch):
    with loopback_board("loop-host") as (port, _server):
        monkeypatch.setenv("TVM_TRACKER_HOST", "127.0.0.1")
        monkeypatch.setenv("TVM_TRACKER_PORT", str(port))
        monkeypatch.setenv("TVM_TRACKER_KEY", "loop-host")
        result = tune(tiny(tmp_path))
    assert result.records_after == sum(t.trials for t in result.tasks) >= 8
    assert sum(t.failed for t in result.tasks) == 0
    measured = [t for t in result.tasks if np.isfinite(t.best_s)]
    assert measured and all(t.best_s > 0 for t in measured)


@pytest.mark.rpc
def test_a_board_dying_mid_tuning_gives_failed_trials_not_a_hang(tmp_path):
    with loopback_board("loop-dying") as (port, server):
        records = tmp_path / "logs" / "host" / "xs-64x64" / RECORDS

        def kill_when_measuring():
            deadline = time.time() + 300
            while time.time() < deadline and not records.is_file():
                time.sleep(0.5)
            stop_tree(server)

        killer = threading.Thread(target=kill_when_measuring)
        killer.start()
        start = time.time()
        result = tune(tiny(tmp_path, tracker=f"127.0.0.1:{port}", key="loop-dying", timeout=10,
                           trials=12))
        killer.join()
    assert time.time() - start < 600
    failed = sum(t.failed for t in result.tasks)
    assert failed >= 4  # at least the batches after the kill
    assert sum(t.trials for t in result.tasks) >= 12
    lines = [json.loads(x) for x in records.read_text().splitlines()]
    assert len(lines) == result.records_after



def _records_from_another_machine(src: Path, dst: Path, keep_own: bool) -> int:
    """Copy database ``src`` to ``dst`` with each record duplicated as if measured on another,
    1000x faster machine (``keep_own=False``: only those); returns how many were added."""
    shutil.copytree(src, dst)
    lines = (dst / RECORDS).read_text().splitlines()
    fake = []
    for line in lines:
        index, (trace, run_secs, target, args) = json.loads(line)
        target = {**target, "mcpu": "sapphirerapids", "model": "other-box-64c"}
        fake.append(json.dumps([index, [trace, [s / 1000 for s in run_secs], target, args]]))
    (dst / RECORDS).write_text("\n".join((lines if keep_own else []) + fake) + "\n")
    return len(fake)


@pytest.mark.compile
def test_records_of_another_machine_never_pass_for_this_ones(tuned_logs, tmp_path):
    """Run times of different machines do not compare: the tuner loads only its machine's
    records, a build prefers them per workload and says which tasks had only others'."""
    from compile.tuning.database import target_machine

    machine = target_machine(get_target("host").tvm_target())
    assert machine.startswith(str(get_target("host").tvm_target().attrs["mcpu"]) + "/")
    src = tuned_logs / "host" / "xs-64x64"
    mixed = tmp_path / "mixed" / "host" / "xs-64x64"
    added = _records_from_another_machine(src, mixed, keep_own=True)
    db = TuningDatabase(mixed, writable=False, machine=machine)
    assert len(db.elsewhere) == added and db.report.records == added  # as many own as fake
    merged, _, elsewhere = merge_databases([mixed], None, machine)
    assert elsewhere == 0 and {target_machine(r.target) for r in
                               merged.get_all_tuning_records()} == {machine}
    _records_from_another_machine(src, tmp_path / "foreign" / "host" / "xs-64x64", keep_own=False)
    own = build(BuildArgs(model="xs", target="host", output=tmp_path / "m", input_size=SIZE,
                          tuning_logs=tmp_path / "mixed"))
    other = build(BuildArgs(model="xs", target="host", output=tmp_path / "f", input_size=SIZE,
                            tuning_logs=tmp_path / "foreign"))
    assert own.meta.tuning.machine == machine and own.meta.tuning.tasks_elsewhere == 0
    covered = other.meta.tuning.tasks_covered
    assert covered >= 1 and other.meta.tuning.tasks_elsewhere == covered
    assert f"{covered} measured only on other machines than {machine}" in other.meta.describe()
    x, refs = torch_reference("xs", (64, 64))
    assert_parity(run_host_library(other.library, x), refs)


@pytest.mark.compile
def test_a_new_machine_measures_the_others_best_schedules_first(tuned_logs, tmp_path):
    from tvm.s_tir import meta_schedule as ms

    from compile.frontend.importer import import_relax, load_model
    from compile.model.zoo import get_dataset, get_model
    from compile.passes.pipeline import lower_for_tuning
    from compile.tuning.database import mean_seconds, target_machine
    from compile.tuning.remeasure import remeasure
    from compile.tuning.tune import make_builder, make_runner

    preset = get_target("host")
    target = preset.tvm_target()
    db_dir = tmp_path / "foreign"
    added = _records_from_another_machine(tuned_logs / "host" / "xs-64x64", db_dir, keep_own=False)
    mod = import_relax(load_model(get_model("xs"), get_dataset("crowdpose")), (64, 64))
    tasks = ms.relax_integration.extract_tasks(lower_for_tuning(mod, target), target)
    db = TuningDatabase(db_dir, writable=True, machine=target_machine(target))
    assert db.report.records == 0 and len(db.elsewhere) == added
    builder, runner = make_builder(preset, 180, remote=False), make_runner(None, 60)
    done = remeasure(tasks, db, builder, runner, target, top_k=2, show=False)
    assert done and all(1 <= n <= 2 for n in done.values())
    reopened = TuningDatabase(db_dir, writable=False, machine=target_machine(target))
    assert reopened.report.records == sum(done.values())  # committed as this machine's
    for i in done:  # timed here, not the other machine's 1000x faster times copied
        workload = reopened.commit_workload(tasks[i].dispatched[0])
        fake = min(mean_seconds(r) for r in reopened.elsewhere if r.workload.same_as(workload))
        assert mean_seconds(reopened.get_top_k(workload, 1)[0]) > 100 * fake
    assert remeasure(tasks, db, builder, runner, target, top_k=2, show=False) == {}


@pytest.mark.compile
def test_tasks_named_are_the_only_ones_searched(tuned_logs, tmp_path):
    logs = tmp_path / "logs"
    shutil.copytree(tuned_logs / "host" / "xs-64x64", logs / "host" / "xs-64x64")
    with pytest.raises(ValueError, match=r"--tasks 'conv2d99_' matches no task.*fused_conv2d4_"):
        tune(tiny(tmp_path, tuning_logs=logs, tasks=("conv2d4_", "conv2d99_")))
    result = tune(tiny(tmp_path, tuning_logs=logs, trials=4, tasks=("conv2d4_",)))
    searched = {t.name: t.trials for t in result.tasks if t.trials}
    assert list(searched) == ["fused_conv2d4_add3_maximum2_minimum21"] and sum(searched.values()) >= 4
    assert result.records_after - result.records_before == sum(searched.values())
