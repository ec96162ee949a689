"""The tuning scheduler's allocation rule (compile/tuning/scheduler.py), on the per-task figures
of a real XS run (tune --replot on znver3): no TVM task is built."""

import math

import pytest

from compile.tuning.scheduler import forward_gains, seed_history

pytestmark = pytest.mark.unit

BATCH = 32
# name: (best ms, records, GFLOP/s, a conv) from the table of host/xs-256x256 on znver3
TABLE = {
    "dw 7x7, 64x64": (0.694, 296, 57.2, True),
    "phase conv": (1.403, 168, 93.1, True),
    "1x1 conv, head": (0.308, 8, 23.8, True),
    "depth-to-space": (1.587, 2, 0.0, False),
}


def _gains():
    names = list(TABLE)
    measured = {i: (TABLE[n][0] * 1e-3, TABLE[n][1]) for i, n in enumerate(names)}
    history = seed_history(measured, BATCH)
    flops = [TABLE[n][0] * 1e-3 * TABLE[n][2] * 1e9 for n in names]
    gains = forward_gains([history[i] for i in range(len(names))], flops,
                          [TABLE[n][3] for n in names])
    return dict(zip(names, gains, strict=True)), history


def test_a_resumed_run_counts_the_batches_each_task_had():
    gains, history = _gains()
    assert [len(h) for h in history.values()] == [9, 5, 1, 1]  # 296 / 32, 168 / 32, 8, 2 records
    # 296 records at 0.694 ms: best / 9; MetaSchedule's rule would call it a first batch (0.694)
    assert gains["dw 7x7, 64x64"] == pytest.approx(0.694e-3 / 9)
    # one batch of 8 records, a quarter of the best conv's rate: it gains more than the dw conv
    assert gains["1x1 conv, head"] > 3 * gains["dw 7x7, 64x64"]


def test_a_conv_far_below_its_peers_rate_keeps_a_gain_as_its_batches_grow():
    names = ["fast", "slow", "copy"]  # 100 GFLOP/s, 20 GFLOP/s, memory-bound (no FLOPs)
    history = [[1e-3] * 20, [1e-3] * 20, [1e-3] * 20]
    gains = dict(zip(names, forward_gains(history, [1e8, 2e7, 0.0], [True, True, False]),
                     strict=True))
    assert gains["fast"] == gains["copy"] == pytest.approx(1e-3 / 20)
    # beta = 2: it may reach half the best peer's rate, 50 GFLOP/s: 1 ms -> 0.4 ms
    assert gains["slow"] == pytest.approx(0.6e-3)


def test_a_task_without_a_result_is_never_preferred():
    gains = forward_gains([[], [math.inf], [1e-3]], [1e6, 1e6, 1e6], [True, True, True])
    assert gains[:2] == [-math.inf, -math.inf] and gains[2] == pytest.approx(1e-3)


def _fake_tasks(running: set[int], n: int = 3) -> list:
    from types import SimpleNamespace

    return [SimpleNamespace(runner_futures=[object()] if i in running else None, is_terminated=False,
                            flop=1e6, task_weight=1.0, ctx=SimpleNamespace(task_name=f"fused_conv2d{i}"))
            for i in range(n)]


@pytest.mark.parametrize("exclusive", [False, True])
def test_measured_here_a_batch_runs_alone(monkeypatch, exclusive):
    """On this machine (``exclusive``) the batch in flight is joined before the next task is
    picked, so no search or candidate build runs beside a measurement; on boards it runs on."""
    from types import SimpleNamespace

    from compile.tuning import scheduler

    monkeypatch.setattr(scheduler, "_ffi_api", SimpleNamespace(TaskSchedulerTouchTask=lambda *a: None))
    # every task measured before (no warm-up); task 2 is the slowest, so it has the most to gain
    sched = scheduler.EagerGradientScheduler({0: (1e-3, 32), 1: (1e-3, 32), 2: (2e-3, 32)},
                                             exclusive=exclusive, only={1, 2})
    joined = []
    sched._join = joined.append
    sched._outer_tasks = lambda: _fake_tasks(set())
    assert sched.next_task_id() == 2  # the warm-up ends with nothing in flight
    sched._outer_tasks = lambda: _fake_tasks({0})  # task 0's batch is in flight
    assert sched.next_task_id() == 2 and joined == ([0] if exclusive else [])


def test_only_the_tasks_named_are_picked(monkeypatch):
    from types import SimpleNamespace

    from compile.tuning import scheduler

    monkeypatch.setattr(scheduler, "_ffi_api", SimpleNamespace(TaskSchedulerTouchTask=lambda *a: None))
    sched = scheduler.EagerGradientScheduler({1: (1e-3, 32)}, only={1})  # 0 and 2 never measured
    sched._outer_tasks = lambda: _fake_tasks(set())
    sched._join = lambda i: None
    assert [sched.next_task_id() for _ in range(3)] == [1, 1, 1]  # no warm-up batch for 0 or 2
