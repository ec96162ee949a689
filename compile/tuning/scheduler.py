"""A gradient-based MetaSchedule task scheduler that commits measurements as soon as they exist.

MetaSchedule's stock ``gradient`` scheduler joins no measurement until every task has had its
first batch (37 batches for LitePose-XS, about an hour on two cores): a run killed before that
loses everything it measured. This one follows the same allocation rule (Zheng et al., Ansor:
``alpha * backward-window gradient + (1 - alpha) * best / n``, weighted by task count) but
touches every task before each pick, so each finished batch is joined, passed to the measure
callbacks (the database appends it at once) and never lost. The warm-up (one batch per task)
goes heaviest first (FLOPs x calls per frame): a run stopped during it has measured the tasks
that weigh most. With a ``deadline`` it starts no batch after it: the batches in flight are
joined and the run ends as if its trials were spent.
"""

from __future__ import annotations

import math
import random
from time import monotonic

from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule import _ffi_api
from tvm.s_tir.meta_schedule.task_scheduler import PyTaskScheduler


@derived_object
class EagerGradientScheduler(PyTaskScheduler):
    """Gradient-based task allocation with eager joins."""

    def __init__(self, measured: dict[int, float] | None = None, alpha: float = 0.2,
                 window_size: int = 3, seed: int = 0, deadline: float | None = None):
        super().__init__()
        self.deadline = deadline  # the monotonic() time after which no batch starts
        self.out_of_time = False
        # task id -> best seconds after each joined batch (math.inf: nothing ran yet); seeded
        # from the database, so a resumed run skips the warm-up of measured tasks
        self._best: dict[int, list[float]] = {i: [s] for i, s in (measured or {}).items()}
        self.alpha, self.window = alpha, window_size
        self.rng = random.Random(seed)
        self.warmup = 0
        self._warmup_order: list[int] | None = None

    def _outer_tasks(self):
        return self._outer().tasks_

    def _join(self, task_id: int) -> None:
        _ffi_api.TaskSchedulerJoinRunningTask(self._outer(), task_id)

    def record(self, task_id: int, best_s: float) -> None:
        """The task's best seconds after a batch (``math.inf`` when none of it ran)."""
        self._best.setdefault(task_id, []).append(best_s)

    def _gradient(self, task_id: int, weight: float) -> float:
        history = self._best.get(task_id, [])
        n = len(history)
        if not n or math.isinf(history[-1]):
            return -math.inf
        best = history[-1]
        g1 = (history[n - 1 - self.window] - best) / self.window if n >= 1 + self.window else 0.0
        return (self.alpha * g1 + (1 - self.alpha) * best / n) * weight

    def next_task_id(self) -> int:
        tasks = self._outer_tasks()
        for i in range(len(tasks)):
            _ffi_api.TaskSchedulerTouchTask(self._outer(), i)  # joins a batch once it is done
        if self.deadline is not None and monotonic() >= self.deadline:
            self.out_of_time = True
            for i, task in enumerate(tasks):
                if task.runner_futures is not None:
                    self._join(i)
            return -1
        if self._warmup_order is None:
            self._warmup_order = sorted(range(len(tasks)), key=lambda i: (
                -float(tasks[i].flop) * float(tasks[i].task_weight), i))
        while self.warmup < len(tasks):  # one batch for every task not measured before
            task_id = self._warmup_order[self.warmup]
            self.warmup += 1
            if task_id not in self._best:
                return task_id
        if self.warmup == len(tasks):
            for i, task in enumerate(tasks):
                if task.runner_futures is not None:
                    self._join(i)
            self.warmup += 1
        alive = [i for i, t in enumerate(tasks) if not t.is_terminated]
        if not alive:
            return -1
        grads = [self._gradient(i, float(tasks[i].task_weight)) for i in alive]
        if max(grads) == min(grads):
            task_id = self.rng.choice(alive)
        else:
            task_id = alive[grads.index(max(grads))]
        if tasks[task_id].runner_futures is not None:
            self._join(task_id)
        return task_id
