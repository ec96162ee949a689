"""Tuning progress: a live bar, the per-task summary table, and the latency-vs-trials plot."""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm
from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

from runtime.atomic import atomic_path, write_json_atomic

from .database import mean_seconds

logger = logging.getLogger(__name__)


@dataclass
class TaskStats:
    """What the run measured for one task."""

    name: str
    weight: float
    flop: float
    trials: int = 0
    failed: int = 0
    best_s: float = math.inf  # best measured seconds (this run or the database)
    boards: Counter = field(default_factory=Counter)  # trials per board address (boards only)
    board_failed: Counter = field(default_factory=Counter)  # failed trials per board address


@dataclass
class TuneResult:
    db_dir: Path
    tasks: list[TaskStats]
    history: list[tuple[int, float]] = field(default_factory=list)  # (trials, est. latency s)
    records_before: int = 0
    records_after: int = 0
    skipped_lines: list[str] = field(default_factory=list)
    plot: Path | None = None
    seconds: float = 0.0
    measure_seconds: float = 0.0  # from the start of the search to the last batch collected
    remeasured: int = 0  # other machines' schedules measured here before the search
    out_of_time: bool = False  # the --minutes budget ended the run before its trials

    @property
    def boards(self) -> Counter:
        """Trials per board over all tasks (empty when tuning on this machine)."""
        return sum((t.boards for t in self.tasks), Counter())

    @property
    def per_minute(self) -> float:
        """Measurement throughput: candidates collected per minute of measuring."""
        trials = sum(t.trials for t in self.tasks)
        return 60 * trials / self.measure_seconds if self.measure_seconds > 0 else 0.0

    @property
    def estimated_latency(self) -> float:
        return sum(t.weight * t.best_s for t in self.tasks)

    def converged_at(self, tolerance: float = 0.1) -> int | None:
        """The first trial from which the estimate stayed within ``tolerance`` of the run's
        final one (None before every task was measured)."""
        return converged_at(self.history, tolerance)


def converged_at(history: list[tuple[int, float]], tolerance: float = 0.1) -> int | None:
    """First trial count in ``history`` [(trials, estimated s)] after which every estimate is
    within ``tolerance`` of the last one."""
    finite = [(n, s) for n, s in history if math.isfinite(s)]
    if not finite:
        return None
    end, first = finite[-1][1], finite[-1][0]
    for n, s in reversed(finite):
        if s > end * (1 + tolerance):
            break
        first = n
    return first


def best_in_database(database, mod) -> float:
    if not database.has_workload(mod):
        return math.inf
    top = database.get_top_k(database.commit_workload(mod), 1)
    return mean_seconds(top[0]) if top else math.inf


@derived_object
class ProgressCallback(PyMeasureCallback):
    """Counts trials and failures per task and shows the best estimated end-to-end latency."""

    def __init__(self, result: TuneResult, database, total: int, show: bool = True,
                 on_batch: Callable[[int, float], None] | None = None,
                 take_boards: Callable[[], list] | None = None, curve: Path | None = None):
        super().__init__()
        self.result, self.database, self.total = result, database, total
        self.curve = curve  # the curve's points, rewritten after each batch (a killed run keeps it)
        self.on_batch = on_batch  # told each task's best seconds after each batch (the scheduler)
        self.take_boards = take_boards  # the board of each candidate of the batch (board runner)
        self.bar = tqdm(total=total, unit="trial", disable=not show, dynamic_ncols=True)
        self.trials = 0  # counted here: a disabled (--quiet) bar counts nothing
        self.start = time.perf_counter()

    def _init_tasks(self, task_scheduler) -> None:
        for rec in task_scheduler.tasks_:
            stats = TaskStats(str(rec.ctx.task_name), float(rec.task_weight), float(rec.flop))
            stats.best_s = best_in_database(self.database, rec.ctx.mod)
            self.result.tasks.append(stats)

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
        if not self.result.tasks:
            self._init_tasks(task_scheduler)
        task = self.result.tasks[task_id]
        # the board runner saw only the candidates that built, in order
        boards = iter(self.take_boards()) if self.take_boards else None
        seen = set()
        for built, ran in zip(builder_results, runner_results, strict=True):
            task.trials += 1
            board = (next(boards, None) or "unknown") if boards and not built.error_msg else None
            if board:
                seen.add(board)
                task.boards[board] += 1
            if built.error_msg or ran.error_msg or not ran.run_secs:
                if not task.failed:  # the first failure of a task says why
                    logger.warning("task %s: a candidate failed: %s", task.name,
                                   str(built.error_msg or ran.error_msg or "no run time")[-1500:])
                task.failed += 1
                if board:
                    task.board_failed[board] += 1
            else:
                task.best_s = min(task.best_s, mean_seconds(ran))
        if self.on_batch is not None:
            self.on_batch(task_id, task.best_s)
        latency = self.result.estimated_latency
        self.trials += len(runner_results)
        self.result.history.append((self.trials, latency))
        if self.curve is not None and math.isfinite(latency):
            write_curve(self.result.history, self.curve)
        unknown = sum(1 for t in self.result.tasks if math.isinf(t.best_s))
        self.result.measure_seconds = time.perf_counter() - self.start
        farm = (f" | {len(seen)} board(s) {self.result.per_minute:.1f} cand/min"
                if self.take_boards else f" | {self.result.per_minute:.1f} cand/min")
        self.bar.set_postfix_str(f"task {task_id + 1}/{len(self.result.tasks)} {task.name[:28]} | est. "
                                 + (f"{latency * 1e3:.2f} ms" if not unknown
                                    else f"? ({unknown} tasks unmeasured)") + farm, refresh=False)
        self.bar.update(len(runner_results))

    def close(self) -> None:
        self.bar.close()


