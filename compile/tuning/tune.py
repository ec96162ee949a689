"""Tuning: MetaSchedule (XGBoost cost model) on this machine or on boards behind a tracker."""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from compile import REPO_ROOT
from compile.boards.tracker import Tracker, check_tracker, resolve_tracker
from compile.model.zoo import get_dataset, get_model, parse_input_size
from compile.targets import get_target

from .database import TUNING_LOGS, database_dir, mean_seconds, target_machine

if TYPE_CHECKING:
    from .progress import TuneResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneArgs:
    """Resolved arguments of one tuning run."""

    model: str
    target: str
    trials: int = 64  # new measurements in this run (a re-run adds to the database)
    trials_per_task: int | None = None
    minutes: float | None = None  # start no batch after this long (from the start of the run)
    input_size: str | None = None
    dataset: str = "crowdpose"
    tracker: str | None = None  # HOST:PORT; else TVM_TRACKER_HOST/PORT; else local
    key: str | None = None
    timeout: float = 120.0  # per candidate on the board (RPC session) or locally
    builder_timeout: float = 180.0
    trials_per_batch: int = 32
    first_pass: int = 8  # trials of each task's first batch (0: a full batch, MetaSchedule's way)
    parallel: int | None = None  # candidates in flight on boards; default: the free boards
    build_workers: int | None = None  # candidate builds at once; default: this machine's cores
    remeasure: int = 8  # other machines' best schedules measured here first, per new task
    functions: str = "all"  # "network" (main), "merge" (compile/frontend/merge.py) or "all"
    tasks: tuple[str, ...] = ()  # search only the tasks whose names contain one of these
    carry_over: bool = False  # claim a database of an older graph (database.carry_over)
    tuning_logs: Path = TUNING_LOGS
    work_dir: Path | None = None  # logs and plot; default build/tune-<target>-<model>-<HxW>
    progress: bool = True

    def display(self) -> str:
        return "\n".join(f"  {k:16s} {v}" for k, v in asdict(self).items())


def make_builder(preset, timeout: float, remote: bool, workers: int | None = None):
    """LocalBuilder with a generous timeout and ``workers`` processes (default: the cores); for
    boards, candidates are linked here into a .so with the preset's (cross) compiler, so the
    board needs no compiler."""
    from tvm.s_tir import meta_schedule as ms

    from .measure import build_candidate, make_export

    kwargs = {}
    if remote or preset.cross_compiler:
        kwargs["f_export"] = make_export(preset)
    return ms.builder.LocalBuilder(timeout_sec=timeout, f_build=build_candidate,
                                   max_workers=workers, **kwargs)


def make_runner(tracker: Tracker | None, timeout: float, parallel: int = 1, threads: int = 0):
    """LocalRunner timing each candidate with ``threads`` TVM threads (the target's
    ``num-cores``; 0: TVM's default pool), or a runner keeping ``parallel`` candidates in flight
    on the boards the tracker holds for ``tracker.key``.

    TVM's default pool on x86 is half the logical CPUs (it takes every other one for a
    hyper-thread): one thread on a 2-vCPU VM, where the artifact runs two. Schedules timed on
    one thread are never rewarded for splitting their work evenly over two."""
    from tvm.s_tir import meta_schedule as ms

    evaluator = ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=50,
                                          enable_cpu_cache_flush=False)
    if tracker is None:
        initializer = None
        if threads:
            def initializer(n: str = str(threads)) -> None:  # in each worker, before its pool exists
                os.environ["TVM_NUM_THREADS"] = n

        return ms.runner.LocalRunner(timeout_sec=timeout, evaluator_config=evaluator,
                                     initializer=initializer)
    from .measure import BoardRunner

    config = ms.runner.RPCConfig(tracker_host=tracker.host, tracker_port=tracker.port,
                                 tracker_key=tracker.key, session_priority=1,
                                 session_timeout_sec=int(timeout))
    return BoardRunner(tracker, config, evaluator, parallel)


