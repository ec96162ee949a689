"""A gradient-based MetaSchedule task scheduler that commits measurements as soon as they exist.

MetaSchedule's stock ``gradient`` scheduler joins no measurement until every task has had its
first batch (37 batches for LitePose-XS, about an hour on two cores): a run killed before that
loses everything it measured. This one touches every task before each pick, so each finished
batch is joined, passed to the measure callbacks (the database appends it at once) and never
lost. The warm-up (one batch per task) goes heaviest first (FLOPs x calls per frame): a run
stopped during it has measured the tasks that weigh most. With a ``deadline`` it starts no batch
after it: the batches in flight are joined and the run ends as if its trials were spent. When
the candidates run on this machine (``exclusive``) the batch in flight is joined before the next
pick, so no search or candidate build shares the cores with a measurement; ``only`` restricts
the picks to named tasks (``tune --tasks``).

The allocation is Ansor's (Zheng et al., OSDI 2020, section 6), per call of the task and times
its calls per frame: ``alpha * backward-window gradient + (1 - alpha) * forward``, where the
forward term is the larger of ``best / n`` (``n``: batches the task has had, counting the
database's records of this machine, so a resumed run does not mistake a task searched for 300
trials for a fresh one) and ``best - beta * flop / v`` (``v``: the best FLOP/s among its peers,
the conv and matmul tasks: a task at under 1/beta of that rate has that much to gain).
MetaSchedule's own rule keeps only ``best / n`` and counts ``n`` from the run's start.
"""

from __future__ import annotations

import math
import random
from time import monotonic

from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule import _ffi_api
from tvm.s_tir.meta_schedule.task_scheduler import PyTaskScheduler

PEER_OPS = ("conv2d", "matmul", "dense")  # tasks whose FLOP/s compare (Ansor's similar tasks)


def forward_gains(history: list[list[float]], flops: list[float], peer: list[bool],
                  beta: float = 2.0) -> list[float]:
    """Each task's expected gain (seconds per call) from one more batch: Ansor's forward term.

    Parameters
    ----------
    history : one list per task, its best seconds after each batch so far (empty: none ran)
    flops : FLOPs of one call of each task
    peer : whether each task is a conv / matmul task, whose rates are compared
    beta : a peer task running under ``1 / beta`` of the best peer rate may gain the gap to it

    Returns
    -------
    list of float, one per task: ``max(best / n, best - beta * flop / v)`` (the second only for
    peers; ``v`` the highest FLOP/s among measured peers); ``-inf`` for a task with no result.
    """
    rates = [f / h[-1] for h, f, p in zip(history, flops, peer, strict=True)
             if p and h and 0 < h[-1] < math.inf and f > 0]
    v = max(rates, default=0.0)
    gains = []
    for h, f, p in zip(history, flops, peer, strict=True):
        if not h or math.isinf(h[-1]):
            gains.append(-math.inf)
            continue
        best = h[-1]
        gain = best / len(h)
        if p and v > 0 and f > 0:
            gain = max(gain, best - beta * f / v)
        gains.append(gain)
    return gains


def seed_history(measured: dict[int, tuple[float, int]], batch: int) -> dict[int, list[float]]:
    """Task id -> a history of the database's best seconds, one entry per ``batch`` records
    (at least one): the batches each task had before this run."""
    return {i: [best] * max(1, round(trials / batch)) for i, (best, trials) in measured.items()}


@derived_object
class EagerGradientScheduler(PyTaskScheduler):
    """Gradient-based task allocation with eager joins."""

    def __init__(self, measured: dict[int, tuple[float, int]] | None = None, batch: int = 32,
                 alpha: float = 0.2, window_size: int = 3, beta: float = 2.0, seed: int = 0,
                 deadline: float | None = None, only: set[int] | None = None,
                 exclusive: bool = False):
        """``measured``: task id -> (best seconds, trials) of the database's records of this
        machine; ``batch``: trials per batch, to count those trials as batches; ``only``: the
        task ids it may pick (``None``: every task); the others keep their records and count
        in the estimate; ``exclusive``: a batch is measured on this machine, on all its cores:
        nothing else runs meanwhile (the next batch's search and builds wait for it)."""
        super().__init__()
        self.only = only
        self.exclusive = exclusive
        self.deadline = deadline  # the monotonic() time after which no batch starts
        self.out_of_time = False
        # task id -> best seconds after each batch (math.inf: nothing ran yet); seeded from the
        # database: a resumed run skips the warm-up of measured tasks
        self._best = seed_history(measured or {}, batch)
        self.alpha, self.window, self.beta = alpha, window_size, beta
        self.rng = random.Random(seed)
        self.warmup = 0
        self._warmup_order: list[int] | None = None

    def _outer_tasks(self):
        return self._outer().tasks_

    def _join(self, task_id: int) -> None:
        _ffi_api.TaskSchedulerJoinRunningTask(self._outer(), task_id)

    def _may_pick(self, task_id: int) -> bool:
        return self.only is None or task_id in self.only

    def record(self, task_id: int, best_s: float) -> None:
        """The task's best seconds after a batch (``math.inf`` when none of it ran)."""
        self._best.setdefault(task_id, []).append(best_s)

    def _gradients(self, tasks, alive: list[int]) -> list[float]:
        """Ansor's gradient of each alive task, times its calls per frame."""
        history = [self._best.get(i, []) for i in alive]
        forward = forward_gains(
            history, [float(tasks[i].flop) for i in alive],
            [any(op in str(tasks[i].ctx.task_name) for op in PEER_OPS) for i in alive], self.beta)
        grads = []
        for i, h, fwd in zip(alive, history, forward, strict=True):
            n = len(h)
            back = (h[n - 1 - self.window] - h[-1]) / self.window if n >= 1 + self.window else 0.0
            grads.append((self.alpha * back + (1 - self.alpha) * fwd) * float(tasks[i].task_weight))
        return grads

    def next_task_id(self) -> int:
        tasks = self._outer_tasks()
        for i in range(len(tasks)):
            _ffi_api.TaskSchedulerTouchTask(self._outer(), i)  # joins a batch once it is done
        if self.exclusive:  # measured here: no search or build beside the runs
            for i, task in enumerate(tasks):
                if task.runner_futures is not None:
                    self._join(i)
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
            if task_id not in self._best and self._may_pick(task_id):
                return task_id
        if self.warmup == len(tasks):
            for i, task in enumerate(tasks):
                if task.runner_futures is not None:
                    self._join(i)
            self.warmup += 1
        alive = [i for i, t in enumerate(tasks) if not t.is_terminated and self._may_pick(i)]
        if not alive:
            return -1
        grads = self._gradients(tasks, alive)
        if max(grads) == min(grads):
            task_id = self.rng.choice(alive)
        else:
            task_id = alive[grads.index(max(grads))]
        if tasks[task_id].runner_futures is not None:
            self._join(task_id)
        return task_id