def summary_table(result, throughput: bool = True) -> str:
    """Per-task table: weight, trials, failures, best latency, GFLOP/s, share of the total; then
    the totals, where the run converged and (``throughput``) its candidates per minute."""
    total = result.estimated_latency
    boards = sorted(result.boards)
    rows = [f"{'task':40s} {'w':>3s} {'trials':>6s} {'failed':>6s} {'best ms':>9s} "
            f"{'GFLOP/s':>8s} {'share':>6s}" + ("  per board" if boards else "")]
    for t in sorted(result.tasks, key=lambda t: -(t.weight * t.best_s if t.best_s < math.inf else 0)):
        known = not math.isinf(t.best_s)
        best = f"{t.best_s * 1e3:9.3f}" if known else f"{'-':>9s}"
        gflops = f"{t.flop / t.best_s / 1e9:8.1f}" if known else f"{'-':>8s}"
        share = f"{100 * t.weight * t.best_s / total:5.1f}%" if known and math.isfinite(total) else "     -"
        per_board = ("  " + "+".join(str(t.boards[b]) for b in boards)) if boards else ""
        rows.append(f"{t.name[:40]:40s} {t.weight:3.0f} {t.trials:6d} {t.failed:6d} {best} "
                    f"{gflops} {share}{per_board}")
    failed = sum(t.failed for t in result.tasks)
    trials = sum(t.trials for t in result.tasks)
    est = f"{total * 1e3:.2f} ms" if math.isfinite(total) else "unknown (some tasks unmeasured)"
    rows.append(f"{trials} trials, {failed} failed; estimated end-to-end latency {est}")
    at = result.converged_at()
    if at is not None and result.history:
        last = result.history[-1][0]
        rows.append(f"converged: within 10 % of the final estimate from trial {at} of {last} "
                    f"({100 * at / last:.0f} % of the run)")
    if throughput:
        rows.append(f"throughput {result.per_minute:.1f} candidates/min over "
                    f"{result.measure_seconds:.0f} s " + ("(candidate builds here and runs on the "
                    "boards, overlapped)" if boards else "(builds and runs here, in turn)"))
    if boards:
        failed_on = sum((t.board_failed for t in result.tasks), Counter())
        rows.append("boards     " + ", ".join(f"{b}: {result.boards[b]} trials ({failed_on[b]} failed)"
                                              for b in boards))
    return "\n".join(rows)


def write_curve(history: list[tuple[int, float]], path: Path) -> int | None:
    """The curve's finite points as JSON (atomically) and the trial from which it stayed within
    10 % of its end, which it returns."""
    points = [(n, s * 1e3) for n, s in history if math.isfinite(s)]
    at = converged_at(history)
    write_json_atomic(path, {"trials": [p[0] for p in points],
                             "estimated_ms": [round(p[1], 4) for p in points],
                             "within_10pct_from_trial": at})
    return at


def plot_history(result, path: Path, title: str, xlabel: str = "trials in this run") -> Path | None:
    """PNG of the estimated end-to-end latency against trials, the point where it came within
    10 % of its end marked, and the points as JSON beside it (``.json``); both atomic."""
    points = [(n, s * 1e3) for n, s in result.history if math.isfinite(s)]
    if not points:
        return None
    at = write_curve(result.history, path.with_suffix(".json"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([p[0] for p in points], [p[1] for p in points], marker=".")
    if at is not None:
        ax.axvline(at, color="#c63", ls="--", lw=1)
        ax.annotate(f"within 10 % of the end from trial {at}", (at, max(p[1] for p in points)),
                    fontsize=8, xytext=(4, -10), textcoords="offset points", color="#c63")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("estimated latency (ms)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def curve_from_records(db_dir: Path, task_mods: list, weights: list[float], machine: str,
                       stats: list[TaskStats] | None = None) -> list[tuple[int, float]]:
    """The estimated-latency curve of a database's whole history, rebuilt from its records in
    the order they were measured (one line each, appended): after each record of ``machine``,
    ``sum(weight x best seconds)`` over the tasks, infinite until every task has one. It spans
    runs that were resumed or killed, which a run's own curve cannot. ``stats`` (one per task,
    in order), when given, get each task's records of ``machine`` as trials (failed: those
    without a run time) and its best."""
    import json

    from .database import RECORDS, TuningDatabase, target_machine

    db = TuningDatabase(db_dir, writable=False)
    task_of = {}  # workload line -> task (a workload may have lines from several runs)
    for t, mod in enumerate(task_mods):
        if db.has_workload(mod):
            known = db.inner.commit_workload(mod)
            task_of.update((index, t) for w, index in db.workloads if w.same_as(known))
    best = [math.inf] * len(task_mods)
    history, trials = [], 0
    with open(Path(db_dir) / RECORDS, "rb") as fh:
        for line in fh:
            try:
                index, (_, secs, target, *_) = json.loads(line)
            except (ValueError, TypeError):
                continue  # a corrupt line (the database reports it when loaded)
            if target_machine(target) != machine:
                continue
            trials += 1
            t = task_of.get(index)
            if t is not None and stats is not None:
                stats[t].trials += 1
                stats[t].failed += not secs
            if t is not None and secs:
                best[t] = min(best[t], sum(secs) / len(secs))
            history.append((trials, sum(w * b for w, b in zip(weights, best, strict=True))))
    logger.debug("curve of %s: %d records of %s; tasks without one: %s", db_dir, trials, machine,
                 [t for t, b in enumerate(best) if math.isinf(b)])
    if stats is not None:
        for task, b in zip(stats, best, strict=True):
            task.best_s = b
    return history