def mali_space(target):
    """MetaSchedule's GPU search space fitted to the Mali-T860 (Midgard).

    The stock GPU rules (``ScheduleRule::DefaultCUDA``) stage every conv input through shared
    memory, which Mali only emulates in global memory, and reduce across threads through it:
    here reads come straight from global memory (no ``reuse_read``), results accumulate in
    registers (``reuse_write`` local), there is no cross-thread reduction, and thread extents
    stop at the target's ``max_threads_per_block`` (256 on the T860). ``VerifyGPUCode`` checks
    every candidate against the target's limits; mutators are the GPU defaults.
    """
    from tvm.s_tir import meta_schedule as ms

    max_threads = int(target.attrs["max_threads_per_block"])
    extents = [t for t in (32, 64, 128, 256, 512, 1024) if t <= max_threads]
    rules = [
        ms.schedule_rule.ApplyCustomRule(),
        ms.schedule_rule.MultiLevelTiling(
            structure="SSSRRSRS", tile_binds=["blockIdx.x", "vthread.x", "threadIdx.x"],
            max_innermost_factor=16, vector_load_lens=[1, 2, 4],
            reuse_read=None,
            reuse_write=ms.schedule_rule.ReuseType(req="must", levels=[3], scope="local")),
        ms.schedule_rule.InlineConstantScalars(),
        ms.schedule_rule.AutoInline(into_producer=True, into_consumer=True,
                                    inline_const_tensor=True, disallow_if_then_else=False,
                                    require_injective=False, require_ordered=False),
        ms.schedule_rule.ParallelizeVectorizeUnroll(max_jobs_per_core=-1, max_vectorize_extent=-1,
                                                    unroll_max_steps=[0, 16, 64, 512],
                                                    unroll_explicit=True),
        ms.schedule_rule.AutoBind(max_threadblocks=256, thread_extents=extents),
    ]
    return ms.space_generator.PostOrderApply(
        sch_rules=rules, postprocs=ms.postproc.Postproc.create("cuda"),
        mutator_probs=ms.mutator.Mutator.create("cuda"))


