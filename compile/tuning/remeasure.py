"""A tuning run's start on a machine the database has not measured: the schedules other machines
found fastest, measured here first.

Run times of two machines do not compare, so a tuner loads only its own machine's records
(``TuningDatabase(machine=...)``). Starting a task from nothing would throw the other machines'
search away; instead the ``top_k`` fastest distinct schedules they recorded for each of this
machine's unmeasured tasks are replayed, built and timed here, and committed as this machine's
records: the search then starts from them (MetaSchedule seeds its population from the database).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from tqdm import tqdm

from .database import has_record, kinship, mean_seconds, target_machine

logger = logging.getLogger(__name__)


def candidates_from_elsewhere(database, mod, machine: str, top_k: int) -> list:
    """Up to ``top_k`` records of other machines for ``mod``'s workload, distinct schedules,
    best first: those of this machine's CPU (``mcpu``) before the others, each by run time."""
    if not database.has_workload(mod):
        return []
    workload = database.inner.commit_workload(mod)
    found = [r for r in database.elsewhere if r.workload.same_as(workload) and r.run_secs]
    found.sort(key=lambda r: (-kinship(machine, target_machine(r.target)), mean_seconds(r)))
    chosen, seen = [], set()
    for rec in found:
        text = str(rec.trace)
        if text not in seen:
            seen.add(text)
            chosen.append(rec)
        if len(chosen) == top_k:
            break
    return chosen


def remeasure(tasks, database, builder, runner, target, top_k: int, show: bool = True) -> dict[int, int]:
    """Measure here the best ``top_k`` schedules of other machines for every task that has no
    record of this machine; commit each success as a record of ``target``.

    Parameters
    ----------
    tasks : list of ExtractedTask
        The module's tuning tasks (``ms.relax_integration.extract_tasks``).
    database : TuningDatabase
        Opened with ``machine=target_machine(target)`` (its ``elsewhere`` holds the rest).

    Returns
    -------
    dict
        Task index -> records committed.
    """
    from tvm.s_tir import Schedule
    from tvm.s_tir import meta_schedule as ms

    machine = target_machine(target)
    device = "cpu" if target.kind.name == "llvm" else target.kind.name
    jobs = {}  # task index -> (workload module, records of other machines)
    for i, task in enumerate(tasks):
        mod = task.dispatched[0]
        if has_record(database, mod):
            continue  # measured here already
        found = candidates_from_elsewhere(database, mod, machine, top_k)
        if found:
            jobs[i] = (mod, found)
    done: dict[int, int] = {}
    if not jobs:
        return done
    logger.info("measuring %d schedules of other machines on %s first (%d tasks without records "
                "of it, up to %d each)", sum(len(j[1]) for j in jobs.values()), machine, len(jobs), top_k)
    for i, (mod, records) in tqdm(jobs.items(), desc="re-measure", unit="task", disable=not show):
        replayed = []
        for rec in records:
            sch = Schedule(mod)
            try:
                rec.trace.apply_to_schedule(sch, remove_postproc=False)
            except Exception as err:  # a trace another TVM wrote may not replay: skip it
                logger.warning("task %d: a schedule does not replay (%s): skipped", i, str(err)[:100])
                continue
            replayed.append((rec, sch.mod))
        if not replayed:
            continue
        built = builder.build([ms.builder.BuilderInput(m, target) for _, m in replayed])
        for (rec, _), result in zip(replayed, built, strict=True):
            if result.error_msg:
                logger.warning("task %d: a schedule does not build here: %s", i, result.error_msg[:200])
                continue
            try:
                run = runner.run([ms.runner.RunnerInput(result.artifact_path, device,
                                                        rec.args_info)])[0].result()
            finally:
                shutil.rmtree(Path(result.artifact_path).parent, ignore_errors=True)
            if run.error_msg:
                logger.warning("task %d: a schedule fails here: %s", i, run.error_msg[:200])
                continue
            database.commit_tuning_record(ms.database.TuningRecord(
                rec.trace, database.commit_workload(mod), run.run_secs, target, rec.args_info))
            done[i] = done.get(i, 0) + 1
    return done
