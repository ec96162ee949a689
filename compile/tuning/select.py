"""Which tuning databases a build applies, and applying them: the target's own or another CPU
target's (transfer), the exact model and size first, stale graphs skipped, coverage reported."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from tvm.s_tir import meta_schedule as ms
from tvm_ffi import structural_hash

from compile import REPO_ROOT
from compile.targets import TARGETS, TargetPreset, get_target
from runtime.meta import DatabaseRef, TuningInfo

from .database import (
    RECORDS,
    WORKLOADS,
    graph_version,
    kinship,
    scan_measured,
    target_machine,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Selection:
    """The databases a build of one target applies (``source``'s), and the stale ones it skips."""

    source: str | None  # whose records: the target's own, another CPU target's, or None (untuned)
    databases: tuple[Path, ...] = ()  # the exact model and size first
    stale: tuple[Path, ...] = field(default_factory=tuple)  # tuned on another graph: never applied


def target_databases(tuning_logs: Path, target: str, graph: str) -> tuple[list[Path], list[Path]]:
    """Database folders under ``tuning_logs/<target>/`` (sorted): those tuned on ``graph``, and
    the stale ones (another or an unrecorded graph) that a build must not apply."""
    root = Path(tuning_logs) / target
    found = sorted(p.parent for p in root.glob(f"*/{RECORDS}")) if root.is_dir() else []
    current = [d for d in found if graph_version(d) == graph]
    return current, [d for d in found if d not in current]


@dataclass
class Coverage:
    """How many of a module's tuning tasks one database has records for."""

    db_dir: Path
    covered: int
    total: int
    digest: str


def _digest(db_dir: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    for name in (WORKLOADS, RECORDS):
        path = db_dir / name
        h.update(path.read_bytes() if path.is_file() else b"")
    return h.hexdigest()


def merge_databases(db_dirs: list[Path], task_mods: list | None,
                    machine: str = "") -> tuple[object, list[Coverage], int]:
    """One in-memory database with the best record of each of ``task_mods`` (every workload
    when ``None``) over ``db_dirs``, each database's coverage, and how many of ``task_mods`` are
    served only by records measured on other machines than ``machine``.

    ``task_mods`` are the tuning tasks' IRModules of the module being built; a database for
    another model or size still covers the tasks whose workloads are identical. Run times of
    different machines do not compare (an AVX-512 machine's fastest schedule can be slow on an
    AVX2 one, a faster machine's bests beat every measurement of a slower one): each workload's
    best comes from its records from ``machine`` when there are any, else from those of the same
    CPU (``mcpu``), else from all.
    """
    wanted = None if task_mods is None else {structural_hash(mod) for mod in task_mods}
    coverage, by_workload = [], {}
    for db_dir in db_dirs:
        found = scan_measured(db_dir, wanted)
        for key, records in found.items():
            by_workload.setdefault(key, []).extend(records)
        covered = len(found) if wanted is None else len(wanted & found.keys())
        coverage.append(Coverage(db_dir, covered, len(found if wanted is None else wanted),
                                 _digest(db_dir)))
    merged, foreign = ms.database.MemoryDatabase(), set()
    for key, records in by_workload.items():
        kin = max(kinship(machine, r.machine) for r in records)
        if kin < 2:
            foreign.add(key)
        nearest = sorted((r for r in records if kinship(machine, r.machine) == kin),
                         key=lambda r: r.seconds)
        for rec in nearest:  # the fastest whose trace TVM can parse
            try:
                parsed = ms.database.TuningRecord.from_json(rec.value, ms.database.Workload(rec.mod))
            except Exception as err:  # a corrupt trace: TVM raises its own errors
                logger.warning("skipping a corrupt tuning record %s: %s: %s", rec.line,
                               type(err).__name__, str(err)[:80])
                continue
            merged.commit_tuning_record(ms.database.TuningRecord(
                parsed.trace, merged.commit_workload(rec.mod), parsed.run_secs, parsed.target,
                parsed.args_info))
            break
    return merged, coverage, len(foreign if wanted is None else wanted & foreign)


def schedule_source(preset: TargetPreset, tuning_logs: Path, graph: str,
                    schedules_from: str | None, transfer: bool) -> str | None:
    """Whose tuning databases a build of ``preset`` applies: its own, another CPU target's
    (``schedules_from``; by default ``host`` when the target has none), or none."""
    if schedules_from is not None:
        source = get_target(schedules_from)
        if source.is_gpu != preset.is_gpu:
            raise ValueError(f"--schedules-from {source.name}: schedules of a "
                             f"{'GPU' if source.is_gpu else 'CPU'} target cannot run on "
                             f"{preset.name}; choose one of "
                             f"{', '.join(n for n, t in TARGETS.items() if t.is_gpu == preset.is_gpu)}")
        return source.name
    if target_databases(tuning_logs, preset.name, graph)[0]:
        return preset.name
    if transfer and not preset.is_gpu and preset.name != "host":
        return "host"
    return None


def select_databases(preset: TargetPreset, tuning_logs: Path, exact_db: Path, graph: str,
                     schedules_from: str | None = None, transfer: bool = True) -> Selection:
    """The :class:`Selection` for a build of ``preset``; every stale database is logged."""
    source = schedule_source(preset, tuning_logs, graph, schedules_from, transfer)
    stale = target_databases(tuning_logs, preset.name, graph)[1]
    db_dirs = []
    if source is not None:
        db_dirs, stale_source = target_databases(tuning_logs, source, graph)
        stale += [d for d in stale_source if d not in stale]
        exact = Path(tuning_logs) / source / exact_db.name
        db_dirs.sort(key=lambda d: d != exact)  # the exact model and size first
    for d in stale:
        logger.warning("tuning database %s was tuned on another graph (%s, now %s): not applied; "
                       "re-tune", d, graph_version(d) or "unrecorded", graph)
    return Selection(source, tuple(db_dirs), tuple(stale))


def apply_selection(mod, target, selection: Selection, preset: TargetPreset, graph: str):
    """The lowered ``mod`` with the selected records applied, and the :class:`TuningInfo` for
    the metadata; ``(mod, None)`` when no database covers a task (an untuned build)."""
    from tvm.s_tir import meta_schedule as ms

    if not selection.databases:
        return mod, None
    from compile.passes.gather import tunable

    tasks = [t.dispatched[0] for t in tunable(ms.relax_integration.extract_tasks(mod, target))]
    machine = target_machine(target)  # as tune names the records it measures
    database, coverage, elsewhere = merge_databases(list(selection.databases), tasks, machine)
    covered = sum(database.has_workload(t) for t in tasks)  # by any of the databases
    for cov in coverage:
        logger.info("tuning database %s covers %d/%d tasks", cov.db_dir, cov.covered, cov.total)
    if not any(c.covered for c in coverage):
        return mod, None
    source = selection.source
    report = TuningInfo(
        tasks=len(tasks), tasks_covered=covered, graph=graph, schedules_from=source,
        transferred=source != preset.name,
        databases=tuple(DatabaseRef(_repo_relative(c.db_dir), c.digest, c.covered)
                        for c in coverage if c.covered),
        machine=machine, tasks_elsewhere=elsewhere)
    if elsewhere and source == preset.name:
        logger.warning("%d/%d tasks have records measured only on other machines than %s (run "
                       "'make tune' here to measure them on it)", elsewhere, len(tasks), machine)
    return apply_database(mod, target, database), report


def apply_database(mod, target, database):
    """Replace each task with its best record, then pack the weights the schedules rewrote.

    The order of ``relax.pipeline.static_shape_tuning_pipeline(cpu_weight_prepack=True)``; the
    layout transforms of constant weights fold away, so ``main`` keeps its contract.
    """
    import tvm
    from tvm import relax

    with target, database:
        return tvm.transform.Sequential([
            relax.transform.MetaScheduleApplyDatabase(enable_warning=False),
            relax.transform.SplitLayoutRewritePreproc(),
            relax.transform.FoldConstant(),
        ])(mod)


def _repo_relative(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)