def resolve(args: TuneArgs):
    """Check every argument before any work; returns (spec, dataset, preset, size, tracker,
    parallel)."""
    spec, dataset, preset = get_model(args.model), get_dataset(args.dataset), get_target(args.target)
    size = parse_input_size(args.input_size, spec.input_size)
    if args.functions not in FUNCTION_SETS:
        raise ValueError(f"unknown function set {args.functions!r}; valid choices: "
                         f"{', '.join(FUNCTION_SETS)}")
    if args.minutes is not None and not 0 < args.minutes < math.inf:
        raise ValueError(f"--minutes must be a finite number > 0, got {args.minutes}")
    for name in ("trials", "parallel", "build_workers"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    tracker = resolve_tracker(args.tracker, args.key, preset.rpc_key,
                              local_default=preset.name != "host")  # boards: as deploy does
    if tracker is None:
        if args.parallel is not None:
            raise ValueError("--parallel spreads measurements over boards from a tracker; "
                             "tuning on this machine measures one candidate at a time (give "
                             "--tracker HOST:PORT for boards)")
        return spec, dataset, preset, size, None, 1
    free = check_tracker(tracker)
    parallel = args.parallel or max(1, free)
    logger.info("tracker %s:%d has %d free board(s) with key %s: %d candidate(s) in flight",
                tracker.host, tracker.port, free, tracker.key, parallel)
    return spec, dataset, preset, size, tracker, parallel


def _drop_unnamed_handlers(ms_logger: logging.Logger) -> None:
    """MetaSchedule rebuilds its logging config from its logger's handler *names* and crashes on
    an unnamed one (e.g. left by a host application); such handlers are detached first."""
    for handler in list(ms_logger.handlers):
        if handler.get_name() is None:
            ms_logger.removeHandler(handler)


FUNCTION_SETS = ("all", "network", "merge")


def select_functions(mod, functions: str):
    """The module's functions whose tasks a run tunes: ``main`` (the network), the merge
    functions (every other one), or ``all``."""
    import tvm
    from tvm import relax

    if functions == "all":
        return mod
    keep = {g: f for g, f in mod.functions_items() if not isinstance(f, relax.Function)
            or (g.name_hint == "main") == (functions == "network")}
    return tvm.IRModule(keep, attrs=mod.attrs)


def _work_dir(args: TuneArgs, preset, spec, size) -> Path:
    return args.work_dir or REPO_ROOT / "build" / f"tune-{preset.name}-{spec.name}-{size[0]}x{size[1]}"


def _extract_tasks(args: TuneArgs, spec, dataset, size, target, work_dir: Path) -> list:
    """The MetaSchedule tasks of the functions ``args.functions`` selects (network and merge
    functions, lowered as a build lowers them); they do not depend on the weights."""
    from tvm.s_tir import meta_schedule as ms

    from compile.frontend.importer import import_relax, load_model
    from compile.frontend.merge import with_merges
    from compile.passes.gather import tunable
    from compile.passes.pipeline import channels_last, lower_for_tuning

    loaded = load_model(spec, dataset)
    imported = import_relax(loaded, size, "torch", workdir=work_dir,
                            channels_last=channels_last(target))
    mod = lower_for_tuning(select_functions(with_merges(imported, loaded, size), args.functions),
                           target)
    return tunable(ms.relax_integration.extract_tasks(mod, target))


def pick_tasks(tasks, names: tuple[str, ...]) -> set[int] | None:
    """Indices of the tasks whose names contain one of ``names`` (``None``: no choice, all);
    ``ValueError`` naming a name that matches no task, with the task names to choose from."""
    if not names:
        return None
    task_names = [str(t.task_name) for t in tasks]
    picked = set()
    for name in names:
        found = {i for i, task_name in enumerate(task_names) if name in task_name}
        if not found:
            raise ValueError(f"--tasks {name!r} matches no task of this model; its tasks: "
                             f"{', '.join(task_names)}")
        picked |= found
    return picked


def _measured(tasks, database) -> dict[int, tuple[float, int]]:
    """Task index -> (best seconds, valid records) of the tasks the database has measured."""
    measured = {}
    for i, task in enumerate(tasks):
        mod = task.dispatched[0]
        if database.has_workload(mod):
            runs = database.get_top_k(database.commit_workload(mod), 1 << 30)
            if runs:
                measured[i] = (mean_seconds(runs[0]), len(runs))
    return measured


def _flop(task) -> float:
    """The FLOPs MetaSchedule counts for an extracted task (its per-task table's column)."""
    from tvm.s_tir.analysis import estimate_tir_flops

    return float(estimate_tir_flops(task.dispatched[0]))


def replot(args: TuneArgs) -> TuneResult:
    """The curve of the database's whole history on this machine (every record, in the order
    measured, across resumed and killed runs), plotted next to it, and each task's records and
    best of this machine (the per-task table); nothing is measured."""
    from .progress import TaskStats, TuneResult, curve_from_records, plot_history

    spec, dataset, preset, size, _, _ = resolve(args)
    db_dir = database_dir(args.tuning_logs, preset.name, spec.name, size)
    if not (db_dir / "database_tuning_record.json").is_file():
        raise ValueError(f"no tuning database at {db_dir}: nothing to plot")
    target = preset.tvm_target()
    tasks = _extract_tasks(args, spec, dataset, size, target, _work_dir(args, preset, spec, size))
    stats = [TaskStats(str(t.task_name), float(t.weight), _flop(t)) for t in tasks]
    result = TuneResult(db_dir, stats, history=curve_from_records(
        db_dir, [t.dispatched[0] for t in tasks], [float(t.weight) for t in tasks],
        target_machine(target), stats))
    result.plot = plot_history(result, db_dir / "tuning-curve.png",
                               f"{spec.name} {size[0]}x{size[1]} on {preset.name}, every record",
                               xlabel=f"records measured on {target_machine(target)}, in order")
    return result


def tune(args: TuneArgs) -> TuneResult:
    """Tune one model for one target; records go to ``tuning_logs`` as they are measured."""
    from tvm.s_tir import meta_schedule as ms

    from compile.passes.pipeline import GRAPH_VERSION

    from .database import TuningDatabase
    from .progress import ProgressCallback, TuneResult, plot_history
    from .remeasure import remeasure
    from .scheduler import EagerGradientScheduler

    spec, dataset, preset, size, tracker, parallel = resolve(args)
    db_dir = database_dir(args.tuning_logs, preset.name, spec.name, size)
    work_dir = _work_dir(args, preset, spec, size)
    work_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    deadline = None if args.minutes is None else time.monotonic() + 60 * args.minutes
    target = preset.tvm_target()
    machine = target_machine(target)  # loads this machine's records only; refuses another graph
    tasks = _extract_tasks(args, spec, dataset, size, target, work_dir)
    only = pick_tasks(tasks, args.tasks)  # checked before the database's minutes of loading
    # a search of a few named tasks is no convergence curve of the database: its curve stays in
    # the work folder and the database keeps the curve of its last whole search
    curves = db_dir if only is None else work_dir
    database = TuningDatabase(db_dir, writable=True, graph=GRAPH_VERSION, machine=machine,
                              carry_over=args.carry_over)
    if database.elsewhere:
        logger.info("%s: %d records measured on other machines than %s are kept, not used "
                    "as this machine's", db_dir, len(database.elsewhere), machine)
    report = database.report
    result = TuneResult(db_dir, [], records_before=report.records + len(database.elsewhere),
                        skipped_lines=list(report.skipped))
    runner = make_runner(tracker, args.timeout, parallel, int(target.attrs.get("num-cores", 0)))
    builder = make_builder(preset, args.builder_timeout, tracker is not None, args.build_workers)
    if args.remeasure:
        chosen = tasks if only is None else [tasks[i] for i in sorted(only)]
        result.remeasured = sum(remeasure(chosen, database, builder, runner, target, args.remeasure,
                                          args.progress).values())
    space = mali_space(target) if preset.is_gpu else "post-order-apply"
    cost_model = ms.cost_model.XGBModel(tree_method="auto")  # shared by both passes
    callback = None
    first = min(args.first_pass, args.trials_per_batch)
    # 1) every task the database has not measured gets one small batch (about a quarter of the
    # trials a full first batch takes); 2) the gradient scheduler spends the rest where the
    # estimate says the time is, in full batches
    for stage in ("first pass", "search"):
        measured = _measured(tasks, database)
        new = sum(i not in measured for i in (range(len(tasks)) if only is None else only))
        if stage == "first pass":
            if not first or not new or first == args.trials_per_batch:
                continue
            budget, per_task, per_batch = min(args.trials, first * new), first, first
        else:
            done = callback.trials if callback is not None else 0
            budget, per_task, per_batch = args.trials - done, args.trials_per_task, args.trials_per_batch
            if budget <= 0:
                break
            if deadline is not None and time.monotonic() >= deadline:
                result.out_of_time = True
                break
        logger.info("%s: %d trials (%d tasks unmeasured)", stage, budget, new)
        scheduler = EagerGradientScheduler(measured, args.trials_per_batch, deadline=deadline,
                                           only=only, exclusive=tracker is None)
        if callback is None:
            callback = ProgressCallback(result, database, args.trials, args.progress, scheduler.record,
                                        getattr(runner, "take_boards", None),
                                        curve=curves / "tuning-curve.json")
        callback.on_batch = scheduler.record
        _drop_unnamed_handlers(logging.getLogger("tvm.s_tir.meta_schedule"))
        contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
            tasks, str(work_dir), space=space)
        ms.tune_tasks(
            tasks=contexts, task_weights=weights, work_dir=str(work_dir),
            max_trials_global=budget, max_trials_per_task=per_task, num_trials_per_iter=per_batch,
            builder=builder, runner=runner, database=database, cost_model=cost_model,
            task_scheduler=scheduler,
            measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"), callback],
        )
        if scheduler.out_of_time:
            result.out_of_time = True
            break
    if callback is not None:
        callback.close()
    result.records_after = len(TuningDatabase(db_dir, writable=False).get_all_tuning_records())
    result.plot = plot_history(result, curves / "tuning-curve.png", f"{spec.name} {size[0]}x{size[1]} "
                               f"on {preset.name}")
    result.seconds = time.perf_counter() - start
    return result
