"""Tuning progress: a live bar, the per-task summary table, and the latency-vs-trials plot."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm
from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

from runtime.atomic import atomic_path


@dataclass
class TaskStats:
    """What the run measured for one task."""

    name: str
    weight: float
    flop: float
    trials: int = 0
    failed: int = 0
    best_s: float = math.inf  # best measured seconds (this run or the database)


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

    @property
    def estimated_latency(self) -> float:
        return sum(t.weight * t.best_s for t in self.tasks)


def best_in_database(database, mod) -> float:
    if not database.has_workload(mod):
        return math.inf
    top = database.get_top_k(database.commit_workload(mod), 1)
    return statistics.fmean(float(s) for s in top[0].run_secs) if top else math.inf


@derived_object
class ProgressCallback(PyMeasureCallback):
    """Counts trials and failures per task and shows the best estimated end-to-end latency."""

    def __init__(self, result: TuneResult, database, total: int, show: bool = True,
                 on_batch: Callable[[int, float], None] | None = None):
        super().__init__()
        self.result, self.database, self.total = result, database, total
        self.on_batch = on_batch  # told each task's best seconds after each batch (the scheduler)
        self.bar = tqdm(total=total, unit="trial", disable=not show, dynamic_ncols=True)

    def _init_tasks(self, task_scheduler) -> None:
        for rec in task_scheduler.tasks_:
            stats = TaskStats(str(rec.ctx.task_name), float(rec.task_weight), float(rec.flop))
            stats.best_s = best_in_database(self.database, rec.ctx.mod)
            self.result.tasks.append(stats)

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
        if not self.result.tasks:
            self._init_tasks(task_scheduler)
        task = self.result.tasks[task_id]
        for built, ran in zip(builder_results, runner_results, strict=True):
            task.trials += 1
            if built.error_msg or ran.error_msg or not ran.run_secs:
                task.failed += 1
            else:
                task.best_s = min(task.best_s, statistics.fmean(float(s) for s in ran.run_secs))
        if self.on_batch is not None:
            self.on_batch(task_id, task.best_s)
        latency = self.result.estimated_latency
        self.result.history.append((self.bar.n + len(runner_results), latency))
        unknown = sum(1 for t in self.result.tasks if math.isinf(t.best_s))
        self.bar.set_postfix_str(f"task {task_id + 1}/{len(self.result.tasks)} {task.name[:28]} | est. "
                                 + (f"{latency * 1e3:.2f} ms" if not unknown
                                    else f"? ({unknown} tasks unmeasured)"), refresh=False)
        self.bar.update(len(runner_results))

    def close(self) -> None:
        self.bar.close()


def summary_table(result) -> str:
    """Per-task table: weight, trials, failures, best latency, GFLOP/s, share of the total."""
    total = result.estimated_latency
    rows = [f"{'task':40s} {'w':>3s} {'trials':>6s} {'failed':>6s} {'best ms':>9s} "
            f"{'GFLOP/s':>8s} {'share':>6s}"]
    for t in sorted(result.tasks, key=lambda t: -(t.weight * t.best_s if t.best_s < math.inf else 0)):
        known = not math.isinf(t.best_s)
        best = f"{t.best_s * 1e3:9.3f}" if known else f"{'-':>9s}"
        gflops = f"{t.flop / t.best_s / 1e9:8.1f}" if known else f"{'-':>8s}"
        share = f"{100 * t.weight * t.best_s / total:5.1f}%" if known and math.isfinite(total) else "     -"
        rows.append(f"{t.name[:40]:40s} {t.weight:3.0f} {t.trials:6d} {t.failed:6d} {best} "
                    f"{gflops} {share}")
    failed = sum(t.failed for t in result.tasks)
    trials = sum(t.trials for t in result.tasks)
    est = f"{total * 1e3:.2f} ms" if math.isfinite(total) else "unknown (some tasks unmeasured)"
    rows.append(f"{trials} trials, {failed} failed; estimated end-to-end latency {est}")
    return "\n".join(rows)


def plot_history(result, path: Path, title: str) -> Path | None:
    """PNG of the estimated end-to-end latency against trials (written atomically)."""
    points = [(n, s * 1e3) for n, s in result.history if math.isfinite(s)]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([p[0] for p in points], [p[1] for p in points], marker=".")
    ax.set_xlabel("trials in this run")
    ax.set_ylabel("estimated latency (ms)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
